import Foundation
import StreamProtocol
import TestSupport
import XCTest

/// Reliable streams (SPEC §13, version 3) against Protocol/vectors/{reliable,status,nak}.json,
/// written by the Python reference: reliable DATA/END and repairs, STATUS, NAK.
final class ReliableProtocolTests: XCTestCase {
    struct ReliableFile: Decodable {
        struct Valid: Decodable {
            var name: String; var hex: String; var version: UInt8; var fields: Vectors.Fields
            var identity_checksum: UInt32; var v1_reason: String
        }
        struct Invalid: Decodable { var name: String; var hex: String; var reason: String; var v1_reason: String }
        var valid: [Valid]
        var invalid: [Invalid]
    }

    struct ControlFile<Body: Decodable>: Decodable {
        struct Valid: Decodable { var name: String; var hex: String; var status: Body?; var nak: Body? }
        struct Invalid: Decodable { var name: String; var hex: String; var reason: String }
        var valid: [Valid]
        var invalid: [Invalid]
    }

    struct StatusJSON: Decodable {
        var stream_id, timestamp_ns, cumulative_ack, delivered_bytes, receiver_id: String
        var feedback_sequence: UInt32
        var window_limit, highest, unique, echo_timestamp_ns, echo_delay_ns: String
        var end_seen, complete, gave_up: Bool
    }

    struct NakJSON: Decodable {
        var stream_id, timestamp_ns, cumulative_ack, delivered_bytes, receiver_id: String
        var feedback_sequence: UInt32
        var ranges: [[String]]
    }

    func testReliableDatagramVectors() throws {
        let file = try Vectors.load("reliable.json", as: ReliableFile.self)
        XCTAssertFalse(file.valid.isEmpty)
        for v in file.valid {
            let data = try bytes(hex: v.hex)
            let got = data.withUnsafeBytes { Datagram.validateReliable($0) }
            guard case .valid(let h) = got else { XCTFail("\(v.name): \(got)"); continue }
            XCTAssertEqual(h, try v.fields.header(), v.name)
            XCTAssertEqual(data[4], v.version, v.name)
            XCTAssertTrue(Datagram.reliableFlagsValid(h.flags), v.name)
            // The receiver validates versions 1 and 3 in one function (SPEC §8 with §13.2).
            XCTAssertEqual(outcomeName(validate(data)), "valid", v.name)
            // A version 1-only receiver would reject it before looking at the flags.
            XCTAssertEqual(v.v1_reason, "unsupported_version", v.name)
            let identity = data.withUnsafeBytes { Datagram.identityChecksum($0.baseAddress!, length: $0.count) }
            XCTAssertEqual(identity, v.identity_checksum, "\(v.name) identity checksum")
            if h.flags.contains(.repair) {
                // The original: REPAIR clear, resealed; marking it again gives the vector's bytes.
                var original = data
                original[5] &= ~DatagramFlags.repair.rawValue
                original.withUnsafeMutableBytes { p in
                    p.storeBytes(of: UInt32(0), toByteOffset: DatagramHeader.checksumOffset, as: UInt32.self)
                    Datagram.seal(p.baseAddress!, length: p.count)
                }
                XCTAssertEqual(UInt32(original[44]) << 24 | UInt32(original[45]) << 16 | UInt32(original[46]) << 8 | UInt32(original[47]),
                               v.identity_checksum, v.name)
                var repaired = original
                let crc = repaired.withUnsafeMutableBytes { Datagram.markRepair($0.baseAddress!, length: $0.count) }
                XCTAssertEqual(repaired, data, "\(v.name): markRepair reproduces the repair")
                XCTAssertEqual(crc, h.checksum, v.name)
            }
        }
        for v in file.invalid {
            let data = try bytes(hex: v.hex)
            XCTAssertEqual(outcomeName(data.withUnsafeBytes { Datagram.validateReliable($0) }), v.reason, v.name)
            XCTAssertEqual(outcomeName(validate(data)), v.reason, "\(v.name) (the receiver's validation)")
        }
    }

    func testVersion1VectorsValidateTheSameUnderVersion3() throws {
        for v in try Vectors.valid() {
            let data = try bytes(hex: v.hex)
            XCTAssertEqual(outcomeName(data.withUnsafeBytes { Datagram.validateReliable($0) }), "valid", v.name)
        }
        for v in try Vectors.invalid() {
            let data = try bytes(hex: v.hex)
            XCTAssertEqual(outcomeName(data.withUnsafeBytes { Datagram.validateReliable($0) }), v.reason, v.name)
        }
    }

