import Synchronization

/// Keeps the process's metrics listeners alive until it exits.
public enum MetricsServers {
    private static let servers = Mutex<[MetricsServer]>([])
    /// Holds `server` for the life of the process.
    public static func keep(_ server: MetricsServer) { servers.withLock { $0.append(server) } }
}
