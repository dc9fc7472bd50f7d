import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// zc-recv end to end: engines, GRO, several senders and threads, --output, the
/// socket buffer as the bottleneck, and a flood of junk — every count exact.
final class ReceiverPairTests: XCTestCase {
    /// The counters that must not depend on how the datagrams were received.
    static let exactKeys = ["datagrams", "unique", "lost", "reordered", "duplicates", "corrupt", "invalid", "late", "bytes"]

    private func streams(_ r: [String: Any]?) -> [[String: Any]] { r?["streams"] as? [[String: Any]] ?? [] }

    private func address(fromReadyLine line: String) -> String {
        String(line.components(separatedBy: "listening on ")[1].split(separator: " ")[0])
    }

    // MARK: engines and GRO

    func testEnginesAndGROGiveIdenticalExactCounts() throws {
        var reference: [String: UInt64]?
        var referenceRanges: [[NSNumber]]?
        for engine in ["recvmmsg", "uring"] {
            for gro in ["on", "off"] {
                let label = "\(engine) GRO \(gro)"
                let (s, r, status) = try runPair(receiverArgs: ["--engine", engine, "--gro", gro], senderArgs: [
                    "--count", "30000", "--rate", "1G", "--stream-id", "0x5eed",
                    "--inject-corrupt", "3", "--inject-skip", "4", "--inject-reorder", "5", "--inject-duplicate", "6",
                ])
                XCTAssertEqual(r["engine"] as? String, engine)
                XCTAssertEqual(r["gro"] as? Bool, gro == "on", label)
                XCTAssertEqual(u64(s, "datagrams"), 30_002, label)
                XCTAssertEqual(u64(r, "datagrams"), 29_999, label)
                XCTAssertEqual(u64(r, "corrupt"), 3, label)
                XCTAssertEqual(u64(r, "lost"), 7, label)
                XCTAssertEqual(u64(r, "reordered"), 5, label)
                XCTAssertEqual(u64(r, "duplicates"), 6, label)
                XCTAssertEqual(u64(r, "invalid"), 0, label)
                XCTAssertEqual(u64(r, "kernel_drops"), 0, label)
                XCTAssertEqual(status, 1, "\(label): corruption fails the run")
                var counts: [String: UInt64] = [:]
                for k in Self.exactKeys { counts[k] = u64(r, k) }
                let ranges = streams(r).first?["lost_ranges"] as? [[NSNumber]]
                if let reference {
                    XCTAssertEqual(counts, reference, "\(label) differs from recvmmsg GRO on")
                    XCTAssertEqual(ranges, referenceRanges, label)
                } else {
                    reference = counts
                    referenceRanges = ranges
                }
                if gro == "off" { XCTAssertEqual(u64(r, "coalesced_buffers"), 0, label) }
                let latency = r["latency_us"] as? [String: Any]
                XCTAssertNotNil(u64(latency, "p99_9"), "\(label): latency percentiles reported")
            }
        }
    }

    // MARK: several senders

    func testTwoSendersWithTheSameIDAreTwoStreams() throws {
        for engine in ["recvmmsg", "uring"] {
            let receiver = try RunningReceiver.start(["--streams", "2", "--engine", engine])
            let a = try Child(Binaries.send, [receiver.address, "--count", "20000", "--rate", "500M", "--stream-id", "0x42", "--json", "--interval", "0"])
            let b = try Child(Binaries.send, [receiver.address, "--count", "15000", "--rate", "500M", "--stream-id", "0x42", "--json", "--interval", "0"])
            XCTAssertEqual(a.wait().status, 0)
            XCTAssertEqual(b.wait().status, 0)
            let r = try XCTUnwrap(receiver.child.wait(timeout: 30).json)
            let list = streams(r)
            XCTAssertEqual(list.count, 2, engine)
            XCTAssertEqual(Set(list.compactMap { u64($0, "stream_id") }), [0x42])
            let sources = Set(list.compactMap { $0["source"] as? String })
            XCTAssertEqual(sources.count, 2, "two sources: \(sources)")
            XCTAssertTrue(sources.allSatisfy { $0.hasPrefix("127.0.0.1:") }, "\(sources)")
            XCTAssertEqual(Set(list.compactMap { u64($0, "datagrams") }), [20_000, 15_000], engine)
            for s in list {
                XCTAssertEqual(u64(s, "lost"), 0)
                XCTAssertEqual(u64(s, "duplicates"), 0, "one sender's datagrams are not the other's duplicates")
                XCTAssertEqual(s["complete"] as? Bool, true)
            }
            XCTAssertEqual(r["stop_reason"] as? String, "streams_complete")
        }
    }

