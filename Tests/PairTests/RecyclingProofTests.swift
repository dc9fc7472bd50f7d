import Foundation
import XCTest

/// The zero-copy hazard, shown for real. A 20 mbit HTB class on the sender's veth
/// holds packets in the qdisc, and with them the sender's pages. Recycling a slot
/// when its notification arrives keeps every datagram intact; recycling it at the
/// send CQE (the test-only --unsafe-recycle-on-send, which then rewrites the
/// payload as an application reusing its buffer would) corrupts datagrams still
/// queued, and the receiver catches it.
final class RecyclingProofTests: XCTestCase {
    func testNotificationRecyclingIsSafeAndEarlyRecyclingCorrupts() throws {
        let net = try NamespacePair(tag: "rp", subnet: 41)
        defer { net.remove() }
        net.run(net.a, "tc qdisc add dev \(net.interfaceA) root handle 1: htb default 10")
        net.run(net.a, "tc class add dev \(net.interfaceA) parent 1: classid 1:10 htb rate 20mbit")

        func stream(_ extra: [String]) throws -> (send: [String: Any], recv: [String: Any]) {
            let receiver = try RunningReceiver.start(listen: "\(net.addressB):0", ["--streams", "1", "--idle-timeout", "3s"], namespace: net.b)
            // 800 datagrams at 20 mbit take about half a second to drain from the qdisc.
            let sent = try runSender([receiver.address, "--count", "800", "--gso", "off", "--pool", "64", "--engine", "uring-zc"] + extra, namespace: net.a)
            XCTAssertEqual(sent.status, 0, sent.stderr)
            let received = receiver.child.wait(timeout: 30)
            return (try XCTUnwrap(sent.json, sent.stderr), try XCTUnwrap(received.json, received.stderr))
        }

        let safe = try stream([])
        XCTAssertEqual(u64(safe.send, "datagrams"), 800)
        XCTAssertEqual(u64(safe.send, "zc", "notifications"), u64(safe.send, "zc", "sends"))
        XCTAssertEqual(u64(safe.recv, "datagrams"), 800)
        XCTAssertEqual(u64(safe.recv, "corrupt"), 0, "waiting for the notification must never corrupt")
        XCTAssertEqual(u64(safe.recv, "lost"), 0)

        // The same with the kernel's submission thread sending: notifications still gate reuse.
        let polled = try stream(["--sqpoll"])
        XCTAssertEqual(u64(polled.send, "datagrams"), 800)
        XCTAssertNotNil(polled.send["sqpoll"] as? [String: Any], "the report says SQPOLL was used")
        XCTAssertEqual(u64(polled.send, "zc", "notifications"), u64(polled.send, "zc", "sends"))
        XCTAssertEqual(u64(polled.recv, "datagrams"), 800)
        XCTAssertEqual(u64(polled.recv, "corrupt"), 0, "with SQPOLL too, waiting for the notification must never corrupt")
        XCTAssertEqual(u64(polled.recv, "lost"), 0)

        let unsafe = try stream(["--unsafe-recycle-on-send"])
        XCTAssertEqual(u64(unsafe.send, "datagrams"), 800)
        XCTAssertGreaterThan(u64(unsafe.send, "zc", "recycled_early") ?? 0, 0)
        let corrupt = u64(unsafe.recv, "corrupt") ?? 0
        print("recycling proof: notification-driven 0 corrupt of 800; recycled at send CQE \(corrupt) corrupt of 800")
        XCTAssertGreaterThan(corrupt, 0, "rewriting a slot before its notification must be caught as corruption")
    }
}
