import Foundation
import TestSupport
import XCTest

/// Sender capabilities end to end: several streams, file and stdin sources, pacing.
final class SenderFeatureTests: XCTestCase {
    func testStreamsAreIndependentAndReportedPerStream() throws {
        let receiver = try RunningReceiver.start(["--streams", "3"])
        let sent = try runSender([receiver.address, "--streams", "3", "--count", "20000", "--rate", "1500M"])
        XCTAssertEqual(sent.status, 0, sent.stderr)
        let s = try XCTUnwrap(sent.json)
        let r = try XCTUnwrap(receiver.child.wait(timeout: 30).json)
        let sentStreams = try XCTUnwrap(s["streams"] as? [[String: Any]])
        let recvStreams = try XCTUnwrap(r["streams"] as? [[String: Any]])
        XCTAssertEqual(sentStreams.count, 3)
        XCTAssertEqual(recvStreams.count, 3)
        XCTAssertEqual(u64(s, "datagrams"), 60_000)
        XCTAssertEqual(u64(r, "datagrams"), 60_000)
        XCTAssertEqual(u64(r, "lost"), 0)
        XCTAssertEqual(u64(r, "corrupt"), 0)
        XCTAssertEqual(Set(sentStreams.compactMap { u64($0, "stream_id") }), Set(recvStreams.compactMap { u64($0, "stream_id") }))
        for stream in recvStreams { XCTAssertEqual(u64(stream, "datagrams"), 20_000) }
    }

    /// --sqpoll: the kernel's submission thread sends, notifications still recycle the
    /// slots (every payload intact), and the report says the thread was used.
    func testSubmissionPollingDeliversEveryDatagramIntact() throws {
        for engine in ["uring-zc", "uring", "auto"] {
            let receiver = try RunningReceiver.start(["--streams", "1"])
            let sent = try runSender([receiver.address, "--engine", engine, "--sqpoll", "--sqpoll-cpu", "0",
                                      "--count", "30000", "--rate", "1500M", "--pool", "8"])
            if sent.status != 0 && sent.stderr.contains("io_uring_queue_init") {
                throw XCTSkip("the kernel refused IORING_SETUP_SQPOLL here: \(sent.stderr)")
            }
            XCTAssertEqual(sent.status, 0, "\(engine): \(sent.stderr)")
            let s = try XCTUnwrap(sent.json)
            let poll = try XCTUnwrap(s["sqpoll"] as? [String: Any], "\(engine): no sqpoll object in the report")
            XCTAssertEqual(poll["cpu"] as? Int, 0, engine)
            let r = try XCTUnwrap(receiver.child.wait(timeout: 30).json)
            XCTAssertEqual(u64(s, "datagrams"), 30_000, engine)
            XCTAssertEqual(u64(r, "datagrams"), 30_000, engine)
            XCTAssertEqual(u64(r, "lost"), 0, engine)
            XCTAssertEqual(u64(r, "corrupt"), 0, engine)
            if engine == "uring-zc" {
                let zc = try XCTUnwrap(s["zc"] as? [String: Any])
                XCTAssertEqual(u64(zc, "notifications"), u64(zc, "sends"), "\(engine): every SEND_ZC's notification came back")
            }
        }
        let plain = try runSender(["127.0.0.1:9", "--count", "10"])
        XCTAssertTrue(try XCTUnwrap(plain.json)["sqpoll"] is NSNull, "without --sqpoll the report says null")
    }

    func testFileSourceArrivesWhole() throws {
        let path = NSTemporaryDirectory() + "zc-file-\(getpid()).bin"
        defer { unlink(path) }
        var bytes = [UInt8](repeating: 0, count: 5_000_017)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 7) }
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        for engine in ["uring-zc", "uring", "sendmmsg"] {
            let receiver = try RunningReceiver.start(["--streams", "1"])
            let sent = try runSender([receiver.address, "--source", path, "--engine", engine, "--rate", "2G"])
            XCTAssertEqual(sent.status, 0, sent.stderr)
            let r = try XCTUnwrap(receiver.child.wait(timeout: 30).json)
            let expected = UInt64((5_000_017 + 1423) / 1424)
            XCTAssertEqual(u64(sent.json, "datagrams"), expected, engine)
            XCTAssertEqual(u64(r, "datagrams"), expected, engine)
            XCTAssertEqual(u64(r, "lost"), 0, engine)
            XCTAssertEqual(u64(r, "corrupt"), 0, engine)
            let stream = (r["streams"] as? [[String: Any]])?.first
            XCTAssertEqual(u64(stream, "expected_payload_bytes"), 5_000_017, engine)
            XCTAssertEqual(stream?["complete"] as? Bool, true, engine)
        }
    }

    func testStandardInputSource() throws {
        let receiver = try RunningReceiver.start(["--streams", "1"])
        let r = shell("head -c 1000000 /dev/zero | \(Binaries.send) \(receiver.address) --source - --json --interval 0 --rate 1G")
        XCTAssertEqual(r.status, 0, r.output)
        let got = try XCTUnwrap(receiver.child.wait(timeout: 30).json)
        let stream = (got["streams"] as? [[String: Any]])?.first
        XCTAssertEqual(u64(stream, "expected_payload_bytes"), 1_000_000)
        XCTAssertEqual(u64(got, "lost"), 0)
        XCTAssertEqual(u64(got, "datagrams"), UInt64((1_000_000 + 1423) / 1424))
    }

    func testUnreadableSourceIsUsageError() throws {
        let r = try Child(Binaries.send, ["127.0.0.1:9", "--source", "/nonexistent/file"]).wait(timeout: 10)
        XCTAssertEqual(r.status, 64)
        XCTAssertTrue(r.stderr.contains("--source"), r.stderr)
        XCTAssertTrue(r.stdout.isEmpty)
    }

    /// The pacer keeps the configured rate (loose bound: this checks the feature
    /// works, the benchmark measures precision), and a slow rate sleeps instead of spinning.
    func testPacingHoldsRateWithoutBurningCPU() throws {
        let receiver = try RunningReceiver.start(["--streams", "1"])
        let r = shell("/usr/bin/time -f 'cpu %U %S' \(Binaries.send) \(receiver.address) --rate 20kpps --duration 2s --gso off --json --interval 0")
        XCTAssertEqual(r.status, 0, r.output)
        let got = try XCTUnwrap(receiver.child.wait(timeout: 30).json)
        let datagrams = Double(u64(got, "datagrams") ?? 0)
        XCTAssertEqual(datagrams, 40_000, accuracy: 40_000 * 0.05, "20 kpps for 2 s")
        XCTAssertEqual(u64(got, "lost"), 0)
        if let line = r.output.split(separator: "\n").last(where: { $0.hasPrefix("cpu ") }) {
            let parts = line.split(separator: " ").compactMap { Double($0) }
            let cpu = parts.reduce(0, +)
            print("pacing 20 kpps for 2 s used \(cpu) s of CPU")
            XCTAssertLessThan(cpu, 1.0, "a 20 kpps sender must sleep between sends, not spin")
        } else {
            XCTFail("no CPU time reported: \(r.output)")
        }
    }
}
