import Foundation
import TestSupport
import XCTest

/// `-J`/`--json` is one document whatever --interval says (what json.load and jq read);
/// `--json-stream` is JSON lines whose interval lines never reuse the final report's keys.
final class JSONOutputPairTests: XCTestCase {
    /// A ~1.2 s paced pair with 300 ms intervals, both tools in the given JSON mode.
    private func pair(_ mode: String) throws -> (send: Child.Result, recv: Child.Result) {
        let receiver = try Child(Binaries.recv, ["127.0.0.1:0", "--streams", "1", mode, "-i", "300ms"])
        let ready = try XCTUnwrap(receiver.waitForLine(containing: "listening on"))
        let address = String(ready.components(separatedBy: "listening on ")[1].split(separator: " ")[0])
        let sent = try Child(Binaries.send, [address, "-b", "50M", "-t", "1200ms", "-i", "300ms", mode]).wait(timeout: 30)
        let received = receiver.wait(timeout: 30)
        XCTAssertEqual(sent.status, 0, sent.stderr)
        XCTAssertEqual(received.status, 0, received.stderr)
        return (sent, received)
    }

    /// Python's json.loads on the whole of stdout, as a script would read it: the `gbps` it prints.
    private func pythonLoads(_ text: String) throws -> String {
        let file = NSTemporaryDirectory() + "zc-json-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).json"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = shell("python3 -c 'import json,sys; d = json.loads(open(sys.argv[1]).read()); print(d[\"gbps\"])' \(file)")
        XCTAssertEqual(r.status, 0, "json.loads failed: \(r.output)\n\(text)")
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testJSONIsOneDocumentWithIntervalsRunning() throws {
        let (sent, received) = try pair("-J")
        for (name, r) in [("zc-send", sent), ("zc-recv", received)] {
            let document = try XCTUnwrap(r.json, "\(name) -J is not one JSON document: \(r.stdout)")
            XCTAssertNil(document["event"], "\(name): a document, not a stream line")
            XCTAssertNotNil(document["gbps"] as? Double, name)
            // One number, as `jq .gbps` would print.
            XCTAssertNotNil(Double(try pythonLoads(r.stdout)), "\(name): \(r.stdout)")
            // The intervals still happened: text lines on stderr.
            XCTAssertGreaterThanOrEqual(r.stderr.split(separator: "\n").filter { $0.hasPrefix("[") }.count, 3, "\(name): \(r.stderr)")
        }
    }

    func testJSONStreamIsLinesWithDistinctIntervalKeys() throws {
        let (sent, received) = try pair("--json-stream")
        for (name, r) in [("zc-send", sent), ("zc-recv", received)] {
            let lines = r.stdout.split(separator: "\n")
            let objects = try lines.map { line in
                try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(name): \(line)")
            }
            XCTAssertGreaterThanOrEqual(objects.count, 4, "\(name): \(r.stdout)")
            let final = try XCTUnwrap(objects.last)
            XCTAssertEqual(final["event"] as? String, "final", name)
            XCTAssertNotNil(final["gbps"] as? Double, name)
            let intervals = objects.dropLast()
            for line in intervals {
                XCTAssertEqual(line["event"] as? String, "interval", name)
                // Only these at the top: nothing the final report uses with another meaning.
                XCTAssertEqual(Set(line.keys), ["event", "timestamp", "role", "interval", "so_far"], "\(name): \(line)")
                let interval = try XCTUnwrap(line["interval"] as? [String: Any])
                for key in ["start_seconds", "end_seconds", "seconds", "gbps", "pps", "datagrams", "bytes"] {
                    XCTAssertNotNil(interval[key], "\(name): interval.\(key) in \(line)")
                }
                XCTAssertNotNil((line["so_far"] as? [String: Any])?["datagrams"], name)
            }
            // Contiguous intervals, and their datagrams add up to the running total.
            let spans = intervals.compactMap { $0["interval"] as? [String: Any] }
            for (a, b) in zip(spans, spans.dropFirst()) {
                XCTAssertEqual(a["end_seconds"] as? Double, b["start_seconds"] as? Double, name)
            }
            let sum = spans.compactMap { u64($0, "datagrams") }.reduce(0, +)
            XCTAssertEqual(sum, u64(intervals.last.map { $0 }, "so_far", "datagrams"), name)
            // A paced 50 Mbit/s: every full interval's rate is near it.
            for span in spans.dropFirst().dropLast() {
                XCTAssertEqual(span["gbps"] as? Double ?? 0, 0.05, accuracy: 0.01, "\(name): \(span)")
            }
        }
    }

    /// A server's run has no end: -J prints one document per finished stream (iperf3 -s -J's
    /// one per test), --json-stream adds the interval lines.
    func testServerJSONIsOneDocumentPerStream() throws {
        for mode in ["-J", "--json-stream"] {
            let server = try Child(Binaries.recv, ["-s", "-p", "0", "-B", "127.0.0.1", mode, "-i", "200ms",
                                                   "--linger", "100ms", "--timeout", "3s"])
            let ready = try XCTUnwrap(server.waitForLine(containing: "listening on"))
            let address = String(ready.components(separatedBy: "listening on ")[1].split(separator: " ")[0])
            for _ in 0..<2 {
                let sent = try Child(Binaries.send, [address, "-k", "300", "-b", "20M", "-J"]).wait(timeout: 30)
                XCTAssertEqual(sent.status, 0, sent.stderr)
            }
            let r = server.wait(timeout: 30)
            let objects = try r.stdout.split(separator: "\n").map { line in
                try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(mode): \(line)")
            }
            let events = objects.map { $0["event"] as? String ?? "?" }
            XCTAssertEqual(events.filter { $0 == "stream_finished" }.count, 2, "\(mode): \(events)")
            XCTAssertEqual(events.contains("interval"), mode == "--json-stream", "\(mode): \(events)")
        }
    }
}
