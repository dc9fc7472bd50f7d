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
    /// The first four bytes, `ZCST` read as a big-endian integer.
    public static let magic: UInt32 = 0x5A43_5354 // "ZCST"
    /// The protocol version of DATA and END (and what ``write(to:)`` writes): 1.
    public static let version: UInt8 = 1
    /// The version of a reliable stream's DATA and END and of STATUS and NAK (SPEC §13):
    /// 3. A version 1 receiver rejects such datagrams (`unsupported_version`).
    public static let reliableVersion: UInt8 = 3
    /// Bytes in the fixed header: the smallest valid datagram and the default ``headerLength``.
    public static let size = 48
    /// Byte offset of the CRC32C field, taken as zero when the checksum is computed.
    public static let checksumOffset = 44
    /// Bytes to leave in front of a datagram so its payload (behind the 48-byte header)
    /// starts on a 64-byte cache line. Datagrams back to back (a GSO send, a GRO buffer)
    /// that are a multiple of 64 bytes long (1472) then all have line-aligned payloads,
    /// so the fused pattern fill and check move whole aligned lines.
    public static let payloadLineLead = (64 - size % 64) % 64

    /// Datagram kind (DATA or END) and payload type (PATTERN).
    public var flags: DatagramFlags
    /// Bytes from the datagram's start to its payload: at least 48, a multiple of 8.
    /// Bytes past 48 are an extension that version 1 receivers skip.
    public var headerLength: UInt16
    /// The stream's random id, the same in every datagram of a run, END included.
    public var streamID: UInt64
    /// DATA: the datagram's number, 0 for the first. END: the total DATA sequence numbers.
    public var sequence: UInt64
    /// DATA: the position of the payload's first byte in the stream. END: the stream's total bytes.
    public var offset: UInt64
    /// Send time, `CLOCK_REALTIME` nanoseconds since the Unix epoch; used for latency, never validated.
    public var timestampNanoseconds: UInt64
    /// Payload bytes after the header; 16 for END.
    public var payloadLength: UInt32
    /// CRC32C over header and payload with this field taken as zero.
    public var checksum: UInt32

    /// A header with the given fields; `checksum` is normally left 0 and filled by
    /// ``Datagram/encode(_:at:)`` or ``Datagram/seal(_:length:)``.
    /// (`@inlinable`, as is ``write(to:)``: the sender builds and writes a header per
    /// datagram, and a call across the module boundary for each cost ~7 % of it.)
    @inlinable
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
    @inlinable @inline(__always)
    public func write(to p: UnsafeMutableRawPointer) {
        #if _endian(little)
        // Six 8-byte stores: the sender's CRC reads the header back in 8-byte words at
        // once, and a load that spans several smaller stores cannot be forwarded from
        // the store buffer (a stall of ~20 cycles per word, measured 35% of the sender).
        // Version 3 exactly when RELIABLE (0x10) is set (SPEC §13.2): 1 | 2, without a branch.
        let version = UInt64(DatagramHeader.version) | UInt64((flags.rawValue >> 3) & 2)
        let word0 = UInt64(DatagramHeader.magic.bigEndian) | version << 32
            | UInt64(flags.rawValue) << 40 | UInt64(headerLength.bigEndian) << 48
        p.storeBytes(of: word0, toByteOffset: 0, as: UInt64.self)
        p.storeBytes(of: streamID.bigEndian, toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: sequence.bigEndian, toByteOffset: 16, as: UInt64.self)
        p.storeBytes(of: offset.bigEndian, toByteOffset: 24, as: UInt64.self)
        p.storeBytes(of: timestampNanoseconds.bigEndian, toByteOffset: 32, as: UInt64.self)
        p.storeBytes(of: UInt64(payloadLength.bigEndian) | UInt64(checksum.bigEndian) << 32, toByteOffset: 40, as: UInt64.self)
        #else
        p.storeBytes(of: DatagramHeader.magic.bigEndian, toByteOffset: 0, as: UInt32.self)
        p.storeBytes(of: DatagramHeader.version | ((flags.rawValue >> 3) & 2), toByteOffset: 4, as: UInt8.self)
        p.storeBytes(of: flags.rawValue, toByteOffset: 5, as: UInt8.self)
        p.storeBytes(of: headerLength.bigEndian, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: streamID.bigEndian, toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: sequence.bigEndian, toByteOffset: 16, as: UInt64.self)
        p.storeBytes(of: offset.bigEndian, toByteOffset: 24, as: UInt64.self)
        p.storeBytes(of: timestampNanoseconds.bigEndian, toByteOffset: 32, as: UInt64.self)
        p.storeBytes(of: payloadLength.bigEndian, toByteOffset: 40, as: UInt32.self)
        p.storeBytes(of: checksum.bigEndian, toByteOffset: 44, as: UInt32.self)
        #endif
    }

    /// ``write(to:)`` with another version byte: ``reliableVersion`` for a reliable
    /// stream's DATA and END (SPEC §13.2).
    @inlinable @inline(__always)
    public func write(to p: UnsafeMutableRawPointer, version: UInt8) {
        write(to: p)
        p.storeBytes(of: version, toByteOffset: 4, as: UInt8.self)
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
/// Version 1 knows DATA, END and PATTERN (``known``); version 3 adds RELIABLE and REPAIR
/// to DATA/END (``knownReliable``) and the STATUS and NAK kinds (SPEC §13).
public struct DatagramFlags: OptionSet, Sendable, Hashable {
    /// The flags byte as on the wire.
    public let rawValue: UInt8
    /// Flags from a wire byte, reserved bits included (``Datagram/validate(_:length:)`` rejects them).
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Carries stream payload at `offset`.
    public static let data = DatagramFlags(rawValue: 0x01)
    /// End of stream: payload is the totals (see `EndOfStream`).
    public static let end = DatagramFlags(rawValue: 0x02)
    /// The payload is the synthetic pattern, which the receiver verifies byte for byte.
    public static let pattern = DatagramFlags(rawValue: 0x04)

    /// Version 3 DATA/END of a reliable stream (SPEC §13.2): the receiver repairs and
    /// acknowledges the stream. Set in every DATA and END of such a stream.
    public static let reliable = DatagramFlags(rawValue: 0x10)
    /// Version 3 DATA only: a retransmission of a datagram sent before, otherwise
    /// byte-identical to it (SPEC §13.3).
    public static let repair = DatagramFlags(rawValue: 0x20)
    /// The whole flag byte of a STATUS (version 3, ``StatusMessage``).
    public static let status = DatagramFlags(rawValue: 0x40)
    /// The whole flag byte of a NAK (version 3, ``NakMessage``).
    public static let nak = DatagramFlags(rawValue: 0x80)

    /// Every bit version 1 defines; any other bit is reserved. (Version 1 DATA/END
    /// only: ``Datagram/validate(_:length:)`` checks version 1 before this.)
    public static let known: DatagramFlags = [.data, .end, .pattern]
    /// Every bit a version 3 DATA/END may carry (SPEC §13.2): ``known`` plus
    /// ``reliable`` and ``repair``.
    public static let knownReliable: DatagramFlags = [.data, .end, .pattern, .reliable, .repair]

    /// The names of the known bits set, e.g. `["DATA", "PATTERN"]`, for reports.
    public var names: [String] {
        var n: [String] = []
        if contains(.data) { n.append("DATA") }
        if contains(.end) { n.append("END") }
        if contains(.pattern) { n.append("PATTERN") }
        if contains(.reliable) { n.append("RELIABLE") }
        if contains(.repair) { n.append("REPAIR") }
        return n
    }
}

/// The payload of an END datagram: the stream's totals, so a receiver knows how
/// many datagrams and bytes to expect even when the last data datagrams were lost.
public struct EndOfStream: Equatable, Sendable {
    /// Bytes in an END payload: two big-endian `UInt64`s.
    public static let payloadSize = 16
    /// Total DATA sequence numbers the sender used (skipped ones included).
    public var datagrams: UInt64
    /// Total payload bytes in the stream.
    public var bytes: UInt64

    /// Totals of `datagrams` DATA sequence numbers and `bytes` payload bytes.
    public init(datagrams: UInt64, bytes: UInt64) {
        self.datagrams = datagrams
        self.bytes = bytes
    }

    /// Writes the 16 payload bytes at `p` (no alignment needed).
    @inline(__always)
    public func write(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: datagrams.bigEndian, toByteOffset: 0, as: UInt64.self)
        p.storeBytes(of: bytes.bigEndian, toByteOffset: 8, as: UInt64.self)
    }

    /// Reads the 16 payload bytes at `p`; check the payload length first (validation does).
    @inline(__always)
    public init(reading p: UnsafeRawPointer) {
        datagrams = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        bytes = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }
}
