import Foundation
import TestSupport
import XCTest

/// Raw mode in the real world: zc-send --engine packet-ring finds the next hop as the
/// kernel does (route, then neighbour table, resolving by ARP/NDP when there is no
/// entry), sends IPv6 frames and 802.1Q-tagged frames, and refuses an unresolvable
/// next hop with one line, exit 2, nothing sent. Namespaces on 198.18.70-79.0/24
/// and 2001:2:70-79::/64, made and removed by each test.
final class PacketRingNextHopTests: XCTestCase {
    /// On-link IPv4 with no neighbour entry beforehand: the kernel resolves it by ARP.
    func testOnLinkIPv4ResolvesWithoutNeighbourEntry() throws {
        let net = try NamespacePair(tag: "nh4", subnet: 70)
        defer { net.remove() }
        let before = shell("ip -n \(net.a) neigh show \(net.addressB)").output
        XCTAssertFalse(before.contains("lladdr"), "a neighbour entry already exists: \(before)")
        let s = try stream(net, [], expectMACFrom: "resolved by ARP", mac: net.mac(net.b, net.interfaceB))
        XCTAssertEqual((s?["packet_ring"] as? [String: Any])?["next_hop"] as? String, "\(net.addressB) (on-link)")
    }

    /// On-link IPv6 with no neighbour entry: resolved by NDP, frames are IPv6 + UDP
    /// with the mandatory checksum (zc-recv's ordinary socket checks it); then the
    /// same to a link-local destination with a scope, `[fe80::2%IF]:PORT`.
    func testOnLinkIPv6ResolvesByNDPAndLinkLocalWithScope() throws {
        let net = try NamespacePair(tag: "nh6", subnet: 71)
        defer { net.remove() }
        net.addIPv6()
        let macB = net.mac(net.b, net.interfaceB)
        let before = shell("ip -n \(net.a) -6 neigh show \(net.addressB6)").output
        XCTAssertFalse(before.contains("lladdr"), "a neighbour entry already exists: \(before)")
        let s = try stream(net, [], expectMACFrom: "resolved by NDP", mac: macB, listen: "[\(net.addressB6)]:0")
        let ring = s?["packet_ring"] as? [String: Any]
        XCTAssertEqual(ring?["next_hop"] as? String, "\(net.addressB6) (on-link)")
        XCTAssertEqual(ring?["src"] as? String, "[\(net.addressA6)]:40000")

        let receiver = try RunningReceiver.start(listen: "[\(net.linkLocalB6)%\(net.interfaceB)]:0", ["--streams", "1", "--idle-timeout", "5s"],
                                                 namespace: net.b)
        let port = receiver.address.split(separator: ":").last!
        let sent = try runSender(["[\(net.linkLocalB6)%\(net.interfaceA)]:\(port)", "--engine", "packet-ring", "--interface", net.interfaceA,
                                  "--count", "10000", "--rate", "200kpps"], namespace: net.a)
        let received = receiver.child.wait(timeout: 30)
        XCTAssertEqual(sent.status, 0, sent.stderr)
        XCTAssertEqual(u64(received.json, "datagrams"), 10_000, "\(received.stdout) \(received.stderr)")
        XCTAssertEqual(u64(received.json, "lost"), 0)
        XCTAssertEqual(u64(received.json, "corrupt"), 0)
        XCTAssertEqual(u64(received.json, "invalid"), 0)
    }

    /// A receiver behind a router namespace: the frames go to the gateway's MAC
    /// (found by ARP), the router forwards them, zc-recv gets every one.
    func testOffLinkDestinationGoesToTheGatewaysMAC() throws {
        // A (sender) 198.18.72.1 -- R 198.18.72.2 | 198.18.73.1 -- C (receiver) 198.18.73.2
        let net = try NamespacePair(tag: "nhr", subnet: 72)
        let c = net.b.replacingOccurrences(of: "-b", with: "-c")
        let rc = net.interfaceB.replacingOccurrences(of: "b", with: "r"), cr = net.interfaceB.replacingOccurrences(of: "b", with: "c")
        defer { shell("ip netns del \(c) 2>/dev/null"); net.remove() }
        for command in ["ip netns add \(c)",
                        "ip link add \(rc) netns \(net.b) type veth peer name \(cr) netns \(c)",
                        "ip -n \(net.b) addr add 198.18.73.1/24 dev \(rc)", "ip -n \(c) addr add 198.18.73.2/24 dev \(cr)",
                        "ip -n \(net.b) link set \(rc) up", "ip -n \(c) link set \(cr) up", "ip -n \(c) link set lo up",
                        "ip netns exec \(net.b) sysctl -qw net.ipv4.ip_forward=1",
                        "ip -n \(net.a) route add 198.18.73.0/24 via \(net.addressB)",
                        "ip -n \(c) route add 198.18.72.0/24 via 198.18.73.1"] {
            let r = shell(command)
            XCTAssertEqual(r.status, 0, "`\(command)`: \(r.output)")
        }
        let macR = net.mac(net.b, net.interfaceB)
        let s = try stream(net, [], expectMACFrom: "resolved by ARP", mac: macR, listen: "198.18.73.2:0", receiverNamespace: c)
        XCTAssertEqual((s?["packet_ring"] as? [String: Any])?["next_hop"] as? String, "\(net.addressB) (gateway for 198.18.73.2)")
    }