    func testStatusVectors() throws {
        let file = try Vectors.load("status.json", as: ControlFile<StatusJSON>.self)
        XCTAssertFalse(file.valid.isEmpty)
        for v in file.valid {
            let data = try bytes(hex: v.hex)
            guard case .success(let m) = StatusMessage.decode(data), let e = v.status else {
                XCTFail("\(v.name): \(StatusMessage.decode(data))"); continue
            }
            XCTAssertEqual(m.streamID, try u64(e.stream_id), v.name)
            XCTAssertEqual(m.timestampNanoseconds, try u64(e.timestamp_ns), v.name)
            XCTAssertEqual(m.cumulativeAck, try u64(e.cumulative_ack), v.name)
            XCTAssertEqual(m.deliveredBytes, try u64(e.delivered_bytes), v.name)
            XCTAssertEqual(m.feedbackSequence, e.feedback_sequence, v.name)
            XCTAssertEqual(m.receiverID, try u64(e.receiver_id), v.name)
            XCTAssertEqual(m.windowLimit, try u64(e.window_limit), v.name)
            XCTAssertEqual(m.highest, try u64(e.highest), v.name)
            XCTAssertEqual(m.unique, try u64(e.unique), v.name)
            XCTAssertEqual(m.echoTimestampNanoseconds, try u64(e.echo_timestamp_ns), v.name)
            XCTAssertEqual(m.echoDelayNanoseconds, try u64(e.echo_delay_ns), v.name)
            XCTAssertEqual([m.endSeen, m.complete, m.gaveUp], [e.end_seen, e.complete, e.gave_up], v.name)
            if data.count == StatusMessage.length && data[7] == 48 {
                XCTAssertEqual(m.encoded(), data, "\(v.name) re-encoded")
            }
            // Never stream data, never a REPORT.
            guard case .rejected(.badFlags) = validate(data) else { XCTFail("\(v.name) as a stream datagram"); continue }
            guard case .rejected(.badFlags) = data.withUnsafeBytes({ Datagram.validateReliable($0) }) else {
                XCTFail("\(v.name) as a version 3 stream datagram"); continue
            }
            guard case .failure(.notReport) = StreamReport.decode(data) else { XCTFail("\(v.name) as REPORT"); continue }
        }
        for v in file.invalid {
            let result = StatusMessage.decode(try bytes(hex: v.hex))
            guard case .failure(let reason) = result else { XCTFail("\(v.name) accepted"); continue }
            XCTAssertEqual(reason.rawValue, v.reason, v.name)
        }
    }

    func testNakVectors() throws {
        let file = try Vectors.load("nak.json", as: ControlFile<NakJSON>.self)
        XCTAssertFalse(file.valid.isEmpty)
        for v in file.valid {
            let data = try bytes(hex: v.hex)
            guard case .success(let (m, ranges)) = NakMessage.decodeWithRanges(data), let e = v.nak else {
                XCTFail("\(v.name): \(NakMessage.decode(data))"); continue
            }
            XCTAssertEqual(m.streamID, try u64(e.stream_id), v.name)
            XCTAssertEqual(m.timestampNanoseconds, try u64(e.timestamp_ns), v.name)
            XCTAssertEqual(m.cumulativeAck, try u64(e.cumulative_ack), v.name)
            XCTAssertEqual(m.deliveredBytes, try u64(e.delivered_bytes), v.name)
            XCTAssertEqual(m.feedbackSequence, e.feedback_sequence, v.name)
            XCTAssertEqual(m.receiverID, try u64(e.receiver_id), v.name)
            XCTAssertEqual(ranges.map { [String($0.lowerBound), String($0.upperBound)] }, e.ranges, v.name)
            XCTAssertEqual(m.rangeCount, e.ranges.count, v.name)
            XCTAssertTrue(NakMessage.rangesValid(ranges, cumulativeAck: m.cumulativeAck), v.name)
            if data[7] == 48 && data[49] == UInt8(NakMessage.fixedBodyLength) {
                XCTAssertEqual(m.encoded(ranges: ranges), data, "\(v.name) re-encoded")
            }
            guard case .rejected(.badFlags) = validate(data) else { XCTFail("\(v.name) as a stream datagram"); continue }
            guard case .failure(.notReport) = StreamReport.decode(data) else { XCTFail("\(v.name) as REPORT"); continue }
        }
        for v in file.invalid {
            let result = NakMessage.decode(try bytes(hex: v.hex))
            guard case .failure(let reason) = result else { XCTFail("\(v.name) accepted"); continue }
            XCTAssertEqual(reason.rawValue, v.reason, v.name)
        }
    }

