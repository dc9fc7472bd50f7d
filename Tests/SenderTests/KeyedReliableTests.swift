import Receiver
import Sender
import StreamProtocol
import XCTest
import ZCSystem
#if canImport(Glibc)
import Glibc
#endif

/// Keyed reliable streams (SPEC §13 with §14): the sender's half driven by a real keyed
/// receiver core, its STATUS and NAK sealed and going over real loopback sockets, through a
/// "path" the test controls. The core answers to a tap socket (it takes the tap for the
/// stream's source); the engine reads the tap and forwards each datagram from the receiver's
/// socket (the one the sender's socket is connected to), or withholds it, or puts forged and
/// replayed ones beside it.
///
/// What it proves: losses are repaired, each repair resealed with a packet number of its
/// own from the stream's counter (suite 2 too: the ciphertext restored and encrypted afresh);
/// forged (bad tag), replayed and non-member feedback is counted unauthenticated (or
/// other_receiver) and moves nothing: no slot released, no repair made.
final class KeyedReliableTests: XCTestCase {
    static let secret = try! StreamSecret(bytes: (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })

    final class KeyedLoopEngine: HeldSlotPool, SendEngine {
        var dropOnce: Set<UInt64>
        /// Every repair as sent, and every datagram as first committed, by sequence number.
        private(set) var repairs: [[UInt8]] = []
        private(set) var originals: [UInt64: [UInt8]] = [:]
        var core = ValidatingCore()
        let receiverSocket: UDPSocket
        let tap: UDPSocket
        /// The tap's address: the stream's source as the core sees it (its feedback goes there).
        let tapSource: SourceAddress
        /// The sender's socket: where forwarded feedback goes.
        var senderAddress: SocketAddress?
        /// Feedback the core sent, in order, as it came out (sealed).
        private(set) var feedback: [[UInt8]] = []
        /// Called once a turn after the core's feedback was read: returns what goes to the sender
        /// this turn (default: everything the core just sent).
        var path: ((KeyedLoopEngine, [[UInt8]]) -> [[UInt8]])?
        private(set) var releases = 0
        private(set) var highestSent: UInt64 = 0
        private(set) var turns = 0
        private var clock: UInt64 = 1_000_000_000

        init(datagramSize: Int, dropOnce: Set<UInt64>, destination: SocketAddress) throws {
            self.dropOnce = dropOnce
            receiverSocket = try UDPSocket(family: AF_INET)
            try receiverSocket.bind(to: destination)
            tap = try UDPSocket(family: AF_INET)
            // The tap's port: the destination's, shifted clear of the other tests' ports.
            let tapPort = 20000 + (Int(destination.port) - 20000 + 10000) % 20000
            try tap.bind(to: try SocketAddress.parse("127.0.0.1:\(tapPort)"))
            tapSource = try tap.localAddress().withSockAddr { a, n in SourceAddress(sockaddr: UnsafeRawPointer(a), length: Int(n)) }
            core.keyring = ReceiverKeyring(secret: KeyedReliableTests.secret)
            super.init(slotCount: 8, segmentsPerSlot: 4, datagramSize: datagramSize)
        }

        override func release(_ slot: Int) {
            releases += 1
            super.release(slot)
        }

        func commit(_ slot: Int, length: Int, datagrams n: Int, isEnd: Bool, stats: inout SenderStatistics) throws(SendEngineError) {
            commitDatagrams(slot, length: length, datagrams: n, isEnd: isEnd, stats: &stats) { h, bytes in
                if !isEnd {
                    XCTAssertNil(originals[h.sequence], "sequence \(h.sequence) written twice")
                    originals[h.sequence] = bytes
                    highestSent = max(highestSent, h.sequence)
                }
                if isEnd || dropOnce.remove(h.sequence) == nil { deliver(bytes) }
            }
        }

        func resend(_ slot: Int, offset: Int, length: Int, stats: inout SenderStatistics) throws(SendEngineError) {
            let bytes = Array(UnsafeRawBufferPointer(start: address(of: slot) + offset, count: length))
            repairs.append(bytes)
            deliver(bytes)
        }

