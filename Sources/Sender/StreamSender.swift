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
    /// packet-ring could not start: interface, addresses, MTU, privilege
    /// (``PacketRingSetupError/kind`` says which). Nothing was sent.
    case packetRingSetup(PacketRingSetupError)
    /// Sending failed for a reason other than a system call (a drain that timed out,
    /// a file that changed, a rejected frame).
    case engine(SendEngineError)

    /// One line for the user; usage errors name the property to change (through `name`).
    public func describe(naming name: (String) -> String) -> String {
        switch self {
        case .system(let e): return e.description
        case .engine(let e): return e.description
        case .packetRingSetup(let e): return e.describe(naming: name)
        case .source(let e): return e.describe(naming: name)
        case .pathMTU(let mtu, let size, let headers):
            return "\(name("datagramSize")) \(size) is out of range with GSO on this path: allowed up to \(mtu - headers) bytes "
                + "(path MTU \(mtu)); use a smaller \(name("datagramSize")), or \(name("gso")) off to let IP fragment"
        }
    }

    /// A failed system call stays ``system(_:)``; the rest are ``engine(_:)``.
    init(_ error: SendEngineError) {
        if case .system(let e) = error { self = .system(e) } else { self = .engine(error) }
    }

    /// True when the error is the user's configuration, not the system.
    public var isUsageError: Bool {
        switch self {
        case .pathMTU, .source: return true
        case .packetRingSetup(let e): return e.kind == .badInput
        case .system, .engine: return false
        }
    }
}

/// Waits for the receiver's REPORT after END.
enum ReportWait {
    /// After an ICMP port unreachable, how long to keep reading for a REPORT queued behind it.
    static let refusalGraceNanoseconds: UInt64 = 200_000_000

