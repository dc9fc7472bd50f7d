/// A round-trip time estimate smoothed as RFC 6298 (gains 1/8 and 1/4), as SPEC §13.10 asks
/// of both ends of a reliable stream: the sender samples STATUS echoes, the receiver the time
/// from a NAK to its repair. Also keeps the smallest sample and the mean.
public struct RTTEstimator: Equatable, Sendable {
    /// The smoothed RTT and its variation, ns (meaningful once ``samples`` > 0).
    public private(set) var smoothed: UInt64 = 0
    public private(set) var variation: UInt64 = 0
    /// Samples taken, the smallest, and their sum (for the mean).
    public private(set) var samples: UInt64 = 0
    public private(set) var minimum: UInt64 = .max
    private var sum: UInt64 = 0

    public init() {}

    /// Adds one sample, ns.
    public mutating func add(_ sample: UInt64) {
        if samples == 0 {
            smoothed = sample
            variation = sample / 2
        } else {
            let diff = smoothed > sample ? smoothed - sample : sample - smoothed
            variation = (3 * variation + diff) / 4
            smoothed = (7 * smoothed + sample) / 8
        }
        samples += 1
        sum &+= sample
        minimum = min(minimum, sample)
    }

    /// The smoothed RTT, or `initial` before any sample.
    public func smoothed(orInitial initial: UInt64) -> UInt64 { samples > 0 ? smoothed : initial }

    /// `srtt + 4·rttvar` (RFC 6298's timeout before its floor), or `initial` before any sample.
    public func timeout(orInitial initial: UInt64) -> UInt64 { samples > 0 ? smoothed + 4 * variation : initial }

    /// The mean sample, nil before any.
    public var mean: UInt64? { samples > 0 ? sum / samples : nil }
}
