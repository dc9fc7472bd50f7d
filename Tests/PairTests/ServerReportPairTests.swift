import Foundation
import TestSupport
import XCTest

/// Two hosts, one command (issue 13): `zc-recv --server` in one namespace, `zc-send` in the
/// other, the receiver's verdict back at the sender as a REPORT, and only allowed sources.
final class ServerReportPairTests: XCTestCase {
    /// A server in namespace b of `net`, listening on its address, port 9000.
    func startServer(_ net: NamespacePair, _ extra: [String] = []) throws -> RunningReceiver {
        try RunningReceiver.start(listen: "\(net.addressB):9000", ["--server"] + extra, namespace: net.b)
    }

    /// Stops a server with SIGTERM (by its pid) and returns its result: NDJSON on stdout.
    func stop(_ server: RunningReceiver) -> Child.Result {
        kill(server.child.process.processIdentifier, SIGTERM)
        return server.child.wait(timeout: 20)
    }

    /// Runs `body` with the Python reference imported (`z`, plus json, socket, sys, time),
    /// in `namespace` when given.
    func runPythonReference(_ body: String, namespace: String? = nil) throws -> Child.Result {
        let tools = Repository.root.appendingPathComponent("Protocol/tools").path
        let script = "import json, socket, sys, time\nsys.path.insert(0, \(String(reflecting: tools)))\nimport zcstream as z\n" + body
        return try Child("/usr/bin/python3", ["-c", script], namespace: namespace).wait(timeout: 30)
    }

    /// One JSON object per line.
    func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    func testServerTakesSequentialAndConcurrentStreamsAndStaysUp() throws {
        let net = try NamespacePair(tag: "srv", subnet: 80)
        let server = try startServer(net)
        var ids: Set<UInt64> = []
        for i in 0..<3 {
            let sent = try runSender(["\(net.addressB):9000", "--count", "3000", "--rate", "500M"], namespace: net.a)
            XCTAssertEqual(sent.status, 0, "sequential \(i): \(sent.stderr)")
            let receiver = try XCTUnwrap(sent.json?["receiver"] as? [String: Any], "sequential \(i): no receiver in \(sent.stdout)")
            XCTAssertEqual(u64(receiver, "unique"), 3000)
            XCTAssertEqual(u64(receiver, "lost"), 0)
            XCTAssertEqual(receiver["complete"] as? Bool, true)
            XCTAssertEqual(u64(receiver, "stream_id"), u64(sent.json, "stream_id"))
            ids.insert(try XCTUnwrap(u64(sent.json, "stream_id")))
            XCTAssertTrue(server.child.process.isRunning, "the server ended after stream \(i)")
        }
        // Two at once, from two processes (two sources).
        let a = try Child(Binaries.send, ["\(net.addressB):9000", "--count", "20000", "--rate", "300M", "--json", "--interval", "0"], namespace: net.a)
        let b = try Child(Binaries.send, ["\(net.addressB):9000", "--count", "20000", "--rate", "300M", "--json", "--interval", "0"], namespace: net.a)
        for (name, child) in [("a", a), ("b", b)] {
            let r = child.wait(timeout: 60)
            XCTAssertEqual(r.status, 0, "concurrent \(name): \(r.stderr)")
            let receiver = try XCTUnwrap(r.json?["receiver"] as? [String: Any], "concurrent \(name): \(r.stdout)")
            XCTAssertEqual(u64(receiver, "unique"), 20000, name)
            XCTAssertEqual(u64(receiver, "lost"), 0, name)
            ids.insert(try XCTUnwrap(u64(r.json, "stream_id")))
        }
        XCTAssertTrue(server.child.process.isRunning, "the server ended after the concurrent streams")
        let result = stop(server)
        XCTAssertEqual(result.status, 0, result.stderr)
        let finished = jsonLines(result.stdout)
        XCTAssertEqual(finished.count, 5, result.stdout)
        XCTAssertEqual(Set(finished.compactMap { u64($0, "stream_id") }), ids)
        for f in finished {
            XCTAssertEqual(f["event"] as? String, "stream_finished")
            XCTAssertEqual(f["finished"] as? String, "end")
            XCTAssertNotNil(f["timestamp"] as? String)
            XCTAssertEqual(u64(f, "lost"), 0)
            XCTAssertEqual(f["complete"] as? Bool, true)
            XCTAssertTrue((f["report"] as? String)?.hasPrefix("sent") == true, "\(f)")
        }
        XCTAssertTrue(result.stderr.contains("after 5 stream(s)"), result.stderr)
        XCTAssertTrue(result.stderr.contains("retired-stream datagrams 0") || result.stderr.contains("retired-stream datagrams"), result.stderr)
    }

