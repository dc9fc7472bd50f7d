import Foundation
import StreamProtocol
import TestSupport
import XCTest

/// REPORT (SPEC §12) against Protocol/vectors/reports.json, written by the Python reference.
final class StreamReportTests: XCTestCase {
    struct File: Decodable {
        struct Valid: Decodable { var name: String; var hex: String; var report: [String: Value] }
        struct Invalid: Decodable { var name: String; var hex: String; var reason: String }
        var valid: [Valid]
        var invalid: [Invalid]
    }

    /// A JSON value of the vector's report: a decimal string, a bool, or ranges.
    enum Value: Decodable {
        case text(String), flag(Bool), ranges([[String]])
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .flag(b) }
            else if let s = try? c.decode(String.self) { self = .text(s) }
            else { self = .ranges(try c.decode([[String]].self)) }
        }
        var u64: UInt64? { if case .text(let s) = self { return UInt64(s) } else { return nil } }
        var i64: Int64? { if case .text(let s) = self { return Int64(s) } else { return nil } }
        var bool: Bool? { if case .flag(let b) = self { return b } else { return nil } }
    }

    func testValidVectorsDecodeAsPythonDoesAndReencode() throws {
        let file = try Vectors.load("reports.json", as: File.self)
        XCTAssertFalse(file.valid.isEmpty)
        for v in file.valid {
            let data = try bytes(hex: v.hex)
            guard case .success(let r) = StreamReport.decode(data) else { XCTFail("\(v.name): rejected"); continue }
            let e = v.report
            XCTAssertEqual(r.streamID, e["stream_id"]?.u64, v.name)
            XCTAssertEqual(r.timestampNanoseconds, e["timestamp_ns"]?.u64, v.name)
            XCTAssertEqual(r.pass, { if case .text(let s) = e["verdict"]! { return s == "pass" } else { return false } }(), v.name)
            XCTAssertEqual(r.endSeen, e["end_seen"]?.bool, v.name)
            XCTAssertEqual(r.complete, e["complete"]?.bool, v.name)
            XCTAssertEqual(r.exact, e["exact"]?.bool, v.name)
            XCTAssertEqual(r.joinedLate, e["joined_late"]?.bool, v.name)
            XCTAssertEqual(r.outputIncomplete, e["output_incomplete"]?.bool, v.name)
            let u: [(String, UInt64)] = [("received", r.received), ("unique", r.unique), ("unique_payload_bytes", r.uniquePayloadBytes),
                ("expected_datagrams", r.expectedDatagrams), ("expected_payload_bytes", r.expectedPayloadBytes), ("lost", r.lost),
                ("lost_range_count", r.lostRangeCount), ("reordered", r.reordered), ("max_reorder_distance", r.maxReorderDistance),
                ("duplicates", r.duplicates), ("late", r.late), ("beyond_end", r.beyondEnd), ("after_end", r.afterEnd),
                ("corrupt", r.corrupt), ("kernel_drops", r.kernelDrops), ("latency_samples", r.latencySamples), ("gaps", r.gaps),
                ("longest_gap_datagrams", r.longestGapDatagrams), ("longest_gap_ns", r.longestGapNanoseconds),
                ("first_to_last_ns", r.firstToLastNanoseconds)]
            for (k, got) in u { XCTAssertEqual(got, e[k]?.u64, "\(v.name) \(k)") }
            let l: [(String, Int64)] = [("latency_min_ns", r.latencyMinNanoseconds), ("latency_p50_ns", r.latencyP50Nanoseconds),
                ("latency_p99_ns", r.latencyP99Nanoseconds), ("latency_p99_9_ns", r.latencyP999Nanoseconds), ("latency_max_ns", r.latencyMaxNanoseconds)]
            for (k, got) in l { XCTAssertEqual(got, e[k]?.i64, "\(v.name) \(k)") }
            guard case .ranges(let ranges) = e["lost_ranges"]! else { XCTFail(); continue }
            XCTAssertEqual(r.lostRanges.map { [String($0.lowerBound), String($0.upperBound)] }, ranges, v.name)
            // A reliable stream's counters (SPEC §13.8, the 240-byte form).
            if e["reliable"]?.bool == true {
                let c = StreamReport.ReliableCounters(repaired: e["repaired"]?.u64 ?? 0, repairDuplicates: e["repair_duplicates"]?.u64 ?? 0,
                                                      naksSent: e["naks_sent"]?.u64 ?? 0, statusSent: e["status_sent"]?.u64 ?? 0)
                XCTAssertEqual(r.reliable, c, v.name)
            } else {
                XCTAssertNil(r.reliable, v.name)
            }
            // This version writes the same bytes (a later version's extra counters are not kept).
            let fixed = data.count >= 50 ? UInt16(data[48]) << 8 | UInt16(data[49]) : 0
            if fixed == UInt16(StreamReport.fixedBodyLength) || fixed == UInt16(StreamReport.reliableBodyLength) {
                XCTAssertEqual(r.encoded(limit: data.count), data, "\(v.name) re-encoded")
            }
            // A stream receiver rejects every REPORT: it can never open or feed a stream.
            let asStream = data.withUnsafeBytes { Datagram.validate($0.baseAddress!, length: $0.count) }
            guard case .rejected(.unsupportedVersion) = asStream else { XCTFail("\(v.name) as a stream datagram: \(asStream)"); continue }
        }
    }

    func testInvalidVectorsAreRejectedForTheirReason() throws {
        let file = try Vectors.load("reports.json", as: File.self)
        for v in file.invalid {
            let result = StreamReport.decode(try bytes(hex: v.hex))
            guard case .failure(let reason) = result else { XCTFail("\(v.name) accepted"); continue }
            XCTAssertEqual(reason.rawValue, v.reason, v.name)
        }
    }

    func testSizeCapDropsRangesThenRefuses() {
        var r = StreamReport(streamID: 7)
        r.lostRanges = (0..<40).map { UInt64($0 * 10)...UInt64($0 * 10) }
        XCTAssertEqual(r.encoded()?.count, StreamReport.maximumLength)
        XCTAssertEqual(r.encoded(limit: 300)?.count, StreamReport.minimumLength + 32) // 2 ranges fit in 300
        XCTAssertEqual(r.encoded(limit: StreamReport.minimumLength)?.count, StreamReport.minimumLength)
        XCTAssertNil(r.encoded(limit: StreamReport.minimumLength - 1))
        for limit in [256, 257, 300, 511, 768, 5000] {
            XCTAssertLessThanOrEqual(r.encoded(limit: limit)!.count, limit)
        }
    }
}
