#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Synchronization
import ZCSystem

/// Why a receiver run ended. The raw value is the name in `zc-recv`'s report.
public enum ReceiverStopReason: String, Sendable {
    /// The expected number of streams (``ReceiverConfiguration/streams``) sent END and every one is complete.
    case streamsComplete = "streams_complete"
    /// They all sent END, but some still missed datagrams when ``ReceiverConfiguration/lingerNanoseconds`` ran out.
    case linger
    /// Nothing arrived for ``ReceiverConfiguration/idleTimeoutNanoseconds`` after data had started.
    case idle
    /// ``ReceiverConfiguration/timeoutNanoseconds`` passed.
    case timeout
    /// A stop was requested (`StopFlag`: SIGINT, SIGTERM or `StopFlag.request(signal:)`), or a receive thread failed.
    case signal
}

/// A finished receiver run.
public struct ReceiverReport: Sendable {
    /// The configuration the run used.
    public var configuration: ReceiverConfiguration
    /// The address actually bound (with the kernel's port when ``ReceiverConfiguration/listen`` had port 0).
    public var boundAddress: SocketAddress
    /// All threads' cores merged (streams with the same key combined).
    public var core: ValidatingCore
    /// Why the run ended.
    public var stopReason: ReceiverStopReason
    /// What the kernel granted per socket (getsockopt reports twice the usable size).
    public var receiveBufferBytes: Int32
    /// net.core.rmem_max, the cap for SO_RCVBUF without privilege (nil if unreadable).
    public var receiveBufferLimit: Int?
    /// True when SO_RCVBUFFORCE worked (root / CAP_NET_ADMIN: rmem_max does not apply).
    public var receiveBufferForced: Bool
    /// True when UDP GRO was requested and the kernel accepted it.
    public var groEnabled: Bool
    /// Seconds from starting the receive threads to the end of the run (monotonic clock).
    public var wallSeconds: Double
    /// Per receive thread: datagrams validated and kernel drops on its socket.
    public var threads: [ThreadSummary]
    /// Every reason the output is not every stream whole, one line each ("PATH: what"):
    /// files that could not be opened, failed writes, bytes beyond the output limit, deleted
    /// files, failed syncs, holes (datagrams that never arrived), a stream without END (its
    /// tail unknown), no stream at all. Empty when each stream's output is the whole stream,
    /// on disk.
    public var outputErrors: [String]
    /// The multicast membership and its timing (nil: a unicast address).
    public var multicast: MulticastReceiveReport?
    /// What became of each stream's REPORT, in the order of ``ValidatingCore/streams``
    /// (empty when REPORTs are off or for a multicast group).
    public var reportOutcomes: [ReportOutcome] = []

    /// One receive thread's share of the run.
    public struct ThreadSummary: Sendable {
        /// Intact data datagrams its core counted (duplicates included).
        public var datagrams: UInt64
        /// `SO_RXQ_OVFL` drops on its socket.
        public var kernelDrops: UInt64
        /// Streams it saw.
        public var streams: Int
        /// The CPU it was pinned to, nil when not pinned.
        public var cpu: Int?
    }

    /// Seconds from the first to the last intact data datagram.
    public var dataSeconds: Double {
        core.lastDataNanoseconds > core.firstDataNanoseconds
            ? Double(core.lastDataNanoseconds - core.firstDataNanoseconds) / 1e9 : 0
    }

    /// The socket buffer overflowed: the receiver, not the path, lost those datagrams.
    public var socketBufferWasBottleneck: Bool { core.statistics.kernelDrops > 0 }
}