    func testStatusRoundTripIntoCallerBuffer() {
        var rng = SplitMix64(seed: 25)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: StatusMessage.length + 3, alignment: 8)
        defer { buffer.deallocate() }
        for _ in 0..<500 {
            var m = StatusMessage(streamID: rng.next(), receiverID: rng.next() | 1)
            m.timestampNanoseconds = rng.next()
            m.highest = rng.next()
            m.unique = m.highest == 0 ? 0 : rng.next() % (m.highest + 1)
            m.cumulativeAck = m.unique == 0 ? 0 : rng.next() % (m.unique + 1)
            m.windowLimit = m.cumulativeAck &+ rng.next() % 100_000
            if m.windowLimit < m.cumulativeAck { m.windowLimit = m.cumulativeAck }
            m.deliveredBytes = rng.next()
            m.feedbackSequence = UInt32(truncatingIfNeeded: rng.next())
            m.echoTimestampNanoseconds = rng.next()
            m.echoDelayNanoseconds = rng.next()
            m.endSeen = rng.next() & 1 == 0
            m.complete = m.endSeen && rng.next() & 1 == 0
            m.gaveUp = rng.next() & 1 == 0
            // Unaligned on purpose: the codec uses unaligned loads and stores.
            let p = buffer + 3
            XCTAssertEqual(m.encode(into: p), StatusMessage.length)
            let decoded = StatusMessage.decode(UnsafeRawBufferPointer(start: p, count: StatusMessage.length))
            XCTAssertEqual(try decoded.get(), m)
        }
    }

    func testNakRoundTripAndWriterRefusals() throws {
        var rng = SplitMix64(seed: 26)
        let capacity = NakMessage.maximumLength
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity + 5, alignment: 8)
        defer { buffer.deallocate() }
        for _ in 0..<300 {
            var m = NakMessage(streamID: rng.next(), receiverID: rng.next() | 1)
            m.cumulativeAck = rng.next() >> 2
            m.timestampNanoseconds = rng.next()
            m.feedbackSequence = UInt32(truncatingIfNeeded: rng.next())
            var ranges: [ClosedRange<UInt64>] = []
            var next = m.cumulativeAck + rng.next() % 4
            for _ in 0..<Int(1 + rng.next() % UInt64(NakMessage.maxRanges)) {
                let last = next + rng.next() % 1000
                ranges.append(next...last)
                next = last + 2 + rng.next() % 50
            }
            let p = buffer + 5
            let n = try XCTUnwrap(m.encode(ranges: ranges, into: p, capacity: capacity))
            XCTAssertEqual(n, NakMessage.length(ranges: ranges.count))
            let bytes = UnsafeRawBufferPointer(start: p, count: n)
            let decoded = try NakMessage.decode(bytes).get()
            XCTAssertEqual(Array(decoded.ranges(in: bytes)), ranges)
            XCTAssertEqual(decoded.cumulativeAck, m.cumulativeAck)
            XCTAssertEqual(decoded.receiverID, m.receiverID)
            XCTAssertEqual(decoded.feedbackSequence, m.feedbackSequence)
        }
        let m = NakMessage(streamID: 1, receiverID: 2)
        XCTAssertNil(m.encoded(ranges: []), "no ranges")
        XCTAssertNil(m.encoded(ranges: [5...6, 7...8]), "adjacent")
        XCTAssertNil(m.encoded(ranges: [5...8, 7...9]), "overlapping")
        XCTAssertNil(m.encoded(ranges: [9...9, 5...6]), "unsorted")
        XCTAssertNil(m.encoded(ranges: [5...UInt64.max]), "2^64 - 1 is never a DATA number")
        XCTAssertNil(m.encoded(ranges: [0...(UInt64.max - 1), 3...4]), "nothing after 2^64 - 2")
        XCTAssertNotNil(m.encoded(ranges: [(UInt64.max - 1)...(UInt64.max - 1)]))
        XCTAssertNil(m.encoded(ranges: (0..<65).map { UInt64(3 * $0)...UInt64(3 * $0) }), "65 ranges")
        XCTAssertEqual(m.encoded(ranges: (0..<64).map { UInt64(3 * $0)...UInt64(3 * $0) })?.count, NakMessage.maximumLength)
        var behind = m
        behind.cumulativeAck = 10
        XCTAssertNil(behind.encoded(ranges: [9...12]), "below the ack")
        XCTAssertNil(NakMessage(streamID: 1, receiverID: 0).encoded(ranges: [1...1]), "receiver id 0")
        XCTAssertNil(m.encode(ranges: [1...1], into: buffer, capacity: NakMessage.minimumLength - 1), "no room")
        XCTAssertEqual(NakMessage.minimumLength, 88)
        XCTAssertEqual(NakMessage.maximumLength, 1096)
        XCTAssertLessThanOrEqual(NakMessage.maximumLength, 1280 - 40 - 8)
        XCTAssertEqual(StatusMessage.length, 104)
    }

    func testFlagsKeepVersion1Values() {
        XCTAssertEqual(DatagramFlags.known.rawValue, 0x07, "version 1 receivers still reject 0x10 and up")
        XCTAssertEqual(DatagramFlags.knownReliable.rawValue, 0x37)
        XCTAssertEqual([DatagramFlags.reliable, .repair, .status, .nak].map(\.rawValue), [0x10, 0x20, 0x40, 0x80])
        XCTAssertTrue(Datagram.reliableFlagsValid([.data, .reliable, .repair, .pattern]))
        XCTAssertFalse(Datagram.reliableFlagsValid([.data, .pattern]))
        XCTAssertFalse(Datagram.reliableFlagsValid([.end, .reliable, .repair]))
        XCTAssertFalse(Datagram.reliableFlagsValid(.status))
        XCTAssertEqual(DatagramFlags([.data, .reliable, .repair]).names, ["DATA", "RELIABLE", "REPAIR"])
    }
}
