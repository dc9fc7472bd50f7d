/// Per-stream sequence accounting in O(1) per datagram and bounded memory.
///
/// A bitmap remembers which of the last `window` sequence numbers arrived. A new
/// highest sequence slides the window forward; sequence numbers that leave it
/// unseen are final losses (recorded as ranges, the first `maxRanges` kept). A
/// sequence below the highest that was not seen is *reordered*; one already seen
/// is a *duplicate*; one older than the window can no longer be classified and is
/// counted *late*. A jump of any size costs at most one pass over the bitmap, so a
/// hostile sender cannot make the tracker allocate or loop without bound.
public struct SequenceTracker: Sendable {
    /// The default window: 65536 sequence numbers (8 KiB of bitmap per stream).
    public static let defaultWindow = 1 << 16
    /// Loss ranges kept in ``lostRanges``; more are counted in ``lostRangeCount``.
    public static let maxRanges = 32

    /// How far below ``highest`` an arrival can still be classified (a power of two, at least 64).
    public let window: UInt64
    private var bits: [UInt64]
    private let mask: UInt64

    /// Highest sequence number seen (valid once `started`).
    public private(set) var highest: UInt64 = 0
    /// True once the first sequence number arrived.
    public private(set) var started = false

    /// Distinct sequence numbers received.
    public private(set) var unique: UInt64 = 0
    /// Arrivals of a sequence number already seen (within the window).
    public private(set) var duplicates: UInt64 = 0
    /// New sequence numbers that arrived below ``highest``.
    public private(set) var reordered: UInt64 = 0
    /// The largest distance below ``highest`` at which a reordered number arrived.
    public private(set) var maxReorderDistance: UInt64 = 0
    /// Arrived after their sequence number had left the window (counted lost then).
    public private(set) var late: UInt64 = 0
    /// Losses made final as the window moved on.
    public private(set) var lostFinal: UInt64 = 0
    /// The first `maxRanges` ranges of lost sequence numbers, in order.
    public private(set) var lostRanges: [ClosedRange<UInt64>] = []
    /// How many loss ranges there were in all (including those not kept).
    public private(set) var lostRangeCount: UInt64 = 0
    private var lastLossEnd: UInt64?

    /// A tracker with nothing seen.
    ///
    /// - Precondition: `window` is a power of two, at least 64.
    public init(window: Int = SequenceTracker.defaultWindow) {
        precondition(window >= 64 && window & (window - 1) == 0, "window must be a power of two >= 64")
        self.window = UInt64(window)
        self.mask = UInt64(window - 1)
        self.bits = [UInt64](repeating: 0, count: window / 64)
        lostRanges.reserveCapacity(Self.maxRanges)
    }

    /// How ``record(_:)`` classified an arrival.
    public enum Outcome: Equatable, Sendable {
        /// One above ``SequenceTracker/highest`` (or 0 as the first arrival).
        case inOrder
        /// Above ``SequenceTracker/highest`` + 1: the numbers skipped are missing for now.
        case gapAhead
        /// New, but below ``SequenceTracker/highest``: it fills a gap.
        case reordered
        /// Seen before: not counted as unique again.
        case duplicate
        /// Older than the window: cannot be told new from duplicate; its number stays lost.
        case late
    }

    @inline(__always) private func isSet(_ s: UInt64) -> Bool {
        let i = s & mask
        return bits[Int(i >> 6)] & (1 << (i & 63)) != 0
    }

    @inline(__always) private mutating func set(_ s: UInt64) {
        let i = s & mask
        bits[Int(i >> 6)] |= 1 << (i & 63)
    }

    @inline(__always) private mutating func clear(_ s: UInt64) {
        let i = s & mask
        bits[Int(i >> 6)] &= ~(1 << (i & 63))
    }

    /// Records one arrival.
    @inline(__always) @discardableResult
    public mutating func record(_ s: UInt64) -> Outcome {
        if !started {
            // Streams start at 0: anything before the first arrival was lost.
            started = true
            if s > 0 { advance(to: s, from: nil) }
            highest = s
            set(s)
            unique += 1
            return s == 0 ? .inOrder : .gapAhead
        }
        if s > highest {
            let outcome: Outcome = s == highest + 1 ? .inOrder : .gapAhead
            advance(to: s, from: highest)
            highest = s
            set(s)
            unique += 1
            return outcome
        }
        let distance = highest - s
        if distance >= window {
            late += 1
            return .late
        }
        if isSet(s) {
            duplicates += 1
            return .duplicate
        }
        set(s)
        unique += 1
        reordered += 1
        if distance > maxReorderDistance { maxReorderDistance = distance }
        return .reordered
    }

    /// Slides the window so `s` is its top; sequence numbers pushed out unseen are lost.
    private mutating func advance(to s: UInt64, from previous: UInt64?) {
        // The window before the move covers [low, previous]; after it, [s - window + 1, s].
        let oldLow: UInt64 = previous.map { $0 >= window - 1 ? $0 - (window - 1) : 0 } ?? 0
        let oldTop: UInt64? = previous
        let newLow: UInt64 = s >= window - 1 ? s - (window - 1) : 0
        // 1. Tracked numbers leaving the window: [oldLow, min(oldTop, newLow - 1)].
        if let oldTop, newLow > oldLow {
            let end = min(oldTop, newLow - 1)
            var q = oldLow
            while q <= end {
                if !isSet(q) { addLoss(q...q) }
                clear(q)
                q += 1
            }
        }
        // 2. Numbers never tracked that are already behind the new window:
        //    [firstUntracked, newLow - 1] where firstUntracked = oldTop + 1 (or 0).
        let firstUntracked: UInt64 = oldTop.map { $0 + 1 } ?? 0
        if newLow > firstUntracked {
            addLoss(firstUntracked...(newLow - 1))
        }
        // 3. Numbers entering the window between the old top and s start unseen.
        let enterFrom = max(firstUntracked, newLow)
        if s > enterFrom {
            if s - enterFrom >= window {
                for w in bits.indices { bits[w] = 0 }
            } else {
                var q = enterFrom
                while q < s { clear(q); q += 1 }
            }
        }
        clear(s)
    }