    func testInjectedLossReachesTheSendersJSONAndExitCode() throws {
        let net = try NamespacePair(tag: "rpl", subnet: 81)
        let server = try startServer(net)
        defer { _ = stop(server) }
        // The sender skips one sequence number per 1000 (at 303, 1303, ...).
        let strict = try runSender(["\(net.addressB):9000", "--count", "10000", "--rate", "1G", "--inject-skip", "7", "--max-loss", "0"], namespace: net.a)
        XCTAssertEqual(strict.status, 1, strict.stderr)
        let receiver = try XCTUnwrap(strict.json?["receiver"] as? [String: Any], strict.stdout)
        XCTAssertEqual(u64(receiver, "lost"), 7)
        XCTAssertEqual(u64(receiver, "unique"), 9993)
        XCTAssertEqual(u64(receiver, "expected_datagrams"), 10000)
        XCTAssertEqual(u64(receiver, "lost_range_count"), 7)
        XCTAssertEqual((receiver["lost_ranges"] as? [[Any]])?.first?.compactMap { ($0 as? NSNumber)?.intValue }, [303, 303])
        XCTAssertEqual(u64(receiver, "gaps"), u64(receiver, "lost_range_count"))
        XCTAssertEqual((receiver["lost_ranges"] as? [[Any]])?.count, Int(u64(receiver, "lost_range_count") ?? 99))
        XCTAssertTrue(strict.stderr.contains("--max-loss"), strict.stderr)

        let lenient = try runSender(["\(net.addressB):9000", "--count", "10000", "--rate", "1G", "--inject-skip", "7", "--max-loss", "0.1"], namespace: net.a)
        XCTAssertEqual(lenient.status, 0, lenient.stderr)
        XCTAssertEqual(u64(lenient.json?["receiver"] as? [String: Any], "lost"), 7)

        let corrupt = try runSender(["\(net.addressB):9000", "--count", "5000", "--rate", "1G", "--inject-corrupt", "3", "--max-corrupt", "2"], namespace: net.a)
        XCTAssertEqual(corrupt.status, 1, corrupt.stderr)
        XCTAssertEqual(u64(corrupt.json?["receiver"] as? [String: Any], "corrupt"), 3)

        // Nobody on port 9001: no REPORT, said plainly; the kernel refused sends after the
        // ICMP port unreachable, and datagrams that were never sent fail the run (exit 1),
        // with limits or without.
        // (Whether a send fails depends on the ICMP arriving before the next send: with none
        // failed, the missing REPORT alone decides: exit 4 with a limit, 0 without.)
        let nobody = try runSender(["\(net.addressB):9001", "--count", "100", "--max-loss", "1", "--report-timeout", "1s"], namespace: net.a)
        let nobodyFailed = u64(nobody.json, "datagrams_failed") ?? 0
        XCTAssertEqual(nobody.status, nobodyFailed > 0 ? 1 : 4, "\(nobodyFailed) failed: \(nobody.stderr)")
        XCTAssertTrue(nobody.json?["receiver"] is NSNull, nobody.stdout)
        XCTAssertNotNil(nobody.json?["receiver_missing"] as? String)
        let relaxed = try runSender(["\(net.addressB):9001", "--count", "100", "--report-timeout", "1s"], namespace: net.a)
        let relaxedFailed = u64(relaxed.json, "datagrams_failed") ?? 0
        XCTAssertEqual(relaxed.status, relaxedFailed > 0 ? 1 : 0, "\(relaxedFailed) failed: \(relaxed.stderr)")
        if relaxedFailed > 0 { XCTAssertTrue(relaxed.stderr.contains("were not sent"), relaxed.stderr) }
    }

