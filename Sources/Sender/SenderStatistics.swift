/// Counters a send engine keeps while it runs. Plain integers in a struct the
/// engine owns: no locks, no allocation on the hot path.
public struct SenderStatistics: Sendable, Equatable {
    /// Data datagrams the kernel accepted (failed sends excluded).
    public var datagrams: UInt64 = 0
    /// UDP payload bytes of those datagrams, headers included.
    public var bytes: UInt64 = 0
    /// Send operations submitted (one per GSO super-buffer), END and retries included.
    public var sends: UInt64 = 0
    /// SEND_ZC notifications received.
    public var notifications: UInt64 = 0
    /// Notifications whose usage report says the kernel copied the data anyway.
    public var copied: UInt64 = 0
    /// Sends that failed, by errno.
    public var errors: [Int32: UInt64] = [:]
    /// Datagrams lost to failed sends (the receiver will count them lost).
    public var datagramsFailed: UInt64 = 0
    /// Sends retried after a transient error (ENOBUFS, EAGAIN, ENOMEM).
    public var retries: UInt64 = 0
    /// END datagrams sent.
    public var endsSent: UInt64 = 0
    /// Slots recycled before their notification (test-only hazard mode).
    public var recycledEarly: UInt64 = 0
    /// Reliable streams: repair sends the kernel refused (the receiver NAKs them again).
    public var repairErrors: UInt64 = 0
    /// `--engine auto`: when and why the stream left SEND_ZC for copying sends (nil: it never did).
    public var switchedToCopy: CopySwitch?

    /// All counters zero.
    public init() {}

    /// `--engine auto` left zero copy: the kernel's notifications said it copied anyway.
    public struct CopySwitch: Sendable, Equatable {
        /// Seconds after the stream started.
        public var afterSeconds: Double
        /// Notifications seen when it switched, and how many of them reported a copy.
        public var notifications: UInt64
        /// Of ``notifications``, those whose usage report said "copied".
        public var copied: UInt64
        /// One line for the summary and JSON.
        public var reason: String {
            "\(copied) of the first \(notifications) SEND_ZC notifications reported that the kernel copied the data "
                + "(a local destination or a device without scatter-gather): copying sends cost less"
        }
    }

    /// Failed sends, all errnos together.
    public var errorCount: UInt64 { errors.values.reduce(0, +) }
}
