import Foundation
import TestSupport
import XCTest

/// What the reliable multicast pair tests (ReliableMulticastPairTests) need around the
/// binaries: a bridge (MulticastBridge) with the sender on host 1 and a receiver on each other
/// host, loss that nftables makes and counts (each receiver's own, or one shared on the
/// sender's link), and the sender's per-receiver results.
///
/// As on LossyPath, the sender's veth has `gso_max_segs 1`: the kernel segments every GSO send
/// before the wire, so every rule below sees, drops and counts single datagrams.
final class ReliableGroup {
    let lan: MulticastBridge
    /// The group address (no brackets) and port every receiver listens on.
    let group: String
    let port: Int
    /// The test's files (sources, outputs), removed with the group.
    let files: ScratchFiles
    private var filters: [String: PathFilter] = [:]
    private var senderLink: String?

    init(tag: String, subnet: Int, receivers: Int, group: String, port: Int = 9500) throws {
        do { try requireRootAndNFTables() } catch {
            print("ReliableMulticastPairTests: skipped: \(error)")
            throw error
        }
        lan = try MulticastBridge(tag: tag, subnet: subnet, hosts: receivers + 1)
        self.group = group
        self.port = port
        files = ScratchFiles(tag)
        var setup = ["ip -n \(sender.namespace) link set \(sender.interface) gso_max_segs 1"]
        // Link-local addresses that need no duplicate detection: a receiver's unicast feedback
        // to an IPv6 sender needs a neighbour solicitation, which the kernel sends only from a
        // link-local address past detection (the automatic one is tentative for a second or two).
        for (n, host) in lan.hosts.enumerated() {
            setup.append("ip -n \(host.namespace) addr add fe80::\(subnet):\(n + 1)/64 dev \(host.interface) nodad")
        }
        for command in setup {
            let r = shell(command)
            guard r.status == 0 else { throw NFTablesError(description: "\(command): \(r.output)") }
        }
    }

    var sender: MulticastBridge.Host { lan.hosts[0] }
    var receivers: [MulticastBridge.Host] { Array(lan.hosts.dropFirst()) }
    var isIPv6: Bool { group.contains(":") }
    /// GROUP:PORT as zc-send and zc-recv take it.
    var destination: String { isIPv6 ? "[\(group)]:\(port)" : "\(group):\(port)" }
    /// The address `host` sends its feedback from (its address of the group's family).
    func address(_ host: MulticastBridge.Host) -> String { isIPv6 ? host.ipv6 : host.ipv4 }

    /// Drops `perMille`/1000 of the stream's datagrams at random on `host`'s input (DATA,
    /// repairs and END to it alone), counted under `name`.
    func dropInput(_ host: MulticastBridge.Host, perMille: Int, name: String = "data") throws {
        try filter(host).drop(name, .input, "udp dport \(port)", perMille: perMille)
    }

    /// Drops the first send of DATA `sequence` on `host`'s input, never its repairs, counted
    /// under "original-SEQUENCE": the header's sequence is the u64 at byte 16 of the UDP
    /// payload, its flags the byte at 5 (REPAIR 0x20; SPEC §2, §13.3).
    func dropOriginal(_ host: MulticastBridge.Host, sequence: UInt64) throws {
        try filter(host).drop("original-\(sequence)", .input, "udp dport \(port) @th,192,64 \(sequence) @th,104,8 \\& 0x20 == 0")
    }

    /// `host`'s nftables table, made on first use.
    private func filter(_ host: MulticastBridge.Host) throws -> PathFilter {
        if let filter = filters[host.namespace] { return filter }
        let filter = try PathFilter(namespace: host.namespace)
        filters[host.namespace] = filter
        return filter
    }

    /// Datagrams `host`'s rule `name` dropped.
    func droppedAt(_ host: MulticastBridge.Host, name: String = "data") throws -> UInt64 {
        guard let filter = filters[host.namespace] else { throw NFTablesError(description: "no drop rule on \(host.namespace)") }
        return try filter.packets(name)
    }

