import Foundation
import TestSupport
import XCTest

/// The Wireshark dissector on a real capture: a short stream is captured on
/// loopback with dumpcap, then decoded by tshark with Protocol/zcstream.lua; the
/// sequence numbers and checksum verdicts must match what zc-send reported.
final class DissectorCaptureTests: XCTestCase {
    private var repository: URL {
        Repository.root
    }

    func testCapturedStreamDecodesWithEveryChecksumGood() throws {
        guard isRoot else { throw XCTSkip("capturing on lo needs root (uid \(geteuid()))") }
        guard shell("command -v dumpcap && command -v tshark").status == 0 else {
            throw XCTSkip("dumpcap/tshark not installed (Tools/bootstrap installs tshark)")
        }
        let dissector = repository.appendingPathComponent("Protocol/zcstream.lua").path
        let pcap = NSTemporaryDirectory() + "zc-capture-\(getpid()).pcapng"
        defer { unlink(pcap) }

        let receiver = try RunningReceiver.start(["--streams", "1"])
        let port = receiver.address.split(separator: ":").last!
        let capture = try Child("/usr/bin/dumpcap", ["-q", "-i", "lo", "-f", "udp dst port \(port)", "-w", pcap])
        // dumpcap says nothing when it is ready; give it a moment, then check it lives.
        usleep(1_500_000)
        XCTAssertTrue(capture.process.isRunning, "dumpcap: \(capture.stderr.text)")
        // GSO off and paced: one datagram per captured packet, none dropped by the capture.
        let sent = try runSender([receiver.address, "--count", "1000", "--gso", "off", "--rate", "20kpps", "--inject-corrupt", "1"])
        XCTAssertEqual(sent.status, 0, sent.stderr)
        _ = receiver.child.wait(timeout: 20)
        usleep(500_000)
        kill(capture.process.processIdentifier, SIGINT)
        _ = capture.wait(timeout: 10)

        let decoded = shell("tshark -X lua_script:\(dissector) -o zcstream.port:\(port) -r \(pcap) -T fields -E separator=, -e zcstream.seq -e zcstream.flags.names -e zcstream.checksum.status -e zcstream.stream_id 2>/dev/null")
        XCTAssertEqual(decoded.status, 0, decoded.output)
        var dataSeqs: [UInt64] = []
        var bad: [UInt64] = []
        var ends = 0
        for line in decoded.output.split(separator: "\n") {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 3, let seq = UInt64(f[0]) else { continue }
            if f[1].contains("END") { ends += 1; continue }
            dataSeqs.append(seq)
            if f[2] != "good" { bad.append(seq) }
        }
        XCTAssertEqual(UInt64(dataSeqs.count), u64(sent.json, "datagrams"), "every datagram zc-send reported was decoded")
        XCTAssertEqual(dataSeqs.sorted(), Array(0..<1000))
        XCTAssertEqual(bad, [101], "exactly the datagram zc-send corrupted has a bad checksum")
        XCTAssertGreaterThanOrEqual(ends, 1)
    }
}