    /// Reads datagrams on `socket` until the REPORT of `streamID` from `from` arrives or the
    /// timeout passes; anything else (another stream's REPORT, stray datagrams) is skipped.
    static func await(on socket: borrowing UDPSocket, streamID: UInt64, from: SocketAddress, timeoutNanoseconds: UInt64) -> ReceiverAnswer {
        let start = MonotonicClock.nanoseconds()
        let deadline = start + timeoutNanoseconds
        var buffer = [UInt8](repeating: 0, count: 2048)
        var skipped = 0
        var refusedAt: UInt64 = 0
        while true {
            let now = MonotonicClock.nanoseconds()
            if now >= deadline || StopFlag.isSet { break }
            if refusedAt != 0 && now - refusedAt >= Self.refusalGraceNanoseconds {
                return .none(why: "the receiver's port is closed (ICMP port unreachable)")
            }
            let wait = min(deadline - now, 100_000_000, refusedAt != 0 ? refusedAt + Self.refusalGraceNanoseconds - now : .max)
            let result = buffer.withUnsafeMutableBytes { b in
                Result { () throws(SystemError) in try socket.receive(into: b, timeoutNanoseconds: wait) }
            }
            let got: (length: Int, from: SocketAddress?)?
            switch result {
            case .success(let g): got = g
            case .failure(let error):
                // ECONNREFUSED: an ICMP port unreachable came back. Linux reports a pending
                // ICMP error before datagrams already queued, so a REPORT may still be
                // waiting behind it: read on for a moment before believing the port is closed.
                if error.errno == ECONNREFUSED {
                    if refusedAt == 0 { refusedAt = MonotonicClock.nanoseconds() }
                    continue
                }
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
        if StopFlag.isSet { return .none(why: "stopped by a signal while waiting for the REPORT") }
        let seconds = Double(timeoutNanoseconds) / 1e9
        return .none(why: "no REPORT within \(seconds) s" + (skipped > 0 ? " (\(skipped) other datagrams ignored)" : ""))
    }
}

/// Runs one stream from configuration to report on the calling thread.
public enum StreamSender {
    /// Sends one whole stream: opens the payload source, the socket and the engine,
    /// and lets a ``StreamDriver`` fill what the engine lends until the limit, the
    /// source's end or a stop, send END and wait until the kernel is done with every slot.
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
        let awaitReport = c.reportTimeoutNanoseconds != nil && !c.destination.isMulticast
        let writer = DatagramWriter(streamID: c.streamID, datagramSize: c.datagramSize, limit: c.limit,
                                    faults: c.faults, patternPayload: input == nil, fixedPayload: c.source == .fixed)
        func drive<Engine: SendEngine>(_ engine: Engine, sendBufferBytes: Int32) throws(SendEngineError) -> SenderReport {
            try StreamSender.drive(engine, writer: writer, input: input, configuration: c, sendBufferBytes: sendBufferBytes,
                                   progressIntervalNanoseconds: progressIntervalNanoseconds, progress: progress)
        }
        func awaitAnswer(_ report: inout SenderReport, on socket: borrowing UDPSocket) {
            guard awaitReport && report.stopReason != .signal else { return }
            report.receiver = ReportWait.await(on: socket, streamID: c.streamID, from: c.destination, timeoutNanoseconds: c.reportTimeoutNanoseconds!)
        }
        do {
            if c.engine == .packetRing {
                // packet-ring writes its own frames: a UDP socket only takes the REPORT back.
                guard let options = c.packetRing else {
                    throw SenderError.packetRingSetup(.init(kind: .badInput, message: "{engine} packet-ring needs {packetRing.interface}", errno: EINVAL))
                }
                var target: PacketRingTarget
                if let resolved = options.resolvedTarget {
                    target = resolved
                    target.addressing.sourcePort = options.sourcePort
                } else {
                    do { target = try PacketRingTarget.resolve(options, destination: c.destination, datagramSize: c.datagramSize, gso: c.gso) }
                    catch { throw SenderError.packetRingSetup(error) }
                }
                let engine = try PacketRingEngine(configuration: c, target: target)
                guard awaitReport else { return try drive(engine, sendBufferBytes: engine.sendBufferBytes) }
                // The frames carry this source port: the REPORT comes back to it, and only a
                // socket bound to it (any address) can take it, bound before the first frame.
                let socket = try UDPSocket(family: c.destination.family)
                try socket.bind(to: try! SocketAddress.parse(c.destination.family == AF_INET6 ? "[::]:\(options.sourcePort)" : "0.0.0.0:\(options.sourcePort)"))
                var report = try drive(engine, sendBufferBytes: engine.sendBufferBytes)
                awaitAnswer(&report, on: socket)
                return report
            }
            let socket = try openSocket(c)
            let granted = socket.setBufferSize(receive: false, bytes: c.sendBufferBytes)
            var report: SenderReport
            switch c.engine {
            case .uringZC, .uring, .auto:
                report = try drive(UringSendEngine.make(configuration: c, socket: socket), sendBufferBytes: granted)
            case .sendmmsg:
                report = try drive(SendmmsgEngine(configuration: c, socket: socket), sendBufferBytes: granted)
            case .packetRing:
                preconditionFailure("handled above")
            }
            awaitAnswer(&report, on: socket)
            return report
        } catch let error as SenderError {
            throw error
        } catch let error as SystemError {
            throw .system(error)
        } catch let error as SendEngineError {
            throw SenderError(error)
        } catch {
            fatalError("unexpected error \(error)")
        }
    }

    /// The UDP socket of the socket engines: source options, connected, GSO set up.
    private static func openSocket(_ c: SenderConfiguration) throws -> UDPSocket {
        let socket = try UDPSocket(family: c.destination.family)
        if c.destination.isMulticast { try c.multicast.apply(to: socket) }
        try c.applySourceOptions(to: socket)
        try socket.connect(to: c.destination)
        if c.segmentsPerSend > 1 {
            // GSO segments are never fragmented: each must fit the path MTU.
            if let mtu = socket.pathMTU(), c.datagramSize + c.destination.ipUDPHeaderBytes > mtu {
                throw SenderError.pathMTU(mtu: mtu, datagramSize: c.datagramSize, headers: c.destination.ipUDPHeaderBytes)
            }
            try socket.setGSOSegment(c.datagramSize)
        }
        return socket
    }

    /// The one run loop, specialised per engine.
    private static func drive<Engine: SendEngine>(_ engine: Engine, writer: consuming DatagramWriter, input: PayloadInput?,
                                                  configuration c: SenderConfiguration, sendBufferBytes: Int32,
                                                  progressIntervalNanoseconds: UInt64,
                                                  progress: @escaping (SendProgress) -> Void) throws(SendEngineError) -> SenderReport {
        var driver = StreamDriver(engine: engine, writer: writer, rate: c.rate, endRepeats: c.endRepeats)
        var ticker = ProgressTicker(intervalNanoseconds: progressIntervalNanoseconds, start: driver.start, report: progress)
        let reason = try driver.run(source: input, limits: ProductionLimits(c, start: driver.start),
                                    flushIntervalNanoseconds: c.flushIntervalNanoseconds, ticker: &ticker)
        return driver.report(configuration: c, reason: reason, sendBufferBytes: sendBufferBytes)
    }
}

/// The receiver's REPORT held against what this sender sent. A REPORT is the receiver's
/// word on what it saw; only the sender knows how many datagrams the stream had. A REPORT
/// that saw no END, or counts fewer datagrams than were sent (it came before the END, or
/// the receiver gave up on an idle stream), does not cover the stream: what it did not
/// see is lost, whatever its own `lost` says.
public struct ReceiverCoverage: Sendable, Equatable {
    /// The REPORT's END totals match what was sent (the receiver accounted every sequence).
    public var coversStream: Bool
    /// Datagrams the receiver lacks of those sent: the REPORT's `lost`, or, when it does not
    /// cover the stream, every sequence number sent that it did not count unique.
    public var lost: UInt64
    /// ``lost`` in percent of the sequence numbers sent.
    public var lossPercent: Double
    /// Why the REPORT does not cover the stream (nil when it does).
    public var shortfall: String?

    /// `report` judged against `sent` sequence numbers.
    public init(_ report: StreamReport, sent: UInt64) {
        if !report.endSeen {
            shortfall = "the receiver saw no END: it accounted \(report.unique) of \(sent) datagrams sent"
        } else if report.expectedDatagrams != sent {
            shortfall = "the receiver's END total is \(report.expectedDatagrams), \(sent) were sent"
        }
        coversStream = shortfall == nil
        lost = coversStream ? report.lost : max(report.lost, sent - min(sent, report.unique))
        let total = coversStream ? report.expectedDatagrams : sent
        lossPercent = total == 0 ? 0 : Double(lost) / Double(total) * 100
    }
}

extension SenderReport {
    /// The receiver's REPORT against what this stream sent (nil: no REPORT).
    public var receiverCoverage: ReceiverCoverage? {
        guard case .report(let r, _) = receiver else { return nil }
        return ReceiverCoverage(r, sent: sequences)
    }
}
