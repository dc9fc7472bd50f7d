import StreamProtocol
import ZCSystem

/// How a receive thread reads its socket. The raw value is the `zc-recv --engine` name.
public enum ReceiveEngineKind: String, CaseIterable, Sendable {
    /// io_uring multishot RECVMSG into a provided buffer ring (with UDP GRO when enabled).
    case uring
    /// Batched `recvmmsg`, with UDP GRO when enabled.
    case recvmmsg
}

/// Everything one receiver run needs.
public struct ReceiverConfiguration: Sendable {
    /// The faster engine on these machines (see README: measured side by side).
    public static let defaultEngine: ReceiveEngineKind = .recvmmsg
    /// The address to bind; port 0 takes an ephemeral port (see ``ReceiverReport/boundAddress``).
    public var listen: SocketAddress
    /// The receive engine every thread uses.
    public var engine: ReceiveEngineKind = ReceiverConfiguration.defaultEngine
    /// Ask the kernel to coalesce datagrams of a flow (UDP_GRO) and split them here.
    public var gro: Bool = true
    /// Socket receive buffer to request (SO_RCVBUFFORCE when permitted).
    public var receiveBufferBytes: Int32 = 256 << 20
    /// Stop after this many streams ended (and are complete, or `linger` passed).
    public var streams: Int?
    /// Stop when nothing arrived for this long, once something has.
    public var idleTimeoutNanoseconds: UInt64 = 5_000_000_000
    /// Stop after this long in any case.
    public var timeoutNanoseconds: UInt64?
    /// After the last expected END: how long to wait for stragglers.
    public var lingerNanoseconds: UInt64 = 300_000_000
    /// Reliable streams (SPEC §13): reorder grace, STATUS interval, NAK spacing, deadline.
    public var reliableTiming = ReliableReceiveTiming()
    /// Streams tracked per receive thread; valid datagrams of further streams are counted
    /// apart (``ReceiverStatistics/streamsRefusedDatagrams``, not invalid) and not accounted.
    public var maxStreams: Int = ValidatingCore.defaultMaxStreams
    /// Receive threads, each with its own SO_REUSEPORT socket, engine and core.
    public var threads: Int = 1
    /// CPUs to pin the receive threads to, round robin (nil: not pinned).
    public var cpus: [Int]?
    /// Where to write the streams' payload (nil: nowhere). A file output is complete and on
    /// disk when the run ends: every file (and its directory) is fsynced before
    /// ``StreamReceiver/run(_:progressIntervalNanoseconds:ready:progress:)`` returns, and a
    /// byte that arrived but is not in the file (a failed write, an unopenable or deleted
    /// file, beyond ``outputMaxBytes``) is reported by range (``StreamOutputReport``,
    /// ``ReceiverReport/outputOK``). A process that sets RLIMIT_FSIZE should ignore SIGXFSZ
    /// (zc-recv does), so a write past it fails with EFBIG instead of killing the process.
    public var output: OutputDestination?
    /// The default ``outputMaxBytes``: 1 TiB. Far above any stream a run writes to these
    /// disks (80 GB free; 1 TiB is an hour at 300 MB/s), far below what one stray or hostile
    /// offset (up to 2^64) would make the file.
    public static let defaultOutputMaxBytes: UInt64 = 1 << 40
    /// No stream byte at or beyond this offset is written (nil: no limit); such bytes are
    /// counted and reported by range (``StreamOutputReport/beyondLimit``), as are bytes
    /// beyond the stream's END total. Bounds a file's size whatever offsets arrive.
    public var outputMaxBytes: UInt64? = ReceiverConfiguration.defaultOutputMaxBytes
    /// During the run, fdatasync every output file at most this often (from the coordinating
    /// thread, never a receive thread), bounding what a crash can lose. nil (the default):
    /// only the final fsync at the end of the run.
    public var fsyncIntervalNanoseconds: UInt64?
    /// The application's view of the data: called for every new intact datagram,
    /// with its payload valid only during the call (see ``DeliveredDatagram``).
    public var delivery: DeliveryHandler?
    /// Server mode (`zc-recv --server`): run until stopped (signal or ``timeoutNanoseconds``),
    /// taking any number of streams at once and one after another. Each stream is finished
    /// ``lingerNanoseconds`` after its END, or after ``idleTimeoutNanoseconds`` without a
    /// datagram of its own; it is then reported (the `finished` callback of
    /// ``StreamReceiver/run(_:progressIntervalNanoseconds:ready:progress:metrics:finished:)``)
    /// and its state freed, so memory stays bounded under any number of streams.
    /// ``streams`` does not apply.
    public var server = false
    /// Accept datagrams only from these sources (`--allow`); others are dropped before
    /// validation, counted apart by host (``ValidatingCore/refusedSources``), never create
    /// a stream, are never written nor answered with a REPORT. nil: every source.
    public var allowList: AllowList?
    /// Send each stream's REPORT (SPEC §12) back to its source when it finishes (a server)
    /// or when the run ends. Never for a multicast group.
    public var reports = true
    /// The limits a stream's REPORT verdict (and zc-recv's exit status) is judged by.
    public var verdictLimits = StreamVerdictLimits()
    /// Keyed streams (SPEC §14, `zc-recv --key`): only datagrams sealed under this secret are
    /// taken (the rest are counted unauthenticated), and REPORTs go out sealed. nil: plain.
    public var key: StreamSecret? = nil
    /// This receiver's id as the origin of the keyed datagrams it seals (a plain stream's
    /// REPORT): random, not 0. A reliable stream's STATUS, NAK and REPORT carry that stream's
    /// own receiver id (SPEC §13.1), which the sender knows it by.
    public var keyedReceiverID: UInt64 = UInt64.random(in: 1...UInt64.max)
    /// How often one source host may get a REPORT.
    public var reportRateLimiter = ReportRateLimiter()
    /// Multicast: when ``listen`` is a group address, the receiver joins it (see
    /// ``MulticastReceiveOptions``); ignored for a unicast address.
    public var multicast = MulticastReceiveOptions()