        func service(_ wait: ServiceWait, stats: inout SenderStatistics) throws(SendEngineError) {
            completeCommitted()
            clock += 3_000_000
            turns += 1
            core.serviceReliable(now: clock, wallNow: MonotonicClock.wallNanoseconds(), fd: receiverSocket.fd)
            var fresh: [[UInt8]] = []
            var buffer = [UInt8](repeating: 0, count: 2048)
            while true {
                let got = buffer.withUnsafeMutableBytes { b in Result { () throws(SystemError) in try tap.receive(into: b, timeoutNanoseconds: 0) } }
                guard case .success(let g?) = got else { break }
                fresh.append(Array(buffer[0..<g.length]))
            }
            feedback += fresh
            for bytes in path?(self, fresh) ?? fresh { forward(bytes) }
        }

        func forward(_ bytes: [UInt8]) {
            guard let senderAddress else { return }
            try? receiverSocket.send(bytes, to: senderAddress)
        }

        private func deliver(_ bytes: [UInt8]) {
            // A copy of its own: a keyed core decrypts a suite 2 payload in place.
            var copy = bytes
            copy.withUnsafeMutableBytes { core.process($0.baseAddress!, length: $0.count, now: clock, wallNow: 2, source: tapSource) }
        }
    }

    func configuration(port: UInt16, streamID: UInt64, encrypt: Bool) throws -> SenderConfiguration {
        var c = try SenderConfiguration(destination: try SocketAddress.parse("127.0.0.1:\(port)"), datagramSize: 300, gso: .segments(4), engine: .uring)
        c.streamID = streamID
        c.reliability = Reliability()
        c.key = Self.secret
        c.encrypt = encrypt
        return c
    }

    func run(_ c: SenderConfiguration, count: UInt64, dropOnce: Set<UInt64>,
             path: ((KeyedLoopEngine, [[UInt8]]) -> [[UInt8]])? = nil) throws -> (SenderReport, KeyedLoopEngine) {
        var engine: KeyedLoopEngine?
        let report = try StreamSender.run(c, content: StreamContent(limit: StreamLimit(datagrams: count)), engine: { (session) throws(SystemError) -> KeyedLoopEngine in
            let e = try! KeyedLoopEngine(datagramSize: 300, dropOnce: dropOnce, destination: c.destination)
            e.senderAddress = try session.socket.localAddress()
            e.path = path
            engine = e
            return e
        })
        return (report, try XCTUnwrap(engine))
    }

    /// The trailer's packet number of a keyed datagram.
    static func packetNumber(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { AuthTrailer(reading: $0.baseAddress! + $0.count - AuthTrailer.size).packetNumber }
    }

