import Foundation
import TestSupport
import XCTest

/// SPEC §9 end to end: the Python reference sends every scenario of
/// Protocol/vectors/accounting.json (one stream each) to the real zc-recv, whose JSON
/// must give exactly the counters the reference model computed for it.
final class AccountingPairTests: XCTestCase {
    static let root = Repository.root
    static let tool = root.appendingPathComponent("Protocol/tools/zcstream.py").path

    private func streams(_ r: [String: Any]?) -> [[String: Any]] { r?["streams"] as? [[String: Any]] ?? [] }

    /// The report's keys that are booleans; every other expected value is a u64 (a decimal
    /// string in the vectors) or the loss ranges.
    static let booleanKeys: Set<String> = ["end_seen", "complete"]

    /// A value from zc-recv's JSON in the vectors' spelling (u64 as decimal strings).
    private func normalized(_ key: String, _ v: Any?) -> AnyHashable? {
        if Self.booleanKeys.contains(key) { return v as? Bool }
        if let ranges = v as? [[NSNumber]] { return ranges.map { $0.map { String($0.uint64Value) } } }
        return (v as? NSNumber).map { String($0.uint64Value) }
    }

    func testEveryAccountingScenarioThroughTheRealReceiver() throws {
        let vectors = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: Repository.vector("accounting.json"))) as? [[String: Any]])
        let receiver = try RunningReceiver.start(["--idle-timeout", "1s"])
        let sent = shell("python3 \(Self.tool) send-accounting \(receiver.address) --gap-us 100")
        XCTAssertEqual(sent.status, 0, sent.output)
        let ids = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(sent.output.utf8)) as? [String: String], sent.output)
        let result = receiver.child.wait(timeout: 30)
        let r = try XCTUnwrap(result.json, result.stderr)
        XCTAssertEqual(u64(r, "kernel_drops"), 0, "a drop would change the counts")
        XCTAssertEqual(streams(r).count, vectors.count)
        for v in vectors {
            let name = v["name"] as! String
            let expected = v["expected"] as! [String: Any]
            let id = try XCTUnwrap(ids[name])
            let s = try XCTUnwrap(streams(r).first { $0["stream_id"] as? String == id }, "\(name): stream \(id) in the report (ids are hex strings)")
            for (key, value) in expected.sorted(by: { $0.key < $1.key }) {
                let want: AnyHashable = Self.booleanKeys.contains(key) ? value as! Bool
                    : (value as? [[String]]).map { AnyHashable($0) } ?? AnyHashable(value as! String)
                XCTAssertEqual(normalized(key, s[key]), want, "\(name): \(key)")
            }
        }
        // One scenario sends a corrupt datagram: the verdict fails on it, and only on it.
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(r["failures"] as? [String], ["1 corrupt datagrams > --max-corrupt 0"])
        XCTAssertEqual(u64(r, "invalid"), 0)
        XCTAssertEqual(u64(r, "beyond_end"), expectedTotal(vectors, "beyond_end"))
        XCTAssertEqual(u64(r, "lost"), expectedTotal(vectors, "lost"))
        XCTAssertEqual(u64(r, "expected"), expectedTotal(vectors, "expected_datagrams"), "top-level expected = the streams' sum")
    }

    private func expectedTotal(_ vectors: [[String: Any]], _ key: String) -> UInt64 {
        vectors.reduce(UInt64(0)) { $0 &+ UInt64(($1["expected"] as! [String: Any])[key] as! String)! }
    }

    /// Valid datagrams of streams beyond --max-streams are a resource limit: counted apart
    /// (not invalid), named in the report, and the verdict fails.
    func testStreamsBeyondTheLimitFailTheVerdictAndAreNotInvalid() throws {
        let receiver = try RunningReceiver.start(["--idle-timeout", "1s", "--max-streams", "4"])
        let names = ["in_order", "loss_ranges", "no_end", "leading_loss", "empty_stream", "end_mismatch"]
        let sent = shell("python3 \(Self.tool) send-accounting \(receiver.address) --gap-us 100 --only \(names.joined(separator: " "))")
        XCTAssertEqual(sent.status, 0, sent.output)
        let result = receiver.child.wait(timeout: 30)
        let r = try XCTUnwrap(result.json, result.stderr)
        XCTAssertEqual(streams(r).count, 4)
        XCTAssertEqual(u64(r, "invalid"), 0)
        XCTAssertEqual(u64(r, "max_streams"), 4)
        // Sent in the vectors' order: in_order, loss_ranges, no_end and end_mismatch take the
        // four places; empty_stream (one END) and leading_loss (5 DATA + END) are refused.
        XCTAssertEqual(u64(r, "streams_refused_datagrams"), 7)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue((r["failures"] as? [String] ?? []).contains { $0.contains("--max-streams 4") }, "\(r["failures"] ?? "")")
        let text = shell("\(Binaries.recv) --help").output
        XCTAssertTrue(text.contains("--max-streams"), "documented in --help")
    }
}
