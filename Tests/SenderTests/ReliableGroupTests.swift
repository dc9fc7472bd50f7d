import Receiver
import Sender
import StreamProtocol
import XCTest
import ZCSystem
#if canImport(Glibc)
import Glibc
#endif

/// A reliable stream to a multicast group (SPEC §13.11), driven by real receiver cores: an
/// engine written here plays the group (every datagram goes to each receiver, each loses its
/// own chosen numbers the first time, and a loss "on the sender's side" reaches none) and
/// each receiver is a real `ValidatingCore` answering from its own loopback address to the
/// session's feedback socket. The session's socket is connected to a group on `lo`; nothing
/// is put on a wire (the engine sends nothing).
///
/// What it proves: the window and the release follow the slowest receiver; a loss several
/// receivers share is repaired once, not once per receiver; each receiver's own losses are
/// repaired; a receiver that stops answering is dropped, named with what it lacks, and the
/// others are delivered; a closed group ignores feedback from an address it does not name.
final class ReliableGroupTests: XCTestCase {
    final class GroupLoopEngine: HeldSlotPool, SendEngine {
        /// Lost on the way to every receiver (the sender's side), the first time.
        var sharedDropOnce: Set<UInt64>
        /// Per receiver: lost on the way to it, the first time.
        var dropOnce: [Set<UInt64>]
        /// Receivers that stopped (their core takes nothing, answers nothing) from this sequence on.
        var silentFrom: [UInt64?]
        private(set) var repairs: [UInt64] = []
        var cores: [ValidatingCore]
        /// Each receiver's socket (a class around the `~Copyable` socket, so an array can hold them).
        final class Answering { let socket: UDPSocket; init(_ s: consuming UDPSocket) { socket = s } }
        let sockets: [Answering]
        var senderSource = SourceAddress.unknown
        private var clock: UInt64 = 1_000_000_000
        private var highestSent: UInt64 = 0

        init(datagramSize: Int, receivers: [SocketAddress], dropOnce: [Set<UInt64>], sharedDropOnce: Set<UInt64>) throws {
            self.dropOnce = dropOnce
            self.sharedDropOnce = sharedDropOnce
            silentFrom = Array(repeating: nil, count: receivers.count)
            cores = receivers.map { _ in
                var core = ValidatingCore()
                core.groupReceiver = true
                return core
            }
            var sockets: [Answering] = []
            for address in receivers {
                let s = try UDPSocket(family: AF_INET)
                try s.bind(to: address)
                sockets.append(Answering(s))
            }
            self.sockets = sockets
            super.init(slotCount: 16, segmentsPerSlot: 4, datagramSize: datagramSize)
        }


        func commit(_ slot: Int, length: Int, datagrams n: Int, isEnd: Bool, stats: inout SenderStatistics) throws(SendEngineError) {
            commitDatagrams(slot, length: length, datagrams: n, isEnd: isEnd, stats: &stats) { h, bytes in
                if !isEnd { highestSent = max(highestSent, h.sequence) }
                if isEnd || sharedDropOnce.remove(h.sequence) == nil {
                    for i in cores.indices where isEnd || dropOnce[i].remove(h.sequence) == nil { deliver(bytes, to: i) }
                }
            }
        }

        func resend(_ slot: Int, offset: Int, length: Int, stats: inout SenderStatistics) throws(SendEngineError) {
            let bytes = Array(UnsafeRawBufferPointer(start: address(of: slot) + offset, count: length))
            repairs.append(bytes.withUnsafeBytes { DatagramHeader(reading: $0.baseAddress!).sequence })
            for i in cores.indices { deliver(bytes, to: i) }  // a repair goes to the whole group
        }

        func service(_ wait: ServiceWait, stats: inout SenderStatistics) throws(SendEngineError) {
            completeCommitted()
            clock += 3_000_000  // 3 ms a turn: past the reorder grace and the group backoff
            for i in cores.indices where !isSilent(i) {
                cores[i].serviceReliable(now: clock, wallNow: MonotonicClock.wallNanoseconds(), fd: sockets[i].socket.fd)
            }
        }

        private func isSilent(_ i: Int) -> Bool { silentFrom[i].map { highestSent >= $0 } ?? false }

