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

/// Runs a whole receiver: sockets, receive threads, stop conditions, merged report.
/// What `zc-recv` runs; see ``ReceiverConfiguration`` for the settings.
public enum StreamReceiver {
    /// Binds (one socket per thread, SO_REUSEPORT when more than one), then calls
    /// `ready` with the bound address, the granted buffer size and whether GRO is
    /// on (tests and scripts wait for it), receives until a stop condition, and
    /// reports. The calling thread is the conductor (``ReceiverConductor``): it decides
    /// when to stop, calls `progress` every `progressIntervalNanoseconds`, exports
    /// metrics, syncs the output and answers finished streams; the receive threads only
    /// receive, validate, and post a small snapshot every millisecond.
    ///
    /// - Throws: `SystemError` when a socket cannot be set up or bound, a thread
    ///   cannot be started, or a receive thread fails (the others are stopped first).
    public static func run(_ c: ReceiverConfiguration, progressIntervalNanoseconds: UInt64 = 0,
                           ready: (SocketAddress, Int32, Bool) -> Void = { _, _, _ in },
                           progress: @escaping (ReceiveProgress) -> Void = { _ in },
                           metrics: ReceiverMetricsPublisher? = nil,
                           finished: @escaping (FinishedStream) -> Void = { _ in }) throws(SystemError) -> ReceiverReport {
        // Set-up: sockets and workers (a worker's thread starts below).
        let threads = max(1, c.threads)
        let output = c.output.map { OutputTarget($0, expectedStreams: c.streams, maxBytes: c.outputMaxBytes, server: c.server) }
        var facts = ReceiveSocketFacts(listen: c.listen)
        var workers: [ReceiveWorker] = []
        for t in 0..<threads {
            let socket = try ReceiveSockets.open(c, index: t, threads: threads, facts: &facts)
            workers.append(ReceiveWorker(socket: socket, configuration: c, coalescing: facts.groEnabled, receiveBufferBytes: Int(facts.granted),
                                         cpu: c.cpus.flatMap { $0.isEmpty ? nil : $0[t % $0.count] }, output: output, metrics: metrics))
        }
        var conductor = ReceiverConductor(configuration: c, workers: workers, output: output, metrics: metrics, finished: finished)
        ready(facts.bound, facts.granted, facts.groEnabled)

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
        let reason = conductor.run(start: start, progressIntervalNanoseconds: progressIntervalNanoseconds, progress: progress)
        for w in workers { w.stop.store(true, ordering: .relaxed) }
        for r in running { r.join() }
        conductor.collectLast()
        if let membership = facts.membership { try? workers[0].socket.leave(membership) }
        if let failure = workers.lazy.compactMap(\.failure).first { throw failure }
        return ReceiverReport(configuration: c, facts: facts, conductor: &conductor, stopReason: reason, start: start)
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
