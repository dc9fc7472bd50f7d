import CLISupport
import Sender

/// One stderr line per progress interval: the rate over the last interval, totals,
/// and for zero copy the share of sends the kernel had to copy.
struct SendProgressPrinter {
    let zeroCopy: Bool
    private var lastNanoseconds: UInt64 = 0
    private var lastBytes: UInt64 = 0
    private var lastDatagrams: UInt64 = 0

    /// `--json-stream`: one JSON line per interval on stdout instead of the text line.
    var json = false

    init(zeroCopy: Bool) { self.zeroCopy = zeroCopy }

    mutating func print(_ p: SendProgress) {
        let dt = Double(p.elapsedNanoseconds - lastNanoseconds) / 1e9
        guard dt > 0 else { return }
        let s = p.statistics
        let gbps = Double(s.bytes - lastBytes) * 8 / dt
        let pps = Double(s.datagrams - lastDatagrams) / dt
        if json {
            Output.standardOutput(JSONMode.intervalLine(
                role: "sender", startNanoseconds: lastNanoseconds, endNanoseconds: p.elapsedNanoseconds,
                interval: [("gbps", .double(gbps / 1e9)), ("pps", .double(pps)),
                           ("datagrams", .uint(s.datagrams - min(s.datagrams, lastDatagrams))),
                           ("bytes", .uint(s.bytes - min(s.bytes, lastBytes)))],
                soFar: [("datagrams", .uint(s.datagrams)), ("bytes", .uint(s.bytes)),
                        ("notifications", .uint(s.notifications)), ("copied", .uint(s.copied)),
                        ("slots_in_flight", .int(Int64(p.slotsInFlight))), ("errors", .uint(s.errorCount))]
                        + (p.reliable.map { r in [("acknowledged", .uint(r.acknowledged)), ("retransmitted", .uint(r.retransmittedDatagrams)),
                                                  ("receivers_live", .int(Int64(r.receiversLive))), ("receivers_delivered", .int(Int64(r.receiversDelivered))),
                                                  ("receivers_dropped", .int(Int64(r.receiversDropped)))] } ?? [])))
            lastNanoseconds = p.elapsedNanoseconds; lastBytes = s.bytes; lastDatagrams = s.datagrams
            return
        }
        var line = "[\(Units.fixed(Double(p.elapsedNanoseconds) / 1e9, 1).leftPadded(6))s] \(Units.bitRate(gbps).leftPadded(14))  \(Units.count(pps, unit: "pps").leftPadded(12))  sent \(s.datagrams)"
        if zeroCopy {
            let copiedShare = s.notifications == 0 ? 0 : Double(s.copied) / Double(s.notifications) * 100
            line += "  zc-copied \(Units.fixed(copiedShare, 0))%  in-flight \(p.slotsInFlight)"
        }
        if let r = p.reliable {
            line += "  acked \(r.acknowledged)  repaired \(r.retransmittedDatagrams)"
            let heard = r.receiversLive + r.receiversDelivered + r.receiversDropped + r.receiversOther
            if heard > 1 || r.receiversDropped > 0 { line += "  receivers \(r.receiversLive + r.receiversDelivered)/\(heard)" + (r.receiversDropped > 0 ? " (\(r.receiversDropped) dropped)" : "") }
        }
        if s.errorCount > 0 { line += "  errors \(s.errorCount)" }
        Output.standardError(line)
        lastNanoseconds = p.elapsedNanoseconds
        lastBytes = s.bytes
        lastDatagrams = s.datagrams
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
