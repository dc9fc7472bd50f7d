/// What a send engine tells its caller every progress interval and at the end.
public struct SendProgress: Sendable {
    public var elapsedNanoseconds: UInt64
    public var statistics: SenderStatistics
    public var slotsInFlight: Int
}

/// How a run ended.
public enum StopReason: String, Sendable, Codable {
    case limit
    case signal
    case error
}

/// Calls `report` every `intervalNanoseconds` from inside a run loop. The check is
/// one comparison per loop turn; the callback runs at most once per interval.
public struct ProgressTicker {
    let intervalNanoseconds: UInt64
    var next: UInt64
    let report: (SendProgress) -> Void

    public init(intervalNanoseconds: UInt64, start: UInt64, report: @escaping (SendProgress) -> Void) {
        self.intervalNanoseconds = intervalNanoseconds
        self.next = intervalNanoseconds == 0 ? .max : start + intervalNanoseconds
        self.report = report
    }

    @inline(__always)
    mutating func tick(now: UInt64, start: UInt64, statistics: @autoclosure () -> SenderStatistics, inFlight: Int) {
        guard now >= next else { return }
        next = now + intervalNanoseconds
        report(SendProgress(elapsedNanoseconds: now - start, statistics: statistics(), slotsInFlight: inFlight))
    }
}
