import Foundation
import TestSupport
import XCTest

/// Raw mode end to end: zc-send --engine packet-ring writes whole Ethernet/IPv4/UDP
/// frames into an AF_PACKET TX ring in namespace A; zc-recv in namespace B (across a
/// veth pair) validates every datagram through its ordinary UDP socket, so the
/// kernel checks our IPv4 header checksum before zc-recv checks the rest. (The UDP
/// checksum is offloaded, CHECKSUM_PARTIAL, which a veth delivers unchecked;
/// FrameBuilderTests check the software one byte for byte.)
final class PacketRingPairTests: XCTestCase {
    /// 100,000 datagrams at 500 kpps, twice: the destination MAC given with --dst-mac
    /// (read from B's interface; ring transfer auto = copy on veth), then resolved
    /// from A's neighbour table (ring transfer zerocopy). Before
    /// that: a down interface and no privilege are refused with one line each and
    /// nothing sent. (No neighbour entry is no longer refused: the kernel resolves
    /// it; see PacketRingNextHopTests.)
    func testPacketRingPairBothNeighbourPaths() throws {
        let net = try NamespacePair(tag: "pr", subnet: 0)
        defer { net.remove() }
        let macB = shell("ip netns exec \(net.b) cat /sys/class/net/\(net.interfaceB)/address").output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(macB.split(separator: ":").count, 6, "B's MAC: \(macB)")

        // Interface down: exit 64, one line.
        net.run(net.a, "ip link set \(net.interfaceA) down")
        let down = try runSender(["\(net.addressB):9", "--engine", "packet-ring", "--interface", net.interfaceA,
                                  "--dst-mac", macB, "--count", "10"], namespace: net.a)
        XCTAssertEqual(down.status, 64, down.stderr)
        XCTAssertEqual(lines(down.stderr), ["zc-send: interface '\(net.interfaceA)' is down: bring it up with `ip link set \(net.interfaceA) up`"])
        net.run(net.a, "ip link set \(net.interfaceA) up")

        // Without CAP_NET_RAW (uid nobody): exit 77, one line.
        if shell("command -v setpriv").status == 0 {
            let child = try Child("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                                                        Binaries.send, "\(net.addressB):9", "--engine", "packet-ring",
                                                        "--interface", net.interfaceA, "--dst-mac", macB, "--count", "10"],
                                  namespace: net.a)
            let r = child.wait(timeout: 30)
            XCTAssertEqual(r.status, 77, r.stderr)
            XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("CAP_NET_RAW"), r.stderr)
        }

        // Path 1: --dst-mac.
        try stream(net, ["--dst-mac", macB], expectMACFrom: "--dst-mac", mac: macB)

        // Path 2: the neighbour table, after the kernel resolved B (ping when it is
        // installed, else any datagram sent through the ordinary stack; port 9, discard).
        let resolve = shell("ip netns exec \(net.a) sh -c 'ping -c1 -W2 \(net.addressB) >/dev/null 2>&1 || "
                            + "bash -c \"echo resolve > /dev/udp/\(net.addressB)/9\"'")
        XCTAssertEqual(resolve.status, 0, resolve.output)
        var resolved = false
        for _ in 0..<100 where !resolved {
            resolved = shell("ip netns exec \(net.a) cat /proc/net/arp").output.contains(macB)
            if !resolved { usleep(20_000) }
        }
        XCTAssertTrue(resolved, "the kernel did not resolve \(net.addressB)")
        // This time the ring hands its pages to the skbs (zerocopy, the default on
        // hardware) instead of the copy mode the veth gets by default.
        try stream(net, ["--ring-transfer", "zerocopy"], expectMACFrom: "neighbour table", mac: macB)
    }

    /// No such interface: exit 64, one line on stderr naming it. Needs no root:
    /// the interface is looked up before any socket is opened.
    func testMissingInterfaceIsBadInput() throws {
        let r = try runSender(["198.18.0.2:9", "--engine", "packet-ring", "--interface", "nosuchif0", "--count", "10"])
        XCTAssertEqual(r.status, 64, r.stderr)
        XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("nosuchif0"), r.stderr)
        XCTAssertEqual(r.stdout, "", "nothing sent, no report")
    }

    /// --interface belongs to packet-ring, and packet-ring needs it: both exit 64.
    func testInterfaceAndEngineGoTogether() throws {
        let stray = try runSender(["198.18.0.2:9", "--interface", "lo", "--count", "10"])
        XCTAssertEqual(stray.status, 64, stray.stderr)
        XCTAssertTrue(stray.stderr.contains("--interface applies only to --engine packet-ring"), stray.stderr)
        let missing = try runSender(["198.18.0.2:9", "--engine", "packet-ring", "--count", "10"])
        XCTAssertEqual(missing.status, 64, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("--engine packet-ring needs --interface"), missing.stderr)
        // IPv6 is sent now, but never on loopback: it has no Ethernet header.
        let ipv6 = try runSender(["[::1]:9", "--engine", "packet-ring", "--interface", "lo", "--count", "10"])
        XCTAssertEqual(ipv6.status, 64, ipv6.stderr)
        XCTAssertTrue(ipv6.stderr.contains("not an Ethernet device"), ipv6.stderr)
    }
}

