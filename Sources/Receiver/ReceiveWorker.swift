#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import ZCSystem

/// What a receive thread tells the conductor: its counters, its metrics, the streams it
/// retired. Posted through the worker's one ``WorkerChannel``, at most every millisecond
/// (more often only when streams end or retire), never per datagram.
struct WorkerSnapshot: Sendable {
    var datagrams: UInt64 = 0
    var bytes: UInt64 = 0
    var lostSoFar: UInt64 = 0
    var corrupt: UInt64 = 0
    var invalid: UInt64 = 0
    var kernelDrops: UInt64 = 0
    var streams = 0
    var streamsEnded = 0
    var endedIncomplete = 0
    var lastData: UInt64 = 0
    /// Reliable streams still being repaired: the run does not end for linger or idle while any is.
    var reliablePending = 0
    /// Datagrams of any kind (valid, corrupt, invalid) seen so far.
    var seen: UInt64 = 0
    /// The thread ended (after a stop, or because it failed).
    var finished = false

    init() {}

    init(_ core: ValidatingCore) {
        corrupt = core.statistics.corruptUnattributed
        invalid = core.statistics.invalidTotal
        kernelDrops = core.statistics.kernelDrops
        streams = core.streams.count
        streamsEnded = core.streamsEnded
        lastData = core.lastDataNanoseconds
        seen = core.statistics.datagramsSeen
        if core.sawReliable { reliablePending = core.reliablePending }
        // Retired streams (a server's finished ones) stay in the running totals: a total
        // that went down would make an interval's rate negative.
        datagrams = core.retiredTotals.datagrams
        bytes = core.retiredTotals.bytes
        lostSoFar = core.retiredTotals.lost
        corrupt += core.retiredTotals.corrupt
        for s in core.streams {
            datagrams += s.datagrams
            bytes += s.bytes
            lostSoFar = lostSoFar.saturatingAdd(s.tracker.lostFinal)
            corrupt += s.corrupt
            if s.expected != nil && !s.isComplete { endedIncomplete += 1 }
        }
    }

    /// Sums over threads.
    mutating func add(_ s: WorkerSnapshot) {
        datagrams += s.datagrams; bytes += s.bytes; lostSoFar = lostSoFar.saturatingAdd(s.lostSoFar)
        corrupt += s.corrupt; invalid += s.invalid; kernelDrops += s.kernelDrops
        streams += s.streams; streamsEnded += s.streamsEnded; endedIncomplete += s.endedIncomplete
        lastData = max(lastData, s.lastData)
        reliablePending += s.reliablePending
        seen &+= s.seen
        if s.finished { finished = true }
    }
}

/// The one channel from a receive thread to the conductor.
final class WorkerChannel: Sendable {
    private struct Post: Sendable {
        var snapshot = WorkerSnapshot()
        var metrics: ReceiverMetricsSnapshot?
        var finished: [FinishedStream] = []
    }
    private let post = Mutex(Post())

    /// Worker: the latest counters, a metrics snapshot when one was due, streams it retired.
    func publish(_ snapshot: WorkerSnapshot, metrics: ReceiverMetricsSnapshot?, finished: [FinishedStream]) {
        post.withLock { p in
            p.snapshot = snapshot
            if let metrics { p.metrics = metrics }
            p.finished += finished
        }
    }

    /// Conductor: the latest counters and metrics, and the retired streams not taken yet.
    func take() -> (snapshot: WorkerSnapshot, metrics: ReceiverMetricsSnapshot?, finished: [FinishedStream]) {
        post.withLock { p in
            defer { p.finished.removeAll() }
            return (p.snapshot, p.metrics, p.finished)
        }
    }
}

/// One receive thread: its own SO_REUSEPORT socket, engine and validating core. It only
/// receives, validates (and writes `--output`), retires a server's finished streams, and
/// posts to its ``WorkerChannel``; everything else is the conductor's.
final class ReceiveWorker: @unchecked Sendable {
    let socket: UDPSocket
    let cpu: Int?
    let channel = WorkerChannel()
    /// The conductor's one signal to the thread.
    let stop = Atomic(false)
    // Written by the worker thread, read after join.
    var core: ValidatingCore?
    var failure: SystemError?

    private let configuration: ReceiverConfiguration
    /// UDP_GRO is on: a receive buffer may hold up to 64 KiB of coalesced datagrams.
    private let coalescing: Bool
    private let output: OutputTarget?
    /// Metrics snapshots (`--metrics`) every `interval`, up to `labelLimit` streams named.
    private let metrics: (intervalNanoseconds: UInt64, labelLimit: Int)?

    /// The socket buffer the kernel granted: reliable streams size their window against it.
    private let receiveBufferBytes: Int

    init(socket: consuming UDPSocket, configuration c: ReceiverConfiguration, coalescing: Bool, receiveBufferBytes: Int, cpu: Int?,
         output: OutputTarget?, metrics: ReceiverMetricsPublisher?) {
        self.receiveBufferBytes = receiveBufferBytes
        self.socket = socket
        configuration = c
        self.coalescing = coalescing
        self.cpu = cpu
        self.output = output
        self.metrics = metrics.map { ($0.intervalNanoseconds, $0.labelLimit) }
    }

