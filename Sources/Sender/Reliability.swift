import StreamProtocol
import ZCSystem

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
    /// A multicast destination (SPEC §13.11): the group's receivers, who must answer before
    /// the stream goes beyond its first slot, and what happens to one that falls behind.
    public var group = GroupPolicy()

    public init() {}
}

/// How a reliable stream to a multicast group treats its receivers (SPEC §13.11,
/// `zc-send --min-receivers/--receivers/--on-slow-receiver`). Unused for unicast.
public struct GroupPolicy: Equatable, Sendable {
    /// What a receiver that stops answering, or alone holds the window back, gets.
    public enum SlowReceiver: String, CaseIterable, Sendable {
        /// Dropped from the group (reported with the ranges it lacks); the others go on.
        case drop
        /// Waited for: the group goes at its pace, up to the sender deadline.
        case wait
    }

    /// Receivers that must have answered (STATUS) before more than the first slot is sent.
    public var minReceivers = 1
    /// How long to wait for ``minReceivers`` (or every named receiver) before giving up.
    public var joinTimeoutNanoseconds: UInt64 = 10_000_000_000
    /// A closed group: only these addresses (any port) are receivers; nil: whoever answers.
    public var named: [IPAddress]?
    public var slowReceiver = SlowReceiver.drop
    /// A live receiver silent this long, or alone holding the sender back this long, is slow.
    public var receiverTimeoutNanoseconds: UInt64 = 2_000_000_000
    /// Receivers tracked at most (feedback from more is rejected as `other_receiver`).
    public var maxReceivers = 64

    public init() {}

    /// Receivers the stream waits for before it goes beyond its first slot.
    public var required: Int { max(minReceivers, named?.count ?? 0) }
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
    /// A multicast stream: every receiver's outcome (nil for unicast).
    public var receivers: [ReceiverOutcome]?
    /// A multicast stream: receivers required before the stream went beyond its first slot.
    public var minReceivers = 0
    /// A multicast stream the sender gave up on as a whole: why (the group never formed, or emptied).
    public var groupReason: String?

    public init() {}
}

/// One receiver of a reliable multicast stream, as its sender saw it.
public struct ReceiverOutcome: Equatable, Sendable {
    public enum State: String, Sendable {
        /// Said `complete`: it holds every byte.
        case delivered
        /// Dropped from the group (silent, or holding the others back): ``reason`` says which.
        case dropped
        /// The receiver's own deadline passed (its STATUS said it gave up), or the sender's did.
        case gaveUp = "gave_up"
        /// Named by `--receivers` and never heard.
        case missing
        /// First heard when data it lacked was already released by the others' acknowledgements.
        case late
    }

    /// Where its feedback came from (nil: a named receiver never heard).
    public var address: SocketAddress?
    /// The named address of a `missing` receiver.
    public var namedAddress: IPAddress?
    /// Its address as the summary and stderr name it (the named one when never heard).
    public var addressText: String { address?.description ?? namedAddress?.description ?? "?" }
    public var receiverID: UInt64 = 0
    public var state = State.gaveUp
    public var reason: String?
    /// Every sequence number below it arrived there.
    public var acknowledged: UInt64 = 0
    public var statusReceived: UInt64 = 0
    public var naksReceived: UInt64 = 0
    public var rttMinNanoseconds: UInt64?
    /// What it never acknowledged (empty when delivered).
    public var unacknowledged: [ClosedRange<UInt64>] = []
    /// Its REPORT, when one came back.
    public var report: StreamReport?

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
    /// A keyed stream (SPEC §14.4): feedback that failed checks 1–10 (structure, kind, key
    /// id, tag under its origin's key, replay, origin ≠ the receiver id in its body), by
    /// ``KeyedDatagram/Rejection/index``. Checked before every other reason here.
    public var unauthenticated = [UInt64](repeating: 0, count: KeyedDatagram.Rejection.allCases.count)

    public init() {}
    /// Total of ``unauthenticated``.
    public var unauthenticatedTotal: UInt64 { unauthenticated.reduce(0, +) }
    public var total: UInt64 { foreign + malformed + unknownStream + otherReceiver + rateLimited + impossible + unauthenticatedTotal }
}
