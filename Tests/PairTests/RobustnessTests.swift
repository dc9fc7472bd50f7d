import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The peer going away mid-stream: no crash, failures counted, no buffer slot leaked.
final class RobustnessTests: XCTestCase {
    // MARK: the receiver goes away

    /// zc-recv is killed 1 s into a paced 4 s stream: the kernel answers with ICMP port
    /// unreachable, so sends fail with ECONNREFUSED. With the default --on-error continue
    /// the sender counts them, keeps its schedule, exits 0, and gets every zero-copy
    /// notification back (no slot leaked).
    func testReceiverGoneSenderCountsRefusedAndLeaksNoSlot() throws {
        for engine in ["uring-zc", "sendmmsg"] {
            let s = try sendWhileReceiverDies(["--engine", engine])
            XCTAssertEqual(s.status, 0, "\(engine): \(s.stderr)")
            let json = try XCTUnwrap(s.json, "\(engine): no JSON: \(s.stdout) \(s.stderr)")
            let errors = try XCTUnwrap(json["errors"] as? [String: Any], "\(engine): errors")
            let refused = errors.first { $0.key.contains("ECONNREFUSED") }.flatMap { ($0.value as? NSNumber)?.uint64Value } ?? 0
            XCTAssertGreaterThan(refused, 0, "\(engine): ECONNREFUSED counted: \(errors)")
            XCTAssertGreaterThan(u64(json, "datagrams_failed") ?? 0, 0, "\(engine)")
            XCTAssertEqual(json["stop_reason"] as? String, "limit", "\(engine): kept its schedule")
            // Whatever failed or succeeded, every sequence number is accounted for once.
            XCTAssertEqual((u64(json, "datagrams") ?? 0) + (u64(json, "datagrams_failed") ?? 0), u64(json, "sequences"), "\(engine)")
            if engine == "uring-zc" {
                XCTAssertGreaterThan(u64(json, "zc", "sends") ?? 0, 0)
                XCTAssertEqual(u64(json, "zc", "notifications"), u64(json, "zc", "sends"), "every slot's notification came back")
            }
        }
    }

    /// With --on-error stop the first refused send ends the stream: END, drain, report,
    /// exit 2 (a runtime failure), and still no slot leaked.
    func testReceiverGoneWithOnErrorStop() throws {
        let s = try sendWhileReceiverDies(["--on-error", "stop"])
        XCTAssertEqual(s.status, 2, s.stderr)
        let json = try XCTUnwrap(s.json, "no JSON: \(s.stdout) \(s.stderr)")
        XCTAssertEqual(json["stop_reason"] as? String, "error")
        XCTAssertLessThan((json["seconds"] as? NSNumber)?.doubleValue ?? 99, 3.0, "stopped early")
        XCTAssertEqual(u64(json, "zc", "notifications"), u64(json, "zc", "sends"))
        XCTAssertTrue(s.stderr.contains("--on-error stop"), s.stderr)
    }

    private func sendWhileReceiverDies(_ extra: [String]) throws -> Child.Result {
        let receiver = try RunningReceiver.start(["--timeout", "20s"])
        let sender = try Child(Binaries.send, [receiver.address, "--duration", "4s", "--rate", "200M",
                                               "--json", "--interval", "0"] + extra)
        usleep(1_000_000)
        kill(receiver.child.process.processIdentifier, SIGKILL)
        _ = receiver.child.wait(timeout: 5)
        return sender.wait(timeout: 30)
    }
}
