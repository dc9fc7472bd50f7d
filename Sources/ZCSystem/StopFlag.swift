import CLinux

/// SIGINT/SIGTERM as a flag the run loops poll. The handler lives in C because a
/// signal handler may only touch a `volatile sig_atomic_t`, which Swift cannot express.
public enum StopFlag {
    /// Installs the handlers (without SA_RESTART, so a blocked wait returns EINTR).
    public static func install() { zc_install_stop_handlers() }
    /// True once a stop signal arrived (or `request` was called).
    @inline(__always) public static var isSet: Bool { zc_stop_signal() != 0 }
    /// The signal that asked us to stop, 0 if none.
    public static var signal: Int32 { zc_stop_signal() }
    /// Asks the loops to stop as if `signal` had arrived.
    public static func request(signal: Int32) { zc_request_stop(signal) }
}