    /// Drops `perMille`/1000 of the stream's datagrams at random where they enter the bridge
    /// from the sender (the ingress of its port, p1): a loss every receiver shares. It is on
    /// the bridge, not in the sender's output chain, because that chain runs before the kernel
    /// segments a GSO send and would drop 44 datagrams at a time; p1 receives them segmented.
    func dropFromSender(perMille: Int) throws {
        let table = "zcshared"
        for command in ["add table netdev \(table)",
                        "add chain netdev \(table) in '{ type filter hook ingress device p1 priority 0; }'",
                        "add rule netdev \(table) in udp dport \(port) numgen random mod 1000 lt \(perMille) counter drop"] {
            let r = shell("ip netns exec \(lan.bridge) nft \(command)")
            guard r.status == 0 else { throw NFTablesError(description: "nft \(command) in \(lan.bridge): \(r.output)") }
        }
        senderLink = table
    }

    /// Datagrams the shared rule dropped, as nftables counts them.
    func droppedFromSender() throws -> UInt64 {
        guard let table = senderLink else { throw NFTablesError(description: "no shared drop rule") }
        let r = shell("ip netns exec \(lan.bridge) nft list table netdev \(table)")
        guard r.status == 0, let match = r.output.firstMatch(of: /counter packets (\d+)/), let packets = UInt64(match.1) else {
            throw NFTablesError(description: "no counter in table netdev \(table): \(r.output)")
        }
        return packets
    }

    /// Datagrams the path itself dropped on the way to `host` (not nftables: the kernel, when
    /// a veth's peer backlog overflows, counting them in the receiving device's rx_dropped):
    /// where they entered the bridge from the sender (p1, before the flood: every receiver's
    /// loss) plus where they left it into `host` (its own). Zero on an unloaded machine; a
    /// busy one can drop bursts here, which the bounds on repairs must count as loss too.
    func pathDrops(to host: MulticastBridge.Host) throws -> (shared: UInt64, own: UInt64) {
        (try Self.rxDropped(namespace: lan.bridge, interface: "p1"), try Self.rxDropped(namespace: host.namespace, interface: host.interface))
    }

    static func rxDropped(namespace: String, interface: String) throws -> UInt64 {
        let r = shell("ip -n \(namespace) -s -j link show \(interface)")
        let links = (try? JSONSerialization.jsonObject(with: Data(r.output.utf8))) as? [[String: Any]]
        guard let dropped = u64(links?.first, "stats64", "rx", "dropped") else {
            throw NFTablesError(description: "no rx dropped for \(interface) in \(namespace): \(r.output)")
        }
        return dropped
    }

    /// `zc-recv GROUP:PORT --interface IF --streams 1 [--output FILE] --json` on `host`: the
    /// receiver as a user starts it (no reliable flag; `--streams 1` ends it with the stream).
    func startReceiver(_ host: MulticastBridge.Host, output: String? = nil) throws -> RunningReceiver {
        try RunningReceiver.start(listen: destination, ["--interface", host.interface, "--streams", "1"] + (output.map { ["--output", $0] } ?? []),
                                  namespace: host.namespace)
    }

    /// `zc-send GROUP:PORT --reliable --interface IF FLAGS --json` on the sender's host, running
    /// (`reliable` false: a plain stream, without `--reliable`).
    func startSender(_ flags: [String], reliable: Bool = true) throws -> Child {
        try Child(Binaries.send, [destination] + (reliable ? ["--reliable"] : []) + ["--interface", sender.interface] + flags + ["--json"],
                  namespace: sender.namespace)
    }

    func remove() { lan.remove() }
}

/// The sender's result of a reliable group stream: its JSON's `reliability`, `reliability.group`
/// and `reliability.receivers`, looked up by the receiver's address.
struct GroupSend {
    let result: Child.Result
    /// Wall seconds from start to exit, as the test measured them.
    let seconds: Double

