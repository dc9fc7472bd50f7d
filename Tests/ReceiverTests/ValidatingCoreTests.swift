import Receiver
import StreamProtocol
import XCTest

final class ValidatingCoreTests: XCTestCase {
    /// A sealed PATTERN datagram for (stream, seq) with `payload` bytes.
    private func datagram(stream: UInt64, seq: UInt64, payload: Int = 100) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: DatagramHeader.size + payload)
        bytes.withUnsafeMutableBytes { buf in
            let offset = seq * UInt64(payload)
            PayloadPattern.fill(buf.baseAddress! + DatagramHeader.size, count: payload, streamID: stream, offset: offset)
            Datagram.encode(DatagramHeader(flags: [.data, .pattern], streamID: stream, sequence: seq, offset: offset,
                                           timestampNanoseconds: 1, payloadLength: UInt32(payload)), at: buf.baseAddress!)
        }
        return bytes
    }

    private func end(stream: UInt64, datagrams: UInt64, bytes: UInt64) -> [UInt8] {
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
    }

    func testTwoStreamsAccountedSeparately() {
        var core = ValidatingCore()
        for s in UInt64(0)..<10 { feed(&core, datagram(stream: 7, seq: s)) }
        for s in UInt64(0)..<5 where s != 2 { feed(&core, datagram(stream: 9, seq: s)) }
        feed(&core, end(stream: 7, datagrams: 10, bytes: 1000))
        feed(&core, end(stream: 9, datagrams: 5, bytes: 500))
        XCTAssertEqual(core.streams.count, 2)
        XCTAssertEqual(core.streamsEnded, 2)
        let a = core.streams.first { $0.streamID == 7 }!
        let b = core.streams.first { $0.streamID == 9 }!
        XCTAssertTrue(a.isComplete)
        XCTAssertFalse(b.isComplete)
        XCTAssertEqual(a.summary().lost, 0)
        XCTAssertEqual(b.summary().lost, 1)
        XCTAssertEqual(b.summary().lostRanges, [2...2])
        XCTAssertFalse(core.allComplete(streams: 2))
    }

    func testChecksumFailureChargedToKnownStreamOnly() {
        var core = ValidatingCore()
        feed(&core, datagram(stream: 7, seq: 0))
        var bad = datagram(stream: 7, seq: 1)
        bad[bad.count - 1] ^= 0xFF
        feed(&core, bad)
        var foreign = datagram(stream: 1234, seq: 0)
        foreign[60] ^= 1
        feed(&core, foreign)
        XCTAssertEqual(core.streams.count, 1, "a corrupt datagram must not create a stream")
        XCTAssertEqual(core.streams[0].checksumErrors, 1)
        XCTAssertEqual(core.statistics.corruptUnattributed, 1)
    }

    func testPatternMismatchWithValidChecksumIsCorrupt() {
        var core = ValidatingCore()
        var d = datagram(stream: 7, seq: 0)
        d[DatagramHeader.size + 3] ^= 0x10
        for i in 44..<48 { d[i] = 0 }
        d.withUnsafeMutableBytes { Datagram.seal($0.baseAddress!, length: $0.count) } // re-seal: checksum valid again
        feed(&core, d)
        XCTAssertEqual(core.streams.count, 1)
        XCTAssertEqual(core.streams.first?.patternMismatches, 1)
        XCTAssertEqual(core.streams.first?.tracker.unique, 0)
    }

    func testInvalidDatagramsCountedByReason() {
        var core = ValidatingCore()
        feed(&core, [1, 2, 3])
        feed(&core, [UInt8](repeating: 0x41, count: 100))
        var v2 = datagram(stream: 1, seq: 0)
        v2[4] = 2
        feed(&core, v2)
        XCTAssertEqual(core.statistics.invalid[Datagram.Rejection.tooShort.index], 1)
        XCTAssertEqual(core.statistics.invalid[Datagram.Rejection.badMagic.index], 1)
        XCTAssertEqual(core.statistics.invalid[Datagram.Rejection.unsupportedVersion.index], 1)
        XCTAssertEqual(core.statistics.invalidTotal, 3)
        XCTAssertTrue(core.streams.isEmpty)
    }

    func testStreamTableIsBounded() {
        var core = ValidatingCore(maxStreams: 4)
        for id in UInt64(1)...10 { feed(&core, datagram(stream: id, seq: 0)) }
        XCTAssertEqual(core.streams.count, 4)
        XCTAssertEqual(core.statistics.tooManyStreams, 6)
    }

    func testHostileOffsetDoesNotTrap() {
        // A PATTERN datagram whose offset runs past 2^64 with a valid checksum.
        var core = ValidatingCore()
        var d = [UInt8](repeating: 0xEE, count: DatagramHeader.size + 40)
        d.withUnsafeMutableBytes {
            Datagram.encode(DatagramHeader(flags: [.data, .pattern], streamID: 5, sequence: 0, offset: UInt64.max - 3,
                                           timestampNanoseconds: 0, payloadLength: 40), at: $0.baseAddress!)
        }
        feed(&core, d)
        XCTAssertEqual(core.streams.first?.patternMismatches, 1)
    }
}
