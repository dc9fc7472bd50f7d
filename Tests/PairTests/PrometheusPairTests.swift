import Foundation
import TestSupport
import XCTest

/// `--metrics`: a real Prometheus (Debian's `prometheus`) scrapes a running zc-recv
/// every second and finds the stream's counters; abuse of the metrics port never
/// disturbs the data path.
final class PrometheusPairTests: XCTestCase {
    /// "zc-recv: metrics on http://HOST:PORT/metrics" -> HOST:PORT.
    static func metricsAddress(_ child: Child) -> String? {
        guard let line = child.waitForLine(containing: "metrics on http://") else { return nil }
        return line.components(separatedBy: "http://")[1].components(separatedBy: "/metrics")[0]
    }

    /// A loopback TCP port nobody listens on right now.
    static func freePort() -> UInt16? {
        let r = shell("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])'")
        return UInt16(r.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The value of a PromQL instant query with one series, nil when there is none (yet).
    static func query(_ prometheus: String, _ promql: String) -> Double? {
        let encoded = promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? promql
        let r = shell("curl -s --max-time 3 'http://\(prometheus)/api/v1/query?query=\(encoded)'")
        guard let json = try? JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any],
              let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
              result.count == 1, let value = result[0]["value"] as? [Any], value.count == 2,
              let text = value[1] as? String else { return nil }
        return Double(text)
    }

    func testPrometheusScrapesReceivedAndLost() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus") else {
            print("PrometheusPairTests: skipped: /usr/bin/prometheus is not installed (Tools/bootstrap installs it)")
            throw XCTSkip("prometheus is not installed (Tools/bootstrap installs it)")
        }
        // No --streams: the receiver stays up after the stream, as a long-running one does.
        let rx = try RunningReceiver.start(listen: "127.0.0.1:0", ["--metrics", "127.0.0.1:0", "--idle-timeout", "120s"])
        defer { if rx.child.process.isRunning { kill(rx.child.process.processIdentifier, SIGKILL) } }
        guard let metrics = Self.metricsAddress(rx.child) else { return XCTFail("no metrics address: \(rx.child.stderr.text)") }

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zc-prom-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("prometheus.yml")
        try """
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        scrape_configs:
          - job_name: zc-recv
            scrape_interval: 1s
            scrape_timeout: 900ms
            static_configs:
              - targets: ['\(metrics)']
        """.write(to: config, atomically: true, encoding: .utf8)
        guard let port = Self.freePort() else { throw XCTSkip("no free port for prometheus") }
        let prometheusAddress = "127.0.0.1:\(port)"
        let prometheus: Child
        do {
            prometheus = try Child("/usr/bin/prometheus", ["--config.file=\(config.path)", "--storage.tsdb.path=\(dir.appendingPathComponent("data").path)",
                                                          "--web.listen-address=\(prometheusAddress)", "--log.level=warn"])
        } catch {
            print("PrometheusPairTests: skipped: prometheus did not start: \(error)")
            throw XCTSkip("prometheus did not start: \(error)")
        }
        defer {
            prometheus.process.terminate()
            _ = prometheus.wait(timeout: 10)
        }
        var ready = false
        for _ in 0..<150 where !ready {
            ready = shell("curl -sf --max-time 1 http://\(prometheusAddress)/-/ready").status == 0
            if !ready { usleep(100_000) }
            if !prometheus.process.isRunning { break }
        }
        guard ready else {
            let why = prometheus.process.isRunning ? "not ready after 15 s" : "exited: \(prometheus.stderr.text.suffix(500))"
            print("PrometheusPairTests: skipped: prometheus \(why)")
            throw XCTSkip("prometheus \(why)")
        }

        let count: UInt64 = 200_000, skip: UInt64 = 7
        let tx = try runSender([rx.address, "--count", String(count), "--inject-skip", String(skip)])
        XCTAssertEqual(tx.status, 0, tx.stderr)

