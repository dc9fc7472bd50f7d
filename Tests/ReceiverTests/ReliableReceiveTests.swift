import Receiver
#if canImport(Glibc)
import Glibc
#endif
import StreamProtocol
import TestSupport
import XCTest
import ZCSystem

/// The receiver's half of reliable streams (SPEC §13): the accounting of repairs, the kind a
/// stream's first datagram fixes, the acknowledgement, and the STATUS and NAK it sends.
final class ReliableReceiveTests: XCTestCase {
    private func feed(_ core: inout ValidatingCore, _ bytes: [UInt8], source: SourceAddress = .unknown, now: UInt64 = 1) {
        bytes.withUnsafeBytes { core.process($0.baseAddress!, length: $0.count, now: now, wallNow: 2, source: source) }
    }

    func testTrackerFindsTheAcknowledgementAndTheGaps() {
        var t = SequenceTracker()
        for s: UInt64 in [0, 1, 2, 5, 6, 70, 71, 200] { t.record(s) }
        XCTAssertEqual(t.firstMissing(from: 0), 3)
        XCTAssertEqual(t.firstMissing(from: 5), 7)
        XCTAssertEqual(t.firstMissing(from: 201), 201)
        var missing: [UInt64] = []
        t.forEachMissing(from: 0, below: 210) { missing.append($0); return true }
        let expected = [UInt64(3), 4] + Array(7...69) + Array(72...199) + Array(201...209)
        XCTAssertEqual(missing, expected)
        // Stopping early stops.
        var first: [UInt64] = []
        t.forEachMissing(from: 0, below: 210) { first.append($0); return first.count < 3 }
        XCTAssertEqual(first, [3, 4, 7])
        // Nothing received: everything is missing, the acknowledgement stays.
        let empty = SequenceTracker()
        XCTAssertEqual(empty.firstMissing(from: 0), 0)
        var all: [UInt64] = []
        empty.forEachMissing(from: 2, below: 5) { all.append($0); return true }
        XCTAssertEqual(all, [2, 3, 4])
    }

    func testRepairsAreCountedApartAndNeverAsASecondByte() {
        var core = ValidatingCore()
        for s: UInt64 in [0, 1, 3] { feed(&core, TestDatagrams.data(stream: 4, seq: s, reliable: true)) }
        // 2 was lost: its repair is new and repaired; 1's repair is a duplicate, not a conflicting one.
        feed(&core, TestDatagrams.data(stream: 4, seq: 2, reliable: true, repair: true))
        feed(&core, TestDatagrams.data(stream: 4, seq: 1, reliable: true, repair: true))
        feed(&core, TestDatagrams.end(stream: 4, datagrams: 4, bytes: 400, reliable: true))
        let s = core.streams[0]
        XCTAssertTrue(s.reliable)
        XCTAssertEqual(s.repaired, 1)
        XCTAssertEqual(s.repairDuplicates, 1)
        XCTAssertEqual(s.tracker.duplicates, 1)
        XCTAssertEqual(s.conflictingDuplicates, 0, "a repair and its original share the identity checksum")
        XCTAssertEqual(s.uniquePayloadBytes, 400)
        XCTAssertTrue(s.isComplete)
        XCTAssertEqual(s.summary().lost, 0)
        XCTAssertEqual(s.latency.count, 3, "the three originals; a repair is not a latency sample")
    }

    func testTheFirstDatagramFixesTheStreamsKind() {
        var core = ValidatingCore()
        feed(&core, TestDatagrams.data(stream: 5, seq: 0, reliable: true))
        feed(&core, TestDatagrams.data(stream: 5, seq: 1))  // plain, same id and source
        feed(&core, TestDatagrams.data(stream: 5, seq: 2, reliable: true))
        let s = core.streams[0]
        XCTAssertEqual(s.modeMismatches, 1)
        XCTAssertEqual(s.tracker.unique, 2, "the datagram of the other kind changes nothing else")
        XCTAssertFalse(StreamVerdictLimits().failures(s).isEmpty, "a mode mismatch fails the verdict")
        // A plain stream stays plain: no feedback state, no feedback.
        var plain = ValidatingCore()
        feed(&plain, TestDatagrams.data(stream: 6, seq: 0))
        XCTAssertFalse(plain.streams[0].reliable)
        XCTAssertFalse(plain.sawReliable)
    }