extension XCTestCase {
    /// 100,000 datagrams from A to a zc-recv listening on `listen` in B (default: B's
    /// address); every one must arrive valid. Returns the sender's JSON.
    @discardableResult
    func stream(_ net: NamespacePair, _ extra: [String], expectMACFrom: String, mac: String,
                listen: String? = nil, sender: String? = nil, receiverNamespace: String? = nil,
                file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any]? {
        let receiver = try RunningReceiver.start(listen: listen ?? "\(net.addressB):0", ["--streams", "1", "--idle-timeout", "5s"],
                                                 namespace: receiverNamespace ?? net.b)
        let sent = try runSender([receiver.address, "--engine", "packet-ring", "--interface", sender ?? net.interfaceA,
                                  "--count", "100000", "--rate", "500kpps"] + extra, namespace: net.a, timeout: 60)
        let received = receiver.child.wait(timeout: 30)
        XCTAssertEqual(sent.status, 0, sent.stderr, file: file, line: line)
        let s = try XCTUnwrap(sent.json, "sender JSON: \(sent.stdout) \(sent.stderr)", file: file, line: line)
        let r = try XCTUnwrap(received.json, "receiver JSON: \(received.stdout) \(received.stderr)", file: file, line: line)
        XCTAssertEqual(s["engine"] as? String, "packet-ring", file: file, line: line)
        XCTAssertEqual(s["udp_checksum"] as? String, "offloaded", file: file, line: line)
        let ring = s["packet_ring"] as? [String: Any]
        XCTAssertTrue((ring?["dst_mac_from"] as? String ?? "").hasPrefix(expectMACFrom), "\(ring?["dst_mac_from"] ?? "nil")", file: file, line: line)
        XCTAssertEqual(ring?["dst_mac"] as? String, mac, file: file, line: line)
        XCTAssertEqual(u64(s, "packet_ring", "wrong_format"), 0, file: file, line: line)
        XCTAssertEqual(u64(s, "datagrams"), 100_000, "sender datagrams", file: file, line: line)
        XCTAssertEqual(u64(s, "ends_sent"), 3, file: file, line: line)
        XCTAssertEqual(u64(r, "datagrams"), 100_000, "receiver datagrams", file: file, line: line)
        XCTAssertEqual(u64(r, "lost"), 0, "lost", file: file, line: line)
        XCTAssertEqual(u64(r, "corrupt"), 0, "corrupt", file: file, line: line)
        XCTAssertEqual(u64(r, "invalid"), 0, "invalid", file: file, line: line)
        // The receiver's REPORT came back to the frames' source port (a UDP socket bound to it).
        XCTAssertEqual(u64(s["receiver"] as? [String: Any], "unique"), 100_000, "REPORT: \(s["receiver_missing"] ?? "")",
                       file: file, line: line)
        print("packet-ring pair (\(expectMACFrom)): sent \(u64(s, "datagrams") ?? 0), received \(u64(r, "datagrams") ?? 0), "
              + "lost \(u64(r, "lost") ?? 0), corrupt \(u64(r, "corrupt") ?? 0), transfer \(ring?["transfer"] ?? "?"), "
              + "next hop \(ring?["next_hop"] ?? "?"), MAC from \(ring?["dst_mac_from"] ?? "?")")
        return s
    }

    func lines(_ text: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }
}
