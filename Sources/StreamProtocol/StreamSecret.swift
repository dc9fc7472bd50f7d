import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// The 32-byte secret both ends of a keyed stream share (SPEC §14.2), and the keys derived
/// from it. Every key is HKDF-SHA256 (RFC 5869) of the secret with the salt
/// `"zcstream keyed v4"`; only the info differs:
///
/// | key | info | length |
/// |-----|------|--------|
/// | key id | `"zcstream key id"` | 4 (a u32, big-endian) |
/// | the stream source's key | `"zcstream source"` ‖ u64 stream id | 32 |
/// | a receiver's key for a stream | `"zcstream receiver"` ‖ u64 stream id ‖ u64 receiver id | 32 |
///
/// A key per stream and per direction (and per receiver) means no two senders ever share a
/// nonce space, so each can count its packet numbers from 0 (§14.3). The key id only says
/// which secret a datagram claims to use, so a receiver can tell "wrong key" from "forged".
public struct StreamSecret: Sendable, Equatable {
    /// Bytes in a secret.
    public static let size = 32
    static let salt = Array("zcstream keyed v4".utf8)

    /// The secret itself.
    public let bytes: [UInt8]
    /// The secret's public name: the first 4 bytes of its HKDF under `"zcstream key id"`.
    public let keyID: UInt32

    /// Why a key could not be used.
    public enum Invalid: Error, Equatable, CustomStringConvertible {
        /// Neither 32 raw bytes nor 64 hex digits.
        case badLength(Int)
        /// 64 characters, but not all hex digits.
        case notHex
        /// The file could not be read (errno).
        case unreadable(path: String, errno: Int32)
        /// Every byte the same (an all-zero file, say): not a secret.
        case notRandom

        public var description: String {
            switch self {
            case .badLength(let n):
                return "a key is 32 random bytes, or 64 hex digits (with an optional newline); this one has \(n) bytes (make one with: head -c 32 /dev/urandom > zc.key)"
            case .notHex:
                return "a 64-character key must be hex digits only (make one with: openssl rand -hex 32 > zc.key)"
            case .unreadable(let path, let e):
                return "cannot read key file \(path): \(String(cString: strerror(e)))"
            case .notRandom:
                return "the key's 32 bytes are all the same: not a secret (make one with: head -c 32 /dev/urandom > zc.key)"
            }
        }
    }

    /// A secret from its 32 bytes.
    public init(bytes: [UInt8]) throws(Invalid) {
        guard bytes.count == Self.size else { throw .badLength(bytes.count) }
        guard Set(bytes).count > 1 else { throw .notRandom }
        self.bytes = bytes
        let id = Self.hkdf(secret: bytes, info: Array("zcstream key id".utf8), length: 4)
        self.keyID = id.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// A key file's contents: exactly 32 bytes, or 64 hex digits with whitespace around them.
    public init(fileContents: [UInt8]) throws(Invalid) {
        if fileContents.count == Self.size {
            try self.init(bytes: fileContents)
            return
        }
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        let trimmed = Array(fileContents.drop(while: isSpace).reversed().drop(while: isSpace).reversed())
        guard trimmed.count == 2 * Self.size else { throw .badLength(fileContents.count) }
        var raw = [UInt8]()
        raw.reserveCapacity(Self.size)
        var i = 0
        while i < trimmed.count {
            guard let hi = Self.hexValue(trimmed[i]), let lo = Self.hexValue(trimmed[i + 1]) else { throw .notHex }
            raw.append(hi << 4 | lo)
            i += 2
        }
        try self.init(bytes: raw)
    }

    /// Reads a key file (`--key FILE`). At most 4 KiB is read: a key file is small.
    public init(contentsOf path: String) throws(Invalid) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(path: path, errno: errno) }
        defer { close(fd) }
        var contents = [UInt8](repeating: 0, count: 4097)
        var used = 0
        while used < contents.count {
            let n = contents.withUnsafeMutableBytes { read(fd, $0.baseAddress! + used, $0.count - used) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, errno: errno)
            }
            if n == 0 { break }
            used += n
        }
        try self.init(fileContents: Array(contents[..<used]))
    }

    /// The key of everything a stream's source sends for stream `streamID` (DATA, END, repairs).
    public func sourceKey(streamID: UInt64) -> [UInt8] {
        Self.hkdf(secret: bytes, info: Array("zcstream source".utf8) + Self.bigEndian(streamID), length: 32)
    }

    /// The key of everything receiver `receiverID` sends about stream `streamID` (STATUS,
    /// NAK, REPORT).
    public func receiverKey(streamID: UInt64, receiverID: UInt64) -> [UInt8] {
        Self.hkdf(secret: bytes, info: Array("zcstream receiver".utf8) + Self.bigEndian(streamID) + Self.bigEndian(receiverID),
                  length: 32)
    }

    /// The key for a datagram from `origin` (0: the stream's source, else a receiver id).
    public func key(streamID: UInt64, origin: UInt64) -> [UInt8] {
        origin == 0 ? sourceKey(streamID: streamID) : receiverKey(streamID: streamID, receiverID: origin)
    }

    static func bigEndian(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }

    /// HKDF-SHA256 (extract and expand) through OpenSSL's EVP_KDF. Not on a hot path: a
    /// key is derived once per stream (and per receiver).
    static func hkdf(secret: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        guard let kdf = EVP_KDF_fetch(nil, "HKDF", nil) else { fatalError("OpenSSL has no HKDF") }
        defer { EVP_KDF_free(kdf) }
        guard let ctx = EVP_KDF_CTX_new(kdf) else { fatalError("EVP_KDF_CTX_new failed") }
        defer { EVP_KDF_CTX_free(ctx) }
        var digest = Array("SHA256".utf8CString)
        var key = secret, salt = Self.salt, information = info
        let ok = digest.withUnsafeMutableBufferPointer { d in
            key.withUnsafeMutableBytes { k in
                salt.withUnsafeMutableBytes { s in
                    information.withUnsafeMutableBytes { i in
                        var params: [OSSL_PARAM] = [
                            OSSL_PARAM_construct_utf8_string("digest", d.baseAddress!, 0),
                            OSSL_PARAM_construct_octet_string("key", k.baseAddress!, k.count),
                            OSSL_PARAM_construct_octet_string("salt", s.baseAddress!, s.count),
                            OSSL_PARAM_construct_octet_string("info", i.baseAddress!, i.count),
                            OSSL_PARAM_construct_end(),
                        ]
                        return out.withUnsafeMutableBufferPointer { o in
                            params.withUnsafeMutableBufferPointer { EVP_KDF_derive(ctx, o.baseAddress!, length, $0.baseAddress!) }
                        }
                    }
                }
            }
        }
        precondition(ok == 1, "HKDF derivation failed")
        return out
    }
}
