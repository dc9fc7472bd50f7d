/// Per-stream sequence accounting in O(1) per datagram and bounded memory.
///
/// A bitmap remembers which of the last `window` sequence numbers arrived. A new
/// highest sequence slides the window forward; sequence numbers that leave it
/// unseen are final losses (recorded as ranges, the first `maxRanges` kept). A
/// sequence below the highest that was not seen is *reordered*; one already seen
/// is a *duplicate*; one older than the window can no longer be classified and is
/// counted *late*. A jump of any size costs at most one pass over the bitmap, so a
/// hostile sender cannot make the tracker allocate or loop without bound.
///
/// The END's total (``limit``) splits sequence numbers into stream data, below it,
/// and *beyond END*, at or above it (SPEC §9): those never count as unique, lost or
/// in a loss range. Numbers the END later shows to be beyond it are taken back out of
/// the accounts when it arrives (``setLimit(_:)``); that is exact while the loss
/// ranges it needs are among the last ``recentRangeCapacity`` kept, else
/// ``exact`` turns false and the report says so.
public struct SequenceTracker: Sendable {
    /// The default window: 65536 sequence numbers (8 KiB of bitmap per stream).
    public static let defaultWindow = 1 << 16
    /// Loss ranges kept in ``lostRanges``; more are counted in ``lostRangeCount``.
    public static let maxRanges = 32
    /// The most recent loss ranges kept for taking back numbers beyond a late END.
    public static let recentRangeCapacity = 256

    /// How far below ``highest`` an arrival can still be classified (a power of two, at least 64).
    public let window: UInt64
    private var bits: [UInt64]
    private let mask: UInt64

    /// Highest sequence number seen (valid once `started`).
    public private(set) var highest: UInt64 = 0
    /// Lowest sequence number counted new (valid once `started`): everything below it
    /// is the stream's head that never arrived (a multicast receiver that joined late).
    public private(set) var lowest: UInt64 = 0
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
    /// The END's total once known (``setLimit(_:)``); `UInt64.max` until then, which
    /// still makes sequence 2^64-1 beyond every stream (no END can announce 2^64).
    public private(set) var limit: UInt64 = .max
    /// True once ``setLimit(_:)`` fixed the total.
    public var hasLimit: Bool { limitSet }
    private var limitSet = false
    /// Intact arrivals at or above ``limit``: each one after the limit was known,
    /// plus the distinct numbers taken back when it arrived. Never unique or lost.
    public private(set) var beyondEnd: UInt64 = 0
    /// False when taking back numbers beyond a late END needed loss ranges that were
    /// no longer kept (hostile input only): `unique` and `lost` may then be off.
    public private(set) var exact = true
    /// The latest loss ranges, oldest first (a ring of ``recentRangeCapacity``).
    private var recent: [ClosedRange<UInt64>] = []
    private var recentHead = 0
    /// Upper bound of the newest range pushed out of `recent` (nil: none was).
    private var recentEvictedUpTo: UInt64?

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
        /// At or above the END's total (or 2^64-1): not stream data.
        case beyondEnd
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

    /// True when `q` was received as stream data and is still within the window.
    public func contains(_ q: UInt64) -> Bool {
        started && q <= highest && highest - q < window && isSet(q)
    }

    /// The lowest sequence number the bitmap still classifies (the window's bottom, from
    /// ``highest``); numbers below it can no longer be told received or not.
    public var windowLow: UInt64 { highest >= window - 1 ? highest - (window - 1) : 0 }

    /// The smallest sequence number at or above `from` not received (reliable streams' cumulative
    /// acknowledgement, SPEC §13.5): a scan of the bitmap a word at a time. Numbers below the
    /// window cannot be told and are passed over; at most ``highest`` + 1 (or the END's total).
    public func firstMissing(from: UInt64) -> UInt64 {
        guard started else { return min(from, limit) }
        let low = windowLow
        var q = max(from, low)
        while q <= highest {
            let i = q & mask
            let shift = i & 63
            let left = 64 - shift
            let missing = ~(bits[Int(i >> 6)] >> shift)
            let k = UInt64(missing.trailingZeroBitCount)
            if k < left { return min(q + k, highest + 1, limit) }
            q += left
        }
        return min(max(from, highest + 1), limit)
    }