    /// Both suites: lost datagrams repaired from their slots, each repair a new packet number
    /// (never one a DATA or END took), the payload the original's plaintext, the receiver
    /// complete and nothing unauthenticated on either side.
    func testKeyedTransferWithLossesIsRepairedAndComplete() throws {
        for (k, encrypt) in [false, true].enumerated() {
            let context = encrypt ? "suite 2" : "suite 1"
            let port = UInt16(20000 + (getpid() + 11 + Int32(k)) % 20000)
            let count: UInt64 = 100
            let (report, e) = try run(try configuration(port: port, streamID: 90 + UInt64(k), encrypt: encrypt), count: count,
                                      dropOnce: [5, 6, 41, 99])
            let rel = try XCTUnwrap(report.reliability)
            XCTAssertTrue(rel.delivered, "\(context): \(rel)")
            XCTAssertEqual(rel.acknowledged, count, context)
            XCTAssertEqual(rel.controlRejected.total, 0, "\(context): \(rel.controlRejected)")
            XCTAssertGreaterThan(rel.statusReceived, 0, context)
            XCTAssertGreaterThan(rel.naksReceived, 0, context)
            // Every STATUS and NAK went out keyed, origin its own receiver id (the body's).
            XCTAssertFalse(e.feedback.isEmpty)
            for f in e.feedback {
                f.withUnsafeBytes { b in
                    guard case .success(let d) = KeyedDatagram.parse(b.baseAddress!, length: b.count) else { return XCTFail("\(context): feedback not keyed") }
                    XCTAssertTrue(d.kind == .status || d.kind == .nak, context)
                    XCTAssertEqual(d.trailer.origin, UInt64(bigEndian: b.loadUnaligned(fromByteOffset: 56, as: UInt64.self)), context)
                }
            }
            let originalNumbers = Set(e.originals.values.map(Self.packetNumber))
            XCTAssertEqual(originalNumbers.count, Int(count), "\(context): one packet number per datagram")
            let repaired = Set(e.repairs.map { $0.withUnsafeBytes { DatagramHeader(reading: $0.baseAddress!).sequence } })
            XCTAssertEqual(repaired, [5, 6, 41, 99], context)
            let opener = DatagramAuthenticator(key: Self.secret.sourceKey(streamID: 90 + UInt64(k)), sealing: false)
            func opened(_ bytes: [UInt8]) -> [UInt8]? {
                var copy = bytes
                return copy.withUnsafeMutableBytes { b -> [UInt8]? in
                    let h = DatagramHeader(reading: b.baseAddress!)
                    guard opener.open(b.baseAddress!, payloadLength: Int(h.payloadLength)) else { return nil }
                    return Array(b[48..<(48 + Int(h.payloadLength))])
                }
            }
            var repairNumbers = Set<UInt64>()
            for r in e.repairs {
                let seq = r.withUnsafeBytes { DatagramHeader(reading: $0.baseAddress!).sequence }
                let original = try XCTUnwrap(e.originals[seq])
                XCTAssertEqual(r[5], original[5] | DatagramFlags.repair.rawValue, context)
                let n = Self.packetNumber(r)
                XCTAssertFalse(originalNumbers.contains(n), "\(context): repair of \(seq) reuses a packet number")
                repairNumbers.insert(n)
                let plain = try XCTUnwrap(opened(r), "\(context): repair of \(seq) does not open")
                XCTAssertEqual(plain, opened(original), "\(context): repair of \(seq) is not the original's payload")
                if encrypt { XCTAssertNotEqual(Array(r[48..<(r.count - 40)]), Array(original[48..<(original.count - 40)]), context) }
            }
            // The same bytes sent again keep their number: one number per repaired sequence.
            XCTAssertEqual(repairNumbers.count, repaired.count, context)
            let s = e.core.streams[0]
            XCTAssertTrue(s.isComplete, context)
            XCTAssertEqual(s.repaired, 4, context)
            XCTAssertEqual(s.summary().lost, 0, context)
            XCTAssertEqual(e.core.statistics.unauthenticated[KeyedDatagram.Rejection.badTag.index], 0, context)
            XCTAssertEqual(e.lentWhileHeld, 0, context)
        }
    }

