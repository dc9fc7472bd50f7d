import ZCSystem
import StreamProtocol

/// Which machinery moves the datagrams to the kernel.
public enum SendEngineKind: String, CaseIterable, Sendable, Codable {
    /// True for the engines that send with SEND_ZC (at least at first): `uring-zc`, `auto`.
    public var usesZeroCopy: Bool { self == .uringZC || self == .auto }

    /// io_uring SEND_ZC from registered buffers; a slot is reused only after its
    /// notification CQE, for the whole stream.
    case uringZC = "uring-zc"
    /// io_uring plain SEND (the kernel copies): the same ring machinery without zero copy.
    case uring = "uring"
    /// Adaptive: SEND_ZC from the registered pool while the kernel's notifications say it
    /// really zero-copied; once they report copies (a local destination, a device without
    /// scatter-gather: at least half of the first 32 or more), the stream switches to
    /// copying IORING_OP_SEND from the same pool, as the kernel's MSG_ZEROCOPY
    /// documentation recommends. ``SenderStatistics/switchedToCopy`` says when and why.
    /// The default.
    case auto = "auto"
    /// Batched `sendmmsg` (copies): the classic fast path, the baseline.
    case sendmmsg = "sendmmsg"
    /// Raw mode: whole Ethernet/IPv4/UDP frames in an AF_PACKET TX ring (needs
    /// `packetRing` options: the interface). One datagram per frame, or with GSO
    /// several that the kernel segments after the ring (PacketRingSegmentation).
    case packetRing = "packet-ring"
}

/// Generic segmentation offload: how many whole datagrams one send carries.
public enum GSOSetting: Equatable, Sendable, CustomStringConvertible {
    /// One datagram per send.
    case off
    /// As many whole datagrams as fit one send (``SenderConfiguration/segmentLimit(datagramSize:)``).
    case auto
    /// Exactly this many datagrams per send (1 up to the segment limit).
    case segments(Int)

    /// `off`, `auto`, or the segment count, as `--gso` takes it.
    public var description: String {
        switch self {
        case .off: return "off"
        case .auto: return "auto"
        case .segments(let n): return String(n)
        }
    }
}

/// What the sender does when the kernel refuses a send for good (ECONNREFUSED
/// because the receiver is gone, EHOSTUNREACH, ...). Transient shortages
/// (ENOBUFS, EAGAIN) are always retried.
public enum ErrorPolicy: String, CaseIterable, Sendable {
    /// Count it (the receiver will see those datagrams lost) and keep sending.
    case `continue`
    /// Count it, stop producing, send END, drain and report.
    case stop
}

/// When a stream ends.
public struct StreamLimit: Equatable, Sendable {
    /// Stop after this many data datagrams (sequence numbers).
    public var datagrams: UInt64?
    /// Stop after this many payload bytes; the last datagram may be short.
    public var payloadBytes: UInt64?
    /// Stop after this long, monotonic.
    public var durationNanoseconds: UInt64?

    /// A limit of whichever comes first; none at all runs until stopped or the source ends.
    public init(datagrams: UInt64? = nil, payloadBytes: UInt64? = nil, durationNanoseconds: UInt64? = nil) {
        self.datagrams = datagrams
        self.payloadBytes = payloadBytes
        self.durationNanoseconds = durationNanoseconds
    }
}

/// Target rate for pacing.
public enum Rate: Equatable, Sendable, CustomStringConvertible {
    /// UDP payload bits per second (headers of zcstream included, IP/UDP not), as iperf3 counts.
    case bitsPerSecond(Double)
    /// Datagrams per second.
    case packetsPerSecond(Double)

    /// The rate with its unit, e.g. `2000000000.0 bit/s`.
    public var description: String {
        switch self {
        case .bitsPerSecond(let b): return "\(b) bit/s"
        case .packetsPerSecond(let p): return "\(p) pkt/s"
        }
    }

    /// Parses `10G`, `800M`, `1.5g`, `500k`, `500kpps`, `2Mpps`, `12000` (bit/s).
    public static func parse(_ text: String) -> Rate? {
        var s = text.lowercased()
        var packets = false
        if s.hasSuffix("pps") { packets = true; s.removeLast(3) }
        else if s.hasSuffix("bps") { s.removeLast(3) }
        else if s.hasSuffix("bit/s") { s.removeLast(5) }
        var scale = 1.0
        if let last = s.last, let mult = ["k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12][String(last)] {
            scale = mult
            s.removeLast()
        }
        guard let value = Double(s), value.isFinite, value > 0 else { return nil }
        return packets ? .packetsPerSecond(value * scale) : .bitsPerSecond(value * scale)
    }
}

/// IORING_SETUP_SQPOLL for the io_uring engines (`zc-send --sqpoll`): the kernel's
/// submission thread spins on the queue while sends keep coming and sleeps after
/// `idleMilliseconds` without any. It costs a core: worth it when one is free and the
/// kernel's per-send work (the stack, the driver) is a large part of the sender's time.
public struct SubmissionPolling: Equatable, Sendable {
    /// The CPU to pin the kernel thread to; nil: the scheduler's choice.
    public var cpu: Int?
    /// Idle time before the kernel thread sleeps.
    public var idleMilliseconds: UInt32
    public init(cpu: Int? = nil, idleMilliseconds: UInt32 = 100) {
        self.cpu = cpu
        self.idleMilliseconds = idleMilliseconds
    }
}

