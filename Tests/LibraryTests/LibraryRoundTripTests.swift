import Synchronization
import XCTest
import ZCStream
#if canImport(Glibc)
import Glibc
#endif

/// The library end to end in one process: OutboundStream fills registered slots in
/// place on one thread, StreamReceiver validates and delivers on another.
final class LibraryRoundTripTests: XCTestCase {
    final class Collected: Sendable {
        let payloads = Mutex<[UInt64: [UInt8]]>([:])   // sequence -> payload
        let offsets = Mutex<[UInt64: UInt64]>([:])
    }

    func testFillInPlaceToDeliveryCallback() throws {
        let collected = Collected()
        var configuration = ReceiverConfiguration(listen: try SocketAddress.parse("127.0.0.1:0", allowPortZero: true))
        configuration.streams = 1
        configuration.idleTimeoutNanoseconds = 3_000_000_000
        configuration.delivery = { d in
            let bytes = Array(d.payload)
            collected.payloads.withLock { $0[d.sequence] = bytes }
            collected.offsets.withLock { $0[d.sequence] = d.offset }
        }
        let ready = Mutex<SocketAddress?>(nil)
        let sizes = (0..<2000).map { i in i % 5 == 0 ? (i * 31) % 1424 : 1424 }

        // The sender starts once the receiver is bound.
        let sender = try WorkerThread {
            var address: SocketAddress?
            while address == nil { address = ready.withLock { $0 }; usleep(1000) }
            do {
                let c = try SenderConfiguration(destination: address!, datagramSize: 1472,
                                                rate: .bitsPerSecond(1e9))
                let stream = try OutboundStream(c)
                for (i, size) in sizes.enumerated() {
                    try stream.send { area in
                        for j in 0..<size { area[j] = UInt8(truncatingIfNeeded: i &* 7 &+ j) }
                        return size
                    }
                }
                _ = try stream.finish()
            } catch {
                XCTFail("sender: \(error)")
            }
        }
        let report = try StreamReceiver.run(configuration, ready: { address, _, _ in ready.withLock { $0 = address } })
        sender.join()

        XCTAssertEqual(report.core.streams.count, 1)
        let stream = try XCTUnwrap(report.core.streams.first)
        XCTAssertTrue(stream.isComplete)
        XCTAssertEqual(stream.summary().lost, 0)
        XCTAssertEqual(stream.corrupt, 0)
        let payloads = collected.payloads.withLock { $0 }
        let offsets = collected.offsets.withLock { $0 }
        XCTAssertEqual(payloads.count, sizes.count)
        var offset: UInt64 = 0
        for (i, size) in sizes.enumerated() {
            let p = try XCTUnwrap(payloads[UInt64(i)], "datagram \(i) not delivered")
            XCTAssertEqual(p.count, size)
            XCTAssertEqual(offsets[UInt64(i)], offset)
            offset += UInt64(size)
            if p != (0..<size).map({ UInt8(truncatingIfNeeded: i &* 7 &+ $0) }) { return XCTFail("payload \(i) differs") }
        }
    }
}
