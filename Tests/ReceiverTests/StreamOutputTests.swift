import Foundation
import Receiver
import StreamProtocol
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class StreamOutputTests: XCTestCase {
    let stream: UInt64 = 0x1122_3344_5566_7788
    let payload = 1000

    private func datagram(seq: UInt64, payload n: Int? = nil) -> [UInt8] {
        let n = n ?? payload
        var bytes = [UInt8](repeating: 0, count: DatagramHeader.size + n)
        bytes.withUnsafeMutableBytes { buf in
            let offset = seq * UInt64(payload)
            PayloadPattern.fill(buf.baseAddress! + DatagramHeader.size, count: n, streamID: stream, offset: offset)
            Datagram.encode(DatagramHeader(flags: [.data, .pattern], streamID: stream, sequence: seq, offset: offset,
                                           timestampNanoseconds: 1, payloadLength: UInt32(n)), at: buf.baseAddress!)
        }
        return bytes
    }

    private func end(datagrams: UInt64, bytes: UInt64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: DatagramHeader.size + EndOfStream.payloadSize)
        out.withUnsafeMutableBytes { buf in
            EndOfStream(datagrams: datagrams, bytes: bytes).write(to: buf.baseAddress! + DatagramHeader.size)
            Datagram.encode(DatagramHeader(flags: [.end], streamID: stream, sequence: datagrams, offset: bytes,
                                           timestampNanoseconds: 1, payloadLength: 16), at: buf.baseAddress!)
        }
        return out
    }

    private func feed(_ core: inout ValidatingCore, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { core.process($0.baseAddress!, length: $0.count, now: 1, wallNow: 2) }
        core.flushOutput()
    }

    private func expectedBytes(_ range: Range<Int>) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: range.count)
        b.withUnsafeMutableBytes { PayloadPattern.fill($0.baseAddress!, count: range.count, streamID: stream, offset: UInt64(range.lowerBound)) }
        return b
    }

    private func temporaryPath(_ name: String) -> String {
        let path = "/tmp/zc-recv-test-\(getpid())-\(name)"
        unlink(path)
        return path
    }

    private func read(_ path: String) -> [UInt8] {
        (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? []
    }

    func testFileOutputReproducesTheStreamWithHoles() throws {
        let path = temporaryPath("file")
        defer { unlink(path) }
        let target = OutputTarget(.file(path), expectedStreams: 1)
        var core = ValidatingCore(output: target)
        // 20 datagrams (the last would be short), out of order, 5 and 19 lost, 3 duplicated.
        let order: [UInt64] = [0, 1, 2, 4, 3, 3, 6, 8, 7, 9, 10, 12, 11, 13, 14, 15, 16, 17, 18]
        for s in order { feed(&core, datagram(seq: s)) }
        feed(&core, end(datagrams: 20, bytes: 19 * 1000 + 500))
        core.finishOutput()
        core.finalizeOutput(target)
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(out.destination, path)
        XCTAssertEqual(out.bytesWritten, 18 * 1000, "each new payload once, the duplicate not again")
        XCTAssertEqual(out.holes.ranges.map { [$0.lower, $0.upper] }, [[5000, 6000], [19_000, 19_500]])
        XCTAssertEqual(out.holes.count, 2)
        XCTAssertEqual(out.holes.bytes, 1500)
        XCTAssertTrue(out.holesComplete)
        let bytes = read(path)
        XCTAssertEqual(bytes.count, 19_500, "the file has the stream's length: a lost tail is a hole")
        var expected = expectedBytes(0..<19_500)
        for i in 5000..<6000 { expected[i] = 0 }
        for i in 19_000..<19_500 { expected[i] = 0 }
        XCTAssertTrue(bytes == expected, "the file is the stream, holes zero")
    }

    func testSeveralStreamsGetTheirIDAppended() throws {
        let path = temporaryPath("multi")
        defer { unlink(path); unlink(path + ".00000000000000ab") }
        let target = OutputTarget(.file(path), expectedStreams: nil)
        var core = ValidatingCore(output: target)
        feed(&core, datagram(seq: 0))
        var other = datagram(seq: 0)
        other.withUnsafeMutableBytes { buf in
            // Same payload bytes under another stream id (no PATTERN flag).
            Datagram.encode(DatagramHeader(flags: [.data], streamID: 0xAB, sequence: 0, offset: 0, timestampNanoseconds: 1,
                                           payloadLength: UInt32(payload)), at: buf.baseAddress!)
        }
        feed(&core, other)
        core.finishOutput()
        core.finalizeOutput(target)
        XCTAssertEqual(core.streams.map { $0.output?.destination }, [path, path + ".00000000000000ab"])
        XCTAssertEqual(read(path), expectedBytes(0..<1000))
        XCTAssertEqual(read(path + ".00000000000000ab"), expectedBytes(0..<1000))
    }

    func testInOrderOutputReordersWithinTheWindow() throws {
        let path = temporaryPath("inorder")
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let target = OutputTarget(.inOrder(fd: fd, windowBytes: 65_536), expectedStreams: 1)
        var core = ValidatingCore(output: target)
        let order: [UInt64] = [0, 2, 1, 5, 4, 3, 6, 9, 8, 7, 7, 10]
        for s in order { feed(&core, datagram(seq: s)) }
        feed(&core, end(datagrams: 11, bytes: 11_000))
        core.finishOutput()
        core.finalizeOutput(target)
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(out.destination, "-")
        XCTAssertEqual(out.holes.count, 0)
        XCTAssertEqual(out.lateDatagrams, 0)
        XCTAssertEqual(out.bytesWritten, 11_000)
        XCTAssertEqual(read(path), expectedBytes(0..<11_000))
    }

    func testInOrderOutputSkipsWhatTheWindowCannotHold() throws {
        let path = temporaryPath("skip")
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let target = OutputTarget(.inOrder(fd: fd, windowBytes: 65_536), expectedStreams: 1)
        var core = ValidatingCore(output: target)
        // 10 arrives last, after 11...99 pushed its place out of the 64 KiB window.
        for s in UInt64(0)..<100 where s != 10 { feed(&core, datagram(seq: s)) }
        feed(&core, datagram(seq: 10))                   // too late for the in-order output
        feed(&core, end(datagrams: 102, bytes: 102_000)) // 100 and 101 never come
        core.finishOutput()
        core.finalizeOutput(target)
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(out.holes.ranges.map { [$0.lower, $0.upper] }, [[10_000, 11_000], [100_000, 102_000]])
        XCTAssertEqual(out.holes.bytes, 3000)
        XCTAssertEqual(out.lateDatagrams, 1)
        XCTAssertEqual(out.lateBytes, 1000)
        XCTAssertEqual(read(path), expectedBytes(0..<10_000) + expectedBytes(11_000..<100_000), "nothing invented: the gap is skipped")
        XCTAssertEqual(core.streams[0].summary().lost, 2, "the sequence accounting is unaffected (10 did arrive)")
    }

    func testByteRanges() {
        var r = ByteRanges(capacity: 4)
        r.insert(0, 10); r.insert(10, 20)            // extends
        XCTAssertEqual(r.spans, [.init(0, 20)])
        r.insert(30, 40); r.insert(50, 60)
        r.insert(20, 30)                             // joins two
        XCTAssertEqual(r.spans, [.init(0, 40), .init(50, 60)])
        r.insert(70, 80); r.insert(90, 100)
        r.insert(110, 120)                           // fifth disjoint: not kept
        XCTAssertTrue(r.overflowed)
        XCTAssertEqual(r.spans.count, 4)
        r.insert(5, 95)                              // swallows the middle
        XCTAssertEqual(r.spans, [.init(0, 100)])
        let g = ByteRanges().gaps(below: 10)
        XCTAssertEqual(g.count, 1); XCTAssertEqual(g.bytes, 10)
        var list = RangeList(limit: 1)
        list.add(0, 5); list.add(5, 7); list.add(9, 10)
        XCTAssertEqual(list.ranges, [.init(0, 7)])
        XCTAssertEqual(list.count, 2)
        XCTAssertEqual(list.bytes, 8)
    }
}
