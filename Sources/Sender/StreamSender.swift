#if canImport(Glibc)
import Glibc
#endif
import StreamProtocol
import ZCSystem

/// What a finished run reports.
public struct SenderReport: Sendable {
    /// The configuration the run used (with a regular file's size applied to the limit).
    public var configuration: SenderConfiguration
    /// The run's counters.
    public var statistics: SenderStatistics
    /// Faults actually applied; the receiver must report exactly these.
    public var injected: InjectedFaults
    /// Sequence numbers the stream covered (skipped ones included).
    public var sequences: UInt64
    /// Seconds from starting the engine to the end of the run (END and drain included), monotonic.
    public var seconds: Double
    /// Why the run ended.
    public var stopReason: StopReason
    /// Kernel-granted socket send buffer.
    public var sendBufferBytes: Int32
    /// Raw mode's interface, addresses and ring (only for `--engine packet-ring`).
    public var packetRing: PacketRingReport? = nil
    /// The receiver's verdict, when the run waited for it.
    public var receiver: ReceiverAnswer = .notAwaited
}

/// What came back from the receiver after END.
public enum ReceiverAnswer: Sendable, Equatable {
    /// The run did not wait (--no-report, a multicast destination).
    case notAwaited
    /// The REPORT for this stream, and how long after END it came.
    case report(StreamReport, afterNanoseconds: UInt64)
    /// Nothing within the timeout; `why` says what is known (e.g. the port was closed).
    case none(why: String)
}

/// Why a ``StreamSender`` or ``MultiStreamSender`` run failed.
public enum SenderError: ConfigurationError {
    /// A system call failed: socket, ring, pool, thread, or reading the source.
    /// (A send the kernel refuses is counted, not thrown; see ``ErrorPolicy``.)
    case system(SystemError)
    /// The payload source cannot be read.
    case source(PayloadInput.OpenError)
    /// The path cannot carry the configured datagrams (found only once connected).
    case pathMTU(mtu: Int, datagramSize: Int, headers: Int)

    /// One line for the user; usage errors name the property to change (through `name`).
    public func describe(naming name: (String) -> String) -> String {
        switch self {
        case .system(let e): return e.description
        case .source(let e): return e.describe(naming: name)
        case .pathMTU(let mtu, let size, let headers):
            return "\(name("datagramSize")) \(size) is out of range with GSO on this path: allowed up to \(mtu - headers) bytes "
                + "(path MTU \(mtu)); use a smaller \(name("datagramSize")), or \(name("gso")) off to let IP fragment"
        }
    }

    /// True when the error is the user's configuration, not the system.
    public var isUsageError: Bool {
        switch self {
        case .pathMTU, .source: return true
        case .system: return false
        }
    }
}

/// Waits for the receiver's REPORT after END.
enum ReportWait {
    /// Reads datagrams on `socket` until the REPORT of `streamID` from `from` arrives or the
    /// timeout passes; anything else (another stream's REPORT, stray datagrams) is skipped.
    static func await(on socket: borrowing UDPSocket, streamID: UInt64, from: SocketAddress, timeoutNanoseconds: UInt64) -> ReceiverAnswer {
        let start = MonotonicClock.nanoseconds()
        let deadline = start + timeoutNanoseconds
        var buffer = [UInt8](repeating: 0, count: 2048)
        var skipped = 0
        while true {
            let now = MonotonicClock.nanoseconds()
            if now >= deadline || StopFlag.isSet { break }
            let wait = min(deadline - now, 100_000_000)
            let result = buffer.withUnsafeMutableBytes { b in
                Result { () throws(SystemError) in try socket.receive(into: b, timeoutNanoseconds: wait) }
            }
            let got: (length: Int, from: SocketAddress?)?
            switch result {
            case .success(let g): got = g
            case .failure(let error):
                // ECONNREFUSED: an ICMP port unreachable came back, nobody listens there.
                if error.errno == ECONNREFUSED { return .none(why: "the receiver's port is closed (ICMP port unreachable)") }
                return .none(why: "\(error)")
            }
            guard let got else { continue }
            if let sender = got.from, sender.host != from.host || sender.port != from.port { skipped += 1; continue }
            switch StreamReport.decode(Array(buffer[0..<got.length])) {
            case .success(let r) where r.streamID == streamID:
                return .report(r, afterNanoseconds: MonotonicClock.nanoseconds() - start)
            default:
                skipped += 1
            }
        }
        let seconds = Double(timeoutNanoseconds) / 1e9
        return .none(why: "no REPORT within \(seconds) s" + (skipped > 0 ? " (\(skipped) other datagrams ignored)" : ""))
    }
}

