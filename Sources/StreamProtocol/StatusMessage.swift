/// The STATUS datagram (SPEC §13.5, version 3): a receiver of a reliable stream tells the
/// sender what it holds and how far the sender may go. Sent to the stream's source, from
/// the address the stream was sent to, like a REPORT.
///
/// Layout: the 48-byte header (version 3, flags 0x40; sequence = ``cumulativeAck``, byte
/// offset = ``deliveredBytes``, timestamp = the receiver's send time) and a 56-byte body:
/// fixed length u16 (56), state u8, 0 u8, feedback sequence u32, receiver id u64, window
/// limit u64, highest u64, unique u64, echo timestamp u64, echo delay u64. 104 bytes.
///
/// ``encode(into:)`` writes into caller memory without allocating.
public struct StatusMessage: Equatable, Sendable {
    /// The version byte of a STATUS.
    public static let version: UInt8 = DatagramHeader.reliableVersion
    /// The flag byte of a STATUS (its only valid value).
    public static let flag: UInt8 = DatagramFlags.status.rawValue
    /// Body bytes in this version. A later revision may append fields and raise the body's
    /// fixed length (a multiple of 8); readers ignore what they do not know.
    public static let fixedBodyLength = 56
    /// A STATUS as this version writes it: 48 + 56 bytes.
    public static let length = DatagramHeader.size + fixedBodyLength

    /// The stream's id.
    public var streamID: UInt64
    /// The receiver's CLOCK_REALTIME when it sent this STATUS, ns.
    public var timestampNanoseconds: UInt64 = 0
    /// Every DATA sequence number below this one has been received intact (header sequence field).
    public var cumulativeAck: UInt64 = 0
    /// Stream bytes below ``cumulativeAck`` (header byte offset field): where datagram
    /// `cumulativeAck` starts. Informative.
    public var deliveredBytes: UInt64 = 0
    /// The receiver's count of control datagrams (STATUS and NAK) it sent for this stream
    /// before this one, wrapping: the sender sees lost and reordered feedback.
    public var feedbackSequence: UInt32 = 0
    /// The receiver's random 64-bit id, fixed for the stream; never 0 (0 is the sender's, §13.9).
    public var receiverID: UInt64
    /// The sender may send DATA sequence numbers below this (an absolute edge in datagrams,
    /// at least ``cumulativeAck``); it never retreats.
    public var windowLimit: UInt64 = 0
    /// One above the highest sequence number received intact (0: none yet).
    public var highest: UInt64 = 0
    /// Distinct sequence numbers received intact (`cumulativeAck ≤ unique ≤ highest`).
    public var unique: UInt64 = 0
    /// The send timestamp of the DATA or END the receiver last received that was not a
    /// repair (0: none), for the sender's RTT.
    public var echoTimestampNanoseconds: UInt64 = 0
    /// Nanoseconds the receiver held that datagram before sending this STATUS.
    public var echoDelayNanoseconds: UInt64 = 0
    /// State bit 0x01: a valid END has arrived.
    public var endSeen = false
    /// State bit 0x02: END seen and every datagram below its total received (implies ``endSeen``).
    public var complete = false
    /// State bit 0x04: the receiver gave up on the missing datagrams (its deadline passed); final.
    public var gaveUp = false

    /// A STATUS for `streamID` from the receiver `receiverID`, every other field zero.
    public init(streamID: UInt64, receiverID: UInt64) {
        self.streamID = streamID
        self.receiverID = receiverID
    }

    /// Writes the sealed STATUS at `p`, which must have room for ``length`` bytes.
    /// Returns ``length``. No allocation.
    @discardableResult
    public func encode(into p: UnsafeMutableRawPointer) -> Int {
        let state: UInt8 = (endSeen ? 0x01 : 0) | (complete ? 0x02 : 0) | (gaveUp ? 0x04 : 0)
        ControlHeader.writeHead(p, flag: Self.flag, streamID: streamID, cumulativeAck: cumulativeAck,
                                deliveredBytes: deliveredBytes, timestamp: timestampNanoseconds,
                                bodyLength: Self.fixedBodyLength, fixedLength: Self.fixedBodyLength, state: state,
                                feedbackSequence: feedbackSequence, receiverID: receiverID)
        let b = p + DatagramHeader.size
        b.storeBytes(of: windowLimit.bigEndian, toByteOffset: 16, as: UInt64.self)
        b.storeBytes(of: highest.bigEndian, toByteOffset: 24, as: UInt64.self)
        b.storeBytes(of: unique.bigEndian, toByteOffset: 32, as: UInt64.self)
        b.storeBytes(of: echoTimestampNanoseconds.bigEndian, toByteOffset: 40, as: UInt64.self)
        b.storeBytes(of: echoDelayNanoseconds.bigEndian, toByteOffset: 48, as: UInt64.self)
        Datagram.seal(p, length: Self.length)
        return Self.length
    }

    /// The sealed STATUS as an array.
    public func encoded() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.length)
        out.withUnsafeMutableBytes { _ = encode(into: $0.baseAddress!) }
        return out
    }

    /// Reads and checks a STATUS (SPEC §13.4 and §13.5's body rules).
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> Result<StatusMessage, ControlRejection> {
        guard let p = bytes.baseAddress else { return .failure(.tooShort) }
        let h: DatagramHeader
        switch ControlHeader.check(p, count: bytes.count, flag: flag) {
        case .failure(let r): return .failure(r)
        case .success(let header): h = header
        }
        let b = p + Int(h.headerLength)
        let bodyLength = bytes.count - Int(h.headerLength)
        guard bodyLength >= fixedBodyLength else { return .failure(.badStatus) }
        let fixed = Int(UInt16(bigEndian: b.loadUnaligned(as: UInt16.self)))
        let state = b.load(fromByteOffset: 2, as: UInt8.self)
        var m = StatusMessage(streamID: h.streamID, receiverID: ControlHeader.u64(b, 8))
        guard fixed >= fixedBodyLength, fixed % 8 == 0, bodyLength == fixed, m.receiverID != 0 else {
            return .failure(.badStatus)
        }
        m.timestampNanoseconds = h.timestampNanoseconds
        m.cumulativeAck = h.sequence
        m.deliveredBytes = h.offset
        m.feedbackSequence = UInt32(bigEndian: b.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        m.windowLimit = ControlHeader.u64(b, 16)
        m.highest = ControlHeader.u64(b, 24)
        m.unique = ControlHeader.u64(b, 32)
        m.echoTimestampNanoseconds = ControlHeader.u64(b, 40)
        m.echoDelayNanoseconds = ControlHeader.u64(b, 48)
        m.endSeen = state & 0x01 != 0
        m.complete = state & 0x02 != 0
        m.gaveUp = state & 0x04 != 0
        guard m.cumulativeAck <= m.unique, m.unique <= m.highest, m.windowLimit >= m.cumulativeAck,
              !m.complete || m.endSeen else { return .failure(.badStatus) }
        return .success(m)
    }

    /// ``decode(_:)`` for an array.
    public static func decode(_ bytes: [UInt8]) -> Result<StatusMessage, ControlRejection> {
        bytes.withUnsafeBytes { decode($0) }
    }
}
