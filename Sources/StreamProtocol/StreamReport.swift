/// The REPORT datagram (SPEC §12): a receiver's verdict on one stream, sent back to the
/// stream's source. Version 2 of the wire format defines it; DATA and END keep version 1
/// (a datagram carries the lowest version that defines its kind, SPEC §4), so a receiver
/// of streams rejects a REPORT (`unsupported_version`) and two receivers cannot feed each
/// other. Not on any hot path: encoding and decoding use plain arrays.
public struct StreamReport: Equatable, Sendable {
    /// The version byte of a REPORT.
    public static let version: UInt8 = 2
    /// The flag byte of a REPORT (its only valid value).
    public static let flag: UInt8 = 0x08
    /// Bytes of the body before the lost ranges, in this version. Later versions may append
    /// counters before the ranges and raise the body's `fixed length` field; readers find the
    /// ranges at that field's offset and ignore counters they do not know.
    public static let fixedBodyLength = 208
    /// Lost ranges a REPORT lists at most (as the receiver's report does, SPEC §9.4).
    public static let maxRanges = 32
    /// The smallest REPORT (no ranges): 48 + 208 bytes.
    public static let minimumLength = DatagramHeader.size + fixedBodyLength
    /// The largest REPORT: every range listed.
    public static let maximumLength = minimumLength + 16 * maxRanges

    public var streamID: UInt64
    /// The receiver's CLOCK_REALTIME when it sent the REPORT, ns.
    public var timestampNanoseconds: UInt64 = 0
    /// The receiver's verdict against its own limits (--max-loss, --max-corrupt, exactness).
    public var pass = true
    public var endSeen = false
    public var complete = false
    public var exact = true
    public var joinedLate = false
    /// State bit 0x10: the receiver writes the stream to an output (`--output`) and that
    /// output is not the whole stream: a hole, no END (tail unknown), or a byte that arrived
    /// but is not safely in the file. The verdict is then fail.
    public var outputIncomplete = false
    public var received: UInt64 = 0
    public var unique: UInt64 = 0
    public var uniquePayloadBytes: UInt64 = 0
    public var expectedDatagrams: UInt64 = 0
    public var expectedPayloadBytes: UInt64 = 0
    public var lost: UInt64 = 0
    public var lostRangeCount: UInt64 = 0
    public var reordered: UInt64 = 0
    public var maxReorderDistance: UInt64 = 0
    public var duplicates: UInt64 = 0
    public var late: UInt64 = 0
    public var beyondEnd: UInt64 = 0
    public var afterEnd: UInt64 = 0
    public var corrupt: UInt64 = 0
    /// Datagrams the receiver's socket buffer dropped while the stream was open (all
    /// streams of that socket: the kernel does not say whose they were).
    public var kernelDrops: UInt64 = 0
    /// One-way latency samples; the latency fields mean nothing when 0.
    public var latencySamples: UInt64 = 0
    public var latencyMinNanoseconds: Int64 = 0
    public var latencyP50Nanoseconds: Int64 = 0
    public var latencyP99Nanoseconds: Int64 = 0
    public var latencyP999Nanoseconds: Int64 = 0
    public var latencyMaxNanoseconds: Int64 = 0
    /// Outages: loss ranges (= `lostRangeCount`), the longest in sequence numbers and in
    /// send-time nanoseconds, and the send time from the first datagram to the last.
    public var gaps: UInt64 = 0
    public var longestGapDatagrams: UInt64 = 0
    public var longestGapNanoseconds: UInt64 = 0
    public var firstToLastNanoseconds: UInt64 = 0
    /// The first lost ranges (at most ``maxRanges``), inclusive.
    public var lostRanges: [ClosedRange<UInt64>] = []
    /// A reliable stream's counters (SPEC §13.8: the 240-byte form); nil for a plain stream.
    public var reliable: ReliableCounters? = nil