    /// Calls `body` with every sequence number in `[from, end)` not received, in order, until
    /// it returns false; numbers above ``highest`` are all missing, numbers below the window
    /// are passed over. A word of the bitmap at a time: cheap when little is missing.
    public func forEachMissing(from: UInt64, below end: UInt64, _ body: (UInt64) -> Bool) {
        var q = from
        if started {
            let low = windowLow
            if q < low { q = low }
            while q <= highest && q < end {
                let i = q & mask
                let shift = i & 63
                let left = 64 - shift
                var missing = ~(bits[Int(i >> 6)] >> shift)
                if left < 64 { missing &= (1 << left) - 1 }
                while missing != 0 {
                    let m = q + UInt64(missing.trailingZeroBitCount)
                    if m > highest || m >= end { break }
                    if !body(m) { return }
                    missing &= missing - 1
                }
                q += left
            }
            q = max(from, highest + 1)
        }
        while q < end {
            if !body(q) { return }
            q += 1
        }
    }

    /// Records one arrival.
    @inline(__always) @discardableResult
    public mutating func record(_ s: UInt64) -> Outcome {
        if s >= limit {
            beyondEnd &+= 1
            return .beyondEnd
        }
        if !started {
            begin(at: s)
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
        if s < lowest { lowest = s }
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
            let newest = (recentHead + recent.count - 1) % Self.recentRangeCapacity
            recent[newest] = recent[newest].lowerBound...r.upperBound
        } else {
            lostRangeCount += 1
            if lostRanges.count < Self.maxRanges { lostRanges.append(r) }
            if recent.count < Self.recentRangeCapacity {
                recent.append(r)
            } else {
                recentEvictedUpTo = recent[recentHead].upperBound
                recent[recentHead] = r
                recentHead = (recentHead + 1) % Self.recentRangeCapacity
            }
        }
        lastLossEnd = r.upperBound
    }