    func testSourceOutsideAllowGetsNothingBack() throws {
        let net = try NamespacePair(tag: "alw", subnet: 82)
        // Only a host that is not the sender; then the sender's /24.
        let server = try startServer(net, ["--allow", "198.18.82.99", "--allow", "2001:db8::/32"])
        let refused = try runSender(["\(net.addressB):9000", "--count", "500", "--max-loss", "0", "--report-timeout", "1500ms"], namespace: net.a)
        XCTAssertEqual(refused.status, 4, refused.stderr)
        XCTAssertTrue(refused.json?["receiver"] is NSNull, refused.stdout)
        let result = stop(server)
        XCTAssertEqual(jsonLines(result.stdout).count, 0, "a refused source opened a stream: \(result.stdout)")
        XCTAssertTrue(result.stderr.contains("not allowed 503"), result.stderr) // 500 DATA + 3 END

        let open = try startServer(net, ["--allow", "198.18.82.0/24"])
        let allowed = try runSender(["\(net.addressB):9000", "--count", "500", "--max-loss", "0"], namespace: net.a)
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        XCTAssertEqual(u64(allowed.json?["receiver"] as? [String: Any], "unique"), 500)
        let done = stop(open)
        XCTAssertEqual(jsonLines(done.stdout).count, 1, done.stdout)
        XCTAssertTrue(done.stderr.contains("not allowed 0"), done.stderr)
    }

