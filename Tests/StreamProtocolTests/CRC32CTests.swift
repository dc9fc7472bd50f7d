import StreamProtocol
import TestSupport
import XCTest

final class CRC32CTests: XCTestCase {
    /// Bitwise CRC32C straight from the definition: the oracle for both C paths.
    private func reference(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        }
        return ~c
    }

    func testCheckValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        let portable = Array("123456789".utf8).withUnsafeBytes { CRC32C.portableChecksum($0) }
        XCTAssertEqual(portable, 0xE306_9283)
        XCTAssertEqual(reference(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
    }

    func testVectorFile() throws {
        let vectors = try Vectors.crc()
        XCTAssertGreaterThanOrEqual(vectors.count, 5)
        XCTAssertTrue(vectors.contains { $0.hex == "313233343536373839" && $0.crc32c == 0xE306_9283 })
        for v in vectors {
            let input = try bytes(hex: v.hex)
            XCTAssertEqual(CRC32C.checksum(input), v.crc32c, v.name)
            XCTAssertEqual(input.withUnsafeBytes { CRC32C.portableChecksum($0) }, v.crc32c, v.name)
            XCTAssertEqual(reference(input), v.crc32c, "test oracle disagrees on \(v.name)")
        }
    }

    /// Hardware (when present) and table paths agree with each other and with the
    /// bitwise oracle for every length 0...3000 at starts 0...7 bytes off alignment.
    func testHardwareMatchesPortableOnRandomData() {
        var rng = SplitMix64(seed: 0x5A43_5354)
        let storage = (0..<3100).map { _ in UInt8.random(in: 0...255, using: &rng) }
        storage.withUnsafeBytes { all in
            for length in 0...3000 {
                let start = Int(rng.next() % 8)
                let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                let fast = CRC32C.checksum(slice)
                let portable = CRC32C.portableChecksum(slice)
                if fast != portable {
                    XCTFail("length \(length) start \(start): checksum \(fast) portable \(portable)")
                    return
                }
                // The bitwise oracle is slow: check it on a sample of lengths.
                if length < 80 || length % 97 == 0 {
                    XCTAssertEqual(fast, reference(slice), "length \(length) start \(start)")
                }
            }
        }
    }

    /// crc(a + b) == crc(b, continuing: crc(a)) on both paths, at any split point.
    func testContinuation() {
        var rng = SplitMix64(seed: 42)
        let data = (0..<1500).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let whole = CRC32C.checksum(data)
        data.withUnsafeBytes { all in
            for split in [0, 1, 3, 7, 8, 9, 44, 48, 777, 1499, 1500] {
                let a = UnsafeRawBufferPointer(rebasing: all[0..<split])
                let b = UnsafeRawBufferPointer(rebasing: all[split...])
                XCTAssertEqual(CRC32C.checksum(b, continuing: CRC32C.checksum(a)), whole, "split \(split)")
                XCTAssertEqual(CRC32C.portableChecksum(b, continuing: CRC32C.portableChecksum(a)), whole,
                               "portable split \(split)")
                XCTAssertEqual(CRC32C.checksum(b.baseAddress!, count: b.count,
                                               continuing: CRC32C.checksum(a)), whole, "pointer split \(split)")
            }
        }
    }

    func testHardwareFlagIsConsistentWithCPU() {
        #if arch(x86_64)
        // Every x86-64 machine this runs on in practice has SSE4.2; if not, the
        // portable path is in use and the comparisons above are trivially equal.
        if !CRC32C.usesHardware { print("note: CRC32C hardware path not in use on this CPU") }
        #else
        XCTAssertFalse(CRC32C.usesHardware)
        #endif
    }
}
