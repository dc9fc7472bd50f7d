import Foundation
import TestSupport
import XCTest

/// The fill-in-place API on the packet-ring engine, end to end: the daq-producer
/// example in namespace A writes its samples straight into AF_PACKET TX ring
/// frames (OutboundStream with `engine: .packetRing`); zc-recv in namespace B,
/// across a veth pair, validates every datagram through its ordinary UDP socket,
/// so the kernel checks the library's IPv4 and UDP checksums before zc-recv checks
/// the rest. The example runs as a separate process because the sender has to be
/// inside namespace A.
final class OutboundPacketRingTests: XCTestCase {
    private var daq: String { Binaries.directory.appendingPathComponent("daq-producer").path }

    /// ~1 s runs at 100 M samples/s (~142k datagrams/s of 1456 B), in place and
    /// through send(copying:), on the default 256-frame ring with GSO (many datagrams
    /// per frame, as zc-send does: the pushed stream opens the ring through the same
    /// session), and in place without GSO (one frame per datagram). Then back-pressure:
    /// a 16-frame ring behind a 100 Mbit/s tbf qdisc on A's interface, without GSO. The
    /// qdisc holds the skbs, so the ring's frames stay with the kernel, the ring fills
    /// and every send waits for a frame to come back (on a bare veth the kick is
    /// synchronous and frames come back during it: the ring never fills). (With GSO,
    /// tbf segments each frame's skb and frees it at once: the frame comes back before
    /// the data left, so the ring cannot hold the producer and tbf drops what overflows
    /// it — measured, 133k of 142k lost; the receiver says so.) Every datagram
    /// arrives, none corrupt or invalid, the receiver counts exactly what the producer
    /// sent, and the producer is held to the qdisc's rate.
    func testDAQProducerWritesIntoTheTXRing() throws {
        let net = try NamespacePair(tag: "opr", subnet: 47)
        defer { net.remove() }
        let macB = shell("ip netns exec \(net.b) cat /sys/class/net/\(net.interfaceB)/address").output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(macB.split(separator: ":").count, 6, "B's MAC: \(macB)")
        let ring = ["--engine", "packet-ring", "--interface", net.interfaceA, "--dst-mac", macB]
        try run(net, ring, label: "in place", atLeast: 50_000)
        try run(net, ring + ["--copy"], label: "send(copying:)", atLeast: 50_000)
        try run(net, ring + ["--no-gso"], label: "in place, no GSO", atLeast: 50_000)

        let tbf = shell("ip netns exec \(net.a) tc qdisc replace dev \(net.interfaceA) root tbf rate 100mbit burst 32kb latency 50ms")
        guard tbf.status == 0 else {
            print("outbound packet-ring: back-pressure case skipped: no tbf qdisc here (\(tbf.output.trimmingCharacters(in: .whitespacesAndNewlines)))")
            return
        }
        // 100 Mbit/s of 1498-byte frames: ~8.3k datagrams/s.
        let held = try run(net, ring + ["--pool", "16", "--no-gso"], label: "in place, no GSO, 16-frame ring behind tbf 100 Mbit/s", atLeast: 4_000)
        XCTAssertLessThan((held["gbps"] as? NSNumber)?.doubleValue ?? 1, 0.2, "the full ring held the producer to the qdisc's rate")
    }

    /// Set-up failures come back typed from OutboundStream.init: a missing
    /// interface is bad input (exit 64), one line naming it. No root needed.
    func testMissingInterfaceIsRefused() throws {
        let r = try Child(daq, ["198.18.47.2:9", "--seconds", "1", "--engine", "packet-ring", "--interface", "nosuchif0"]).wait(timeout: 30)
        XCTAssertEqual(r.status, 64, r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("nosuchif0"), r.stderr)
        XCTAssertEqual(r.stdout, "", "nothing sent, no report")
    }

    @discardableResult
    private func run(_ net: NamespacePair, _ extra: [String], label: String, atLeast: UInt64,
                     file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let receiver = try RunningReceiver.start(listen: "\(net.addressB):0", ["--streams", "1", "--idle-timeout", "5s"],
                                                 namespace: net.b)
        let producer = try Child(daq, [receiver.address, "--seconds", "1", "--sample-rate", "100000000", "--json"] + extra,
                                 namespace: net.a).wait(timeout: 30)
        let received = receiver.child.wait(timeout: 30)
        XCTAssertEqual(producer.status, 0, "\(label): \(producer.stderr)", file: file, line: line)
        let s = try XCTUnwrap(producer.json, "\(label): producer JSON: \(producer.stdout) \(producer.stderr)", file: file, line: line)
        let r = try XCTUnwrap(received.json, "\(label): receiver JSON: \(received.stdout) \(received.stderr)", file: file, line: line)
        XCTAssertEqual(s["engine"] as? String, "packet-ring", file: file, line: line)
        let sent = u64(s, "datagrams") ?? 0
        XCTAssertGreaterThanOrEqual(sent, atLeast, "\(label): datagrams in 1 s", file: file, line: line)
        if extra.contains("--no-gso") {
            XCTAssertEqual(u64(s, "sends"), sent + 3, "\(label): one frame per datagram, plus 3 END", file: file, line: line)
        } else {
            // 1456-byte datagrams, up to 44 to a GSO frame: far fewer frames than datagrams.
            XCTAssertLessThan(u64(s, "sends") ?? .max, sent / 10 + 3, "\(label): GSO frames, plus 3 END", file: file, line: line)
        }
        XCTAssertGreaterThan(u64(s, "kicks") ?? 0, 0, file: file, line: line)
        XCTAssertEqual(u64(r, "datagrams"), sent, "\(label): receiver datagrams", file: file, line: line)
        XCTAssertEqual(u64(r, "lost"), 0, "\(label): lost", file: file, line: line)
        XCTAssertEqual(u64(r, "corrupt"), 0, "\(label): corrupt", file: file, line: line)
        XCTAssertEqual(u64(r, "invalid"), 0, "\(label): invalid", file: file, line: line)
        print("outbound packet-ring (\(label)): sent \(sent), received \(u64(r, "datagrams") ?? 0), lost \(u64(r, "lost") ?? 0), "
              + "kicks \(u64(s, "kicks") ?? 0), \(s["gbps"] ?? 0) Gbit/s")
        return s
    }
}
