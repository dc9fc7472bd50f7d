/// The NAK datagram (SPEC §13.6, version 3): a receiver of a reliable stream names the
/// sequence numbers it misses, for the sender to send again from the same buffers.
///
/// Layout: the 48-byte header (version 3, flags 0x80; sequence = ``cumulativeAck``, byte
/// offset = ``deliveredBytes``, timestamp = the receiver's send time) and a body: fixed
/// length u16 (24), 0 u8, 0 u8, feedback sequence u32, receiver id u64, range count u16,
/// 0 u16, 0 u32, then `count` ranges of u64 first, u64 last (inclusive), increasing,
/// disjoint and not adjacent, at or above the ack, below 2^64 − 1. 1 to 64 ranges:
/// 88 to 1096 bytes, so a NAK fits one datagram on any IPv6 path (1232 bytes).
///
/// Neither ``encode(ranges:into:capacity:)`` nor ``decode(_:)`` allocates: a decoded NAK
/// reads its ranges from the datagram (``ranges(in:)``).
public struct NakMessage: Equatable, Sendable {
    /// The version byte of a NAK.
    public static let version: UInt8 = DatagramHeader.reliableVersion
    /// The flag byte of a NAK (its only valid value).
    public static let flag: UInt8 = DatagramFlags.nak.rawValue
    /// Body bytes before the ranges in this version. A later revision may append fields and
    /// raise the body's fixed length (a multiple of 8); readers find the ranges at that offset.
    public static let fixedBodyLength = 24
    /// Ranges one NAK carries at most: 64, so the largest NAK (1096 bytes) leaves 136 bytes
    /// for header extensions within the 1232-byte UDP payload of a 1280-byte IPv6 path.
    public static let maxRanges = 64
    /// The smallest valid NAK: one range.
    public static let minimumLength = DatagramHeader.size + fixedBodyLength + 16
    /// The largest NAK this version writes.
    public static let maximumLength = DatagramHeader.size + fixedBodyLength + 16 * maxRanges
    /// K: DATA datagrams a sender retransmits in answer to one NAK at most (SPEC §13.6);
    /// what a NAK names beyond that waits for the receiver's next NAK.
    public static let repairLimit = 1024

    /// The stream's id.
    public var streamID: UInt64
    /// The receiver's CLOCK_REALTIME when it sent this NAK, ns.
    public var timestampNanoseconds: UInt64 = 0
    /// Every DATA sequence number below this one has been received intact (as in STATUS).
    public var cumulativeAck: UInt64 = 0
    /// Stream bytes below ``cumulativeAck``. Informative.
    public var deliveredBytes: UInt64 = 0
    /// The receiver's count of control datagrams sent for the stream before this one, wrapping.
    public var feedbackSequence: UInt32 = 0
    /// The receiver's random 64-bit id; never 0.
    public var receiverID: UInt64
    /// Ranges a decoded NAK carries (1...``maxRanges``); 0 before decoding.
    public private(set) var rangeCount = 0
    /// Where a decoded NAK's ranges start, from the datagram's first byte.
    public private(set) var rangesOffset = 0

    /// A NAK for `streamID` from the receiver `receiverID`, every other field zero.
    public init(streamID: UInt64, receiverID: UInt64) {
        self.streamID = streamID
        self.receiverID = receiverID
    }

    /// Bytes of a NAK with `ranges` ranges.
    public static func length(ranges: Int) -> Int { DatagramHeader.size + fixedBodyLength + 16 * ranges }

    /// Whether `ranges` may go in one NAK with this ack (SPEC §13.6): 1 to 64, each
    /// first ≤ last < 2^64 − 1, the first at or above the ack, each next one starting at
    /// least two above the previous last (disjoint, not adjacent).
    public static func rangesValid<C: Collection>(_ ranges: C, cumulativeAck: UInt64) -> Bool
        where C.Element == ClosedRange<UInt64> {
        let n = ranges.count
        guard n >= 1, n <= maxRanges else { return false }
        var floor: UInt64? = cumulativeAck // nil: the previous range reached 2^64 - 2, nothing can follow
        for r in ranges {
            guard let f = floor, r.upperBound != .max, r.lowerBound >= f else { return false }
            let (next, overflow) = r.upperBound.addingReportingOverflow(2)
            floor = overflow ? nil : next
        }
        return true
    }