/// A stream a server (``ReceiverConfiguration/server``) finished and freed: its final state,
/// handed to the caller as it finishes.
public struct FinishedStream: Sendable {
    /// Why the stream counts as finished.
    public enum Reason: String, Sendable {
        /// Its END arrived and --linger passed.
        case end
        /// Nothing arrived from it for --idle-timeout (no END, or the END was lost).
        case idle
        /// The server stopped (signal or --timeout) while it was open.
        case stopped
    }
    /// The stream's final state.
    public var state: StreamState
    /// Why it finished.
    public var reason: Reason
    /// Kernel drops on its socket while it was open (all streams of the socket share them).
    public var kernelDrops: UInt64
    /// What became of its REPORT (nil: REPORTs are off).
    public var report: ReportOutcome?
    /// CLOCK_REALTIME when it finished, ns.
    public var wallNanoseconds: UInt64
}

/// Progress snapshot handed to the caller every interval (sums over threads).
public struct ReceiveProgress: Sendable {
    /// Since receiving started, monotonic.
    public var elapsedNanoseconds: UInt64
    /// Intact data datagrams so far, all streams (duplicates included).
    public var datagrams: UInt64
    /// Their UDP payload bytes, headers included.
    public var bytes: UInt64
    /// Losses already final (sequence numbers that left the tracking window unseen); the end-of-run count can be higher.
    public var lostSoFar: UInt64
    /// Corrupt datagrams so far, attributed to a stream or not.
    public var corrupt: UInt64
    /// Invalid datagrams so far (``ReceiverStatistics/invalidTotal``).
    public var invalid: UInt64
    /// `SO_RXQ_OVFL` drops so far, summed over sockets.
    public var kernelDrops: UInt64
    /// Streams seen so far, summed over threads (a stream seen by two threads counts twice).
    public var streams: Int = 0
}

/// What a receive thread publishes for the coordinator (under a lock, at most
/// every millisecond — never per datagram).
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
    /// Datagrams of any kind (valid, corrupt, invalid) seen so far.
    var seen: UInt64 = 0
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
}

/// One receive thread: its own SO_REUSEPORT socket, engine, and validating core.
final class ReceiveWorker: @unchecked Sendable {
    let socket: UDPSocket
    let engine: ReceiveEngineKind
    /// UDP_GRO is on: a receive buffer may hold up to 64 KiB of coalesced datagrams.
    let coalescing: Bool
    let cpu: Int?
    let maxStreams: Int
    let output: OutputTarget?
    let stop: Atomic<Bool>
    let published = Mutex(WorkerSnapshot())
    // Written by the worker thread, read after join.
    var core: ValidatingCore?
    var failure: SystemError?

    let delivery: DeliveryHandler?
    let excludeHead: Bool
    /// Metrics snapshots (`--metrics`): this thread's slot is `metricsIndex`.
    var metrics: ReceiverMetricsPublisher?
    var metricsIndex = 0
    /// Server mode: streams are retired here when finished (END + linger, or idle) and
    /// queued for the coordinator, which reports them (nil: not a server).
    var retirement: (lingerNanoseconds: UInt64, idleNanoseconds: UInt64)?
    let finished = Mutex<[FinishedStream]>([])
    /// `--allow`: sources outside it are dropped before validation (nil: all accepted).
    var allowList: AllowList?

    init(socket: consuming UDPSocket, engine: ReceiveEngineKind, coalescing: Bool, cpu: Int?, maxStreams: Int, output: OutputTarget?,
         delivery: DeliveryHandler? = nil, excludeHead: Bool = false) {
        self.coalescing = coalescing
        self.delivery = delivery
        self.excludeHead = excludeHead
        self.socket = socket
        self.engine = engine
        self.cpu = cpu
        self.maxStreams = maxStreams
        self.output = output
        self.stop = Atomic(false)
    }