    /// Fixes the stream's total (the first END's sequence field): numbers at or
    /// above it are beyond END from now on, and those already counted are taken back
    /// out of `unique` (and their finalized losses out of the loss count and ranges).
    /// Returns how many distinct numbers were taken back. Later calls do nothing.
    @discardableResult
    public mutating func setLimit(_ total: UInt64) -> UInt64 {
        guard !limitSet else { return 0 }
        limitSet = true
        limit = total
        guard started, highest >= total else { return 0 }
        let low = windowLow
        let lostRangesBefore = lostRanges, lostRangeCountBefore = lostRangeCount
        var taken: UInt64 = 0
        // 1. Numbers still in the window: known exactly from the bitmap.
        var q = max(total, low)
        while true {
            if isSet(q) { taken += 1; clear(q) }
            if q == highest { break }
            q += 1
        }
        // 2. Numbers in [total, low) already left the window: received = length - losses,
        //    the losses read from the recent loss ranges (all of them, if none that
        //    reaches `total` was pushed out of the ring).
        if total < low {
            if let evicted = recentEvictedUpTo, evicted >= total { exact = false }
            var lossesAbove: UInt64 = 0
            var rangesAbove: UInt64 = 0
            var keptBelow: [ClosedRange<UInt64>] = []
            for i in 0..<recent.count {
                let r = recent[(recentHead + i) % Self.recentRangeCapacity]
                if r.upperBound < total { keptBelow.append(r); continue }
                let from = max(r.lowerBound, total)
                lossesAbove += r.upperBound - from + 1
                if r.lowerBound >= total { rangesAbove += 1 } else { keptBelow.append(r.lowerBound...(total - 1)) }
            }
            let received = (low - total) - min(low - total, lossesAbove)
            taken += received
            lostFinal -= min(lostFinal, lossesAbove)
            lostRangeCount -= min(lostRangeCount, rangesAbove)
            recent = keptBelow
            recentHead = 0
            lastLossEnd = keptBelow.last?.upperBound ?? (total == 0 ? nil : recentEvictedUpTo.map { min($0, total - 1) })
        }
        // The first ranges kept for the report: those below `total`, the one across it cut.
        lostRanges = lostRanges.compactMap { r in
            r.lowerBound >= total ? nil : r.lowerBound...min(r.upperBound, total - 1)
        }
        // Inexact (ranges were missing): never take back more than was counted, and never
        // the numbers below the total still in the window, which are known to have arrived
        // (SPEC §9.8: unique stays a true lower bound); received = unique + duplicates +
        // late + beyondEnd still holds.
        if unique < taken || !exact {
            // Known to have arrived below the total: those still in the window (bitmap), and
            // below the window whatever the first kept loss ranges do not cover, when they
            // reach that far (they are the first ranges of all, never evicted).
            var known: UInt64 = 0
            if total > low {
                var q = low
                while q < total && q <= highest { if isSet(q) { known += 1 }; q += 1 }
            }
            let below = min(total, low)
            if below > 0 && (lostRangeCountBefore <= UInt64(Self.maxRanges)
                             || (lostRangesBefore.last.map { $0.upperBound >= below - 1 } ?? false)) {
                let lossesBelow = lostRangesBefore.reduce(UInt64(0)) { sum, r in
                    r.lowerBound >= below ? sum : sum + (min(r.upperBound, below - 1) - r.lowerBound + 1)
                }
                known += below - min(below, lossesBelow)
            }
            let most = unique - min(unique, known)
            if taken > most { exact = false; taken = most }
        }
        unique -= taken
        beyondEnd &+= taken
        return taken
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
    /// `reordered` is capped at `unique + beyondEnd`. `received = unique + duplicates +
    /// late + beyondEnd` holds for the sum of both sides. With SO_REUSEPORT a flow hashes to one
    /// socket, so in practice only one side has data and the merge is exact.
    public mutating func merge(_ other: SequenceTracker) {
        // This side's END total wins over the other's (a second, different END is a
        // mismatch the stream counts; the first one seen fixes the totals).
        let preferredLimit: UInt64? = limitSet ? limit : (other.limitSet ? other.limit : nil)
        var base = self
        var add = other
        if add.started && (!base.started || add.unique > base.unique) { swap(&base, &add) }
        if add.started {
            let low: UInt64 = add.highest >= add.window - 1 ? add.highest - (add.window - 1) : 0
            var inWindow: UInt64 = 0
            var q = low
            while q <= add.highest {
                if add.isSet(q) { inWindow += 1; base.absorb(q) }
                if q == add.highest { break }
                q += 1
            }
            let older = add.unique - min(add.unique, inWindow)
            base.late += older
            base.mergeUnresolved += older
        }
        base.late += add.late
        base.mergeUnresolved += add.mergeUnresolved
        base.duplicates += add.duplicates
        base.beyondEnd &+= add.beyondEnd
        base.exact = base.exact && add.exact
        base.maxReorderDistance = max(base.maxReorderDistance, add.maxReorderDistance)
        if !base.limitSet, let l = preferredLimit { base.setLimit(l) }
        base.reordered = min(base.reordered + add.reordered, base.unique + base.beyondEnd)
        self = base
    }

    /// The stream's first intact arrival. Streams start at 0: anything before it was lost.
    @inline(__always)
    private mutating func begin(at s: UInt64) {
        started = true
        if s > 0 { advance(to: s, from: nil) }
        highest = s
        lowest = s
        set(s)
        unique += 1
    }

    /// Like `record`, for a replayed arrival: no reorder accounting.
    private mutating func absorb(_ s: UInt64) {
        if s >= limit { beyondEnd &+= 1; return }
        if !started {
            begin(at: s)
            return
        }
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
        if s < lowest { lowest = s }
    }

    /// Closes the books: with `expected` sequence numbers in the stream (the END's
    /// total, when ``setLimit(_:)`` was not called with it; else ``limit`` is used,
    /// and without either, highest + 1), returns the lost count and the first ranges.
    public func finish(expected: UInt64? = nil) -> (lost: UInt64, ranges: [ClosedRange<UInt64>], rangeCount: UInt64) {
        var copy = self
        if let expected, !limitSet { copy.setLimit(expected) }
        let total: UInt64 = copy.limitSet ? copy.limit : (started ? highest + 1 : 0)
        guard started else {
            return (total, total > 0 ? [0...(total - 1)] : [], total > 0 ? 1 : 0)
        }
        // highest <= 2^64-2 (2^64-1 is always beyond END), so highest + 1 cannot wrap.
        let afterHighest = highest + 1
        // Everything still in the window below `total` that never arrived.
        let low = windowLow
        if total > low {
            let top = min(highest, total - 1)
            var q = low
            while q <= top {
                if !copy.isSet(q) { copy.addLoss(q...q) }
                if q == top { break }
                q += 1
            }
        }
        if total > afterHighest { copy.addLoss(afterHighest...(total - 1)) }
        // unique counts only numbers below `total` that arrived while in the window, so
        // this equals the sum of the ranges: every number below `total` is unique or lost.
        let lost = total - min(total, copy.unique)
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
