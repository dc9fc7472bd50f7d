import CCRC32C

/// The synthetic payload: a deterministic function of (stream id, byte offset),
/// so a receiver can verify content, not only the checksum.
///
/// Byte `b` of a stream is byte `b % 8` (little-endian) of
/// `W(b / 8) = ((b / 8 + 1) * 0x9E3779B97F4A7C15 mod 2^64) XOR streamID`.
/// One multiply per 8 bytes: cheap enough for line rate on both sides.
/// Offsets come off the wire, so all arithmetic wraps: a hostile offset near 2^64
/// yields a mismatch, never a trap.
///
/// A range that runs past stream byte 2^64 (senders MUST NOT send one, SPEC §2) is
/// filled as the Python reference does, word index k continuing past 2^61, and never
/// verifies: `firstMismatch` reports its first byte at or beyond 2^64 (SPEC §8: such a
/// PATTERN datagram SHOULD count as corrupt).
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

    /// True when stream bytes `[offset, offset + count)` run past 2^64.
    @inlinable @inline(__always)
    static func crossesEnd(count: Int, offset: UInt64) -> Bool {
        count > 0 && offset > UInt64.max - UInt64(count - 1)
    }

    /// Writes the pattern for stream bytes `[offset, offset + count)` at `p`.
    @inline(__always)
    public static func fill(_ p: UnsafeMutableRawPointer, count: Int, streamID: UInt64, offset: UInt64) {
        if crossesEnd(count: count, offset: offset) { return fillAcrossEnd(p, count: count, streamID: streamID, offset: offset) }
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

    /// Writes the pattern for stream bytes `[offset, offset + count)` at `p` and returns
    /// their CRC32C continuing from `crc`, in one pass: each chunk is checksummed from
    /// registers (or L1) as it is made, never read back from memory. `variant` nil: the
    /// active ``CRC32C/Variant``.
    @inline(__always)
    public static func fillChecksummed(_ p: UnsafeMutableRawPointer, count: Int, streamID: UInt64, offset: UInt64,
                                       continuing crc: UInt32 = 0, variant: CRC32C.Variant? = nil) -> UInt32 {
        if crossesEnd(count: count, offset: offset) {
            fillAcrossEnd(p, count: count, streamID: streamID, offset: offset)
            return CRC32C.checksum(UnsafeRawPointer(p), count: count, continuing: crc)
        }
        return zc_crc32c_pattern_fill(variant?.rawValue ?? -1, crc, p, count, streamID, offset)
    }

    /// The CRC32C of the `count` bytes at `p` continuing from `crc`, and whether they are
    /// exactly the pattern for stream bytes `[offset, offset + count)`, in one pass.
    /// (``firstMismatch(_:count:streamID:offset:)`` finds the byte when they are not.)
    @inline(__always)
    public static func checkChecksummed(_ p: UnsafeRawPointer, count: Int, streamID: UInt64, offset: UInt64,
                                        continuing crc: UInt32 = 0, variant: CRC32C.Variant? = nil) -> (crc: UInt32, matches: Bool) {
        if crossesEnd(count: count, offset: offset) {
            let sum = variant.map { CRC32C.checksum(UnsafeRawBufferPointer(start: p, count: count), continuing: crc, variant: $0) }
                ?? CRC32C.checksum(p, count: count, continuing: crc)
            return (sum, firstMismatch(p, count: count, streamID: streamID, offset: offset) == nil)
        }
        var mismatch: Int32 = 0
        let sum = zc_crc32c_pattern_check(variant?.rawValue ?? -1, crc, p, count, streamID, offset, &mismatch)
        return (sum, mismatch == 0)
    }

    /// Prefetches `count` cache lines `stride` bytes apart from `p` for writing (headers
    /// of a slot about to be rewritten).
    @inlinable @inline(__always)
    public static func prefetchForWrite(_ p: UnsafeMutableRawPointer, stride: Int, count: Int) {
        zc_prefetch_for_write(p, stride, count)
    }

    /// Byte by byte, word index and byte-in-word kept apart so nothing wraps at 2^64.
    @inline(never)
    static func fillAcrossEnd(_ p: UnsafeMutableRawPointer, count: Int, streamID: UInt64, offset: UInt64) {
        var k = offset >> 3
        var j = offset & 7
        for pos in 0..<count {
            p.storeBytes(of: UInt8(truncatingIfNeeded: word(streamID: streamID, index: k) >> (j << 3)), toByteOffset: pos, as: UInt8.self)
            j += 1
            if j == 8 { j = 0; k &+= 1 }
        }
    }

    /// Returns the index of the first byte that differs from the pattern, or nil.
    /// For a range past 2^64, the first differing byte below 2^64, else the first byte beyond.
    @inline(__always)
    public static func firstMismatch(_ p: UnsafeRawPointer, count total: Int, streamID: UInt64, offset: UInt64) -> Int? {
        // Past 2^64: check the bytes below it (offset > 0 there), then fail at the first beyond.
        let count = crossesEnd(count: total, offset: offset) ? Int(0 &- offset) : total
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
        return count < total ? count : nil
    }
}
