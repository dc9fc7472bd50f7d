import Receiver
import StreamProtocol
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Hot-path cost of the validating core, fed from memory (no sockets, so it is
/// stable on a busy machine). Runs only with ZC_BENCH=1; prints ns per datagram,
/// next to the floor (checksum + pattern check alone) that no bookkeeping can beat.
final class CoreBenchmarkTests: XCTestCase {
    static func now() -> Double {
        var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) * 1e9 + Double(ts.tv_nsec)
    }

    func testCoreNanosecondsPerDatagram() throws {
        guard ProcessInfo.processInfo.environment["ZC_BENCH"] == "1" else { throw XCTSkip("set ZC_BENCH=1 to run the core benchmark") }
        let size = 1472, payload = size - DatagramHeader.size, count = 16_384, rounds = 25
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size * count, alignment: 64)
        defer { buffer.deallocate() }
        let stream: UInt64 = 0xABCDEF
        for i in 0..<count {
            let p = buffer + i * size
            let offset = UInt64(i * payload)
            PayloadPattern.fill(p + DatagramHeader.size, count: payload, streamID: stream, offset: offset)
            Datagram.encode(DatagramHeader(flags: [.data, .pattern], streamID: stream, sequence: UInt64(i), offset: offset,
                                           timestampNanoseconds: 1, payloadLength: UInt32(payload)), at: p)
        }
        var best = Double.infinity
        for _ in 0..<5 {
            var total: UInt64 = 0
            let t0 = Self.now()
            for _ in 0..<rounds {
                // A fresh core per round: every datagram is new (in order), as on the wire.
                var core = ValidatingCore()
                for i in 0..<count { core.process(buffer + i * size, length: size, now: 1, wallNow: 2) }
                total += core.streams.first?.datagrams ?? 0
            }
            best = min(best, (Self.now() - t0) / Double(rounds * count))
            XCTAssertEqual(total, UInt64(rounds * count))
        }
        var floor = Double.infinity
        for _ in 0..<5 {
            var sink = 0
            let t0 = Self.now()
            for _ in 0..<rounds {
                for i in 0..<count {
                    let p = buffer + i * size
                    var matches = false
                    if case .valid = Datagram.validate(p, length: size, patternMatches: &matches), matches { sink &+= 1 }
                }
            }
            floor = min(floor, (Self.now() - t0) / Double(rounds * count))
            XCTAssertEqual(sink, rounds * count)
        }
        print("core: \(String(format: "%.1f", best)) ns/datagram; validate+pattern alone \(String(format: "%.1f", floor)) ns (1472 B, PATTERN, best of 5, CRC32C \(CRC32C.active))")
    }
}
