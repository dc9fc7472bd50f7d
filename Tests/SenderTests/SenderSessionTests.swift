import Sender
import StreamProtocol
import XCTest
import ZCSystem
#if canImport(Glibc)
import Glibc
#endif

/// "A new engine is one type and one case": an engine written here, in a test, runs the
/// pull path (`StreamSender`) and the push path (`OutboundStream`) through the same
/// `SenderSession` with nothing else added — limits, sealing, END and its repeats, the
/// drain and the report all come from the driver.
final class SenderSessionTests: XCTestCase {
    /// An engine that sends nothing: it keeps a copy of every committed datagram and hands a
    /// slot back only on the service call after its commit (as a kernel's notification
    /// would come later), so the driver must really wait for it.
    final class RecordingEngine: HeldSlotPool, SendEngine {
        /// Committed on the previous service turn: done on this one.
        private var lastTurn: [Int] = []
        private(set) var datagrams: [[UInt8]] = []
        private(set) var services = 0

        init(segmentsPerSlot: Int, datagramSize: Int) {
            super.init(slotCount: 4, segmentsPerSlot: segmentsPerSlot, datagramSize: datagramSize)
        }
        override var holdsSlots: Bool { false }

        func commit(_ slot: Int, length: Int, datagrams n: Int, isEnd: Bool, stats: inout SenderStatistics) throws(SendEngineError) {
            commitDatagrams(slot, length: length, datagrams: n, isEnd: isEnd, stats: &stats) { _, bytes in datagrams.append(bytes) }
        }

        func service(_ wait: ServiceWait, stats: inout SenderStatistics) throws(SendEngineError) {
            services += 1
            // Last turn's sends are done now; this turn's go "to the kernel".
            for slot in lastTurn { giveBack(slot) }
            lastTurn = takeCommitted()
            stats.notifications &+= 1
        }
    }

    private func configuration(port: UInt16 = 9) throws -> SenderConfiguration {
        var c = try SenderConfiguration(destination: try SocketAddress.parse("127.0.0.1:\(port)"), datagramSize: 500,
                                        gso: .off, engine: .sendmmsg)
        c.streamID = 4242
        c.endRepeats = 3
        return c
    }

    /// Every datagram the engine got is valid, of this stream, in sequence, and ENDs close it.
    private func assertWholeStream(_ datagrams: [[UInt8]], count: Int, payload: Int, ends: Int,
                                   file: StaticString = #filePath, line: UInt = #line) {
        var data: [DatagramHeader] = []
        var endHeaders: [DatagramHeader] = []
        for d in datagrams {
            guard case .valid(let h) = d.withUnsafeBytes({ Datagram.validate($0) }) else {
                return XCTFail("invalid datagram", file: file, line: line)
            }
            XCTAssertEqual(h.streamID, 4242, file: file, line: line)
            if h.flags.contains(.end) { endHeaders.append(h) } else { data.append(h) }
        }
        XCTAssertEqual(data.map(\.sequence), (0..<UInt64(count)).map { $0 }, file: file, line: line)
        XCTAssertEqual(data.map(\.offset), (0..<UInt64(count)).map { $0 * UInt64(payload) }, file: file, line: line)
        XCTAssertEqual(endHeaders.count, ends, file: file, line: line)
        XCTAssertTrue(endHeaders.allSatisfy { $0.sequence == UInt64(count) }, file: file, line: line)
        // ENDs come last: nothing follows the first one.
        XCTAssertTrue(datagrams.suffix(ends).allSatisfy { $0[5] & 0x02 != 0 }, file: file, line: line)
    }

    func testPullRunsOnAnEngineTheSessionWasHanded() throws {
        var engine: RecordingEngine?
        let report = try StreamSender.run(try configuration(), content: StreamContent(limit: StreamLimit(datagrams: 25))) { session in
            let e = RecordingEngine(segmentsPerSlot: 1, datagramSize: session.configuration.datagramSize)
            engine = e
            return e
        }
        XCTAssertEqual(report.statistics.datagrams, 25)
        XCTAssertEqual(report.statistics.endsSent, 3)
        XCTAssertEqual(report.sequences, 25)
        XCTAssertEqual(report.stopReason, .limit)
        XCTAssertEqual(engine?.inFlight, 0, "the drain waits until every slot is back")
        assertWholeStream(engine!.datagrams, count: 25, payload: 500 - DatagramHeader.size, ends: 3)
    }

    func testPushRunsOnTheSameEngineWithGSOSlots() throws {
        var engine: RecordingEngine?
        let stream = try OutboundStream(try configuration()) { session in
            let e = RecordingEngine(segmentsPerSlot: 4, datagramSize: session.configuration.datagramSize)
            engine = e
            return e
        }
        for k in 0..<25 {
            try stream.send { area in
                area.storeBytes(of: UInt32(k), as: UInt32.self)
                return stream.maxPayload
            }
        }
        let report = try stream.finish()
        XCTAssertEqual(report.statistics.datagrams, 25)
        XCTAssertEqual(report.statistics.endsSent, 3)
        XCTAssertEqual(engine?.inFlight, 0)
        XCTAssertGreaterThan(engine!.services, 3, "slots come back only through service: the driver waited for them")
        assertWholeStream(engine!.datagrams, count: 25, payload: stream.maxPayload, ends: 3)
        // The producer's bytes are what went out, in order.
        let firstWords = engine!.datagrams.filter { $0[5] & 0x02 == 0 }.map { d in
            d.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: DatagramHeader.size, as: UInt32.self) }
        }
        XCTAssertEqual(firstWords, (0..<25).map { UInt32($0) })
    }

    /// The session owns the feedback channel for every engine: a REPORT is awaited (and its
    /// absence said) after a pushed stream too, not only after a pulled one.
    func testPushedStreamAwaitsTheReportLikeThePulledOne() throws {
        // A bound socket nobody answers on: no ICMP refusal, just silence.
        let silent = try UDPSocket(family: AF_INET)
        try silent.bind(to: try SocketAddress.parse("127.0.0.1:0", allowPortZero: true))
        var c = try configuration(port: try silent.localAddress().port)
        c.reportTimeoutNanoseconds = 150_000_000
        let stream = try OutboundStream(c) { session in RecordingEngine(segmentsPerSlot: 1, datagramSize: session.configuration.datagramSize) }
        try stream.send { _ in 10 }
        let report = try stream.finish()
        guard case .none(let why) = report.receiver else { return XCTFail("expected no REPORT, got \(report.receiver)") }
        XCTAssertTrue(why.contains("no REPORT within"), why)
    }
}
