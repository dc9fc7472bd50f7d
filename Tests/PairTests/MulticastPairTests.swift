import Foundation
import XCTest

/// Multicast end to end on a bridge: one zc-send, receivers in other namespaces that
/// join the group through their own sockets. Every receiver must see the whole
/// stream exactly; a source filter must keep a second sender out; a receiver that
/// joins mid-stream must say so and count exactly from the first sequence it saw.
final class MulticastPairTests: XCTestCase {
    /// IPv4 group, io_uring SEND_ZC: two receivers, each gets all 100,000 datagrams.
    /// Zero-copy accounting stays honest: every send's notification is counted as
    /// copied or zero-copied (on a veth the kernel copies).
    func testIPv4GroupReachesTwoReceiversWhole() throws {
        let lan = try MulticastBridge(tag: "m4", subnet: 50, hosts: 3)
        defer { lan.remove() }
        let (s, receivers) = try run(lan, group: "239.255.13.13", port: 9500, engine: "uring-zc", count: 100_000,
                                     secondReceiverOnHost2: true)
        let sends = try XCTUnwrap(u64(s, "zc", "sends"))
        XCTAssertGreaterThan(sends, 0)
        XCTAssertEqual((u64(s, "zc", "copied") ?? 0) + (u64(s, "zc", "zero_copied") ?? 0), u64(s, "zc", "notifications"))
        // Hosts 2 and 3, then a second receiver of the same group and port on host 2
        // (SO_REUSEADDR: each socket gets its own copy of every datagram).
        XCTAssertEqual(receivers.count, 3)
        for (r, host) in zip(receivers, Array(lan.hosts.dropFirst()) + [lan.hosts[1]]) {
            try assertWhole(r, count: 100_000, group: "239.255.13.13", interface: host.interface)
        }
    }

    /// IPv6 group (ff15::/16, transient, site-local scope), sendmmsg engine, default
    /// --size (1452 to IPv6): both receivers get every datagram.
    func testIPv6GroupReachesTwoReceiversWhole() throws {
        let lan = try MulticastBridge(tag: "m6", subnet: 51, hosts: 3)
        defer { lan.remove() }
        let (s, receivers) = try run(lan, group: "ff15::13", port: 9500, engine: "sendmmsg", count: 100_000)
        XCTAssertEqual(u64(s, "datagram_size"), 1452)
        for (r, host) in zip(receivers, lan.hosts.dropFirst()) {
            try assertWhole(r, count: 100_000, group: "ff15::13", interface: host.interface)
        }
    }

    /// Source-specific multicast (IGMPv3 INCLUDE): two senders to one group, the
    /// receiver filters on the first; only its stream is accounted, no datagram of
    /// the second reaches the receiver's socket.
    func testSourceFilterKeepsSecondSenderOut() throws {
        let lan = try MulticastBridge(tag: "ms", subnet: 52, hosts: 3)
        defer { lan.remove() }
        let (wanted, other, listener) = (lan.hosts[0], lan.hosts[1], lan.hosts[2])
        let receiver = try RunningReceiver.start(listen: "232.1.1.1:9501",
                                                 ["--interface", listener.interface, "--source-filter", wanted.ipv4,
                                                  "--idle-timeout", "2s"], namespace: listener.namespace)
        let second = try Child(Binaries.send, ["232.1.1.1:9501", "--interface", other.interface, "--count", "50000",
                                               "--rate", "200kpps", "--stream-id", "0xbad", "--json", "--interval", "0"],
                               namespace: other.namespace)
        let first = try runSender(["232.1.1.1:9501", "--interface", wanted.interface, "--count", "50000", "--rate", "200kpps",
                                   "--stream-id", "0x600d"], namespace: wanted.namespace)
        XCTAssertEqual(second.wait(timeout: 30).status, 0)
        XCTAssertEqual(first.status, 0, first.stderr)
        let received = receiver.child.wait(timeout: 30)
        let r = try XCTUnwrap(received.json, received.stderr)
        let streams = try XCTUnwrap(r["streams"] as? [[String: Any]])
        XCTAssertEqual(streams.count, 1, "only the filtered source's stream: \(streams.map { $0["stream_id"] ?? "?" })")
        XCTAssertEqual(u64(streams.first, "stream_id"), 0x600d)
        XCTAssertEqual(u64(streams.first, "unique"), 50_000)
        XCTAssertEqual(u64(r, "datagrams"), 50_000, "no datagram from the other source")
        XCTAssertEqual((r["multicast"] as? [String: Any])?["source_filter"] as? String, wanted.ipv4)
        XCTAssertEqual(r["ok"] as? Bool, true)
    }