    private mutating func addLoss(_ r: ClosedRange<UInt64>) {
        // r may span more than Int.max numbers (hostile sequence jumps): count in UInt64.
        lostFinal = lostFinal.saturatingAdd((r.upperBound - r.lowerBound).saturatingAdd(1))
        if let end = lastLossEnd, end &+ 1 == r.lowerBound {
            // Continues the latest range: extend it if it is one we kept.
            if lostRangeCount == UInt64(lostRanges.count) {
                lostRanges[lostRanges.count - 1] = lostRanges[lostRanges.count - 1].lowerBound...r.upperBound
            }
        } else {
            lostRangeCount += 1
            if lostRanges.count < Self.maxRanges { lostRanges.append(r) }
        }
        lastLossEnd = r.upperBound
    }

    /// Arrivals that another tracker of the same stream counted as unique but that
    /// `merge` could not place (they had left that tracker's window): counted
    /// `late` here, so their sequence numbers stay lost unless this side saw them.
    public private(set) var mergeUnresolved: UInt64 = 0

    /// Merges the tracker another thread kept for the same stream.
    ///
    /// Conservative by construction: the result never reports less loss than the
    /// truth. The side with more unique arrivals is the base; the other side's
    /// window (its last `window` sequence numbers, known exactly from its bitmap)
    /// is replayed into it in increasing order, each number becoming unique,
    /// duplicate or late exactly as if it had arrived last. The other side's
    /// arrivals older than its window are known only as a count: they are added
    /// to `late` (received, not unique), and `mergeUnresolved` says how many.
    /// Counters that cannot be replayed (duplicates, late, reordered) are summed;
    /// `reordered` is capped at `unique`. `received = unique + duplicates + late`
    /// holds for the sum of both sides. With SO_REUSEPORT a flow hashes to one
    /// socket, so in practice only one side has data and the merge is exact.
    public mutating func merge(_ other: SequenceTracker) {
        guard other.started else { return }
        guard started else { self = other; return }
        var base = self
        var add = other
        if add.unique > base.unique { swap(&base, &add) }
        let low: UInt64 = add.highest >= add.window - 1 ? add.highest - (add.window - 1) : 0
        var inWindow: UInt64 = 0
        var q = low
        while q <= add.highest {
            if add.isSet(q) { inWindow += 1; base.absorb(q) }
            if q == UInt64.max { break }
            q += 1
        }
        let older = add.unique - min(add.unique, inWindow)
        base.late += add.late + older
        base.mergeUnresolved += add.mergeUnresolved + older
        base.duplicates += add.duplicates
        base.reordered = min(base.reordered + add.reordered, base.unique)
        base.maxReorderDistance = max(base.maxReorderDistance, add.maxReorderDistance)
        self = base
    }

    /// Like `record`, for a replayed arrival: no reorder accounting.
    private mutating func absorb(_ s: UInt64) {
        if s > highest {
            advance(to: s, from: highest)
            highest = s
            set(s)
            unique += 1
            return
        }
        if highest - s >= window { late += 1; return }
        if isSet(s) { duplicates += 1; return }
        set(s)
        unique += 1
    }

    /// Closes the books: with `expected` sequence numbers in the stream (from END,
    /// else highest + 1), returns the lost count and the complete first ranges.
    public func finish(expected: UInt64?) -> (lost: UInt64, ranges: [ClosedRange<UInt64>], rangeCount: UInt64) {
        guard started else {
            let total = expected ?? 0
            return (total, total > 0 ? [0...(total - 1)] : [], total > 0 ? 1 : 0)
        }
        // Sequence numbers run 0...UInt64.max: a count saturates rather than wraps.
        let afterHighest = highest.saturatingAdd(1)
        let total = max(expected ?? afterHighest, unique)
        var copy = self
        // Everything still in the window below `total` that never arrived.
        let low: UInt64 = highest >= window - 1 ? highest - (window - 1) : 0
        if total > 0 {
            let top = min(highest, total - 1)
            var q = low
            while q <= top {
                if !copy.isSet(q) { copy.addLoss(q...q) }
                if q == top { break } // top may be UInt64.max
                q += 1
            }
        }
        if highest < .max && total > afterHighest { copy.addLoss(afterHighest...(total - 1)) }
        // unique counts only numbers that arrived while in the window, so this is exact
        // except for `late` arrivals, which were already charged as lost.
        let lost = total - min(total, unique)
        return (lost, copy.lostRanges, copy.lostRangeCount)
    }

}

extension UInt64 {
    /// `self + other`, or `UInt64.max` where that would overflow: counts of sequence
    /// numbers from hostile or extreme streams stay meaningful instead of trapping.
    @inline(__always)
    public func saturatingAdd(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
