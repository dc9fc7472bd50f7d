#if canImport(Glibc)
import Glibc
#endif
import ZCSystem

/// What a finished run reports.
public struct SenderReport: Sendable {
    public var configuration: SenderConfiguration
    public var statistics: SenderStatistics
    public var injected: InjectedFaults
    /// Sequence numbers the stream covered (skipped ones included).
    public var sequences: UInt64
    public var seconds: Double
    public var stopReason: StopReason
    /// Kernel-granted socket send buffer.
    public var sendBufferBytes: Int32
}

public enum SenderError: Error, CustomStringConvertible {
    case system(SystemError)
    public var description: String {
        switch self {
        case .system(let e): return e.description
        }
    }
}

/// Runs one stream from configuration to report on the calling thread.
public enum StreamSender {
    public static func run(_ c: SenderConfiguration, progressIntervalNanoseconds: UInt64 = 0,
                           progress: @escaping (SendProgress) -> Void = { _ in }) throws(SenderError) -> SenderReport {
        do {
            let socket = try UDPSocket(family: c.destination.family)
            try socket.connect(to: c.destination)
            let granted = socket.setBufferSize(receive: false, bytes: c.sendBufferBytes)
            if c.segmentsPerSend > 1 { try socket.setGSOSegment(c.datagramSize) }
            var writer = DatagramWriter(streamID: c.streamID, datagramSize: c.datagramSize, limit: c.limit, faults: c.faults)
            var stats = SenderStatistics()
            let start = MonotonicClock.nanoseconds()
            var ticker = ProgressTicker(intervalNanoseconds: progressIntervalNanoseconds, start: start, report: progress)
            let reason: StopReason
            switch c.engine {
            case .uringZC, .uring:
                let engine = try UringSendEngine.make(configuration: c, socket: socket)
                reason = try engine.run(writer: &writer, configuration: c, ticker: &ticker, stats: &stats)
            case .sendmmsg:
                var engine = try SendmmsgEngine(configuration: c)
                reason = try engine.run(socket: socket, writer: &writer, configuration: c, ticker: &ticker, stats: &stats)
            }
            let seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
            return SenderReport(configuration: c, statistics: stats, injected: writer.injected,
                                sequences: writer.nextSequence, seconds: seconds, stopReason: reason,
                                sendBufferBytes: granted)
        } catch {
            throw .system(error)
        }
    }
}