        private func deliver(_ bytes: [UInt8], to i: Int) {
            guard !isSilent(i) else { return }
            bytes.withUnsafeBytes { cores[i].process($0.baseAddress!, length: $0.count, now: clock, wallNow: 2, source: senderSource) }
        }
    }

    private let base = UInt16(21000 + getpid() % 20000)

    /// Runs a reliable stream of `count` datagrams to a group on `lo` through a
    /// ``GroupLoopEngine`` with receivers at 127.0.0.2, .3, ...
    private func run(count: UInt64, receivers: Int, dropOnce: [Set<UInt64>], sharedDropOnce: Set<UInt64> = [],
                     port: UInt16, key: StreamSecret? = nil, configure: (inout Reliability) -> Void = { _ in },
                     setUp: (GroupLoopEngine) -> Void = { _ in }) throws -> (SenderReport, GroupLoopEngine) {
        var c = try SenderConfiguration(destination: try SocketAddress.parse("239.255.77.77:\(port)"), datagramSize: 300,
                                        gso: .segments(4), engine: .uring)
        c.multicast = MulticastSendOptions(interface: "lo")
        c.streamID = 0x600d
        var r = Reliability()
        configure(&r)
        c.reliability = r
        c.reportTimeoutNanoseconds = nil
        c.key = key
        let addresses = try (0..<receivers).map { try SocketAddress.parse("127.0.0.\($0 + 2):\(port)") }
        var engine: GroupLoopEngine?
        let report = try StreamSender.run(c, content: StreamContent(limit: StreamLimit(datagrams: count)), engine: { (session) throws(SystemError) -> GroupLoopEngine in
            let e = try! GroupLoopEngine(datagramSize: 300, receivers: addresses, dropOnce: dropOnce, sharedDropOnce: sharedDropOnce)
            // The receivers answer the sending socket's port (the feedback socket shares it) on loopback.
            var local = try session.socket.localAddress()
            if case .v4(var a) = local { a.sin_addr.s_addr = inet_addr("127.0.0.1"); local = .v4(a) }
            e.senderSource = local.withSockAddr { a, n in SourceAddress(sockaddr: UnsafeRawPointer(a), length: Int(n)) }
            if let key { for i in e.cores.indices { e.cores[i].keyring = ReceiverKeyring(secret: key) } }
            setUp(e)
            engine = e
            return e
        })
        return (report, try XCTUnwrap(engine))
    }

    /// Three receivers, each with its own losses, and two losses on the sender's side that
    /// all three share: every receiver complete and whole; each shared loss repaired once.
    func testSharedLossIsRepairedOnceAndEveryReceiverIsWhole() throws {
        let shared: Set<UInt64> = [10, 77]
        let own: [Set<UInt64>] = [[3, 40], [41], [5, 99, 150]]
        let (report, e) = try run(count: 200, receivers: 3, dropOnce: own, sharedDropOnce: shared, port: base)
        let rel = try XCTUnwrap(report.reliability)
        XCTAssertTrue(rel.delivered, "\(rel)")
        let receivers = try XCTUnwrap(rel.receivers)
        XCTAssertEqual(receivers.count, 3)
        XCTAssertEqual(Set(receivers.map(\.state)), [.delivered])
        for core in e.cores {
            XCTAssertTrue(core.streams[0].isComplete)
            XCTAssertEqual(core.streams[0].summary().lost, 0)
        }
        for s in shared { XCTAssertEqual(e.repairs.filter { $0 == s }.count, 1, "shared loss \(s) repaired once: \(e.repairs.sorted())") }
        XCTAssertEqual(Set(e.repairs), shared.union(own.reduce(Set<UInt64>()) { $0.union($1) }), "exactly the lost numbers were repaired")
        XCTAssertEqual(e.lentWhileHeld, 0, "no slot lent before every receiver acknowledged it")
    }

