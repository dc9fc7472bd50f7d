extension LatencyHistogram {
    /// Upper bounds (inclusive, nanoseconds) of the coarse buckets exported as a
    /// Prometheus histogram: 10 µs to 60 s (``highestNanoseconds``), 1-2.5-5 steps.
    public static let exportBoundsNanoseconds: [UInt64] = [
        10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
        1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000,
        100_000_000, 250_000_000, 500_000_000,
        1_000_000_000, 2_500_000_000, 5_000_000_000, 10_000_000_000, 60_000_000_000,
    ]

    /// The coarse bucket a (clamped) sample falls in: the first bound at or above it.
    @inline(__always)
    static func exportBucket(_ nanoseconds: UInt64) -> Int {
        let bounds = exportBoundsNanoseconds
        var i = 0
        while i < bounds.count && nanoseconds > bounds[i] { i += 1 }
        return i
    }

    /// Per-bucket (not cumulative) sample counts at ``exportBoundsNanoseconds``, the
    /// last entry counting samples above the largest bound (none: samples are clamped to
    /// 60 s), and the sum of the samples in nanoseconds. Cheap: for periodic snapshots.
    public struct ExportBuckets: Sendable, Equatable {
        /// `exportBoundsNanoseconds.count + 1` counts.
        public var counts: [UInt64]
        /// Sum of the samples (clamped; negative ones as 0), nanoseconds.
        public var sumNanoseconds: UInt64

        /// All zero.
        public init() {
            counts = [UInt64](repeating: 0, count: LatencyHistogram.exportBoundsNanoseconds.count + 1)
            sumNanoseconds = 0
        }

        /// Adds another set of buckets (another stream or thread).
        public mutating func add(_ o: ExportBuckets) {
            for i in counts.indices { counts[i] &+= o.counts[i] }
            sumNanoseconds &+= o.sumNanoseconds
        }

        /// Samples in all buckets.
        public var total: UInt64 { counts.reduce(0, &+) }
    }
}