    func testThreadsMergeTwoSenders() throws {
        for engine in ["recvmmsg", "uring"] {
            let receiver = try RunningReceiver.start(["--streams", "2", "--threads", "2", "--engine", engine])
            let a = try Child(Binaries.send, [receiver.address, "--count", "30000", "--rate", "700M", "--json", "--interval", "0"])
            let b = try Child(Binaries.send, [receiver.address, "--count", "20000", "--rate", "700M", "--json", "--interval", "0",
                                              "--inject-skip", "2"])
            XCTAssertEqual(a.wait().status, 0)
            XCTAssertEqual(b.wait().status, 0)
            let r = try XCTUnwrap(receiver.child.wait(timeout: 30).json)
            XCTAssertEqual(u64(r, "threads"), 2)
            XCTAssertEqual(streams(r).count, 2, engine)
            XCTAssertEqual(u64(r, "datagrams"), 49_998, engine)
            XCTAssertEqual(u64(r, "unique"), 49_998, engine)
            XCTAssertEqual(u64(r, "lost"), 2, engine)
            XCTAssertEqual(u64(r, "duplicates"), 0, engine)
            XCTAssertEqual(u64(r, "corrupt"), 0, engine)
            let perThread = r["per_thread"] as? [[String: Any]] ?? []
            XCTAssertEqual(perThread.count, 2)
            XCTAssertEqual(perThread.compactMap { u64($0, "datagrams") }.reduce(0, +), 49_998, "threads add up to the total")
            for s in streams(r) { XCTAssertEqual(u64(s, "merge_unresolved"), 0) }
        }
    }

    // MARK: --output

    /// The zcstream pattern (SPEC §7) for stream bytes [0, count).
    static func pattern(id: UInt64, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { b in
            var k = 0
            while k * 8 < count {
                let w = (UInt64(k) &+ 1) &* 0x9E37_79B9_7F4A_7C15 ^ id
                for j in 0..<8 where k * 8 + j < count { b[k * 8 + j] = UInt8(truncatingIfNeeded: w >> (8 * UInt64(j))) }
                k += 1
            }
        }
        return out
    }

    private func temporaryPath(_ name: String) -> String {
        NSTemporaryDirectory() + "zc-recv-pair-\(getpid())-\(name)"
    }