    /// --vlan 100:5: captured on the peer with tshark (there is no 8021q module to
    /// terminate the VLAN): every frame carries VID 100 and PCP 5, and the zcstream
    /// dissector finds every datagram's checksum good.
    func testVLANTagByCapture() throws {
        guard shell("command -v dumpcap && command -v tshark").status == 0 else {
            throw XCTSkip("dumpcap/tshark not installed (Tools/bootstrap installs tshark)")
        }
        let net = try NamespacePair(tag: "nhv", subnet: 74)
        defer { net.remove() }
        let dissector = Repository.root.appendingPathComponent("Protocol/zcstream.lua").path
        let pcap = "/tmp/zc-vlan-\(getpid()).pcapng"
        defer { unlink(pcap) }
        let capture = try Child("/usr/bin/dumpcap", ["-q", "-i", net.interfaceB, "-f", "vlan", "-w", pcap], namespace: net.b)
        usleep(1_500_000) // dumpcap says nothing when it is ready
        XCTAssertTrue(capture.process.isRunning, "dumpcap: \(capture.stderr.text)")
        let sent = try runSender(["\(net.addressB):9000", "--engine", "packet-ring", "--interface", net.interfaceA, "--vlan", "100:5",
                                  "--dst-mac", net.mac(net.b, net.interfaceB), "--count", "200", "--rate", "10kpps",
                                  // One datagram a frame: the veth forwards GSO frames unsegmented, so the capture would see super-frames.
                                  "--gso", "off"], namespace: net.a)
        XCTAssertEqual(sent.status, 0, sent.stderr)
        XCTAssertEqual((sent.json?["packet_ring"] as? [String: Any])?["vlan"] as? String, "100:5")
        usleep(500_000)
        kill(capture.process.processIdentifier, SIGINT)
        _ = capture.wait(timeout: 10)
        let decoded = shell("tshark -X lua_script:\(dissector) -o zcstream.port:9000 -r \(pcap) -T fields -E separator=, "
                            + "-e vlan.id -e vlan.priority -e zcstream.seq -e zcstream.checksum.status -e udp.length 2>/dev/null")
        XCTAssertEqual(decoded.status, 0, decoded.output)
        var seqs: [UInt64] = []
        var wrong: [String] = []
        for line in decoded.output.split(separator: "\n") {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 5, let seq = UInt64(f[2]) else { continue }
            if f[0] != "100" || f[1] != "5" || f[3] != "good" { wrong.append(String(line)) }
            if f[4] == "1480" { seqs.append(seq) } // data (END datagrams are shorter)
        }
        XCTAssertEqual(wrong, [], "frames without the tag or with a bad checksum")
        XCTAssertEqual(Set(seqs), Set(0..<200), "every data datagram captured, tagged, intact")
    }

    /// A next hop nobody answers for: one line naming it, exit 2, no datagram on the wire
    /// (only ARP solicitations).
    func testUnresolvableNextHopFailsWithExit2AndSendsNothing() throws {
        let net = try NamespacePair(tag: "nhu", subnet: 75)
        defer { net.remove() }
        let udpBefore = shell("ip netns exec \(net.b) cat /proc/net/snmp").output
        let started = Date()
        let r = try runSender(["198.18.75.99:9000", "--engine", "packet-ring", "--interface", net.interfaceA, "--count", "10"],
                              namespace: net.a)
        let took = Date().timeIntervalSince(started)
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("next hop 198.18.75.99 (on-link) did not answer ARP"), r.stderr)
        XCTAssertTrue(r.stderr.contains("nothing sent"), r.stderr)
        XCTAssertEqual(r.stdout, "", "no report: nothing was sent")
        XCTAssertLessThan(took, 10, "bounded wait")
        // Nothing but ARP left A: B's IP layer saw no packet at all.
        let ipIn = { (text: String) -> String in
            let l = text.split(separator: "\n").filter { $0.hasPrefix("Ip:") }
            return l.count == 2 ? String(l[1].split(separator: " ")[3]) : "?" // InReceives
        }
        XCTAssertEqual(ipIn(shell("ip netns exec \(net.b) cat /proc/net/snmp").output), ipIn(udpBefore), "B received IP packets")
    }
}