    /// Server mode: moves finished streams (END + linger, or idle; all of them with `all`)
    /// out of the core.
    private func retire(_ core: inout ValidatingCore, now: UInt64, all: Bool) -> [FinishedStream] {
        let linger = configuration.lingerNanoseconds, idle = configuration.idleTimeoutNanoseconds
        var reasons: [StreamKey: FinishedStream.Reason] = [:]
        let gone = core.retireStreams { s in
            // A reliable stream still being repaired is not over at its END: it ends complete,
            // or when its receiver deadline gives up (then as an idle one would).
            let repairing = s.reliablePending || s.wantsFeedback
            let reason: FinishedStream.Reason? = all ? .stopped
                : s.endArrivalNanoseconds != 0 && now &- s.endArrivalNanoseconds >= linger && !repairing ? .end
                : now &- s.lastActivityNanoseconds >= idle && !repairing ? .idle : nil
            if let reason { reasons[s.key] = reason }
            return reason != nil
        }
        guard !gone.isEmpty else { return [] }
        let drops = core.statistics.kernelDrops
        let wall = MonotonicClock.wallNanoseconds()
        return gone.map { s in
            FinishedStream(state: s, reason: reasons[s.key] ?? .stopped, kernelDrops: drops - min(drops, s.kernelDropsAtStart),
                           report: nil, wallNanoseconds: wall)
        }
    }

    func run() {
        let c = configuration
        var core = ValidatingCore(maxStreams: c.maxStreams, output: output.map { CoreOutput(target: $0) } as CoreOutput?,
                                  delivery: c.delivery)
        core.excludeHead = c.isMulticast && !c.multicast.countHeadLoss
        core.groupReceiver = c.isMulticast
        core.receiveBufferBytes = receiveBufferBytes
        core.reliableTiming = c.reliableTiming
        if let key = c.key { core.keyring = ReceiverKeyring(secret: key, receiverID: c.keyedReceiverID) }
        if let allowList = c.allowList { core.allowList = allowList }
        var nextFeedback: UInt64 = 0
        var shortWaits = false
        let fd = socket.fd
        var nextPublish: UInt64 = 0
        var publishedEnded = 0
        var nextMetrics: UInt64 = 0
        var nextRetire: UInt64 = 0
        var metricsState = ThreadMetricsState()
        // Called by the engine between receive batches.
        let shouldStop: (inout ValidatingCore, UInt64) -> Bool = { [self] core, now in
            if core.sawReliable {
                // STATUS and NAK from this thread, which owns the streams' state: at most every
                // 250 µs, and the socket's wait cut to 1 ms so timers run when nothing arrives.
                if now >= nextFeedback {
                    core.serviceReliable(now: now, wallNow: MonotonicClock.wallNanoseconds(), fd: fd)
                    nextFeedback = now + 250_000
                }
                if !shortWaits {
                    shortWaits = true
                    _ = try? SocketCalls.setOption(fd, level: SOL_SOCKET, name: SO_RCVTIMEO,
                                                   bytes: timeval(tv_sec: 0, tv_usec: 1000), call: "setsockopt(SO_RCVTIMEO)")
                }
            }
            var retired: [FinishedStream] = []
            if c.server && now >= nextRetire {
                nextRetire = now + 5_000_000
                retired = retire(&core, now: now, all: false)
                if metrics != nil && !retired.isEmpty { metricsState.noteRetired(retired.map(\.state)) }
            }
            var metricsSnapshot: ReceiverMetricsSnapshot?
            if let metrics, now >= nextMetrics {
                metricsSnapshot = metricsState.snapshot(core, labelLimit: metrics.labelLimit, now: now,
                                                        quietNanoseconds: metrics.intervalNanoseconds, finished: false)
                nextMetrics = now + metrics.intervalNanoseconds
            }
            if now >= nextPublish || core.streamsEnded != publishedEnded || core.streamsEnded > 0
                || !retired.isEmpty || metricsSnapshot != nil {
                channel.publish(WorkerSnapshot(core), metrics: metricsSnapshot, finished: retired)
                publishedEnded = core.streamsEnded
                nextPublish = now + 1_000_000
            }
            return stop.load(ordering: .relaxed)
        }
        do {
            switch c.engine {
            case .recvmmsg:
                try RecvmmsgEngine(coalescing: coalescing).run(socket: socket, core: &core, shouldStop: shouldStop)
            case .uring:
                try UringRecvEngine().run(socket: socket, core: &core, shouldStop: shouldStop)
            }
        } catch {
            failure = error
        }
        // The last word of every reliable stream that completed or gave up as the run ended.
        core.serviceReliable(now: MonotonicClock.nanoseconds(), wallNow: MonotonicClock.wallNanoseconds(), fd: fd)
        var retired: [FinishedStream] = []
        if c.server {
            retired = retire(&core, now: MonotonicClock.nanoseconds(), all: true)
            if metrics != nil { metricsState.noteRetired(retired.map(\.state)) }
        }
        core.finishOutput()
        var last = WorkerSnapshot(core)
        last.finished = true
        let finalMetrics = metrics.map {
            metricsState.snapshot(core, labelLimit: $0.labelLimit, now: MonotonicClock.nanoseconds(),
                                  quietNanoseconds: $0.intervalNanoseconds, finished: true)
        }
        self.core = core
        channel.publish(last, metrics: finalMetrics, finished: retired)
    }
}
