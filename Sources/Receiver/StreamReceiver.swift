#if canImport(Glibc)
import Glibc
#endif
import CURing
import ZCSystem

public enum ReceiverStopReason: String, Sendable {
    case streamsComplete = "streams_complete"
    case linger
    case idle
    case timeout
    case signal
}

/// A finished receiver run.
public struct ReceiverReport: Sendable {
    public var configuration: ReceiverConfiguration
    public var boundAddress: SocketAddress
    public var core: ValidatingCore
    public var stopReason: ReceiverStopReason
    public var receiveBufferBytes: Int32
    public var groEnabled: Bool
    public var wallSeconds: Double

    /// Seconds from the first to the last intact data datagram.
    public var dataSeconds: Double {
        core.lastDataNanoseconds > core.firstDataNanoseconds
            ? Double(core.lastDataNanoseconds - core.firstDataNanoseconds) / 1e9 : 0
    }
}

/// Progress snapshot handed to the caller every interval.
public struct ReceiveProgress: Sendable {
    public var elapsedNanoseconds: UInt64
    public var datagrams: UInt64
    public var bytes: UInt64
    public var lostSoFar: UInt64
    public var corrupt: UInt64
    public var invalid: UInt64
    public var kernelDrops: UInt64
}

public enum StreamReceiver {
    /// Binds, then calls `ready` with the bound address (tests and scripts wait for
    /// it), receives until a stop condition, and reports.
    public static func run(_ c: ReceiverConfiguration, progressIntervalNanoseconds: UInt64 = 0,
                           ready: (SocketAddress, Int32, Bool) -> Void = { _, _, _ in },
                           progress: @escaping (ReceiveProgress) -> Void = { _ in }) throws(SystemError) -> ReceiverReport {
        let socket = try UDPSocket(family: c.listen.family)
        let granted = socket.setBufferSize(receive: true, bytes: c.receiveBufferBytes)
        var groEnabled = false
        if c.gro {
            groEnabled = (try? socket.setOption(level: Int32(IPPROTO_UDP), name: zc_udp_gro, value: 1, call: "UDP_GRO")) != nil
        }
        try socket.setOption(level: SOL_SOCKET, name: zc_so_rxq_ovfl, value: 1, call: "SO_RXQ_OVFL")
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        if setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) != 0 {
            throw SystemError(call: "setsockopt(SO_RCVTIMEO)")
        }
        try socket.bind(to: c.listen)
        let bound = try socket.localAddress()
        ready(bound, granted, groEnabled)

        var core = ValidatingCore(maxStreams: c.maxStreams)
        let start = MonotonicClock.nanoseconds()
        var reason = ReceiverStopReason.signal
        var allEndedAt: UInt64 = 0
        var nextProgress = progressIntervalNanoseconds == 0 ? UInt64.max : start + progressIntervalNanoseconds

        let engine = RecvmmsgEngine()
        try engine.run(socket: socket, core: &core) { core, now in
            if now >= nextProgress {
                nextProgress = now + progressIntervalNanoseconds
                progress(snapshot(core, elapsed: now - start))
            }
            if StopFlag.isSet { reason = .signal; return true }
            if let limit = c.timeoutNanoseconds, now - start >= limit { reason = .timeout; return true }
            if let wanted = c.streams, core.streamsEnded >= wanted {
                if core.allComplete(streams: wanted) { reason = .streamsComplete; return true }
                if allEndedAt == 0 { allEndedAt = now }
                if now - allEndedAt >= c.lingerNanoseconds { reason = .linger; return true }
            }
            let last = max(core.lastDataNanoseconds, core.streamsEnded > 0 ? allEndedAt : 0)
            if last > 0 && now - last >= c.idleTimeoutNanoseconds { reason = .idle; return true }
            return false
        }
        return ReceiverReport(configuration: c, boundAddress: bound, core: core, stopReason: reason,
                              receiveBufferBytes: granted, groEnabled: groEnabled,
                              wallSeconds: Double(MonotonicClock.nanoseconds() - start) / 1e9)
    }

    static func snapshot(_ core: ValidatingCore, elapsed: UInt64) -> ReceiveProgress {
        var p = ReceiveProgress(elapsedNanoseconds: elapsed, datagrams: 0, bytes: 0, lostSoFar: 0,
                                corrupt: core.statistics.corruptUnattributed, invalid: core.statistics.invalidTotal,
                                kernelDrops: core.statistics.kernelDrops)
        for s in core.streams {
            p.datagrams += s.datagrams
            p.bytes += s.bytes
            p.lostSoFar += s.tracker.lostFinal
            p.corrupt += s.corrupt
        }
        return p
    }
}
