import CLISupport
import Receiver

/// One stderr line per interval: rate over the interval and the running account.
/// When the kernel dropped datagrams during the interval the line says the socket
/// buffer is the bottleneck, so the user knows the loss is ours, not the path's.
struct ReceiveProgressPrinter {
    private var lastNanoseconds: UInt64 = 0
    private var lastBytes: UInt64 = 0
    private var lastDatagrams: UInt64 = 0
    private var lastDrops: UInt64 = 0
    private var advised = false
    /// `--json-stream`: one JSON line per interval instead of the text line,
    /// on stdout (stderr when stdout carries the stream, `--output -`).
    var json = false
    var jsonToStandardError = false

    mutating func print(_ p: ReceiveProgress) {
        let dt = Double(p.elapsedNanoseconds - min(p.elapsedNanoseconds, lastNanoseconds)) / 1e9
        guard dt > 0 else { return }
        // Totals only grow (retired streams stay in them); saturate anyway: a progress line
        // must never be what stops a receiver.
        let gbps = Double(p.bytes - min(p.bytes, lastBytes)) * 8 / dt
        let pps = Double(p.datagrams - min(p.datagrams, lastDatagrams)) / dt
        if json {
            let line = JSONMode.intervalLine(
                role: "receiver", startNanoseconds: lastNanoseconds, endNanoseconds: p.elapsedNanoseconds,
                interval: [("gbps", .double(gbps / 1e9)), ("pps", .double(pps)),
                           ("datagrams", .uint(p.datagrams - min(p.datagrams, lastDatagrams))),
                           ("bytes", .uint(p.bytes - min(p.bytes, lastBytes))),
                           ("kernel_drops", .uint(p.kernelDrops - min(p.kernelDrops, lastDrops)))],
                soFar: [("datagrams", .uint(p.datagrams)), ("bytes", .uint(p.bytes)), ("lost", .uint(p.lostSoFar)),
                        ("corrupt", .uint(p.corrupt)), ("invalid", .uint(p.invalid)),
                        ("kernel_drops", .uint(p.kernelDrops)), ("streams", .int(Int64(p.streams)))])
            if jsonToStandardError { Output.standardError(line) } else { Output.standardOutput(line) }
            lastNanoseconds = p.elapsedNanoseconds; lastBytes = p.bytes; lastDatagrams = p.datagrams; lastDrops = p.kernelDrops
            return
        }
        let t = Units.fixed(Double(p.elapsedNanoseconds) / 1e9, 1)
        var line = "[\(String(repeating: " ", count: max(0, 6 - t.count)))\(t)s] \(Units.bitRate(gbps))  \(Units.count(pps, unit: "pps"))  received \(p.datagrams)  lost \(p.lostSoFar)  corrupt \(p.corrupt)  invalid \(p.invalid)  kernel-drops \(p.kernelDrops)"
        let newDrops = p.kernelDrops - min(p.kernelDrops, lastDrops)
        if newDrops > 0 {
            line += "  << socket buffer full: +\(newDrops) dropped by the kernel"
            if !advised { line += " (raise --rcvbuf / net.core.rmem_max, add --threads, or pace the sender)"; advised = true }
        }
        Output.standardError(line)
        lastNanoseconds = p.elapsedNanoseconds
        lastBytes = p.bytes
        lastDatagrams = p.datagrams
        lastDrops = p.kernelDrops
    }
}
