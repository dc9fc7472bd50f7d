import Foundation
import XCTest

/// Bad command lines: one line naming the flag, exit 64, nothing sent.
final class BadInputTests: XCTestCase {
    func testSenderRejectsBadFlags() throws {
        let cases: [([String], String)] = [
            (["127.0.0.1:9", "--size", "20"], "--size"),
            (["127.0.0.1:9", "--size", "70000"], "--size"),
            (["127.0.0.1:9", "--rate", "0pps"], "--rate"),
            (["127.0.0.1:9", "--rate", "fast"], "--rate"),
            (["127.0.0.1:9", "--gso", "65"], "--gso"),
            (["127.0.0.1:9", "--gso", "44", "--size", "8972"], "--gso"),
            (["127.0.0.1:9", "--count", "0"], "--count"),
            (["127.0.0.1:9", "--duration", "-1s"], "--duration"),
            (["127.0.0.1:9", "--engine", "magic"], "--engine"),
            (["127.0.0.1:9", "--pool", "1"], "--pool"),
            (["127.0.0.1:9", "--sqpoll", "--engine", "sendmmsg"], "--sqpoll"),
            (["127.0.0.1:9", "--sqpoll-cpu", "0"], "--sqpoll-cpu"),
            (["127.0.0.1:9", "--sqpoll", "--sqpoll-cpu", "4096"], "--sqpoll-cpu"),
            (["127.0.0.1", "--count", "1"], "destination"),
            (["127.0.0.1:99999", "--count", "1"], "destination"),
            (["no.such.host.invalid:9000", "--count", "1"], "destination"),
            (["127.0.0.1:9", "--unsafe-recycle-on-send", "--engine", "sendmmsg"], "--unsafe-recycle-on-send"),
        ]
        for (args, flag) in cases {
            let r = Child.Result(from: try Child(Binaries.send, args).wait(timeout: 20))
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(flag), "\(args) should name \(flag): \(r.stderr)")
            XCTAssertTrue(r.stdout.isEmpty, "\(args) printed a report")
        }
    }

    func testReceiverRejectsBadFlags() throws {
        let cases: [([String], String)] = [
            (["notaport"], "listen"),
            (["127.0.0.1:70000"], "listen"),
            (["9000", "--gro", "maybe"], "--gro"),
            (["9000", "--streams", "0"], "--streams"),
            (["9000", "--max-loss", "101"], "--max-loss"),
            (["9000", "--idle-timeout", "0"], "--idle-timeout"),
            (["9000", "--engine", "magic"], "--engine"),
        ]
        for (args, flag) in cases {
            let r = try Child(Binaries.recv, args).wait(timeout: 20)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(flag), "\(args) should name \(flag): \(r.stderr)")
        }
    }

    func testReceiverReportsPortInUse() throws {
        let first = try RunningReceiver.start(["--timeout", "3s"])
        let second = try Child(Binaries.recv, [first.address, "--timeout", "1s"]).wait(timeout: 10)
        // SO_REUSEADDR does not let two UDP sockets share a unicast port without SO_REUSEPORT.
        XCTAssertEqual(second.status, 2, second.stderr)
        XCTAssertTrue(second.stderr.contains("bind"), second.stderr)
        kill(first.child.process.processIdentifier, SIGTERM)
        _ = first.child.wait(timeout: 5)
    }
}

extension Child.Result {
    init(from r: Child.Result) { self = r }
}
