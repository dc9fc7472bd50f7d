#if canImport(Glibc)
import Glibc
#endif
import StreamProtocol
import ZCSystem

/// What a finished run reports.
public struct SenderReport: Sendable {
    /// The configuration the run used.
    public var configuration: SenderConfiguration
    /// A pulled stream's content and limits (a regular file's size applied to the limit);
    /// nil for a pushed stream.
    public var content: StreamContent?
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
    /// A reliable stream's delivery: acknowledgements, repairs, RTT, what never arrived
    /// (nil for a plain stream).
    public var reliability: ReliabilityReport? = nil
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
    case source(SourceOpenError)
    /// The path cannot carry the configured datagrams (found only once connected).
    case pathMTU(mtu: Int, datagramSize: Int, headers: Int)
    /// packet-ring could not start: interface, addresses, MTU, privilege
    /// (``PacketRingSetupError/kind`` says which). Nothing was sent.
    case packetRingSetup(PacketRingSetupError)
    /// Sending failed for a reason other than a system call (a drain that timed out,
    /// a file that changed, a rejected frame).
    case engine(SendEngineError)
    /// `reliability` with what cannot carry it: the reason, naming nothing else.
    case reliabilityUnsupported(String)

    /// One line for the user; usage errors name the property to change (through `name`).
    public func describe(naming name: (String) -> String) -> String {
        switch self {
        case .system(let e): return e.description
        case .engine(let e): return e.description
        case .packetRingSetup(let e): return e.describe(naming: name)
        case .source(let e): return e.describe(naming: name)
        case .reliabilityUnsupported(let why): return "\(name("reliability")): \(why)"
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
        case .pathMTU, .source, .reliabilityUnsupported: return true
        case .packetRingSetup(let e): return e.kind == .badInput
        case .system, .engine: return false
        }
    }
}

/// Runs one stream from configuration to report on the calling thread.
public enum StreamSender {
    /// Sends one whole stream: opens the payload source and a ``SenderSession`` (socket or
    /// ring, and the engine), lets a ``StreamDriver`` fill what the engine lends until the
    /// limit, the source's end or a stop, sends END, waits until the kernel is done with
    /// every slot, and then (when configured) for the receiver's REPORT.
    ///
    /// - Parameters:
    ///   - configuration: How the stream reaches the wire.
    ///   - content: What it carries and when it ends.
    ///   - progressIntervalNanoseconds: How often to call `progress`; 0 never.
    ///   - progress: Called on this thread with the counters so far.
    /// - Returns: The run's report.
    /// - Throws: ``SenderError``.
    public static func run(_ configuration: SenderConfiguration, content: StreamContent, progressIntervalNanoseconds: UInt64 = 0,
                           progress: @escaping (SendProgress) -> Void = { _ in }) throws(SenderError) -> SenderReport {
        try withPullRun(configuration, content: content, progressIntervalNanoseconds: progressIntervalNanoseconds, progress: progress) {
            c, body throws(SenderError) in try SenderSession.open(c, body)
        }
    }

    /// The same run on an engine `make` builds (tests: an engine of their own).
    package static func run<Engine: SendEngine>(_ configuration: SenderConfiguration, content: StreamContent,
                                                engine make: (SenderSession) throws(SystemError) -> Engine) throws(SenderError) -> SenderReport {
        try withPullRun(configuration, content: content, progressIntervalNanoseconds: 0, progress: { _ in }) {
            c, body throws(SenderError) in try SenderSession.open(c, engine: make, body)
        }
    }

    /// Opens the source, bounds the stream by a regular file's size, and runs `open` with
    /// the pull body.
    private static func withPullRun(_ configuration: SenderConfiguration, content: StreamContent, progressIntervalNanoseconds: UInt64,
                                    progress: @escaping (SendProgress) -> Void,
                                    _ open: (SenderConfiguration, PullRun) throws(SenderError) -> SenderReport) throws(SenderError) -> SenderReport {
        var content = content
        let input: PayloadInput?
        do { input = try PayloadInput.open(content.source) } catch { throw .source(error) }
        defer { input?.close() }
        if let size = input?.size {
            // A regular file's size bounds the stream; END will carry it.
            content.limit.payloadBytes = min(content.limit.payloadBytes ?? size, size)
        }
        return try open(configuration, PullRun(content: content, input: input, progressIntervalNanoseconds: progressIntervalNanoseconds,
                                               progress: progress))
    }
}

/// The pull run on a session's engine: produce until a limit, the source's end or a stop,
/// END and drain, then the receiver's REPORT.
struct PullRun: SenderSessionBody {
    let content: StreamContent
    let input: PayloadInput?
    let progressIntervalNanoseconds: UInt64
    let progress: (SendProgress) -> Void

    func run<Engine: SendEngine>(_ engine: Engine, in session: SenderSession) throws(SenderError) -> SenderReport {
        let c = session.configuration
        if c.reliability != nil && !content.faults.isEmpty {
            throw .reliabilityUnsupported("fault injection cannot be repaired (a skipped datagram was never written); drop datagrams on the path instead (nftables)")
        }
        let writer = DatagramWriter(streamID: c.streamID, datagramSize: c.datagramSize, limit: content.limit,
                                    faults: content.faults, patternPayload: input == nil, fixedPayload: content.source == .fixed,
                                    reliable: c.reliability != nil, keying: session.keying)
        var driver = StreamDriver(engine: engine, writer: writer, rate: c.rate, endRepeats: c.endRepeats,
                                  reliable: try session.reliableDelivery(for: engine))
        var ticker = ProgressTicker(intervalNanoseconds: progressIntervalNanoseconds, start: driver.start, report: progress)
        var report: SenderReport
        do {
            var reason = try driver.run(source: input, limits: ProductionLimits(c, limit: content.limit, start: driver.start),
                                        flushIntervalNanoseconds: content.flushIntervalNanoseconds, ticker: &ticker)
            try driver.finish()
            // A stop request decides, even when the source ended right after it (Ctrl-C on
            // `cmd | zc-send --source -` also ends the writer: EOF follows the signal).
            if reason == .limit && StopFlag.isSet { reason = .signal }
            report = driver.report(configuration: c, reason: reason, sendBufferBytes: session.sendBufferBytes)
            report.content = content
        } catch {
            throw SenderError(error)
        }
        session.awaitReport(&report, reliable: driver.reliable)
        return report
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