    /// Writes the sealed NAK listing `ranges` at `p` (room for `capacity` bytes). Returns the
    /// length, or nil when the ranges break ``rangesValid(_:cumulativeAck:)``, ``receiverID``
    /// is 0, or the NAK does not fit. No allocation.
    public func encode<C: Collection>(ranges: C, into p: UnsafeMutableRawPointer, capacity: Int) -> Int?
        where C.Element == ClosedRange<UInt64> {
        let n = ranges.count
        let length = Self.length(ranges: n)
        guard receiverID != 0, length <= capacity, Self.rangesValid(ranges, cumulativeAck: cumulativeAck) else { return nil }
        ControlHeader.writeHead(p, flag: Self.flag, streamID: streamID, cumulativeAck: cumulativeAck,
                                deliveredBytes: deliveredBytes, timestamp: timestampNanoseconds,
                                bodyLength: length - DatagramHeader.size, fixedLength: Self.fixedBodyLength, state: 0,
                                feedbackSequence: feedbackSequence, receiverID: receiverID)
        let b = p + DatagramHeader.size
        b.storeBytes(of: UInt16(n).bigEndian, toByteOffset: 16, as: UInt16.self)
        b.storeBytes(of: UInt16(0), toByteOffset: 18, as: UInt16.self)
        b.storeBytes(of: UInt32(0), toByteOffset: 20, as: UInt32.self)
        var at = Self.fixedBodyLength
        for r in ranges {
            b.storeBytes(of: r.lowerBound.bigEndian, toByteOffset: at, as: UInt64.self)
            b.storeBytes(of: r.upperBound.bigEndian, toByteOffset: at + 8, as: UInt64.self)
            at += 16
        }
        Datagram.seal(p, length: length)
        return length
    }

    /// The sealed NAK as an array (nil as ``encode(ranges:into:capacity:)``).
    public func encoded(ranges: [ClosedRange<UInt64>]) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: Self.length(ranges: ranges.count))
        let n = out.withUnsafeMutableBytes { encode(ranges: ranges, into: $0.baseAddress!, capacity: $0.count) }
        return n == nil ? nil : out
    }

    /// Reads and checks a NAK (SPEC §13.4 and §13.6's body rules). Every range is checked
    /// before success: a malformed NAK is never half applied.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> Result<NakMessage, ControlRejection> {
        guard let p = bytes.baseAddress else { return .failure(.tooShort) }
        let h: DatagramHeader
        switch ControlHeader.check(p, count: bytes.count, flag: flag) {
        case .failure(let r): return .failure(r)
        case .success(let header): h = header
        }
        let hl = Int(h.headerLength)
        let b = p + hl
        let bodyLength = bytes.count - hl
        guard bodyLength >= fixedBodyLength else { return .failure(.badNak) }
        let fixed = Int(UInt16(bigEndian: b.loadUnaligned(as: UInt16.self)))
        let count = Int(UInt16(bigEndian: b.loadUnaligned(fromByteOffset: 16, as: UInt16.self)))
        var m = NakMessage(streamID: h.streamID, receiverID: ControlHeader.u64(b, 8))
        guard fixed >= fixedBodyLength, fixed % 8 == 0, m.receiverID != 0, count >= 1, count <= maxRanges,
              bodyLength == fixed + 16 * count else { return .failure(.badNak) }
        m.timestampNanoseconds = h.timestampNanoseconds
        m.cumulativeAck = h.sequence
        m.deliveredBytes = h.offset
        m.feedbackSequence = UInt32(bigEndian: b.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        m.rangeCount = count
        m.rangesOffset = hl + fixed
        var floor: UInt64? = h.sequence // nil: the previous range reached 2^64 - 2, nothing can follow
        for i in 0..<count {
            let first = ControlHeader.u64(b, fixed + 16 * i), last = ControlHeader.u64(b, fixed + 16 * i + 8)
            guard let f = floor, first >= f, first <= last, last != .max else { return .failure(.badNak) }
            let (next, overflow) = last.addingReportingOverflow(2)
            floor = overflow ? nil : next
        }
        return .success(m)
    }

    /// ``decode(_:)`` for an array.
    public static func decode(_ bytes: [UInt8]) -> Result<NakMessage, ControlRejection> {
        bytes.withUnsafeBytes { decode($0) }
    }

    /// The ranges of this decoded NAK, read from `bytes` (the datagram it was decoded from)
    /// without copying. Valid only while `bytes` is.
    public func ranges(in bytes: UnsafeRawBufferPointer) -> NakRanges {
        NakRanges(base: bytes.baseAddress.map { $0 + rangesOffset }, count: rangeCount)
    }

    /// ``decode(_:)`` with the ranges copied out (tests and tools; allocates).
    public static func decodeWithRanges(_ bytes: [UInt8]) -> Result<(NakMessage, [ClosedRange<UInt64>]), ControlRejection> {
        bytes.withUnsafeBytes { buffer in
            decode(buffer).map { m in (m, Array(m.ranges(in: buffer))) }
        }
    }
}

/// The ranges of a decoded NAK, read in place from the datagram (big-endian u64 pairs).
public struct NakRanges: RandomAccessCollection {
    let base: UnsafeRawPointer?
    /// Number of ranges.
    public let count: Int
    /// 0.
    public var startIndex: Int { 0 }
    /// ``count``.
    public var endIndex: Int { count }
    /// The `i`th range, inclusive.
    public subscript(i: Int) -> ClosedRange<UInt64> {
        precondition(i >= 0 && i < count, "NakRanges index out of range")
        let first = ControlHeader.u64(base!, 16 * i), last = ControlHeader.u64(base!, 16 * i + 8)
        return first...last
    }
}