    /// The feedback a real socket receives: a STATUS at once, a NAK of the gap only after the
    /// reorder grace, and a final `complete` STATUS once the repair and END arrived.
    func testStatusAndNakReachTheSender() throws {
        let sender = try UDPSocket(family: AF_INET)
        try sender.bind(to: try SocketAddress.parse("127.0.0.1:0", allowPortZero: true))
        let senderAddress = try sender.localAddress()
        let source = senderAddress.withSockAddr { a, n in SourceAddress(sockaddr: UnsafeRawPointer(a), length: Int(n)) }
        let receiver = try UDPSocket(family: AF_INET)

        var core = ValidatingCore()
        let t0: UInt64 = 1_000_000_000
        for s: UInt64 in [0, 1, 2, 5] { feed(&core, TestDatagrams.data(stream: 9, seq: s, reliable: true), source: source, now: t0) }
        core.serviceReliable(now: t0, wallNow: 5, fd: receiver.fd)
        var status = try XCTUnwrap(receiveStatus(sender))
        XCTAssertEqual(status.cumulativeAck, 3)
        XCTAssertEqual(status.highest, 6)
        XCTAssertEqual(status.unique, 4)
        XCTAssertGreaterThan(status.windowLimit, 3)
        XCTAssertFalse(status.endSeen)
        XCTAssertNil(receive(sender), "no NAK before the reorder grace")

        // 3 ms later (the grace before an RTT sample is 2.5 ms): the gap [3, 4] is NAKed.
        core.serviceReliable(now: t0 + 3_000_000, wallNow: 6, fd: receiver.fd)
        let nak = try XCTUnwrap(receive(sender))
        guard case .success(let (m, ranges)) = NakMessage.decodeWithRanges(nak) else { return XCTFail("not a NAK") }
        XCTAssertEqual(ranges, [3...4])
        XCTAssertEqual(m.cumulativeAck, 3)
        XCTAssertEqual(m.receiverID, status.receiverID)
        XCTAssertEqual(core.streams[0].naksSent, 1)

        // The repairs and END arrive: complete, said twice.
        for s: UInt64 in [3, 4] {
            feed(&core, TestDatagrams.data(stream: 9, seq: s, reliable: true, repair: true), source: source, now: t0 + 4_000_000)
        }
        feed(&core, TestDatagrams.end(stream: 9, datagrams: 6, bytes: 600, reliable: true), source: source, now: t0 + 4_000_000)
        core.serviceReliable(now: t0 + 4_100_000, wallNow: 7, fd: receiver.fd)
        status = try XCTUnwrap(receiveStatus(sender))
        XCTAssertTrue(status.complete)
        XCTAssertTrue(status.endSeen)
        XCTAssertEqual(status.cumulativeAck, 6)
        XCTAssertNotNil(receiveStatus(sender), "the final STATUS goes twice")
        XCTAssertEqual(core.streams[0].repaired, 2)
        XCTAssertEqual(core.reliablePending, 0)
        XCTAssertEqual(core.reliableStreamsActive, 0, "nothing more is owed")
    }

    /// SPEC §13.11: a group's receiver NAKs a number only after the grace plus its random
    /// backoff (at most 1 ms before an RTT sample), drawn apart per number; a unicast one
    /// NAKs them all at the grace.
    func testGroupReceiverBacksOffBeforeItsFirstNak() throws {
        let path = try FeedbackPath()
        let source = path.source
        var core = ValidatingCore()
        core.groupReceiver = true
        let t0: UInt64 = 1_000_000_000
        // 1...40 lost (enough arrived to pay for the NAKs: control bytes never exceed delivered ones).
        for q: UInt64 in [0] + Array(41...120) { feed(&core, TestDatagrams.data(stream: 12, seq: q, reliable: true), source: source, now: t0) }
        core.serviceReliable(now: t0, wallNow: 5, fd: path.receiver.fd)
        _ = try XCTUnwrap(receiveStatus(path.sender))
        // Halfway through the backoff span (1 ms before an RTT sample): about half of the
        // numbers are due (none or all has odds of 2^-40); 1.1 ms later, the rest.
        var batches: [[UInt64]] = []
        for at: UInt64 in [2_500_000 + 500_000, 2_500_000 + 1_600_000] {
            core.serviceReliable(now: t0 + at, wallNow: 6, fd: path.receiver.fd)
            var naked: [UInt64] = []
            while let bytes = receive(path.sender, timeout: 20_000_000) {
                guard case .success(let (_, ranges)) = NakMessage.decodeWithRanges(bytes) else { continue }
                for r in ranges { naked += Array(r) }
            }
            batches.append(naked)
        }
        XCTAssertTrue((1...39).contains(batches[0].count), "the backoff spread the gap's first NAKs: \(batches[0])")
        XCTAssertEqual((batches[0] + batches[1]).sorted(), Array(1...40), "every missing number NAKed once, once its backoff passed")
    }

