/// The 40 bytes behind the payload of every keyed (version 4) datagram (SPEC §14.3):
///
/// | off | size | field |
/// |-----|------|-------|
/// |   0 |    4 | key id: which secret (``StreamSecret/keyID``) |
/// |   4 |    1 | suite: 1 authenticated, 2 authenticated and the payload encrypted |
/// |   5 |    3 | 0 |
/// |   8 |    8 | origin: 0 from the stream's source, else the sending receiver's id |
/// |  16 |    8 | packet number: the nonce, and what the replay window tracks |
/// |  24 |   16 | tag: AES-256-GCM's, under the origin's key |
///
/// A trailer, not a header extension, so the payload stays where every datagram of every
/// version has it (behind 48 bytes) and a datagram's length still follows from its header.
public struct AuthTrailer: Equatable, Sendable {
    /// Bytes in a trailer.
    public static let size = 40
    /// Where the tag starts within the trailer.
    public static let tagOffset = 24
    /// Bytes in the tag.
    public static let tagSize = 16

    /// What the tag protects.
    public enum Suite: UInt8, Sendable {
        /// The whole datagram is authenticated (AES-256-GCM with it all as associated data: GMAC).
        case authenticated = 1
        /// Header and trailer are authenticated, the payload encrypted (AES-256-GCM).
        case encrypted = 2
    }

    /// Which secret the sender used.
    public var keyID: UInt32
    /// Authenticated only, or encrypted too (a raw value, checked by the reader).
    public var suite: UInt8
    /// 0: the stream's source sent it; else the receiver id of the receiver that did.
    public var origin: UInt64
    /// The nonce: never repeated under one key; the replay window's number.
    public var packetNumber: UInt64

    public init(keyID: UInt32, suite: Suite, origin: UInt64, packetNumber: UInt64) {
        self.keyID = keyID
        self.suite = suite.rawValue
        self.origin = origin
        self.packetNumber = packetNumber
    }

    /// Reads the first 24 bytes of a trailer at `p` (the tag is not read).
    @inlinable
    public init(reading p: UnsafeRawPointer) {
        keyID = UInt32(bigEndian: p.loadUnaligned(as: UInt32.self))
        suite = p.load(fromByteOffset: 4, as: UInt8.self)
        origin = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        packetNumber = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
    }

    /// Writes the first 24 bytes at `p` (the tag is written by the authenticator).
    @inlinable
    public func write(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: keyID.bigEndian, as: UInt32.self)
        p.storeBytes(of: suite, toByteOffset: 4, as: UInt8.self)
        p.storeBytes(of: 0, toByteOffset: 5, as: UInt8.self)
        p.storeBytes(of: 0, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: origin.bigEndian, toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: packetNumber.bigEndian, toByteOffset: 16, as: UInt64.self)
    }
}