    /// Moves finished streams out of the core into the queue for the coordinator.
    @discardableResult
    func retire(_ core: inout ValidatingCore, now: UInt64, linger: UInt64, idle: UInt64, all: Bool = false) -> [StreamState] {
        var reasons: [StreamKey: FinishedStream.Reason] = [:]
        let gone = core.retireStreams { s in
            let reason: FinishedStream.Reason? = all ? .stopped
                : s.endArrivalNanoseconds != 0 && now &- s.endArrivalNanoseconds >= linger ? .end
                : now &- s.lastActivityNanoseconds >= idle ? .idle : nil
            if let reason { reasons[s.key] = reason }
            return reason != nil
        }
        guard !gone.isEmpty else { return [] }
        let drops = core.statistics.kernelDrops
        let wall = MonotonicClock.wallNanoseconds()
        let done = gone.map { s in
            FinishedStream(state: s, reason: reasons[s.key] ?? .stopped, kernelDrops: drops - min(drops, s.kernelDropsAtStart),
                           report: nil, wallNanoseconds: wall)
        }
        finished.withLock { $0 += done }
        return gone
    }

    func run() {
        var core = ValidatingCore(maxStreams: maxStreams, output: output.map { CoreOutput(target: $0) } as CoreOutput?,
                                  delivery: delivery)
        core.excludeHead = excludeHead
        if let allowList { core.allowList = allowList }
        var nextPublish: UInt64 = 0
        var publishedEnded = 0
        var nextMetrics: UInt64 = 0
        var nextRetire: UInt64 = 0
        var metricsState = ThreadMetricsState()
        let shouldStop: (inout ValidatingCore, UInt64) -> Bool = { [self] core, now in
            if let retirement, now >= nextRetire {
                nextRetire = now + 5_000_000
                let gone = retire(&core, now: now, linger: retirement.lingerNanoseconds, idle: retirement.idleNanoseconds)
                if metrics != nil && !gone.isEmpty { metricsState.noteRetired(gone) }
            }
            if let metrics, now >= nextMetrics {
                metrics.publish(thread: metricsIndex, core: core, state: &metricsState, now: now, finished: false)
                nextMetrics = now + metrics.intervalNanoseconds
            }
            if now >= nextPublish || core.streamsEnded != publishedEnded || core.streamsEnded > 0 {
                let snapshot = WorkerSnapshot(core)
                published.withLock { $0 = snapshot }
                publishedEnded = core.streamsEnded
                nextPublish = now + 1_000_000
            }
            return stop.load(ordering: .relaxed)
        }
        do {
            switch engine {
            case .recvmmsg:
                try RecvmmsgEngine(coalescing: coalescing).run(socket: socket, core: &core, shouldStop: shouldStop)
            case .uring:
                let e = try UringRecvEngine()
                try e.run(socket: socket, core: &core, shouldStop: shouldStop)
            }
        } catch {
            failure = error
        }
        if retirement != nil {
            let gone = retire(&core, now: MonotonicClock.nanoseconds(), linger: 0, idle: 0, all: true)
            if metrics != nil { metricsState.noteRetired(gone) }
        }
        core.finishOutput()
        var last = WorkerSnapshot(core)
        last.finished = true
        metrics?.publish(thread: metricsIndex, core: core, state: &metricsState, now: MonotonicClock.nanoseconds(), finished: true)
        self.core = core
        published.withLock { $0 = last }
    }
}

