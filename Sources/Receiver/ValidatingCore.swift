import StreamProtocol
import ZCSystem

/// The receive-side heart, shared by every receive engine: validates each
/// datagram and charges it to its stream. No allocation per datagram: streams are
/// created once (bounded by `maxStreams`), and the last stream hit is cached
/// because consecutive datagrams almost always belong to the same stream.
public struct ValidatingCore: Sendable {
    public static let defaultMaxStreams = 1024
    public let maxStreams: Int
    public private(set) var streams: [StreamState] = []
    public private(set) var statistics = ReceiverStatistics()
    private var index: [UInt64: Int] = [:]
    private var lastID: UInt64 = 0
    private var lastIndex = -1
    /// Monotonic time of the first and latest intact data datagram.
    public private(set) var firstDataNanoseconds: UInt64 = 0
    public private(set) var lastDataNanoseconds: UInt64 = 0
    /// Streams whose END has arrived.
    public private(set) var streamsEnded = 0

    public init(maxStreams: Int = ValidatingCore.defaultMaxStreams) {
        self.maxStreams = maxStreams
        streams.reserveCapacity(min(maxStreams, 64))
    }

    @inline(__always)
    private mutating func lookup(_ id: UInt64, create: Bool) -> Int? {
        if id == lastID && lastIndex >= 0 { return lastIndex }
        if let i = index[id] { lastID = id; lastIndex = i; return i }
        guard create else { return nil }
        guard streams.count < maxStreams else { return nil }
        streams.append(StreamState(streamID: id))
        let i = streams.count - 1
        index[id] = i
        lastID = id; lastIndex = i
        return i
    }

    /// Validates one datagram received at `now` (monotonic) / `wallNow` (realtime).
    @inline(__always)
    public mutating func process(_ p: UnsafeRawPointer, length: Int, now: UInt64, wallNow: UInt64) {
        statistics.datagramsSeen &+= 1
        switch Datagram.validate(p, length: length) {
        case .valid(let h):
            guard let i = lookup(h.streamID, create: true) else {
                statistics.tooManyStreams &+= 1
                return
            }
            if h.flags.contains(.end) {
                if streams[i].endsReceived == 0 {
                    streams[i].expected = EndOfStream(reading: p + Int(h.headerLength))
                    streamsEnded += 1
                }
                streams[i].endsReceived &+= 1
                return
            }
            let payload = p + Int(h.headerLength)
            if h.flags.contains(.pattern),
               PayloadPattern.firstMismatch(payload, count: Int(h.payloadLength), streamID: h.streamID, offset: h.offset) != nil {
                streams[i].patternMismatches &+= 1
                return
            }
            streams[i].tracker.record(h.sequence)
            streams[i].datagrams &+= 1
            streams[i].bytes &+= UInt64(length)
            if streams[i].endsReceived > 0 { streams[i].afterEnd &+= 1 }
            if streams[i].firstArrivalNanoseconds == 0 { streams[i].firstArrivalNanoseconds = now }
            streams[i].lastArrivalNanoseconds = now
            let latency = Int64(bitPattern: wallNow &- h.timestampNanoseconds)
            if latency < streams[i].latencyMin { streams[i].latencyMin = latency }
            if latency > streams[i].latencyMax { streams[i].latencyMax = latency }
            streams[i].latencySum &+= latency
            streams[i].latencySamples &+= 1
            if firstDataNanoseconds == 0 { firstDataNanoseconds = now }
            lastDataNanoseconds = now
        case .badChecksum(let h, _):
            if let i = lookup(h.streamID, create: false) {
                streams[i].checksumErrors &+= 1
            } else {
                statistics.corruptUnattributed &+= 1
            }
        case .rejected(let reason):
            statistics.invalid[reason.index] &+= 1
        }
    }

    public mutating func noteReceive(calls: UInt64 = 1, buffers: UInt64, coalesced: UInt64) {
        statistics.receiveCalls &+= calls
        statistics.buffers &+= buffers
        statistics.coalescedBuffers &+= coalesced
    }

    public mutating func noteKernelDrops(_ cumulative: UInt64) {
        if cumulative > statistics.kernelDrops { statistics.kernelDrops = cumulative }
    }

    /// True when `count` streams have ended and all are complete.
    public func allComplete(streams count: Int) -> Bool {
        streamsEnded >= count && streams.lazy.filter { $0.expected != nil }.allSatisfy(\.isComplete)
    }
}

extension Datagram.Rejection {
    /// Position in `allCases`, for counter arrays.
    @inline(__always) public var index: Int {
        switch self {
        case .tooShort: return 0
        case .badMagic: return 1
        case .unsupportedVersion: return 2
        case .badHeaderLength: return 3
        case .badFlags: return 4
        case .lengthMismatch: return 5
        case .badEnd: return 6
        }
    }
}
