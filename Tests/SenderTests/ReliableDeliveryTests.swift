import Receiver
import Sender
import StreamProtocol
import XCTest
import ZCSystem
#if canImport(Glibc)
import Glibc
#endif

/// The sender's half of reliable streams (SPEC §13), driven by the receiver's real feedback
/// code: an engine written here plays the network (it loses chosen datagrams the first time)
/// and the receiver (a real `ValidatingCore`, whose STATUS and NAK go over real loopback
/// sockets to the session's feedback socket). What it proves: slots stay held until they are
/// acknowledged; a NAKed datagram goes again from the very slot it was written into, the
/// same bytes with REPAIR set, never written a second time by the writer; the stream ends
/// only when the receiver says complete.
final class ReliableDeliveryTests: XCTestCase {
    final class LossyLoopEngine: HeldSlotPool, SendEngine {
        /// Sequence numbers lost the first time they are sent.
        var dropOnce: Set<UInt64>
        /// Every repair: slot, offset, and the bytes found there when it went.
        private(set) var repairs: [(slot: Int, offset: Int, bytes: [UInt8])] = []
        /// The bytes of every datagram as it was first committed, by sequence number.
        private(set) var originals: [UInt64: [UInt8]] = [:]
        /// The receiver: its core, the socket it answers from, the sender's address.
        var core = ValidatingCore()
        let receiverSocket: UDPSocket
        var senderSource = SourceAddress.unknown
        private var clock: UInt64 = 1_000_000_000

        init(datagramSize: Int, dropOnce: Set<UInt64>, destination: SocketAddress) throws {
            self.dropOnce = dropOnce
            receiverSocket = try UDPSocket(family: AF_INET)
            try receiverSocket.bind(to: destination)
            super.init(slotCount: 8, segmentsPerSlot: 4, datagramSize: datagramSize)
        }

        func commit(_ slot: Int, length: Int, datagrams n: Int, isEnd: Bool, stats: inout SenderStatistics) throws(SendEngineError) {
            commitDatagrams(slot, length: length, datagrams: n, isEnd: isEnd, stats: &stats) { h, bytes in
                if !isEnd {
                    XCTAssertNil(originals[h.sequence], "sequence \(h.sequence) written twice")
                    originals[h.sequence] = bytes
                }
                if isEnd || dropOnce.remove(h.sequence) == nil { deliver(bytes) }
            }
        }

        func resend(_ slot: Int, offset: Int, length: Int, stats: inout SenderStatistics) throws(SendEngineError) {
            let bytes = Array(UnsafeRawBufferPointer(start: address(of: slot) + offset, count: length))
            repairs.append((slot, offset, bytes))
            deliver(bytes)
        }

        func service(_ wait: ServiceWait, stats: inout SenderStatistics) throws(SendEngineError) {
            // The kernel is done with every committed slot; held ones wait for the acknowledgement.
            completeCommitted()
            clock += 3_000_000  // 3 ms a turn: past the receiver's reorder grace
            core.serviceReliable(now: clock, wallNow: MonotonicClock.wallNanoseconds(), fd: receiverSocket.fd)
        }

        private func deliver(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { core.process($0.baseAddress!, length: $0.count, now: clock, wallNow: 2, source: senderSource) }
        }
    }

    func testLostDatagramsAreRepairedFromTheirSlots() throws {
        let port = UInt16(20000 + getpid() % 20000)
        let destination = try SocketAddress.parse("127.0.0.1:\(port)")
        var c = try SenderConfiguration(destination: destination, datagramSize: 300, gso: .segments(4), engine: .uring)
        c.streamID = 77
        c.reliability = Reliability()
        let count: UInt64 = 100
        var engine: LossyLoopEngine?
        let report = try StreamSender.run(c, content: StreamContent(limit: StreamLimit(datagrams: count)), engine: { (session) throws(SystemError) -> LossyLoopEngine in
            let e = try! LossyLoopEngine(datagramSize: 300, dropOnce: [5, 6, 41, 99], destination: destination)
            let local = try session.socket.localAddress()
            e.senderSource = local.withSockAddr { a, n in SourceAddress(sockaddr: UnsafeRawPointer(a), length: Int(n)) }
            engine = e
            return e
        })
        let e = try XCTUnwrap(engine)
        let rel = try XCTUnwrap(report.reliability)
        XCTAssertTrue(rel.delivered, "\(rel)")
        XCTAssertEqual(rel.acknowledged, count)
        XCTAssertTrue(rel.unacknowledged.isEmpty)
        XCTAssertGreaterThanOrEqual(rel.naksReceived, 1)
        XCTAssertGreaterThan(rel.statusReceived, 0)
        // Exactly the lost ones went again (the tail, 99, through a NAK after END or a probe).
        let repaired = Set(e.repairs.map { DatagramHeader(reading: $0.bytes.withUnsafeBytes { $0.baseAddress! }).sequence })
        XCTAssertEqual(repaired, [5, 6, 41, 99])
        XCTAssertEqual(rel.retransmittedDatagrams, UInt64(e.repairs.count))
        for r in e.repairs {
            // From the slot it was written into: the original bytes, REPAIR set, resealed.
            let seq = r.bytes.withUnsafeBytes { DatagramHeader(reading: $0.baseAddress!).sequence }
            let original = try XCTUnwrap(e.originals[seq])
            XCTAssertEqual(r.offset % 300, 0)
            XCTAssertEqual(r.bytes.count, original.count)
            XCTAssertEqual(r.bytes[5], original[5] | DatagramFlags.repair.rawValue)
            XCTAssertEqual(Array(r.bytes[0..<5]) + Array(r.bytes[6..<44]), Array(original[0..<5]) + Array(original[6..<44]))
            XCTAssertEqual(Array(r.bytes[48...]), Array(original[48...]), "the payload is the slot's, untouched")
            r.bytes.withUnsafeBytes { XCTAssertEqual(Datagram.identityChecksum($0.baseAddress!, length: $0.count),
                                                      original.withUnsafeBytes { UInt32(bigEndian: $0.loadUnaligned(fromByteOffset: 44, as: UInt32.self)) }) }
        }
        XCTAssertEqual(e.originals.count, Int(count), "the writer wrote each datagram once: repairs are never regenerated")
        XCTAssertEqual(e.lentWhileHeld, 0, "no slot was lent before its acknowledgement")
        let s = e.core.streams[0]
        XCTAssertTrue(s.isComplete)
        XCTAssertEqual(s.repaired, 4)
        XCTAssertEqual(s.summary().lost, 0)
    }

