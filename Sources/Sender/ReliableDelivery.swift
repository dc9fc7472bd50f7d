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
package final class ReliableDelivery {
    let parameters: Reliability
    let streamID: UInt64
    let datagramSize: Int
    let segments: Int
    /// The session's socket: connected to the destination, so only its datagrams arrive
    /// (SPEC §13.9 rule 1 holds by construction; a foreign one is never seen).
    let feedbackFD: Int32

    /// Held slots in sequence order (a ring), oldest first.
    private let held: UnsafeMutablePointer<HeldSlot>
    private let capacity: Int
    private var head = 0
    private var count = 0
    /// Per datagram position (slot × segments + k): when it was last repaired (0: never).
    private let repairedAt: UnsafeMutablePointer<UInt64>
    private let buffer: UnsafeMutableRawBufferPointer

    /// Every sequence number below it is acknowledged.
    package private(set) var ack: UInt64 = 0
    /// New DATA may use sequence numbers below it (the largest edge accepted).
    package private(set) var windowLimit: UInt64
    /// One above the highest sequence number sent.
    package private(set) var sentEdge: UInt64 = 0
    private var receiverID: UInt64 = 0
    /// When the acknowledgement last moved (or the first feedback came, or the stream began).
    private var lastProgressAt: UInt64
    private var lastNak: [ClosedRange<UInt64>] = []
    private var lastNakAt: UInt64 = 0
    private var lastStatusHighest: UInt64 = 0
    private var lastStatusAt: UInt64 = 0
    /// The receiver said `complete`.
    package private(set) var delivered = false
    /// The deadline passed, the run was stopped, or the receiver gave up.
    package private(set) var gaveUp = false
    /// The receiver's STATUS said it gave up (its deadline passed).
    package private(set) var receiverGaveUp = false
    /// A REPORT for the stream that came in among the feedback (the receiver finished).
    package private(set) var receiverReport: StreamReport?
    package private(set) var report = ReliabilityReport()

    /// RTT from STATUS echoes (SPEC §13.5).
    private var rtt = RTTEstimator()
    private var tokens: Double
    private var tokensAt: UInt64
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

    init(parameters: Reliability, streamID: UInt64, datagramSize: Int, segments: Int, slotCount: Int, feedbackFD: Int32) {
        self.parameters = parameters
        self.streamID = streamID
        self.datagramSize = datagramSize
        self.segments = segments
        self.feedbackFD = feedbackFD
        capacity = slotCount
        held = .allocate(capacity: slotCount)
        repairedAt = .allocate(capacity: slotCount * segments)
        repairedAt.initialize(repeating: 0, count: slotCount * segments)
        buffer = .allocate(byteCount: 2048, alignment: 8)
        windowLimit = parameters.initialWindow
        let now = MonotonicClock.nanoseconds()
        lastProgressAt = now
        tokens = parameters.controlBurst
        tokensAt = now
        lastNak.reserveCapacity(NakMessage.maxRanges)
    }

    deinit {
        held.deallocate()
        repairedAt.deallocate()
        buffer.deallocate()
    }

    /// The smoothed RTT, or the initial one before a sample.
    var smoothedRTT: UInt64 { rtt.smoothed(orInitial: parameters.initialRTTNanoseconds) }

    /// True when DATA up to (not including) sequence `end` fits the receiver's window.
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
        for _ in 0..<256 {
            let n: Int?
            do { n = try SocketCalls.receive(feedbackFD, into: buffer, flags: Int32(MSG_DONTWAIT)) }
            catch {
                // ECONNREFUSED: an ICMP port unreachable (nothing listens yet, or any more): the
                // deadline decides. Anything else is not the stream's business either.
                return
            }
            guard let n else { return }
            try take(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), engine: engine, stats: &stats)
        }
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

    private func take<Engine: SendEngine>(_ bytes: UnsafeRawBufferPointer, engine: Engine, stats: inout SenderStatistics) throws(SendEngineError) {
        let p = bytes.baseAddress!
        let isControl = bytes.count >= DatagramHeader.size && p.load(fromByteOffset: 4, as: UInt8.self) == DatagramHeader.reliableVersion
        guard isControl else {
            // The receiver's REPORT can overtake the last STATUS: it ends the stream too.
            if case .success(let r) = StreamReport.decode(bytes), r.streamID == streamID { receiverReport = r }
            else { report.controlRejected.malformed &+= 1 }
            return
        }
        let now = MonotonicClock.nanoseconds()
        if p.load(fromByteOffset: 5, as: UInt8.self) & DatagramFlags.nak.rawValue != 0 {
            switch NakMessage.decode(bytes) {
            case .failure: report.controlRejected.malformed &+= 1
            case .success(let m):
                guard accept(streamID: m.streamID, receiverID: m.receiverID, ack: m.cumulativeAck, now: now) else { return }
                report.naksReceived &+= 1
                acknowledge(m.cumulativeAck, now: now, engine: engine)
                try answer(m.ranges(in: bytes), now: now, engine: engine, stats: &stats)
            }
        } else {
            switch StatusMessage.decode(bytes) {
            case .failure: report.controlRejected.malformed &+= 1
            case .success(let m):
                guard accept(streamID: m.streamID, receiverID: m.receiverID, ack: m.cumulativeAck, now: now) else { return }
                report.statusReceived &+= 1
                acknowledge(m.cumulativeAck, now: now, engine: engine)
                windowLimit = max(windowLimit, m.windowLimit)
                lastStatusHighest = m.highest
                lastStatusAt = now
                if m.echoTimestampNanoseconds != 0 { sampleRTT(echo: m.echoTimestampNanoseconds, delay: m.echoDelayNanoseconds) }
                if m.complete { delivered = true }
                if m.gaveUp && !m.complete { receiverGaveUp = true }
            }
        }
    }

    /// SPEC §13.9 rules 3–6 (rule 1 is the connected socket's, rule 2 the decoder's).
    private func accept(streamID id: UInt64, receiverID rid: UInt64, ack: UInt64, now: UInt64) -> Bool {
        guard id == streamID else { report.controlRejected.unknownStream &+= 1; return false }
        if receiverID == 0 { receiverID = rid }
        guard rid == receiverID else { report.controlRejected.otherReceiver &+= 1; return false }
        tokens = min(parameters.controlBurst, tokens + Double(now &- tokensAt) * parameters.controlRatePerSecond / 1e9)
        tokensAt = now
        guard tokens >= 1 else { report.controlRejected.rateLimited &+= 1; return false }
        tokens -= 1
        guard ack <= sentEdge else { report.controlRejected.impossible &+= 1; return false }
        if report.statusReceived == 0 && report.naksReceived == 0 { lastProgressAt = now }
        return true
    }

    /// Moves the acknowledgement forward and hands back every slot it now covers.
    private func acknowledge<Engine: SendEngine>(_ newAck: UInt64, now: UInt64, engine: Engine) {
        guard newAck > ack else { return }
        ack = newAck
        lastProgressAt = now
        probeInterval = 0
        while count > 0 {
            let h = held[head]
            guard h.first + UInt64(h.datagrams) <= ack else { break }
            engine.release(Int(h.slot))
            head = (head + 1) % capacity
            count -= 1
        }
    }

    /// Repairs what a NAK names: only numbers sent and not acknowledged, each at most once
    /// per hold-off, at most K per NAK (SPEC §13.6).
    private func answer<Engine: SendEngine>(_ ranges: NakRanges, now: UInt64, engine: Engine,
                                            stats: inout SenderStatistics) throws(SendEngineError) {
        lastNak.removeAll(keepingCapacity: true)
        lastNakAt = now
        var budget = parameters.repairsPerNak
        var repaired = 0
        var outside = true
        // Long enough for the last repair to have arrived (the RTT's spread included: a repair
        // queued behind the receiver's backlog must not go twice), at least 1 ms.
        let holdOff = max(rtt.timeout(orInitial: parameters.initialRTTNanoseconds), 1_000_000)
        for r in ranges {
            lastNak.append(r)
            let first = max(r.lowerBound, ack)
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
        if p.load(fromByteOffset: 5, as: UInt8.self) & DatagramFlags.repair.rawValue == 0 {
            Datagram.markRepair(p, length: length)
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
    private func probeIfStalled<Engine: SendEngine>(now: UInt64, engine: Engine, stats: inout SenderStatistics) throws(SendEngineError) {
        guard sentEdge > ack, lastStatusHighest < sentEdge else { return }
        // Before any feedback (the first datagrams can die waiting for ARP on a fresh path):
        // every 10 ms, not doubling, so the stream starts as soon as the path does.
        let heard = report.statusReceived > 0 || report.naksReceived > 0
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
    private func sampleRTT(echo: UInt64, delay: UInt64) {
        let wall = MonotonicClock.wallNanoseconds()
        guard wall > echo, wall - echo > delay else { return }
        let sample = wall - echo - delay
        guard sample < 60_000_000_000 else { return }
        rtt.add(sample)
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
    /// requested, or the receiver gave up). Returns ``gaveUp``.
    @discardableResult
    func checkDeadline(now: UInt64) -> Bool {
        // `now` may be older than the last progress (read before the feedback that moved it).
        let stalled = now > lastProgressAt && now - lastProgressAt >= parameters.deadlineNanoseconds
        if !gaveUp && !delivered && (receiverGaveUp || StopFlag.isSet || stalled) {
            gaveUp = true
        }
        return gaveUp
    }

    /// Production is waiting on the window or on held slots (from now until ``unblocked(now:)``).
    func blocked(now: UInt64) { if blockedSince == 0 { blockedSince = now } }
    func unblocked(now: UInt64) {
        if blockedSince != 0 {
            report.windowBlockedNanoseconds &+= now &- blockedSince
            blockedSince = 0
        }
    }

    /// Interval between END repeats once the first §6 repeats went: `max(2·srtt, 2 ms)`,
    /// doubled per repeat by the caller, at most 250 ms.
    var endRepeatStart: UInt64 { max(2 * smoothedRTT, 2_000_000) }
    static let endRepeatCap: UInt64 = 250_000_000

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
        report.delivered = delivered
        report.gaveUp = !delivered
        report.acknowledged = ack
        report.rttMinNanoseconds = rtt.samples > 0 ? rtt.minimum : nil
        report.rttAverageNanoseconds = rtt.mean
        report.unacknowledged = delivered ? [] : unacknowledged(total: total)
        return report
    }

    /// SPEC §13.7: `[ack, total)`, narrowed to the last NAK's ranges plus `[highest, total)` of
    /// the last STATUS when those came after the acknowledgement last moved.
    private func unacknowledged(total: UInt64) -> [ClosedRange<UInt64>] {
        guard total > ack else { return [] }
        guard lastNakAt > lastProgressAt, lastStatusAt > lastProgressAt else { return [ack...(total - 1)] }
        var ranges: [ClosedRange<UInt64>] = []
        for r in lastNak where r.upperBound >= ack && r.lowerBound < total {
            ranges.append(max(r.lowerBound, ack)...min(r.upperBound, total - 1))
        }
        let tail = max(lastStatusHighest, ack)
        if tail < total {
            if let last = ranges.last, last.upperBound + 1 >= tail {
                ranges[ranges.count - 1] = last.lowerBound...(total - 1)
            } else {
                ranges.append(tail...(total - 1))
            }
        }
        return ranges.isEmpty ? [ack...(total - 1)] : ranges
    }
}
