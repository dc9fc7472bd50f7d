import StreamProtocol
import TestSupport
import XCTest

/// Payload ranges that run past stream byte 2^64 (found by Tools/fuzz, input kept as
/// Fuzz/regressions/pattern-across-2to64). Senders must not send them (SPEC §2); a
/// receiver must not trap and should count a PATTERN one as corrupt (SPEC §8).
final class PatternEndOfSpaceTests: XCTestCase {
    let sid: UInt64 = 0x0123_4567_89AB_CDEF

    private func fill(offset: UInt64, count: Int) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: count)
        buf.withUnsafeMutableBytes { PayloadPattern.fill($0.baseAddress!, count: count, streamID: sid, offset: offset) }
        return buf
    }

    private func mismatch(_ bytes: [UInt8], offset: UInt64) -> Int? {
        bytes.withUnsafeBytes { PayloadPattern.firstMismatch($0.baseAddress!, count: bytes.count, streamID: sid, offset: offset) }
    }

    func testFillAcrossTheEndContinuesTheWordsLikeThePythonReference() {
        // zcstream.py: pattern(0x0123456789ABCDEF, 2**64 - 3, 8) and (2**64 - 11, 19).
        XCTAssertEqual(hex(fill(offset: .max - 2, count: 8)), "4523a1fab1e1f6de")
        XCTAssertEqual(hex(fill(offset: .max - 10, count: 19)), "c3eb00efcdab89674523a1fab1e1f6de3c143f")
    }

    func testARangeAcrossTheEndNeverVerifies() {
        // Even the sender's own bytes fail at the first byte at 2^64 (SPEC §8).
        XCTAssertEqual(mismatch(fill(offset: .max - 2, count: 8), offset: .max - 2), 3)
        XCTAssertEqual(mismatch(fill(offset: .max - 10, count: 19), offset: .max - 10), 11)
        XCTAssertEqual(mismatch(fill(offset: .max, count: 40), offset: .max), 1)
        // An earlier difference is still reported first.
        var bytes = fill(offset: .max - 10, count: 19)
        bytes[4] ^= 1
        XCTAssertEqual(mismatch(bytes, offset: .max - 10), 4)
    }

    func testARangeEndingExactlyAtTheEndVerifies() {
        // offset + count == 2^64 is allowed (vector data_pattern_max_values).
        XCTAssertNil(mismatch(fill(offset: .max - 7, count: 8), offset: .max - 7))
        XCTAssertNil(mismatch(fill(offset: .max - 1499, count: 1500), offset: .max - 1499))
        XCTAssertNil(mismatch(fill(offset: .max, count: 1), offset: .max))
    }
}
