import Foundation
import TestSupport
import XCTest

/// What the reliable-stream pair tests (ReliablePairTests) need around the binaries: a veth
/// path whose loss nftables makes and counts, random source files, and the reports' parts.

/// Skips (with the reason printed) unless this process may build namespaces and `nft` is here.
func requireRootAndNFTables() throws {
    guard isRoot else {
        print("ReliablePairTests: skipped: needs root for network namespaces (uid \(geteuid()))")
        throw XCTSkip("needs root to create network namespaces (running as uid \(geteuid()))")
    }
    guard ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].contains(where: FileManager.default.isExecutableFile(atPath:)) else {
        print("ReliablePairTests: skipped: nft (nftables) is not installed; Tools/bootstrap installs it")
        throw XCTSkip("needs nft (nftables) to drop datagrams on the path; Tools/bootstrap installs it")
    }
}

struct NFTablesError: Error, CustomStringConvertible {
    let description: String
}

/// One nftables table (`inet`, an input and an output chain) in a namespace: rules that drop
/// UDP datagrams, every one or at random, each with a counter nftables keeps itself.
final class PathFilter {
    enum Chain: String { case input, output }

    let namespace: String
    let table: String

    init(namespace: String, table: String = "zcrel") throws {
        self.namespace = namespace
        self.table = table
        try nft("add table inet \(table)")
        for chain in [Chain.input, .output] {
            try nft("add chain inet \(table) \(chain.rawValue) '{ type filter hook \(chain.rawValue) priority 0; }'")
        }
    }

    @discardableResult
    func nft(_ arguments: String) throws -> String {
        let r = shell("ip netns exec \(namespace) nft \(arguments)")
        guard r.status == 0 else { throw NFTablesError(description: "nft \(arguments) in \(namespace): \(r.output)") }
        return r.output
    }

    /// Adds `<match> [numgen random mod 1000 lt perMille] counter drop` to `chain`, named
    /// `name` (its comment) for `dropped(_:)` and `delete(_:)`. `match` is nftables syntax,
    /// e.g. `udp dport 9000`.
    func drop(_ name: String, _ chain: Chain, _ match: String, perMille: Int? = nil) throws {
        let random = perMille.map { "numgen random mod 1000 lt \($0) " } ?? ""
        try nft("add rule inet \(table) \(chain.rawValue) \(match) \(random)counter drop comment '\"\(name)\"'")
    }

    /// Adds a rule that only counts `match` (accepts it), named `name`.
    func count(_ name: String, _ chain: Chain, _ match: String) throws {
        try nft("add rule inet \(table) \(chain.rawValue) \(match) counter comment '\"\(name)\"'")
    }

    /// Packets rule `name` counted (dropped, for a drop rule), as nftables itself says.
    func packets(_ name: String) throws -> UInt64 {
        let rule = try self.rule(name)
        let expressions = rule["expr"] as? [[String: Any]] ?? []
        guard let counter = expressions.compactMap({ $0["counter"] as? [String: Any] }).first,
              let packets = counter["packets"] as? NSNumber else {
            throw NFTablesError(description: "rule \(name) has no counter: \(rule)")
        }
        return packets.uint64Value
    }

    /// Deletes rule `name`.
    func delete(_ name: String) throws {
        let rule = try self.rule(name)
        guard let chain = rule["chain"] as? String, let handle = rule["handle"] as? NSNumber else {
            throw NFTablesError(description: "rule \(name) has no chain or handle: \(rule)")
        }
        try nft("delete rule inet \(table) \(chain) handle \(handle.intValue)")
    }

    private func rule(_ name: String) throws -> [String: Any] {
        let text = try nft("-j list table inet \(table)")
        let document = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
        let items = document?["nftables"] as? [[String: Any]] ?? []
        guard let rule = items.compactMap({ $0["rule"] as? [String: Any] }).first(where: { $0["comment"] as? String == name }) else {
            throw NFTablesError(description: "no rule \(name) in table \(table) of \(namespace): \(text)")
        }
        return rule
    }
}

