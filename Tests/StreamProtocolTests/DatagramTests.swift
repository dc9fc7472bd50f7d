import StreamProtocol
import TestSupport
import XCTest

final class DatagramTests: XCTestCase {
    /// Builds a datagram through the public API: extension bytes and payload put in
    /// place by the caller, then `Datagram.encode` writes the header and seals.
    private func encode(_ header: DatagramHeader, extension ext: [UInt8] = [], payload: [UInt8]) -> [UInt8] {
        precondition(Int(header.headerLength) == DatagramHeader.size + ext.count)
        var buf = [UInt8](repeating: 0xEE, count: Int(header.headerLength) + payload.count)
        for (i, b) in ext.enumerated() { buf[DatagramHeader.size + i] = b }
        for (i, b) in payload.enumerated() { buf[Int(header.headerLength) + i] = b }
        let n = buf.withUnsafeMutableBytes { Datagram.encode(header, at: $0.baseAddress!) }
        XCTAssertEqual(n, buf.count)
        return buf
    }

    private func patternPayload(streamID: UInt64, offset: UInt64, count: Int) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: count)
        p.withUnsafeMutableBytes { if count > 0 { PayloadPattern.fill($0.baseAddress!, count: count, streamID: streamID, offset: offset) } }
        return p
    }

    func testLayoutConstants() {
        XCTAssertEqual(DatagramHeader.size, 48)
        XCTAssertEqual(DatagramHeader.checksumOffset, 44)
        XCTAssertEqual(DatagramHeader.magic, 0x5A43_5354)
        XCTAssertEqual(DatagramHeader.version, 1)
        XCTAssertEqual(EndOfStream.payloadSize, 16)
        XCTAssertEqual(DatagramFlags.data.rawValue, 0x01)
        XCTAssertEqual(DatagramFlags.end.rawValue, 0x02)
        XCTAssertEqual(DatagramFlags.pattern.rawValue, 0x04)
        XCTAssertEqual(DatagramFlags.known.rawValue, 0x07)
        XCTAssertEqual(DatagramFlags([.data, .pattern]).names, ["DATA", "PATTERN"])
        XCTAssertEqual(DatagramFlags.end.names, ["END"])
    }

    func testRejectionNamesMatchSpec() {
        XCTAssertEqual(Datagram.Rejection.allCases.map(\.rawValue),
                       ["too_short", "bad_magic", "unsupported_version", "bad_header_length",
                        "bad_flags", "length_mismatch", "bad_end"])
    }

    func testEncodeValidateRoundTrip() {
        var rng = SplitMix64(seed: 2024)
        for i in 0..<300 {
            let sid = rng.next()
            let count = Int(rng.next() % 1500)
            let offset = rng.next() >> 8
            let flags: DatagramFlags = i % 3 == 0 ? .data : [.data, .pattern]
            let ext = [UInt8](repeating: UInt8(i & 0xFF), count: 8 * Int(rng.next() % 3))
            let header = DatagramHeader(flags: flags, streamID: sid, sequence: rng.next(), offset: offset,
                                        timestampNanoseconds: rng.next(), payloadLength: UInt32(count),
                                        checksum: 0xDEAD_BEEF /* ignored by encode */,
                                        headerLength: UInt16(48 + ext.count))
            let payload = patternPayload(streamID: sid, offset: offset, count: count)
            let dgram = encode(header, extension: ext, payload: payload)
            // Byte layout: magic, version, flags, header length, big-endian fields.
            XCTAssertEqual(Array(dgram[0..<4]), Array("ZCST".utf8))
            XCTAssertEqual(dgram[4], 1)
            XCTAssertEqual(dgram[5], flags.rawValue)
            XCTAssertEqual(Int(dgram[6]) << 8 | Int(dgram[7]), 48 + ext.count)
            XCTAssertEqual(dgram[8..<16].reduce(0) { $0 << 8 | UInt64($1) }, sid)
            XCTAssertEqual(Array(dgram[48..<(48 + ext.count)]), ext)
            guard case .valid(let got) = validate(dgram) else {
                XCTFail("round trip \(i): \(outcomeName(validate(dgram)))"); return
            }
            var expected = header
            expected.checksum = Datagram.computeChecksum(dgram, length: dgram.count)
            XCTAssertEqual(got, expected)
            XCTAssertNotEqual(got.checksum, 0xDEAD_BEEF)
            let stored = dgram[44..<48].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            XCTAssertEqual(stored, got.checksum)
            // The checksum is CRC32C of the datagram with the field zeroed.
            var zeroed = dgram
            zeroed.replaceSubrange(44..<48, with: [0, 0, 0, 0])
            XCTAssertEqual(CRC32C.checksum(zeroed), got.checksum)
            if flags.contains(.pattern) {
                dgram.withUnsafeBytes {
                    XCTAssertNil(PayloadPattern.firstMismatch($0.baseAddress! + Int(got.headerLength), count: Int(got.payloadLength),
                                                              streamID: got.streamID, offset: got.offset))
                }
            }
            // Any single bit flip anywhere is caught: as a structural rejection or a bad checksum.
            var flipped = dgram
            let at = Int(rng.next() % UInt64(dgram.count))
            flipped[at] ^= UInt8(1) << (rng.next() % 8)
            if case .valid = validate(flipped) { XCTFail("bit flip at \(at) of \(dgram.count) went unnoticed") }
        }
    }

    func testEndOfStreamRoundTrip() {
        let totals = EndOfStream(datagrams: 0x0102_0304_0506_0708, bytes: .max)
        var payload = [UInt8](repeating: 0, count: 16)
        payload.withUnsafeMutableBytes { totals.write(to: $0.baseAddress!) }
        XCTAssertEqual(hex(payload), "0102030405060708ffffffffffffffff")
        let header = DatagramHeader(flags: .end, streamID: 9, sequence: totals.datagrams, offset: totals.bytes,
                                    timestampNanoseconds: 1, payloadLength: 16)
        let dgram = encode(header, payload: payload)
        guard case .valid(let got) = validate(dgram) else { return XCTFail(outcomeName(validate(dgram))) }
        XCTAssertTrue(got.flags.contains(.end))
        XCTAssertEqual(dgram.withUnsafeBytes { EndOfStream(reading: $0.baseAddress! + 48) }, totals)
    }

    func testValidVectors() throws {
        let vectors = try Vectors.valid()
        XCTAssertGreaterThanOrEqual(vectors.count, 10)
        var sawExtended = false, sawEnd = false, sawEmpty = false, sawUnaligned = false, sawMismatch = false
        for v in vectors {
            let dgram = try bytes(hex: v.hex)
            let want = try v.fields.header()
            guard case .valid(let got) = validate(dgram) else {
                XCTFail("\(v.name): \(outcomeName(validate(dgram)))"); continue
            }
            XCTAssertEqual(got, want, v.name)
            XCTAssertEqual(Datagram.computeChecksum(dgram, length: dgram.count), want.checksum, v.name)
            // Reading the header at an odd address gives the same fields.
            let shifted = [0x99] + dgram
            XCTAssertEqual(shifted.withUnsafeBytes { DatagramHeader(reading: $0.baseAddress! + 1) }, want, v.name)

            // Swift's encoder produces exactly the vector's bytes.
            let hlen = Int(want.headerLength)
            let ext = Array(dgram[48..<hlen])
            XCTAssertEqual(encode(want, extension: ext, payload: Array(dgram[hlen...])), dgram, "encode \(v.name)")

            let payload = Array(dgram[hlen...])
            if want.flags.contains(.data) && want.flags.contains(.pattern) {
                let mismatch = payload.withUnsafeBytes { p in
                    p.baseAddress.flatMap { PayloadPattern.firstMismatch($0, count: payload.count, streamID: want.streamID, offset: want.offset) }
                }
                XCTAssertEqual(mismatch == nil, v.pattern_ok, v.name)
                XCTAssertEqual(mismatch, v.first_mismatch, v.name)
                sawMismatch = sawMismatch || !v.pattern_ok
                sawUnaligned = sawUnaligned || (want.offset % 8 != 0 && payload.count % 8 != 0)
            }
            if want.flags.contains(.end) {
                sawEnd = true
                let totals = payload.withUnsafeBytes { EndOfStream(reading: $0.baseAddress!) }
                let end = try XCTUnwrap(v.end, v.name)
                XCTAssertEqual(totals, EndOfStream(datagrams: try u64(end.datagrams), bytes: try u64(end.bytes)), v.name)
                XCTAssertEqual(totals.datagrams, want.sequence, "END sequence = total datagrams: \(v.name)")
                XCTAssertEqual(totals.bytes, want.offset, "END offset = total bytes: \(v.name)")
            }
            if hlen > 48 {
                sawExtended = true
                XCTAssertEqual(hex(ext), v.extension_hex, v.name)
            }
            sawEmpty = sawEmpty || (payload.isEmpty && want.flags.contains(.data))
        }
        XCTAssertTrue(sawExtended && sawEnd && sawEmpty && sawUnaligned && sawMismatch,
                      "vector set lost a required case")
    }

    func testInvalidVectors() throws {
        let vectors = try Vectors.invalid()
        XCTAssertGreaterThanOrEqual(vectors.count, 11)
        var reasonsSeen = Set<String>()
        for v in vectors {
            let dgram = try bytes(hex: v.hex)
            let outcome = validate(dgram)
            XCTAssertEqual(outcomeName(outcome), v.reason, v.name)
            reasonsSeen.insert(v.reason)
            switch outcome {
            case .valid:
                XCTFail("\(v.name) accepted")
            case .rejected(let r):
                XCTAssertEqual(Datagram.Rejection(rawValue: v.reason), r, v.name)
            case .badChecksum(let header, let computed):
                // The untrusted header is still returned as read, with the checksum recomputed.
                let fields = try XCTUnwrap(v.fields, v.name)
                XCTAssertEqual(header, try fields.header(), v.name)
                XCTAssertEqual(computed, v.computed_checksum, v.name)
                XCTAssertNotEqual(computed, header.checksum, v.name)
            }
        }
        XCTAssertEqual(reasonsSeen, Set(Datagram.Rejection.allCases.map(\.rawValue) + ["bad_checksum"]),
                       "every outcome is covered by some vector")
    }

    func testEmptyBufferIsTooShort() {
        XCTAssertEqual(outcomeName(Datagram.validate(UnsafeRawBufferPointer(start: nil, count: 0))), "too_short")
    }
}
