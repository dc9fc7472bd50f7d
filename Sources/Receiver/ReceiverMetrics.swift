import StreamProtocol
import Synchronization
import ZCSystem

/// One stream's counters in a ``ReceiverMetricsSnapshot``: what the receive thread
/// had counted when it published (never read per datagram by anyone else).
public struct StreamMetrics: Sendable, Equatable {
    /// The stream (id and source); nil for the fold of every stream beyond the label limit.
    public var key: StreamKey?
    /// Intact data datagrams, duplicates included.
    public var datagrams: UInt64 = 0
    /// Their UDP payload bytes, headers included.
    public var bytes: UInt64 = 0
    /// Distinct sequence numbers received.
    public var unique: UInt64 = 0
    /// Lost sequence numbers as far as known: losses already final while the stream is
    /// busy; the full count (window and tail included) once it has been quiet for a
    /// snapshot interval.
    public var lost: UInt64 = 0
    /// New sequence numbers that arrived below the highest.
    public var reordered: UInt64 = 0
    /// Arrivals of a sequence number already seen.
    public var duplicates: UInt64 = 0
    /// Arrivals too old to classify.
    public var late: UInt64 = 0
    /// Checksum failures and pattern mismatches charged to the stream.
    public var corrupt: UInt64 = 0
    /// Intact datagrams at or above the END's total.
    public var beyondEnd: UInt64 = 0
    /// Reliable streams: numbers recovered by a repair, repairs of numbers already held,
    /// NAK and STATUS datagrams sent.
    public var repaired: UInt64 = 0
    public var repairDuplicates: UInt64 = 0
    public var naksSent: UInt64 = 0
    public var statusSent: UInt64 = 0
    /// Streams (1 for a single stream) whose END has arrived.
    public var ended: UInt64 = 0
    /// Streams folded into this entry (1 for a single stream).
    public var streams: UInt64 = 0

    /// Zero counters for `key`.
    public init(key: StreamKey?) { self.key = key }

    /// A stream's counters as its thread has them (``lost``: the losses already final).
    init(_ s: StreamState) {
        key = s.key
        datagrams = s.datagrams
        bytes = s.bytes
        unique = s.tracker.unique
        reordered = s.tracker.reordered
        duplicates = s.tracker.duplicates
        late = s.tracker.late
        corrupt = s.corrupt
        beyondEnd = s.beyondEnd
        repaired = s.repaired
        repairDuplicates = s.repairDuplicates
        naksSent = s.naksSent
        statusSent = s.statusSent
        ended = s.endSeen ? 1 : 0
        streams = 1
        lost = s.tracker.lostFinal
    }

    /// `self - o`, field by field, never below 0 (what a fold holds besides named entries).
    public func subtracting(_ o: StreamMetrics) -> StreamMetrics {
        var r = self
        r.datagrams -= min(r.datagrams, o.datagrams); r.bytes -= min(r.bytes, o.bytes); r.unique -= min(r.unique, o.unique)
        r.lost -= min(r.lost, o.lost); r.reordered -= min(r.reordered, o.reordered); r.duplicates -= min(r.duplicates, o.duplicates)
        r.late -= min(r.late, o.late); r.corrupt -= min(r.corrupt, o.corrupt); r.beyondEnd -= min(r.beyondEnd, o.beyondEnd)
        r.ended -= min(r.ended, o.ended); r.streams -= min(r.streams, o.streams)
        r.repaired -= min(r.repaired, o.repaired); r.repairDuplicates -= min(r.repairDuplicates, o.repairDuplicates)
        r.naksSent -= min(r.naksSent, o.naksSent); r.statusSent -= min(r.statusSent, o.statusSent)
        return r
    }

