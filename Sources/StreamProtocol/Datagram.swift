import CCRC32C

/// Encoding and validation of whole datagrams (header + payload) in caller memory.
public enum Datagram {
    /// Why a received datagram is not a valid zcstream datagram.
    public enum Rejection: String, CaseIterable, Sendable, Codable {
        /// Fewer bytes than the fixed header.
        case tooShort = "too_short"
        /// First four bytes are not "ZCST": not our protocol.
        case badMagic = "bad_magic"
        /// A version this receiver does not speak.
        case unsupportedVersion = "unsupported_version"
        /// Header length below 48, not a multiple of 8, or beyond the datagram.
        case badHeaderLength = "bad_header_length"
        /// Reserved flag bits set, or neither/both of DATA and END.
        case badFlags = "bad_flags"
        /// header length + payload length != datagram length.
        case lengthMismatch = "length_mismatch"
        /// An END whose payload is not the 16-byte totals.
        case badEnd = "bad_end"
    }

    /// The outcome of `validate`. A checksum mismatch keeps the (untrusted) header
    /// so the receiver can charge it to a stream when the stream id is known.
    public enum Validation: Sendable {
        /// Passed every check; the header can be trusted.
        case valid(DatagramHeader)
        /// Structurally sound but damaged (SPEC §8 check 7): the untrusted header as read, and the CRC32C computed over the bytes received.
        case badChecksum(DatagramHeader, computed: UInt32)
        /// Invalid: failed a structural check; nothing in it is trusted.
        case rejected(Rejection)
    }

    /// Seals a datagram whose header (checksum field 0) and payload are already in
    /// place at `p`: computes CRC32C over all `length` bytes and stores it.
    @inline(__always)
    public static func seal(_ p: UnsafeMutableRawPointer, length: Int) {
        let crc = CRC32C.checksum(UnsafeRawPointer(p), count: length)
        p.storeBytes(of: crc.bigEndian, toByteOffset: DatagramHeader.checksumOffset, as: UInt32.self)
    }

    /// For a datagram whose 48-byte header is written at `p` (checksum field 0): writes the
    /// pattern payload for stream bytes `[offset, offset + payloadLength)` behind it and
    /// stores the checksum, generating and checksumming the payload in one pass (one call
    /// into the CRC32C kernel per datagram). Returns the checksum.
    @inlinable @inline(__always) @discardableResult
    public static func sealPattern(_ p: UnsafeMutableRawPointer, payloadLength: Int, streamID: UInt64, offset: UInt64) -> UInt32 {
        if PayloadPattern.crossesEnd(count: payloadLength, offset: offset) {
            let head = CRC32C.checksum(UnsafeRawPointer(p), count: DatagramHeader.size)
            let crc = PayloadPattern.fillChecksummed(p + DatagramHeader.size, count: payloadLength, streamID: streamID,
                                                     offset: offset, continuing: head)
            p.storeBytes(of: crc.bigEndian, toByteOffset: DatagramHeader.checksumOffset, as: UInt32.self)
            return crc
        }
        return zc_crc32c_seal_pattern(-1, p, payloadLength, streamID, offset)
    }

    /// Writes the 48 fixed header bytes of `header` (checksum ignored) at `p` and
    /// seals the datagram. The caller has already put any extension header bytes at
    /// `p + 48` and the payload at `p + headerLength`. Returns the datagram length.
    @inline(__always)
    @discardableResult
    public static func encode(_ header: DatagramHeader, at p: UnsafeMutableRawPointer) -> Int {
        var h = header
        h.checksum = 0
        h.write(to: p)
        let length = Int(h.headerLength) + Int(h.payloadLength)
        seal(p, length: length)
        return length
    }

    /// The CRC32C of a received datagram with its checksum field taken as zero.
    @inline(__always)
    public static func computeChecksum(_ p: UnsafeRawPointer, length: Int) -> UInt32 {
        let zero: UInt32 = 0
        var crc = CRC32C.checksum(p, count: DatagramHeader.checksumOffset)
        crc = withUnsafeBytes(of: zero) { CRC32C.checksum($0, continuing: crc) }
        let rest = DatagramHeader.checksumOffset + 4
        return CRC32C.checksum(p + rest, count: length - rest, continuing: crc)
    }

