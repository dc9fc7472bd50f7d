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

    /// A live source that pauses (the reader answers noMoreForNow): the bytes read so far
    /// go out as a short datagram at once, the next datagram continues at the running
    /// offset, nothing ends the stream until the reader reports end of input, and a
    /// byte limit still ends it after exactly its bytes.
    func testLiveSourceFlushesShortDatagramsAtRunningOffsets() {
        let slot = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 * 148, alignment: 64)
        defer { slot.deallocate() }
        // Script of reader answers: bytes, pause, end.
        var script: [Int] = [6, DatagramWriter.noMoreForNow, DatagramWriter.noMoreForNow, 100, 100, DatagramWriter.noMoreForNow, 0]
        var offsets: [UInt64] = []
        var w = DatagramWriter(streamID: 7, datagramSize: 148, limit: StreamLimit(), faults: FaultInjection(), patternPayload: false)
        func fill() -> (bytes: Int, datagrams: Int) {
            let r = w.fill(slot.baseAddress!, maxSegments: 4) { dst, count, offset in
                let next = script.removeFirst()
                if next > 0 { offsets.append(offset); memset(dst, 0x41, min(next, count)); return min(next, count) }
                return next
            }
            XCTAssertEqual(r.error, 0)
            return (r.bytes, r.datagrams)
        }
        // "hello\n" then a pause: one 6-byte datagram, stream still open.
        var r = fill()
        XCTAssertEqual(r.datagrams, 1)
        XCTAssertEqual(r.bytes, 48 + 6)
        XCTAssertFalse(w.isExhausted)
        // Nothing for now: no datagram, still open.
        r = fill()
        XCTAssertEqual(r.datagrams, 0)
        XCTAssertFalse(w.isExhausted)
        // 100 + 100 bytes fill one 100-byte payload and start the next: a full datagram at
        // offset 6, then 100 bytes, a pause, a 0 (end of input) in the next call.
        r = fill()
        XCTAssertEqual(r.datagrams, 2)
        let headers = decodeAll(UnsafeRawBufferPointer(rebasing: slot[0..<r.bytes]), datagramSize: 148)
        XCTAssertEqual(headers.map(\.offset), [6, 106])
        XCTAssertEqual(headers.map(\.payloadLength), [100, 100])
        XCTAssertEqual(headers.map(\.sequence), [1, 2])
        r = fill()
        XCTAssertEqual(r.datagrams, 0)
        XCTAssertTrue(w.isExhausted)
        XCTAssertEqual(w.payloadBytesCovered, 206)
        XCTAssertEqual(offsets, [0, 6, 106])

        // --bytes 300 with a pause after 10 bytes: 10 + 100 + 100 + 90, four datagrams.
        var bounded = DatagramWriter(streamID: 8, datagramSize: 148, limit: StreamLimit(payloadBytes: 300), faults: FaultInjection(),
                                     patternPayload: false)
        script = [10, DatagramWriter.noMoreForNow]
        var sent = 0
        var lengths: [UInt32] = []
        while !bounded.isExhausted && sent < 10 {
            let out = bounded.fill(slot.baseAddress!, maxSegments: 4) { dst, count, _ in
                let next = script.isEmpty ? count : script.removeFirst()
                if next > 0 { memset(dst, 0x42, min(next, count)); return min(next, count) }
                return next
            }
            lengths += decodeAll(UnsafeRawBufferPointer(rebasing: slot[0..<out.bytes]), datagramSize: 148).map(\.payloadLength)
            sent += 1
        }
        XCTAssertEqual(lengths, [10, 100, 100, 90])
        XCTAssertEqual(bounded.payloadBytesCovered, 300)
    }
}
