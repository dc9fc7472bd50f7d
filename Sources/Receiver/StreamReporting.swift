#if canImport(Glibc)
import Glibc
#endif
import CLinux
import StreamProtocol
import ZCSystem

/// A stream's verdict against the receiver's limits (zc-recv --max-loss / --max-corrupt),
/// with the reasons spelled out.
public struct StreamVerdictLimits: Sendable, Equatable {
    /// Largest acceptable loss, percent of the expected datagrams.
    public var maxLossPercent: Double = 100
    /// Largest acceptable number of corrupt datagrams.
    public var maxCorrupt: UInt64 = 0

    public init(maxLossPercent: Double = 100, maxCorrupt: UInt64 = 0) {
        self.maxLossPercent = maxLossPercent
        self.maxCorrupt = maxCorrupt
    }

    /// Why `s` fails these limits (empty: it passes). Inexact accounting fails too, and so
    /// does a reliable stream that is not complete.
    public func failures(_ s: StreamState) -> [String] {
        var failures: [String] = []
        let lost = s.summary().lost
        let expected = s.expectedDatagrams
        let lossPercent = expected == 0 ? 0 : Double(lost) / Double(expected) * 100
        if lossPercent > maxLossPercent { failures.append("loss \(lossPercent)% > --max-loss \(maxLossPercent)%") }
        if s.corrupt > maxCorrupt { failures.append("\(s.corrupt) corrupt datagrams > --max-corrupt \(maxCorrupt)") }
        if !s.exact { failures.append("accounting not exact") }
        // A reliable stream promises every byte: one that ended without them fails, whatever
        // --max-loss allows a plain stream.
        if s.reliable && !s.isComplete { failures.append("reliable stream incomplete (\(lost) datagrams missing\(s.gaveUp ? ", gave up" : ""))") }
        if s.modeMismatches > 0 { failures.append("\(s.modeMismatches) datagrams of the other kind (plain vs reliable) under the stream's id") }
        if s.conflictingDuplicates > 0 {
            failures.append("\(s.conflictingDuplicates) conflicting duplicates (a second copy of a sequence number with other bytes)")
        }
        return failures
    }
}

extension StreamState {
    /// Bytes of valid datagrams this stream's source sent here: intact DATA as counted,
    /// plus 64 per valid END (its smallest size). A REPORT is never larger (no amplification).
    public var deliveredBytes: UInt64 { bytes &+ endsReceived &* UInt64(DatagramHeader.size + EndOfStream.payloadSize) }

    /// The REPORT for this stream (SPEC §12): its counters, `kernelDrops` seen by its socket
    /// while it was open, and `pass` (the verdict against the receiver's limits).
    public func streamReport(kernelDrops: UInt64, pass: Bool, wallNow: UInt64) -> StreamReport {
        let summary = summary()
        var r = StreamReport(streamID: streamID)
        r.timestampNanoseconds = wallNow
        r.pass = pass
        r.endSeen = endSeen
        r.complete = isComplete
        r.exact = exact
        r.joinedLate = joinedLate
        r.outputIncomplete = output.map { !$0.complete } ?? false
        if r.outputIncomplete { r.pass = false }
        r.received = datagrams
        r.unique = tracker.unique
        r.uniquePayloadBytes = uniquePayloadBytes
        r.expectedDatagrams = expectedDatagrams
        r.expectedPayloadBytes = expectedPayloadBytes
        r.lost = summary.lost
        r.lostRangeCount = summary.lostRangeCount
        r.lostRanges = Array(summary.lostRanges.prefix(StreamReport.maxRanges))
        r.reordered = tracker.reordered
        r.maxReorderDistance = tracker.maxReorderDistance
        r.duplicates = tracker.duplicates
        r.late = tracker.late
        r.beyondEnd = beyondEnd
        r.afterEnd = afterEnd
        r.corrupt = corrupt
        r.kernelDrops = kernelDrops
        if let l = latency.summary {
            r.latencySamples = l.samples
            let ns = { (us: Double) -> Int64 in us.isFinite ? Int64(max(-9e18, min(9e18, us * 1000))) : 0 }
            r.latencyMinNanoseconds = ns(l.minMicroseconds)
            r.latencyP50Nanoseconds = ns(l.p50)
            r.latencyP99Nanoseconds = ns(l.p99)
            r.latencyP999Nanoseconds = ns(l.p999)
            r.latencyMaxNanoseconds = ns(l.maxMicroseconds)
        }
        r.gaps = summary.lostRangeCount
        r.longestGapDatagrams = summary.lostRanges.map { $0.upperBound - $0.lowerBound + 1 }.max() ?? 0
        r.longestGapNanoseconds = longestGapNanoseconds
        r.firstToLastNanoseconds = firstToLastSendNanoseconds
        if reliable {
            r.reliable = .init(repaired: repaired, repairDuplicates: repairDuplicates, naksSent: naksSent, statusSent: statusSent)
        }
        return r
    }
}

