/// Which packet numbers of one origin's keyed datagrams have been accepted (SPEC §14.5):
/// the highest, and a bitmap of it and the ``size`` − 1 numbers below it. A number seen
/// before, or ``size`` or more below the highest, is a replay. Checked only after the tag, so a
/// forger cannot move the window; marked only once the datagram is taken.
///
/// 65536 numbers (8 KiB), as the sequence tracker's reorder window: a datagram that far
/// out of order could not be classified anyway.
public struct ReplayWindow: Sendable {
    /// Packet numbers the window remembers below the highest.
    public static let size: UInt64 = 65536
    private var bits: [UInt64]
    /// One above the highest packet number accepted; 0 before the first.
    public private(set) var top: UInt64 = 0

    public init() { bits = [UInt64](repeating: 0, count: Int(Self.size / 64)) }

    /// True when `n` would be new: above everything accepted, or inside the window and not seen.
    @inline(__always)
    public func isFresh(_ n: UInt64) -> Bool {
        if n >= top { return true }
        if top - n > Self.size { return false }
        let i = Int(n % Self.size)
        return bits[i >> 6] & (1 << UInt64(i & 63)) == 0
    }

    /// Marks `n` seen (call only for a fresh, authenticated number).
    @inline(__always)
    public mutating func accept(_ n: UInt64) {
        if n >= top {
            // Clear the bits of the numbers the window slides over: [top, n].
            let advance = n - top + 1
            if advance >= Self.size {
                for k in bits.indices { bits[k] = 0 }
            } else {
                var m = top
                while m <= n {
                    let i = Int(m % Self.size)
                    if i & 63 == 0 && n - m >= 63 { bits[i >> 6] = 0; m += 64; continue }
                    bits[i >> 6] &= ~(1 << UInt64(i & 63))
                    m += 1
                }
            }
            top = n + 1
        }
        let i = Int(n % Self.size)
        bits[i >> 6] |= 1 << UInt64(i & 63)
    }

    /// ``isFresh(_:)`` then ``accept(_:)``: true when `n` was fresh.
    @inline(__always)
    public mutating func take(_ n: UInt64) -> Bool {
        guard isFresh(n) else { return false }
        accept(n)
        return true
    }
}