    /// A Python sender (the reference implementation) sends a small stream, then waits for
    /// anything that comes back: the REPORT can never be bigger than what the stream sent.
    func testReportIsNeverBiggerThanWhatAskedForIt() throws {
        let net = try NamespacePair(tag: "amp", subnet: 83)
        let server = try startServer(net)
        defer { _ = stop(server) }
        // Streams of header-only DATA datagrams with every other sequence number missing,
        // so the REPORT would like to list many ranges.
        let script = """
        out = []
        for count, sid in ((1, 0x1111), (4, 0x2222), (12, 0x3333), (40, 0x4444)):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect((\(String(reflecting: net.addressB)), 9000))
            sent = 0
            for i in range(count):
                d = z.encode(z.FLAG_DATA, sid, 2 * i, 0, time.time_ns(), b"")
                s.send(d); sent += len(d)
            e = z.encode(z.FLAG_END, sid, 2 * count, 0, time.time_ns(), z.end_payload(2 * count, 0))
            s.send(e); sent += len(e)
            s.settimeout(2.0)
            try:
                reply = s.recv(4096)
                out.append({"sent": sent, "reply": len(reply), "decoded": z.decode_report(reply)[0]})
            except socket.timeout:
                out.append({"sent": sent, "reply": None})
        print(json.dumps(out))
        """
        let r = try runPythonReference(script, namespace: net.a)
        XCTAssertEqual(r.status, 0, r.stderr)
        let results = try XCTUnwrap((try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [[String: Any]], r.stdout)
        XCTAssertEqual(results.count, 4)
        for (i, entry) in results.enumerated() {
            let sent = try XCTUnwrap(entry["sent"] as? Int)
            if let reply = entry["reply"] as? Int {
                XCTAssertLessThanOrEqual(reply, sent, "stream \(i): a \(reply)-byte REPORT for \(sent) bytes sent")
                XCTAssertEqual(entry["decoded"] as? String, "valid")
            } else {
                // Too small a stream for even a REPORT without ranges (256 bytes): nothing.
                XCTAssertLessThan(sent, 256, "stream \(i) sent \(sent) bytes and got no REPORT")
            }
        }
        // 1 and 4 datagrams (112, 256 bytes): the first gets nothing, the second the bare REPORT;
        // 40 datagrams (1984 bytes) would fill every listed range: 768 bytes.
        XCTAssertTrue(results[0]["reply"] is NSNull || results[0]["reply"] == nil)
        XCTAssertEqual(results[1]["reply"] as? Int, 256)
        XCTAssertEqual(results[3]["reply"] as? Int, 768)
    }
}

extension ServerReportPairTests {
    /// --output in server mode: each stream its own FILE.<id>, finalized as it finishes.
    func testServerWritesOneFilePerStream() throws {
        let net = try NamespacePair(tag: "sout", subnet: 84)
        let dir = NSTemporaryDirectory() + "zc-server-out-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try startServer(net, ["--output", dir + "/stream"])
        var ids: [UInt64] = []
        for count in [300, 700] {
            let sent = try runSender(["\(net.addressB):9000", "--count", String(count), "--rate", "500M"], namespace: net.a)
            XCTAssertEqual(sent.status, 0, sent.stderr)
            ids.append(try XCTUnwrap(u64(sent.json, "stream_id")))
        }
        // The same stream id again (a re-run with --stream-id): a new file, nothing overwritten.
        let again = try runSender(["\(net.addressB):9000", "--count", "10", "--stream-id", String(ids[0])], namespace: net.a)
        XCTAssertEqual(again.status, 0, again.stderr)
        let result = stop(server)
        XCTAssertEqual(result.status, 0, result.stderr)
        let records = jsonLines(result.stdout)
        XCTAssertEqual(records.count, 3, result.stdout)
        for (id, count) in zip(ids, [300, 700]) {
            let path = dir + "/stream." + String(format: "%016llx", id)
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue
            XCTAssertEqual(size, count * 1424, path)
            let record = records.first { u64($0, "stream_id") == id }
            let output = record?["output"] as? [String: Any]
            XCTAssertEqual(output?["path"] as? String, path)
            XCTAssertEqual(output?["ok"] as? Bool, true)
            XCTAssertEqual(output?["synced"] as? Bool, true)
            XCTAssertEqual(u64(output, "hole_count"), 0)
        }
        // The content is the pattern of its stream (checked by the Python reference).
        let first = dir + "/stream." + String(format: "%016llx", ids[0])
        let check = try runPythonReference("d = open(\(String(reflecting: first)), \"rb\").read(); print(d == z.pattern(\(ids[0]), 0, len(d)))")
        XCTAssertEqual(check.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "True", check.stderr)
        let second = dir + "/stream." + String(format: "%016llx", ids[0]) + ".2"
        XCTAssertEqual((try? FileManager.default.attributesOfItem(atPath: second)[.size] as? NSNumber)?.intValue, 10 * 1424)
    }
}

extension ServerReportPairTests {
    /// --json-stream --interval N: NDJSON from both tools, each line with a wall-clock timestamp, the
    /// final report last; and the outages of a paced stream with skipped numbers.
    func testStreamingJSONAndOutages() throws {
        let net = try NamespacePair(tag: "ndj", subnet: 86)
        let receiver = try Child(Binaries.recv, ["\(net.addressB):9000", "--streams", "1", "--json-stream", "--interval", "300ms"], namespace: net.b)
        XCTAssertNotNil(receiver.waitForLine(containing: "listening on"))
        // 10 kpps for 1.2 s, and a 200 ms outage on the path from 0.4 s: the receiver's
        // address leaves its interface (arriving datagrams are not local: dropped) and
        // comes back. ~2000 datagrams lost, 200 ms of send time.
        let (ns, interface, address) = (net.b, net.interfaceB, net.addressB)
        let outage = Thread {
            usleep(400_000)
            shell("ip -n \(ns) addr del \(address)/24 dev \(interface)")
            usleep(200_000)
            shell("ip -n \(ns) addr add \(address)/24 dev \(interface)")
        }
        outage.start()
        let sender = try Child(Binaries.send, ["\(net.addressB):9000", "--rate", "10kpps", "--duration", "1200ms",
                                               "--json-stream", "--interval", "300ms"], namespace: net.a).wait(timeout: 30)
        let received = receiver.wait(timeout: 30)
        XCTAssertEqual(sender.status, 0, sender.stderr)
        XCTAssertEqual(received.status, 0, received.stderr)
        for (name, text) in [("zc-send", sender.stdout), ("zc-recv", received.stdout)] {
            XCTAssertFalse(text.contains("NaN") || text.contains("Infinity") || text.contains("inf"), "\(name): \(text)")
            let objects = jsonLines(text)
            XCTAssertEqual(objects.count, text.split(separator: "\n").count, "\(name): a line that is not one JSON object")
            XCTAssertGreaterThanOrEqual(objects.count, 3, "\(name): \(text)")
            XCTAssertEqual(objects.last?["event"] as? String, "final", name)
            XCTAssertTrue(objects.dropLast().allSatisfy { $0["event"] as? String == "interval" }, name)
            XCTAssertTrue(objects.allSatisfy { ($0["timestamp"] as? String)?.hasSuffix("Z") == true }, name)
        }
        let final = try XCTUnwrap(jsonLines(received.stdout).last)
        let stream = try XCTUnwrap((final["streams"] as? [[String: Any]])?.first)
        XCTAssertEqual(u64(stream, "gaps"), 1, "\(stream)")
        XCTAssertGreaterThan(u64(stream, "longest_gap_datagrams") ?? 0, 1000)
        let gapMs = try XCTUnwrap(stream["longest_gap_ms"] as? Double)
        XCTAssertGreaterThan(gapMs, 150, "a 200 ms outage")
        XCTAssertLessThan(gapMs, 400)
        let span = try XCTUnwrap(stream["first_to_last_ms"] as? Double)
        XCTAssertGreaterThan(span, 1000)
        XCTAssertLessThan(span, 1400)
        // The sender's final line has the receiver's REPORT with the same outages.
        let receiverJSON = try XCTUnwrap(jsonLines(sender.stdout).last?["receiver"] as? [String: Any])
        XCTAssertEqual(u64(receiverJSON, "gaps"), 1)
        XCTAssertEqual(receiverJSON["longest_gap_ms"] as? Double, gapMs)
    }
}

extension ServerReportPairTests {
    /// No reflection: only a stream of valid datagrams is answered, and one host gets at
    /// most --report-rate REPORTs a second (after a burst of twice that).
    func testOnlyValidStreamsAreAnsweredAndReportsAreRateLimited() throws {
        let net = try NamespacePair(tag: "rfl", subnet: 87)
        let server = try startServer(net, ["--report-rate", "1"])
        let script = """
        dst = (\(String(reflecting: net.addressB)), 9000)

        def stream(sid, corrupt=False, garbage=False):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect(dst)
            for q in range(8):
                d = z.encode(z.FLAG_DATA, sid, q, 0, time.time_ns(), bytes(100))
                if corrupt:
                    d = d[:60] + bytes([d[60] ^ 0xFF]) + d[61:]
                if garbage:
                    d = b"GARBAGE!" * 20
                s.send(d)
            e = z.encode(z.FLAG_END, sid, 8, 0, time.time_ns(), z.end_payload(8, 0))
            if corrupt:
                e = e[:60] + bytes([e[60] ^ 0xFF]) + e[61:]
            if garbage:
                e = b"GARBAGE!" * 8
            for _ in range(3):
                s.send(e)
            return s

        def replies(s, wait):
            s.settimeout(wait)
            got = []
            try:
                while True:
                    got.append(len(s.recv(4096)))
            except socket.timeout:
                return got

        out = {}
        # Corrupt (bad checksums) and invalid (not zcstream): no stream, so no REPORT.
        out["corrupt"] = replies(stream(0xC0, corrupt=True), 1.5)
        out["garbage"] = replies(stream(0xBAD, garbage=True), 0.5)
        # Six valid streams at once from one host: a burst of 2, then 1 a second.
        socks = [stream(0x100 + i) for i in range(6)]
        time.sleep(1.0)
        out["burst"] = sum(len(replies(s, 0.05)) for s in socks)
        print(json.dumps(out))
        """
        let r = try runPythonReference(script, namespace: net.a)
        XCTAssertEqual(r.status, 0, r.stderr)
        let result = try XCTUnwrap((try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any], r.stdout)
        XCTAssertEqual((result["corrupt"] as? [Int])?.count, 0, "a corrupt stream was answered")
        XCTAssertEqual((result["garbage"] as? [Int])?.count, 0, "garbage was answered")
        XCTAssertEqual(result["burst"] as? Int, 2, "six streams within a second from one host at --report-rate 1: the burst of 2")
        let done = stop(server)
        let records = jsonLines(done.stdout)
        XCTAssertEqual(records.count, 6, "only the valid streams exist: \(done.stdout)")
        XCTAssertEqual(records.filter { ($0["report"] as? String)?.hasPrefix("sent") == true }.count, 2)
        XCTAssertEqual(records.filter { ($0["report"] as? String)?.contains("rate limit") == true }.count, 4)
    }
}

extension ServerReportPairTests {
    /// A server frees finished streams, yet its Prometheus counters never go down: retired
    /// streams stay in the totals, named series keep their final counts, the fold is the rest.
    func testServerMetricsStayMonotonicAsStreamsAreFreed() throws {
        let net = try NamespacePair(tag: "smx", subnet: 88)
        let server = try startServer(net, ["--metrics", "127.0.0.1:9101"])
        defer { _ = stop(server) }
        func scrape() -> [String: Double] {
            let r = shell("ip netns exec \(net.b) curl -s http://127.0.0.1:9101/metrics")
            var values: [String: Double] = [:]
            for line in r.output.split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                if parts.count == 2, let v = Double(parts[1]) { values[String(parts[0])] = v }
            }
            return values
        }
        var last: Double = 0
        for i in 1...3 {
            let sent = try runSender(["\(net.addressB):9000", "--count", "2000", "--rate", "500M"], namespace: net.a)
            XCTAssertEqual(sent.status, 0, sent.stderr)
            usleep(500_000) // the stream is retired (linger) and a snapshot published
            let m = scrape()
            let total = try XCTUnwrap(m["zcstream_receiver_datagrams_total"], "\(m.keys.sorted().prefix(5))")
            XCTAssertEqual(total, Double(2000 * i))
            XCTAssertGreaterThanOrEqual(total, last)
            last = total
            XCTAssertEqual(m["zcstream_receiver_streams_ended_total"], Double(i))
            XCTAssertEqual(m["zcstream_receiver_active_streams"], 0)
            XCTAssertEqual(m["zcstream_receiver_stream_datagrams_total{stream=\"other\",source=\"other\"}"], 0)
        }
    }
}

