import Sender
import StreamProtocol
import XCTest
import ZCSystem
#if canImport(Glibc)
import Glibc
#endif

/// The fill-in-place API against a plain UDP socket in the same process.
final class OutboundStreamTests: XCTestCase {
    /// A loopback socket that collects every datagram it receives on its own thread.
    final class Collector: @unchecked Sendable {
        let socket: UDPSocket
        let address: SocketAddress
        private(set) var datagrams: [[UInt8]] = []
        private var thread: WorkerThread?

        init() throws {
            socket = try UDPSocket(family: AF_INET)
            socket.setBufferSize(receive: true, bytes: 64 << 20)
            try socket.bind(to: try SocketAddress.parse("127.0.0.1:0", allowPortZero: true))
            address = try socket.localAddress()
            var tv = timeval(tv_sec: 0, tv_usec: 300_000)
            setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }

        /// Receives until `ends` END datagrams arrived or a read times out.
        func start(ends: Int) throws {
            let fd = socket.fd
            thread = try WorkerThread { [self] in
                var buffer = [UInt8](repeating: 0, count: 65536)
                var seenEnds = 0
                while seenEnds < ends {
                    let n = recv(fd, &buffer, buffer.count, 0)
                    if n <= 0 { break }
                    let d = Array(buffer[0..<n])
                    datagrams.append(d)
                    if n >= 6 && d[5] & 0x02 != 0 { seenEnds += 1 }
                }
            }
        }

        func join() { thread?.join() }
    }

    /// SEND_ZC throughout (not auto, which would leave it on loopback): every send owes a notification.
    func testFillInPlaceDeliversEveryPayloadIntact() throws { try deliverEveryPayloadIntact(engine: .uringZC) }
    /// The same stream through the copying engines: one driver, every engine.
    func testFillInPlaceOverUring() throws { try deliverEveryPayloadIntact(engine: .uring) }
    func testFillInPlaceOverSendmmsg() throws { try deliverEveryPayloadIntact(engine: .sendmmsg) }
    func testFillInPlaceOverSendmmsgWithoutGSO() throws { try deliverEveryPayloadIntact(engine: .sendmmsg, gso: .off) }

    private func deliverEveryPayloadIntact(engine: SendEngineKind, gso: GSOSetting = .auto) throws {
        let collector = try Collector()
        try collector.start(ends: 3)
        var c = try SenderConfiguration(destination: collector.address, datagramSize: 1000, gso: gso, engine: engine,
                                        poolSlots: 4)
        c.streamID = 77
        let stream = try OutboundStream(c)
        XCTAssertEqual(stream.maxPayload, 952)
        // Sizes vary: full ones pack into GSO sends, short ones end a send.
        let sizes = (0..<500).map { i in i % 7 == 0 ? (i * 13) % 952 : 952 }
        for (i, size) in sizes.enumerated() {
            try stream.send { area in
                XCTAssertEqual(area.count, 952)
                for j in 0..<size { area[j] = UInt8(truncatingIfNeeded: i &+ j) }
                return size
            }
        }
        let report = try stream.finish()
        collector.join()
        XCTAssertEqual(report.sequences, 500)
        XCTAssertEqual(report.statistics.datagrams, 500)
        XCTAssertEqual(report.statistics.endsSent, 3)
        if engine == .uringZC { XCTAssertEqual(report.statistics.notifications, report.statistics.sends) }
        XCTAssertEqual(stream.slotsInFlight, 0)

        var data: [DatagramHeader] = []
        var offset: UInt64 = 0
        for d in collector.datagrams {
            guard case .valid(let h) = d.withUnsafeBytes({ Datagram.validate($0) }) else { return XCTFail("invalid datagram") }
            if h.flags.contains(.end) {
                XCTAssertEqual(d.withUnsafeBytes { EndOfStream(reading: $0.baseAddress! + 48) },
                               EndOfStream(datagrams: 500, bytes: UInt64(sizes.reduce(0, +))))
                continue
            }
            XCTAssertFalse(h.flags.contains(.pattern))
            XCTAssertEqual(h.streamID, 77)
            let i = Int(h.sequence)
            XCTAssertEqual(Int(h.payloadLength), sizes[i])
            XCTAssertEqual(h.offset, offset, "offsets are the running payload total")
            offset += UInt64(sizes[i])
            for j in 0..<sizes[i] where d[48 + j] != UInt8(truncatingIfNeeded: i &+ j) {
                return XCTFail("payload of \(i) differs at \(j)")
            }
            data.append(h)
        }
        XCTAssertEqual(data.map(\.sequence), Array(0..<500))
    }

    func testCopyingConvenienceAndTinyPoolWaits() throws {
        let collector = try Collector()
        try collector.start(ends: 1)
        var c = try SenderConfiguration(destination: collector.address, datagramSize: 200, gso: .off, poolSlots: 2)
        c.endRepeats = 1
        let stream = try OutboundStream(c)
        for i in 0..<3000 { try stream.send(copying: [UInt8](repeating: UInt8(i & 0xFF), count: 100)) }
        let report = try stream.finish()
        collector.join()
        XCTAssertEqual(report.statistics.datagrams, 3000)
        XCTAssertEqual(collector.datagrams.count, 3001)
    }

    func testMisuseGivesTypedErrors() throws {
        let collector = try Collector()
        let c = try SenderConfiguration(destination: collector.address, datagramSize: 200)
        let stream = try OutboundStream(c)
        XCTAssertThrowsError(try stream.send { _ in 153 }) { XCTAssertEqual($0 as? OutboundStreamError, .payloadTooLarge(153, max: 152)) }
        XCTAssertThrowsError(try stream.send(copying: [UInt8](repeating: 0, count: 500))) {
            XCTAssertEqual($0 as? OutboundStreamError, .payloadTooLarge(500, max: 152))
        }
        struct SensorFailed: Error {}
        XCTAssertThrowsError(try stream.send { _ in throw SensorFailed() }) {
            guard case .producer = $0 as? OutboundStreamError else { return XCTFail("\($0)") }
        }
        _ = try stream.finish()
        XCTAssertThrowsError(try stream.send { _ in 1 }) { XCTAssertEqual($0 as? OutboundStreamError, .finished) }
        XCTAssertThrowsError(try stream.finish()) { XCTAssertEqual($0 as? OutboundStreamError, .finished) }
    }
}