    var json: [String: Any]? { result.json }
    var reliability: [String: Any]? { json?["reliability"] as? [String: Any] }
    var group: [String: Any]? { reliability?["group"] as? [String: Any] }
    var receivers: [[String: Any]] { reliability?["receivers"] as? [[String: Any]] ?? [] }

    /// The `reliability.receivers` entry whose address ("IP:PORT" or "[IP]:PORT") is `ip`'s.
    func receiver(_ ip: String) -> [String: Any]? {
        receivers.first { ($0["address"] as? String).map(Self.host(of:)) == ip }
    }

    /// The address part of "198.18.60.2:9500" or "[2001:2::2]:9500".
    static func host(of address: String) -> String {
        if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
            return String(address[address.index(after: address.startIndex)..<close])
        }
        guard let colon = address.lastIndex(of: ":") else { return address }
        return String(address[..<colon])
    }

    /// Each entry's address, state and counters in one line, for the log.
    var summary: String {
        let r = reliability ?? [:]
        let totals = ["retransmitted_datagrams", "naks_received", "status_received", "repair_rounds", "goodput_gbps", "window_blocked_seconds"]
            .map { "\($0) \(r[$0] ?? "-")" }.joined(separator: ", ")
        let each = receivers.map { e in
            "\(e["address"] ?? "?") \(e["state"] ?? "?")" + ((e["reason"] as? String).map { " (\($0))" } ?? "")
                + " naks \(e["naks_received"] ?? "-") status \(e["status_received"] ?? "-") ack \(e["acknowledged"] ?? "-")"
        }.joined(separator: "; ")
        return "exit \(result.status), \(String(format: "%.2f", seconds)) s; \(totals); group \(group ?? [:]); receivers: \(each)"
    }

    /// `ip`'s entry says delivered: no reason, nothing unacknowledged, every sequence number
    /// acknowledged, STATUS heard, and its REPORT (the receiver's own counters) lost nothing.
    /// `stream` is the receiver's own JSON stream: its REPORT must say the same `repaired`.
    func assertDelivered(_ ip: String, stream: [String: Any]?, _ context: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let e = receiver(ip) else {
            return XCTFail("\(context): no reliability.receivers entry for \(ip): \(receivers)", file: file, line: line)
        }
        XCTAssertEqual(e["state"] as? String, "delivered", "\(context): \(ip): \(e)", file: file, line: line)
        XCTAssertTrue(e["reason"] is NSNull, "\(context): \(ip): a delivered receiver has no reason: \(e)", file: file, line: line)
        XCTAssertEqual((e["unacknowledged_ranges"] as? [Any])?.count, 0, "\(context): \(ip): \(e)", file: file, line: line)
        XCTAssertEqual(u64(e, "acknowledged"), u64(json, "sequences"), "\(context): \(ip): acknowledged vs sequences", file: file, line: line)
        XCTAssertGreaterThan(u64(e, "status_received") ?? 0, 0, "\(context): \(ip): \(e)", file: file, line: line)
        XCTAssertNotNil(u64(e, "naks_received"), "\(context): \(ip): \(e)", file: file, line: line)
        XCTAssertNotNil(e["receiver_id"] as? String, "\(context): \(ip): \(e)", file: file, line: line)
        guard let report = e["report"] as? [String: Any] else {
            return XCTFail("\(context): \(ip): delivered, but no REPORT in its entry: \(e)", file: file, line: line)
        }
        XCTAssertEqual(u64(report, "lost"), 0, "\(context): \(ip): its REPORT: \(report)", file: file, line: line)
        XCTAssertEqual(report["complete"] as? Bool, true, "\(context): \(ip): its REPORT: \(report)", file: file, line: line)
        if let stream {
            XCTAssertEqual(u64(report, "repaired"), u64(stream, "repaired"), "\(context): \(ip): the REPORT's repaired vs the receiver's JSON", file: file, line: line)
            XCTAssertEqual(u64(report, "unique"), u64(stream, "unique"), "\(context): \(ip): the REPORT's unique vs the receiver's JSON", file: file, line: line)
        }
    }
}

