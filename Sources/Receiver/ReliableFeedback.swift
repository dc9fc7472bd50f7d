#if canImport(Glibc)
import Glibc
#endif
import CLinux
import StreamProtocol
import ZCSystem

/// The receiver's timing for reliable streams (SPEC §13.10's defaults).
public struct ReliableReceiveTiming: Equatable, Sendable {
    /// A gap is NAKed once open this long; nil: `max(min RTT / 4, 200 µs)`, 2.5 ms before a sample.
    public var reorderGraceNanoseconds: UInt64? = nil
    /// STATUS at least this often while the stream is open.
    public var statusIntervalNanoseconds: UInt64 = 5_000_000
    /// At most one NAK per stream per this interval.
    public var nakSpacingNanoseconds: UInt64 = 1_000_000
    /// Give up when nothing of the stream arrived for this long while numbers are missing.
    public var deadlineNanoseconds: UInt64 = 10_000_000_000
    /// RTT before the first sample.
    public var initialRTTNanoseconds: UInt64 = 10_000_000

    public init() {}
}

/// What a receiver keeps for one reliable stream (SPEC §13): its receiver id, the NAK state of
/// every number in the reorder window, its RTT estimate and what it sent. Allocated once, when
/// the stream's first datagram asks for reliability; the per-datagram path touches it only
/// for a repair.
struct ReliableFeedback: Sendable {
    /// Random, never 0, fixed for the stream (SPEC §13.1).
    let receiverID = UInt64.random(in: 1...UInt64.max)
    /// Per number in the window (index: number mod window): 0 never seen missing; else NAKs
    /// sent for it (top 8 bits) and when it was first seen missing or last NAKed (low 56, ns).
    var naks: [UInt64]
    let mask: UInt64
    /// The cumulative acknowledgement (every number below it arrived).
    var ack: UInt64 = 0
    /// The largest window edge advertised (never retreats).
    var edge: UInt64 = 0
    /// Datagrams the sender may have beyond what this receiver has taken in (its highest
    /// number): what its socket buffer holds, at most ``queueBudget`` — a standing queue
    /// in the socket buffer delays every repair behind it.
    let capacity: UInt64
    /// The sender is never more than this beyond the acknowledgement: half the reorder
    /// window, so every number stays classifiable (SPEC §13.5: ≤ ack + W).
    let reorderLimit: UInt64
    /// The window edge of the last STATUS sent.
    var advertised: UInt64 = 0
    var feedbackSequence: UInt32 = 0
    var lastStatusAt: UInt64 = 0
    var lastNakAt: UInt64 = 0
    var endsAnswered: UInt64 = 0
    var finalSent = false
    var gaveUp = false
    /// Monotonic arrival and header timestamp of the last datagram that was not a repair (the echo).
    var echoArrival: UInt64 = 0
    var echoTimestamp: UInt64 = 0
    /// Control bytes sent for the stream: never more than it delivered (SPEC §13.9).
    var controlBytes: UInt64 = 0
    var naksSent: UInt64 = 0
    var statusSent: UInt64 = 0
    /// RTT from NAK → repair of a number NAKed once.
    var rtt = RTTEstimator()
    /// A keyed stream (SPEC §14): STATUS and NAK go out sealed under this receiver's key for
    /// the stream (origin ``receiverID``), numbered from 0. nil: plain version 3.
    var sealing: FeedbackSealing?

    /// Bytes a STATUS or NAK gains on the wire when sealed.
    var trailerLength: Int { sealing == nil ? 0 : AuthTrailer.size }

    /// Keyed: turns the encoded STATUS or NAK of `length` bytes at `p` into its keyed
    /// datagram in place (version 4, checksum 0, the trailer behind it). Returns the length to send.
    @inline(__always)
    mutating func seal(_ p: UnsafeMutableRawPointer, length: Int) -> Int {
        guard sealing != nil else { return length }
        return sealing!.seal(p, origin: receiverID)
    }

    static let timeMask: UInt64 = (1 << 56) - 1
    static let reNakCap: UInt64 = 250_000_000

    /// A group's receiver: the first NAK of a number waits a further random backoff (SPEC §13.11).
    let backsOff: Bool

    init(window: UInt64, capacity: UInt64, backsOff: Bool = false) {
        self.backsOff = backsOff
        naks = [UInt64](repeating: 0, count: Int(window))
        mask = window - 1
        self.capacity = capacity
        reorderLimit = window / 2
        edge = capacity
    }

