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

    mutating func print(_ p: ReceiveProgress) {
        let dt = Double(p.elapsedNanoseconds - lastNanoseconds) / 1e9
        guard dt > 0 else { return }
        let gbps = Double(p.bytes - lastBytes) * 8 / dt
        let pps = Double(p.datagrams - lastDatagrams) / dt
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