/// Two namespaces joined by a veth (NamespacePair): the sender in `a`, the receiver in `b` on
/// port 9000, and a PathFilter in `b` for the loss.
///
/// A GSO send crosses a veth as one packet, so a rule would see, count and drop 44 datagrams
/// at a time. `gso_max_segs 1` on the sender's end makes the kernel segment every send
/// before the veth — what a NIC does before the wire — so nftables sees single datagrams:
/// its counter is datagrams and its random drop is per datagram (checked by
/// `testNFTablesCountsEveryDatagramItDrops`). A path property: zc-send's flags stay the defaults.
final class LossyPath {
    let net: NamespacePair
    let filter: PathFilter
    let port = 9000

    init(tag: String, subnet: Int) throws {
        try requireRootAndNFTables()
        net = try NamespacePair(tag: tag, subnet: subnet)
        let segment = shell("ip -n \(net.a) link set \(net.interfaceA) gso_max_segs 1")
        guard segment.status == 0 else {
            throw NFTablesError(description: "ip link set \(net.interfaceA) gso_max_segs 1: \(segment.output)")
        }
        filter = try PathFilter(namespace: net.b)
    }

    /// HOST:PORT the receiver listens on and the sender sends to.
    var destination: String { "\(net.addressB):\(port)" }

    /// Datagrams to the receiver: DATA, repairs and END (on the receiver's input).
    var toReceiver: String { "udp dport \(port)" }
    /// Datagrams from the receiver: STATUS, NAK and the REPORT (on the receiver's output).
    var fromReceiver: String { "udp sport \(port)" }
}

/// Files a test writes, removed when it ends: random sources and outputs, in /dev/shm (tmpfs:
/// no disk in the timing) or /tmp where there is none.
final class ScratchFiles {
    private let base: String
    private var paths: [String] = []

    init(_ tag: String) {
        let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        base = "\(dir)/zc-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// A path for the test to write (an output).
    func path(_ name: String) -> String {
        let path = "\(base)-\(name)"
        paths.append(path)
        return path
    }

    /// A new file of `bytes` random bytes.
    func random(_ name: String, bytes: Int) throws -> String {
        let path = self.path(name)
        let r = shell("head -c \(bytes) /dev/urandom > \(path)")
        guard r.status == 0 else { throw NFTablesError(description: "cannot write \(path): \(r.output)") }
        return path
    }

    deinit {
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
    }
}

extension Child {
    /// Waits for exit; after `timeout` kills the child's whole process group (Foundation starts
    /// each child in a group of its own: a shell and every process of the pipeline it runs),
    /// so that no zc-recv or reader of a pipeline outlives the test or holds its pipes open.
    func waitForGroup(timeout: TimeInterval) -> Result {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(-process.processIdentifier, SIGKILL) }
        return wait(timeout: 5)
    }
}

/// Asserts two files are byte for byte the same (cmp names the first difference).
func assertSameBytes(_ source: String, _ output: String, _ context: String, file: StaticString = #filePath, line: UInt = #line) {
    let r = shell("cmp \(source) \(output)")
    XCTAssertEqual(r.status, 0, "\(context): the output is not the source: \(r.output)", file: file, line: line)
}

/// One finished reliable transfer: both processes' results and the reports' parts.
struct ReliableTransfer {
    let sent: Child.Result
    let received: Child.Result
    /// The receiver's JSON report (nil when it printed none).
    let receiverReport: [String: Any]?

    var sender: [String: Any]? { sent.json }
    /// The sender's `reliability` object.
    var reliability: [String: Any]? { sender?["reliability"] as? [String: Any] }
    /// The receiver's (first and only) stream.
    var stream: [String: Any]? { (receiverReport?["streams"] as? [[String: Any]])?.first }

    /// Number of the sender's `reliability.<key>`.
    func sent(_ key: String) -> UInt64? { u64(reliability, key) }
    /// Number of the receiver's stream's `<key>`.
    func stream(_ key: String) -> UInt64? { u64(stream, key) }

