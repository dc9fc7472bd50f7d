/// Keyed datagrams (SPEC §14): every kind of datagram of a keyed stream, version 4, with the
/// 40-byte ``AuthTrailer`` behind its payload and no CRC (the tag replaces it).
public enum KeyedDatagram {
    /// The version byte of every keyed datagram, whatever its kind.
    public static let version: UInt8 = 4
    /// The smallest keyed datagram: a header and a trailer.
    public static let minimumLength = DatagramHeader.size + AuthTrailer.size

    /// What a keyed datagram is.
    public enum Kind: Sendable, Equatable {
        /// DATA or END of a stream (the flags say which, and whether it is reliable).
        case stream
        /// A REPORT (flag byte 0x08).
        case report
        /// A STATUS (0x40).
        case status
        /// A NAK (0x80).
        case nak
    }

    /// Why a keyed reader drops a datagram (SPEC §14.4 checks 1–10): every one is counted
    /// `unauthenticated`. ``parse(_:length:)`` gives the structural ones (1–7); the reader
    /// adds the key's (8–10).
    public enum Rejection: String, CaseIterable, Sendable, Codable, Error {
        /// Shorter than a header and a trailer.
        case tooShort = "too_short"
        /// Not "ZCST".
        case badMagic = "bad_magic"
        /// Not version 4: not keyed.
        case notKeyed = "not_keyed"
        /// Header length below 48, not a multiple of 8, or past the datagram.
        case badHeaderLength = "bad_header_length"
        /// A flag byte no kind has.
        case badFlags = "bad_flags"
        /// Header length + payload length + 40 differs from the datagram's length.
        case lengthMismatch = "length_mismatch"
        /// An unknown suite, encryption on anything but DATA, or an origin that does not fit
        /// the kind (0 from a receiver, or a receiver id on DATA/END).
        case badTrailer = "bad_trailer"
        /// Another secret's key id: the sender holds a different key.
        case wrongKey = "wrong_key"
        /// The tag does not match: forged, damaged on the way, or sealed under another key.
        case badTag = "bad_tag"
        /// A packet number already taken, or too old for the window (§14.5).
        case replayed = "replayed"

        /// Position in ``allCases``, for counter arrays.
        public var index: Int { Self.allCases.firstIndex(of: self)! }
    }

    /// A keyed datagram whose structure is sound; nothing in it is trusted until its tag is.
    public struct Parsed: Sendable, Equatable {
        public var header: DatagramHeader
        public var trailer: AuthTrailer
        public var kind: Kind
        /// Where the trailer starts.
        public var trailerOffset: Int { Int(header.headerLength) + Int(header.payloadLength) }
    }

    /// Seals the encoded version 2 or 3 datagram at `p` (a REPORT, STATUS or NAK: header and
    /// body as its version writes them, room behind them for the trailer) as keyed: version 4,
    /// checksum 0, `trailer` behind the body, tagged by `authenticator` (the sending
    /// receiver's key). Returns the keyed datagram's length (40 more).
    @discardableResult
    public static func seal(_ p: UnsafeMutableRawPointer, authenticator: DatagramAuthenticator, trailer: AuthTrailer) -> Int {
        p.storeBytes(of: version, toByteOffset: 4, as: UInt8.self)
        p.storeBytes(of: 0, toByteOffset: DatagramHeader.checksumOffset, as: UInt32.self)
        let header = DatagramHeader(reading: p)
        return authenticator.seal(p, headerLength: Int(header.headerLength), payloadLength: Int(header.payloadLength), trailer: trailer)
    }

    /// The inverse, for a reader, once the keyed datagram of `length` bytes at `p` passed its
    /// checks: the datagram it sealed, copied to `destination` without the trailer, with
    /// version byte `version` and a fresh CRC32C, for that version's own decoder (the body
    /// rules, §14.4 check 11). Returns its length.
    @discardableResult
    public static func unseal(_ p: UnsafeRawPointer, length: Int, version: UInt8, into destination: UnsafeMutableRawPointer) -> Int {
        let n = length - AuthTrailer.size
        destination.copyMemory(from: p, byteCount: n)
        destination.storeBytes(of: version, toByteOffset: 4, as: UInt8.self)
        destination.storeBytes(of: 0, toByteOffset: DatagramHeader.checksumOffset, as: UInt32.self)
        Datagram.seal(destination, length: n)
        return n
    }

    /// Checks 1–7 of SPEC §14.4: structure only. The caller then picks the key by the
    /// trailer's key id and origin, checks the tag, then the replay window, then the kind's
    /// own body rules.
    @inline(__always)
    public static func parse(_ p: UnsafeRawPointer, length: Int) -> Result<Parsed, Rejection> {
        guard length >= minimumLength else { return .failure(.tooShort) }
        guard UInt32(bigEndian: p.loadUnaligned(as: UInt32.self)) == DatagramHeader.magic else { return .failure(.badMagic) }
        guard p.load(fromByteOffset: 4, as: UInt8.self) == version else { return .failure(.notKeyed) }
        let header = DatagramHeader(reading: p)
        let hlen = Int(header.headerLength)
        guard hlen >= DatagramHeader.size, hlen & 7 == 0, hlen + AuthTrailer.size <= length else {
            return .failure(.badHeaderLength)
        }
        let kind: Kind
        switch header.flags.rawValue {
        case 0x08: kind = .report
        case 0x40: kind = .status
        case 0x80: kind = .nak
        default:
            guard Datagram.plainFlagsValid(header.flags) || Datagram.reliableFlagsValid(header.flags) else { return .failure(.badFlags) }
            kind = .stream
        }
        guard hlen + Int(header.payloadLength) + AuthTrailer.size == length else { return .failure(.lengthMismatch) }
        let trailer = AuthTrailer(reading: p + hlen + Int(header.payloadLength))
        let fromSource = kind == .stream
        guard trailer.suite == AuthTrailer.Suite.authenticated.rawValue
                || (trailer.suite == AuthTrailer.Suite.encrypted.rawValue && header.flags.contains(.data) && fromSource),
              (trailer.origin == 0) == fromSource else {
            return .failure(.badTrailer)
        }
        return .success(Parsed(header: header, trailer: trailer, kind: kind))
    }
}
