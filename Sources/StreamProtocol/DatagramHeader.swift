/// The fixed 48-byte header that starts every zcstream datagram.
/// Byte layout, all fields big-endian (see Protocol/SPEC.md):
///
/// | off | size | field          |
/// |-----|------|----------------|
/// |   0 |    4 | magic "ZCST"   |
/// |   4 |    1 | version (1)    |
/// |   5 |    1 | flags          |
/// |   6 |    2 | header length  |
/// |   8 |    8 | stream id      |
/// |  16 |    8 | sequence       |
/// |  24 |    8 | byte offset    |
/// |  32 |    8 | timestamp ns   |
/// |  40 |    4 | payload length |
/// |  44 |    4 | CRC32C         |
public struct DatagramHeader: Equatable, Sendable {
    public static let magic: UInt32 = 0x5A43_5354 // "ZCST"
    public static let version: UInt8 = 1
    public static let size = 48
    public static let checksumOffset = 44

    public var flags: DatagramFlags
    public var headerLength: UInt16
    public var streamID: UInt64
    public var sequence: UInt64
    public var offset: UInt64
    public var timestampNanoseconds: UInt64
    public var payloadLength: UInt32
    public var checksum: UInt32

    public init(flags: DatagramFlags, streamID: UInt64, sequence: UInt64, offset: UInt64,
                timestampNanoseconds: UInt64, payloadLength: UInt32, checksum: UInt32 = 0,
                headerLength: UInt16 = UInt16(DatagramHeader.size)) {
        self.flags = flags
        self.headerLength = headerLength
        self.streamID = streamID
        self.sequence = sequence
        self.offset = offset
        self.timestampNanoseconds = timestampNanoseconds
        self.payloadLength = payloadLength
        self.checksum = checksum
    }

    /// Writes the 48 header bytes at `p` (no alignment needed, no allocation).
    @inline(__always)
    public func write(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: DatagramHeader.magic.bigEndian, toByteOffset: 0, as: UInt32.self)
        p.storeBytes(of: DatagramHeader.version, toByteOffset: 4, as: UInt8.self)
        p.storeBytes(of: flags.rawValue, toByteOffset: 5, as: UInt8.self)
        p.storeBytes(of: headerLength.bigEndian, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: streamID.bigEndian, toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: sequence.bigEndian, toByteOffset: 16, as: UInt64.self)
        p.storeBytes(of: offset.bigEndian, toByteOffset: 24, as: UInt64.self)
        p.storeBytes(of: timestampNanoseconds.bigEndian, toByteOffset: 32, as: UInt64.self)
        p.storeBytes(of: payloadLength.bigEndian, toByteOffset: 40, as: UInt32.self)
        p.storeBytes(of: checksum.bigEndian, toByteOffset: 44, as: UInt32.self)
    }

    /// Reads the fields at `p` without checking them (see `Datagram.validate`).
    @inline(__always)
    public init(reading p: UnsafeRawPointer) {
        flags = DatagramFlags(rawValue: p.load(fromByteOffset: 5, as: UInt8.self))
        headerLength = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        streamID = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        sequence = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        offset = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        timestampNanoseconds = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
        payloadLength = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 40, as: UInt32.self))
        checksum = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 44, as: UInt32.self))
    }
}

/// Header flag bits. Unknown bits are reserved: senders write 0, receivers reject.
public struct DatagramFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Carries stream payload at `offset`.
    public static let data = DatagramFlags(rawValue: 0x01)
    /// End of stream: payload is the totals (see `EndOfStream`).
    public static let end = DatagramFlags(rawValue: 0x02)
    /// The payload is the synthetic pattern, which the receiver verifies byte for byte.
    public static let pattern = DatagramFlags(rawValue: 0x04)

    public static let known: DatagramFlags = [.data, .end, .pattern]

    public var names: [String] {
        var n: [String] = []
        if contains(.data) { n.append("DATA") }
        if contains(.end) { n.append("END") }
        if contains(.pattern) { n.append("PATTERN") }
        return n
    }
}

/// The payload of an END datagram: the stream's totals, so a receiver knows how
/// many datagrams and bytes to expect even when the last data datagrams were lost.
public struct EndOfStream: Equatable, Sendable {
    public static let payloadSize = 16
    public var datagrams: UInt64
    public var bytes: UInt64

    public init(datagrams: UInt64, bytes: UInt64) {
        self.datagrams = datagrams
        self.bytes = bytes
    }

    @inline(__always)
    public func write(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: datagrams.bigEndian, toByteOffset: 0, as: UInt64.self)
        p.storeBytes(of: bytes.bigEndian, toByteOffset: 8, as: UInt64.self)
    }

    @inline(__always)
    public init(reading p: UnsafeRawPointer) {
        datagrams = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        bytes = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }
}