    /// The CRC32C of the header (extension included) with the checksum field taken as
    /// zero: where a datagram's checksum continues into its payload.
    @inline(__always)
    public static func headerChecksum(_ p: UnsafeRawPointer, headerLength: Int) -> UInt32 {
        var fixed = (p.loadUnaligned(as: SIMD32<UInt8>.self), p.loadUnaligned(fromByteOffset: 32, as: SIMD16<UInt8>.self))
        // Bytes 44..47 (the checksum) zeroed with one vector AND, not byte stores: the CRC
        // reads 8-byte words, which the store buffer forwards only from one wider store.
        fixed.1 &= SIMD16<UInt8>(255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0)
        var crc = withUnsafeBytes(of: &fixed) { CRC32C.checksum($0.baseAddress!, count: DatagramHeader.size) }
        if headerLength > DatagramHeader.size {
            crc = CRC32C.checksum(p + DatagramHeader.size, count: headerLength - DatagramHeader.size, continuing: crc)
        }
        return crc
    }

    /// Checks structure, then the checksum. O(length), no allocation.
    @inline(__always)
    public static func validate(_ p: UnsafeRawPointer, length: Int) -> Validation {
        var ignored = true
        return validate(p, length: length, checkPattern: false, patternMatches: &ignored)
    }

    /// ``validate(_:length:)`` that also checks a PATTERN DATA datagram's payload against
    /// the pattern, in the same pass over the bytes as the checksum. `patternMatches` is
    /// set false when such a datagram's payload differs from the pattern (meaningful
    /// when the result is `.valid`); other datagrams leave it true.
    @inline(__always)
    public static func validate(_ p: UnsafeRawPointer, length: Int, patternMatches: inout Bool) -> Validation {
        validate(p, length: length, checkPattern: true, patternMatches: &patternMatches)
    }

    @inline(__always)
    static func validate(_ p: UnsafeRawPointer, length: Int, checkPattern: Bool, patternMatches: inout Bool) -> Validation {
        patternMatches = true
        guard length >= DatagramHeader.size else { return .rejected(.tooShort) }
        guard UInt32(bigEndian: p.loadUnaligned(as: UInt32.self)) == DatagramHeader.magic else {
            return .rejected(.badMagic)
        }
        // Version 1 (plain) and 3 (a reliable stream's DATA/END, SPEC §13.2); STATUS and NAK
        // (version 3, flags 0x40/0x80) fail the flag check: they never enter a stream.
        let version = p.load(fromByteOffset: 4, as: UInt8.self)
        guard version == DatagramHeader.version || version == DatagramHeader.reliableVersion else {
            return .rejected(.unsupportedVersion)
        }
        let header = DatagramHeader(reading: p)
        let hlen = Int(header.headerLength)
        guard hlen >= DatagramHeader.size, hlen & 7 == 0, hlen <= length else {
            return .rejected(.badHeaderLength)
        }
        let flags = header.flags
        if version == DatagramHeader.version {
            guard plainFlagsValid(flags) else {
                return .rejected(.badFlags)
            }
        } else {
            guard reliableFlagsValid(flags) else { return .rejected(.badFlags) }
        }
        guard hlen + Int(header.payloadLength) == length else { return .rejected(.lengthMismatch) }
        let computed: UInt32
        if checkPattern && flags.contains(.data) && flags.contains(.pattern) {
            let payload = Int(header.payloadLength)
            if hlen == DatagramHeader.size && !PayloadPattern.crossesEnd(count: payload, offset: header.offset) {
                // The common case in one C call: header CRC (checksum field masked) and the
                // fused payload check, no copy of the header.
                var mismatch: Int32 = 0
                computed = zc_crc32c_check_pattern_datagram(-1, p, payload, header.streamID, header.offset, &mismatch)
                patternMatches = mismatch == 0
            } else {
                let head = headerChecksum(p, headerLength: hlen)
                let r = PayloadPattern.checkChecksummed(p + hlen, count: payload, streamID: header.streamID,
                                                        offset: header.offset, continuing: head)
                computed = r.crc
                patternMatches = r.matches
            }
        } else {
            computed = computeChecksum(p, length: length)
        }
        guard computed == header.checksum else { return .badChecksum(header, computed: computed) }
        if flags.contains(.end) {
            guard endTotalsAgree(header, payload: p + hlen) else { return .rejected(.badEnd) }
        }
        return .valid(header)
    }

    /// SPEC §6: an END's payload is the 16-byte totals, and they MUST equal its header's
    /// sequence and offset (checked after the checksum, or after the tag of a keyed END).
    @inline(__always)
    public static func endTotalsAgree(_ header: DatagramHeader, payload: UnsafeRawPointer) -> Bool {
        guard header.payloadLength == UInt32(EndOfStream.payloadSize) else { return false }
        let totals = EndOfStream(reading: payload)
        return totals.datagrams == header.sequence && totals.bytes == header.offset
    }

    /// Validates the datagram in `bytes` (an empty buffer is ``Rejection/tooShort``).
    public static func validate(_ bytes: UnsafeRawBufferPointer) -> Validation {
        guard let base = bytes.baseAddress else { return .rejected(.tooShort) }
        return validate(base, length: bytes.count)
    }
}