/// Test-only damage the sender does on purpose, so tests can prove the receiver
/// detects it. Each count is exact: the receiver must report exactly that many.
public struct FaultInjection: Equatable, Sendable {
    /// Datagrams whose payload is altered after the checksum was computed.
    public var corrupt: Int = 0
    /// Sequence numbers never sent (their bytes are a hole in the stream).
    public var skip: Int = 0
    /// Adjacent pairs sent in swapped order.
    public var reorder: Int = 0
    /// Datagrams sent twice.
    public var duplicate: Int = 0

    /// No faults.
    public init() {}

    /// True when no fault is asked for.
    public var isEmpty: Bool { self == FaultInjection() }
}

/// How a stream reaches the wire, validated at construction: what a sender session, its
/// engine and the feedback channel read, the same for a pulled stream (``StreamSender``,
/// whose content and limits are a ``StreamContent``) and a pushed one (``OutboundStream``).
public struct SenderConfiguration: Sendable {
    /// Where the datagrams go.
    public var destination: SocketAddress
    /// Datagram size on the wire (UDP payload), header included.
    public var datagramSize: Int
    /// Datagrams per send (UDP GSO); ignored by the packet-ring engine.
    public var gso: GSOSetting
    /// The pacing target; nil sends as fast as possible.
    public var rate: Rate?
    /// How datagrams reach the kernel.
    public var engine: SendEngineKind
    /// Registered slots (each up to 64 KiB).
    public var poolSlots: Int
    /// Submission queue entries.
    public var ringDepth: Int
    /// io_uring engines: a kernel thread takes the submissions (SQPOLL) and runs the send
    /// path on its own core, leaving this thread only the filling. nil: this thread
    /// enters the kernel itself. Other engines ignore it (zc-send refuses the mix).
    public var submissionPolling: SubmissionPolling? = nil
    /// The stream id in every header; random unless given.
    public var streamID: UInt64
    /// How many END datagrams close the stream.
    public var endRepeats: Int
    /// Socket send buffer to request.
    public var sendBufferBytes: Int32
    /// What a failed send does to the run (the failure is counted either way).
    public var onError: ErrorPolicy = .continue
    /// Interface and addressing for `.packetRing` (ignored by the other engines).
    public var packetRing: PacketRingOptions? = nil
    /// Multicast destination with a socket engine: interface, hops, loop (see ``MulticastSendOptions``).
    public var multicast = MulticastSendOptions()
    /// After END, wait this long for the receiver's REPORT (SPEC §12) on the sending socket
    /// (packet-ring: a UDP socket bound to the frames' source port). nil: do not wait.
    /// Never for a multicast destination (every member could answer).
    public var reportTimeoutNanoseconds: UInt64? = nil
    /// Socket engines: the local address (and port, 0: any) the datagrams leave from
    /// (`zc-send --bind`, iperf3's `-B`). nil: the kernel's choice.
    public var bindAddress: SocketAddress? = nil
    /// Testing only: recycle a slot on the send CQE instead of the notification, and
    /// scribble over its payload at once as an application reusing its buffer would: the
    /// hazard zero copy must avoid (the receiver must detect it). An engine behaviour, so
    /// it is here and not in ``StreamContent/faults``. Only meaningful with `uring-zc`.
    public var recycleOnSendCompletion: Bool = false
    /// Socket engines: the IP traffic class (TOS byte; DSCP << 2) of every datagram, END
    /// included (IP_TOS / IPV6_TCLASS, set before the first send). nil: the kernel's default.
    public var trafficClass: UInt8? = nil
    /// A reliable stream (SPEC §13, `zc-send --reliable`): every datagram delivered or the
    /// ranges that never arrived named. Unicast, socket engines. nil: a plain stream.
    public var reliability: Reliability? = nil
    /// A keyed stream (SPEC §14, `zc-send --key`): every datagram carries an AES-256-GCM tag
    /// under a key derived from this secret, and the sender takes only a REPORT sealed by a
    /// receiver holding it. nil: a plain stream. Needs ``datagramSize`` ≥
    /// ``minimumKeyedDatagram``. With ``reliability``, STATUS and NAK are taken only sealed
    /// under a receiver's key too, and repairs are resealed with new packet numbers.
    public var key: StreamSecret? = nil
    /// With ``key``: DATA payloads are encrypted too (AES-256-GCM, suite 2), not only authenticated.
    public var encrypt: Bool = false
    /// The smallest datagram of a keyed stream: a keyed END (header, totals, trailer), so
    /// that END, sent as one datagram, is never split by GSO.
    public static let minimumKeyedDatagram = DatagramHeader.size + EndOfStream.payloadSize + AuthTrailer.size

