/// A sorted set of disjoint half-open byte ranges `[lower, upper)` with a bound on
/// how many it keeps. Adding at or just after the end (a stream arriving in order)
/// is O(1) and never allocates once the first ranges exist; a range that fills or
/// opens a hole costs a binary search and a shift. When `capacity` ranges exist a
/// new disjoint range is not kept and `overflowed` says the set is incomplete.
public struct ByteRanges: Sendable, Equatable {
    /// One half-open range `[lower, upper)` of stream bytes.
    public struct Span: Sendable, Equatable {
        /// The first byte in the range.
        public var lower: UInt64
        /// The first byte past the range.
        public var upper: UInt64
        /// The range `[lower, upper)`.
        public init(_ lower: UInt64, _ upper: UInt64) { self.lower = lower; self.upper = upper }
    }

    /// The ranges, sorted, disjoint and not touching (adjacent ranges are joined).
    public private(set) var spans: [Span] = []
    /// The most ranges kept; see ``overflowed``.
    public let capacity: Int
    /// True once a disjoint range was dropped because ``capacity`` ranges existed:
    /// ``spans`` then covers less than was inserted.
    public private(set) var overflowed = false

    /// An empty set that keeps at most `capacity` ranges.
    public init(capacity: Int = 8192) {
        self.capacity = capacity
        spans.reserveCapacity(min(capacity, 64))
    }

    /// No byte covered.
    public var isEmpty: Bool { spans.isEmpty }
    /// The lowest range, nil when empty.
    public var first: Span? { spans.first }
    /// The end of the highest range (0 when empty).
    public var upperBound: UInt64 { spans.last?.upper ?? 0 }
    /// Bytes covered.
    public var count: UInt64 { spans.reduce(0) { $0 + ($1.upper - $1.lower) } }

    /// Adds `[lower, upper)`, joining every range it overlaps or touches. An empty range
    /// is ignored; a new disjoint range beyond ``capacity`` sets ``overflowed``.
    @inline(__always)
    public mutating func insert(_ lower: UInt64, _ upper: UInt64) {
        guard upper > lower else { return }
        if let last = spans.last {
            if lower >= last.lower && lower <= last.upper {
                if upper > last.upper { spans[spans.count - 1].upper = upper }
                return
            }
            if lower > last.upper {
                append(Span(lower, upper))
                return
            }
        } else {
            append(Span(lower, upper))
            return
        }
        insertSlow(lower, upper)
    }

    private mutating func append(_ s: Span) {
        if spans.count >= capacity { overflowed = true; return }
        spans.append(s)
    }

    private mutating func insertSlow(_ lower: UInt64, _ upper: UInt64) {
        // First span whose upper >= lower: it may touch or overlap the new one.
        var lo = 0, hi = spans.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if spans[mid].upper < lower { lo = mid + 1 } else { hi = mid }
        }
        var end = lo
        var newLower = lower, newUpper = upper
        while end < spans.count && spans[end].lower <= newUpper {
            newLower = min(newLower, spans[end].lower)
            newUpper = max(newUpper, spans[end].upper)
            end += 1
        }
        if end == lo {
            // Touches nothing: a new span in the middle.
            if spans.count >= capacity { overflowed = true; return }
            spans.insert(Span(newLower, newUpper), at: lo)
        } else {
            spans[lo] = Span(newLower, newUpper)
            if end > lo + 1 { spans.removeSubrange((lo + 1)..<end) }
        }
    }

    /// Removes the lowest range; the set must not be empty.
    public mutating func removeFirst() { spans.removeFirst() }

    /// Union with another set.
    public mutating func formUnion(_ other: ByteRanges) {
        for s in other.spans { insert(s.lower, s.upper) }
        if other.overflowed { overflowed = true }
    }

    /// Removes every byte at or above `limit` and returns what was removed.
    public mutating func removeAll(atOrAbove limit: UInt64) -> ByteRanges {
        var removed = ByteRanges(capacity: capacity)
        var keep = spans.count
        while keep > 0 && spans[keep - 1].upper > limit { keep -= 1 }
        guard keep < spans.count else { return removed }
        for s in spans[keep...] { removed.insert(max(s.lower, limit), s.upper) }
        let straddling = spans[keep].lower < limit ? Span(spans[keep].lower, limit) : nil
        spans.removeSubrange(keep...)
        if let straddling { spans.append(straddling) }
        return removed
    }

    /// The ranges of this set not covered by `other`.
    public func subtracting(_ other: ByteRanges) -> ByteRanges {
        var out = ByteRanges(capacity: capacity)
        var j = 0
        let o = other.spans
        for s in spans {
            var position = s.lower
            while j < o.count && o[j].upper <= position { j += 1 }
            var k = j
            while k < o.count && o[k].lower < s.upper {
                if o[k].lower > position { out.insert(position, o[k].lower) }
                position = max(position, o[k].upper)
                k += 1
            }
            if position < s.upper { out.insert(position, s.upper) }
        }
        if overflowed { out.overflowed = true }
        return out
    }

    /// The gaps in `[0, end)` not covered: the first `limit` of them, how many in
    /// all, and their total bytes.
    public func gaps(below end: UInt64, limit: Int = 32) -> (ranges: [Span], count: UInt64, bytes: UInt64) {
        var ranges: [Span] = []
        var count: UInt64 = 0, bytes: UInt64 = 0
        var position: UInt64 = 0
        func gap(_ a: UInt64, _ b: UInt64) {
            guard b > a else { return }
            count += 1; bytes += b - a
            if ranges.count < limit { ranges.append(Span(a, b)) }
        }
        for s in spans {
            if s.lower >= end { break }
            gap(position, s.lower)
            position = max(position, s.upper)
        }
        gap(position, end)
        return (ranges, count, bytes)
    }
}

/// Up to `limit` ranges kept in full, plus the count and bytes of all of them.
public struct RangeList: Sendable, Equatable {
    /// The first ``limit`` ranges, in the order added.
    public private(set) var ranges: [ByteRanges.Span] = []
    /// Ranges added in all, kept or not (contiguous additions count once).
    public private(set) var count: UInt64 = 0
    /// Bytes in all ranges added, kept or not.
    public private(set) var bytes: UInt64 = 0
    /// The most ranges kept in ``ranges``.
    public let limit: Int
    private var lastUpper: UInt64?

    /// An empty list that keeps the first `limit` ranges.
    public init(limit: Int = 32) { self.limit = limit }

    /// The first `limit` ranges of `set`, with the count and bytes of all its ranges.
    public init(_ set: ByteRanges, limit: Int = 32) {
        self.limit = limit
        ranges = Array(set.spans.prefix(limit))
        count = UInt64(set.spans.count)
        bytes = set.count
        lastUpper = set.spans.last?.upper
    }

    /// Adds a range; one that starts where the previous one ended extends it.
    public mutating func add(_ lower: UInt64, _ upper: UInt64) {
        guard upper > lower else { return }
        bytes += upper - lower
        defer { lastUpper = upper }
        if lastUpper == lower {
            if count == UInt64(ranges.count) { ranges[ranges.count - 1].upper = upper }
            return
        }
        count += 1
        if ranges.count < limit { ranges.append(ByteRanges.Span(lower, upper)) }
    }

    /// Sets the totals when the ranges were collected elsewhere (more than `limit`).
    mutating func setTotals(count: UInt64, bytes: UInt64) {
        self.count = count
        self.bytes = bytes
    }
}