    /// The push path: an application's datagrams, lost ones repaired from their slots, the
    /// stream finished only when the receiver says complete.
    func testPushedReliableStreamIsRepairedAndDelivered() throws {
        let port = UInt16(20000 + (getpid() + 3) % 20000)
        let destination = try SocketAddress.parse("127.0.0.1:\(port)")
        var c = try SenderConfiguration(destination: destination, datagramSize: 300, gso: .segments(4), engine: .uring)
        c.streamID = 78
        c.reliability = Reliability()
        var engine: LossyLoopEngine?
        let stream = try OutboundStream(c) { (session) throws(SystemError) -> LossyLoopEngine in
            let e = try! LossyLoopEngine(datagramSize: 300, dropOnce: [0, 17, 18, 60], destination: destination)
            let local = try session.socket.localAddress()
            e.senderSource = local.withSockAddr { a, n in SourceAddress(sockaddr: UnsafeRawPointer(a), length: Int(n)) }
            engine = e
            return e
        }
        for i in 0..<61 { try stream.send(copying: [UInt8](repeating: UInt8(i), count: 252)) }
        let report = try stream.finish()
        let e = try XCTUnwrap(engine)
        let rel = try XCTUnwrap(report.reliability)
        XCTAssertTrue(rel.delivered, "\(rel)")
        XCTAssertEqual(rel.acknowledged, 61)
        let repaired = Set(e.repairs.map { DatagramHeader(reading: $0.bytes.withUnsafeBytes { $0.baseAddress! }).sequence })
        XCTAssertEqual(repaired, [0, 17, 18, 60])
        XCTAssertEqual(e.originals.count, 61)
        XCTAssertEqual(e.lentWhileHeld, 0)
        XCTAssertTrue(e.core.streams[0].isComplete)
        XCTAssertEqual(e.core.streams[0].uniquePayloadBytes, 61 * 252)
    }

    func testNoFeedbackGivesUpAfterTheDeadline() throws {
        // A plain UDP sink that never answers: the sender sends its initial window and gives up.
        let port = UInt16(20000 + (getpid() + 7) % 20000)
        let sink = try UDPSocket(family: AF_INET)
        try sink.bind(to: try SocketAddress.parse("127.0.0.1:\(port)"))
        var c = try SenderConfiguration(destination: try SocketAddress.parse("127.0.0.1:\(port)"), datagramSize: 1000, engine: .uring)
        var r = Reliability()
        r.deadlineNanoseconds = 300_000_000
        c.reliability = r
        let start = MonotonicClock.nanoseconds()
        let report = try StreamSender.run(c, content: StreamContent(limit: StreamLimit(datagrams: 100_000)))
        let seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
        let rel = try XCTUnwrap(report.reliability)
        XCTAssertFalse(rel.delivered)
        XCTAssertTrue(rel.gaveUp)
        XCTAssertTrue(rel.noFeedback)
        XCTAssertEqual(rel.acknowledged, 0)
        XCTAssertEqual(rel.unacknowledged.first?.lowerBound, 0)
        XCTAssertLessThanOrEqual(report.statistics.datagrams, Reliability().initialWindow, "never more than the initial window unacknowledged")
        XCTAssertLessThan(seconds, 5, "gave up after the deadline, not later")
    }
}
