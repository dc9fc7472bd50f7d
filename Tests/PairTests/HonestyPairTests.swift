import Foundation
import TestSupport
import XCTest

/// Exact truth, round two (issue 23): each test runs the real binaries with the flags a user
/// types — defaults included (no `--interval 0`, no `--json` unless the user would) — and
/// asserts on what they print and how they exit.
final class HonestyPairTests: XCTestCase {
    /// The final JSON report in `stdout`: the whole text when it is one document, else its
    /// last line (the final object of an NDJSON stream of intervals).
    func finalJSON(_ stdout: String) -> [String: Any]? {
        if let whole = (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any] { return whole }
        guard let last = stdout.split(separator: "\n").last else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(last.utf8))) as? [String: Any]
    }

    /// Starts zc-recv with exactly `arguments` and waits for its "listening on" line.
    func startReceiver(_ arguments: [String], namespace: String? = nil) throws -> Child {
        let child = try Child(Binaries.recv, arguments, namespace: namespace)
        guard child.waitForLine(containing: "listening on") != nil else {
            let r = child.wait(timeout: 1)
            XCTFail("zc-recv did not start: status \(r.status), stderr: \(r.stderr)")
            throw XCTSkip("receiver failed to start")
        }
        return child
    }

    func temporaryDirectory() throws -> String {
        // Under the build directory, not /tmp: on a disk wherever the checkout is (some tests
        // evict a file's pages, which tmpfs keeps).
        let base = Binaries.directory.path + "/"
        let dir = base + "zc-honesty-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    // MARK: - 1. A server with default flags outlives its first stream

    func testServerWithDefaultFlagsOutlivesItsStreamsAndKeepsPrinting() throws {
        let port = freePort()
        // Exactly what a user types: progress every second (the default), text output.
        let server = try startReceiver(["127.0.0.1:\(port)", "--server"])
        for i in 0..<2 {
            let sent = try Child(Binaries.send, ["127.0.0.1:\(port)", "--duration", "1", "--rate", "500M"]).wait(timeout: 30)
            XCTAssertEqual(sent.status, 0, "stream \(i): \(sent.stderr)")
            XCTAssertTrue(sent.stdout.contains("verdict ok"), "stream \(i) got no REPORT: \(sent.stdout)")
            XCTAssertFalse(sent.stdout.contains("NO REPORT"), sent.stdout)
            // Long enough for the stream to be retired and at least one more progress line.
            Thread.sleep(forTimeInterval: 1.6)
            XCTAssertTrue(server.process.isRunning, "the server died after stream \(i): \(server.stderr.text)")
        }
        kill(server.process.processIdentifier, SIGINT)
        let r = server.wait(timeout: 20)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stderr.contains("runtime failure"), r.stderr)
        XCTAssertTrue(r.stderr.contains("after 2 stream(s)"), r.stderr)
        // Progress lines kept coming after the first stream was retired, never negative.
        let progress = r.stderr.split(separator: "\n").filter { $0.hasPrefix("[") }
        XCTAssertGreaterThanOrEqual(progress.count, 4, r.stderr)
        XCTAssertEqual(r.stdout.components(separatedBy: "verdict: ok").count - 1, 2, r.stdout)
    }

    // MARK: - 2. Holes or no END: the output is incomplete, everywhere

    func testOutputWithHolesIsIncompleteInTextJSONReportAndExitStatus() throws {
        let dir = try temporaryDirectory()
        let port = freePort()
        let receiver = try startReceiver(["127.0.0.1:\(port)", "--streams", "1", "--output", "\(dir)/rx.bin"])
        let sent = try Child(Binaries.send, ["127.0.0.1:\(port)", "--count", "20000", "--inject-skip", "4", "--json"]).wait(timeout: 60)
        let r = receiver.wait(timeout: 30)
        XCTAssertEqual(r.status, 3, "holes in the output must exit 3: \(r.stdout)\n\(r.stderr)")
        XCTAssertTrue(r.stdout.contains("OUTPUT INCOMPLETE"), r.stdout)
        XCTAssertTrue(r.stdout.contains("holes of zeros"), r.stdout)
        XCTAssertTrue(r.stdout.contains("verdict: FAIL"), r.stdout)
        XCTAssertFalse(r.stdout.contains("output: complete"), r.stdout)
        // The sender learns it from the REPORT (state bit 0x10, verdict fail).
        let json = try XCTUnwrap(finalJSON(sent.stdout), sent.stdout)
        let receiverJSON = try XCTUnwrap(json["receiver"] as? [String: Any], sent.stdout)
        XCTAssertEqual(receiverJSON["output_incomplete"] as? Bool, true)
        XCTAssertEqual(receiverJSON["ok"] as? Bool, false)
        XCTAssertEqual(u64(receiverJSON, "lost"), 4)
    }

    func testOutputJSONSaysIncompleteAndWhy() throws {
        let dir = try temporaryDirectory()
        let port = freePort()
        let receiver = try startReceiver(["127.0.0.1:\(port)", "--streams", "1", "--output", "\(dir)/rx.bin", "--json"])
        _ = try Child(Binaries.send, ["127.0.0.1:\(port)", "--count", "5000", "--inject-skip", "2"]).wait(timeout: 60)
        let r = receiver.wait(timeout: 30)
        XCTAssertEqual(r.status, 3, r.stderr)
        // --json: one document at the end (the NDJSON interval lines would precede it).
        let doc = try XCTUnwrap(finalJSON(r.stdout), r.stdout)
        XCTAssertEqual(doc["output_ok"] as? Bool, false, r.stdout)
        let streams = try XCTUnwrap(doc["streams"] as? [[String: Any]])
        let output = try XCTUnwrap(streams.first?["output"] as? [String: Any])
        XCTAssertEqual(output["complete"] as? Bool, false)
        XCTAssertEqual(output["ok"] as? Bool, false)
        XCTAssertEqual(output["arrived_bytes_written"] as? Bool, true)
        XCTAssertEqual(u64(output, "hole_count"), 2)
    }

    func testServerSaysIncompleteOutputInItsRecordAndMetrics() throws {
        let dir = try temporaryDirectory()
        let port = freePort()
        let server = try startReceiver(["127.0.0.1:\(port)", "--server", "--output", "\(dir)/f", "--json", "--metrics", "127.0.0.1:0"])
        guard let metrics = PrometheusPairTests.metricsAddress(server) else { return XCTFail("no metrics address: \(server.stderr.text)") }
        let sent = try Child(Binaries.send, ["127.0.0.1:\(port)", "--count", "5000", "--inject-skip", "2", "--max-loss", "50"]).wait(timeout: 60)
        XCTAssertEqual(sent.status, 1, "the REPORT says the output is incomplete: \(sent.stdout)\n\(sent.stderr)")
        XCTAssertTrue(sent.stdout.contains("OUTPUT INCOMPLETE"), sent.stdout)
        var scraped = ""
        for _ in 0..<50 {
            scraped = shell("curl -s --max-time 2 http://\(metrics)/metrics").output
            if scraped.contains("zcstream_receiver_outputs_total{state=\"incomplete\"} 1") { break }
            usleep(200_000)
        }
        XCTAssertTrue(scraped.contains("zcstream_receiver_outputs_total{state=\"incomplete\"} 1"), scraped)
        XCTAssertTrue(scraped.contains("zcstream_receiver_outputs_total{state=\"complete\"} 0"), scraped)
        kill(server.process.processIdentifier, SIGTERM)
        let r = server.wait(timeout: 20)
        let record = try XCTUnwrap(r.stdout.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }.first { $0["event"] as? String == "stream_finished" }, r.stdout)
        XCTAssertEqual(record["ok"] as? Bool, false)
        XCTAssertTrue((record["failures"] as? [String] ?? []).contains { $0.contains("holes of zeros") }, "\(record)")
        XCTAssertEqual((record["output"] as? [String: Any])?["complete"] as? Bool, false)
    }

    func testOutputOfAStreamWithoutEndIsIncomplete() throws {
        let dir = try temporaryDirectory()
        let port = freePort()
        let receiver = try startReceiver(["127.0.0.1:\(port)", "--streams", "1", "--output", "\(dir)/rx.bin", "--idle-timeout", "1s"])
        // Ten DATA datagrams from the Python reference, and no END.
        let tools = Repository.root.appendingPathComponent("Protocol/tools").path
        let script = """
        import socket, sys
        sys.path.insert(0, \(String(reflecting: tools)))
        import zcstream as z
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for q in range(10):
            s.sendto(z.encode(z.FLAG_DATA, 77, q, q * 100, 0, bytes(100)), ("127.0.0.1", \(port)))
        """
        let py = try Child("/usr/bin/python3", ["-c", script]).wait(timeout: 30)
        XCTAssertEqual(py.status, 0, py.stderr)
        let r = receiver.wait(timeout: 30)
        XCTAssertEqual(r.status, 3, "\(r.stdout)\n\(r.stderr)")
        XCTAssertTrue(r.stdout.contains("no END arrived"), r.stdout)
    }

    func testNothingReceivedIsNotOk() throws {
        let dir = try temporaryDirectory()
        let port = freePort()
        let receiver = try startReceiver(["127.0.0.1:\(port)", "--streams", "1", "--output", "\(dir)/rx.bin", "--timeout", "1s"])
        let r = receiver.wait(timeout: 30)
        XCTAssertNotEqual(r.status, 0, r.stdout)
        XCTAssertTrue(r.stdout.contains("verdict: FAIL"), r.stdout)
        XCTAssertTrue(r.stdout.contains("0 of the 1 stream(s)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("no stream arrived"), r.stdout)
    }

    // MARK: - 3. A bad --output is refused at start

    func testUnwritableOutputIsRefusedBeforeAnythingArrives() throws {
        let dir = try temporaryDirectory()
        var paths = ["/nonexistent/dir/f", dir, "/proc/version", "/sys/kernel/zc-output"]
        if FileManager.default.fileExists(atPath: "/proc/self/mounts"),
           (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8))?.contains(" /sys sysfs ro") == true {
            paths.append("/sys/zc-output")  // a read-only mount, where there is one
        }
        for path in paths {
            let started = Date()
            let r = try Child(Binaries.recv, ["127.0.0.1:\(freePort())", "--streams", "1", "--output", path]).wait(timeout: 10)
            XCTAssertEqual(r.status, 73, "\(path): \(r.stderr)")
            XCTAssertLessThan(Date().timeIntervalSince(started), 5, "\(path): found only at the end")
            let lines = r.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(path): one line: \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("zc-recv: --output "), r.stderr)
            XCTAssertFalse(r.stderr.contains("listening"), "\(path): started listening: \(r.stderr)")
        }
        // A server's PATH.<id> files go to PATH's directory: that is what is checked.
        let server = try Child(Binaries.recv, ["127.0.0.1:\(freePort())", "--server", "--output", "/nonexistent/dir/f"]).wait(timeout: 10)
        XCTAssertEqual(server.status, 73, server.stderr)
    }

    func testOutputDirectoryAUserCannotWriteIsRefused() throws {
        guard isRoot else { throw XCTSkip("needs root to run zc-recv as nobody (uid \(geteuid()))") }
        let dir = try temporaryDirectory()
        chmod(dir, 0o755)  // root's directory: nobody may enter, not create
        let r = try Child("/usr/sbin/runuser", ["-u", "nobody", "--", Binaries.recv, "127.0.0.1:\(freePort())", "--streams", "1",
                                                "--output", "\(dir)/f"]).wait(timeout: 10)
        if r.stderr.contains("Permission denied") && r.stderr.contains("exec") {
            throw XCTSkip("nobody cannot execute the build's binaries here: \(r.stderr)")
        }
        XCTAssertEqual(r.status, 73, r.stderr)
        XCTAssertTrue(r.stderr.contains("EACCES") || r.stderr.contains("permission"), r.stderr)
    }

    // MARK: - 4. Failed sends are not sent, and fail the run

    func testSendsToAClosedPortFailTheRun() throws {
        let port = freePort()  // nobody listens: ICMP port unreachable
        let r = try Child(Binaries.send, ["127.0.0.1:\(port)", "--duration", "1", "--json"]).wait(timeout: 30)
        XCTAssertEqual(r.status, 1, "\(r.stdout)\n\(r.stderr)")
        XCTAssertTrue(r.stderr.contains("were not sent"), r.stderr)
        let json = try XCTUnwrap(finalJSON(r.stdout), r.stdout)
        let failed = try XCTUnwrap(u64(json, "datagrams_failed"))
        XCTAssertGreaterThan(failed, 0)
        // What was accepted and what failed add up to what the stream numbered.
        XCTAssertEqual(try XCTUnwrap(u64(json, "datagrams")) + failed, try XCTUnwrap(u64(json, "sequences")))
        XCTAssertNotNil(json["receiver_missing"] as? String)
        let text = try Child(Binaries.send, ["127.0.0.1:\(port)", "--duration", "1"]).wait(timeout: 30)
        XCTAssertEqual(text.status, 1)
        XCTAssertTrue(text.stdout.contains("NOT sent"), text.stdout)
        XCTAssertTrue(text.stdout.contains("nobody listens"), text.stdout)
    }

    // MARK: - 7. A REPORT that does not cover the stream is loss

    func testReportWithoutTheEndFailsMaxLossZero() throws {
        let port = freePort()
        // The receiver gives up after 1 s of a 3 s stream and reports what it saw: no END.
        let receiver = try startReceiver(["127.0.0.1:\(port)", "--streams", "1", "--timeout", "1s"])
        let sent = try Child(Binaries.send, ["127.0.0.1:\(port)", "--duration", "3", "--rate", "200M", "--max-loss", "0", "--json"]).wait(timeout: 60)
        _ = receiver.wait(timeout: 30)
        XCTAssertEqual(sent.status, 1, "a REPORT without END must not pass --max-loss 0: \(sent.stdout)\n\(sent.stderr)")
        let json = try XCTUnwrap(finalJSON(sent.stdout), sent.stdout)
        let coverage = try XCTUnwrap(json["receiver_coverage"] as? [String: Any], sent.stdout)
        XCTAssertEqual(coverage["covers_stream"] as? Bool, false)
        XCTAssertGreaterThan(try XCTUnwrap(u64(coverage, "lost")), 0)
        XCTAssertTrue(sent.stderr.contains("saw no END"), sent.stderr)
    }

    // MARK: - 8 and 11. A stop request decides the exit status

    func testSignalWhileWaitingForTheReportExits130() throws {
        // A socket that takes the stream and never answers (no ICMP, no REPORT).
        let sink = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(sink) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sink, $0, len) } }
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sink, $0, &len) } }
        let port = Int(UInt16(bigEndian: a.sin_port))
        for maxLoss in [["--max-loss", "0"], []] {
            let child = try Child(Binaries.send, ["127.0.0.1:\(port)", "--count", "100", "--report-timeout", "10s"] + maxLoss)
            Thread.sleep(forTimeInterval: 1.0)
            kill(child.process.processIdentifier, SIGINT)
            let started = Date()
            let r = child.wait(timeout: 20)
            XCTAssertEqual(r.status, 130, "\(maxLoss): \(r.stdout)\n\(r.stderr)")
            XCTAssertLessThan(Date().timeIntervalSince(started), 3, "the wait did not end at the signal")
            XCTAssertTrue(r.stdout.contains("stopped by a signal"), r.stdout)
        }
    }

    func testCtrlCOnAPipeExits130() throws {
        let port = freePort()
        let receiver = try startReceiver(["127.0.0.1:\(port)", "--streams", "1"])
        defer { kill(receiver.process.processIdentifier, SIGTERM); _ = receiver.wait(timeout: 10) }
        // The shell's Ctrl-C reaches both: zc-send gets SIGINT, then the writer dies (EOF).
        let script = """
        import signal, subprocess, sys, time
        writer = subprocess.Popen(["sh", "-c", "echo x; exec sleep 30"], stdout=subprocess.PIPE)
        sender = subprocess.Popen([\(String(reflecting: Binaries.send)), "127.0.0.1:\(port)", "--source", "-"], stdin=writer.stdout,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        writer.stdout.close()
        time.sleep(1.0)
        sender.send_signal(signal.SIGINT)
        writer.kill()
        print(sender.wait(timeout=20))
        """
        let r = try Child("/usr/bin/python3", ["-c", script]).wait(timeout: 40)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "130", r.stderr)
    }

    // MARK: - 5. Defaults that fit: every END lost, still a verdict

    func testEveryEndLostStillGivesAVerdictWithDefaultTimeouts() throws {
        let net = try NamespacePair(tag: "endl", subnet: 90)
        // Drop every END (flag bit 0x02 in byte 5 of the UDP payload) on the receiver's input.
        net.run(net.b, "nft add table inet zc")
        net.run(net.b, "nft add chain inet zc input '{ type filter hook input priority 0; }'")
        net.run(net.b, "nft add rule inet zc input udp dport 9000 '@th,104,8 & 0x02 == 0x02' drop")
        let server = try startReceiver(["\(net.addressB):9000", "--server"], namespace: net.b)
        let sent = try Child(Binaries.send, ["\(net.addressB):9000", "--count", "2000", "--rate", "100M", "--max-loss", "0"], namespace: net.a).wait(timeout: 60)
        kill(server.process.processIdentifier, SIGTERM)
        let s = server.wait(timeout: 20)
        XCTAssertTrue(s.stdout.contains("finished (idle)"), s.stdout)
        XCTAssertFalse(sent.stdout.contains("NO REPORT"), "the defaults must let the idle REPORT arrive: \(sent.stdout)")
        XCTAssertTrue(sent.stdout.contains("no END seen"), sent.stdout)
        // All 2000 arrived, the END did not: no loss, but the REPORT does not cover the stream.
        XCTAssertTrue(sent.stdout.contains("2000/2000+? unique"), sent.stdout)
    }

    // MARK: - 9. A server gives freed streams' memory back

    /// VmRSS of `pid` in KiB.
    func residentKiB(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
    }

    func testServerMemoryStaysFlatOverRoundsOfShortStreams() throws {
        // AddressSanitizer's allocator keeps freed memory in its quarantine and ignores
        // malloc's mmap threshold and trim: RSS says nothing about zc-recv there.
        if Binaries.directory.path.contains(".build-asan") || Binaries.directory.path.contains(".build-tsan") {
            print("HonestyPairTests: skipped the RSS check: the binaries are sanitizer builds (\(Binaries.directory.path))")
            throw XCTSkip("RSS is the sanitizer allocator's, not zc-recv's, in \(Binaries.directory.path)")
        }
        let port = freePort()
        let server = try startReceiver(["127.0.0.1:\(port)", "--server", "--idle-timeout", "1s"])
        let tools = Repository.root.appendingPathComponent("Protocol/tools").path
        var after: [Int] = []
        let start = residentKiB(server.process.processIdentifier)
        for round in 0..<4 {
            // 1000 streams of one header-only DATA datagram each, new ids every round.
            let script = """
            import socket, sys
            sys.path.insert(0, \(String(reflecting: tools)))
            import zcstream as z
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for i in range(1000):
                s.sendto(z.encode(z.FLAG_DATA, \(round) * 100000 + i + 1, 0, 0, 0, b""), ("127.0.0.1", \(port)))
            """
            let py = try Child("/usr/bin/python3", ["-c", script]).wait(timeout: 30)
            XCTAssertEqual(py.status, 0, py.stderr)
            // Idle 1 s, retired within a few ms, memory handed back within a second.
            Thread.sleep(forTimeInterval: 3.0)
            after.append(residentKiB(server.process.processIdentifier))
        }
        kill(server.process.processIdentifier, SIGTERM)
        let r = server.wait(timeout: 20)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("after 4000 stream(s)"), r.stderr)
        // 1000 streams hold ~170 MB of latency histograms while open: freed, it must go back.
        for (i, kib) in after.enumerated() {
            XCTAssertLessThan(kib - start, 64 * 1024, "round \(i): RSS \(kib) KiB, \(start) KiB at start (all rounds: \(after))")
        }
        XCTAssertLessThan(after[3] - after[0], 16 * 1024, "RSS grows round after round: \(after) KiB")
    }

    // MARK: - Issue 30: a file read once per slot, from the page cache or the ring

    /// `--source FILE` reads a slot's payloads with one vectored read: preadv2(RWF_NOWAIT)
    /// on the sender's thread when the page cache has them, one io_uring READV when it does
    /// not. Both paths, in one stream (the file's pages evicted first, so the ring reads some
    /// and the page cache the rest): the output is the file byte for byte, in order.
    func testFileSourceThroughPageCacheAndRingArrivesByteForByteInOrder() throws {
        let dir = try temporaryDirectory()
        let source = "\(dir)/source.bin"
        var bytes = [UInt8](repeating: 0, count: 48 << 20)
        for i in stride(from: 0, to: bytes.count, by: 8) { withUnsafeBytes(of: UInt64(i) &* 0x9E37_79B9_7F4A_7C15) { bytes.replaceSubrange(i..<i + 8, with: $0) } }
        bytes.removeLast(123)  // a short last datagram
        FileManager.default.createFile(atPath: source, contents: Data(bytes))
        for evict in [true, false] {
            if evict {
                // Out of the page cache (on a disk; on tmpfs this keeps the pages).
                let fd = open(source, O_RDONLY)
                fsync(fd); _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); close(fd)
            }
            let port = freePort()
            let out = "\(dir)/out-\(evict).bin"
            let receiver = try startReceiver(["127.0.0.1:\(port)", "--streams", "1", "--output", out])
            let sent = try Child(Binaries.send, ["127.0.0.1:\(port)", "--source", source, "--rate", "2G", "--max-loss", "0"]).wait(timeout: 60)
            let r = receiver.wait(timeout: 30)
            XCTAssertEqual(sent.status, 0, "evict \(evict): \(sent.stdout)\n\(sent.stderr)")
            XCTAssertEqual(r.status, 0, "evict \(evict): \(r.stdout)")
            XCTAssertTrue(r.stdout.contains("reordered 0"), "evict \(evict): datagrams left in order: \(r.stdout)")
            XCTAssertTrue(FileManager.default.contentsEqual(atPath: source, andPath: out), "evict \(evict): output differs")
        }
    }

    // MARK: - A wildcard listener answers from the address it was sent to (issue 24, SPEC §12)

    func testWildcardServerReportsFromTheAddressEachStreamWasSentTo() throws {
        let net = try NamespacePair(tag: "pki", subnet: 92)
        net.addIPv6()
        // A second address of each family on the receiver: the route picks one source for
        // every answer, so a stream sent to the other gets its REPORT from the wrong one.
        net.run(net.b, "ip addr add 198.18.92.3/24 dev \(net.interfaceB)")
        net.run(net.b, "ip addr add 2001:2:92::3/64 dev \(net.interfaceB) nodad")
        let v4 = try startReceiver(["9000", "--server"], namespace: net.b)
        let v6 = try startReceiver(["[::]:9001", "--server"], namespace: net.b)
        for destination in ["198.18.92.2:9000", "198.18.92.3:9000", "[2001:2:92::2]:9001", "[2001:2:92::3]:9001"] {
            let bind = destination.hasPrefix("[") ? "[\(net.addressA6)]:0" : "\(net.addressA):0"
            let sent = try Child(Binaries.send, [destination, "--bind", bind, "--count", "2000", "--rate", "100M", "--max-loss", "0"],
                                 namespace: net.a).wait(timeout: 60)
            XCTAssertEqual(sent.status, 0, "\(destination): \(sent.stdout)\n\(sent.stderr)")
            XCTAssertTrue(sent.stdout.contains("2000/2000 unique"), "\(destination): \(sent.stdout)")
        }
        for server in [v4, v6] {
            kill(server.process.processIdentifier, SIGTERM)
            let r = server.wait(timeout: 20)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout.components(separatedBy: "REPORT sent").count - 1, 2, r.stdout)
        }
    }

    // MARK: - Also: a user's default RLIMIT_MEMLOCK

    func testDefaultPoolFitsAUsersLockedMemoryLimit() throws {
        guard isRoot else { throw XCTSkip("needs root to run zc-send as nobody with a set RLIMIT_MEMLOCK (uid \(geteuid()))") }
        let port = freePort()
        let receiver = try startReceiver(["127.0.0.1:\(port)", "--streams", "1"])
        // The limit a login shell gives a user (8 MiB), as nobody (no CAP_IPC_LOCK).
        let asUser = ["/usr/bin/prlimit", "--memlock=8388608:8388608", "/usr/sbin/runuser", "-u", "nobody", "--", Binaries.send]
        let r = try Child(asUser[0], Array(asUser.dropFirst()) + ["127.0.0.1:\(port)", "--count", "20000", "--json"]).wait(timeout: 60)
        _ = receiver.wait(timeout: 20)
        if r.stderr.contains("Permission denied") && r.status == 126 { throw XCTSkip("nobody cannot execute the build's binaries here") }
        XCTAssertEqual(r.status, 0, r.stderr)
        let slots = try XCTUnwrap(u64(finalJSON(r.stdout), "pool_slots"), r.stdout)
        XCTAssertLessThan(slots, 256)
        XCTAssertGreaterThanOrEqual(slots, 8)
        // An explicit --pool that does not fit says what to do.
        let big = try Child(asUser[0], Array(asUser.dropFirst()) + ["127.0.0.1:\(freePort())", "--count", "10", "--pool", "256"]).wait(timeout: 30)
        XCTAssertEqual(big.status, 2, big.stderr)
        XCTAssertTrue(big.stderr.contains("ulimit -l"), big.stderr)
        XCTAssertTrue(big.stderr.contains("--pool"), big.stderr)
    }
}
