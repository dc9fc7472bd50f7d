import Histogram

/// One-way latency (receive wall clock − header timestamp) as an HDR histogram:
/// 3 significant digits (64 ns steps below 131 µs) up to 60 s, counts allocated once when the stream
/// is created (~170 KB), so recording is a few integer operations and never
/// allocates. Values above 60 s are recorded as 60 s (and counted); negative
/// values (the sender's clock ahead of ours: only meaningful on one host or with
/// synchronised clocks) are recorded as 0 and counted.
///
/// Datagrams of one send batch carry the same timestamp and those of one receive
/// batch the same arrival time, so equal consecutive values are counted and
/// recorded once (`record(value, count:)`) when the value changes.
public struct LatencyHistogram: Sendable {
    /// The largest latency tracked, 60 s; larger samples are recorded as this and counted in ``clamped``.
    public static let highestNanoseconds: UInt64 = 60_000_000_000
    private var recorded = Histogram<UInt64>(lowestDiscernibleValue: 100,
                                                          highestTrackableValue: LatencyHistogram.highestNanoseconds,
                                                          numberOfSignificantValueDigits: .three)
    /// Samples whose timestamp lay in our future (clock skew).
    public private(set) var negative: UInt64 = 0
    /// Samples above `highestNanoseconds`, recorded as that.
    public private(set) var clamped: UInt64 = 0
    /// The smallest sample, exact (may be negative); `Int64.max` while empty.
    public private(set) var minNanoseconds: Int64 = .max
    /// The largest sample, exact (not clamped); `Int64.min` while empty.
    public private(set) var maxNanoseconds: Int64 = .min
    private var pendingValue: UInt64 = .max
    private var pendingCount: UInt64 = 0
    /// Coarse per-bucket counts at ``exportBoundsNanoseconds`` (last slot: above the
    /// largest bound), kept beside the HDR counts for metrics exporters: reading them is
    /// a copy of 21 integers, not a walk over the HDR histogram (see ``exportBuckets``).
    private var coarse = [UInt64](repeating: 0, count: LatencyHistogram.exportBoundsNanoseconds.count + 1)
    /// The sum of the recorded (clamped, negative as 0) samples in nanoseconds, wrapping.
    private var coarseSum: UInt64 = 0

    /// An empty histogram; allocates its counts (~170 KB) now so recording never does.
    public init() {}

    /// The histogram with every sample in it.
    public var histogram: Histogram<UInt64> {
        var copy = self
        copy.flush()
        return copy.recorded
    }

    @inline(__always)
    private mutating func flush() {
        if pendingCount > 0 {
            recorded.record(pendingValue, count: pendingCount)
            coarse[Self.exportBucket(pendingValue)] &+= pendingCount
            coarseSum &+= pendingValue &* pendingCount
            pendingCount = 0
        }
    }

    /// Records one sample in nanoseconds (negative: clock skew, recorded as 0).
    /// Never allocates.
    @inline(__always)
    public mutating func record(_ latencyNanoseconds: Int64) {
        if latencyNanoseconds < minNanoseconds { minNanoseconds = latencyNanoseconds }
        if latencyNanoseconds > maxNanoseconds { maxNanoseconds = latencyNanoseconds }
        var v: UInt64
        if latencyNanoseconds < 0 {
            negative &+= 1
            v = 0
        } else {
            v = UInt64(latencyNanoseconds)
            if v > Self.highestNanoseconds { clamped &+= 1; v = Self.highestNanoseconds }
        }
        if v == pendingValue { pendingCount &+= 1; return }
        flush()
        pendingValue = v
        pendingCount = 1
    }

    /// Samples recorded.
    public var count: UInt64 { recorded.totalCount + pendingCount }

    /// Adds every sample of `other` (another stream or thread), with its counters and extremes.
    public mutating func add(_ other: LatencyHistogram) {
        flush()
        recorded.add(other.histogram)
        let o = other.exportBuckets
        for i in coarse.indices { coarse[i] &+= o.counts[i] }
        coarseSum &+= o.sumNanoseconds
        negative &+= other.negative
        clamped &+= other.clamped
        minNanoseconds = min(minNanoseconds, other.minNanoseconds)
        maxNanoseconds = max(maxNanoseconds, other.maxNanoseconds)
    }

    /// Percentiles in microseconds.
    public struct Summary: Sendable, Equatable {
        /// Samples recorded.
        public var samples: UInt64
        /// The smallest sample, exact.
        public var minMicroseconds: Double
        /// Median, to the histogram's resolution (3 significant digits).
        public var p50: Double
        /// 99th percentile.
        public var p99: Double
        /// 99.9th percentile.
        public var p999: Double
        /// The largest sample, exact.
        public var maxMicroseconds: Double
        /// The mean of the recorded (clamped) samples.
        public var meanMicroseconds: Double
        /// Samples whose timestamp lay in the receiver's future (recorded as 0).
        public var negative: UInt64
        /// Samples above 60 s (recorded as 60 s).
        public var clamped: UInt64
    }

    /// nil when nothing was recorded.
    ///
    /// One rule for every field: a sample above 60 s counts as 60 s (``clamped``), in the
    /// extremes as in the percentiles, so `min <= p50 <= p99 <= p99.9 <= max` always holds.
    /// Negative samples (clocks differ) stay negative in `min`/`max` and count as 0 in the
    /// histogram; the percentiles are then kept within `[min, max]`.
    ///
    /// Cheap when a stream finishes (a server formats thousands a second): no histogram
    /// walk while every sample had the same value, no copy of the counts without a pending
    /// run, and the mean from the running sum instead of a walk.
    public var summary: Summary? {
        guard count > 0 else { return nil }
        let top = Int64(Self.highestNanoseconds)
        let low = min(minNanoseconds, top), high = min(maxNanoseconds, top)
        func within(_ v: UInt64) -> Double { Double(max(low, min(high, Int64(min(v, UInt64(top)))))) / 1e3 }
        let (p50, p99, p999): (UInt64, UInt64, UInt64)
        if recorded.totalCount == 0 {
            // Every sample so far is the pending run: one value.
            (p50, p99, p999) = (pendingValue, pendingValue, pendingValue)
        } else {
            let h = pendingCount > 0 ? histogram : recorded
            (p50, p99, p999) = (h.valueAtPercentile(50), h.valueAtPercentile(99), h.valueAtPercentile(99.9))
        }
        let sum = Double(coarseSum &+ pendingValue &* pendingCount)
        return Summary(samples: count,
                       minMicroseconds: Double(low) / 1e3,
                       p50: within(p50), p99: within(p99), p999: within(p999),
                       maxMicroseconds: Double(high) / 1e3,
                       meanMicroseconds: sum / Double(count) / 1e3,
                       negative: negative, clamped: clamped)
    }
}

extension LatencyHistogram {
    /// The coarse export buckets with every sample (the pending run included) in them.
    public var exportBuckets: ExportBuckets {
        var b = ExportBuckets()
        b.counts = coarse
        b.sumNanoseconds = coarseSum
        if pendingCount > 0 {
            b.counts[Self.exportBucket(pendingValue)] &+= pendingCount
            b.sumNanoseconds &+= pendingValue &* pendingCount
        }
        return b
    }
}