    /// A receiver that joins while the stream runs: it reports joined_late with the
    /// first sequence number it saw and counts exactly from there (unique + first
    /// sequence = the stream's total, nothing lost, verdict ok); with
    /// --count-head-loss the missed head is lost instead, the stream incomplete and not
    /// "joined late" (it is accounted from 0).
    func testLateJoinIsReportedAndCountedFromFirstSequence() throws {
        let lan = try MulticastBridge(tag: "ml", subnet: 53, hosts: 3)
        defer { lan.remove() }
        let total: UInt64 = 60_000
        let sender = try Child(Binaries.send, ["239.255.13.14:9502", "--interface", lan.hosts[0].interface,
                                               "--count", "\(total)", "--rate", "20kpps", "--json", "--interval", "0"],
                               namespace: lan.hosts[0].namespace)
        usleep(1_000_000)  // ~20,000 datagrams before anyone listens
        let plain = try RunningReceiver.start(listen: "239.255.13.14:9502", ["--interface", lan.hosts[1].interface,
                                                                               "--idle-timeout", "2s"], namespace: lan.hosts[1].namespace)
        let counting = try RunningReceiver.start(listen: "239.255.13.14:9502",
                                                 ["--interface", lan.hosts[2].interface, "--count-head-loss", "--idle-timeout", "2s"],
                                                 namespace: lan.hosts[2].namespace)
        XCTAssertEqual(sender.wait(timeout: 30).status, 0)

        let p = try XCTUnwrap(plain.child.wait(timeout: 30).json)
        let ps = try XCTUnwrap((p["streams"] as? [[String: Any]])?.first)
        let first = try XCTUnwrap(u64(ps, "first_sequence"))
        XCTAssertGreaterThan(first, 5_000, "the receiver joined about 1 s (20,000 datagrams) late")
        XCTAssertEqual(ps["joined_late"] as? Bool, true)
        XCTAssertEqual(u64(ps, "head_not_counted"), first)
        XCTAssertEqual(u64(ps, "unique"), total - first)
        XCTAssertEqual(u64(ps, "expected_datagrams"), total - first)
        XCTAssertEqual(u64(ps, "lost"), 0)
        XCTAssertEqual(ps["complete"] as? Bool, true)
        XCTAssertEqual(u64(p, "multicast", "streams_joined_late"), 1)
        XCTAssertEqual(p["ok"] as? Bool, true)

        let c = try XCTUnwrap(counting.child.wait(timeout: 30).json)
        let cs = try XCTUnwrap((c["streams"] as? [[String: Any]])?.first)
        let firstC = try XCTUnwrap(u64(cs, "first_sequence"))
        // Accounted from 0 (the head is loss): not "joined late" (SPEC §9.7); first_sequence says where it began.
        XCTAssertEqual(cs["joined_late"] as? Bool, false)
        XCTAssertGreaterThan(firstC, 5_000)
        XCTAssertEqual(u64(cs, "head_not_counted"), 0)
        XCTAssertEqual(u64(cs, "expected_datagrams"), total)
        XCTAssertEqual(u64(cs, "lost"), firstC, "the missed head is the loss")
        XCTAssertEqual(u64(cs, "unique"), total - firstC)
        XCTAssertEqual(cs["complete"] as? Bool, false)
    }

    /// Raw mode to a group: the packet ring writes 01:00:5e + the group's low 23 bits
    /// as the destination MAC with no neighbour lookup, and the receiver gets it all.
    func testPacketRingToGroup() throws {
        let lan = try MulticastBridge(tag: "mp", subnet: 54, hosts: 2)
        defer { lan.remove() }
        let (s, receivers) = try run(lan, group: "239.255.13.13", port: 9503, engine: "packet-ring", count: 50_000)
        let ring = s["packet_ring"] as? [String: Any]
        XCTAssertEqual(ring?["dst_mac"] as? String, "01:00:5e:7f:0d:0d")
        XCTAssertEqual(ring?["dst_mac_from"] as? String, "multicast group")
        try assertWhole(receivers[0], count: 50_000, group: "239.255.13.13", interface: lan.hosts[1].interface)
    }