    /// Adds another entry's counters (the same stream seen by another thread, or a fold).
    public mutating func add(_ o: StreamMetrics) {
        datagrams &+= o.datagrams; bytes &+= o.bytes; unique &+= o.unique
        lost = lost.saturatingAdd(o.lost); reordered &+= o.reordered; duplicates &+= o.duplicates
        late &+= o.late; corrupt &+= o.corrupt; beyondEnd &+= o.beyondEnd; ended &+= o.ended; streams &+= o.streams
        repaired &+= o.repaired; repairDuplicates &+= o.repairDuplicates; naksSent &+= o.naksSent; statusSent &+= o.statusSent
    }
}

/// What the receive threads had counted at one moment, for a metrics exporter: per
/// stream (the first ``labelLimit`` streams of each thread; the rest folded into
/// ``other``), totals, invalid datagrams by reason, kernel drops and latency buckets.
/// Built by each receive thread every ``ReceiverMetricsPublisher/intervalNanoseconds``
/// from its own state, merged by the coordinating thread: nothing is touched per datagram.
public struct ReceiverMetricsSnapshot: Sendable {
    /// Monotonic time the snapshot was merged.
    public var nanoseconds: UInt64 = 0
    /// Streams with their own entry, in order of first arrival.
    public var streams: [StreamMetrics] = []
    /// Every stream beyond the limit, summed (``StreamMetrics/key`` nil).
    public var other = StreamMetrics(key: nil)
    /// Counters not tied to one stream (invalid by reason, kernel drops, refused, truncated).
    public var statistics = ReceiverStatistics()
    /// One-way latency of every stream, coarse buckets.
    public var latency = LatencyHistogram.ExportBuckets()
    /// Server mode: the final counts of every stream already retired (freed), summed;
    /// part of ``total`` so exported totals never go down.
    public var retired = StreamMetrics(key: nil)
    /// Streams tracked so far (all threads).
    public var streamsTracked: Int = 0
    /// Streams whose END has arrived.
    public var streamsEnded: Int = 0
    /// True once every receive thread has finished (the final counts).
    public var finished = false
    /// `--output`: streams whose output was finalized whole (END seen, no hole, on disk)
    /// and those whose output is incomplete (known only when a stream finishes).
    public var outputsComplete: UInt64 = 0
    public var outputsIncomplete: UInt64 = 0

    /// An empty snapshot.
    public init() {}

    /// Every stream summed, folded ones included.
    public var total: StreamMetrics {
        var t = other
        t.add(retired)
        for s in streams { t.add(s) }
        return t
    }

    /// Adds another thread's snapshot: streams with the same key are combined, new ones
    /// keep their own entry while fewer than `labelLimit` have one, else are folded.
    public mutating func merge(_ o: ReceiverMetricsSnapshot, labelLimit: Int) {
        for s in o.streams {
            if let i = streams.firstIndex(where: { $0.key == s.key }) { streams[i].add(s) }
            else if streams.count < labelLimit { streams.append(s) }
            else { other.add(s) }
        }
        other.add(o.other)
        retired.add(o.retired)
        statistics.merge(o.statistics)
        latency.add(o.latency)
        streamsTracked += o.streamsTracked
        streamsEnded += o.streamsEnded
    }
}

/// Connects the receive threads to a metrics exporter: each thread makes a
/// ``ReceiverMetricsSnapshot`` of its own core every ``intervalNanoseconds`` and posts it
/// to the conductor with its counters (never per datagram); the conductor merges the
/// latest ones on the same interval and hands the result to ``export``.
/// Pass one to ``StreamReceiver/run(_:progressIntervalNanoseconds:ready:progress:metrics:)``.
public final class ReceiverMetricsPublisher: @unchecked Sendable {
    /// How often the threads publish and the exporter is called (default 200 ms).
    public let intervalNanoseconds: UInt64
    /// Streams per snapshot with their own entry; the rest are folded into one.
    public let labelLimit: Int
    /// Called on the coordinating thread with the merged snapshot, every interval and
    /// once more with the final counts when the run ends.
    public let export: @Sendable (ReceiverMetricsSnapshot) -> Void