        // Prometheus scrapes every second; the receiver's snapshot has the full loss once
        // the stream has been quiet for one snapshot interval.
        var received: Double?, lost: Double?, unique: Double?, perStream: Double?
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            received = Self.query(prometheusAddress, "zcstream_receiver_datagrams_total")
            lost = Self.query(prometheusAddress, "zcstream_receiver_lost_datagrams_total")
            unique = Self.query(prometheusAddress, "zcstream_receiver_unique_datagrams_total")
            perStream = Self.query(prometheusAddress, "sum(zcstream_receiver_stream_lost_datagrams_total)")
            if received == Double(count - skip) && lost == Double(skip) && perStream == Double(skip) { break }
            usleep(500_000)
        }
        XCTAssertEqual(received, Double(count - skip), "received as Prometheus sees it")
        XCTAssertEqual(unique, Double(count - skip), "unique as Prometheus sees it")
        XCTAssertEqual(lost, Double(skip), "lost as Prometheus sees it")
        XCTAssertEqual(perStream, Double(skip), "lost summed over the per-stream series")
        XCTAssertEqual(Self.query(prometheusAddress, "zcstream_receiver_streams_ended_total"), 1)
        XCTAssertEqual(Self.query(prometheusAddress, "zcstream_receiver_latency_seconds_count"), Double(count - skip))
        XCTAssertEqual(Self.query(prometheusAddress, "up{job=\"zc-recv\"}"), 1)

        // The receiver's own report agrees.
        kill(rx.child.process.processIdentifier, SIGINT)
        let r = rx.child.wait(timeout: 20)
        XCTAssertEqual(u64(r.json, "lost"), skip)
        XCTAssertEqual(u64(r.json, "unique"), count - skip)
        XCTAssertNotNil(r.json?["version"] as? String)
    }

    /// Garbage, a client that never finishes its request and 200 idle connections on the
    /// metrics port while a stream runs: the stream arrives exact, and /metrics still answers.
    func testAbuseOfMetricsPortLeavesDataPathExact() throws {
        let rx = try RunningReceiver.start(listen: "127.0.0.1:0", ["--metrics", "127.0.0.1:0", "--streams", "1"])
        guard let metrics = Self.metricsAddress(rx.child) else { return XCTFail("no metrics address: \(rx.child.stderr.text)") }
        let port = metrics.split(separator: ":").last!
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("zc-abuse-\(getpid()).py")
        try """
        import os, socket, sys, time
        held = []
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", \(port)))
            held.append(s)
        slow = held[0]; slow.sendall(b"GET /metr")               # never finishes its request
        for s in held[1:20]: s.sendall(os.urandom(2048))          # garbage
        for s in held[20:40]: s.sendall(b"\\x00" * 100 + b"\\r\\n\\r\\n")
        for s in held[40:45]: s.sendall(b"GET /" + b"A" * 60000 + b" HTTP/1.1\\r\\n\\r\\n")  # oversized (each costs the listener CPU: a few only)
        print("abusing", flush=True)
        time.sleep(float(sys.argv[1]))
        """.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let abuse = try Child("/usr/bin/env", ["python3", script.path, "20"])
        defer { if abuse.process.isRunning { abuse.process.terminate() } }
        let started = Date()
        while !abuse.stdout.text.contains("abusing") && abuse.process.isRunning && Date().timeIntervalSince(started) < 10 { usleep(20_000) }
        XCTAssertTrue(abuse.stdout.text.contains("abusing"), "the abuse client did not start: \(abuse.stderr.text)")
        // Scrapes keep working while all that is held open. FlyingFox parses a request line
        // slowly (the oversized ones cost it ~1 s of CPU each on this machine), so a scrape may
        // wait for that; it never hangs.
        var scraped = false
        let scrapeDeadline = Date().addingTimeInterval(15)
        while !scraped && Date() < scrapeDeadline {
            scraped = shell("curl -s --max-time 2 http://\(metrics)/metrics").output.contains("zcstream_receiver_datagrams_total")
        }
        XCTAssertTrue(scraped, "no scrape answered within 15 s of the abuse starting")

        let count: UInt64 = 300_000
        let tx = try runSender([rx.address, "--count", String(count)])
        XCTAssertEqual(tx.status, 0, tx.stderr)
        let r = rx.child.wait(timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(u64(r.json, "unique"), count)
        XCTAssertEqual(u64(r.json, "lost"), 0)
        XCTAssertEqual(u64(r.json, "corrupt"), 0)
        XCTAssertEqual(u64(r.json, "kernel_drops"), 0)
        _ = abuse.wait(timeout: 15)
    }
}