    /// Mid-stream the path withholds the receiver's feedback for a while and puts forged ones
    /// in its place: a STATUS (the last genuine one with its acknowledgement and window raised
    /// to everything sent and 2^40: its tag no longer matches), the last genuine STATUS again
    /// (a replay), and a NAK of everything sealed correctly by a receiver id that is not the
    /// stream's (another key-holder: authentic, but no member), and the same NAK sealed by
    /// someone without the secret (a bad tag), and a plain version 3 STATUS in the member's
    /// name acknowledging everything (not keyed). None moves the acknowledgement
    /// (no slot released) or makes a repair (the tail probe aside); each is counted; the stream
    /// then completes.
    func testForgedReplayedAndNonMemberFeedbackChangesNothing() throws {
        let port = UInt16(20000 + (getpid() + 17) % 20000)
        let streamID: UInt64 = 95
        let quietTurns = 3, blackoutTurns = 40
        var quietFrom: Int?
        var blackout: (releases: Int, highestSent: UInt64, repairs: Int, startTurn: Int)?
        var duringBlackout: [(releases: Int, repairs: Int)] = []
        var lastGenuine: [UInt8]?
        let (report, e) = try run(try configuration(port: port, streamID: streamID, encrypt: false), count: 400, dropOnce: [30, 31]) { e, fresh in
            if let b = blackout {
                guard e.turns - b.startTurn < blackoutTurns else { return fresh }
                duringBlackout.append((e.releases, e.repairs.count))
                return []  // the receiver is not heard
            }
            if let q = quietFrom {
                // Quiet first, so that everything forwarded before has been taken in.
                if e.turns - q < quietTurns { return [] }
                let genuine = lastGenuine!
                // A forged STATUS: the genuine one with the acknowledgement (header sequence) and
                // the window limit (body 16..23) raised; the tag stays the old one.
                var forged = genuine
                let everything = e.highestSent + 1
                forged.withUnsafeMutableBytes { b in
                    b.storeBytes(of: everything.bigEndian, toByteOffset: 16, as: UInt64.self)
                    b.storeBytes(of: (UInt64(1) << 40).bigEndian, toByteOffset: 48 + 16, as: UInt64.self)
                    // Highest and unique too, so that its body is a valid STATUS (ack ≤ unique ≤ highest).
                    b.storeBytes(of: everything.bigEndian, toByteOffset: 48 + 24, as: UInt64.self)
                    b.storeBytes(of: everything.bigEndian, toByteOffset: 48 + 32, as: UInt64.self)
                    // A fresh packet number, as a forger would take: only the tag stops it.
                    let trailer = b.count - AuthTrailer.size
                    let fresh = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: trailer + 16, as: UInt64.self)) + 1000
                    b.storeBytes(of: fresh.bigEndian, toByteOffset: trailer + 16, as: UInt64.self)
                }
                // A NAK of everything from a receiver id the sender never heard, sealed under its key.
                let stranger: UInt64 = 0x5eed
                var nak = NakMessage(streamID: streamID, receiverID: stranger)
                nak.cumulativeAck = 0
                func sealedNak(key: [UInt8]) -> [UInt8] {
                    var nakBytes = [UInt8](repeating: 0, count: 2048)
                    let n = nakBytes.withUnsafeMutableBytes { b -> Int in
                        _ = nak.encode(ranges: [0...(everything - 1)], into: b.baseAddress!, capacity: 2048 - AuthTrailer.size)!
                        return KeyedDatagram.seal(b.baseAddress!, authenticator: DatagramAuthenticator(key: key, sealing: true),
                                                  trailer: AuthTrailer(keyID: Self.secret.keyID, suite: .authenticated, origin: stranger, packetNumber: 0))
                    }
                    return Array(nakBytes[0..<n])
                }
                // The same NAK from someone without the secret (its key id copied): a bad tag.
                let guessed = [UInt8](repeating: 7, count: 31) + [8]
                // A plain (version 3) STATUS in the member's name acknowledging everything: not keyed.
                var plain = StatusMessage(streamID: streamID, receiverID: genuine.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: 56, as: UInt64.self)) })
                plain.cumulativeAck = everything
                plain.windowLimit = 1 << 40
                plain.highest = everything
                plain.unique = everything
                var plainBytes = [UInt8](repeating: 0, count: StatusMessage.length)
                plainBytes.withUnsafeMutableBytes { _ = plain.encode(into: $0.baseAddress!) }
                blackout = (e.releases, e.highestSent, e.repairs.count, e.turns)
                return [forged, genuine, plainBytes, sealedNak(key: Self.secret.receiverKey(streamID: streamID, receiverID: stranger)), sealedNak(key: guessed)]
            }
            if e.highestSent >= 120 && lastGenuine != nil {
                quietFrom = e.turns
                return []
            }
            if let s = fresh.last(where: { $0.count > 5 && $0[5] == DatagramFlags.status.rawValue }) { lastGenuine = s }
            return fresh
        }
        let rel = try XCTUnwrap(report.reliability)
        let b = try XCTUnwrap(blackout, "the stream ended before the forgeries went")
        XCTAssertEqual(duringBlackout.count, blackoutTurns - 1)
        for (turn, d) in duringBlackout.enumerated() {
            XCTAssertEqual(d.releases, b.releases, "turn \(turn) of the blackout: a slot was released")
        }
        // No repair but tail probes (of the last datagram sent, at or above the highest sent
        // before): the forged NAK would have repaired from the acknowledgement up.
        for r in e.repairs[b.repairs..<(duringBlackout.last?.repairs ?? b.repairs)] {
            XCTAssertGreaterThanOrEqual(r.withUnsafeBytes { DatagramHeader(reading: $0.baseAddress!).sequence }, b.highestSent,
                                        "a repair the forged NAK asked for")
        }
        let x = rel.controlRejected
        XCTAssertEqual(x.unauthenticated[KeyedDatagram.Rejection.badTag.index], 2, "the forged STATUS and the keyless NAK: \(x)")
        XCTAssertEqual(x.unauthenticated[KeyedDatagram.Rejection.replayed.index], 1, "\(x)")
        XCTAssertEqual(x.otherReceiver, 1, "the non-member's NAK: \(x)")
        XCTAssertEqual(x.unauthenticated[KeyedDatagram.Rejection.notKeyed.index], 1, "the version 3 STATUS: \(x)")
        XCTAssertEqual(x.impossible, 0)
        XCTAssertTrue(rel.delivered, "\(rel)")
        XCTAssertEqual(rel.acknowledged, 400)
        XCTAssertTrue(e.core.streams[0].isComplete)
        XCTAssertEqual(e.lentWhileHeld, 0)
    }
}
