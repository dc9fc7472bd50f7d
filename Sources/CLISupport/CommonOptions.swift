import ArgumentParser

/// How a run reports, the same on zc-send and zc-recv: declared once here, included in
/// each command with `@OptionGroup`.
public struct ReportingOptions: ParsableArguments {
    @Flag(name: [.customShort("J"), .customLong("json")], help: "Print the report as one JSON document on stdout when the run ends (iperf3's -J), whatever --interval says; progress lines stay text on stderr.")
    public var json = false

    @Flag(help: "Print JSON lines (NDJSON, iperf3 3.17's --json-stream) on stdout: {\"event\": \"interval\", \"timestamp\", \"role\", \"interval\": {...}, \"so_far\": {...}} every --interval, then the final report with \"event\": \"final\".")
    public var jsonStream = false

    @Option(name: [.customShort("i"), .customLong("interval")], help: "Time between progress reports (1s, 500ms; a plain number is seconds, as iperf3's -i; 0: none): a text line on stderr, or with --json-stream a JSON line on stdout.")
    public var interval: String = "1s"

    @Option(help: "Serve Prometheus metrics on http://HOST:PORT/metrics (PORT, HOST:PORT or [IPV6]:PORT; HOST defaults to 0.0.0.0).")
    public var metrics: String?

    public init() {}
}

/// Where the threads that move data run, the same on both commands.
public struct PlacementOptions: ParsableArguments {
    @Option(help: "Pin the threads that move data (zc-send: one per stream; zc-recv: the receive threads) to these CPUs (e.g. 0,1 or 0-3), round robin.")
    public var cpu: String?

    @Option(help: "The network interface: zc-send's way out (required with --engine packet-ring; for a multicast destination with a socket engine, IP_MULTICAST_IF / IPV6_MULTICAST_IF); zc-recv's interface to join a multicast group on (default: the kernel's choice by route).", completion: .shellCommand("ls /sys/class/net"))
    public var interface: String?

    public init() {}
}

/// A command that includes both groups: their values under their usual names, written once
/// for zc-send and zc-recv.
public protocol CommonOptionsCommand {
    var placement: PlacementOptions { get }
    var reporting: ReportingOptions { get }
}

extension CommonOptionsCommand {
    public var cpu: String? { placement.cpu }
    public var interface: String? { placement.interface }
    public var json: Bool { reporting.json }
    public var jsonStream: Bool { reporting.jsonStream }
    public var interval: String { reporting.interval }
    public var metrics: String? { reporting.metrics }
}