    /// Keyed (SPEC §14): each receiver seals its STATUS and NAK under its own key (its own
    /// receiver id as origin); the sender derives each member's key and takes them all. The
    /// same losses as above: every receiver whole, each shared loss repaired once, nothing
    /// rejected.
    func testKeyedGroupTakesEachReceiversSealedFeedback() throws {
        let shared: Set<UInt64> = [10, 77]
        let own: [Set<UInt64>] = [[3, 40], [41], [5, 99, 150]]
        let key = try StreamSecret(bytes: (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ 5) })
        let (report, e) = try run(count: 200, receivers: 3, dropOnce: own, sharedDropOnce: shared, port: base + 7, key: key)
        let rel = try XCTUnwrap(report.reliability)
        XCTAssertTrue(rel.delivered, "\(rel)")
        XCTAssertEqual(rel.controlRejected.total, 0, "\(rel.controlRejected)")
        let receivers = try XCTUnwrap(rel.receivers)
        XCTAssertEqual(receivers.count, 3)
        XCTAssertEqual(Set(receivers.map(\.state)), [.delivered])
        XCTAssertEqual(Set(receivers.map(\.receiverID)).count, 3)
        for core in e.cores {
            XCTAssertTrue(core.streams[0].isComplete)
            XCTAssertEqual(core.streams[0].summary().lost, 0)
            XCTAssertEqual(core.statistics.unauthenticated[KeyedDatagram.Rejection.badTag.index], 0)
        }
        for s in shared { XCTAssertEqual(e.repairs.filter { $0 == s }.count, 1, "shared loss \(s) repaired once: \(e.repairs.sorted())") }
        XCTAssertEqual(Set(e.repairs), shared.union(own.reduce(Set<UInt64>()) { $0.union($1) }))
        XCTAssertEqual(e.lentWhileHeld, 0)
    }

    /// A receiver that stops answering is dropped after the receiver timeout and named with
    /// what it lacks; the other two are delivered; the stream is not delivered as a whole.
    func testSilentReceiverIsDroppedAndTheOthersFinish() throws {
        let (report, e) = try run(count: 400, receivers: 3, dropOnce: [[7], [], [9]], port: base + 1,
                                  configure: { $0.group.receiverTimeoutNanoseconds = 200_000_000; $0.group.minReceivers = 3 },
                                  setUp: { $0.silentFrom[1] = 100 })
        let rel = try XCTUnwrap(report.reliability)
        XCTAssertFalse(rel.delivered)
        let receivers = try XCTUnwrap(rel.receivers)
        let silent = try XCTUnwrap(receivers.first { $0.address?.host == "127.0.0.3" })
        XCTAssertEqual(silent.state, .dropped)
        XCTAssertTrue(silent.reason?.contains("no feedback") ?? false, "\(silent)")
        XCTAssertFalse(silent.unacknowledged.isEmpty)
        XCTAssertLessThan(silent.acknowledged, 400)
        for r in receivers where r.address?.host != "127.0.0.3" { XCTAssertEqual(r.state, .delivered, "\(r)") }
        XCTAssertTrue(e.cores[0].streams[0].isComplete)
        XCTAssertTrue(e.cores[2].streams[0].isComplete)
    }

    /// A closed group names 127.0.0.2 and .3: feedback from .4 is counted foreign and holds nothing.
    func testClosedGroupIgnoresOthers() throws {
        let named = [IPAddress("127.0.0.2")!, IPAddress("127.0.0.3")!]
        let (report, _) = try run(count: 100, receivers: 3, dropOnce: [[], [], []], port: base + 2,
                                  configure: { $0.group.named = named },
                                  setUp: { $0.silentFrom[2] = 20 })
        let rel = try XCTUnwrap(report.reliability)
        XCTAssertTrue(rel.delivered, "\(rel)")
        XCTAssertEqual(rel.receivers?.count, 2)
        XCTAssertGreaterThan(rel.controlRejected.foreign, 0)
    }

    /// --min-receivers 3 with two receivers: only the first slot goes, then the join
    /// timeout gives up with the count in the reason.
    func testGroupThatNeverFormsGivesUp() throws {
        let (report, _) = try run(count: 1000, receivers: 2, dropOnce: [[], []], port: base + 3,
                                  configure: { $0.group.minReceivers = 3; $0.group.joinTimeoutNanoseconds = 300_000_000 })
        let rel = try XCTUnwrap(report.reliability)
        XCTAssertFalse(rel.delivered)
        XCTAssertEqual(rel.groupReason, "only 2 of 3 receivers answered within --join-timeout")
        XCTAssertEqual(report.statistics.datagrams, 4, "only the first slot before the group formed")
    }
}
