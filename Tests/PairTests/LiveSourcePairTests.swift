import Foundation
import TestSupport
import XCTest

/// A live source through the real binaries: `(echo hello; sleep) | zc-send --source -`.
/// The six bytes must reach the receiver's file long before a datagram's worth arrives
/// (the flush interval), and Ctrl-C while the pipe is quiet must end the stream cleanly:
/// exit 130, END sent, the file complete — not "read(source): EINTR", exit 2.
final class LiveSourcePairTests: XCTestCase {
    func testSlowPipeIsFlushedAndInterruptEndsTheStreamCleanly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zc-live-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let output = dir.appendingPathComponent("hello.out").path
        let receiver = try RunningReceiver.start(["--streams", "1", "--output", output, "--idle-timeout", "20s"])
        // A sleep no other test runs, so it can be found and ended afterwards.
        let nap = "39.\(getpid() % 1000)"
        let pipeline = try Child("/bin/sh", ["-c", "(echo hello; exec sleep \(nap)) | \(Binaries.send) \(receiver.address) "
                                             + "--source - --stream-id 0x5107 --json --interval 0"])
        defer { shell("pkill -f '^sleep \(nap)'") }

        // The bytes arrive within well under a second (flush interval 5 ms).
        var size = -1
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline {
            size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? -1
            if size == 6 { break }
            usleep(10_000)
        }
        XCTAssertEqual(size, 6, "hello\\n was not flushed to the receiver while the pipe stayed open")

        // Ctrl-C to zc-send while its read waits on the quiet pipe.
        let pid = shell("pgrep -f '^\(Binaries.send) .*stream-id 0x5107'").output.split(separator: "\n").first.map(String.init) ?? ""
        XCTAssertFalse(pid.isEmpty, "zc-send is not running")  // (the pattern skips the sh -c above it)
        shell("kill -INT \(pid)")
        usleep(300_000)
        shell("pkill -f '^sleep \(nap)'")
        let sent = pipeline.wait(timeout: 20)
        XCTAssertEqual(sent.status, 130, "zc-send after SIGINT: \(sent.stderr)")
        XCTAssertFalse(sent.stderr.contains("EINTR"), sent.stderr)
        let s = try XCTUnwrap(sent.json, "sender JSON: \(sent.stdout) \(sent.stderr)")
        XCTAssertEqual(s["stop_reason"] as? String, "signal")
        XCTAssertEqual(u64(s, "ends_sent"), 3)

        let received = receiver.child.wait(timeout: 20)
        let r = try XCTUnwrap(received.json, received.stderr)
        let stream = try XCTUnwrap((r["streams"] as? [[String: Any]])?.first)
        XCTAssertEqual(stream["end_seen"] as? Bool, true)
        XCTAssertEqual(u64(stream, "expected_payload_bytes"), 6)
        XCTAssertEqual(stream["complete"] as? Bool, true)
        XCTAssertEqual(try String(contentsOfFile: output, encoding: .utf8), "hello\n")
        XCTAssertEqual(received.status, 0, received.stderr)
    }

    /// A fast pipe still fills whole datagrams: 3 MB through `cat` arrive byte for byte,
    /// every datagram but the last full size.
    func testFastPipeSendsWholeDatagrams() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zc-pipe-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.bin").path
        let output = dir.appendingPathComponent("out.bin").path
        XCTAssertEqual(shell("head -c 3000000 /dev/urandom > \(input)").status, 0)
        let receiver = try RunningReceiver.start(["--streams", "1", "--output", output])
        let pipeline = try Child("/bin/sh", ["-c", "cat \(input) | \(Binaries.send) \(receiver.address) --source - --json --interval 0"])
        let sent = pipeline.wait(timeout: 30)
        XCTAssertEqual(sent.status, 0, sent.stderr)
        let s = try XCTUnwrap(sent.json)
        // 3,000,000 / 1424 = 2106.7: 2107 datagrams when no pause of `cat` longer than the
        // flush interval cut one short (a loaded machine may cause a few).
        XCTAssertLessThanOrEqual(u64(s, "datagrams") ?? 0, 2300, "a fast pipe should not be flushed in small pieces")
        XCTAssertEqual(receiver.child.wait(timeout: 20).status, 0)
        XCTAssertEqual(shell("cmp \(input) \(output)").status, 0, "the file did not come back byte for byte")
    }
}