    /// The sealing for this configuration's stream (nil without a key): a new one per call
    /// (its own counter), so a stream makes it once (``SenderSession/keying``).
    package var keying: StreamKeying? {
        key.map { StreamKeying(secret: $0, streamID: streamID, encrypt: encrypt) }
    }

    /// A setting out of range: the property, its value and the allowed range.
    public enum Invalid: ConfigurationError, Equatable {
        /// The datagram size is below the header (48) or above the family's UDP maximum.
        case datagramSize(Int, min: Int, max: Int)
        /// `.segments(n)` with `n` outside 1...max for this datagram size.
        case gsoSegments(Int, max: Int)
        /// Pool slots outside 2...65536.
        case poolSlots(Int)
        /// Ring depth outside 2...32768.
        case ringDepth(Int)
        /// No stream limit. Not thrown by the initializer (a stream without a limit runs until stopped).
        case noLimit

        /// One line naming the property (through `name`), the value and the allowed range.
        public func describe(naming name: (String) -> String) -> String {
            switch self {
            case .datagramSize(let s, let lo, let hi): return "\(name("datagramSize")) \(s) is out of range: allowed \(lo)...\(hi) bytes"
            case .gsoSegments(let n, let hi):
                return "\(name("gso")) \(n) is out of range: allowed 1...\(hi) segments for this \(name("datagramSize")) "
                    + "(64 KiB per send, at most 64 segments, none below 64 bytes)"
            case .poolSlots(let n): return "\(name("poolSlots")) \(n) is out of range: allowed 2...65536 slots"
            case .ringDepth(let n): return "\(name("ringDepth")) \(n) is out of range: allowed 2...32768 (a power of two is used)"
            case .noLimit: return "no stream limit"
            }
        }
    }

    /// The kernel's per-send GSO limits: 64 KiB of UDP payload and UDP_MAX_SEGMENTS (64).
    public static let maxGSOBytes = 65_507
    /// `UDP_MAX_SEGMENTS`: the most datagrams one GSO send may carry.
    public static let maxGSOSegments = 64

    /// A validated configuration. Settings without a parameter (``onError``,
    /// ``packetRing``, ``multicast``, ``reportTimeoutNanoseconds``...) take their defaults
    /// and may be set afterwards.
    ///
    /// - Throws: ``Invalid`` when the datagram size, pool, ring depth or GSO segment count is out of range.
    public init(destination: SocketAddress, datagramSize: Int = 1472, gso: GSOSetting = .auto,
                rate: Rate? = nil, engine: SendEngineKind = .auto,
                poolSlots: Int = 256, ringDepth: Int = 256, streamID: UInt64 = UInt64.random(in: 1...UInt64.max),
                endRepeats: Int = 3,
                sendBufferBytes: Int32 = 8 << 20) throws(Invalid) {
        let minSize = DatagramHeader.size
        let maxSize = destination.maxDatagramPayload
        guard datagramSize >= minSize, datagramSize <= maxSize else {
            throw .datagramSize(datagramSize, min: minSize, max: maxSize)
        }
        guard poolSlots >= 2, poolSlots <= 65536 else { throw .poolSlots(poolSlots) }
        guard ringDepth >= 2, ringDepth <= 32768 else { throw .ringDepth(ringDepth) }
        if case .segments(let n) = gso {
            let maxSegments = SenderConfiguration.segmentLimit(datagramSize: datagramSize)
            guard n >= 1, n <= maxSegments else { throw .gsoSegments(n, max: maxSegments) }
        }
        self.destination = destination
        self.datagramSize = datagramSize
        self.gso = gso
        self.rate = rate
        self.engine = engine
        self.poolSlots = poolSlots
        self.ringDepth = ringDepth
        self.streamID = streamID
        self.endRepeats = endRepeats
        self.sendBufferBytes = sendBufferBytes
    }

    /// Most segments one GSO send may carry at this datagram size. Datagrams
    /// shorter than an END datagram (64 bytes) get no GSO: the kernel would split
    /// the END itself at the segment size.
    public static func segmentLimit(datagramSize: Int) -> Int {
        guard datagramSize >= minGSODatagram else { return 1 }
        return max(1, min(maxGSOSegments, maxGSOBytes / datagramSize))
    }

    /// The smallest datagram size that gets GSO: 64 bytes, an END datagram's size.
    public static let minGSODatagram = DatagramHeader.size + EndOfStream.payloadSize

    /// Datagrams per send after resolving `auto`.
    public var segmentsPerSend: Int {
        if engine == .packetRing { return PacketRingSegmentation.choose(gso: gso, datagramSize: datagramSize).segments }
        switch gso {
        case .off: return 1
        case .auto: return SenderConfiguration.segmentLimit(datagramSize: datagramSize)
        case .segments(let n): return n
        }
    }
}

extension SenderConfiguration {
    /// Applies the source options (``bindAddress``, ``trafficClass``) to a freshly opened
    /// socket, before it connects or sends anything, so the first datagram has them too.
    package func applySourceOptions(to socket: borrowing UDPSocket) throws(SystemError) {
        if let trafficClass { try socket.setTrafficClass(trafficClass) }
        if let bindAddress { try socket.bind(to: bindAddress) }
    }
}
