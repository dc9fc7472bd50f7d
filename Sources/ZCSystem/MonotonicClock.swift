#if canImport(Glibc)
import Glibc
#endif

/// Nanosecond clocks read with one vDSO call and no allocation.
public enum MonotonicClock {
    /// CLOCK_MONOTONIC in nanoseconds: for durations and pacing.
    @inline(__always) public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// CLOCK_REALTIME in nanoseconds: the wire timestamp, comparable across hosts
    /// whose clocks are synchronised.
    @inline(__always) public static func wallNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Sleeps for `ns` nanoseconds (returns early on a signal).
    public static func sleep(nanoseconds ns: UInt64) {
        var req = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
        _ = nanosleep(&req, nil)
    }
}