    /// Datagrams in flight beyond the receiver's highest that keep a fast path busy without
    /// a standing queue: 8192 (12 MB at 1472 B: 10 ms at 10 Gbit/s).
    static let queueBudget: UInt64 = 8192

    /// The window edge now: `capacity` beyond what has been taken in (`processed`: one
    /// above the highest number), never more than ``reorderLimit`` beyond the
    /// acknowledgement, never below an edge advertised before.
    func currentEdge(processed: UInt64) -> UInt64 {
        max(edge, min(ack + reorderLimit, max(ack, processed) + capacity))
    }

    /// A repair of `sequence` arrived at `now`: an RTT sample when that number was NAKed exactly once.
    mutating func repairArrived(_ sequence: UInt64, now: UInt64) {
        let e = naks[Int(sequence & mask)]
        guard e >> 56 == 1 else { return }
        let sentAt = e & Self.timeMask
        guard now > sentAt else { return }
        rtt.add(now - sentAt)
    }

    func grace(_ t: ReliableReceiveTiming) -> UInt64 {
        if let g = t.reorderGraceNanoseconds { return g }
        return rtt.samples == 0 ? 2_500_000 : max(rtt.minimum / 4, 200_000)
    }

    /// A group receiver's NAK backoff for number `q` (SPEC §13.11): uniform in `[0, T)` with
    /// T = `max(2·rtt, 250 µs)` (1 ms before a sample, at most 20 ms), drawn per number and
    /// receiver from a hash of both (no state): receivers that lost the same datagram NAK at
    /// different times, and the repair the first NAK brings to the group cancels the others'.
    @inline(__always)
    func backoff(_ q: UInt64) -> UInt64 {
        guard backsOff else { return 0 }
        let span = rtt.samples == 0 ? 1_000_000 : min(max(2 * rtt.smoothed, 250_000), 20_000_000)
        let h = (q ^ receiverID) &* 0x9E37_79B9_7F4A_7C15
        return (h >> 32) % span
    }

    func reNakInterval(_ t: ReliableReceiveTiming) -> UInt64 {
        max(rtt.timeout(orInitial: t.initialRTTNanoseconds), 1_000_000)
    }
}

/// How a keyed reliable stream's receiver seals its STATUS and NAK: one sealing context for
/// its key (made once per stream), the secret's key id and the packet number counter (STATUS
/// and NAK from 0; its REPORTs count from 2^63, ``ReportSender``).
struct FeedbackSealing: Sendable {
    let authenticator: DatagramAuthenticator
    let keyID: UInt32
    var nextPacketNumber: UInt64 = 0

    /// The sealing of receiver `receiverID`'s feedback for stream `streamID` under `secret`.
    init(secret: StreamSecret, streamID: UInt64, receiverID: UInt64) {
        authenticator = DatagramAuthenticator(key: secret.receiverKey(streamID: streamID, receiverID: receiverID), sealing: true)
        keyID = secret.keyID
    }

    /// Seals the version 3 datagram at `p` as keyed; returns its length.
    mutating func seal(_ p: UnsafeMutableRawPointer, origin: UInt64) -> Int {
        let n = nextPacketNumber
        nextPacketNumber &+= 1
        return KeyedDatagram.seal(p, authenticator: authenticator,
                                  trailer: AuthTrailer(keyID: keyID, suite: .authenticated, origin: origin, packetNumber: n))
    }
}

extension StreamState {
    /// True for a reliable stream that still wants feedback: not complete and not given up,
    /// or a final STATUS still to send.
    var wantsFeedback: Bool {
        guard let f = feedback else { return false }
        // After the final STATUS, an END copy still gets one: the final word may have been lost.
        return !f.finalSent || endsReceived != f.endsAnswered
    }

    /// A reliable stream the receiver is still repairing (its run must not end for linger or idle).
    var reliablePending: Bool {
        guard let f = feedback else { return false }
        return !f.gaveUp && !isComplete
    }

