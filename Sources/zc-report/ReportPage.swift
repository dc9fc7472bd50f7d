import CLISupport

/// One self-contained HTML page: verdict, summary, inline SVG charts. No script, no
/// external file, so it opens anywhere and can be mailed as it is.
struct ReportPage {
    let run: RunRecord
    let title: String

    init(_ run: RunRecord, title: String?) {
        self.run = run
        let peer = run.final["destination"]?.text ?? run.final["listen"]?.text ?? ""
        self.title = title ?? "zcstream \(run.role) \(peer)"
    }

    func html() -> String {
        let verdict = run.verdict
        let (color, reasons): (String, [String]) = {
            switch verdict {
            case .pass: return ("#1a7f37", [])
            case .fail(let r): return ("#cf222e", r)
            case .none(let why): return ("#9a6700", [why])
            }
        }()
        var page = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
        <style>
        body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1f2328; max-width: 960px; }
        h1 { font-size: 20px; margin: 0 0 12px; }
        .verdict { display: inline-block; padding: 6px 14px; border-radius: 6px; color: #fff; font-weight: 700; font-size: 18px; }
        table { border-collapse: collapse; margin: 16px 0; }
        td { padding: 3px 12px 3px 0; } td:first-child { color: #59636e; }
        h2 { font-size: 16px; margin: 24px 0 4px; }
        svg { background: #f6f8fa; border-radius: 6px; }
        </style></head><body>
        <h1>\(escape(title))</h1>
        <div class="verdict" id="verdict" style="background: \(color)">\(verdict.word)</div>

        """
        for reason in reasons { page += "<p>\(escape(reason))</p>\n" }
        page += "<table id=\"summary\">\n"
        for (label, value) in summary() { page += "<tr><td>\(escape(label))</td><td>\(escape(value))</td></tr>\n" }
        page += "</table>\n"
        let points = run.intervals
        page += "<h2>Throughput per interval (Gbit/s)</h2>\n"
        page += points.isEmpty ? "<p>No interval lines: run the tool with --json-stream for the charts.</p>\n"
            : Chart(points: points.map { ($0.end, $0.gbps) }, unit: "Gbit/s", color: "#0969da", bars: false).svg(id: "throughput")
        page += "<h2>Loss per interval (datagrams)</h2>\n"
        let losses = points.compactMap { i in i.lost.map { (i.end, $0) } }
        if points.isEmpty {
            page += "<p>No interval lines.</p>\n"
        } else if losses.isEmpty {
            page += "<p>A sender's run: loss per interval is known to the receiver only (its run has it); the total is in the summary.</p>\n"
        } else {
            // The receiver counts a number lost once it can no longer arrive (beyond the reorder
            // window) or when the stream ends: what its intervals did not show came at the end.
            let shown = losses.map(\.1).reduce(0, +)
            let atEnd = max(0, (run.final["lost"]?.number ?? shown) - shown)
            var chart = Chart(points: losses, unit: "lost", color: "#cf222e", bars: true)
            if atEnd > 0 { chart.atEnd = (losses.last?.0 ?? 0, atEnd) }
            page += chart.svg(id: "loss")
            if atEnd > 0 {
                page += "<p>\(number(atEnd)) lost datagram(s) were counted when the stream ended (the last, orange bar): a number counts as lost once it can no longer arrive.</p>\n"
            }
        }
        page += "<p style=\"color:#59636e\">zc-report \(ZCStreamVersion.string), from \(escape(run.final["version"]?.text ?? "?"))'s JSON.</p>\n</body></html>\n"
        return page
    }

    /// The final report's headline numbers, whichever tool wrote it.
    func summary() -> [(String, String)] {
        let f = run.final
        var rows: [(String, String)] = [("role", run.role)]
        func add(_ label: String, _ value: JSONValue?, _ format: (JSONValue) -> String? = { $0.text ?? $0.number.map(number) }) {
            if let value, value != .null, let text = format(value) { rows.append((label, text)) }
        }
        add("engine", f["engine"])
        add("destination", f["destination"])
        add("listening on", f["listen"])
        add("seconds", f["seconds"])
        add("throughput", f["gbps"]) { $0.number.map { number($0) + " Gbit/s" } }
        add("packets/s", f["pps"])
        add("datagrams", f["datagrams"])
        add("bytes", f["bytes"])
        let judged = run.role == "receiver" ? f : f["receiver"]
        add("lost", judged?["lost"])
        add("loss", f["loss_percent"]) { $0.number.map { number($0) + " %" } }
        add("corrupt", judged?["corrupt"])
        add("reordered", judged?["reordered"])
        add("duplicates", judged?["duplicates"])
        add("kernel drops", judged?["kernel_drops"])
        add("intervals", .int(Int64(run.intervals.count)))
        return rows
    }
}

/// An SVG chart over time: a line (or bars) with four y grid lines and labelled axes.
struct Chart {
    let points: [(Double, Double)]
    let unit: String
    let color: String
    let bars: Bool
    /// A bar drawn apart after the last interval: loss the receiver counted when the stream ended.
    var atEnd: (Double, Double)?
    let width = 900.0, height = 260.0, left = 60.0, right = 20.0, top = 16.0, bottom = 36.0

    func svg(id: String) -> String {
        let maxX = max(points.map(\.0).max() ?? 1, 1e-9)
        let peak = (points.map(\.1) + [atEnd?.1 ?? 0]).max() ?? 0
        let maxY = peak > 0 ? niceCeiling(peak * 1.1 / 4) * 4 : 1  // four even grid steps
        let plotW = width - left - right, plotH = height - top - bottom
        func x(_ v: Double) -> Double { left + v / maxX * plotW }
        func y(_ v: Double) -> Double { top + plotH - v / maxY * plotH }
        var s = "<svg id=\"\(id)\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\">\n"
        for k in 0...4 {
            let v = maxY * Double(k) / 4
            s += "<line x1=\"\(f(left))\" y1=\"\(f(y(v)))\" x2=\"\(f(width - right))\" y2=\"\(f(y(v)))\" stroke=\"#d0d7de\"/>"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\" font-size=\"11\" fill=\"#59636e\">\(number(v))</text>\n"
        }
        for k in 0...5 {
            let v = maxX * Double(k) / 5
            s += "<text x=\"\(f(x(v)))\" y=\"\(f(height - bottom + 16))\" text-anchor=\"middle\" font-size=\"11\" fill=\"#59636e\">\(number(v)) s</text>\n"
        }
        s += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 4))\" text-anchor=\"middle\" font-size=\"11\" fill=\"#59636e\">time since start (s)</text>\n"
        if bars {
            let w = max(2, plotW / Double(max(points.count, 1)) * 0.6)
            for (t, v) in points where v > 0 {
                s += "<rect class=\"bar\" x=\"\(f(x(t) - w))\" y=\"\(f(y(v)))\" width=\"\(f(w))\" height=\"\(f(y(0) - y(v)))\" fill=\"\(color)\"><title>\(number(t)) s: \(number(v)) \(unit)</title></rect>\n"
            }
            if let (t, v) = atEnd {
                s += "<rect class=\"bar end\" x=\"\(f(min(x(t) + 2, width - right - w)))\" y=\"\(f(y(v)))\" width=\"\(f(w))\" height=\"\(f(y(0) - y(v)))\" fill=\"#bc4c00\"><title>at the end: \(number(v)) \(unit)</title></rect>\n"
            }
            if peak == 0 {
                s += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH / 2))\" text-anchor=\"middle\" font-size=\"14\" fill=\"#1a7f37\">no loss in any interval</text>\n"
            }
        } else {
            let path = points.map { "\(f(x($0.0))),\(f(y($0.1)))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(path)\"/>\n"
            for (t, v) in points {
                s += "<circle cx=\"\(f(x(t)))\" cy=\"\(f(y(v)))\" r=\"3\" fill=\"\(color)\"><title>\(number(t)) s: \(number(v)) \(unit)</title></circle>\n"
            }
        }
        return s + "</svg>\n"
    }

    /// 1, 2 or 5 times a power of ten at or above `v`.
    func niceCeiling(_ v: Double) -> Double {
        var p = 1.0
        while p * 10 <= v { p *= 10 }
        while p > v { p /= 10 }
        for m in [1.0, 2, 5, 10] where p * m >= v { return p * m }
        return p * 10
    }

    func f(_ v: Double) -> String { Units.fixed(v, 1) }
}

/// A number as a person reads it: up to 3 decimals, no trailing zeros.
func number(_ v: Double) -> String {
    var s = Units.fixed(v, abs(v) >= 100 ? 0 : 3)
    if s.contains(".") { while s.hasSuffix("0") { s.removeLast() }; if s.hasSuffix(".") { s.removeLast() } }
    return s
}

/// Text for HTML.
func escape(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(c)
        }
    }
    return out
}
