import Foundation
import TestSupport
import XCTest

/// The real binaries over loopback: every datagram sent arrives, validated.
final class LoopbackPairTests: XCTestCase {
    /// A pair with the receiver's idle timeout at 5 s.
    private func pair(listen: String = "127.0.0.1:0", receiverArgs: [String] = [], senderArgs: [String],
                      file: StaticString = #filePath, line: UInt = #line) throws -> (send: [String: Any], recv: [String: Any], recvStatus: Int32) {
        try runPair(listen: listen, receiverArgs: ["--idle-timeout", "5s"] + receiverArgs, senderArgs: senderArgs, file: file, line: line)
    }

    private func assertClean(_ s: [String: Any], _ r: [String: Any], expected: UInt64,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(u64(s, "datagrams"), expected, "sender datagrams", file: file, line: line)
        XCTAssertEqual(u64(r, "datagrams"), expected, "receiver datagrams", file: file, line: line)
        XCTAssertEqual(u64(r, "bytes"), u64(s, "bytes"), "bytes", file: file, line: line)
        XCTAssertEqual(u64(r, "lost"), 0, "lost", file: file, line: line)
        XCTAssertEqual(u64(r, "corrupt"), 0, "corrupt", file: file, line: line)
        XCTAssertEqual(u64(r, "duplicates"), 0, "duplicates", file: file, line: line)
        XCTAssertEqual(u64(r, "reordered"), 0, "reordered", file: file, line: line)
        XCTAssertEqual(u64(r, "invalid"), 0, "invalid", file: file, line: line)
        let streams = r["streams"] as? [[String: Any]] ?? []
        XCTAssertEqual(streams.count, 1, file: file, line: line)
        XCTAssertEqual(u64(streams.first, "stream_id"), u64(s, "stream_id"), "stream id", file: file, line: line)
        XCTAssertEqual(u64(streams.first, "expected_datagrams"), expected, "END totals", file: file, line: line)
        XCTAssertEqual(streams.first?["complete"] as? Bool, true, file: file, line: line)
    }

    func testZeroCopyIPv4TwoHundredThousand() throws {
        let (s, r, status) = try pair(senderArgs: ["--count", "200000", "--rate", "3G", "--engine", "uring-zc"])
        assertClean(s, r, expected: 200_000)
        XCTAssertEqual(status, 0)
        XCTAssertEqual(s["engine"] as? String, "uring-zc")
        // Every SEND_ZC got its notification; on loopback the kernel reports it copied.
        let sends = try XCTUnwrap(u64(s, "zc", "sends"))
        XCTAssertGreaterThan(sends, 0)
        XCTAssertEqual(u64(s, "zc", "notifications"), sends)
        XCTAssertEqual((u64(s, "zc", "copied") ?? 0) + (u64(s, "zc", "zero_copied") ?? 0), sends)
    }

    func testZeroCopyIPv6() throws {
        guard shell("ip -6 addr show dev lo | grep -q '::1'").status == 0 else {
            throw XCTSkip("no ::1 on lo (IPv6 disabled on this machine)")
        }
        let (s, r, _) = try pair(listen: "[::1]:0", senderArgs: ["--count", "200000", "--rate", "3G", "--engine", "uring-zc"])
        assertClean(s, r, expected: 200_000)
        XCTAssertEqual(u64(s, "zc", "notifications"), u64(s, "zc", "sends"))
    }

    func testCopyEnginesAndSizes() throws {
        for (engine, size, gso) in [("uring", "1472", "auto"), ("sendmmsg", "1472", "auto"), ("uring-zc", "8972", "auto"),
                                    ("uring-zc", "1472", "off"), ("sendmmsg", "300", "off"), ("uring-zc", "48", "auto")] {
            let (s, r, _) = try pair(senderArgs: ["--count", "20000", "--engine", engine, "--size", size, "--gso", gso, "--rate", "2G"])
            assertClean(s, r, expected: 20_000)
            XCTAssertEqual(s["engine"] as? String, engine)
        }
    }

    /// --engine auto on loopback: the notifications say "copied", so the stream switches to
    /// copying sends from the same pool, says when and why, and loses nothing.
    func testAutoEngineSwitchesToCopyOnLoopback() throws {
        let (s, r, _) = try pair(senderArgs: ["--count", "200000", "--engine", "auto", "--rate", "3G"])
        assertClean(s, r, expected: 200_000)
        XCTAssertEqual(s["engine"] as? String, "auto")
        let sends = try XCTUnwrap(u64(s, "zc", "sends"))
        let notifications = try XCTUnwrap(u64(s, "zc", "notifications"))
        XCTAssertGreaterThanOrEqual(notifications, 32)
        XCTAssertLessThan(notifications, sends, "after the switch sends are copies: no notifications")
        XCTAssertEqual(u64(s, "zc", "copied"), notifications, "loopback copies every zero-copy page")
        let switched = try XCTUnwrap((s["zc"] as? [String: Any])?["switched_to_copy"] as? [String: Any], "no switch reported")
        XCTAssertEqual(u64(switched, "notifications"), 32)
        XCTAssertNotNil(switched["reason"] as? String)
    }