/// A receiver's end of a reliable group stream: its exit, JSON and (first) stream.
struct GroupReceipt {
    let ip: String
    let result: Child.Result
    var json: [String: Any]? { result.json }
    var stream: [String: Any]? { (json?["streams"] as? [[String: Any]])?.first }

    var summary: String {
        let keys = ["unique", "lost", "repaired", "repair_duplicates", "duplicates", "naks_sent", "status_sent", "first_sequence"]
        return "\(ip): exit \(result.status), " + keys.map { "\($0) \(stream?[$0] ?? "-")" }.joined(separator: ", ")
            + ", kernel_drops \(json?["kernel_drops"] ?? "-")"
    }

    /// Exact accounting of a delivered stream: reliable, complete, nothing lost or corrupt,
    /// exit 0, and the output is the source byte for byte.
    func assertDelivered(_ context: String, source: String, output: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 0, "\(context): zc-recv on \(ip): \(result.stderr.suffix(2000))", file: file, line: line)
        guard let stream else {
            return XCTFail("\(context): no stream in \(ip)'s JSON: \(result.stdout) \(result.stderr.suffix(2000))", file: file, line: line)
        }
        XCTAssertEqual(stream["reliable"] as? Bool, true, "\(context): \(ip) did not take the stream as reliable", file: file, line: line)
        XCTAssertEqual(stream["complete"] as? Bool, true, "\(context): \(ip): \(stream)", file: file, line: line)
        XCTAssertEqual(stream["gave_up"] as? Bool, false, "\(context): \(ip)", file: file, line: line)
        XCTAssertEqual(u64(stream, "lost"), 0, "\(context): \(ip) lost datagrams", file: file, line: line)
        XCTAssertEqual(u64(stream, "corrupt"), 0, "\(context): \(ip)", file: file, line: line)
        XCTAssertEqual(u64(stream, "head_not_counted") ?? 0, 0, "\(context): \(ip): accounted from sequence 0", file: file, line: line)
        XCTAssertNotNil(u64(stream, "repaired"), "\(context): \(ip): \(stream)", file: file, line: line)
        XCTAssertGreaterThan(u64(stream, "status_sent") ?? 0, 0, "\(context): \(ip): \(stream)", file: file, line: line)
        XCTAssertNotNil(u64(stream, "naks_sent"), "\(context): \(ip): \(stream)", file: file, line: line)
        assertSameBytes(source, output, "\(context): \(ip)", file: file, line: line)
    }
}

extension RunningReceiver {
    /// Waits for the receiver's end (killing its group after `timeout`), as `ip`'s receipt.
    func receipt(_ ip: String, timeout: TimeInterval) -> GroupReceipt {
        GroupReceipt(ip: ip, result: child.waitForGroup(timeout: timeout))
    }

    /// The receipts of receivers that end with the stream `sender` ended: all within one
    /// deadline, 5 s after the sender's exit (a delivered receiver ends at once), or 1 s when
    /// the sender refused to start (exit status neither 0 nor 1: nothing was sent).
    static func receipts(_ running: [RunningReceiver], ips: [String], after sender: Child.Result) -> [GroupReceipt] {
        let deadline = Date().addingTimeInterval(sender.status == 0 || sender.status == 1 ? 5 : 1)
        return zip(running, ips).map { $0.receipt($1, timeout: max(0.1, deadline.timeIntervalSinceNow)) }
    }

    /// Stops a receiver that cannot finish (SIGINT: it reports what it has and exits).
    func interrupt(_ ip: String) -> GroupReceipt {
        if child.process.isRunning { kill(child.process.processIdentifier, SIGINT) }
        return receipt(ip, timeout: 5)
    }
}