    /// Both ends' verdict: everything delivered, nothing lost, both exit 0, the output is the
    /// source. `context` names the case in messages.
    func assertDelivered(_ context: String, source: String? = nil, output: String? = nil,
                         file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(sent.status, 0, "\(context): zc-send: \(sent.stderr)", file: file, line: line)
        XCTAssertEqual(received.status, 0, "\(context): zc-recv: \(received.stderr)", file: file, line: line)
        XCTAssertNotNil(reliability, "\(context): no reliability object in zc-send's JSON: \(sent.stdout)", file: file, line: line)
        XCTAssertEqual(reliability?["delivered"] as? Bool, true, "\(context): \(reliability ?? [:])", file: file, line: line)
        XCTAssertEqual(reliability?["gave_up"] as? Bool, false, "\(context): \(reliability ?? [:])", file: file, line: line)
        XCTAssertEqual((reliability?["unacknowledged_ranges"] as? [Any])?.count, 0, "\(context): \(reliability ?? [:])", file: file, line: line)
        // The final cumulative ack covers every sequence number the sender sent.
        XCTAssertNotNil(sent("acknowledged"), "\(context): \(reliability ?? [:])", file: file, line: line)
        XCTAssertEqual(sent("acknowledged"), u64(sender, "sequences"), "\(context): acknowledged vs sequences", file: file, line: line)
        XCTAssertNotNil(stream, "\(context): no stream in zc-recv's JSON: \(received.stdout) \(received.stderr)", file: file, line: line)
        XCTAssertEqual(stream?["reliable"] as? Bool, true, "\(context): the receiver did not take the stream as reliable", file: file, line: line)
        XCTAssertEqual(stream?["gave_up"] as? Bool, false, "\(context)", file: file, line: line)
        XCTAssertEqual(stream?["complete"] as? Bool, true, "\(context)", file: file, line: line)
        XCTAssertEqual(stream("lost"), 0, "\(context): the receiver's stream lost datagrams", file: file, line: line)
        XCTAssertEqual(u64(receiverReport, "lost"), 0, "\(context): the receiver lost datagrams", file: file, line: line)
        XCTAssertEqual(u64(receiverReport, "corrupt"), 0, "\(context)", file: file, line: line)
        // Every repaired number was sent again at least once.
        if let repaired = stream("repaired"), let retransmitted = sent("retransmitted_datagrams") {
            XCTAssertGreaterThanOrEqual(retransmitted, repaired, "\(context): fewer retransmissions than repairs", file: file, line: line)
        } else {
            XCTFail("\(context): no repaired (receiver) or retransmitted_datagrams (sender)", file: file, line: line)
        }
        if let source, let output { assertSameBytes(source, output, context, file: file, line: line) }
    }

    /// One line of the numbers, for the log.
    var summary: String {
        let keys = ["retransmitted_datagrams", "naks_received", "status_received", "repair_rounds", "window_blocked_seconds", "goodput_gbps", "rtt_min_us", "rtt_avg_us"]
        let s = keys.map { "\($0) \(reliability?[$0] ?? "-")" }.joined(separator: ", ")
        let r = ["repaired", "repair_duplicates", "naks_sent", "status_sent", "duplicates", "lost"].map { "\($0) \(stream?[$0] ?? "-")" }.joined(separator: ", ")
        return "sender: \(s); receiver: \(r), kernel_drops \(receiverReport?["kernel_drops"] ?? "-")"
    }
}

/// The JSON document in a text that has other lines around it (zc-recv with `--output -`
/// prints its report on stderr, after its progress lines): from the first line that is
/// `{` to the first line that is `}`.
func jsonDocument(in text: String) -> [String: Any]? {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    guard let start = lines.firstIndex(of: "{"), let end = lines[start...].firstIndex(of: "}") else { return nil }
    let document = lines[start...end].joined(separator: "\n")
    return (try? JSONSerialization.jsonObject(with: Data(document.utf8))) as? [String: Any]
}
