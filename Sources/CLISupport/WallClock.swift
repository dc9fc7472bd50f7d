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

/// How a CLI prints JSON. `--json`/`-J`: one document on stdout when the run ends (what
/// `json.load` and `jq` read), whatever `--interval` says; progress stays text on stderr.
/// `--json-stream` (iperf3 3.17's name): NDJSON, one interval line per `--interval`, then the
/// final report as the last line with `"event": "final"`.
public enum JSONMode: Sendable, Equatable {
    /// Text reports.
    case off
    /// One pretty JSON document at the end.
    case document
    /// JSON lines: intervals, then the final report.
    case stream

    /// `--json-stream` wins over `--json` (it is JSON too).
    public init(json: Bool, jsonStream: Bool) {
        self = jsonStream ? .stream : json ? .document : .off
    }

    /// Interval reports go to stdout as JSON lines (else they are text lines on stderr).
    public var streamsIntervals: Bool { self == .stream }

    /// The final report as this mode prints it: a pretty document, or the stream's last line.
    public func final(_ report: JSONValue) -> String {
        self == .stream ? report.streamed(event: "final") : report.rendered(pretty: true)
    }

    /// One `--json-stream` interval line. Its top level is only `event` ("interval"),
    /// `timestamp`, `role` and two objects, so no key means something else than in the final
    /// report: `interval` (`start_seconds`, `end_seconds`, `seconds`, then `fields`: what
    /// happened in this interval) and `so_far` (running totals since the start).
    public static func intervalLine(role: String, startNanoseconds: UInt64, endNanoseconds: UInt64,
                                    interval fields: [(String, JSONValue)], soFar: [(String, JSONValue)]) -> String {
        let start = Double(startNanoseconds) / 1e9, end = Double(endNanoseconds) / 1e9
        return JSONValue.object([
            ("role", .string(role)),
            ("interval", .object([("start_seconds", .double(start)), ("end_seconds", .double(end)),
                                  ("seconds", .double(end - start))] + fields)),
            ("so_far", .object(soFar)),
        ]).streamed(event: "interval")
    }
}
