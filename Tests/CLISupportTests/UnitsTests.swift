import CLISupport
import Foundation
import XCTest

final class UnitsTests: XCTestCase {
    func testBytes() {
        XCTAssertEqual(Units.parseBytes("64K"), 65536)
        XCTAssertEqual(Units.parseBytes("16M"), 16 << 20)
        XCTAssertEqual(Units.parseBytes("1GiB"), 1 << 30)
        XCTAssertEqual(Units.parseBytes("123"), 123)
        XCTAssertNil(Units.parseBytes("-1"))
        XCTAssertNil(Units.parseBytes("lots"))
        XCTAssertNil(Units.parseBytes("99999999999T"))
    }

    func testDurations() {
        XCTAssertEqual(Units.parseDuration("10s"), 10_000_000_000)
        XCTAssertEqual(Units.parseDuration("500ms"), 500_000_000)
        XCTAssertEqual(Units.parseDuration("1.5"), 1_500_000_000)
        XCTAssertEqual(Units.parseDuration("2m"), 120_000_000_000)
        XCTAssertNil(Units.parseDuration("-1s"))
        XCTAssertNil(Units.parseDuration("soon"))
    }

    func testCPULists() {
        XCTAssertEqual(Units.parseCPUList("0,2"), [0, 2])
        XCTAssertEqual(Units.parseCPUList("0-3"), [0, 1, 2, 3])
        XCTAssertEqual(Units.parseCPUList("1,4-5"), [1, 4, 5])
        XCTAssertNil(Units.parseCPUList("3-1"))
        XCTAssertNil(Units.parseCPUList("x"))
        XCTAssertNil(Units.parseCPUList("-1"))
    }

    func testFormatting() {
        XCTAssertEqual(Units.fixed(3.14159, 2), "3.14")
        XCTAssertEqual(Units.fixed(-0.5, 1), "-0.5")
        XCTAssertEqual(Units.fixed(2, 0), "2")
        XCTAssertEqual(Units.bitRate(24.1e9), "24.10 Gbit/s")
        XCTAssertEqual(Units.bytes(1536), "1.50 KiB")
    }

    func testJSONIsValidAndOrdered() throws {
        let v = JSONValue.object([("b", .uint(UInt64.max)), ("a", .string("q\"\n\u{1}")), ("c", .array([.double(1.5), .null, .bool(true)]))])
        for pretty in [false, true] {
            let text = v.rendered(pretty: pretty)
            XCTAssertTrue(text.firstRange(of: "\"b\"")!.lowerBound < text.firstRange(of: "\"a\"")!.lowerBound)
            let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            XCTAssertEqual(parsed?["a"] as? String, "q\"\n\u{1}")
            XCTAssertEqual((parsed?["b"] as? NSNumber)?.uint64Value, UInt64.max)
        }
    }
}

final class JSONParserTests: XCTestCase {
    /// What JSONValue renders parses back to the same value; escapes, exact u64, errors.
    func testRoundTripAndErrors() throws {
        let value = JSONValue.object([("a", .array([.int(-3), .uint(UInt64.max), .double(1.5), .null, .bool(true)])),
                                      ("s", .string("q\"\\\n\t\u{1}é§")), ("o", .object([]))])
        XCTAssertEqual(try JSONValue.parse(value.rendered(pretty: true)), value)
        XCTAssertEqual(try JSONValue.parse(value.rendered()), value)
        XCTAssertEqual(try JSONValue.parse(#""\ud83d\ude00""#).text, "😀")
        XCTAssertEqual(try JSONValue.parse(#"{"x": {"y": 2e3}}"#)["x"]?["y"]?.number, 2000)
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "1 2", "\"open", "{\"a\":1,}"] {
            XCTAssertThrowsError(try JSONValue.parse(bad), bad)
        }
    }
}
