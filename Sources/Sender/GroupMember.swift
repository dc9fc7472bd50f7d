#if canImport(Glibc)
import Glibc
#endif
import StreamProtocol
import ZCSystem

/// One receiver of a reliable stream, as the sender tracks it (SPEC §13.9 step 4, §13.11):
/// a unicast stream has one, a multicast stream one per receiver id that answered. Its own
/// acknowledgement, window, RTT and rate limit; the stream's are the group's over them.
struct GroupMember {
    enum State: Equatable {
        /// In the group: its acknowledgement and window bound the sender.
        case live
        /// Said `complete`.
        case delivered
        /// Left out of the group by the sender (silent, or holding the others back).
        case dropped
        /// Its STATUS said it gave up.
        case gaveUp
        /// First heard when the data it lacked was already released.
        case late
    }

    let id: UInt64
    /// Where its feedback comes from (multicast; nil for unicast: the connected socket).
    let address: SocketAddress?
    var state = State.live
    var reason: String?
    /// Every sequence number below it arrived there.
    var ack: UInt64 = 0
    /// The largest window edge it advertised.
    var windowLimit: UInt64
    var lastStatusHighest: UInt64 = 0
    var lastStatusAt: UInt64 = 0
    var lastNak: [ClosedRange<UInt64>] = []
    var lastNakAt: UInt64 = 0
    /// When its acknowledgement last moved (or it was first heard).
    var lastProgressAt: UInt64
    /// When its last accepted feedback came.
    var lastHeardAt: UInt64
    var rtt = RTTEstimator()
    var tokens: Double
    var tokensAt: UInt64
    var statusReceived: UInt64 = 0
    var naksReceived: UInt64 = 0
    var report: StreamReport?
    /// A keyed stream (SPEC §14.6): the opener of its key (derived once, when it was first
    /// heard) and the replay windows of its packet numbers: STATUS and NAK count from 0, its
    /// REPORTs from 2^63 (``takePacketNumber(_:)``). nil for a plain stream.
    var opener: DatagramAuthenticator?
    var replay: ReplayWindow?
    var reportReplay: ReplayWindow?
    /// A late member: what the group had released when it was first heard (it lacks
    /// `[its acknowledgement, this)` for good).
    var releasedWhenHeard: UInt64 = 0

    init(id: UInt64, address: SocketAddress?, initialWindow: UInt64, burst: Double, now: UInt64) {
        self.id = id
        self.address = address
        windowLimit = initialWindow
        lastProgressAt = now
        lastHeardAt = now
        tokens = burst
        tokensAt = now
        lastNak.reserveCapacity(NakMessage.maxRanges)
    }

    /// Keyed: true when packet number `n` is fresh from this member (and now taken). A
    /// receiver numbers its STATUS and NAK from 0 and its REPORTs from 2^63 (§14.3): a window
    /// each, or a REPORT would push every later STATUS out of the window.
    mutating func takePacketNumber(_ n: UInt64) -> Bool {
        if n >> 63 == 0 {
            if replay == nil { replay = ReplayWindow() }
            return replay!.take(n)
        }
        if reportReplay == nil { reportReplay = ReplayWindow() }
        return reportReplay!.take(n)
    }

    /// SPEC §13.9's control rate limit, a token bucket per member: true when this datagram may
    /// be taken.
    mutating func takeToken(now: UInt64, ratePerSecond: Double, burst: Double) -> Bool {
        tokens = min(burst, tokens + Double(now &- tokensAt) * ratePerSecond / 1e9)
        tokensAt = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Its acknowledgement and window count for the group's (it is live, or done and harmless).
    var bindsGroup: Bool { state == .live || state == .delivered }

    /// SPEC §13.7: `[ack, total)`, narrowed to its last NAK's ranges plus `[highest, total)` of
    /// its last STATUS when those came after its acknowledgement last moved.
    func unacknowledged(total: UInt64) -> [ClosedRange<UInt64>] {
        guard state != .delivered, total > ack else { return [] }
        if state == .late && releasedWhenHeard > ack {
            // Released before it was heard: lacking for good, whatever its last NAK listed.
            return ([ack...(min(releasedWhenHeard, total) - 1)] + unacknowledgedNarrowed(total: total)).mergedRanges()
        }
        return unacknowledgedNarrowed(total: total)
    }

    private func unacknowledgedNarrowed(total: UInt64) -> [ClosedRange<UInt64>] {
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

    /// What the stream's report says of it.
    func outcome(total: UInt64) -> ReceiverOutcome {
        var o = ReceiverOutcome()
        o.address = address
        o.receiverID = id
        switch state {
        case .delivered: o.state = .delivered
        case .dropped: o.state = .dropped
        case .gaveUp, .live: o.state = .gaveUp
        case .late: o.state = .late
        }
        o.reason = reason ?? (state == .live ? "the sender gave up first" : state == .gaveUp ? "its deadline passed with datagrams missing" : nil)
        o.acknowledged = state == .delivered ? max(ack, total) : ack
        o.statusReceived = statusReceived
        o.naksReceived = naksReceived
        o.rttMinNanoseconds = rtt.samples > 0 ? rtt.minimum : nil
        o.unacknowledged = unacknowledged(total: total)
        o.report = report
        return o
    }
}

extension Array where Element == ClosedRange<UInt64> {
    /// The same numbers as sorted, disjoint, non-adjacent ranges (overlapping and touching ones joined).
    func mergedRanges() -> [ClosedRange<UInt64>] {
        var merged: [ClosedRange<UInt64>] = []
        for r in sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, r.lowerBound <= last.upperBound &+ 1 {
                merged[merged.count - 1] = last.lowerBound...Swift.max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        return merged
    }
}

extension SocketAddress {
    /// Same family, address and port, compared without formatting either.
    func sameEndpoint(_ other: SocketAddress) -> Bool {
        switch (self, other) {
        case (.v4(let a), .v4(let b)):
            return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr
        case (.v6(var a), .v6(var b)):
            return a.sin6_port == b.sin6_port && memcmp(&a.sin6_addr, &b.sin6_addr, MemoryLayout<in6_addr>.size) == 0
        default:
            return false
        }
    }
}