    /// A publisher that calls `export` every `intervalNanoseconds` with up to `labelLimit` streams named.
    public init(intervalNanoseconds: UInt64 = 200_000_000, labelLimit: Int = 64,
                export: @escaping @Sendable (ReceiverMetricsSnapshot) -> Void) {
        self.intervalNanoseconds = max(1_000_000, intervalNanoseconds)
        self.labelLimit = max(1, labelLimit)
        self.export = export
    }

    /// Finalized outputs so far (coordinator only): see ``ReceiverMetricsSnapshot/outputsComplete``.
    var outputsComplete: UInt64 = 0
    var outputsIncomplete: UInt64 = 0

    /// The coordinator finalized these streams' outputs: counts them complete or not.
    func noteOutputs(_ streams: [StreamState]) {
        for s in streams {
            guard let o = s.output else { continue }
            if o.complete { outputsComplete &+= 1 } else { outputsIncomplete &+= 1 }
        }
    }

    /// The conductor's side: merges the receive threads' latest snapshots and exports.
    func collect(_ snapshots: [ReceiverMetricsSnapshot], now: UInt64, finished: Bool) {
        var merged = ReceiverMetricsSnapshot()
        merged.outputsComplete = outputsComplete
        merged.outputsIncomplete = outputsIncomplete
        for s in snapshots { merged.merge(s, labelLimit: labelLimit) }
        merged.nanoseconds = now
        merged.finished = finished
        export(merged)
    }
}

/// A receive thread's memory between snapshots: which streams had their full loss
/// count computed (``SequenceTracker/finish(expected:)`` walks the window, so it runs
/// only for streams that went quiet, a bounded number per snapshot).
struct ThreadMetricsState {
    /// Per stream index: datagrams and ENDs when the full loss was computed, and that loss.
    var finishedAt: [Int: (datagrams: UInt64, ends: UInt64, lost: UInt64)] = [:]
    /// Full loss computations per snapshot at most (each walks up to the window).
    static let finishBudget = 16
    /// Server mode: what the streams this thread retired had counted, final, folded into
    /// every later snapshot's `other` so exported counters never go down (Prometheus
    /// counters must be monotonic) while the streams' state is freed.
    var retired = StreamMetrics(key: nil)
    var retiredLatency = LatencyHistogram.ExportBuckets()

    /// Streams leave the core (server mode): keep their final counts; the per-index
    /// loss cache is stale now (indices shifted), so it starts over.
    mutating func noteRetired(_ streams: [StreamState]) {
        for s in streams {
            var m = StreamMetrics(s)
            m.key = nil
            m.lost = s.summary().lost
            retired.add(m)
            retiredLatency.add(s.latency.exportBuckets)
        }
        finishedAt.removeAll()
    }

    mutating func snapshot(_ core: ValidatingCore, labelLimit: Int, now: UInt64, quietNanoseconds: UInt64,
                           finished: Bool) -> ReceiverMetricsSnapshot {
        var out = ReceiverMetricsSnapshot()
        out.statistics = core.statistics
        out.streamsTracked = core.streams.count
        out.streamsEnded = core.streamsEnded
        out.finished = finished
        var budget = Self.finishBudget
        out.retired = retired
        out.latency.add(retiredLatency)
        for (i, s) in core.streams.enumerated() {
            var m = StreamMetrics(s)
            let quiet = finished || (s.lastArrivalNanoseconds != 0 && now > s.lastArrivalNanoseconds
                                     && now - s.lastArrivalNanoseconds >= quietNanoseconds)
            if quiet {
                if let f = finishedAt[i], f.datagrams == s.datagrams, f.ends == s.endsReceived {
                    m.lost = max(m.lost, f.lost)
                } else if budget > 0 || finished {
                    budget -= 1
                    let lost = s.summary().lost
                    finishedAt[i] = (s.datagrams, s.endsReceived, lost)
                    m.lost = max(m.lost, lost)
                }
            }
            out.latency.add(s.latency.exportBuckets)
            if i < labelLimit { out.streams.append(m) } else { out.other.add(m) }
        }
        return out
    }
}