    /// Multicast-only flags on the wrong kind of address are refused, exit 64, one line
    /// (needs no root).
    func testMulticastFlagsNeedAGroup() throws {
        let send = try runSender(["127.0.0.1:9", "--ttl", "4", "--count", "1"])
        XCTAssertEqual(send.status, 64, send.stderr)
        XCTAssertTrue(send.stderr.contains("--ttl applies only to a multicast destination"), send.stderr)
        let recv = try Child(Binaries.recv, ["127.0.0.1:0", "--source-filter", "198.18.0.1"]).wait(timeout: 10)
        XCTAssertEqual(recv.status, 64, recv.stderr)
        XCTAssertTrue(recv.stderr.contains("--source-filter"), recv.stderr)
        let family = try Child(Binaries.recv, ["[ff15::13]:0", "--source-filter", "198.18.0.1"]).wait(timeout: 10)
        XCTAssertEqual(family.status, 64, family.stderr)
        let threads = try Child(Binaries.recv, ["239.255.13.13:9500", "--threads", "2"]).wait(timeout: 10)
        XCTAssertEqual(threads.status, 64, threads.stderr)
    }

    // MARK: - helpers

    /// Receivers on hosts 2..N (and a second one on host 2) join the group, host 1 sends `count` datagrams.
    private func run(_ lan: MulticastBridge, group: String, port: Int, engine: String, count: Int,
                     secondReceiverOnHost2: Bool = false) throws -> (sender: [String: Any], receivers: [[String: Any]]) {
        let literal = group.contains(":") ? "[\(group)]:\(port)" : "\(group):\(port)"
        let listeners = Array(lan.hosts.dropFirst()) + (secondReceiverOnHost2 ? [lan.hosts[1]] : [])
        let receivers = try listeners.map {
            try RunningReceiver.start(listen: literal, ["--interface", $0.interface, "--idle-timeout", "3s"], namespace: $0.namespace)
        }
        let sent = try runSender([literal, "--interface", lan.hosts[0].interface, "--engine", engine, "--count", "\(count)",
                                  "--rate", "300kpps"], namespace: lan.hosts[0].namespace)
        XCTAssertEqual(sent.status, 0, sent.stderr)
        let s = try XCTUnwrap(sent.json, "sender JSON: \(sent.stdout) \(sent.stderr)")
        XCTAssertEqual(u64(s, "datagrams"), UInt64(count))
        let results = try receivers.map { r -> [String: Any] in
            let done = r.child.wait(timeout: 30)
            return try XCTUnwrap(done.json, "receiver JSON: \(done.stdout) \(done.stderr)")
        }
        return (s, results)
    }

    private func assertWhole(_ r: [String: Any], count: UInt64, group: String, interface: String,
                             file: StaticString = #filePath, line: UInt = #line) throws {
        let stream = try XCTUnwrap((r["streams"] as? [[String: Any]])?.first, file: file, line: line)
        XCTAssertEqual(u64(stream, "unique"), count, file: file, line: line)
        XCTAssertEqual(u64(stream, "lost"), 0, file: file, line: line)
        XCTAssertEqual(u64(stream, "corrupt"), 0, file: file, line: line)
        XCTAssertEqual(u64(stream, "first_sequence"), 0, file: file, line: line)
        XCTAssertEqual(stream["joined_late"] as? Bool, false, file: file, line: line)
        XCTAssertEqual(stream["complete"] as? Bool, true, file: file, line: line)
        let m = try XCTUnwrap(r["multicast"] as? [String: Any], file: file, line: line)
        XCTAssertEqual(m["group"] as? String, group, file: file, line: line)
        XCTAssertEqual(m["interface"] as? String, interface, file: file, line: line)
        XCTAssertNotNil(m["join_to_first_datagram_ms"] as? Double, file: file, line: line)
        XCTAssertEqual(r["ok"] as? Bool, true, file: file, line: line)
    }
}
