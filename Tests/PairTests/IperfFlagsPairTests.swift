import Foundation
import XCTest

/// The short options a network engineer types from iperf3 habit do what iperf3 does, on the
/// real binaries; the ones that meant something else are gone; times take units.
final class IperfFlagsPairTests: XCTestCase {
    /// `zc-recv -s`-style and `zc-send -c HOST -p PORT -u -b -t -l -w -i -J`: a paced loopback run
    /// whose JSON shows each flag took effect.
    func testIperf3ShortOptionsDriveAPair() throws {
        let receiver = try Child(Binaries.recv, ["-p", "0", "-B", "127.0.0.1", "-u", "-w", "64M", "-i", "0", "-J",
                                                 "--streams", "1", "--idle-timeout", "5"])
        let ready = try XCTUnwrap(receiver.waitForLine(containing: "listening on"), receiver.wait(timeout: 1).stderr)
        let address = ready.components(separatedBy: "listening on ")[1].split(separator: " ")[0]
        XCTAssertTrue(address.hasPrefix("127.0.0.1:"), ready)
        let port = String(address.split(separator: ":")[1])
        let sent = try Child(Binaries.send, ["-c", "127.0.0.1", "-p", port, "-u", "-b", "200M", "-t", "600ms",
                                             "-l", "1000", "-w", "4M", "-i", "200ms", "-J"]).wait(timeout: 30)
        let received = receiver.wait(timeout: 30)
        XCTAssertEqual(sent.status, 0, sent.stderr)
        XCTAssertEqual(received.status, 0, received.stderr)
        let s = try XCTUnwrap(sent.json, "not one JSON document: \(sent.stdout)")
        let r = try XCTUnwrap(received.json, "not one JSON document: \(received.stdout)")
        XCTAssertEqual(u64(s, "datagram_size"), 1000, "-l")
        let seconds = try XCTUnwrap(s["seconds"] as? Double)
        XCTAssertGreaterThan(seconds, 0.55, "-t 600ms")
        XCTAssertLessThan(seconds, 1.2, "-t 600ms")
        let gbps = try XCTUnwrap(s["gbps"] as? Double)
        XCTAssertEqual(gbps, 0.2, accuracy: 0.02, "-b 200M")
        XCTAssertEqual(u64(s, "sndbuf").map { $0 >= 4 << 20 }, true, "-w 4M: \(s["sndbuf"] ?? "none")")
        XCTAssertEqual(u64(r, "datagrams"), u64(s, "datagrams"))
        XCTAssertEqual(u64(r, "lost"), 0)
        // -i 200ms: progress lines on stderr, about three of them (stdout stays one document).
        let progress = sent.stderr.split(separator: "\n").filter { $0.hasPrefix("[") }
        XCTAssertGreaterThanOrEqual(progress.count, 2, sent.stderr)
    }

    /// -k (iperf3's --blockcount) counts datagrams, -n bytes of payload, -P parallel streams.
    func testCountBytesAndParallel() throws {
        let receiver = try RunningReceiver.start(["--streams", "2"])
        let byCount = try runSender(["-k", "500", "--no-report", receiver.address])
        XCTAssertEqual(byCount.status, 0, byCount.stderr)
        XCTAssertEqual(u64(byCount.json, "datagrams"), 500, "-k 500")
        // 1072-byte datagrams carry 1024 payload bytes: -n 1000K is 1000 datagrams.
        let byBytes = try runSender(["-n", "1000K", "-l", "1072", "--no-report", receiver.address])
        XCTAssertEqual(byBytes.status, 0, byBytes.stderr)
        XCTAssertEqual(u64(byBytes.json, "datagrams"), 1000, "-n 1000K -l 1072: \(byBytes.stdout)")
        // Two senders, one receiver run: no REPORT is awaited (it comes when the run ends).
        let received = receiver.child.wait(timeout: 30)
        XCTAssertEqual(u64(received.json, "datagrams"), 1500)
        let parallel = try RunningReceiver.start(["--streams", "2"])
        let two = try runSender(["-P", "2", "-k", "100", parallel.address])
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertEqual(u64(two.json, "stream_count"), 2, "-P 2")
        XCTAssertEqual((parallel.child.wait(timeout: 30).json?["streams"] as? [Any])?.count, 2)
    }

    /// iperf3 reads -s as server, -d as debug, -c as the client's host: zc-send's old -s (size),
    /// -d (duration), -r (rate) are unknown now, -c takes the host, -b the rate (0: unlimited).
    func testShortOptionsWithAnotherMeaningInIperf3AreGone() throws {
        for args in [["127.0.0.1:9", "-s", "1000"], ["127.0.0.1:9", "-d", "1s"], ["127.0.0.1:9", "-r", "1G"]] {
            let r = try Child(Binaries.send, args).wait(timeout: 20)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("Unknown option"), "\(args): \(r.stderr)")
        }
        let receiver = try RunningReceiver.start(["--streams", "1"])
        let unlimited = try runSender(["-c", receiver.address, "-b", "0", "-k", "50"])
        XCTAssertEqual(unlimited.status, 0, unlimited.stderr)
        XCTAssertEqual(u64(unlimited.json, "datagrams"), 50)
        XCTAssertNil(unlimited.json?["rate"], "-b 0: unlimited, no pacing")
        XCTAssertEqual(u64(receiver.child.wait(timeout: 30).json, "datagrams"), 50)
        let bad: [(String, [String], String)] = [
            (Binaries.send, ["-c", "127.0.0.1", "127.0.0.1:9"], "destination given twice"),
            (Binaries.send, ["-c", "127.0.0.1:9", "-p", "10"], "give the port once"),
            (Binaries.send, ["-k", "1"], "destination missing"),
            (Binaries.send, ["127.0.0.1:9", "-i", "soon"], "--interval"),
            (Binaries.recv, ["9000", "-p", "9001"], "listen address given twice"),
            (Binaries.recv, ["-i", "1x", "-p", "9000"], "--interval"),
            (Binaries.recv, [], "listen address missing"),
        ]
        for (binary, args, message) in bad {
            let r = try Child(binary, args).wait(timeout: 20)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(message), "\(args) should say \(message): \(r.stderr)")
        }
    }

    /// Every time value takes units, and a plain number is seconds (iperf3's -t 10, -i 1).
    func testTimesTakeUnitsOrSeconds() throws {
        let receiver = try Child(Binaries.recv, ["127.0.0.1:0", "--streams", "1", "--idle-timeout", "2", "--linger", "0.1",
                                                 "-i", "0.25", "-J"])
        let ready = try XCTUnwrap(receiver.waitForLine(containing: "listening on"))
        let address = String(ready.components(separatedBy: "listening on ")[1].split(separator: " ")[0])
        let sent = try Child(Binaries.send, [address, "-t", "1", "-b", "10M", "-i", "0.25", "--report-timeout", "2",
                                             "--flush-interval", "0.005", "-J"]).wait(timeout: 30)
        let received = receiver.wait(timeout: 30)
        XCTAssertEqual(sent.status, 0, sent.stderr)
        XCTAssertEqual(received.status, 0, received.stderr)
        let seconds = try XCTUnwrap(sent.json?["seconds"] as? Double, sent.stdout)
        XCTAssertEqual(seconds, 1, accuracy: 0.3, "-t 1 is one second")
        for (name, stderr) in [("zc-send", sent.stderr), ("zc-recv", received.stderr)] {
            let lines = stderr.split(separator: "\n").filter { $0.hasPrefix("[") }.count
            XCTAssertGreaterThanOrEqual(lines, 3, "\(name) -i 0.25 over ~1 s: \(stderr)")
        }
    }
}