/// Runs a whole receiver: sockets, receive threads, stop conditions, merged report.
/// What `zc-recv` runs; see ``ReceiverConfiguration`` for the settings.
public enum StreamReceiver {
    /// Binds (one socket per thread, SO_REUSEPORT when more than one), then calls
    /// `ready` with the bound address, the granted buffer size and whether GRO is
    /// on (tests and scripts wait for it), receives until a stop condition, and
    /// reports. The calling thread coordinates: it decides when to stop and calls
    /// `progress` every `progressIntervalNanoseconds`; the receive threads only
    /// receive, validate, and publish a small snapshot every millisecond.
    ///
    /// - Throws: `SystemError` when a socket cannot be set up or bound, a thread
    ///   cannot be started, or a receive thread fails (the others are stopped first).
    public static func run(_ c: ReceiverConfiguration, progressIntervalNanoseconds: UInt64 = 0,
                           ready: (SocketAddress, Int32, Bool) -> Void = { _, _, _ in },
                           progress: @escaping (ReceiveProgress) -> Void = { _ in },
                           metrics: ReceiverMetricsPublisher? = nil,
                           finished: (FinishedStream) -> Void = { _ in }) throws(SystemError) -> ReceiverReport {
        let threads = max(1, c.threads)
        var granted: Int32 = 0
        var forced = false
        var groEnabled = false
        var bound = c.listen
        let output = c.output.map { OutputTarget($0, expectedStreams: c.streams, maxBytes: c.outputMaxBytes, server: c.server) }
        var workers: [ReceiveWorker] = []
        var membership: MulticastMembership?
        var joinedAt: UInt64 = 0
        for t in 0..<threads {
            let socket = try UDPSocket(family: c.listen.family)
            if threads > 1 {
                try socket.setOption(level: SOL_SOCKET, name: SO_REUSEPORT, value: 1, call: "SO_REUSEPORT")
            }
            if c.isMulticast {
                // Several receivers of one group on one host: each bound socket gets a copy.
                try socket.setOption(level: SOL_SOCKET, name: SO_REUSEADDR, value: 1, call: "SO_REUSEADDR")
                try socket.setMulticastAll(false)
            }
            forced = (try? socket.setOption(level: SOL_SOCKET, name: SO_RCVBUFFORCE, value: c.receiveBufferBytes, call: "SO_RCVBUFFORCE")) != nil
            granted = socket.setBufferSize(receive: true, bytes: c.receiveBufferBytes)
            if c.gro {
                groEnabled = (try? socket.setOption(level: Int32(IPPROTO_UDP), name: zc_udp_gro, value: 1, call: "UDP_GRO")) != nil
            }
            try socket.setOption(level: SOL_SOCKET, name: zc_so_rxq_ovfl, value: 1, call: "SO_RXQ_OVFL")
            if c.reports && !c.isMulticast && c.listen.isWildcard {
                // Bound to any address: learn which one each stream was sent to, so its REPORT
                // goes out from there (a sender connected to that address accepts only it).
                try socket.setOption(level: Int32(IPPROTO_IP), name: zc_ip_pktinfo, value: 1, call: "IP_PKTINFO")
                if c.listen.family == AF_INET6 {
                    try socket.setOption(level: Int32(IPPROTO_IPV6), name: zc_ipv6_recvpktinfo, value: 1, call: "IPV6_RECVPKTINFO")
                }
            }
            try SocketCalls.setOption(socket.fd, level: SOL_SOCKET, name: SO_RCVTIMEO,
                                      bytes: timeval(tv_sec: 0, tv_usec: 100_000), call: "setsockopt(SO_RCVTIMEO)")
            // The first socket may bind port 0; the others join its port.
            try socket.bind(to: t == 0 ? c.listen : bound)
            if t == 0 { bound = try socket.localAddress() }
            if c.isMulticast {
                // validate() allows one thread for a group: this socket joins it.
                let m: MulticastMembership
                do {
                    let index = try c.multicast.interface.map { name throws(MulticastError) in try interfaceIndex(named: name) } ?? 0
                    m = MulticastMembership(group: c.listen, interfaceIndex: index, source: c.multicast.source)
                    try socket.join(m)
                } catch {
                    switch error {
                    case .system(let e): throw e
                    default: throw SystemError(call: "join \(c.listen.host): \(error)", errno: EINVAL)
                    }
                }
                membership = m
                joinedAt = MonotonicClock.nanoseconds()
            }
            let cpu = c.cpus.flatMap { $0.isEmpty ? nil : $0[t % $0.count] }
            workers.append(ReceiveWorker(socket: socket, engine: c.engine, coalescing: groEnabled, cpu: cpu, maxStreams: c.maxStreams, output: output,
                                         delivery: c.delivery, excludeHead: c.isMulticast && !c.multicast.countHeadLoss))
        }
        metrics?.prepare(threads: workers.count)
        for (i, w) in workers.enumerated() {
            w.metrics = metrics; w.metricsIndex = i
            if c.server { w.retirement = (c.lingerNanoseconds, c.idleTimeoutNanoseconds) }
            w.allowList = c.allowList
        }
        // REPORTs go back from the receiving socket; not to a group's members (many
        // receivers would answer one sender), and only when asked.
        var reporter = c.reports && !c.isMulticast ? ReportSender(limits: c.verdictLimits, limiter: c.reportRateLimiter) : nil
        var finishedCount = 0
        // A server frees every finished stream: its memory must go back to the system, not
        // stay in malloc's arenas (RSS would grow with every round of short-lived streams).
        if c.server { zc_malloc_map_large_blocks(64 * 1024) }
        var freedSinceTrim = 0
        var lastTrim: UInt64 = 0
        /// Reports (REPORT and the caller's callback) the streams the workers retired.
        func drainFinished() {
            for w in workers {
                var done = w.finished.withLock { q in defer { q.removeAll() }; return q }
                if let output, !done.isEmpty {
                    // Sized, fsynced and closed here, on this thread, never a receive thread.
                    var states = done.map(\.state)
                    output.finalizeFinished(&states)
                    metrics?.noteOutputs(states)
                    for k in done.indices { done[k].state = states[k] }
                }
                for var f in done {
                    if reporter != nil { f.report = reporter!.send(f.state, kernelDrops: f.kernelDrops, socket: w.socket, now: MonotonicClock.nanoseconds()) }
                    finishedCount += 1
                    finished(f)
                }
                freedSinceTrim += done.count
            }
            // At most once a second, and only after streams were freed.
            let now = MonotonicClock.nanoseconds()
            if freedSinceTrim > 0 && now - lastTrim >= 1_000_000_000 {
                zc_malloc_release_free()
                freedSinceTrim = 0
                lastTrim = now
            }
        }
        ready(bound, granted, groEnabled)

        let start = MonotonicClock.nanoseconds()
        var running: [WorkerThread] = []
        for w in workers {
            do {
                running.append(try WorkerThread(cpu: w.cpu) { w.run() })
            } catch {
                for x in workers { x.stop.store(true, ordering: .relaxed) }
                for r in running { r.join() }
                throw error
            }
        }

        var reason = ReceiverStopReason.signal
        var allEndedAt: UInt64 = 0
        // The idle clock runs from the last datagram of any kind, so a port that
        // only ever gets ENDs, corrupt or foreign datagrams still times out.
        var seenBefore: UInt64 = 0
        var lastSeenAt: UInt64 = 0
        var nextProgress = progressIntervalNanoseconds == 0 ? UInt64.max : start + progressIntervalNanoseconds
        var nextSync = output != nil ? c.fsyncIntervalNanoseconds.map { start + $0 } ?? UInt64.max : UInt64.max
        var nextMetrics = metrics.map { start + $0.intervalNanoseconds } ?? .max
        while true {
            MonotonicClock.sleep(nanoseconds: 2_000_000)
            let now = MonotonicClock.nanoseconds()
            var sum = WorkerSnapshot()
            var anyFinished = false
            for w in workers {
                let s = w.published.withLock { $0 }
                sum.datagrams += s.datagrams; sum.bytes += s.bytes; sum.lostSoFar = sum.lostSoFar.saturatingAdd(s.lostSoFar)
                sum.corrupt += s.corrupt; sum.invalid += s.invalid; sum.kernelDrops += s.kernelDrops
                sum.streams += s.streams; sum.streamsEnded += s.streamsEnded; sum.endedIncomplete += s.endedIncomplete
                sum.lastData = max(sum.lastData, s.lastData)
                sum.seen &+= s.seen
                if s.finished { anyFinished = true }
            }
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
                metrics.collect(now: now, finished: false)
            }
            if c.server { drainFinished() }
            if anyFinished { break } // a thread failed: stop the others, report the error below
            if StopFlag.isSet { reason = .signal; break }
            if let limit = c.timeoutNanoseconds, now - start >= limit { reason = .timeout; break }
            if c.server { continue } // a server stops only on a signal or --timeout
            if let wanted = c.streams, sum.streamsEnded >= wanted {
                if sum.endedIncomplete == 0 { reason = .streamsComplete; break }
                if allEndedAt == 0 { allEndedAt = now }
                if now - allEndedAt >= c.lingerNanoseconds { reason = .linger; break }
            }
            let last = max(sum.lastData, lastSeenAt, sum.streamsEnded > 0 ? allEndedAt : 0)
            if last > 0 && now > last && now - last >= c.idleTimeoutNanoseconds { reason = .idle; break }
        }
        for w in workers { w.stop.store(true, ordering: .relaxed) }
        for r in running { r.join() }
        if c.server { drainFinished() }
        if let membership { try? workers[0].socket.leave(membership) }
        metrics?.collect(now: MonotonicClock.nanoseconds(), finished: true)
        if let failure = workers.lazy.compactMap(\.failure).first { throw failure }

