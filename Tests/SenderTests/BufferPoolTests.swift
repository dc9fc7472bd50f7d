import StreamProtocol
import XCTest

import Sender

/// The pool's geometry: every slot's payloads line-aligned, slots disjoint and inside
/// the one registered region, a free list that hands the last returned slot out first.
final class BufferPoolTests: XCTestCase {
    func testPayloadsStartOnCacheLinesAndSlotsStayInsideTheRegion() throws {
        let datagram = 1472, segments = 44
        let pool = try BufferPool(slots: 8, slotBytes: segments * datagram, leadBytes: DatagramHeader.payloadLineLead)
        XCTAssertEqual(DatagramHeader.payloadLineLead, 16)
        let region = pool.region
        for slot in 0..<pool.count {
            let start = pool.address(of: slot)
            for s in 0..<segments {
                let payload = UInt(bitPattern: start + s * datagram + DatagramHeader.size)
                XCTAssertEqual(payload % 64, 0, "slot \(slot) segment \(s): payload not on a cache line")
            }
            let end = start + segments * datagram
            XCTAssertGreaterThanOrEqual(start, region.baseAddress!)
            XCTAssertLessThanOrEqual(end, region.baseAddress! + region.count)
            if slot + 1 < pool.count { XCTAssertLessThanOrEqual(end, pool.address(of: slot + 1), "slot \(slot) overlaps the next") }
        }
    }

    func testWithoutLeadSlotsArePageAligned() throws {
        let pool = try BufferPool(slots: 3, slotBytes: 10_000)
        XCTAssertEqual(pool.slotBytes % 4096, 0)
        for slot in 0..<3 { XCTAssertEqual(UInt(bitPattern: pool.address(of: slot)) % 4096, 0) }
    }

    func testFreeListIsLastInFirstOut() throws {
        var pool = try BufferPool(slots: 4, slotBytes: 4096, leadBytes: 16)
        let a = try XCTUnwrap(pool.take()), b = try XCTUnwrap(pool.take())
        XCTAssertEqual(pool.inUse, 2)
        pool.give(a)
        XCTAssertEqual(pool.take(), a, "the slot returned last is warm: it goes out first")
        pool.give(b); pool.give(a)
        XCTAssertEqual(pool.inUse, 0)
        for _ in 0..<4 { XCTAssertNotNil(pool.take()) }
        XCTAssertNil(pool.take())
        XCTAssertTrue(pool.isEmpty)
    }
}
