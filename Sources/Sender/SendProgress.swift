/// What a send engine tells its caller every progress interval and at the end.
public struct SendProgress: Sendable {
    /// Since the run started, monotonic.
    public var elapsedNanoseconds: UInt64
    /// Counters so far (summed over streams for ``MultiStreamSender``).
    public var statistics: SenderStatistics
    /// Slots (or frames) the kernel has not released yet.
    public var slotsInFlight: Int
    /// A reliable stream's acknowledgement and repairs so far (nil: plain streams only).
    public var reliable: ReliableProgress?
}

/// A reliable stream's state in a progress snapshot (summed over streams for totals).
public struct ReliableProgress: Sendable {
    /// Sequence numbers acknowledged (by every receiver still in a group).
    public var acknowledged: UInt64 = 0
    public var retransmittedDatagrams: UInt64 = 0
    public var naksReceived: UInt64 = 0
    public var statusReceived: UInt64 = 0
    /// Receivers heard, by state (a unicast stream has at most one).
    public var receiversLive = 0
    public var receiversDelivered = 0
    public var receiversDropped = 0
    /// Receivers out by their own give-up or heard too late.
    public var receiversOther = 0

    public init() {}

    public mutating func merge(_ o: ReliableProgress) {
        acknowledged &+= o.acknowledged; retransmittedDatagrams &+= o.retransmittedDatagrams
        naksReceived &+= o.naksReceived; statusReceived &+= o.statusReceived
        receiversLive += o.receiversLive; receiversDelivered += o.receiversDelivered
        receiversDropped += o.receiversDropped; receiversOther += o.receiversOther
    }
}

/// How a run ended.
public enum StopReason: String, Sendable, Codable {
    /// The ``StreamLimit`` was reached (or the source ended).
    case limit
    /// A stop was requested (`StopFlag`: SIGINT, SIGTERM).
    case signal
    /// A send failed for good with ``ErrorPolicy/stop`` in force, or the engine halted
    /// (packet-ring: the kernel rejected a frame).
    case error
}

/// Calls `report` every `intervalNanoseconds` from inside a run loop. The check is
/// one comparison per loop turn; the callback runs at most once per interval.
package struct ProgressTicker {
    let intervalNanoseconds: UInt64
    var next: UInt64
    let report: (SendProgress) -> Void

    /// A ticker whose first report is due `intervalNanoseconds` after `start` (monotonic);
    /// an interval of 0 never reports.
    package init(intervalNanoseconds: UInt64, start: UInt64, report: @escaping (SendProgress) -> Void) {
        self.intervalNanoseconds = intervalNanoseconds
        self.next = intervalNanoseconds == 0 ? .max : start + intervalNanoseconds
        self.report = report
    }

    @inline(__always)
    mutating func tick(now: UInt64, start: UInt64, statistics: @autoclosure () -> SenderStatistics, inFlight: Int,
                       reliable: @autoclosure () -> ReliableProgress? = nil) {
        guard now >= next else { return }
        next = now + intervalNanoseconds
        report(SendProgress(elapsedNanoseconds: now - start, statistics: statistics(), slotsInFlight: inFlight, reliable: reliable()))
    }
}