    /// The stream's first datagram asked for reliability: feedback state, sized for the
    /// datagrams' receive cost against the socket buffer.
    mutating func becomeReliable(datagramLength: Int, receiveBufferBytes: Int) {
        reliable = true
        // A reliable stream is whole from sequence 0 or not at all: a receiver that joined a
        // group late NAKs the head it missed (the sender repairs it while it still holds it).
        excludeHead = false
        // What the kernel charges a datagram in the receive buffer: its buffer (a power of
        // two from 2 KiB) and the skb around it.
        var perDatagram = 2048
        while perDatagram < datagramLength + 64 { perDatagram *= 2 }
        perDatagram += 768
        let fromBuffer = UInt64(max(receiveBufferBytes, 0) / perDatagram)
        // At most half the reorder window ahead of the acknowledgement (SPEC §13.5: ≤ ack + W).
        let capacity = min(max(fromBuffer, 64), ReliableFeedback.queueBudget, tracker.window / 2)
        feedback = ReliableFeedback(window: tracker.window, capacity: capacity, backsOff: groupReceiver)
    }

    /// One feedback turn for a reliable stream (the receive thread, between batches, at most
    /// every few hundred µs): moves the acknowledgement, NAKs gaps whose grace or re-NAK
    /// interval passed, sends STATUS when due, gives up after the deadline. `send` puts one
    /// control datagram on the wire (false: it could not).
    mutating func serviceFeedback(now: UInt64, wallNow: UInt64, timing t: ReliableReceiveTiming, scratch: UnsafeMutableRawPointer,
                                  send: (UnsafeRawPointer, Int) -> Bool) {
        guard wantsFeedback else { return }
        // Taken out while it changes, so its NAK array is never copied (one owner).
        var f = feedback!
        feedback = nil
        defer { feedback = f }
        if f.finalSent {
            // An END repeat after the final STATUS: the sender did not hear it; say it again
            // (within the bytes the stream delivered: END copies cannot buy unbounded answers).
            if f.controlBytes + UInt64(StatusMessage.length + f.trailerLength) <= deliveredBytes {
                sendStatus(&f, now: now, wallNow: wallNow, complete: isComplete, scratch: scratch, send: send)
            }
            f.endsAnswered = endsReceived
            return
        }
        // 1. The acknowledgement, and the NAK state of numbers it passed cleared.
        let total = expected?.datagrams
        // Numbers below the tracker's window cannot be told any more. The sender never runs
        // more than half a window past a live receiver's acknowledgement, so only a receiver
        // it does not wait for (a group member that joined late, or was dropped) gets here:
        // it can never be made whole. Its acknowledgement stays where it was (passing over
        // what it cannot tell would claim numbers it may lack) and it gives up.
        let overrun = tracker.started && f.ack < tracker.windowLow && !isComplete
        if overrun && !f.gaveUp { f.gaveUp = true }
        let newAck = overrun ? f.ack : tracker.firstMissing(from: f.ack)
        if newAck > f.ack {
            var q = f.ack
            let stop = min(newAck, f.ack + UInt64(f.naks.count))
            f.naks.withUnsafeMutableBufferPointer { n in
                while q < stop { n[Int(q & f.mask)] = 0; q += 1 }
            }
            f.ack = newAck
        }
        let complete = isComplete
        // 2. Give up: nothing of the stream for the deadline while numbers are missing (a
        //    live source that pauses, everything held so far, is not given up on).
        let known = total ?? (tracker.started ? tracker.highest + 1 : 0)
        if !complete && !f.gaveUp && f.ack < known && lastActivityNanoseconds != 0
            && now > lastActivityNanoseconds && now - lastActivityNanoseconds >= t.deadlineNanoseconds {
            f.gaveUp = true
        }
        // 3. NAK what is due (not after give-up or completion).
        if !complete && !f.gaveUp && now &- f.lastNakAt >= t.nakSpacingNanoseconds {
            let end = min(total ?? (tracker.started ? tracker.highest + 1 : 0), f.ack + UInt64(f.naks.count))
            if end > f.ack {
                sendNak(&f, below: end, now: now, wallNow: wallNow, timing: t, scratch: scratch, send: send)
            }
        }
        // 4. STATUS: every interval, when the edge could move by an eighth of the capacity
        //    (the sender's slots come back only with it), for each END copy,
        //    and the final one (complete or gave up; twice, as the last word matters most).
        let processed = tracker.started ? tracker.highest + 1 : 0
        let final = complete || f.gaveUp
        let due = final || now &- f.lastStatusAt >= t.statusIntervalNanoseconds
            || f.currentEdge(processed: processed) &- f.advertised >= f.capacity / 8 || endsReceived != f.endsAnswered || f.lastStatusAt == 0
        if due {
            let copies = final ? 2 : 1
            for _ in 0..<copies { sendStatus(&f, now: now, wallNow: wallNow, complete: complete, scratch: scratch, send: send) }
            f.endsAnswered = endsReceived
            if final { f.finalSent = true }
        }
    }

