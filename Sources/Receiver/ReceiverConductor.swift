#if canImport(Glibc)
import Glibc
#endif
import CLinux
import ZCSystem

/// The receiver's conductor (Aeron's word): the one thread that is not a receive thread.
/// Once the sockets are open and the workers run, it owns everything on a timer — progress,
/// `--fsync-interval`, metrics, a server's finished streams (their output closed and
/// synced, their REPORT, the caller's callback), the stop rules — on one duty cycle every
/// 2 ms. Workers only move and validate bytes; each posts to it through one channel.
/// (Reliable streams' STATUS and NAK belong here too.)
struct ReceiverConductor: ~Copyable {
    let configuration: ReceiverConfiguration
    let workers: [ReceiveWorker]
    let output: OutputTarget?
    let metrics: ReceiverMetricsPublisher?
    /// REPORTs go back from the receiving socket, when asked; from a group's receiver only
    /// for a reliable stream (a plain stream's sender would get one from every receiver).
    var reporter: ReportSender?
    /// Each worker's latest metrics snapshot (merged on the metrics interval).
    private var latestMetrics: [ReceiverMetricsSnapshot?]
    private let onFinished: (FinishedStream) -> Void
    private var freedSinceTrim = 0
    private var lastTrim: UInt64 = 0
    /// Duty cycle period.
    static let cycleNanoseconds: UInt64 = 2_000_000

    init(configuration c: ReceiverConfiguration, workers: [ReceiveWorker], output: OutputTarget?,
         metrics: ReceiverMetricsPublisher?, finished: @escaping (FinishedStream) -> Void) {
        configuration = c
        self.workers = workers
        self.output = output
        self.metrics = metrics
        reporter = c.reports ? ReportSender(limits: c.verdictLimits, limiter: c.reportRateLimiter,
                                            keyed: c.key.map { ($0, c.keyedReceiverID) }) : nil
        latestMetrics = Array(repeating: nil, count: workers.count)
        onFinished = finished
        // A server frees every finished stream: its memory must go back to the system, not
        // stay in malloc's arenas (RSS would grow with every round of short-lived streams).
        if c.server { zc_malloc_map_large_blocks(64 * 1024) }
    }

    /// The duty cycle, until a stop rule fires or a worker ends (it failed); returns why.
    mutating func run(start: UInt64, progressIntervalNanoseconds: UInt64,
                      progress: (ReceiveProgress) -> Void) -> ReceiverStopReason {
        let c = configuration
        var allEndedAt: UInt64 = 0
        // The idle clock runs from the last datagram of any kind, so a port that
        // only ever gets ENDs, corrupt or foreign datagrams still times out.
        var seenBefore: UInt64 = 0
        var lastSeenAt: UInt64 = 0
        var nextProgress = progressIntervalNanoseconds == 0 ? UInt64.max : start + progressIntervalNanoseconds
        var nextSync = output != nil ? c.fsyncIntervalNanoseconds.map { start + $0 } ?? UInt64.max : UInt64.max
        var nextMetrics = metrics.map { start + $0.intervalNanoseconds } ?? .max
        while true {
            MonotonicClock.sleep(nanoseconds: Self.cycleNanoseconds)
            let now = MonotonicClock.nanoseconds()
            let sum = collect()
            if sum.seen != seenBefore { seenBefore = sum.seen; lastSeenAt = now }
            if now >= nextProgress {
                nextProgress = now + progressIntervalNanoseconds
                progress(ReceiveProgress(elapsedNanoseconds: now - start, datagrams: sum.datagrams, bytes: sum.bytes,
                                         lostSoFar: sum.lostSoFar, corrupt: sum.corrupt, invalid: sum.invalid,
                                         kernelDrops: sum.kernelDrops, streams: sum.streams))
            }
            if now >= nextSync, let output, let interval = c.fsyncIntervalNanoseconds {
                output.syncNow()
                nextSync = MonotonicClock.nanoseconds() + interval
            }
            if let metrics, now >= nextMetrics {
                nextMetrics = now + metrics.intervalNanoseconds
                exportMetrics(now: now, finished: false)
            }
            if sum.finished { return .signal } // a thread failed: the caller stops the others and throws its error
            if StopFlag.isSet { return .signal }
            if let limit = c.timeoutNanoseconds, now - start >= limit { return .timeout }
            if c.server { continue } // a server stops only on a signal or --timeout
            // A reliable stream still being repaired holds the run open (no linger or idle
            // stop): it ends complete, or its receiver deadline gives up.
            if sum.reliablePending > 0 { allEndedAt = 0; continue }
            if let wanted = c.streams, sum.streamsEnded >= wanted {
                if sum.endedIncomplete == 0 { return .streamsComplete }
                if allEndedAt == 0 { allEndedAt = now }
                if now - allEndedAt >= c.lingerNanoseconds { return .linger }
            }
            let last = max(sum.lastData, lastSeenAt, sum.streamsEnded > 0 ? allEndedAt : 0)
            if last > 0 && now > last && now - last >= c.idleTimeoutNanoseconds { return .idle }
        }
    }

    /// After the workers were joined: their last posts (a server's last finished streams).
    mutating func collectLast() {
        _ = collect()
        exportMetrics(now: MonotonicClock.nanoseconds(), finished: true)
    }

    /// Takes every worker's post: sums the counters, keeps the metrics, and finishes the
    /// streams a server retired.
    private mutating func collect() -> WorkerSnapshot {
        var sum = WorkerSnapshot()
        for (i, w) in workers.enumerated() {
            let post = w.channel.take()
            sum.add(post.snapshot)
            if let m = post.metrics { latestMetrics[i] = m }
            if !post.finished.isEmpty { finish(post.finished, socket: w.socket) }
        }
        // At most once a second, and only after streams were freed.
        let now = MonotonicClock.nanoseconds()
        if freedSinceTrim > 0 && now - lastTrim >= 1_000_000_000 {
            zc_malloc_release_free()
            freedSinceTrim = 0
            lastTrim = now
        }
        return sum
    }

    /// A server's finished streams: output sized, synced and closed here (never on a receive
    /// thread), REPORT sent, handed to the caller.
    private mutating func finish(_ streams: [FinishedStream], socket: borrowing UDPSocket) {
        var done = streams
        if let output {
            var states = done.map(\.state)
            output.finalizeFinished(&states)
            metrics?.noteOutputs(states)
            for k in done.indices { done[k].state = states[k] }
        }
        for var f in done {
            if reporter != nil && configuration.reports(f.state) { f.report = reporter!.send(f.state, kernelDrops: f.kernelDrops, socket: socket, now: MonotonicClock.nanoseconds()) }
            onFinished(f)
        }
        freedSinceTrim += done.count
    }

    /// Merges the workers' latest metrics and exports them.
    func exportMetrics(now: UInt64, finished: Bool) {
        metrics?.collect(latestMetrics.compactMap { $0 }, now: now, finished: finished)
    }
}
