import Foundation
import TestSupport
import XCTest

/// zc-send --bind and --tos/--dscp, seen on the wire: tshark captures in the receiver's
/// namespace and every datagram (END included) of every engine must carry them (the
/// socket engines through IP_TOS, packet-ring in the IPv4 header it writes).
final class SourceOptionsPairTests: XCTestCase {
    func testBindAndTrafficClassOnEveryDatagramOfEverySocketEngine() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark") else { throw XCTSkip("needs tshark (Tools/bootstrap)") }
        let net = try NamespacePair(tag: "tos", subnet: 85)
        let second = "198.18.85.3"
        net.run(net.a, "ip addr add \(second)/24 dev \(net.interfaceA)")
        let pcap = NSTemporaryDirectory() + "zc-tos-\(getpid()).pcap"
        defer { unlink(pcap) }
        let capture = try Child("/usr/bin/tshark", ["-i", net.interfaceB, "-f", "udp dst port 9000", "-w", pcap, "-a", "duration:60"],
                                namespace: net.b)
        guard capture.waitForLine(containing: "Capturing on", timeout: 15) != nil else {
            throw XCTSkip("tshark did not start: \(capture.wait(timeout: 2).stderr)")
        }
        let server = try RunningReceiver.start(listen: "\(net.addressB):9000", ["--server"], namespace: net.b)
        // engine, flag, value, the TOS byte expected, source port
        let runs: [(String, String, String, Int, Int)] = [
            ("uring-zc", "--dscp", "46", 0xB8, 40001), ("uring", "--tos", "40", 0x28, 40002),
            ("sendmmsg", "--dscp", "24", 0x60, 40003), ("auto", "--tos", "4", 0x04, 40004),
            ("packet-ring", "--dscp", "10", 0x28, 40005),  // written into each frame's IPv4 header
        ]
        for (engine, flag, value, _, port) in runs {
            let ring = engine == "packet-ring" ? ["--interface", net.interfaceA] : []
            let sent = try runSender(["\(net.addressB):9000", "--engine", engine, "--count", "200", "--gso", "off",
                                      "--bind", "\(second):\(port)", flag, value] + ring, namespace: net.a)
            XCTAssertEqual(sent.status, 0, "\(engine): \(sent.stderr)")
            // The REPORT came back to the bound port.
            XCTAssertEqual(u64(sent.json?["receiver"] as? [String: Any], "unique"), 200, "\(engine): \(sent.stdout)")
        }
        // Any port: --bind ADDR alone.
        let anyPort = try runSender(["\(net.addressB):9000", "--count", "50", "--gso", "off", "--bind", second, "--dscp", "8"], namespace: net.a)
        XCTAssertEqual(anyPort.status, 0, anyPort.stderr)
        usleep(300_000)
        kill(capture.process.processIdentifier, SIGINT)
        _ = capture.wait(timeout: 15)
        kill(server.child.process.processIdentifier, SIGTERM)
        _ = server.child.wait(timeout: 15)

        let read = shell("tshark -n -r \(pcap) -T fields -e ip.src -e udp.srcport -e ip.dsfield 2>/dev/null")
        XCTAssertEqual(read.status, 0, read.output)
        var byPort: [Int: [(String, Int)]] = [:]
        var total = 0
        for line in read.output.split(separator: "\n") {
            let f = line.split(separator: "\t").map(String.init)
            guard f.count == 3, let port = Int(f[1]) else { continue }
            let tos = f[2].hasPrefix("0x") ? Int(f[2].dropFirst(2), radix: 16) ?? -1 : Int(f[2]) ?? -1
            byPort[port, default: []].append((f[0], tos))
            total += 1
        }
        for (engine, _, _, expectedTOS, port) in runs {
            let packets = byPort[port] ?? []
            // 200 DATA + 3 END, every one from the bound address and port with the TOS byte.
            XCTAssertEqual(packets.count, 203, "\(engine): \(packets.count) packets from port \(port)")
            XCTAssertTrue(packets.allSatisfy { $0.0 == second }, "\(engine): a packet not from \(second)")
            XCTAssertEqual(Set(packets.map(\.1)), [expectedTOS], "\(engine): TOS bytes seen")
        }
        let others = byPort.filter { !runs.map(\.4).contains($0.key) }.values.flatMap { $0 }
        XCTAssertEqual(others.count, 53, "the --bind ADDR run (any port)")
        XCTAssertTrue(others.allSatisfy { $0.0 == second && $0.1 == 0x20 }, "\(others.prefix(3))")
        XCTAssertEqual(total, runs.count * 203 + 53)
    }
}
