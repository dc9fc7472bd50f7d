import CLISupport

/// A run as zc-report reads it: interval lines and the final report.
struct RunRecord {
    struct Interval {
        var start: Double, end: Double, gbps: Double, pps: Double
        /// Datagrams lost during this interval (receiver: growth of so_far.lost); nil from a sender.
        var lost: Double?
        var kernelDrops: Double?
    }

    enum Verdict {
        case pass, fail([String]), none(String)
        var word: String {
            switch self {
            case .pass: return "PASS"
            case .fail: return "FAIL"
            case .none: return "NO VERDICT"
            }
        }
    }

    struct NotARun: Error, CustomStringConvertible { var description: String }

    var intervals: [Interval] = []
    var final: JSONValue
    var role: String

    init(_ text: String) throws {
        var lines: [JSONValue] = []
        if let document = try? JSONValue.parse(text) {
            lines = [document]  // a -J document (or a one-line stream)
        } else {
            for (n, line) in text.split(separator: "\n").enumerated() where !line.allSatisfy(\.isWhitespace) {
                do { lines.append(try JSONValue.parse(String(line))) } catch {
                    throw NotARun(description: "line \(n + 1) is not JSON (\(error)): is this a --json-stream or -J run?")
                }
            }
        }
        guard let final = lines.last(where: { $0["event"]?.text != "interval" }), final["role"] != nil else {
            throw NotARun(description: "no final report (a zcstream -J document or --json-stream's \"final\" line)")
        }
        self.final = final
        role = final["role"]?.text ?? "?"
        var lastLost: Double?
        for line in lines where line["event"]?.text == "interval" {
            guard let i = line["interval"], let start = i["start_seconds"]?.number, let end = i["end_seconds"]?.number else { continue }
            let soFarLost = line["so_far"]?["lost"]?.number
            intervals.append(Interval(start: start, end: end, gbps: i["gbps"]?.number ?? 0, pps: i["pps"]?.number ?? 0,
                                      lost: soFarLost.map { max(0, $0 - (lastLost ?? 0)) },
                                      kernelDrops: i["kernel_drops"]?.number))
            if let soFarLost { lastLost = soFarLost }
        }
    }

    /// The receiver's verdict: its own report's `ok`, or the REPORT a sender got back.
    var verdict: Verdict {
        let judged = role == "receiver" ? final : final["receiver"]
        guard let judged, judged != .null else {
            return .none(final["receiver_missing"]?.text ?? "no REPORT from the receiver")
        }
        if case .bool(true)? = judged["ok"] { return .pass }
        if case .array(let reasons)? = judged["failures"], !reasons.isEmpty { return .fail(reasons.compactMap(\.text)) }
        if case .bool(false)? = judged["ok"] { return .fail(["the receiver's verdict is not ok"]) }
        return .none("the report has no verdict")
    }
}
