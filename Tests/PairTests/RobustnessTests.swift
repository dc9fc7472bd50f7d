import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The peer going away mid-stream, and well-formed datagrams with extreme field values
/// (found by Tools/fuzz): neither may crash a binary or leak a buffer slot.
final class RobustnessTests: XCTestCase {
    // MARK: the receiver goes away

    /// zc-recv is killed 1 s into a paced 4 s stream: the kernel answers with ICMP port
    /// unreachable, so sends fail with ECONNREFUSED. With the default --on-error continue
    /// the sender counts them apart from what was sent, keeps its schedule, gets every
    /// zero-copy notification back (no slot leaked) — and exits 1: datagrams that were
    /// never sent are not an ok run.
    func testReceiverGoneSenderCountsRefusedAndLeaksNoSlot() throws {
        for engine in ["uring-zc", "sendmmsg"] {
            let s = try sendWhileReceiverDies(["--engine", engine])
            XCTAssertEqual(s.status, 1, "\(engine): \(s.stderr)")
            XCTAssertTrue(s.stderr.contains("were not sent"), "\(engine): \(s.stderr)")
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
        let s = try sendWhileReceiverDies(["--on-error", "stop", "--engine", "uring-zc"])
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

    // MARK: extreme but valid datagrams

    /// SPEC §8: "any stream id, sequence, offset and timestamp is valid" and a receiver
    /// MUST NOT fail on them. Each datagram below has a correct checksum; zc-recv must
    /// take them all, keep running, and print its report (exit 0 or 1, never a trap).
    func testExtremeValidDatagramsAreReportedNotFatal() throws {
        let top = UInt64.max
        var datagrams: [[UInt8]] = [
            Self.datagram(flags: 0x01, stream: 1, sequence: top),                // 2^64-1: beyond every END (SPEC §9.2)
            Self.datagram(flags: 0x01, stream: 2, sequence: 1 << 63 + 12_345),    // a jump past Int.max
            Self.datagram(flags: 0x01, stream: 2, sequence: 3),                   // then far too old: late
            Self.datagram(flags: 0x01, stream: 3, sequence: 0),
            Self.datagram(flags: 0x02, stream: 3, sequence: top, offset: top,     // END announcing 2^64 - 1
                          payload: Self.be64(top) + Self.be64(top)),
            Self.datagram(flags: 0x05, stream: 4, sequence: 0, offset: top - 4,   // PATTERN across 2^64: corrupt
                          payload: [UInt8](repeating: 0xA5, count: 64)),
            Self.datagram(flags: 0x01, stream: 5, sequence: 0, timestamp: 0),     // latency: 55 years
            Self.datagram(flags: 0x01, stream: 5, sequence: 1, timestamp: top),   // latency: negative
            Self.datagram(flags: 0x01, stream: 6, sequence: 0, headerLength: 4096, payload: [1, 2, 3]),
        ]
        datagrams.append(Self.datagram(flags: 0x01, stream: 7, sequence: 0, headerLength: 65_000)) // extension near the UDP limit
        for engine in ["recvmmsg", "uring"] {
            let receiver = try RunningReceiver.start(["--engine", engine, "--idle-timeout", "1s"])
            let port = try XCTUnwrap(UInt16(receiver.address.split(separator: ":").last!))
            // One socket: a stream is its id *and* its source address.
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            XCTAssertGreaterThanOrEqual(fd, 0)
            for d in datagrams { XCTAssertEqual(Self.send(d, on: fd, toPort: port), d.count, "\(engine): sendto") }
            close(fd)
            let r = receiver.child.wait(timeout: 20)
            XCTAssertTrue(r.status == 0 || r.status == 1, "\(engine): zc-recv exit \(r.status): \(r.stderr.suffix(2000))")
            let json = try XCTUnwrap(r.json, "\(engine): no report: \(r.stdout.suffix(500)) \(r.stderr.suffix(2000))")
            let streams = json["streams"] as? [[String: Any]] ?? []
            func stream(_ id: UInt64) -> [String: Any]? { streams.first { u64($0, "stream_id") == id } }
            XCTAssertEqual(u64(json, "invalid"), 0, "\(engine): all were valid")
            XCTAssertEqual(u64(stream(1), "unique"), 0, "\(engine): 2^64-1 is never stream data")
            XCTAssertEqual(u64(stream(1), "beyond_end"), 1, engine)
            XCTAssertEqual(stream(3)?["complete"] as? Bool, false, "\(engine): END(2^64-1) with one datagram received")
            XCTAssertEqual(u64(stream(3), "lost"), UInt64.max - 1, engine)
            XCTAssertEqual(u64(stream(2), "unique"), 1, engine)
            XCTAssertEqual(u64(stream(2), "late"), 1, engine)
            XCTAssertEqual(u64(stream(4), "corrupt"), 1, "\(engine): a PATTERN range past 2^64 never verifies")
            XCTAssertEqual(u64(stream(5), "unique"), 2, engine)
            XCTAssertEqual(u64(stream(6), "unique"), 1, engine)
        }
    }

    // MARK: building datagrams (SPEC §2, §5), independently of StreamProtocol

    static func be64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }

    static func datagram(flags: UInt8, stream: UInt64, sequence: UInt64, offset: UInt64 = 0,
                         timestamp: UInt64 = 1_700_000_000_000_000_000, headerLength: Int = 48,
                         payload: [UInt8] = []) -> [UInt8] {
        var d: [UInt8] = Array("ZCST".utf8) + [1, flags, UInt8(headerLength >> 8), UInt8(headerLength & 0xFF)]
        d += be64(stream) + be64(sequence) + be64(offset) + be64(timestamp)
        let n = UInt32(payload.count)
        d += [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF), 0, 0, 0, 0]
        d += [UInt8](repeating: 0x3C, count: headerLength - 48) + payload
        let crc = crc32c(d)
        d[44] = UInt8(crc >> 24); d[45] = UInt8((crc >> 16) & 0xFF); d[46] = UInt8((crc >> 8) & 0xFF); d[47] = UInt8(crc & 0xFF)
        return d
    }

    /// CRC32C, the bitwise definition of SPEC §5 (slow, fine for a few datagrams).
    static func crc32c(_ bytes: [UInt8]) -> UInt32 {
        var table = [UInt32](repeating: 0, count: 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 0 ? 0 : 0x82F6_3B78) }
            table[i] = c
        }
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = (crc >> 8) ^ table[Int((crc ^ UInt32(b)) & 0xFF)] }
        return ~crc
    }

    static func send(_ bytes: [UInt8], on fd: Int32, toPort port: UInt16) -> Int {
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_port = port.bigEndian
        to.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return bytes.withUnsafeBytes { b in
            withUnsafePointer(to: &to) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }
}
