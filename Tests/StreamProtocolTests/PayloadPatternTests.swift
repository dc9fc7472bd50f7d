import StreamProtocol
import TestSupport
import XCTest

final class PayloadPatternTests: XCTestCase {
    /// The pattern from the spec's definition, written independently of the library:
    /// byte b = byte (b % 8), little-endian, of W(b / 8) = ((b/8 + 1) * M mod 2^64) XOR id.
    private func reference(streamID: UInt64, offset: UInt64, count: Int) -> [UInt8] {
        (0..<count).map { i in
            let b = offset &+ UInt64(i)
            let w = ((b / 8) &+ 1).multipliedReportingOverflow(by: 0x9E37_79B9_7F4A_7C15).partialValue ^ streamID
            return UInt8(truncatingIfNeeded: w >> (8 * (b % 8)))
        }
    }

    private func filled(streamID: UInt64, offset: UInt64, count: Int, slack: Int = 0) -> [UInt8] {
        // Fill at an unaligned position inside a bigger buffer to exercise the API's unaligned stores.
        var buf = [UInt8](repeating: 0xAA, count: count + slack + 16)
        buf.withUnsafeMutableBytes { PayloadPattern.fill($0.baseAddress! + slack, count: count, streamID: streamID, offset: offset) }
        XCTAssertTrue(buf[..<slack].allSatisfy { $0 == 0xAA }, "fill wrote before its start")
        XCTAssertTrue(buf[(slack + count)...].allSatisfy { $0 == 0xAA }, "fill wrote past its end")
        return Array(buf[slack..<(slack + count)])
    }

    func testWorkedExampleFromSpec() {
        // SPEC.md: stream id 0x0123456789ABCDEF, offset 0, 16 bytes.
        let sid: UInt64 = 0x0123_4567_89AB_CDEF
        XCTAssertEqual(PayloadPattern.word(streamID: sid, index: 0), 0x9F14_3CDE_F6E1_B1FA)
        XCTAssertEqual(PayloadPattern.word(streamID: sid, index: 1), 0x3D4D_B615_773F_35C5)
        XCTAssertEqual(hex(filled(streamID: sid, offset: 0, count: 16)), "fab1e1f6de3c149fc5353f7715b64d3d")
        // Offset 13: bytes 5..7 of W(1), then W(2).
        XCTAssertEqual(hex(filled(streamID: sid, offset: 13, count: 8)), "b64d3dd0b974f44b")
        XCTAssertEqual(PayloadPattern.byte(streamID: sid, offset: 0), 0xFA)
        XCTAssertEqual(PayloadPattern.byte(streamID: sid, offset: 7), 0x9F)
        XCTAssertEqual(PayloadPattern.byte(streamID: sid, offset: 8), 0xC5)
    }

    func testFillMatchesDefinitionAtManyOffsetsAndLengths() {
        let ids: [UInt64] = [0, 0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210, .max]
        let bases: [UInt64] = [0, 1 << 20, (1 << 40) + 3, UInt64.max - 4096]
        for sid in ids {
            for base in bases {
                for delta in UInt64(0)..<17 {
                    for count in [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 64, 100, 1472] {
                        let offset = base + delta
                        let got = filled(streamID: sid, offset: offset, count: count, slack: Int(delta % 5))
                        let want = reference(streamID: sid, offset: offset, count: count)
                        if got != want {
                            XCTFail("fill sid \(sid) offset \(offset) count \(count)")
                            return
                        }
                        got.withUnsafeBytes {
                            XCTAssertNil(PayloadPattern.firstMismatch($0.baseAddress!, count: count, streamID: sid, offset: offset),
                                         "clean fill reported a mismatch: sid \(sid) offset \(offset) count \(count)")
                        }
                    }
                }
            }
        }
    }

    /// Pieces of a stream filled separately join into the same bytes as one fill.
    func testSplitFillsConcatenate() {
        let sid: UInt64 = 0xDEAD_BEEF_0BAD_F00D
        let whole = filled(streamID: sid, offset: 5, count: 300)
        var joined: [UInt8] = []
        var at = 0
        for piece in [1, 6, 9, 13, 8, 64, 3, 196] {
            joined += filled(streamID: sid, offset: 5 + UInt64(at), count: piece)
            at += piece
        }
        XCTAssertEqual(at, 300)
        XCTAssertEqual(joined, whole)
    }

    /// A single flipped byte is reported at its exact index, wherever it is
    /// (unaligned head, word body, tail) and however the buffer is aligned.
    func testFlippedByteFoundAtItsIndex() {
        let sid: UInt64 = 0xFEDC_BA98_7654_3210
        for offset: UInt64 in [0, 1, 3, 7, 8, 13, 1000, (1 << 33) + 5] {
            for count in [1, 5, 8, 9, 23, 64, 129] {
                for slack in [0, 3] {
                    var buf = [UInt8](repeating: 0, count: count + slack)
                    buf.withUnsafeMutableBytes {
                        PayloadPattern.fill($0.baseAddress! + slack, count: count, streamID: sid, offset: offset)
                    }
                    for victim in 0..<count {
                        for mask: UInt8 in [0x01, 0x80] {
                            buf[slack + victim] ^= mask
                            let found = buf.withUnsafeBytes {
                                PayloadPattern.firstMismatch($0.baseAddress! + slack, count: count, streamID: sid, offset: offset)
                            }
                            buf[slack + victim] ^= mask
                            if found != victim {
                                XCTFail("offset \(offset) count \(count) slack \(slack) victim \(victim): found \(String(describing: found))")
                                return
                            }
                        }
                    }
                }
            }
        }
    }

    /// With several bad bytes the first one is reported.
    func testFirstOfSeveralMismatches() {
        let sid: UInt64 = 7
        var buf = [UInt8](repeating: 0, count: 100)
        buf.withUnsafeMutableBytes { PayloadPattern.fill($0.baseAddress!, count: 100, streamID: sid, offset: 3) }
        buf[90] ^= 1; buf[41] ^= 1; buf[60] ^= 1
        XCTAssertEqual(buf.withUnsafeBytes { PayloadPattern.firstMismatch($0.baseAddress!, count: 100, streamID: sid, offset: 3) }, 41)
        // Stream id 8 instead of 7 differs only in the low byte of every word: at
        // offset 3 the first such byte is payload index 5 (stream byte 8).
        XCTAssertEqual(buf.withUnsafeBytes { PayloadPattern.firstMismatch($0.baseAddress!, count: 100, streamID: sid + 1, offset: 3) }, 5)
        XCTAssertEqual(buf.withUnsafeBytes { PayloadPattern.firstMismatch($0.baseAddress!, count: 100, streamID: sid | 1 << 63, offset: 3) }, 4)
        XCTAssertNotNil(buf.withUnsafeBytes { PayloadPattern.firstMismatch($0.baseAddress!, count: 100, streamID: sid, offset: 11) })
    }
}
