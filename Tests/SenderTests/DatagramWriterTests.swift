import Sender
import StreamProtocol
import XCTest

final class DatagramWriterTests: XCTestCase {
    private func decodeAll(_ buf: UnsafeRawBufferPointer, datagramSize: Int) -> [DatagramHeader] {
        var out: [DatagramHeader] = []
        var p = 0
        while p < buf.count {
            let len = min(datagramSize, buf.count - p)
            guard case .valid(let h) = Datagram.validate(UnsafeRawBufferPointer(rebasing: buf[p..<(p + len)])) else {
                XCTFail("datagram at \(p) invalid"); return out
            }
            out.append(h)
            p += len
        }
        return out
    }

    func testFillsWholeSealedDatagramsForGSO() {
        var w = DatagramWriter(streamID: 42, datagramSize: 1472, limit: StreamLimit(datagrams: 100), faults: FaultInjection())
        let slot = UnsafeMutableRawBufferPointer.allocate(byteCount: 44 * 1472, alignment: 4096)
        defer { slot.deallocate() }
        let (bytes, n) = w.fill(slot.baseAddress!, maxSegments: 44)
        XCTAssertEqual(n, 44)
        XCTAssertEqual(bytes, 44 * 1472)
        let headers = decodeAll(UnsafeRawBufferPointer(rebasing: slot[0..<bytes]), datagramSize: 1472)
        XCTAssertEqual(headers.map(\.sequence), Array(0..<44))
        XCTAssertEqual(headers[3].offset, 3 * 1424)
        XCTAssertTrue(headers.allSatisfy { $0.flags == [.data, .pattern] && $0.streamID == 42 })
        for h in headers {
            let payload = slot.baseAddress! + Int(h.sequence) * 1472 + 48
            XCTAssertNil(PayloadPattern.firstMismatch(payload, count: 1424, streamID: 42, offset: h.offset))
        }
    }

    /// --source fixed: the payload is placed once per slot; every fill writes headers only,
    /// and the combined checksum (header CRC shifted past the payload's) validates.
    func testFixedPayloadSealsHeadersOnly() {
        for size in [1472, 8972, 100] {
            var w = DatagramWriter(streamID: 7, datagramSize: size, limit: StreamLimit(payloadBytes: UInt64(3 * 44 * (size - 48) - 5)),
                                   faults: FaultInjection(), fixedPayload: true)
            XCTAssertTrue(w.isFixedPayload)
            let slot = UnsafeMutableRawBufferPointer.allocate(byteCount: 44 * size, alignment: 4096)
            defer { slot.deallocate() }
            w.prepareSlot(slot.baseAddress!, maxSegments: 44)
            var sequences: [UInt64] = []
            for _ in 0..<3 {
                let (bytes, n) = w.fill(slot.baseAddress!, maxSegments: 44)
                XCTAssertGreaterThan(n, 0)
                let headers = decodeAll(UnsafeRawBufferPointer(rebasing: slot[0..<bytes]), datagramSize: size)
                XCTAssertTrue(headers.allSatisfy { $0.flags == [.data] && $0.streamID == 7 }, "opaque DATA, no PATTERN flag")
                sequences += headers.map(\.sequence)
            }
            XCTAssertEqual(sequences, Array(0..<UInt64(3 * 44)), "size \(size)")
            XCTAssertTrue(w.isExhausted)
        }
    }

    func testByteLimitMakesLastDatagramShortAndEndsStream() {
        var w = DatagramWriter(streamID: 1, datagramSize: 148, limit: StreamLimit(payloadBytes: 250), faults: FaultInjection())
        let slot = UnsafeMutableRawBufferPointer.allocate(byteCount: 10 * 148, alignment: 64)
        defer { slot.deallocate() }
        let (bytes, n) = w.fill(slot.baseAddress!, maxSegments: 10)
        XCTAssertEqual(n, 3) // 100 + 100 + 50
        XCTAssertEqual(bytes, 148 * 2 + 98)
        XCTAssertTrue(w.isExhausted)
        XCTAssertEqual(w.payloadBytesCovered, 250)
        XCTAssertEqual(w.fill(slot.baseAddress!, maxSegments: 10).datagrams, 0)
        let endLength = w.writeEnd(at: slot.baseAddress!)
        guard case .valid(let h) = Datagram.validate(UnsafeRawBufferPointer(rebasing: slot[0..<endLength])) else {
            return XCTFail("END invalid")
        }
        XCTAssertEqual(h.flags, .end)
        XCTAssertEqual(EndOfStream(reading: slot.baseAddress! + 48), EndOfStream(datagrams: 3, bytes: 250))
    }

    func testFaultsLandWhereScheduled() {
        var f = FaultInjection()
        f.corrupt = 1; f.skip = 1; f.reorder = 1; f.duplicate = 1
        var w = DatagramWriter(streamID: 3, datagramSize: 100, limit: StreamLimit(datagrams: 1000), faults: f)
        let slot = UnsafeMutableRawBufferPointer.allocate(byteCount: 100, alignment: 64)
        defer { slot.deallocate() }
        var order: [UInt64] = []
        var corrupt: [UInt64] = []
        while true {
            let (_, n) = w.fill(slot.baseAddress!, maxSegments: 1)
            if n == 0 { break }
            // Single-segment slots cannot hold a swapped pair: those come out 2 at a time
            // only with room; here the writer must still make progress.
            switch Datagram.validate(UnsafeRawBufferPointer(slot)) {
            case .valid(let h): order.append(h.sequence)
            case .badChecksum(let h, _): corrupt.append(h.sequence); order.append(h.sequence)
            case .rejected(let r): XCTFail("\(r)")
            }
        }
        XCTAssertEqual(corrupt, [101])
        XCTAssertFalse(order.contains(303), "303 is skipped")
        XCTAssertEqual(w.injected.corrupted, 1)
        XCTAssertEqual(w.injected.skipped, 1)
    }

    func testReorderAndDuplicateWithRoom() {
        var f = FaultInjection()
        f.reorder = 1; f.duplicate = 1
        var w = DatagramWriter(streamID: 3, datagramSize: 64, limit: StreamLimit(datagrams: 800), faults: f)
        let slot = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 16, alignment: 64)
        defer { slot.deallocate() }
        var order: [UInt64] = []
        while true {
            let (bytes, n) = w.fill(slot.baseAddress!, maxSegments: 16)
            if n == 0 { break }
            order += decodeAll(UnsafeRawBufferPointer(rebasing: slot[0..<bytes]), datagramSize: 64).map(\.sequence)
        }
        let i = order.firstIndex(of: 506)!
        XCTAssertEqual(order[i + 1], 505, "505 and 506 swapped")
        XCTAssertEqual(order.filter { $0 == 707 }.count, 2, "707 sent twice")
        XCTAssertEqual(order.count, 801)
        XCTAssertEqual(w.injected.reordered, 1)
        XCTAssertEqual(w.injected.duplicated, 1)
    }
}
