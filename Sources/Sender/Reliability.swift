/// A reliable stream (SPEC §13, `zc-send --reliable`): the receiver acknowledges what it
/// holds (STATUS), names what it misses (NAK) and opens the window as it consumes; the
/// sender keeps every datagram in its registered slot until it is acknowledged and repairs a
/// NAKed one from that slot. The defaults are SPEC §13.10's.
public struct Reliability: Equatable, Sendable {
    /// Give up when no accepted STATUS or NAK has moved the acknowledgement for this long
    /// (SPEC §13.7, the sender deadline; `zc-send --give-up`).
    public var deadlineNanoseconds: UInt64 = 10_000_000_000
    /// Datagrams the sender may send before the first STATUS opens the window.
    public var initialWindow: UInt64 = 1024
    /// Most datagrams one NAK can make the sender repeat (K, no amplification).
    public var repairsPerNak: Int = 1024
    /// RTT before the first sample.
    public var initialRTTNanoseconds: UInt64 = 10_000_000
    /// Control datagrams (STATUS + NAK) accepted per second, and the burst (§13.9).
    public var controlRatePerSecond: Double = 4000
    public var controlBurst: Double = 400

    public init() {}
}

/// What a reliable stream's sender saw, in ``SenderReport/reliability``.
public struct ReliabilityReport: Equatable, Sendable {
    /// The receiver's STATUS said `complete`: every datagram up to END's total arrived.
    public var delivered = false
    /// The sender deadline passed (or the run was stopped) before delivery.
    public var gaveUp = false
    /// No STATUS or NAK arrived at all (a receiver without reliable streams drops version 3).
    public var noFeedback: Bool { statusReceived == 0 && naksReceived == 0 }
    /// The final cumulative acknowledgement: every sequence number below it arrived.
    public var acknowledged: UInt64 = 0
    /// Datagrams sent again from their slots (repairs), and their bytes.
    public var retransmittedDatagrams: UInt64 = 0
    public var retransmittedBytes: UInt64 = 0
    /// NAKs accepted, and how many of them made the sender repair at least one datagram.
    public var naksReceived: UInt64 = 0
    public var repairRounds: UInt64 = 0
    /// STATUS datagrams accepted.
    public var statusReceived: UInt64 = 0
    /// NAKed numbers not repaired at once: their slot's first send was still in the kernel
    /// (the receiver NAKs them again), or a repair of them was still within the hold-off.
    public var repairsDeferred: UInt64 = 0
    public var repairsHeldOff: UInt64 = 0
    /// NAKed numbers outside what was sent and not yet acknowledged (ignored).
    public var nakedOutside: UInt64 = 0
    /// Tail-loss probes: the last datagram sent again because the acknowledgement stalled
    /// with the receiver not having seen it (an outage swallowed the tail of the window).
    public var tailProbes: UInt64 = 0
    /// The loss response: epochs whose repairs said congestion (the rate was cut), and the
    /// lowest cap it set (nil: never cut).
    public var lossBackoffs: UInt64 = 0
    public var lowestCapBitsPerSecond: Double?
    /// Control datagrams dropped, by reason (SPEC §13.9).
    public var controlRejected = ControlRejections()
    /// RTT from STATUS echoes (SPEC §13.5): smallest and mean, nil without a sample.
    public var rttMinNanoseconds: UInt64?
    public var rttAverageNanoseconds: UInt64?
    /// Time production waited on the receiver's window or on slots held for acknowledgement.
    public var windowBlockedNanoseconds: UInt64 = 0
    /// Sequence numbers never acknowledged (empty when delivered), inclusive ranges.
    public var unacknowledged: [ClosedRange<UInt64>] = []

    public init() {}
}

/// Control datagrams a reliable sender dropped, by SPEC §13.9's reasons.
public struct ControlRejections: Equatable, Sendable {
    /// From an address other than the stream's destination.
    public var foreign: UInt64 = 0
    /// Failed SPEC §13.4's checks (not a STATUS/NAK, bad checksum, bad body).
    public var malformed: UInt64 = 0
    /// Another stream's id.
    public var unknownStream: UInt64 = 0
    /// Another receiver id than the stream's first.
    public var otherReceiver: UInt64 = 0
    /// Beyond the rate limit.
    public var rateLimited: UInt64 = 0
    /// Acknowledged data never sent.
    public var impossible: UInt64 = 0

    public init() {}
    public var total: UInt64 { foreign + malformed + unknownStream + otherReceiver + rateLimited + impossible }
}