/// GSO through the ring: up to 64 KiB of whole datagrams per frame, segmented by
/// the kernel after the ring; every segment is a complete zcstream datagram.
final class PacketRingGSOTests: XCTestCase {
    /// 100,000 datagrams with --gso auto (copy mode, then zerocopy: the payload
    /// stays in the ring's pages) arrive whole at zc-recv: unique 100000, lost 0,
    /// corrupt 0, invalid 0; and the report says GSO was used, not a fallback.
    func testHundredThousandDatagramsWithGSOThroughTheRing() throws {
        let net = try NamespacePair(tag: "nhg", subnet: 76)
        defer { net.remove() }
        for transfer in ["copy", "zerocopy"] {
            let receiver = try RunningReceiver.start(listen: "\(net.addressB):0", ["--streams", "1", "--idle-timeout", "3s"], namespace: net.b)
            let sent = try runSender([receiver.address, "--engine", "packet-ring", "--interface", net.interfaceA, "--gso", "auto",
                                      "--ring-transfer", transfer, "--count", "100000", "--rate", "2000kpps"], namespace: net.a)
            let received = receiver.child.wait(timeout: 30)
            XCTAssertEqual(sent.status, 0, sent.stderr)
            let ring = sent.json?["packet_ring"] as? [String: Any]
            let segments = (ring?["gso_segments"] as? NSNumber)?.intValue ?? 0
            if PacketRingGSOTests.kernelSegments {
                XCTAssertEqual(segments, 44, "\(ring ?? [:])")
                XCTAssertTrue((ring?["gso"] as? String ?? "").hasPrefix("UDP_L4 GSO"), "\(ring?["gso"] ?? "nil")")
            } else {
                XCTAssertEqual(segments, 1)
                XCTAssertTrue((ring?["gso"] as? String ?? "").hasPrefix("off: kernel"), "\(ring?["gso"] ?? "nil")")
            }
            XCTAssertEqual(u64(sent.json, "packet_ring", "wrong_format"), 0)
            XCTAssertEqual(u64(sent.json, "datagrams"), 100_000)
            let r = try XCTUnwrap(received.json, "receiver JSON: \(received.stdout) \(received.stderr)")
            XCTAssertEqual(u64(r, "unique"), 100_000, transfer)
            XCTAssertEqual(u64(r, "lost"), 0, transfer)
            XCTAssertEqual(u64(r, "corrupt"), 0, transfer)
            XCTAssertEqual(u64(r, "invalid"), 0, transfer)
            print("packet-ring GSO (\(transfer)): \(segments) datagrams a frame, received \(u64(r, "unique") ?? 0) unique, "
                  + "lost \(u64(r, "lost") ?? 0), corrupt \(u64(r, "corrupt") ?? 0), invalid \(u64(r, "invalid") ?? 0)")
        }
    }

    /// --source fixed through the ring: the payload is placed in every frame once
    /// (every datagram position of a GSO frame), only headers change; with and
    /// without GSO, 100,000 jumbo datagrams arrive whole.
    func testFixedPayloadThroughTheRing() throws {
        let net = try NamespacePair(tag: "nhf", subnet: 77)
        defer { net.remove() }
        net.run(net.a, "ip link set \(net.interfaceA) mtu 9000")
        net.run(net.b, "ip link set \(net.interfaceB) mtu 9000")
        for gso in ["off", "auto"] {
            let receiver = try RunningReceiver.start(listen: "\(net.addressB):0", ["--streams", "1", "--idle-timeout", "3s"], namespace: net.b)
            let sent = try runSender([receiver.address, "--engine", "packet-ring", "--interface", net.interfaceA, "--source", "fixed",
                                      "--size", "8972", "--gso", gso, "--count", "100000", "--rate", "200kpps"], namespace: net.a)
            let received = receiver.child.wait(timeout: 30)
            XCTAssertEqual(sent.status, 0, sent.stderr)
            let r = try XCTUnwrap(received.json, "receiver JSON: \(received.stdout) \(received.stderr)")
            XCTAssertEqual(u64(r, "unique"), 100_000, "--gso \(gso)")
            XCTAssertEqual(u64(r, "lost"), 0, "--gso \(gso)")
            XCTAssertEqual(u64(r, "corrupt"), 0, "--gso \(gso)")
            XCTAssertEqual(u64(r, "invalid"), 0, "--gso \(gso)")
        }
    }

    /// Linux 6.2 or later (UDP_L4 GSO for packet sockets).
    static var kernelSegments: Bool {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let v = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return v.count == 2 && (v[0] > 6 || (v[0] == 6 && v[1] >= 2))
    }
}
