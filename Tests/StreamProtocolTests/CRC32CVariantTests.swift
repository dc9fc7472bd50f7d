import StreamProtocol
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Every CRC32C kernel this CPU runs against the portable one, and the fused
/// pattern kernels against pattern-then-CRC.
final class CRC32CVariantTests: XCTestCase {
    /// The hardware variants this machine runs (portable is the reference).
    private var fast: [CRC32C.Variant] { CRC32C.Variant.supported.filter { $0 != .portable } }

    func testVariantsReported() {
        XCTAssertTrue(CRC32C.Variant.portable.isSupported)
        XCTAssertTrue(CRC32C.active.isSupported)
        XCTAssertEqual(CRC32C.Variant(name: "vpclmulqdq-avx512"), .avx512)
        XCTAssertNil(CRC32C.Variant(name: "nope"))
        print("CRC32C: active \(CRC32C.active); supported \(CRC32C.Variant.supported)")
        #if arch(x86_64)
        XCTAssertTrue(CRC32C.Variant.sse42.isSupported, "every x86-64 machine this runs on has SSE4.2")
        #endif
    }

    func testSelectForcesAVariant() {
        let before = CRC32C.active
        defer { CRC32C.select(before) }
        for v in CRC32C.Variant.supported {
            XCTAssertTrue(CRC32C.select(v))
            XCTAssertEqual(CRC32C.active, v)
            XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283, "\(v)")
        }
        for v in CRC32C.Variant.allCases where !v.isSupported { XCTAssertFalse(CRC32C.select(v)) }
    }

    func testVectorsOnEveryVariant() throws {
        for v in try Vectors.crc() {
            let input = try bytes(hex: v.hex)
            for variant in CRC32C.Variant.supported {
                XCTAssertEqual(input.withUnsafeBytes { CRC32C.checksum($0, variant: variant) }, v.crc32c, "\(v.name) \(variant)")
            }
        }
    }

    /// Lengths 0...9000 at every start alignment 0...63, continuing from a nonzero CRC.
    func testEveryLengthAndAlignmentMatchesPortable() {
        var rng = SplitMix64(seed: 0xC0FFEE)
        let storage = (0..<(9000 + 64)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let variants = fast
        storage.withUnsafeBytes { all in
            for length in 0...9000 {
                for align in 0..<64 {
                    let slice = UnsafeRawBufferPointer(rebasing: all[align..<(align + length)])
                    let seed = UInt32(truncatingIfNeeded: length &* 2_654_435_761 &+ align)
                    let want = CRC32C.checksum(slice, continuing: seed, variant: .portable)
                    for v in variants where CRC32C.checksum(slice, continuing: seed, variant: v) != want {
                        XCTFail("\(v): length \(length) alignment \(align)")
                        return
                    }
                }
            }
        }
    }

    /// The fused fill writes exactly the pattern (nothing outside the range) and returns
    /// the CRC of what it wrote; the fused check agrees and finds any flipped byte.
    func testFusedPatternMatchesPatternThenCRC() {
        let capacity = 9000 + 128
        let want = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        let got = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        defer { want.deallocate(); got.deallocate() }
        var rng = SplitMix64(seed: 11)
        for variant in CRC32C.Variant.supported {
            for length in 0...9000 {
                let streamID = rng.next()
                // Offsets at every residue mod 8 and spread over the whole stream space.
                let offset = (length % 3 == 0 ? rng.next() >> 8 : UInt64(length * 1424)) &+ UInt64(length % 8)
                let align = (length &* 7) % 64
                let seed = UInt32(truncatingIfNeeded: rng.next())
                PayloadPattern.fill(want, count: length, streamID: streamID, offset: offset)
                let reference = CRC32C.checksum(UnsafeRawBufferPointer(start: want, count: length), continuing: seed, variant: .portable)
                memset(got, 0xEE, capacity)
                let crc = PayloadPattern.fillChecksummed(got + align, count: length, streamID: streamID, offset: offset,
                                                         continuing: seed, variant: variant)
                guard crc == reference, memcmp(got + align, want, length) == 0,
                      (align == 0 || got.load(fromByteOffset: align - 1, as: UInt8.self) == 0xEE),
                      got.load(fromByteOffset: align + length, as: UInt8.self) == 0xEE else {
                    XCTFail("fill \(variant): length \(length) offset \(offset) alignment \(align)")
                    return
                }
                let clean = PayloadPattern.checkChecksummed(got + align, count: length, streamID: streamID, offset: offset,
                                                            continuing: seed, variant: variant)
                guard clean.crc == reference, clean.matches else {
                    XCTFail("check \(variant): length \(length) offset \(offset): clean payload rejected")
                    return
                }
                guard length > 0 else { continue }
                let victim = Int(rng.next() % UInt64(length))
                let p = got + align + victim
                p.storeBytes(of: p.load(as: UInt8.self) ^ UInt8(1 << (rng.next() % 8)), as: UInt8.self)
                let dirty = PayloadPattern.checkChecksummed(got + align, count: length, streamID: streamID, offset: offset,
                                                            continuing: seed, variant: variant)
                let dirtyCRC = CRC32C.checksum(UnsafeRawBufferPointer(start: got + align, count: length), continuing: seed,
                                               variant: .portable)
                guard !dirty.matches, dirty.crc == dirtyCRC else {
                    XCTFail("check \(variant): length \(length) offset \(offset): byte \(victim) flipped, not found")
                    return
                }
            }
        }
    }

    /// Near 2^64 the fused paths fall back to the reference semantics.
    func testFusedPatternAcrossTheEndOfStreamSpace() {
        var a = [UInt8](repeating: 0, count: 64), b = a
        let offset = UInt64.max - 20
        a.withUnsafeMutableBytes { PayloadPattern.fill($0.baseAddress!, count: 64, streamID: 5, offset: offset) }
        let crc = b.withUnsafeMutableBytes { PayloadPattern.fillChecksummed($0.baseAddress!, count: 64, streamID: 5, offset: offset) }
        XCTAssertEqual(a, b)
        XCTAssertEqual(crc, CRC32C.checksum(a))
        let r = b.withUnsafeBytes { PayloadPattern.checkChecksummed($0.baseAddress!, count: 64, streamID: 5, offset: offset) }
        XCTAssertEqual(r.crc, crc)
        XCTAssertFalse(r.matches, "a range past 2^64 never verifies (SPEC §8)")
    }

    func testCombine() {
        var rng = SplitMix64(seed: 3)
        let data = (0..<3000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let whole = CRC32C.checksum(data)
        for split in [0, 1, 47, 48, 1472, 2999, 3000] {
            let a = CRC32C.checksum(data[..<split]), b = CRC32C.checksum(data[split...])
            XCTAssertEqual(CRC32C.combine(a, b, lengthB: 3000 - split), whole, "split \(split)")
            XCTAssertEqual(CRC32C.Combiner(lengthB: 3000 - split).combine(a, b), whole, "table split \(split)")
        }
    }

    /// Combiner.seal (--source fixed): header CRC by the crc32 instruction, shifted past the
    /// payload, in the checksum field: equal to sealing header and payload the long way, on
    /// every variant.
    func testSealFixedMatchesFullChecksum() {
        var rng = SplitMix64(seed: 5)
        let before = CRC32C.active
        defer { CRC32C.select(before) }
        for variant in CRC32C.Variant.supported {
            CRC32C.select(variant)
            for payload in [0, 1, 100, 1424, 8924] {
                let d = UnsafeMutableRawPointer.allocate(byteCount: 48 + payload, alignment: 64)
                defer { d.deallocate() }
                for i in 0..<(48 + payload) { d.storeBytes(of: UInt8.random(in: 0...255, using: &rng), toByteOffset: i, as: UInt8.self) }
                d.storeBytes(of: UInt32(0), toByteOffset: 44, as: UInt32.self)
                let want = CRC32C.checksum(UnsafeRawBufferPointer(start: d, count: 48 + payload), variant: .portable)
                let payloadCRC = CRC32C.checksum(UnsafeRawBufferPointer(start: d + 48, count: payload), variant: .portable)
                CRC32C.Combiner(lengthB: payload).seal(d, payloadCRC: payloadCRC)
                XCTAssertEqual(UInt32(bigEndian: d.load(fromByteOffset: 44, as: UInt32.self)), want, "\(variant), payload \(payload)")
            }
        }
    }

    /// validate(_:length:patternMatches:) checks checksum and pattern in one pass, with the
    /// same verdicts as validate + firstMismatch, on every variant.
    func testValidateWithPattern() {
        let before = CRC32C.active
        defer { CRC32C.select(before) }
        for variant in CRC32C.Variant.supported {
            CRC32C.select(variant)
            for payload in [0, 1, 7, 100, 1424, 8924] {
                var d = [UInt8](repeating: 0, count: DatagramHeader.size + payload)
                let offset = UInt64(payload * 3 + 5)
                d.withUnsafeMutableBytes { b in
                    let p = b.baseAddress!
                    if payload > 0 { PayloadPattern.fill(p + DatagramHeader.size, count: payload, streamID: 9, offset: offset) }
                    Datagram.encode(DatagramHeader(flags: [.data, .pattern], streamID: 9, sequence: 1, offset: offset,
                                                   timestampNanoseconds: 1, payloadLength: UInt32(payload)), at: p)
                }
                var ok = false
                let v = d.withUnsafeBytes { Datagram.validate($0.baseAddress!, length: $0.count, patternMatches: &ok) }
                guard case .valid = v, ok else { XCTFail("\(variant) \(payload): intact datagram refused"); continue }
                // A damaged header byte (sequence, timestamp) fails the checksum too.
                for i in [20, 36] {
                    d[i] ^= 0x01
                    let hurt = d.withUnsafeBytes { Datagram.validate($0.baseAddress!, length: $0.count, patternMatches: &ok) }
                    if case .badChecksum = hurt {} else { XCTFail("\(variant) \(payload): header damage at \(i) not caught") }
                    d[i] ^= 0x01
                }
                guard payload > 0 else { continue }
                d[DatagramHeader.size + payload / 2] ^= 0x40
                let bad = d.withUnsafeBytes { Datagram.validate($0.baseAddress!, length: $0.count, patternMatches: &ok) }
                guard case .badChecksum = bad else { XCTFail("\(variant) \(payload): damage not caught"); continue }
                for i in 44..<48 { d[i] = 0 } // seal wants the checksum field zero
                d.withUnsafeMutableBytes { Datagram.seal($0.baseAddress!, length: $0.count) }
                let resealed = d.withUnsafeBytes { Datagram.validate($0.baseAddress!, length: $0.count, patternMatches: &ok) }
                guard case .valid = resealed, !ok else { XCTFail("\(variant) \(payload): pattern damage not caught"); continue }
            }
        }
    }

    /// Datagram.sealPattern (header CRC + fused payload in one call) == fill, then encode.
    func testSealPatternMatchesFillThenEncode() {
        for (payload, offset) in [(0, UInt64(0)), (1424, 1424 * 9), (8924, 8924 * 3), (1000, UInt64.max - 500), (77, 5)] {
            let h = DatagramHeader(flags: [.data, .pattern], streamID: 0x77, sequence: 3, offset: offset,
                                   timestampNanoseconds: 9, payloadLength: UInt32(payload))
            var want = [UInt8](repeating: 0, count: 48 + payload), got = want
            want.withUnsafeMutableBytes { b in
                PayloadPattern.fill(b.baseAddress! + 48, count: payload, streamID: 0x77, offset: offset)
                Datagram.encode(h, at: b.baseAddress!)
            }
            let crc = got.withUnsafeMutableBytes { b in
                h.write(to: b.baseAddress!)
                return Datagram.sealPattern(b.baseAddress!, payloadLength: payload, streamID: 0x77, offset: offset)
            }
            XCTAssertEqual(got, want, "payload \(payload) offset \(offset)")
            XCTAssertEqual(crc, DatagramHeader(reading: want.withUnsafeBytes { $0.baseAddress! }).checksum)
        }
    }
}
