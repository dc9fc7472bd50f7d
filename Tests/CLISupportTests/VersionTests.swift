import CLISupport
import Foundation
import TestSupport
import XCTest

/// VERSION at the repository root is the one place the version lives; the Swift
/// constant is generated from it by Tools/set-version and committed.
final class VersionTests: XCTestCase {
    func testConstantMatchesVersionFile() throws {
        let root = Repository.root
        let file = try String(contentsOf: root.appendingPathComponent("VERSION"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(ZCStreamVersion.string, file, "Sources/CLISupport/Version.swift is stale: run Tools/set-version")
        XCTAssertNotNil(file.range(of: #"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$"#, options: .regularExpression), "VERSION '\(file)' is not a version")
    }

    func testReportsCarryTheVersionFirst() {
        let report = JSONValue.object([("role", .string("sender")), ("datagrams", .uint(3))])
        XCTAssertEqual(report.withVersion("1.2.3").rendered(), #"{"version":"1.2.3","role":"sender","datagrams":3}"#)
        XCTAssertEqual(JSONValue.array([]).withVersion(), .array([]))
    }
}