    /// True when ``listen`` is a multicast group: the receiver joins it.
    public var isMulticast: Bool { listen.isMulticast }

    /// Whether stream `s` gets a REPORT (with ``reports`` on): always on unicast; from a
    /// group's receiver only for a reliable stream, whose sender waits for every receiver's
    /// (a plain stream's sender would get one from every member).
    func reports(_ s: StreamState) -> Bool { !isMulticast || s.reliable }

    /// A configuration that listens on `listen` with every other setting at its default.
    public init(listen: SocketAddress) { self.listen = listen }

    /// A setting outside its allowed range: one line naming the property and the range
    /// (a CLI names its flags instead through ``describe(naming:)``).
    public enum Invalid: ConfigurationError, Equatable {
        case threads(Int)
        case streams(Int)
        case maxStreams(Int)
        case receiveBuffer(Int32)
        case idleTimeout
        case timeout
        case cpus
        case multicastThreads
        case multicastOnly(String)
        case sourceFamily
        case outputMaxBytes
        case fsyncInterval

        /// The configuration property at fault, as the library names it.
        public var property: String {
            switch self {
            case .threads, .multicastThreads: return "threads"
            case .streams: return "streams"
            case .maxStreams: return "maxStreams"
            case .receiveBuffer: return "receiveBufferBytes"
            case .idleTimeout: return "idleTimeoutNanoseconds"
            case .timeout: return "timeoutNanoseconds"
            case .outputMaxBytes: return "outputMaxBytes"
            case .fsyncInterval: return "fsyncIntervalNanoseconds"
            case .cpus: return "cpus"
            case .multicastOnly(let property): return property
            case .sourceFamily: return "multicast.source"
            }
        }

        /// One line naming the property (through `name`), the value and the allowed range.
        public func describe(naming name: (String) -> String) -> String {
            let p = name(property)
            switch self {
            case .threads(let n): return "\(p) \(n) is out of range: allowed 1...64"
            case .streams(let n): return "\(p) \(n) is out of range: allowed 1...65536"
            case .maxStreams(let n): return "\(p) \(n) is out of range: allowed 1...65536"
            case .receiveBuffer(let n): return "\(p) \(n) is out of range: allowed 1 byte to 2G"
            case .idleTimeout, .timeout, .fsyncInterval: return "\(p) must be positive"
            case .outputMaxBytes: return "\(p) must be positive (or none for no limit)"
            case .cpus: return "\(p) must list at least one CPU, each from 0 to the machine's last"
            case .multicastThreads: return "\(p) must be 1 for a multicast group: every socket of the group gets every datagram"
            case .multicastOnly: return "\(p) applies only to a multicast group address (224.0.0.0/4 or ff00::/8)"
            case .sourceFamily: return "\(p) and the group must both be IPv4 or both IPv6"
            }
        }
    }

    /// Checks every setting against its allowed range. ``StreamReceiver/run(_:progressIntervalNanoseconds:ready:progress:)``
    /// assumes a configuration that passed.
    public func validate() throws(Invalid) {
        guard (1...64).contains(threads) else { throw .threads(threads) }
        if let streams, !(1...65_536).contains(streams) { throw .streams(streams) }
        guard (1...65_536).contains(maxStreams) else { throw .maxStreams(maxStreams) }
        guard receiveBufferBytes > 0 else { throw .receiveBuffer(receiveBufferBytes) }
        guard idleTimeoutNanoseconds > 0 else { throw .idleTimeout }
        if let t = timeoutNanoseconds, t == 0 { throw .timeout }
        if let m = outputMaxBytes, m == 0 { throw .outputMaxBytes }
        if let f = fsyncIntervalNanoseconds, f == 0 { throw .fsyncInterval }
        if let cpus, cpus.isEmpty || cpus.contains(where: { $0 < 0 || $0 >= WorkerThread.availableCPUs }) { throw .cpus }
        if isMulticast {
            guard threads == 1 else { throw .multicastThreads }
            if let s = multicast.source, s.family != listen.family { throw .sourceFamily }
        } else {
            if multicast.interface != nil { throw .multicastOnly("multicast.interface") }
            if multicast.source != nil { throw .multicastOnly("multicast.source") }
        }
    }

    /// A configuration that has passed ``validate()``.
    public func validated() throws(Invalid) -> ReceiverConfiguration {
        try validate()
        return self
    }
}
