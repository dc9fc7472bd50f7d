#if canImport(Glibc)
import Glibc
#endif

/// Wall-clock timestamps for reports that are read over time (a server's NDJSON lines).
public enum WallClock {
    /// CLOCK_REALTIME, ns since 1970.
    public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// RFC 3339 UTC with milliseconds, e.g. `2026-12-01T03:27:24.123Z`.
    public static func rfc3339(_ ns: UInt64 = nanoseconds()) -> String {
        var seconds = time_t(ns / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = Int(ns / 1_000_000 % 1000)
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(msText)Z"
    }
}

extension JSONValue {
    /// One NDJSON line of a streamed report (`--json --interval N`): `event` and a wall-clock
    /// `timestamp` first, then the object's fields. Non-finite numbers render as null.
    public func streamed(event: String, at ns: UInt64 = WallClock.nanoseconds()) -> String {
        guard case .object(let fields) = self else { return rendered(pretty: false) }
        return JSONValue.object([("event", .string(event)), ("timestamp", .string(WallClock.rfc3339(ns)))]
                                + fields.filter { $0.0 != "event" && $0.0 != "timestamp" }).rendered(pretty: false)
    }
}