    private func sendNak(_ f: inout ReliableFeedback, below end: UInt64, now: UInt64, wallNow: UInt64,
                         timing t: ReliableReceiveTiming, scratch: UnsafeMutableRawPointer, send: (UnsafeRawPointer, Int) -> Bool) {
        let grace = f.grace(t)
        let reNak = f.reNakInterval(t)
        // Up to 64 canonical ranges (increasing, not adjacent) of numbers due now.
        var ranges: [ClosedRange<UInt64>] = []
        ranges.reserveCapacity(NakMessage.maxRanges)
        var naks = f.naks
        f.naks = []  // unique while we write it (no copy)
        let mask = f.mask
        naks.withUnsafeMutableBufferPointer { n in
            tracker.forEachMissing(from: f.ack, below: end) { q in
                let i = Int(q & mask)
                let e = n[i]
                if e == 0 { n[i] = now & ReliableFeedback.timeMask; return true }  // first seen missing
                let tries = e >> 56
                let at = e & ReliableFeedback.timeMask
                let wait = tries == 0 ? grace + f.backoff(q) : min(reNak << min(tries - 1, 16), ReliableFeedback.reNakCap)
                guard now &- at >= wait else { return true }
                if let last = ranges.last, last.upperBound + 1 == q {
                    ranges[ranges.count - 1] = last.lowerBound...q
                } else {
                    if ranges.count == NakMessage.maxRanges { return false }
                    ranges.append(q...q)
                }
                n[i] = min(tries + 1, 255) << 56 | (now & ReliableFeedback.timeMask)
                return true
            }
        }
        f.naks = naks
        guard !ranges.isEmpty else { return }
        var m = NakMessage(streamID: streamID, receiverID: f.receiverID)
        m.timestampNanoseconds = wallNow
        m.cumulativeAck = f.ack
        m.deliveredBytes = deliveredBelow(f.ack)
        m.feedbackSequence = f.feedbackSequence
        guard let encoded = m.encode(ranges: ranges, into: scratch, capacity: NakMessage.length(ranges: NakMessage.maxRanges)) else { return }
        guard f.controlBytes + UInt64(encoded + f.trailerLength) <= bytes else { return }
        let length = f.seal(scratch, length: encoded)
        if send(scratch, length) {
            f.controlBytes += UInt64(length)
            f.feedbackSequence &+= 1
            f.naksSent += 1
            f.lastNakAt = now
        }
    }

    private func sendStatus(_ f: inout ReliableFeedback, now: UInt64, wallNow: UInt64, complete: Bool,
                            scratch: UnsafeMutableRawPointer, send: (UnsafeRawPointer, Int) -> Bool) {
        var m = StatusMessage(streamID: streamID, receiverID: f.receiverID)
        m.timestampNanoseconds = wallNow
        m.cumulativeAck = f.ack
        m.deliveredBytes = deliveredBelow(f.ack)
        m.feedbackSequence = f.feedbackSequence
        f.edge = f.currentEdge(processed: tracker.started ? tracker.highest + 1 : 0)
        f.advertised = f.edge
        m.windowLimit = f.edge
        m.highest = tracker.started ? tracker.highest + 1 : 0
        m.unique = max(min(tracker.unique, m.highest), f.ack)
        if f.echoTimestamp != 0 {
            m.echoTimestampNanoseconds = f.echoTimestamp
            m.echoDelayNanoseconds = now &- f.echoArrival
        }
        m.endSeen = expected != nil
        m.complete = complete
        m.gaveUp = f.gaveUp && !complete
        let encoded = m.encode(into: scratch)
        // The final word goes even past the byte budget: it is what ends the sender's wait.
        guard f.controlBytes + UInt64(encoded + f.trailerLength) <= bytes || m.complete || m.gaveUp else { return }
        let length = f.seal(scratch, length: encoded)
        if send(scratch, length) {
            f.controlBytes += UInt64(length)
            f.feedbackSequence &+= 1
            f.statusSent += 1
            f.lastStatusAt = now
        }
    }

    /// Stream bytes below sequence `ack` (informative, SPEC §13.4): exact while every
    /// datagram is full-size, as a reliable stream's are but the last.
    private func deliveredBelow(_ ack: UInt64) -> UInt64 {
        if let e = expected, ack >= e.datagrams { return e.bytes }
        return min(ack &* UInt64(uniquePayloadMax == 0 ? 0 : uniquePayloadMax), highestByteEnd)
    }
}
