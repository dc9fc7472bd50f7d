import Foundation
import TestSupport
import XCTest

/// zc-report renders a real --json-stream run (with loss: skipped sequence numbers) into one
/// self-contained HTML page; headless Chromium draws it.
final class ReportPairTests: XCTestCase {
    static var report: String { Binaries.directory.appendingPathComponent("zc-report").path }

    func testReceiverRunBecomesAPageWithChartsAndVerdict() throws {
        let dir = NSTemporaryDirectory() + "zc-report-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let receiver = try Child(Binaries.recv, ["127.0.0.1:0", "--streams", "1", "--json-stream", "-i", "200ms", "--max-loss", "0"])
        let ready = try XCTUnwrap(receiver.waitForLine(containing: "listening on"))
        let address = String(ready.components(separatedBy: "listening on ")[1].split(separator: " ")[0])
        let sent = try Child(Binaries.send, [address, "-b", "20M", "-t", "1500ms", "--inject-skip", "7", "--json-stream", "-i", "200ms"]).wait(timeout: 30)
        let received = receiver.wait(timeout: 30)
        XCTAssertEqual(received.status, 1, "7 lost > --max-loss 0: \(received.stderr)")
        let runFile = dir + "/run.json", page = dir + "/report.html"
        try received.stdout.write(toFile: runFile, atomically: true, encoding: .utf8)
        let r = try Child(Self.report, [runFile, "-o", page]).wait(timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        let html = try String(contentsOfFile: page, encoding: .utf8)
        XCTAssertTrue(html.contains(">FAIL</div>"), "verdict")
        XCTAssertTrue(html.contains("loss 0.") && html.contains("--max-loss 0"), "the receiver's reason is shown")
        XCTAssertTrue(html.contains("<svg id=\"throughput\"") && html.contains("<polyline"), "throughput chart")
        XCTAssertTrue(html.contains("<svg id=\"loss\"") && html.contains("class=\"bar"), "loss chart with a bar")
        XCTAssertFalse(html.contains("<script") || html.contains("src=") || html.contains("href="), "self-contained")
        let points = html.components(separatedBy: "<circle").count - 1
        XCTAssertGreaterThanOrEqual(points, 5, "one point per 200 ms interval")

        // The sender's run: PASS/FAIL from the REPORT it got back, no per-interval loss.
        try sent.stdout.write(toFile: dir + "/send.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try Child(Self.report, [dir + "/send.json", "-o", dir + "/send.html"]).wait(timeout: 30).status, 0)
        let senderPage = try String(contentsOfFile: dir + "/send.html", encoding: .utf8)
        XCTAssertTrue(senderPage.contains(">PASS</div>") || senderPage.contains(">FAIL</div>"), "the REPORT's verdict")
        XCTAssertTrue(senderPage.contains("known to the receiver only"))

        // Not a run: exit 64, one line.
        try "hello\n".write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
        let bad = try Child(Self.report, [dir + "/bad.json", "-o", dir + "/bad.html"]).wait(timeout: 30)
        XCTAssertEqual(bad.status, 64, bad.stderr)

        // Headless Chromium renders it.
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("ReportPairTests: screenshot skipped: chromium is not installed (Tools/bootstrap installs it)")
            return
        }
        let png = dir + "/report.png"
        let shot = shell("timeout 60 \(chromium) --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1000,1500 --screenshot=\(png) file://\(page) 2>&1")
        XCTAssertTrue(FileManager.default.fileExists(atPath: png), shot.output)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: png))
        XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "a PNG")
        XCTAssertGreaterThan(bytes.count, 20_000, "a page with charts, not a blank one")
        if let keep = ProcessInfo.processInfo.environment["ZC_REPORT_SCREENSHOT"] { try? bytes.write(to: URL(fileURLWithPath: keep)) }
    }
}