    private func read(_ path: String) -> [UInt8] {
        (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? []
    }

    func testOutputFileReproducesThePatternStream() throws {
        for engine in ["recvmmsg", "uring"] {
            let path = temporaryPath("pattern-\(engine)")
            defer { unlink(path) }
            let (s, r, status) = try runPair(receiverArgs: ["--engine", engine, "--output", path],
                                          senderArgs: ["--count", "5000", "--rate", "1G"])
            XCTAssertEqual(status, 0)
            let id = try XCTUnwrap(u64(s, "stream_id"))
            let stream = try XCTUnwrap(streams(r).first)
            let output = try XCTUnwrap(stream["output"] as? [String: Any])
            XCTAssertEqual(output["path"] as? String, path)
            XCTAssertEqual(u64(output, "hole_count"), 0)
            XCTAssertEqual(u64(output, "bytes_written"), 5000 * 1424)
            let bytes = read(path)
            XCTAssertEqual(bytes.count, 5000 * 1424, engine)
            XCTAssertTrue(bytes == Self.pattern(id: id, count: 5000 * 1424), "\(engine): the file is the stream, byte for byte")
        }
    }

    func testOutputFileListsHolesExactly() throws {
        let path = temporaryPath("holes")
        defer { unlink(path) }
        let (s, r, _) = try runPair(receiverArgs: ["--output", path],
                                 senderArgs: ["--count", "4000", "--rate", "1G", "--inject-skip", "2", "--inject-corrupt", "1"])
        let id = try XCTUnwrap(u64(s, "stream_id"))
        let output = try XCTUnwrap(streams(r).first?["output"] as? [String: Any])
        // Corruption at sequence 101, skips at 303 and 1303: 1424 bytes each.
        let holes = (output["holes"] as? [[NSNumber]])?.map { $0.map(\.uint64Value) }
        let p: UInt64 = 1424
        let expectedHoles: [[UInt64]] = [[101 * p, 102 * p], [303 * p, 304 * p], [1303 * p, 1304 * p]]
        XCTAssertEqual(holes, expectedHoles)
        XCTAssertEqual(u64(output, "hole_bytes"), 3 * 1424)
        var expected = Self.pattern(id: id, count: 4000 * 1424)
        for seq in [101, 303, 1303] { for i in (seq * 1424)..<((seq + 1) * 1424) { expected[i] = 0 } }
        XCTAssertTrue(read(path) == expected, "holes are zeros, everything else the stream")
    }

    func testOutputFileReproducesASourceFile() throws {
        let source = temporaryPath("source.bin")
        let path = temporaryPath("copy.bin")
        defer { unlink(source); unlink(path) }
        var bytes = [UInt8](repeating: 0, count: 3_000_017)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 9) }
        XCTAssertTrue(FileManager.default.createFile(atPath: source, contents: Data(bytes)))
        let (_, r, status) = try runPair(receiverArgs: ["--engine", "uring", "--output", path],
                                      senderArgs: ["--source", source, "--rate", "1G"])
        XCTAssertEqual(status, 0)
        XCTAssertEqual(u64(r, "lost"), 0)
        XCTAssertTrue(read(path) == bytes, "the received file equals the sent file")
    }

    func testOutputToStdoutIsTheStreamInOrder() throws {
        let captured = temporaryPath("stdout.bin")
        defer { unlink(captured) }
        let id: UInt64 = 0x5743_0001
        let bytes = Self.pattern(id: id, count: 3000 * 1424)
        // stdout goes to a file (the harness reads pipes as text); stderr stays ours.
        let receiver = try Child("/bin/sh", ["-c", "exec \(Binaries.recv) 127.0.0.1:0 --streams 1 --json --interval 0 --output - > \(captured)"])
        let ready = try XCTUnwrap(receiver.waitForLine(containing: "listening on"))
        // Reordered pairs: the window puts them back in order.
        let sent = try runSender([address(fromReadyLine: ready), "--count", "3000", "--stream-id", "0x57430001", "--rate", "1G",
                                  "--inject-reorder", "20"])
        XCTAssertEqual(sent.status, 0, sent.stderr)
        let r = receiver.wait(timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        let got = read(captured)
        XCTAssertTrue(got == bytes, "stdout carries exactly the stream (\(got.count) of \(bytes.count) bytes)")
        // The report went to stderr.
        let jsonText = try XCTUnwrap(r.stderr.range(of: "\n{").map { String(r.stderr[$0.lowerBound...]) })
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(jsonText.utf8)) as? [String: Any])
        let reordered = try XCTUnwrap(u64(sent.json, "injected", "reorder"))
        XCTAssertGreaterThan(reordered, 0)
        XCTAssertEqual(u64(report, "reordered"), reordered, "reordered on the wire, yet in order on stdout")
        let output = try XCTUnwrap(streams(report).first?["output"] as? [String: Any])
        XCTAssertEqual(output["path"] as? String, "-")
        XCTAssertEqual(u64(output, "hole_count"), 0)
        XCTAssertEqual(u64(output, "late_datagrams"), 0)
    }

    // MARK: the socket buffer as the bottleneck

    func testKernelDropsAreReportedAsTheReceiversOwn() throws {
        guard isRoot else { throw XCTSkip("needs root: SO_RCVBUFFORCE to shrink the buffer below net.core.rmem_default (uid \(geteuid()))") }
        // Receiver and sender share one CPU and the receiver has a tiny buffer: it must overflow.
        let receiver = try Child("/usr/bin/taskset", ["-c", "0", Binaries.recv, "127.0.0.1:0", "--streams", "1", "--gro", "off",
                                                      "--rcvbuf", "64K", "--interval", "0.2", "--idle-timeout", "2s"])
        let ready = try XCTUnwrap(receiver.waitForLine(containing: "listening on"))
        let sent = try Child("/usr/bin/taskset", ["-c", "0", Binaries.send, address(fromReadyLine: ready), "--duration", "1s",
                                                  "--gso", "off", "--json", "--interval", "0"]).wait()
        XCTAssertEqual(sent.status, 0, sent.stderr)
        let r = receiver.wait(timeout: 30)
        XCTAssertTrue(r.stdout.contains("SOCKET BUFFER FULL"), r.stdout)
        XCTAssertTrue(r.stdout.contains("this is not path loss"), r.stdout)
        XCTAssertTrue(r.stdout.contains("--rcvbuf"), r.stdout)
        XCTAssertTrue(r.stderr.contains("socket buffer full"), "the progress line says it as it happens: \(r.stderr)")
        let drops = r.stdout.split(separator: "\n").first { $0.contains("kernel-drops") }
        XCTAssertNotNil(drops)
        XCTAssertFalse(drops?.hasSuffix("kernel-drops 0") ?? true, r.stdout)
    }

    // MARK: junk

    /// A junk datagram that can never be valid: each kind fails one structural check.
    enum Junk: CaseIterable { case random, short, empty, truncated, oversized, badMagic, badVersion, badFlags, badHeaderLength }

    static func header(version: UInt8 = 1, flags: UInt8 = 0x01, headerLength: UInt16 = 48, payload: UInt32) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 48)
        h[0] = 0x5A; h[1] = 0x43; h[2] = 0x53; h[3] = 0x54
        h[4] = version; h[5] = flags
        h[6] = UInt8(headerLength >> 8); h[7] = UInt8(headerLength & 0xFF)
        let id: UInt64 = 0xBAD0_0000_0000_0001
        for i in 0..<8 { h[8 + i] = UInt8(truncatingIfNeeded: id >> (56 - 8 * UInt64(i))) }
        for i in 0..<4 { h[40 + i] = UInt8(truncatingIfNeeded: payload >> (24 - 8 * UInt32(i))) }
        return h
    }

    /// xorshift64*: fast, seeded, good enough for junk.
    struct Junkyard: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27
            return state &* 0x2545_F491_4F6C_DD1D
        }
    }

    static func junk(_ kind: Junk, _ rng: inout Junkyard) -> (bytes: [UInt8], reason: String) {
        func random(_ n: Int) -> [UInt8] {
            var b = [UInt8](repeating: 0, count: n)
            var i = 0
            while i < n {
                let w = rng.next()
                for j in 0..<8 where i + j < n { b[i + j] = UInt8(truncatingIfNeeded: w >> (8 * UInt64(j))) }
                i += 8
            }
            if !b.isEmpty && b[0] == 0x5A { b[0] = 0x00 } // never "Z...": cannot be our magic
            return b
        }
        switch kind {
        case .random: return (random(Int.random(in: 48...3000, using: &rng)), "bad_magic")
        case .short: return (random(Int.random(in: 1...47, using: &rng)), "too_short")
        case .empty: return ([], "too_short")
        case .truncated:
            // A well-formed header announcing 1000 payload bytes, cut short.
            let full = header(payload: 1000) + random(1000)
            return (Array(full[0..<Int.random(in: 48...1047, using: &rng)]), "length_mismatch")
        case .oversized: return (random(Int.random(in: 9000...65_507, using: &rng)), "bad_magic")
        case .badMagic:
            var h = header(payload: 100) + random(100)
            h[3] = 0x58 // "ZCSX"
            return (h, "bad_magic")
        case .badVersion:
            return (header(version: UInt8.random(in: 2...255, using: &rng), payload: 64) + random(64), "unsupported_version")
        case .badFlags:
            return (header(flags: [0x03, 0x00, 0x09, 0x85].randomElement(using: &rng)!, payload: 64) + random(64), "bad_flags")
        case .badHeaderLength:
            return (header(headerLength: [0, 40, 52, 4096].randomElement(using: &rng)!, payload: 64) + random(64), "bad_header_length")
        }
    }

    func testFloodOfJunkIsCountedExactlyAndHarmsNothing() throws {
        guard isRoot else { throw XCTSkip("needs root: exact counts rely on a forced 256 MB socket buffer (SO_RCVBUFFORCE) (uid \(geteuid()))") }
        for engine in ["recvmmsg", "uring"] {
            // The junk is made first, then sent in well under a second while a ~3 s stream runs.
            var rng = Junkyard(state: 0x9E37_79B9_7F4A_7C15 ^ UInt64(engine.count))
            let junk = (0..<4000).map { Self.junk(Junk.allCases[$0 % Junk.allCases.count], &rng) }
            let receiver = try RunningReceiver.start(["--streams", "1", "--engine", engine])
            let port = try XCTUnwrap(UInt16(receiver.address.split(separator: ":").last!))
            let sender = try Child(Binaries.send, [receiver.address, "--count", "60000", "--rate", "250M", "--json", "--interval", "0"])

            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            XCTAssertGreaterThanOrEqual(fd, 0)
            defer { close(fd) }
            var sndbuf: Int32 = 4 << 20
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, socklen_t(MemoryLayout<Int32>.size))
            var to = sockaddr_in()
            to.sin_family = sa_family_t(AF_INET)
            to.sin_port = port.bigEndian
            to.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            var sentByReason: [String: UInt64] = [:]
            var sent: UInt64 = 0
            usleep(200_000)
            let started = Date()
            for (i, (bytes, reason)) in junk.enumerated() {
                let n = bytes.withUnsafeBytes { b in
                    withUnsafePointer(to: &to) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                }
                if n == bytes.count { sent += 1; sentByReason[reason, default: 0] += 1 }
                if i % 100 == 99 { usleep(5_000) } // spread over part of the stream
            }
            XCTAssertLessThan(Date().timeIntervalSince(started), 2.0, "the junk went out while the stream ran")
            let s = sender.wait()
            XCTAssertEqual(s.status, 0, s.stderr)
            let result = receiver.child.wait(timeout: 30)
            XCTAssertEqual(result.status, 0, "\(engine): the receiver survives and the stream is clean: \(result.stderr)")
            let r = try XCTUnwrap(result.json, result.stderr)
            XCTAssertGreaterThan(sent, 3900)
            XCTAssertEqual(u64(r, "kernel_drops"), 0, engine)
            XCTAssertEqual(u64(r, "invalid"), sent, "\(engine): every junk datagram counted invalid, nothing else")
            let byReason = r["invalid_by_reason"] as? [String: Any]
            for (reason, count) in sentByReason { XCTAssertEqual(u64(byReason, reason), count, "\(engine) \(reason)") }
            XCTAssertEqual(streams(r).count, 1, "junk creates no stream")
            XCTAssertEqual(u64(r, "datagrams"), 60_000, engine)
            XCTAssertEqual(u64(r, "datagrams"), u64(s.json, "datagrams"))
            XCTAssertEqual(u64(r, "lost"), 0, engine)
            XCTAssertEqual(u64(r, "corrupt"), 0, engine)
            XCTAssertEqual(u64(r, "duplicates"), 0, engine)
            XCTAssertEqual(streams(r).first?["complete"] as? Bool, true)
        }
    }
}