        var merged = workers[0].core!
        var summaries: [ReceiverReport.ThreadSummary] = []
        for (i, w) in workers.enumerated() {
            let core = w.core!
            summaries.append(.init(datagrams: core.streams.reduce(0) { $0 + $1.datagrams }, kernelDrops: core.statistics.kernelDrops,
                                   streams: core.streams.count, cpu: w.cpu))
            if i > 0 { merged.merge(core) }
        }
        if let output, !c.server {
            merged.finalizeOutput(output)
            // The outputs' verdicts are known only now: export them with the final counts.
            metrics?.noteOutputs(merged.streams)
            metrics?.collect(now: MonotonicClock.nanoseconds(), finished: true)
        }
        let multicast = membership.map {
            MulticastReceiveReport(membership: $0, interface: c.multicast.interface, joinedAtNanoseconds: joinedAt,
                                   joinToFirstDatagramNanoseconds: merged.firstSeenNanoseconds > joinedAt ? merged.firstSeenNanoseconds - joinedAt : nil,
                                   countHeadLoss: c.multicast.countHeadLoss)
        }
        var outcomes: [ReportOutcome] = []
        if !c.server, reporter != nil {
            // Not a server: every stream's REPORT goes out once the run is over.
            let now = MonotonicClock.nanoseconds()
            for s in merged.streams {
                let drops = merged.statistics.kernelDrops
                outcomes.append(reporter!.send(s, kernelDrops: drops - min(drops, s.kernelDropsAtStart), socket: workers[0].socket, now: now))
            }
        }
        return ReceiverReport(configuration: c, boundAddress: bound, core: merged, stopReason: reason,
                              receiveBufferBytes: granted, receiveBufferLimit: readRmemMax(), receiveBufferForced: forced,
                              groEnabled: groEnabled, wallSeconds: Double(MonotonicClock.nanoseconds() - start) / 1e9,
                              threads: summaries, outputErrors: output?.incompleteness(merged.streams) ?? [], multicast: multicast,
                              reportOutcomes: outcomes)
    }

    /// net.core.rmem_max, read from /proc.
    static func readRmemMax() -> Int? {
        guard let fd = try? FileCalls.open("/proc/sys/net/core/rmem_max", O_RDONLY | O_CLOEXEC) else { return nil }
        defer { FileCalls.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        guard let n = buffer.withUnsafeMutableBytes({ try? FileCalls.read(fd, into: $0) }), n > 0 else { return nil }
        return Int(String(decoding: buffer[0..<n].filter { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self))
    }
}