    /// --source fixed: opaque DATA, every checksum verified by the receiver.
    func testFixedSourceValidates() throws {
        for engine in ["uring-zc", "sendmmsg"] {
            let (s, r, _) = try pair(senderArgs: ["--count", "50000", "--engine", engine, "--source", "fixed", "--rate", "2G"])
            assertClean(s, r, expected: 50_000)
            XCTAssertEqual(s["source"] as? String, "fixed")
        }
    }

    func testByteLimitEndsWithShortDatagram() throws {
        // 1 MiB + 7 bytes: the last datagram is short; END carries the exact byte total.
        let (s, r, _) = try pair(senderArgs: ["--bytes", "1048583", "--rate", "1G"])
        let payload = 1472 - 48
        let expected = UInt64((1_048_583 + payload - 1) / payload)
        assertClean(s, r, expected: expected)
        let stream = (r["streams"] as? [[String: Any]])?.first
        XCTAssertEqual(u64(stream, "expected_payload_bytes"), 1_048_583)
    }

    func testGROOffGivesSameCounts() throws {
        let (s, r, _) = try pair(receiverArgs: ["--gro", "off"], senderArgs: ["--count", "50000", "--rate", "1G"])
        assertClean(s, r, expected: 50_000)
        XCTAssertEqual(r["gro"] as? Bool, false)
        XCTAssertEqual(u64(r, "coalesced_buffers"), 0)
    }

    /// Every injected fault is reported exactly, and corruption fails the run.
    func testInjectedFaultsAreReportedExactly() throws {
        for engine in ["uring-zc", "sendmmsg"] {
            let (s, r, status) = try pair(senderArgs: [
                "--count", "30000", "--rate", "1G", "--engine", engine,
                "--inject-corrupt", "3", "--inject-skip", "4", "--inject-reorder", "5", "--inject-duplicate", "6",
            ])
            XCTAssertEqual(u64(s, "injected", "corrupt"), 3)
            XCTAssertEqual(u64(s, "injected", "skip"), 4)
            XCTAssertEqual(u64(s, "injected", "reorder"), 5)
            XCTAssertEqual(u64(s, "injected", "duplicate"), 6)
            // Sent: 30000 - 4 skipped + 6 duplicated; received intact: that minus 3 corrupt.
            XCTAssertEqual(u64(s, "datagrams"), 30_002)
            XCTAssertEqual(u64(r, "datagrams"), 29_999)
            XCTAssertEqual(u64(r, "corrupt"), 3)
            // A corrupt datagram's sequence number is not trusted: it counts lost too.
            XCTAssertEqual(u64(r, "lost"), 4 + 3)
            XCTAssertEqual(u64(r, "reordered"), 5)
            XCTAssertEqual(u64(r, "duplicates"), 6)
            XCTAssertEqual(u64(r, "invalid"), 0)
            XCTAssertEqual(status, 1, "corruption beyond --max-corrupt 0 must fail the receiver")
            let ranges = ((r["streams"] as? [[String: Any]])?.first?["lost_ranges"] as? [[NSNumber]]) ?? []
            // Skips land at 303, 1303, 2303, 3303; corruptions at 101, 1101, 2101.
            let lostSeqs = Set(ranges.flatMap { $0.count == 2 ? Array($0[0].uint64Value...$0[1].uint64Value) : [] })
            XCTAssertEqual(lostSeqs, [101, 1101, 2101, 303, 1303, 2303, 3303])
        }
    }

    func testLossLimitControlsExitStatus() throws {
        let receiver = try RunningReceiver.start(["--streams", "1", "--max-loss", "0"])
        let sent = try runSender([receiver.address, "--count", "5000", "--inject-skip", "2"])
        XCTAssertEqual(sent.status, 0)
        let r = receiver.child.wait(timeout: 30)
        XCTAssertEqual(r.status, 1, r.stdout)
        XCTAssertEqual(u64(r.json, "lost"), 2)
        XCTAssertEqual((r.json?["failures"] as? [String])?.count, 1)
    }

    /// SIGINT mid-stream: both tools stop, drain, print the report, exit 130.
    func testInterruptPrintsSummary() throws {
        let receiver = try RunningReceiver.start(["--streams", "1"])
        let sender = try Child(Binaries.send, [receiver.address, "--duration", "30s", "--rate", "200M", "--engine", "uring-zc",
                                                   "--json", "--interval", "0"])
        usleep(700_000)
        kill(sender.process.processIdentifier, SIGINT)
        let s = sender.wait(timeout: 15)
        XCTAssertEqual(s.status, 130, s.stderr)
        XCTAssertEqual(s.json?["stop_reason"] as? String, "signal")
        XCTAssertEqual(u64(s.json, "zc", "notifications"), u64(s.json, "zc", "sends"), "drained every notification")
        // The END still went out, so the receiver finishes on its own, complete.
        let r = receiver.child.wait(timeout: 15)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(u64(r.json, "datagrams"), u64(s.json, "datagrams"))
        XCTAssertEqual(u64(r.json, "lost"), 0)

        let idle = try RunningReceiver.start([])
        usleep(200_000)
        kill(idle.child.process.processIdentifier, SIGTERM)
        let ri = idle.child.wait(timeout: 10)
        XCTAssertEqual(ri.status, 143)
        XCTAssertEqual(ri.json?["stop_reason"] as? String, "signal")
    }
}
