#if canImport(Glibc)
import Glibc
#endif
import StreamProtocol
import ZCSystem

/// A slot the receiver has not acknowledged yet: its sequence numbers and bytes.
struct HeldSlot {
    var first: UInt64
    var slot: Int32
    var datagrams: Int32
    var length: Int32
}

/// The sender's half of a reliable stream (SPEC §13): the feedback it reads and what it does
/// about it. It keeps every data slot out of the pool until the receiver's cumulative
/// acknowledgement covers it (the engine holds it; the slot returns when **both** the
/// kernel's notification and the acknowledgement came), bounds new data by the receiver's
/// window, repairs NAKed datagrams from the slot itself, and gives up after the deadline.
///
/// One per stream, on the stream's thread; called once per driver turn and while the driver
/// waits, never per datagram. All memory is allocated at construction.
///
/// A multicast stream has many receivers (SPEC §13.11): each is a ``GroupMember``, found by
/// its receiver id, and the stream's acknowledgement and window are the lowest of the
/// members still in the group. A repair goes to the group once, whoever NAKed it (the
/// hold-off keeps several receivers' NAKs of one loss to one repair). Before the group has
/// formed (``GroupPolicy/required`` receivers answered), only the first slot goes, repeated
/// as a probe, and nothing is released; a receiver silent for the receiver timeout, or alone
/// holding the sender back that long, is dropped (``GroupPolicy/SlowReceiver``).
package final class ReliableDelivery {
    let parameters: Reliability
    let streamID: UInt64
    let datagramSize: Int
    let segments: Int
    /// Unicast: the session's socket, connected to the destination, so only its datagrams
    /// arrive (SPEC §13.9 rule 1 holds by construction). Multicast: a socket bound to the
    /// sending socket's port, unconnected, taking every receiver's feedback.
    let feedbackFD: Int32
    /// A multicast stream: members by receiver id and address, the group's rules apply.
    let isGroup: Bool
    /// After delivery, how long a multicast stream waits for its receivers' REPORTs (nil: not).
    let reportWaitNanoseconds: UInt64?

    /// Held slots in sequence order (a ring), oldest first.
    private let held: UnsafeMutablePointer<HeldSlot>
    private let capacity: Int
    private var head = 0
    private var count = 0
    /// Per datagram position (slot × segments + k): when it was last repaired (0: never).
    private let repairedAt: UnsafeMutablePointer<UInt64>
    private let buffer: UnsafeMutableRawBufferPointer
    /// Where a multicast stream's feedback datagram came from.
    private let from: UnsafeMutablePointer<sockaddr_storage>
    /// A keyed stream (SPEC §14): the source's sealing (repairs reseal with its packet number
    /// counter, the writer's) and the secret feedback is opened under. nil: a plain stream.
    let keying: StreamKeying?
    /// A keyed stream: the authenticated feedback datagram as the version 3 (or 2) datagram
    /// it sealed, for the existing decoders (fixed: no allocation per datagram).
    private let plain: UnsafeMutableRawBufferPointer
    /// The feedback datagram just authenticated: its origin (a receiver id), and, for an
    /// origin not yet a member, its opener and packet number, which ``admit(_:from:ack:now:)``
    /// keeps with the member it makes.
    private var keyedOrigin: UInt64 = 0
    private var admission: (opener: DatagramAuthenticator, packetNumber: UInt64)?

    /// The receivers heard (one for unicast).
    private(set) var members: [GroupMember] = []
    /// Every sequence number below it is acknowledged (by every member still in the group).
    package private(set) var ack: UInt64 = 0
    /// Every sequence number below it went back to the pool: a receiver first heard with an
    /// acknowledgement below it can never be made whole.
    private var releasedBelow: UInt64 = 0
    /// New DATA may use sequence numbers below it.
    package private(set) var windowLimit: UInt64
    /// One above the highest sequence number sent.
    package private(set) var sentEdge: UInt64 = 0
    /// Multicast: the required receivers answered (unicast: always).
    private var formed: Bool
    /// Multicast: no slot is released before (the group formed ``joinGrace`` earlier).
    private var releaseAfter: UInt64 = 0
    /// How long a group that just formed keeps every slot, for receivers a moment behind.
    static let joinGrace: UInt64 = 100_000_000
    private let startedAt: UInt64
    /// When the acknowledgement last moved (or the first feedback came, or the stream began).
    private var lastProgressAt: UInt64
    /// Every member still in the group said `complete` (and at least one did).
    package private(set) var delivered = false
    /// The deadline passed, the run was stopped, the group never formed or emptied.
    package private(set) var gaveUp = false
    /// The whole stream went out (END follows the source's end, not a give-up): only then
    /// does a receiver's `complete` mean it holds everything.
    private var everythingSent = false
    private var gaveUpReason: String?
    /// A REPORT for the stream that came in among the feedback (unicast: the receiver finished).
    package private(set) var receiverReport: StreamReport?
    package private(set) var report = ReliabilityReport()

    /// RTT from STATUS echoes of every member (SPEC §13.5): the hold-off, END and probe timing.
    private var rtt = RTTEstimator()
    private var blockedSince: UInt64 = 0
    /// The loss response (``congestionDelay(now:)``): this epoch's start, new datagrams and
    /// bytes sent and repairs made in it, and the rate cap in force (nil: none).
    private var epochStart: UInt64 = 0
    private var epochDatagrams: UInt64 = 0
    private var epochBytes: UInt64 = 0
    private var epochRepairs: UInt64 = 0
    private var capBitsPerSecond: Double?
    private var capDue: UInt64 = 0
    private var congestedEpochs = 0
    /// Tail-loss probing: when the last probe went, and the wait before the next.
    private var lastProbeAt: UInt64 = 0
    private var probeInterval: UInt64 = 0

    init(parameters: Reliability, streamID: UInt64, datagramSize: Int, segments: Int, slotCount: Int, feedbackFD: Int32,
         group: Bool = false, reportWaitNanoseconds: UInt64? = nil, keying: StreamKeying? = nil) {
        self.parameters = parameters
        self.streamID = streamID
        self.datagramSize = datagramSize
        self.segments = segments
        self.feedbackFD = feedbackFD
        isGroup = group
        self.reportWaitNanoseconds = reportWaitNanoseconds
        capacity = slotCount
        held = .allocate(capacity: slotCount)
        repairedAt = .allocate(capacity: slotCount * segments)
        repairedAt.initialize(repeating: 0, count: slotCount * segments)
        buffer = .allocate(byteCount: 2048, alignment: 8)
        self.keying = keying
        plain = .allocate(byteCount: keying == nil ? 0 : 2048, alignment: 8)
        from = .allocate(capacity: 1)
        from.initialize(to: sockaddr_storage())
        // A group sends its first slot only (a probe) until its receivers answered.
        formed = !group
        windowLimit = group ? UInt64(segments) : parameters.initialWindow
        let now = MonotonicClock.nanoseconds()
        startedAt = now
        lastProgressAt = now
        members.reserveCapacity(group ? parameters.group.maxReceivers : 1)
        if group { report.minReceivers = parameters.group.required }
    }

    deinit {
        held.deallocate()
        repairedAt.deallocate()
        buffer.deallocate()
        plain.deallocate()
        from.deallocate()
    }

    /// The stream's state for a progress snapshot (once per progress interval).
    var progress: ReliableProgress {
        var p = ReliableProgress()
        p.acknowledged = ack
        p.retransmittedDatagrams = report.retransmittedDatagrams
        p.naksReceived = report.naksReceived
        p.statusReceived = report.statusReceived
        for m in members {
            switch m.state {
            case .live: p.receiversLive += 1
            case .delivered: p.receiversDelivered += 1
            case .dropped: p.receiversDropped += 1
            case .gaveUp, .late: p.receiversOther += 1
            }
        }
        return p
    }

    /// The smoothed RTT, or the initial one before a sample.
    var smoothedRTT: UInt64 { rtt.smoothed(orInitial: parameters.initialRTTNanoseconds) }

    /// True when DATA up to (not including) sequence `end` fits the receivers' window.
    @inline(__always)
    func windowAllows(through end: UInt64) -> Bool { end <= windowLimit }

    /// Before its commit: `slot` at `base` holds `datagrams` data datagrams (`length` bytes);
    /// the engine keeps it until they are all acknowledged.
    func noteSent<Engine: SendEngine>(_ slot: Int, base: UnsafeRawPointer, datagrams: Int, length: Int, engine: Engine) {
        let first = UInt64(bigEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        precondition(count < capacity, "more held slots than the pool has")
        held[(head + count) % capacity] = HeldSlot(first: first, slot: Int32(slot), datagrams: Int32(datagrams), length: Int32(length))
        count += 1
        sentEdge = max(sentEdge, first + UInt64(datagrams))
        epochDatagrams &+= UInt64(datagrams)
        epochBytes &+= UInt64(length)
        if let cap = capBitsPerSecond { capDue &+= UInt64(Double(length) * 8 * 1e9 / cap) }
        engine.hold(slot)
        for k in 0..<datagrams { repairedAt[slot * segments + k] = 0 }
    }

    // MARK: Feedback

    /// Takes in every feedback datagram waiting on the socket (without blocking): STATUS moves
    /// the acknowledgement and the window, NAK is answered with repairs.
    func poll<Engine: SendEngine>(_ engine: Engine, stats: inout SenderStatistics) throws(SendEngineError) {
        settle(engine)
        for _ in 0..<256 {
            let got: (length: Int, sender: SocketAddress?)?
            // ECONNREFUSED: an ICMP port unreachable (nothing listens yet, or any more): the
            // deadline decides. Anything else is not the stream's business either.
            do { got = try receiveOne() } catch { return }
            guard let got else { return }
            guard let bytes = authenticated(length: got.length) else { continue }
            try take(bytes, from: got.sender, engine: engine, stats: &stats)
        }
    }

    /// The feedback datagram of `length` bytes in ``buffer`` as the decoders read it: itself
    /// for a plain stream; for a keyed one, the datagram it sealed (in ``plain``) once it
    /// passed SPEC §14.4 checks 1–10, else nil (counted unauthenticated, ignored).
    private func authenticated(length: Int) -> UnsafeRawBufferPointer? {
        guard let keying else { return UnsafeRawBufferPointer(rebasing: buffer[0..<length]) }
        admission = nil
        guard let (n, _) = authenticate(length: length, keying: keying) else { return nil }
        return UnsafeRawBufferPointer(rebasing: plain[0..<n])
    }

    /// SPEC §14.4 checks 1–10 on the keyed feedback datagram in ``buffer``: structure; a
    /// STATUS, NAK or REPORT; the secret's key id; the tag under the key of the receiver it
    /// names as origin (a member's opener is derived once; an origin not yet a member costs a
    /// derivation); that origin's replay window; and, for STATUS and NAK, the origin is the
    /// receiver id in the body. Then the datagram it sealed goes to ``plain`` (version 3, or 2
    /// for a REPORT, a fresh CRC) for §13.4's decoders and §13.9's rules. Nil: counted in
    /// ``ControlRejections/unauthenticated`` by reason; it touches nothing else.
    private func authenticate(length: Int, keying: StreamKeying) -> (length: Int, kind: KeyedDatagram.Kind)? {
        let p = buffer.baseAddress!
        func reject(_ r: KeyedDatagram.Rejection) -> (length: Int, kind: KeyedDatagram.Kind)? {
            report.controlRejected.unauthenticated[r.index] &+= 1
            return nil
        }
        let d: KeyedDatagram.Parsed
        switch KeyedDatagram.parse(p, length: length) {
        case .failure(let r): return reject(r)
        case .success(let parsed): d = parsed
        }
        // DATA and END are the source's: never feedback (as bad_flags to a version 3 reader).
        guard d.kind != .stream else { return reject(.badFlags) }
        guard d.trailer.keyID == keying.keyID else { return reject(.wrongKey) }
        let origin = d.trailer.origin
        let known = members.firstIndex(where: { $0.id == origin })
        // Under this stream's key for that receiver: another stream's feedback fails its tag.
        let opener = known.flatMap { members[$0].opener }
            ?? DatagramAuthenticator(key: keying.secret.receiverKey(streamID: streamID, receiverID: origin), sealing: false)
        let headerLength = Int(d.header.headerLength), payloadLength = Int(d.header.payloadLength)
        guard opener.open(p, headerLength: headerLength, payloadLength: payloadLength) else { return reject(.badTag) }
        if let i = known {
            guard members[i].takePacketNumber(d.trailer.packetNumber) else { return reject(.replayed) }
        } else {
            admission = (opener, d.trailer.packetNumber)
        }
        // STATUS and NAK name their receiver in the body (bytes 8..15): it must be the key's.
        if d.kind != .report && payloadLength >= 16
            && UInt64(bigEndian: (p + headerLength + 8).loadUnaligned(as: UInt64.self)) != origin {
            return reject(.badTrailer)
        }
        keyedOrigin = origin
        let version = d.kind == .report ? StreamReport.version : DatagramHeader.reliableVersion
        return (KeyedDatagram.unseal(p, length: length, version: version, into: plain.baseAddress!), d.kind)
    }

    /// One feedback datagram into ``buffer`` without blocking: its length and, for a group,
    /// where it came from (unicast: nil, the connected socket's peer); nil when none waits.
    private func receiveOne() throws(SystemError) -> (length: Int, sender: SocketAddress?)? {
        guard isGroup else {
            return try SocketCalls.receive(feedbackFD, into: buffer, flags: Int32(MSG_DONTWAIT)).map { ($0, nil) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let n = try from.withMemoryRebound(to: sockaddr.self, capacity: 1) { (a) throws(SystemError) in
            try SocketCalls.receive(feedbackFD, into: buffer, flags: Int32(MSG_DONTWAIT), from: a, length: &length)
        }
        return n.map { ($0, SocketAddress(storage: UnsafeRawPointer(from))) }
    }

    /// Waits up to a millisecond for feedback or a completion, takes in both; probes the
    /// tail when the acknowledgement has stalled short of what was sent.
    func wait<Engine: SendEngine>(_ engine: Engine, stats: inout SenderStatistics) throws(SendEngineError) {
        try engine.service(.none, stats: &stats)
        try poll(engine, stats: &stats)
        if delivered || gaveUp { return }
        try probeIfStalled(now: MonotonicClock.nanoseconds(), engine: engine, stats: &stats)
        _ = try? FileCalls.pollEither(feedbackFD, engine.completionDescriptor ?? -1, timeoutMilliseconds: 1)
        try engine.service(.none, stats: &stats)
        try poll(engine, stats: &stats)
    }

    private func take<Engine: SendEngine>(_ bytes: UnsafeRawBufferPointer, from sender: SocketAddress?, engine: Engine,
                                          stats: inout SenderStatistics) throws(SendEngineError) {
        let p = bytes.baseAddress!
        let isControl = bytes.count >= DatagramHeader.size && p.load(fromByteOffset: 4, as: UInt8.self) == DatagramHeader.reliableVersion
        guard isControl else {
            // The receiver's REPORT can overtake the last STATUS: it ends a unicast stream too.
            // A group member's REPORT is kept with the member it came from.
            if case .success(let r) = StreamReport.decode(bytes), r.streamID == streamID {
                // Keyed: only a member's, sealed under its own key (SPEC §14.6).
                if let sender {
                    if let i = members.firstIndex(where: { ($0.address?.sameEndpoint(sender) ?? false) && (keying == nil || $0.id == keyedOrigin) }) {
                        members[i].report = r
                    } else { report.controlRejected.foreign &+= 1 }
                } else if keying == nil || members.first?.id == keyedOrigin {
                    receiverReport = r
                } else {
                    report.controlRejected.otherReceiver &+= 1
                }
            } else {
                report.controlRejected.malformed &+= 1
            }
            return
        }
        let now = MonotonicClock.nanoseconds()
        if p.load(fromByteOffset: 5, as: UInt8.self) & DatagramFlags.nak.rawValue != 0 {
            switch NakMessage.decode(bytes) {
            case .failure: report.controlRejected.malformed &+= 1
            case .success(let m):
                guard let i = accept(streamID: m.streamID, receiverID: m.receiverID, from: sender, ack: m.cumulativeAck, now: now) else { return }
                report.naksReceived &+= 1
                members[i].naksReceived &+= 1
                acknowledge(i, m.cumulativeAck, now: now, engine: engine)
                try answer(m.ranges(in: bytes), member: i, now: now, engine: engine, stats: &stats)
            }
        } else {
            switch StatusMessage.decode(bytes) {
            case .failure: report.controlRejected.malformed &+= 1
            case .success(let m):
                guard let i = accept(streamID: m.streamID, receiverID: m.receiverID, from: sender, ack: m.cumulativeAck, now: now) else { return }
                report.statusReceived &+= 1
                members[i].statusReceived &+= 1
                members[i].windowLimit = max(members[i].windowLimit, m.windowLimit)
                members[i].lastStatusHighest = m.highest
                members[i].lastStatusAt = now
                if m.echoTimestampNanoseconds != 0 { sampleRTT(member: i, echo: m.echoTimestampNanoseconds, delay: m.echoDelayNanoseconds) }
                if members[i].state == .live {
                    if m.complete { members[i].state = .delivered }
                    else if m.gaveUp { members[i].state = .gaveUp; members[i].reason = "its deadline passed with datagrams missing" }
                }
                acknowledge(i, m.cumulativeAck, now: now, engine: engine)
            }
        }
    }

    /// SPEC §13.9 rules 3–6 (rule 1 is the connected socket's for unicast, the closed group's
    /// list for multicast; rule 2 the decoder's). The member the datagram is from, or nil.
    private func accept(streamID id: UInt64, receiverID rid: UInt64, from sender: SocketAddress?, ack: UInt64, now: UInt64) -> Int? {
        guard id == streamID else { report.controlRejected.unknownStream &+= 1; return nil }
        var index = members.firstIndex(where: { $0.id == rid })
        if let i = index {
            if let sender, let known = members[i].address, !known.sameEndpoint(sender) {
                report.controlRejected.foreign &+= 1
                return nil
            }
        } else {
            guard let i = admit(rid, from: sender, ack: ack, now: now) else { return nil }
            index = i
        }
        let i = index!
        // A member the sender left out of the group: its feedback changes nothing.
        if members[i].state == .dropped { return nil }
        guard members[i].takeToken(now: now, ratePerSecond: parameters.controlRatePerSecond, burst: parameters.controlBurst) else {
            report.controlRejected.rateLimited &+= 1
            return nil
        }
        guard ack <= sentEdge else { report.controlRejected.impossible &+= 1; return nil }
        if report.statusReceived == 0 && report.naksReceived == 0 { lastProgressAt = now }
        members[i].lastHeardAt = now
        return i
    }

    /// A receiver id heard for the first time: a member, or nil (rejected and counted).
    private func admit(_ rid: UInt64, from sender: SocketAddress?, ack: UInt64, now: UInt64) -> Int? {
        let policy = parameters.group
        if !isGroup {
            // Unicast: the first receiver id is the stream's receiver (§13.9 step 4).
            guard members.isEmpty else { report.controlRejected.otherReceiver &+= 1; return nil }
        } else {
            guard let sender else { report.controlRejected.foreign &+= 1; return nil }
            if let named = policy.named, !named.contains(IPAddress(sender)) { report.controlRejected.foreign &+= 1; return nil }
            guard members.count < policy.maxReceivers else { report.controlRejected.otherReceiver &+= 1; return nil }
        }
        var m = GroupMember(id: rid, address: sender, initialWindow: parameters.initialWindow, burst: parameters.controlBurst, now: now)
        if let a = admission {
            // Keyed: its key's opener and replay window, from the datagram that made it a member.
            m.opener = a.opener
            _ = m.takePacketNumber(a.packetNumber)
            admission = nil
        }
        if formed && isGroup && ack < releasedBelow {
            // What it lacks went back to the pool when the others acknowledged it.
            m.state = .late
            m.releasedWhenHeard = releasedBelow
            m.reason = "first heard at sequence \(ack), after the others' acknowledgements released up to \(releasedBelow)"
        }
        members.append(m)
        if !formed && members.count(where: { $0.state == .live || $0.state == .delivered }) >= policy.required {
            formed = true
            releaseAfter = now + Self.joinGrace
        }
        return members.count - 1
    }

    /// Member `i`'s acknowledgement moved to `newAck`: the group's acknowledgement and window
    /// follow, and every slot the group's acknowledgement now covers goes back.
    private func acknowledge<Engine: SendEngine>(_ i: Int, _ newAck: UInt64, now: UInt64, engine: Engine) {
        if newAck > members[i].ack {
            members[i].ack = newAck
            members[i].lastProgressAt = now
        }
        regroup(now: now, engine: engine)
    }

    /// The group's acknowledgement and window from its members (both only once the group
    /// formed; the acknowledgement never retreats), slots released up to it, delivery.
    private func regroup<Engine: SendEngine>(now: UInt64, engine: Engine) {
        guard formed else { return }
        var lowestAck = UInt64.max, lowestWindow = UInt64.max
        var bound = 0, open = 0
        for m in members where m.bindsGroup {
            bound += 1
            if m.state == .live { open += 1 }
            lowestAck = min(lowestAck, m.ack)
            lowestWindow = min(lowestWindow, m.windowLimit)
        }
        guard bound > 0 else { return }
        if isGroup { windowLimit = lowestWindow } else { windowLimit = max(windowLimit, lowestWindow) }
        if open == 0 { delivered = true }
        if lowestAck > ack {
            ack = lowestAck
            lastProgressAt = now
            probeInterval = 0
        } else if isGroup && lowestAck < ack {
            // A member joined lacking numbers the others had acknowledged but that are still
            // held (it is not late: its acknowledgement is at least what was released). The
            // group's acknowledgement is its again, so those numbers are repaired, not
            // released or taken for outside.
            ack = max(lowestAck, releasedBelow)
        }
        // A group releases nothing in its first moments: receivers started with the others
        // but heard a little later still find everything held (else they would be late).
        guard now >= releaseAfter else { return }
        while count > 0 {
            let h = held[head]
            guard h.first + UInt64(h.datagrams) <= ack else { break }
            engine.release(Int(h.slot))
            releasedBelow = h.first + UInt64(h.datagrams)
            head = (head + 1) % capacity
            count -= 1
        }
    }

    /// Repairs what a NAK names: only numbers sent and not acknowledged, each at most once
    /// per hold-off, at most K per NAK (SPEC §13.6). A repair goes to every receiver: in a
    /// group the hold-off makes one repair of a loss several members NAK.
    private func answer<Engine: SendEngine>(_ ranges: NakRanges, member i: Int, now: UInt64, engine: Engine,
                                            stats: inout SenderStatistics) throws(SendEngineError) {
        members[i].lastNak.removeAll(keepingCapacity: true)
        members[i].lastNakAt = now
        var budget = parameters.repairsPerNak
        var repaired = 0
        var outside = true
        // Long enough for the last repair to have arrived (the RTT's spread included: a repair
        // queued behind the receiver's backlog must not go twice), at least 1 ms.
        let holdOff = max(rtt.timeout(orInitial: parameters.initialRTTNanoseconds), 1_000_000)
        let floor = members[i].state == .late ? releasedBelow : ack
        for r in ranges {
            members[i].lastNak.append(r)
            let first = max(r.lowerBound, floor)
            guard sentEdge > 0 else { continue }
            let last = min(r.upperBound, sentEdge - 1)
            guard first <= last else { continue }
            outside = false
            var s = first
            while s <= last && budget > 0 {
                if try repair(s, now: now, holdOff: holdOff, engine: engine, stats: &stats) { repaired += 1 }
                budget -= 1
                s += 1
            }
        }
        if outside { report.nakedOutside &+= 1 }
        if repaired > 0 { report.repairRounds &+= 1 }
    }

    /// Sends sequence number `s` again from its slot: REPAIR set and resealed in place the
    /// first time (only once the kernel let go of the slot's first send), then the same bytes.
    /// Keyed, the first reseal takes a new packet number from the stream's counter (the bytes
    /// changed, SPEC §14.3); later copies keep it (a receiver counts them `replayed`).
    private func repair<Engine: SendEngine>(_ s: UInt64, now: UInt64, holdOff: UInt64, engine: Engine,
                                            stats: inout SenderStatistics) throws(SendEngineError) -> Bool {
        guard let entry = find(s) else { report.nakedOutside &+= 1; return false }
        let slot = Int(entry.slot)
        let k = Int(s - entry.first)
        let mark = slot * segments + k
        if repairedAt[mark] != 0 && now &- repairedAt[mark] < holdOff { report.repairsHeldOff &+= 1; return false }
        guard engine.originalSendDone(slot) else { report.repairsDeferred &+= 1; return false }
        let offset = k * datagramSize
        let length = k < Int(entry.datagrams) - 1 ? datagramSize : Int(entry.length) - offset
        let p = engine.address(of: slot) + offset
        let flags = p.load(fromByteOffset: 5, as: UInt8.self)
        if flags & DatagramFlags.repair.rawValue == 0 {
            if let keying {
                p.storeBytes(of: flags | DatagramFlags.repair.rawValue, toByteOffset: 5, as: UInt8.self)
                let header = DatagramHeader(reading: p)
                keying.authenticator.reseal(p, headerLength: Int(header.headerLength), payloadLength: Int(header.payloadLength),
                                            packetNumber: keying.takePacketNumber())
            } else {
                Datagram.markRepair(p, length: length)
            }
        }
        try engine.resend(slot, offset: offset, length: length, stats: &stats)
        repairedAt[mark] = now
        report.retransmittedDatagrams &+= 1
        epochRepairs &+= 1
        report.retransmittedBytes &+= UInt64(length)
        return true
    }

    /// Tail-loss probe. A receiver NAKs only what it knows is missing: numbers below its
    /// highest, or below END's total. When everything after its highest was lost (an outage)
    /// and the window or the pool stops the sender, nothing more would arrive to show the
    /// gap. So while the acknowledgement is stalled short of what was sent and the last
    /// STATUS has not seen the last datagram, the last datagram sent goes again as a repair
    /// (`max(2·srtt, 10 ms)` after the last progress, doubling to 250 ms): the receiver then
    /// sees the whole gap and NAKs it. One datagram per interval: nothing to amplify.
    /// A group not yet formed is probed every 10 ms: that is how its receivers learn of it.
    private func probeIfStalled<Engine: SendEngine>(now: UInt64, engine: Engine, stats: inout SenderStatistics) throws(SendEngineError) {
        guard sentEdge > 0 else { return }
        if formed {
            var seen = UInt64.max
            for m in members where m.state == .live { seen = min(seen, m.lastStatusHighest) }
            guard sentEdge > ack, members.isEmpty || seen < sentEdge else { return }
        }
        // Before any feedback (the first datagrams can die waiting for ARP on a fresh path):
        // every 10 ms, not doubling, so the stream starts as soon as the path does.
        let heard = formed && (report.statusReceived > 0 || report.naksReceived > 0)
        if probeInterval == 0 { probeInterval = heard ? max(2 * smoothedRTT, 10_000_000) : 10_000_000 }
        let since = max(lastProgressAt, lastProbeAt)
        guard now > since, now - since >= probeInterval else { return }
        lastProbeAt = now
        if heard { probeInterval = min(probeInterval * 2, Self.endRepeatCap) }
        if try repair(sentEdge - 1, now: now, holdOff: 0, engine: engine, stats: &stats) { report.tailProbes &+= 1 }
    }

    /// The held slot that holds sequence number `s` (binary search: the ring is in order).
    private func find(_ s: UInt64) -> HeldSlot? {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            let h = held[(head + mid) % capacity]
            if s < h.first { high = mid }
            else if s >= h.first + UInt64(h.datagrams) { low = mid + 1 }
            else { return h }
        }
        return nil
    }

    /// RFC 6298 smoothing of `now − echo − delay` (wall clock, the sender's own on both ends).
    private func sampleRTT(member i: Int, echo: UInt64, delay: UInt64) {
        let wall = MonotonicClock.wallNanoseconds()
        guard wall > echo, wall - echo > delay else { return }
        let sample = wall - echo - delay
        guard sample < 60_000_000_000 else { return }
        rtt.add(sample)
        members[i].rtt.add(sample)
    }

    // MARK: The loss response

    /// Epochs of the loss response: long enough to count losses, short enough to react.
    static let epochNanoseconds: UInt64 = 50_000_000
    /// Repairs beyond this fraction of an epoch's new datagrams, two epochs running, mean congestion.
    static let congestionLoss = 0.15
    /// The cap never goes below this (a congested path still gets its repairs through).
    static let minimumCap = 10e6

    /// How long new data must wait under the loss response's rate cap (0: not capped).
    ///
    /// The algorithm (documented in docs/reliable.md): every 50 ms epoch the sender compares
    /// the repairs it made with the new datagrams it sent. Repairs above 15 % of them (with at
    /// least 1024 new datagrams) in two epochs running mean the path is congested, not merely
    /// lossy (random loss of a few percent is cheap to repair from the slot and is not slowed
    /// down): the send rate is capped at 3/4 of the epoch's own rate (multiplicative
    /// decrease, at least 10 Mbit/s). Each epoch without
    /// that raises the cap by a quarter; once the cap is twice what the sender actually
    /// manages, it is lifted. `--rate` still caps on its own.
    func congestionDelay(now: UInt64) -> UInt64 {
        if epochStart == 0 { epochStart = now }
        if now > epochStart && now - epochStart >= Self.epochNanoseconds { endEpoch(now: now) }
        guard capBitsPerSecond != nil else { return 0 }
        if capDue + Self.epochNanoseconds / 25 < now { capDue = now - Self.epochNanoseconds / 25 }  // 2 ms of burst at most
        return capDue > now ? capDue - now : 0
    }

    private func endEpoch(now: UInt64) {
        let seconds = Double(now - epochStart) / 1e9
        let rate = Double(epochBytes) * 8 / seconds
        // A window-blocked epoch sends little new data while repairs go on: one such epoch is
        // no signal, two in a row with enough data are.
        let congested = epochDatagrams >= 1024 && Double(epochRepairs) > Self.congestionLoss * Double(epochDatagrams)
        congestedEpochs = congested ? congestedEpochs + 1 : 0
        if congestedEpochs >= 2 {
            congestedEpochs = 0
            capBitsPerSecond = max(Self.minimumCap, 0.75 * min(rate, capBitsPerSecond ?? rate))
            capDue = now
            report.lossBackoffs &+= 1
            report.lowestCapBitsPerSecond = min(report.lowestCapBitsPerSecond ?? .infinity, capBitsPerSecond!)
        } else if let cap = capBitsPerSecond {
            capBitsPerSecond = cap * 1.25 > 2 * max(rate, Self.minimumCap) ? nil : cap * 1.25
        }
        epochStart = now
        epochDatagrams = 0
        epochBytes = 0
        epochRepairs = 0
    }

    // MARK: Time

    /// Gives up when the acknowledgement has not moved for the deadline (or a stop was
    /// requested, or the receiver gave up, or a group did not form in time or emptied);
    /// drops a group's slow receivers. Returns ``gaveUp``.
    @discardableResult
    func checkDeadline(now: UInt64) -> Bool {
        guard !gaveUp && !delivered else { return gaveUp }
        if isGroup { reviewGroup(now: now) }
        // `now` may be older than the last progress (read before the feedback that moved it).
        let stalled = now > lastProgressAt && now - lastProgressAt >= parameters.deadlineNanoseconds
        let emptied = formed && !members.isEmpty && !members.contains(where: \.bindsGroup)
        if StopFlag.isSet || stalled || emptied {
            gaveUp = true
            if emptied && isGroup { gaveUpReason = "no receiver is left in the group" }
        }
        return gaveUp
    }

    /// A group's timers: it must form within the join timeout; with `drop`, a live member
    /// silent for the receiver timeout, or the one holding the sender back that long while
    /// another would let it go on, leaves the group.
    private func reviewGroup(now: UInt64) {
        let policy = parameters.group
        if !formed {
            if now > startedAt && now - startedAt >= policy.joinTimeoutNanoseconds {
                gaveUp = true
                let heard = members.count(where: \.bindsGroup)
                gaveUpReason = "only \(heard) of \(policy.required) receivers answered within --join-timeout"
            }
            return
        }
        guard policy.slowReceiver == .drop else { return }
        let limit = policy.receiverTimeoutNanoseconds
        var changed = false
        for i in members.indices where members[i].state == .live {
            if now > members[i].lastHeardAt && now - members[i].lastHeardAt >= limit {
                members[i].state = .dropped
                members[i].reason = "no feedback for \(Self.seconds(now - members[i].lastHeardAt)) s"
                changed = true
            }
        }
        if !changed, blockedSince != 0, now > blockedSince, now - blockedSince >= limit {
            // The sender waited that long: the member furthest behind holds it back, when
            // another member is further on.
            var slowest: Int?
            var furthest: UInt64 = 0
            for i in members.indices where members[i].state == .live {
                furthest = max(furthest, members[i].ack)
                if slowest == nil || (members[i].ack, members[i].windowLimit) < (members[slowest!].ack, members[slowest!].windowLimit) { slowest = i }
            }
            if let s = slowest, members.count(where: { $0.state == .live }) > 1 || furthest > members[s].ack {
                members[s].state = .dropped
                members[s].reason = "held the others back for \(Self.seconds(now - blockedSince)) s (acknowledged \(members[s].ack), window \(members[s].windowLimit))"
                blockedSince = now
                changed = true
            }
        }
        if changed { pendingRegroup = true }
    }

    /// A member left the group: the next turn with the engine regroups (slots it held go back).
    private var pendingRegroup = false

    private static func seconds(_ ns: UInt64) -> String {
        let s = Double(ns) / 1e9
        return s >= 10 ? String(Int(s.rounded())) : String(Double(Int(s * 10)) / 10)
    }

    /// Production is waiting on the window or on held slots (from now until ``unblocked(now:)``).
    func blocked(now: UInt64) { if blockedSince == 0 { blockedSince = now } }
    func unblocked(now: UInt64) {
        if blockedSince != 0 {
            report.windowBlockedNanoseconds &+= now &- blockedSince
            blockedSince = 0
        }
    }

    /// Regroups after ``checkDeadline(now:)`` dropped a member (it has no engine to release with).
    func settle<Engine: SendEngine>(_ engine: Engine) {
        guard pendingRegroup else { return }
        pendingRegroup = false
        regroup(now: MonotonicClock.nanoseconds(), engine: engine)
    }

    /// The stream's END is about to go: true unless the sender already gave up (then END
    /// closes a stream cut short, and `complete` at a receiver is not delivery).
    func noteEnd() { if !gaveUp { everythingSent = true } }

    /// Interval between END repeats once the first §6 repeats went: `max(2·srtt, 2 ms)`,
    /// doubled per repeat by the caller, at most 250 ms.
    var endRepeatStart: UInt64 { max(2 * smoothedRTT, 2_000_000) }
    static let endRepeatCap: UInt64 = 250_000_000

    /// A multicast stream, after ``close(total:engine:)``: waits until every delivered
    /// receiver's REPORT came or `timeoutNanoseconds` passed, and puts each in its outcome
    /// (its REPORT comes when its run ends: after its linger or idle timeout).
    func collectReports(_ finished: ReliabilityReport, timeoutNanoseconds: UInt64) -> ReliabilityReport {
        guard var outcomes = finished.receivers else { return finished }
        var result = finished
        let until = MonotonicClock.nanoseconds() + timeoutNanoseconds
        func waiting() -> Bool { outcomes.contains(where: { $0.state == .delivered && $0.report == nil }) }
        while waiting() && MonotonicClock.nanoseconds() < until && !StopFlag.isSet {
            guard (try? FileCalls.poll(feedbackFD, events: Int16(POLLIN), timeoutMilliseconds: 5)) ?? 0 > 0 else { continue }
            guard let got = try? receiveOne(), let sender = got.sender, let bytes = authenticated(length: got.length) else { continue }
            guard case .success(let r) = StreamReport.decode(bytes), r.streamID == streamID else { continue }
            if let k = outcomes.firstIndex(where: { ($0.address?.sameEndpoint(sender) ?? false) && (keying == nil || $0.receiverID == keyedOrigin) }) {
                outcomes[k].report = r
            }
        }
        result.receivers = outcomes
        return result
    }

    /// After delivery or give-up: every held slot back to the engine, and the report filled
    /// in (`total`: the END's total of sequence numbers).
    func close<Engine: SendEngine>(total: UInt64, engine: Engine) -> ReliabilityReport {
        unblocked(now: MonotonicClock.nanoseconds())
        while count > 0 {
            engine.release(Int(held[head].slot))
            head = (head + 1) % capacity
            count -= 1
        }
        if delivered { ack = max(ack, total) }
        report.acknowledged = ack
        report.rttMinNanoseconds = rtt.samples > 0 ? rtt.minimum : nil
        report.rttAverageNanoseconds = rtt.mean
        if !everythingSent { delivered = false }
        if isGroup {
            var outcomes = members.map { $0.outcome(total: total) }
            if !everythingSent {
                // Complete, but of a stream the sender cut short: not delivered.
                let why = gaveUpReason ?? (StopFlag.isSet ? "the run was stopped" : "the acknowledgement stalled for --give-up")
                for k in outcomes.indices where outcomes[k].state == .delivered {
                    outcomes[k].state = .gaveUp
                    outcomes[k].reason = "holds the \(total) datagrams sent before the sender gave up (\(why))"
                    outcomes[k].unacknowledged = []
                }
            }
            if let reason = gaveUpReason {
                for k in outcomes.indices where outcomes[k].state == .gaveUp && members[k].state == .live { outcomes[k].reason = reason }
            }
            for address in parameters.group.named ?? [] where !members.contains(where: { m in m.address.map { IPAddress($0) } == address }) {
                var o = ReceiverOutcome()
                o.namedAddress = address
                o.state = .missing
                o.reason = "named by --receivers, never heard"
                o.unacknowledged = total > 0 ? [0...(total - 1)] : []
                outcomes.append(o)
            }
            report.receivers = outcomes
            report.groupReason = gaveUpReason
            report.delivered = delivered && outcomes.count >= parameters.group.required && outcomes.allSatisfy { $0.state == .delivered }
            report.unacknowledged = outcomes.flatMap(\.unacknowledged).mergedRanges()
        } else {
            report.delivered = delivered
            report.unacknowledged = delivered ? [] : (members.first?.unacknowledged(total: total) ?? (total > ack ? [ack...(total - 1)] : []))
        }
        report.gaveUp = !report.delivered
        return report
    }
}