/// Runs one stream from configuration to report on the calling thread.
public enum StreamSender {
    /// Sends one whole stream: opens the payload source and the socket, runs the configured
    /// engine until the limit, the source's end or a stop, sends END and waits for every
    /// notification.
    ///
    /// - Parameters:
    ///   - configuration: The stream to send.
    ///   - progressIntervalNanoseconds: How often to call `progress`; 0 never.
    ///   - progress: Called on this thread with the counters so far.
    /// - Returns: The run's report.
    /// - Throws: ``SenderError``.
    public static func run(_ configuration: SenderConfiguration, progressIntervalNanoseconds: UInt64 = 0,
                           progress: @escaping (SendProgress) -> Void = { _ in }) throws(SenderError) -> SenderReport {
        var c = configuration
        let input: PayloadInput?
        do { input = try PayloadInput.open(c.source) } catch { throw .source(error) }
        defer { input?.close() }
        if let size = input?.size {
            // A regular file's size bounds the stream; END will carry it.
            c.limit.payloadBytes = min(c.limit.payloadBytes ?? size, size)
        }
        do {
            let socket = try UDPSocket(family: c.destination.family)
            if c.destination.isMulticast && c.engine != .packetRing { try c.multicast.apply(to: socket) }
            if c.engine != .packetRing { try c.applySourceOptions(to: socket) }
            let awaitReport = c.reportTimeoutNanoseconds != nil && !c.destination.isMulticast
            if awaitReport, c.engine == .packetRing, let ring = c.packetRing {
                // The frames carry this source port: the REPORT comes back to it, and only a
                // socket bound to it (any address) can take it.
                try socket.bind(to: try! SocketAddress.parse(c.destination.family == AF_INET6 ? "[::]:\(ring.sourcePort)" : "0.0.0.0:\(ring.sourcePort)"))
            }
            // packet-ring writes its own frames: the UDP socket stays unconnected.
            if c.engine != .packetRing { try socket.connect(to: c.destination) }
            let granted = socket.setBufferSize(receive: false, bytes: c.sendBufferBytes)
            if c.segmentsPerSend > 1 {
                // GSO segments are never fragmented: each must fit the path MTU.
                if let mtu = socket.pathMTU(), c.datagramSize + c.destination.ipUDPHeaderBytes > mtu {
                    throw SenderError.pathMTU(mtu: mtu, datagramSize: c.datagramSize, headers: c.destination.ipUDPHeaderBytes)
                }
                try socket.setGSOSegment(c.datagramSize)
            }
            var writer = DatagramWriter(streamID: c.streamID, datagramSize: c.datagramSize, limit: c.limit,
                                        faults: c.faults, patternPayload: input == nil, fixedPayload: c.source == .fixed)
            var stats = SenderStatistics()
            let start = MonotonicClock.nanoseconds()
            var ticker = ProgressTicker(intervalNanoseconds: progressIntervalNanoseconds, start: start, report: progress)
            let reason: StopReason
            switch c.engine {
            case .uringZC, .uring, .auto:
                let engine = try UringSendEngine.make(configuration: c, socket: socket, input: input)
                reason = try engine.run(writer: &writer, configuration: c, ticker: &ticker, stats: &stats)
            case .sendmmsg:
                var engine = try SendmmsgEngine(configuration: c)
                reason = try engine.run(socket: socket, input: input, writer: &writer, configuration: c, ticker: &ticker, stats: &stats)
            case .packetRing:
                var report = try PacketRingEngine.runStream(configuration: c, input: input, writer: &writer, ticker: &ticker,
                                                            stats: &stats, start: start)
                if awaitReport { report.receiver = ReportWait.await(on: socket, streamID: c.streamID, from: c.destination, timeoutNanoseconds: c.reportTimeoutNanoseconds!) }
                return report
            }
            let seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
            var report = SenderReport(configuration: c, statistics: stats, injected: writer.injected,
                                      sequences: writer.nextSequence, seconds: seconds, stopReason: reason,
                                      sendBufferBytes: granted)
            if awaitReport && reason != .signal {
                report.receiver = ReportWait.await(on: socket, streamID: c.streamID, from: c.destination, timeoutNanoseconds: c.reportTimeoutNanoseconds!)
            }
            return report
        } catch let error as SenderError {
            throw error
        } catch let error as SystemError {
            throw .system(error)
        } catch {
            fatalError("unexpected error \(error)")
        }
    }
}