    /// A group receiver the sender does not wait for (it joined late) and that falls more than
    /// the tracker's window behind never acknowledges numbers it cannot tell: its
    /// acknowledgement stays, and it gives up with a final STATUS that says so.
    func testOverrunReceiverFreezesItsAcknowledgementAndGivesUp() throws {
        let path = try FeedbackPath()
        let source = path.source
        var core = ValidatingCore()
        core.groupReceiver = true
        let t0: UInt64 = 1_000_000_000
        feed(&core, TestDatagrams.data(stream: 13, seq: 5000, reliable: true), source: source, now: t0)
        core.serviceReliable(now: t0, wallNow: 5, fd: path.receiver.fd)
        XCTAssertEqual(try XCTUnwrap(receiveStatus(path.sender)).cumulativeAck, 0, "joined late: the head is missing")
        XCTAssertFalse(core.streams[0].joinedLate, "a reliable stream is accounted from 0")
        feed(&core, TestDatagrams.data(stream: 13, seq: 80_000, reliable: true), source: source, now: t0 + 1_000)
        core.serviceReliable(now: t0 + 6_000_000, wallNow: 6, fd: path.receiver.fd)
        var last: StatusMessage?
        while let bytes = receive(path.sender, timeout: 20_000_000) {
            if case .success(let m) = StatusMessage.decode(bytes) { last = m }
        }
        let status = try XCTUnwrap(last)
        XCTAssertTrue(status.gaveUp)
        XCTAssertEqual(status.cumulativeAck, 0, "numbers below the window were not passed over")
        XCTAssertTrue(core.streams[0].gaveUp)
        XCTAssertFalse(core.streams[0].isComplete)
    }

