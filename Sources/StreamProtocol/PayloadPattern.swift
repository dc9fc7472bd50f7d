/// The synthetic payload: a deterministic function of (stream id, byte offset),
/// so a receiver can verify content, not only the checksum.
///
/// Byte `b` of a stream is byte `b % 8` (little-endian) of
/// `W(b / 8) = ((b / 8 + 1) * 0x9E3779B97F4A7C15 mod 2^64) XOR streamID`.
/// One multiply per 8 bytes: cheap enough for line rate on both sides.
/// Offsets come off the wire, so all arithmetic wraps: a hostile offset near 2^64
/// yields a mismatch, never a trap.
public enum PayloadPattern {
    /// `M`, 2^64 divided by the golden ratio, so consecutive words differ in many bits.
    public static let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// `W(k)`: the 8-byte word at stream bytes `[8k, 8k + 8)`, written little-endian.
    @inline(__always)
    public static func word(streamID: UInt64, index k: UInt64) -> UInt64 {
        (k &+ 1) &* multiplier ^ streamID
    }

    /// The pattern byte at stream offset `b`.
    @inline(__always)
    public static func byte(streamID: UInt64, offset b: UInt64) -> UInt8 {
        UInt8(truncatingIfNeeded: word(streamID: streamID, index: b >> 3) >> ((b & 7) << 3))
    }

    /// Writes the pattern for stream bytes `[offset, offset + count)` at `p`.
    @inline(__always)
    public static func fill(_ p: UnsafeMutableRawPointer, count: Int, streamID: UInt64, offset: UInt64) {
        var pos = 0
        var b = offset
        while pos < count && b & 7 != 0 {
            p.storeBytes(of: byte(streamID: streamID, offset: b), toByteOffset: pos, as: UInt8.self)
            pos += 1; b &+= 1
        }
        var k = b >> 3
        // (k + 1) * M grows by M per word: an add instead of a multiply, four
        // words per step in a SIMD register (one 32-byte store).
        var lanes = SIMD4<UInt64>(k &+ 1, k &+ 2, k &+ 3, k &+ 4) &* multiplier
        let step = SIMD4<UInt64>(repeating: multiplier &* 4)
        let id = SIMD4<UInt64>(repeating: streamID)
        while pos + 32 <= count {
            (p + pos).storeBytes(of: lanes ^ id, as: SIMD4<UInt64>.self)
            lanes &+= step
            pos += 32; k &+= 4
        }
        while pos + 8 <= count {
            p.storeBytes(of: word(streamID: streamID, index: k).littleEndian, toByteOffset: pos, as: UInt64.self)
            pos += 8; k &+= 1
        }
        b = k &<< 3
        while pos < count {
            p.storeBytes(of: byte(streamID: streamID, offset: b), toByteOffset: pos, as: UInt8.self)
            pos += 1; b &+= 1
        }
    }

    /// Returns the index of the first byte that differs from the pattern, or nil.
    @inline(__always)
    public static func firstMismatch(_ p: UnsafeRawPointer, count: Int, streamID: UInt64, offset: UInt64) -> Int? {
        var pos = 0
        var b = offset
        while pos < count && b & 7 != 0 {
            if p.load(fromByteOffset: pos, as: UInt8.self) != byte(streamID: streamID, offset: b) { return pos }
            pos += 1; b &+= 1
        }
        var k = b >> 3
        var diff: UInt64 = 0
        let wordStart = pos
        var lanes = SIMD4<UInt64>(k &+ 1, k &+ 2, k &+ 3, k &+ 4) &* multiplier
        let step = SIMD4<UInt64>(repeating: multiplier &* 4)
        let id = SIMD4<UInt64>(repeating: streamID)
        var diffs = SIMD4<UInt64>(repeating: 0)
        while pos + 32 <= count {
            diffs |= (p + pos).loadUnaligned(as: SIMD4<UInt64>.self) ^ (lanes ^ id)
            lanes &+= step
            pos += 32; k &+= 4
        }
        diff = diffs[0] | diffs[1] | diffs[2] | diffs[3]
        while pos + 8 <= count {
            diff |= p.loadUnaligned(fromByteOffset: pos, as: UInt64.self) ^ word(streamID: streamID, index: k).littleEndian
            pos += 8; k &+= 1
        }
        if diff != 0 {
            // Slow path only on failure: find the exact byte for the report.
            var i = wordStart
            while i < pos {
                if p.load(fromByteOffset: i, as: UInt8.self) != byte(streamID: streamID, offset: offset &+ UInt64(i)) { return i }
                i += 1
            }
        }
        b = k &<< 3
        while pos < count {
            if p.load(fromByteOffset: pos, as: UInt8.self) != byte(streamID: streamID, offset: b) { return pos }
            pos += 1; b &+= 1
        }
        return nil
    }
}