extension ServerReportPairTests {
    /// A stream that never sends END (its sender died) finishes after --idle-timeout of its
    /// own silence, while another stream keeps the server busy: reported "idle", freed.
    func testSilentStreamFinishesByItsOwnIdleTimeout() throws {
        let net = try NamespacePair(tag: "idl", subnet: 89)
        let server = try startServer(net, ["--idle-timeout", "700ms"])
        let script = """
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((\(String(reflecting: net.addressB)), 9000))
        for q in range(20):
            if q != 7:
                s.send(z.encode(z.FLAG_DATA, 0x51E7, q, q * 100, time.time_ns(), bytes(100)))
        """
        let r = try runPythonReference(script, namespace: net.a)
        XCTAssertEqual(r.status, 0, r.stderr)
        // Meanwhile a paced 2 s stream: the server is never idle as a whole.
        let busy = try runSender(["\(net.addressB):9000", "--rate", "2kpps", "--duration", "2s"], namespace: net.a)
        XCTAssertEqual(busy.status, 0, busy.stderr)
        let result = stop(server)
        let records = jsonLines(result.stdout)
        XCTAssertEqual(records.count, 2, result.stdout)
        let silent = try XCTUnwrap(records.first { u64($0, "stream_id") == 0x51E7 })
        XCTAssertEqual(silent["finished"] as? String, "idle")
        XCTAssertEqual(silent["end_seen"] as? Bool, false)
        XCTAssertEqual(u64(silent, "unique"), 19)
        XCTAssertEqual(u64(silent, "lost"), 1)
        // It finished long before the server stopped: first in the output.
        XCTAssertEqual(u64(records.first, "stream_id"), 0x51E7)
        XCTAssertEqual(records.last?["finished"] as? String, "end")
    }
}
