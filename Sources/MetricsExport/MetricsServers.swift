import CLISupport
import Synchronization

/// Keeps the process's metrics listeners alive until it exits.
public enum MetricsServers {
    private static let servers = Mutex<[MetricsServer]>([])
    /// Holds `server` for the life of the process.
    public static func keep(_ server: MetricsServer) { servers.withLock { $0.append(server) } }

    /// `--metrics HOST:PORT` for a whole run, as both CLIs take it: starts the listener on
    /// `registry`, keeps it for the life of the process and says on stderr where it listens,
    /// or why it cannot (each line prefixed with `program`). False when it did not start.
    public static func serveForRun(_ listen: String, registry: MetricsRegistry, program: String) -> Bool {
        do {
            let server = try MetricsServer.start(listen, registry: registry)
            keep(server)
            Output.standardError("\(program): metrics on http://\(server.boundAddress)/metrics")
            return true
        } catch {
            Output.standardError("\(program): \(error)")
            return false
        }
    }
}