/// A token bucket per source host (the port does not matter: one host, one budget), so no
/// source can make the receiver send REPORTs faster than `perSecond` (after a `burst`).
/// The table is bounded: when it is full, sources whose bucket has refilled are forgotten;
/// if none has, a new source gets no REPORT (fail closed: a flood of spoofed sources must
/// not turn the receiver into a reflector).
public struct ReportRateLimiter: Sendable {
    public let perSecond: Double
    public let burst: Double
    public let capacity: Int
    private var buckets: [SourceAddress: (tokens: Double, at: UInt64)] = [:]

    public init(perSecond: Double = 20, burst: Double = 40, capacity: Int = 4096) {
        self.perSecond = perSecond
        self.burst = burst
        self.capacity = capacity
    }

    /// Sources tracked now.
    public var tracked: Int { buckets.count }

    /// True (and one token spent) when `source` may get a REPORT at monotonic time `now`.
    public mutating func allow(_ source: SourceAddress, now: UInt64) -> Bool {
        var host = source
        host.port = 0
        func refilled(_ b: (tokens: Double, at: UInt64)) -> Double {
            min(burst, b.tokens + Double(now &- b.at) / 1e9 * perSecond)
        }
        var tokens: Double
        if let b = buckets[host] {
            tokens = refilled(b)
        } else {
            if buckets.count >= capacity {
                buckets = buckets.filter { refilled($0.value) < burst }
                if buckets.count >= capacity { return false }
            }
            tokens = burst
        }
        guard tokens >= 1 else {
            buckets[host] = (tokens, now)
            return false
        }
        buckets[host] = (tokens - 1, now)
        return true
    }
}

/// What became of a stream's REPORT.
public enum ReportOutcome: Sendable, Equatable, CustomStringConvertible {
    /// Sent: its size in bytes (never more than the stream delivered).
    case sent(bytes: Int)
    /// Not sent, and why.
    case notSent(String)

    public var description: String {
        switch self {
        case .sent(let bytes): return "sent (\(bytes) bytes)"
        case .notSent(let why): return "not sent: \(why)"
        }
    }
}

/// Sends REPORTs back to streams' sources under the rules of SPEC §12.4: only to a source
/// whose stream delivered valid datagrams (a stream exists only then), no larger than what
/// it delivered, at most `ReportRateLimiter`'s rate per source host. One per receiver, used
/// by the coordinating thread only (never a receive thread).
package struct ReportSender: Sendable {
    package var limiter: ReportRateLimiter
    package let limits: StreamVerdictLimits
    /// A keyed receiver's secret and id: REPORTs go out sealed (SPEC §14) under the key of
    /// this receiver for the stream. nil: plain REPORTs.
    package let keyed: (secret: StreamSecret, receiverID: UInt64)?
    /// Keyed: REPORTs sealed so far, by this receiver, for any stream. A receiver numbers its
    /// REPORTs from 2^63 up, clear of its STATUS and NAK; one counter for all streams keeps a
    /// number from ever repeating under a stream's key without a table that grows per stream.
    private var reportsSealed: UInt64 = 0

    package init(limits: StreamVerdictLimits, limiter: ReportRateLimiter = ReportRateLimiter(),
                 keyed: (secret: StreamSecret, receiverID: UInt64)? = nil) {
        self.limits = limits
        self.limiter = limiter
        self.keyed = keyed
    }

    /// Builds and sends `s`'s REPORT from `socket` (the receiving socket: the sender's socket
    /// is connected to that address and port, so only a datagram from it reaches the sender).
    package mutating func send(_ s: StreamState, kernelDrops: UInt64, socket: borrowing UDPSocket, now: UInt64) -> ReportOutcome {
        guard let destination = s.source.socketAddress else { return .notSent("source address unknown") }
        let report = s.streamReport(kernelDrops: kernelDrops, pass: limits.failures(s).isEmpty, wallNow: MonotonicClock.wallNanoseconds())
        let trailer = keyed == nil ? 0 : AuthTrailer.size
        let cap = Int(min(s.deliveredBytes, UInt64(StreamReport.maximumLength + trailer))) - trailer
        guard cap > 0, var bytes = report.encoded(limit: cap) else {
            return .notSent("the stream delivered \(s.deliveredBytes) bytes, less than a REPORT (\(StreamReport.minimumLength))")
        }
        guard limiter.allow(s.source, now: now) else { return .notSent("rate limit for \(destination.host)") }
        if let keyed {
            // A reliable stream's REPORT comes from the receiver id of its STATUS and NAK (the
            // origin the sender knows it by); a plain stream's from this receiver's id.
            let origin = s.feedback?.receiverID ?? keyed.receiverID
            bytes = StreamReport.sealKeyed(bytes, secret: keyed.secret, receiverID: origin, packetNumber: 1 << 63 | reportsSealed)
            reportsSealed += 1
        }
        let fd = socket.fd
        if let failure = bytes.withUnsafeBytes({ SourceReply.send($0, fd: fd, to: destination, from: s.localAddress) }) {
            return .notSent("\(failure)")
        }
        return .sent(bytes: bytes.count)
    }
}
