import Foundation
import TestSupport
import XCTest

/// Keyed streams (SPEC §14) with the real binaries and the flags a user types: a third
/// process forges, replays and spoofs (Protocol/tools/forge-keyed, root: AF_PACKET to
/// watch lo, a raw socket to spoof the sender's and the receiver's addresses), and nothing
/// it sends reaches a stream's counters, the output file or an exit code; `unauthenticated`
/// counts each kind exactly.
final class KeyedPairTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("zc-keyed-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: directory) }

    /// A fresh 32-byte key file (raw, or hex when `hex`).
    func keyFile(_ name: String, hex: Bool = false) throws -> String {
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255) }
        let url = directory.appendingPathComponent(name)
        let contents = hex ? Data((bytes.map { String(format: "%02x", $0) }.joined() + "\n").utf8) : Data(bytes)
        try contents.write(to: url)
        return url.path
    }

    func testForgedReplayedAndSpoofedDatagramsReachNoCounterFileOrExitCode() throws {
        guard geteuid() == 0 else { throw XCTSkip("forging needs root (AF_PACKET and a raw socket; uid \(geteuid()))") }
        let key = try keyFile("zc.key")
        let source = directory.appendingPathComponent("source.bin")
        try Data((0..<(8 << 20)).map { _ in UInt8.random(in: 0...255) }).write(to: source)
        let output = directory.appendingPathComponent("out.bin").path
        let receiver = try RunningReceiver.start(["--key", key, "--streams", "1", "--output", output])
        let port = receiver.address.split(separator: ":").last.map(String.init)!
        let forger = try Child(Repository.root.appendingPathComponent("Protocol/tools/forge-keyed").path,
                               ["--port", port, "--data", "1000", "--bad-tag", "500", "--replay", "200", "--reports", "5"])
        usleep(300_000)
        // --max-loss 0: a forged REPORT that says 2061 lost would make this exit 1.
        let sent = try runSender([receiver.address, "--key", key, "--source", source.path, "--rate", "100M", "--max-loss", "0"])
        let forged = forger.wait(timeout: 20)
        let received = receiver.child.wait(timeout: 30)
        XCTAssertEqual(forged.status, 0, "forger: \(forged.stdout) \(forged.stderr)")
        XCTAssertEqual(sent.status, 0, "zc-send took a forged REPORT or failed: \(sent.stderr)")
        XCTAssertEqual(received.status, 0, received.stderr)
        let r = try XCTUnwrap(received.json, received.stderr)
        let reasons = r["unauthenticated_by_reason"] as? [String: Any]
        XCTAssertEqual(u64(reasons, "not_keyed"), 1000, "forged version 1 DATA with the stream's id and a valid CRC")
        XCTAssertEqual(u64(reasons, "bad_tag"), 500, "keyed datagrams altered")
        XCTAssertEqual(u64(reasons, "replayed"), 200, "genuine datagrams sent again")
        XCTAssertEqual(u64(r, "unauthenticated"), 1700)
        for counter in ["lost", "duplicates", "corrupt", "invalid"] { XCTAssertEqual(u64(r, counter), 0, counter) }
        XCTAssertEqual(r["exact"] as? Bool, true)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: output)), try Data(contentsOf: source), "the output is the file, no foreign byte")
        let s = try XCTUnwrap(sent.json, sent.stderr)
        XCTAssertEqual(u64(s, "receiver", "lost"), 0, "the genuine REPORT, not a forged one: \(sent.stdout)")
    }

    func testWrongKeyIsNamedAndMissingKeyToo() throws {
        let receiverKey = try keyFile("a.key")
        let senderKey = try keyFile("b.key", hex: true)
        // A receiver with another key: every datagram is wrong_key, no stream, no REPORT.
        let receiver = try RunningReceiver.start(["--key", receiverKey, "--timeout", "1s"])
        let sent = try runSender([receiver.address, "--key", senderKey, "--count", "200", "--report-timeout", "1s"])
        let received = receiver.child.wait(timeout: 20)
        let r = try XCTUnwrap(received.json, received.stderr)
        XCTAssertEqual(u64(r["unauthenticated_by_reason"] as? [String: Any], "wrong_key"), 203, "200 DATA and 3 END")
        XCTAssertEqual((r["streams"] as? [Any])?.count, 0)
        XCTAssertTrue(sent.stdout.contains("no REPORT"), sent.stdout)
        // The text summary (no --json) says what is wrong, for both kinds of mismatch.
        let text = try Child(Binaries.recv, ["127.0.0.1:0", "--key", receiverKey, "--timeout", "1s", "--interval", "0"])
        let textAddress = try RunningReceiver.listeningAddress(text)
        _ = try runSender([textAddress, "--key", senderKey, "--count", "10", "--no-report"])
        XCTAssertEqual(try runSender([textAddress, "--count", "10", "--no-report"]).status, 0)
        let summary = text.wait(timeout: 20).stderr + text.stdout.text
        XCTAssertTrue(summary.contains("WRONG KEY"), summary)
        XCTAssertTrue(summary.contains("NOT KEYED"), summary)
        // A keyed stream to a receiver without a key.
        let bare = try Child(Binaries.recv, ["127.0.0.1:0", "--timeout", "1s", "--interval", "0"])
        _ = try runSender([try RunningReceiver.listeningAddress(bare), "--key", senderKey, "--count", "10", "--no-report"])
        let bareOut = bare.wait(timeout: 20).stderr + bare.stdout.text
        XCTAssertTrue(bareOut.contains("give --key FILE"), bareOut)
    }

    func testEncryptedFileFromTheEnvironmentsKeyArrivesWhole() throws {
        let key = try keyFile("zc.key", hex: true)
        let source = directory.appendingPathComponent("source.bin")
        try Data((0..<(3 << 20)).map { _ in UInt8.random(in: 0...255) }).write(to: source)
        let output = directory.appendingPathComponent("out.bin").path
        setenv("ZC_KEY_FILE", key, 1)
        defer { unsetenv("ZC_KEY_FILE") }
        let (s, r, status) = try runPair(receiverArgs: ["--output", output], senderArgs: ["--encrypt", "--source", source.path])
        XCTAssertEqual(status, 0)
        XCTAssertEqual(u64(s, "receiver", "lost"), 0)
        XCTAssertEqual(u64(r, "unauthenticated"), 0)
        XCTAssertNotNil(r["keyed"] as? [String: Any], "the receiver took the key from ZC_KEY_FILE")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: output)), try Data(contentsOf: source))
    }

    func testBadKeyOptionsExit64WithTheReason() throws {
        let short = directory.appendingPathComponent("short.key")
        try Data(repeating: 7, count: 16).write(to: short)
        let cases: [(String, [String], String)] = [
            (Binaries.send, ["127.0.0.1:9", "--key", "/nonexistent/zc.key"], "No such file"),
            (Binaries.send, ["127.0.0.1:9", "--key", short.path], "32 random bytes"),
            (Binaries.send, ["127.0.0.1:9", "--encrypt"], "--encrypt needs --key"),
            (Binaries.send, ["127.0.0.1:9", "--key", short.path, "--size", "100"], "--size"),
            (Binaries.recv, ["127.0.0.1:0", "--key", "/nonexistent/zc.key"], "No such file"),
        ]
        for (binary, args, reason) in cases {
            let r = try Child(binary, args).wait(timeout: 20)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(reason), "\(args) should say \(reason): \(r.stderr)")
        }
    }
}