    /// A keyed reliable stream (SPEC §14): its STATUS and NAK go out version 4, origin the
    /// receiver id in their body, numbered from 0, tagged under that receiver's key for the
    /// stream; its REPORT comes from the same origin (not the receiver's plain-stream id).
    func testKeyedStreamsFeedbackAndReportAreSealedUnderItsReceiverID() throws {
        let secret = try StreamSecret(bytes: (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) })
        let path = try FeedbackPath()
        var core = ValidatingCore()
        core.keyring = ReceiverKeyring(secret: secret, receiverID: 77)
        let sourceKey = DatagramAuthenticator(key: secret.sourceKey(streamID: 9), sealing: true)
        var packetNumber: UInt64 = 0
        func keyed(_ plain: [UInt8]) -> [UInt8] {
            var b = plain + [UInt8](repeating: 0, count: AuthTrailer.size)
            b.withUnsafeMutableBytes { p in
                p[4] = KeyedDatagram.version
                p.storeBytes(of: 0, toByteOffset: DatagramHeader.checksumOffset, as: UInt32.self)
                sourceKey.seal(p.baseAddress!, payloadLength: plain.count - DatagramHeader.size,
                               trailer: AuthTrailer(keyID: secret.keyID, suite: .authenticated, origin: 0, packetNumber: packetNumber))
            }
            packetNumber += 1
            return b
        }
        let t0: UInt64 = 1_000_000_000
        for q: UInt64 in [0, 1, 2, 5] { feed(&core, keyed(TestDatagrams.data(stream: 9, seq: q, reliable: true)), source: path.source, now: t0) }
        XCTAssertEqual(core.streams.count, 1)
        core.serviceReliable(now: t0, wallNow: 5, fd: path.receiver.fd)
        core.serviceReliable(now: t0 + 3_000_000, wallNow: 6, fd: path.receiver.fd)
        var sent: [[UInt8]] = []
        while let b = receive(path.sender, timeout: 50_000_000) { sent.append(b) }
        XCTAssertGreaterThanOrEqual(sent.count, 2, "a STATUS, then a NAK of [3, 4]")
        var origin: UInt64?
        for (k, bytes) in sent.enumerated() {
            var b = bytes
            try b.withUnsafeMutableBytes { p in
                guard case .success(let d) = KeyedDatagram.parse(p.baseAddress!, length: p.count) else { return XCTFail("feedback \(k) is not keyed") }
                XCTAssertEqual(d.kind, k == 0 ? .status : d.kind)
                XCTAssertTrue(d.kind == .status || d.kind == .nak)
                XCTAssertEqual(d.header.checksum, 0)
                XCTAssertEqual(d.trailer.packetNumber, UInt64(k), "STATUS and NAK numbered from 0")
                XCTAssertEqual(d.trailer.origin, UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 56, as: UInt64.self)), "origin = the body's receiver id")
                XCTAssertNotEqual(d.trailer.origin, 77)
                if let o = origin { XCTAssertEqual(d.trailer.origin, o) }
                origin = d.trailer.origin
                let opener = DatagramAuthenticator(key: secret.receiverKey(streamID: 9, receiverID: d.trailer.origin), sealing: false)
                XCTAssertTrue(opener.open(p.baseAddress!, payloadLength: Int(d.header.payloadLength)), "feedback \(k) does not open")
                // Unsealed, it is the version 3 datagram the decoders know.
                var plain = [UInt8](repeating: 0, count: p.count - AuthTrailer.size)
                plain.withUnsafeMutableBytes { KeyedDatagram.unseal(p.baseAddress!, length: p.count, version: 3, into: $0.baseAddress!) }
                if d.kind == .status { XCTAssertEqual(try XCTUnwrap(StatusMessage.decode(plain).get()).cumulativeAck, 3) }
                else { XCTAssertEqual(try XCTUnwrap(NakMessage.decodeWithRanges(plain).get()).1, [3...4]) }
            }
        }
        // The REPORT: sealed with the stream's receiver id as origin.
        var reports = ReportSender(limits: StreamVerdictLimits(), keyed: (secret, 77))
        guard case .sent = reports.send(core.streams[0], kernelDrops: 0, socket: path.receiver, now: t0) else { return XCTFail("no REPORT sent") }
        let report = try XCTUnwrap(receive(path.sender, timeout: 200_000_000))
        guard case .success(let r) = StreamReport.decodeKeyed(report, secret: secret) else { return XCTFail("the REPORT does not open") }
        XCTAssertEqual(r.receiverID, origin)
    }

    /// A sender's socket on loopback (where STATUS and NAK go) and the receiver's socket.
    final class FeedbackPath {
        let sender: UDPSocket
        let receiver: UDPSocket
        let source: SourceAddress
        init() throws {
            sender = try UDPSocket(family: AF_INET)
            try sender.bind(to: try SocketAddress.parse("127.0.0.1:0", allowPortZero: true))
            source = try sender.localAddress().withSockAddr { a, n in SourceAddress(sockaddr: UnsafeRawPointer(a), length: Int(n)) }
            receiver = try UDPSocket(family: AF_INET)
        }
    }

    private func receive(_ socket: borrowing UDPSocket, timeout: UInt64) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        let got = buffer.withUnsafeMutableBytes { try? socket.receive(into: $0, timeoutNanoseconds: timeout) }
        guard let g = got else { return nil }
        return Array(buffer[0..<g.length])
    }

    private func receive(_ socket: borrowing UDPSocket) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        let got = buffer.withUnsafeMutableBytes { try? socket.receive(into: $0, timeoutNanoseconds: 200_000_000) }
        guard let g = got else { return nil }
        return Array(buffer[0..<g.length])
    }

    private func receiveStatus(_ socket: borrowing UDPSocket) -> StatusMessage? {
        guard let bytes = receive(socket), case .success(let m) = StatusMessage.decode(bytes) else { return nil }
        return m
    }
}
