import Foundation
import MetricsExport
import TestSupport
import XCTest

final class MetricsExportTests: XCTestCase {
    func testCounterFollowsSnapshotsAndNeverGoesDown() {
        let m = MetricsRegistry(program: "test")
        let c = m.counter("zcstream_test_things_total", [("stream", "a")], help: "Things.")
        c.set(10); c.set(7); c.set(12)
        let text = String(decoding: m.exposition(), as: UTF8.self)
        XCTAssertTrue(text.contains("zcstream_test_things_total{stream=\"a\"} 12"), text)
        XCTAssertTrue(text.contains("# TYPE zcstream_test_things_total counter"), text)
        XCTAssertTrue(text.contains("zcstream_build_info{version=\""), text)
        c.set(UInt64.max)  // a hostile stream: capped, never traps
        XCTAssertTrue(String(decoding: m.exposition(), as: UTF8.self).contains("zcstream_test_things_total{stream=\"a\"} 9007199254740992"))
    }

    func testSnapshotHistogramIsCumulative() {
        let m = MetricsRegistry(program: "test")
        let h = m.snapshotHistogram("zcstream_test_latency_seconds", bounds: [0.001, 0.01], help: "Latency.")
        h.set(counts: [2, 3, 1], sum: 0.5)
        let text = String(decoding: m.exposition(), as: UTF8.self)
        for line in ["# TYPE zcstream_test_latency_seconds histogram",
                     "zcstream_test_latency_seconds_bucket{le=\"0.001\"} 2",
                     "zcstream_test_latency_seconds_bucket{le=\"0.01\"} 5",
                     "zcstream_test_latency_seconds_bucket{le=\"+Inf\"} 6",
                     "zcstream_test_latency_seconds_sum 0.5",
                     "zcstream_test_latency_seconds_count 6"] {
            XCTAssertTrue(text.contains(line + "\n"), "missing \(line) in\n\(text)")
        }
    }

    func testServerAnswersOnMetricsAndSurvivesGarbage() throws {
        let m = MetricsRegistry(program: "test")
        m.counter("zcstream_test_things_total", help: "Things.").set(3)
        let server = try MetricsServer.start("127.0.0.1:0", registry: m)
        defer { server.stop() }
        XCTAssertTrue(server.boundAddress.hasPrefix("127.0.0.1:"), server.boundAddress)
        // Garbage, then a real scrape on the same server.
        let garbage = shell("head -c 4096 /dev/urandom | timeout 3 curl -s --max-time 2 -X POST --data-binary @- http://\(server.boundAddress)/nowhere; printf 'GARBAGE\\r\\n\\r\\n\\x00\\xff' | timeout 2 python3 -c 'import socket,sys; s=socket.create_connection((\"127.0.0.1\",\(server.boundAddress.split(separator: ":")[1]))); s.sendall(sys.stdin.buffer.read()); s.settimeout(1); s.recv(100)' ; true").output
        _ = garbage
        let scrape = shell("curl -s --max-time 5 -i http://\(server.boundAddress)/metrics").output
        XCTAssertTrue(scrape.contains("200"), scrape)
        XCTAssertTrue(scrape.contains("text/plain; version=0.0.4"), scrape)
        XCTAssertTrue(scrape.contains("zcstream_test_things_total 3"), scrape)
    }

    func testBadAddressIsRefused() {
        XCTAssertThrowsError(try MetricsServer.start("not an address", registry: MetricsRegistry(program: "test")))
    }
}
