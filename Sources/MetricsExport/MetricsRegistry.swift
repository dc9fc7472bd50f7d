import CLISupport
import Prometheus
import Synchronization

/// A Prometheus counter fed from cumulative snapshot values: ``set(_:)`` increments the
/// underlying counter by the growth since the last call, so the exposed value follows
/// the snapshots without ever going down (a snapshot that is lower than the last one,
/// e.g. a loss count revised when a late datagram filled a gap, leaves it unchanged).
/// Values are capped at 2^53 (a hostile stream can claim 2^64 - 1 lost; Prometheus
/// values are doubles anyway).
public final class MonotoneCounter: @unchecked Sendable {
    /// The largest value exported.
    public static let cap: UInt64 = 1 << 53
    let counter: Counter
    private let last = Mutex<UInt64>(0)

    init(_ counter: Counter) { self.counter = counter }

    /// Moves the counter up to `value` (capped); never down.
    public func set(_ value: UInt64) {
        let v = min(value, Self.cap)
        let delta: UInt64 = last.withLock { last in
            guard v > last else { return 0 }
            defer { last = v }
            return v - last
        }
        if delta > 0 { counter.increment(by: Int64(delta)) }
    }
}

/// A histogram whose bucket counts come whole from snapshots (the receive threads
/// aggregate the samples themselves), rendered in the Prometheus text format next to
/// the registry's families. swift-prometheus' `Histogram` takes one observation per
/// call, which would mean one call per datagram here.
public final class SnapshotHistogram: @unchecked Sendable {
    let name: String
    let help: String
    /// Upper bounds in the exported unit (e.g. seconds), ascending.
    let bounds: [Double]
    private let state: Mutex<(counts: [UInt64], sum: Double)>

    init(name: String, help: String, bounds: [Double]) {
        self.name = name
        self.help = help
        self.bounds = bounds
        state = Mutex(([UInt64](repeating: 0, count: bounds.count + 1), 0))
    }

    /// Replaces the counts: `counts` per bucket (not cumulative; one more than the
    /// bounds, the last above every bound) and the sum of the observations.
    public func set(counts: [UInt64], sum: Double) {
        precondition(counts.count == bounds.count + 1)
        state.withLock { $0 = (counts, sum) }
    }

    func emit(into out: inout [UInt8]) {
        let (counts, sum) = state.withLock { $0 }
        var text = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var cumulative: UInt64 = 0
        for (i, b) in bounds.enumerated() {
            cumulative &+= counts[i]
            text += "\(name)_bucket{le=\"\(PrometheusText.number(b))\"} \(cumulative)\n"
        }
        cumulative &+= counts[bounds.count]
        text += "\(name)_bucket{le=\"+Inf\"} \(cumulative)\n"
        text += "\(name)_sum \(PrometheusText.number(sum))\n\(name)_count \(cumulative)\n"
        out.append(contentsOf: text.utf8)
    }
}

enum PrometheusText {
    /// A float as Prometheus prints it: shortest round-trip form, integers without ".0".
    static func number(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d > 0 ? "+Inf" : "-Inf" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return d.description
    }
}

/// The metrics of one process: a swift-prometheus registry (counters and gauges, with
/// HELP and TYPE lines) plus snapshot histograms, and `zcstream_build_info`.
public final class MetricsRegistry: @unchecked Sendable {
    /// The swift-prometheus registry the families live in.
    public let registry = PrometheusCollectorRegistry()
    private let histograms = Mutex<[SnapshotHistogram]>([])

    /// A registry with `zcstream_build_info{version, program}` = 1.
    public init(program: String) {
        registry.makeGauge(name: "zcstream_build_info", labels: [("version", ZCStreamVersion.string), ("program", program)],
                           help: "Always 1; the labels say which zcstream program and version exports these metrics.")
            .set(to: 1)
    }

    /// A counter fed from cumulative values (see ``MonotoneCounter``).
    public func counter(_ name: String, _ labels: [(String, String)] = [], help: String) -> MonotoneCounter {
        MonotoneCounter(registry.makeCounter(name: name, labels: labels, help: help))
    }

    /// A gauge.
    public func gauge(_ name: String, _ labels: [(String, String)] = [], help: String) -> Gauge {
        registry.makeGauge(name: name, labels: labels, help: help)
    }

    /// A histogram set whole from snapshots (see ``SnapshotHistogram``).
    public func snapshotHistogram(_ name: String, bounds: [Double], help: String) -> SnapshotHistogram {
        let h = SnapshotHistogram(name: name, help: help, bounds: bounds)
        histograms.withLock { $0.append(h) }
        return h
    }

    /// The text exposition format (version 0.0.4) of every family.
    public func exposition() -> [UInt8] {
        var out = registry.emitToBuffer()
        for h in histograms.withLock({ $0 }) { h.emit(into: &out) }
        return out
    }
}
