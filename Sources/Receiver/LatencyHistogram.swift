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
    public static let highestNanoseconds: UInt64 = 60_000_000_000
    private var recorded = Histogram<UInt64>(lowestDiscernibleValue: 100,
                                                          highestTrackableValue: LatencyHistogram.highestNanoseconds,
                                                          numberOfSignificantValueDigits: .three)
    /// Samples whose timestamp lay in our future (clock skew).
    public private(set) var negative: UInt64 = 0
    /// Samples above `highestNanoseconds`, recorded as that.
    public private(set) var clamped: UInt64 = 0
    public private(set) var minNanoseconds: Int64 = .max
    public private(set) var maxNanoseconds: Int64 = .min
    private var pendingValue: UInt64 = .max
    private var pendingCount: UInt64 = 0

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
            pendingCount = 0
        }
    }

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

    public var count: UInt64 { recorded.totalCount + pendingCount }

    public mutating func add(_ other: LatencyHistogram) {
        flush()
        recorded.add(other.histogram)
        negative &+= other.negative
        clamped &+= other.clamped
        minNanoseconds = min(minNanoseconds, other.minNanoseconds)
        maxNanoseconds = max(maxNanoseconds, other.maxNanoseconds)
    }

    /// Percentiles in microseconds.
    public struct Summary: Sendable, Equatable {
        public var samples: UInt64
        public var minMicroseconds: Double
        public var p50: Double
        public var p99: Double
        public var p999: Double
        public var maxMicroseconds: Double
        public var meanMicroseconds: Double
        public var negative: UInt64
        public var clamped: UInt64
    }

    /// nil when nothing was recorded.
    public var summary: Summary? {
        guard count > 0 else { return nil }
        let histogram = self.histogram
        func us(_ ns: UInt64) -> Double { Double(ns) / 1e3 }
        return Summary(samples: count,
                       minMicroseconds: Double(minNanoseconds) / 1e3,
                       p50: us(histogram.valueAtPercentile(50)),
                       p99: us(histogram.valueAtPercentile(99)),
                       p999: us(histogram.valueAtPercentile(99.9)),
                       // The exact maximum, not the histogram's bucket-rounded one.
                       maxMicroseconds: Double(maxNanoseconds) / 1e3,
                       meanMicroseconds: histogram.mean / 1e3,
                       negative: negative, clamped: clamped)
    }
}
