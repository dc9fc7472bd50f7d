/// Why bytes are not a valid STATUS or NAK (SPEC §13.4), in check order. The raw values
/// are the names the Python reference, the dissector and the vectors use.
public enum ControlRejection: String, Error, CaseIterable, Sendable {
    /// Fewer than 48 bytes.
    case tooShort = "too_short"
    /// Not "ZCST".
    case badMagic = "bad_magic"
    /// A version other than 3: a stream datagram or a REPORT, never a control datagram.
    case notControl = "not_control"
    /// Header length below 48, not a multiple of 8, or beyond the datagram.
    case badHeaderLength = "bad_header_length"
    /// The flag byte is not exactly the kind's (0x40 STATUS, 0x80 NAK).
    case badFlags = "bad_flags"
    /// header length + payload length != datagram length (a truncated datagram, say).
    case lengthMismatch = "length_mismatch"
    /// The CRC32C does not match.
    case badChecksum = "bad_checksum"
    /// A STATUS body that breaks §13.5's rules.
    case badStatus = "bad_status"
    /// A NAK body that breaks §13.6's rules.
    case badNak = "bad_nak"
}

/// What STATUS and NAK share (SPEC §13.4): the header checks, and the 16 bytes both
/// bodies start with (fixed length u16, state u8, 0 u8, feedback sequence u32, receiver id u64).
enum ControlHeader {
    /// Bytes of the common body head.
    static let commonBodyLength = 16

    /// Checks 1-7 of §13.4 for a control datagram whose flag byte must be `flag`.
    static func check(_ p: UnsafeRawPointer, count n: Int, flag: UInt8) -> Result<DatagramHeader, ControlRejection> {
        guard n >= DatagramHeader.size else { return .failure(.tooShort) }
        guard UInt32(bigEndian: p.loadUnaligned(as: UInt32.self)) == DatagramHeader.magic else { return .failure(.badMagic) }
        guard p.load(fromByteOffset: 4, as: UInt8.self) == DatagramHeader.reliableVersion else { return .failure(.notControl) }
        let h = DatagramHeader(reading: p)
        let hl = Int(h.headerLength)
        guard hl >= DatagramHeader.size, hl % 8 == 0, hl <= n else { return .failure(.badHeaderLength) }
        guard h.flags.rawValue == flag else { return .failure(.badFlags) }
        guard hl + Int(h.payloadLength) == n else { return .failure(.lengthMismatch) }
        guard Datagram.computeChecksum(p, length: n) == h.checksum else { return .failure(.badChecksum) }
        return .success(h)
    }

    /// Writes the 48-byte header (version 3, `flag`, checksum 0) and the common body head.
    static func writeHead(_ p: UnsafeMutableRawPointer, flag: UInt8, streamID: UInt64, cumulativeAck: UInt64,
                          deliveredBytes: UInt64, timestamp: UInt64, bodyLength: Int, fixedLength: Int,
                          state: UInt8, feedbackSequence: UInt32, receiverID: UInt64) {
        DatagramHeader(flags: DatagramFlags(rawValue: flag), streamID: streamID, sequence: cumulativeAck,
                       offset: deliveredBytes, timestampNanoseconds: timestamp, payloadLength: UInt32(bodyLength))
            .write(to: p, version: DatagramHeader.reliableVersion)
        let b = p + DatagramHeader.size
        b.storeBytes(of: UInt16(fixedLength).bigEndian, toByteOffset: 0, as: UInt16.self)
        b.storeBytes(of: state, toByteOffset: 2, as: UInt8.self)
        b.storeBytes(of: UInt8(0), toByteOffset: 3, as: UInt8.self)
        b.storeBytes(of: feedbackSequence.bigEndian, toByteOffset: 4, as: UInt32.self)
        b.storeBytes(of: receiverID.bigEndian, toByteOffset: 8, as: UInt64.self)
    }

    @inline(__always)
    static func u64(_ p: UnsafeRawPointer, _ at: Int) -> UInt64 {
        UInt64(bigEndian: p.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }
}