    /// What a REPORT of a reliable stream adds (SPEC §13.8), at body offsets 208–239.
    public struct ReliableCounters: Equatable, Sendable {
        /// Distinct numbers whose first intact arrival was a repair.
        public var repaired: UInt64 = 0
        /// Repairs of numbers already held (never a second byte).
        public var repairDuplicates: UInt64 = 0
        /// NAK and STATUS datagrams the receiver sent for the stream.
        public var naksSent: UInt64 = 0
        public var statusSent: UInt64 = 0
        public init(repaired: UInt64 = 0, repairDuplicates: UInt64 = 0, naksSent: UInt64 = 0, statusSent: UInt64 = 0) {
            self.repaired = repaired; self.repairDuplicates = repairDuplicates; self.naksSent = naksSent; self.statusSent = statusSent
        }
    }
    /// The body's fixed part of a reliable stream's REPORT (SPEC §13.8).
    public static let reliableBodyLength = 240

    public init(streamID: UInt64) { self.streamID = streamID }

    /// Why bytes are not a REPORT (SPEC §12.3), in check order.
    public enum Rejection: String, Error, CaseIterable, Sendable {
        case tooShort = "too_short"
        case badMagic = "bad_magic"
        case notReport = "not_report"
        case badHeaderLength = "bad_header_length"
        case badFlags = "bad_flags"
        case lengthMismatch = "length_mismatch"
        case badChecksum = "bad_checksum"
        case badReport = "bad_report"
    }

    // Wire order of the body's fields (computed: key paths are not Sendable).
    private static var counterOrder: [WritableKeyPath<StreamReport, UInt64>] { [
        \.received, \.unique, \.uniquePayloadBytes, \.expectedDatagrams, \.expectedPayloadBytes, \.lost,
        \.lostRangeCount, \.reordered, \.maxReorderDistance, \.duplicates, \.late, \.beyondEnd, \.afterEnd,
        \.corrupt, \.kernelDrops, \.latencySamples,
    ] }
    // Wire order of the body's fields (computed: key paths are not Sendable).
    private static var latencyOrder: [WritableKeyPath<StreamReport, Int64>] { [
        \.latencyMinNanoseconds, \.latencyP50Nanoseconds, \.latencyP99Nanoseconds, \.latencyP999Nanoseconds,
        \.latencyMaxNanoseconds,
    ] }
    // Wire order of the body's fields (computed: key paths are not Sendable).
    private static var outageOrder: [WritableKeyPath<StreamReport, UInt64>] { [
        \.gaps, \.longestGapDatagrams, \.longestGapNanoseconds, \.firstToLastNanoseconds,
    ] }

    /// The sealed datagram, listing at most `maxRanges` ranges and no more than fit in
    /// `limit` bytes (the anti-amplification cap: never more than the stream sent). nil
    /// when even a REPORT without ranges exceeds `limit`.
    public func encoded(limit: Int = StreamReport.maximumLength) -> [UInt8]? {
        let fixed = reliable == nil ? Self.fixedBodyLength : Self.reliableBodyLength
        let minimum = DatagramHeader.size + fixed
        guard limit >= minimum else { return nil }
        let ranges = Array(lostRanges.prefix(min(Self.maxRanges, (limit - minimum) / 16)))
        var body: [UInt8] = []
        body.reserveCapacity(fixed + 16 * ranges.count)
        func u16(_ v: UInt16) { body.append(UInt8(v >> 8)); body.append(UInt8(v & 0xFF)) }
        func u64(_ v: UInt64) { for shift in stride(from: 56, through: 0, by: -8) { body.append(UInt8((v >> UInt64(shift)) & 0xFF)) } }
        u16(UInt16(fixed))
        body.append(pass ? 0 : 1)
        body.append((endSeen ? 0x01 : 0) | (complete ? 0x02 : 0) | (exact ? 0x04 : 0) | (joinedLate ? 0x08 : 0) | (outputIncomplete ? 0x10 : 0))
        u16(UInt16(ranges.count))
        u16(0)
        for k in Self.counterOrder { u64(self[keyPath: k]) }
        for k in Self.latencyOrder { u64(UInt64(bitPattern: self[keyPath: k])) }
        for k in Self.outageOrder { u64(self[keyPath: k]) }
        if let c = reliable { for v in [c.repaired, c.repairDuplicates, c.naksSent, c.statusSent] { u64(v) } }
        for r in ranges { u64(r.lowerBound); u64(r.upperBound) }
        var out = [UInt8](repeating: 0, count: DatagramHeader.size + body.count)
        out.withUnsafeMutableBytes { p in
            let h = DatagramHeader(flags: DatagramFlags(rawValue: Self.flag), streamID: streamID, sequence: 0, offset: 0,
                                   timestampNanoseconds: timestampNanoseconds, payloadLength: UInt32(body.count))
            h.write(to: p.baseAddress!)
            p.storeBytes(of: Self.version, toByteOffset: 4, as: UInt8.self)
            body.withUnsafeBytes { p.baseAddress!.advanced(by: DatagramHeader.size).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            Datagram.seal(p.baseAddress!, length: p.count)
        }
        return out
    }

    /// Reads and checks a REPORT (SPEC §12.3): any other datagram is a rejection.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> Result<StreamReport, Rejection> {
        let n = bytes.count
        guard n >= DatagramHeader.size, let p = bytes.baseAddress else { return .failure(.tooShort) }
        guard UInt32(bigEndian: p.loadUnaligned(as: UInt32.self)) == DatagramHeader.magic else { return .failure(.badMagic) }
        guard p.load(fromByteOffset: 4, as: UInt8.self) == version else { return .failure(.notReport) }
        let h = DatagramHeader(reading: p)
        let hl = Int(h.headerLength)
        guard hl >= DatagramHeader.size, hl % 8 == 0, hl <= n else { return .failure(.badHeaderLength) }
        guard h.flags.rawValue == flag else { return .failure(.badFlags) }
        guard hl + Int(h.payloadLength) == n else { return .failure(.lengthMismatch) }
        guard Datagram.computeChecksum(p, length: n) == h.checksum else { return .failure(.badChecksum) }
        let body = p + hl
        let bodyLength = n - hl
        func u64(_ at: Int) -> UInt64 { UInt64(bigEndian: body.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        guard bodyLength >= fixedBodyLength else { return .failure(.badReport) }
        let fixed = Int(UInt16(bigEndian: body.loadUnaligned(as: UInt16.self)))
        let verdict = body.load(fromByteOffset: 2, as: UInt8.self)
        let state = body.load(fromByteOffset: 3, as: UInt8.self)
        let listed = Int(UInt16(bigEndian: body.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        guard fixed >= fixedBodyLength, fixed % 8 == 0, verdict <= 1, listed <= maxRanges,
              bodyLength == fixed + 16 * listed else { return .failure(.badReport) }
        var r = StreamReport(streamID: h.streamID)
        r.timestampNanoseconds = h.timestampNanoseconds
        r.pass = verdict == 0
        r.endSeen = state & 0x01 != 0
        r.complete = state & 0x02 != 0
        r.exact = state & 0x04 != 0
        r.joinedLate = state & 0x08 != 0
        r.outputIncomplete = state & 0x10 != 0
        var at = 8
        for k in counterOrder { r[keyPath: k] = u64(at); at += 8 }
        for k in latencyOrder { r[keyPath: k] = Int64(bitPattern: u64(at)); at += 8 }
        for k in outageOrder { r[keyPath: k] = u64(at); at += 8 }
        if fixed >= reliableBodyLength {
            r.reliable = ReliableCounters(repaired: u64(at), repairDuplicates: u64(at + 8), naksSent: u64(at + 16), statusSent: u64(at + 24))
        }
        at = fixed
        for _ in 0..<listed {
            let first = u64(at), last = u64(at + 8)
            guard first <= last else { return .failure(.badReport) }
            r.lostRanges.append(first...last)
            at += 16
        }
        return .success(r)
    }

    /// ``decode(_:)`` for an array.
    public static func decode(_ bytes: [UInt8]) -> Result<StreamReport, Rejection> {
        bytes.withUnsafeBytes { decode($0) }
    }
}
