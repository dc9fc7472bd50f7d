#if canImport(Glibc)
import Glibc
#endif
import StreamProtocol
import ZCSystem

/// A stream an application writes into directly: the library's fill-in-place
/// sender.
///
/// Each ``send(_:)`` lends the producer the payload area of the next datagram,
/// which lies inside a registered buffer slot; the producer writes its bytes there
/// and returns how many. The library writes the header and CRC32C in front, packs
/// full-size datagrams into one GSO send, submits it with `SEND_ZC`, and makes the
/// slot available again only when the kernel's notification says the NIC is done
/// with it. The producer's bytes are never copied in user space.
///
/// ```swift
/// let stream = try OutboundStream(configuration)
/// try stream.send { payload in
///     sensor.read(into: payload)      // returns the byte count written
/// }
/// let report = try stream.finish()    // END, wait for every notification
/// ```
///
/// Back-pressure is explicit: when every slot is in flight, `send` waits for a
/// notification (``OutboundStream/BackPressure/wait``) or throws
/// ``OutboundStreamError/wouldBlock`` (``OutboundStream/BackPressure/fail``).
///
/// With `engine: .sendmmsg` the payload area lies in the copying engine's own batch
/// memory: the kernel copies at the call, so the slot is free again at once (without
/// GSO, datagrams go 64 to a `sendmmsg`; ``flush()`` sends what is queued).
///
/// With `engine: .packetRing` (and ``SenderConfiguration/packetRing`` set) the
/// payload area lies inside a frame of the AF_PACKET TX ring the kernel sends
/// from, one datagram per frame (no GSO). After the producer wrote it, the library
/// seals the datagram, writes the Ethernet/IPv4/UDP headers and checksums,
/// publishes the frame, and kicks the kernel every few frames, on ``flush()``,
/// before the pacer sleeps, and when the ring is full (back-pressure then waits
/// for a frame to come back, or throws `wouldBlock`). Datagrams count in
/// ``statistics`` once the kernel took their frame.
///
/// Every engine goes through the same ``StreamDriver``: packing, sealing, pacing, END
/// and the drain are written once; the driver is specialised for each engine.
///
/// One thread owns an `OutboundStream` (the ring is single-issuer); it is not
/// `Sendable`.
public final class OutboundStream {
    /// What a producer experiences when no slot is free.
    public enum BackPressure: Sendable {
        /// Wait for the kernel to release a slot.
        case wait
        /// Throw ``OutboundStreamError/wouldBlock`` at once.
        case fail
    }

    /// The configuration the stream was opened with.
    public let configuration: SenderConfiguration
    private let transport: OutboundTransport

    /// Largest payload one datagram carries: the datagram size less the header.
    public var maxPayload: Int { configuration.datagramSize - DatagramHeader.size - (configuration.key == nil ? 0 : AuthTrailer.size) }
    /// Counters so far (datagrams count once the kernel accepted their send).
    public var statistics: SenderStatistics { transport.statistics }
    /// Slots (packet-ring: frames) the kernel has not released yet.
    public var slotsInFlight: Int { transport.slotsInFlight }
    /// Datagrams handed to `send` so far (the next sequence number).
    public var sequence: UInt64 { transport.sequence }

    /// Opens a ``SenderSession`` for the configuration — the socket (path MTU and GSO
    /// checked) or the TX ring (interface, addresses and privilege resolved first, failures
    /// thrown as ``OutboundStreamError/packetRingSetup(_:)``) — and the engine's memory: the
    /// registered pool (`uring-zc`, `uring`, `auto`), the copying batch (`sendmmsg`), or the
    /// ring's frames (`packet-ring`).
    ///
    /// - Parameter backPressure: what ``send(_:)`` does when every slot is in flight.
    public init(_ configuration: SenderConfiguration, backPressure: BackPressure = .wait) throws(OutboundStreamError) {
        self.configuration = configuration
        do { transport = try SenderSession.open(configuration, PushOpen(backPressure: backPressure)) }
        catch { throw OutboundStreamError(error) }
    }

    /// The same on an engine `make` builds (tests: an engine of their own).
    package init<Engine: SendEngine>(_ configuration: SenderConfiguration, backPressure: BackPressure = .wait,
                                     engine make: (SenderSession) throws(SystemError) -> Engine) throws(OutboundStreamError) {
        self.configuration = configuration
        do { transport = try SenderSession.open(configuration, engine: make, PushOpen(backPressure: backPressure)) }
        catch { throw OutboundStreamError(error) }
    }

    /// Lends `fill` the payload area of the next datagram (``maxPayload`` bytes of
    /// the memory the kernel sends from) and sends what it wrote.
    ///
    /// - Parameter fill: writes the payload and returns its length (0...maxPayload).
    ///   The buffer is valid only during the call: the library seals and sends it
    ///   afterwards and the kernel may read it until its notification.
    /// - Throws: ``OutboundStreamError/payloadTooLarge(_:max:)`` if `fill` claims
    ///   more than it was lent, ``OutboundStreamError/finished`` after ``finish()``,
    ///   ``OutboundStreamError/wouldBlock`` when every slot is in flight and the
    ///   configuration says not to wait, and ``OutboundStreamError/producer(_:)``
    ///   wrapping an error `fill` threw (nothing is sent then).
    @inline(__always)
    public func send(_ fill: (UnsafeMutableRawBufferPointer) throws -> Int) throws(OutboundStreamError) {
        try transport.send(fill)
    }

    /// Sends a copy of `bytes` (the convenience path; ``send(_:)`` avoids the copy).
    public func send(copying bytes: UnsafeRawBufferPointer) throws(OutboundStreamError) {
        guard bytes.count <= maxPayload else { throw .payloadTooLarge(bytes.count, max: maxPayload) }
        try send { area in
            if let base = bytes.baseAddress, bytes.count > 0 { area.baseAddress!.copyMemory(from: base, byteCount: bytes.count) }
            return bytes.count
        }
    }

    /// Sends a copy of `bytes`.
    public func send(copying bytes: [UInt8]) throws(OutboundStreamError) {
        // withUnsafeBytes rethrows untyped errors; only ours can come out of it.
        do { try bytes.withUnsafeBytes { try send(copying: $0) } }
        catch let error as OutboundStreamError { throw error }
        catch { preconditionFailure("unexpected error \(error)") }
    }

    /// Sends the slot being packed, even if it holds fewer datagrams than a full GSO
    /// send, and everything queued (packet-ring: kicks the kernel to send every
    /// published frame), then takes in completions. Call it when latency matters more
    /// than batching (e.g. at the end of a burst).
    public func flush() throws(OutboundStreamError) {
        try transport.flush()
    }

    /// Ends the stream: flushes, sends END (with the totals) ``SenderConfiguration/endRepeats``
    /// times, waits until the kernel released every slot, and reports. The stream
    /// cannot be used afterwards.
    public func finish() throws(OutboundStreamError) -> SenderReport {
        try transport.finish()
    }
}

/// Opens a pushed stream on a session's engine.
struct PushOpen: SenderSessionBody {
    let backPressure: OutboundStream.BackPressure

    func run<Engine: SendEngine>(_ engine: Engine, in session: SenderSession) throws(SenderError) -> OutboundTransport {
        PushedStream(engine, session: session, waits: backPressure == .wait, reliable: try session.reliableDelivery(for: engine))
    }
}

/// The engine-independent face of a pushed stream, for ``OutboundStream``.
class OutboundTransport {
    var statistics: SenderStatistics { fatalError("abstract") }
    var slotsInFlight: Int { fatalError("abstract") }
    var sequence: UInt64 { fatalError("abstract") }
    func send(_ fill: (UnsafeMutableRawBufferPointer) throws -> Int) throws(OutboundStreamError) { fatalError("abstract") }
    func flush() throws(OutboundStreamError) { fatalError("abstract") }
    func finish() throws(OutboundStreamError) -> SenderReport { fatalError("abstract") }
}

/// One engine's pushed stream: a ``StreamDriver`` fed one datagram at a time.
final class PushedStream<Engine: SendEngine>: OutboundTransport {
    private var driver: StreamDriver<Engine>
    private let session: SenderSession
    /// Back-pressure: wait for a slot, or throw ``OutboundStreamError/wouldBlock``.
    private let waits: Bool
    private var finished = false

    init(_ engine: Engine, session: SenderSession, waits: Bool, reliable: ReliableDelivery?) {
        self.waits = waits
        let c = session.configuration
        let writer = DatagramWriter(streamID: c.streamID, datagramSize: c.datagramSize,
                                    limit: StreamLimit(), faults: FaultInjection(), patternPayload: false,
                                    reliable: c.reliability != nil, keying: session.keying)
        driver = StreamDriver(engine: engine, writer: writer, rate: c.rate, endRepeats: c.endRepeats,
                              reliable: reliable)
        self.session = session
    }

    override var statistics: SenderStatistics { driver.stats }
    override var slotsInFlight: Int { driver.engine.inFlight }
    override var sequence: UInt64 { driver.writer.nextSequence }

    // The vtable entry is generic; these make it jump to code specialised for each engine.
    // Only speed depends on them (measured with Tools/bench-ab, daq-producer uring-zc: a
    // closure made where Engine is concrete instead cost 7-9 %, a reabstraction thunk and
    // a free per datagram); an engine without a line here works, generically.
    @_specialize(where Engine == UringSendEngine)
    @_specialize(where Engine == SendmmsgEngine)
    @_specialize(where Engine == PacketRingEngine)
    override func send(_ fill: (UnsafeMutableRawBufferPointer) throws -> Int) throws(OutboundStreamError) {
        guard !finished else { throw .finished }
        let datagram: UnsafeMutableRawPointer?
        do { datagram = try driver.lendDatagram(wait: waits) } catch { throw .init(error) }
        guard let datagram else { throw .wouldBlock }
        let maxPayload = driver.maxPayload
        let written: Int
        do { written = try fill(UnsafeMutableRawBufferPointer(start: datagram + DatagramHeader.size, count: maxPayload)) } catch {
            driver.abandonPushed()
            throw .producer(String(describing: error))
        }
        guard written >= 0 && written <= maxPayload else {
            driver.abandonPushed()
            throw .payloadTooLarge(written, max: maxPayload)
        }
        do { try driver.sealPushed(payload: written) } catch { throw .init(error) }
    }

    override func flush() throws(OutboundStreamError) {
        guard !finished else { return }
        do { try driver.flush() } catch { throw .init(error) }
    }

    override func finish() throws(OutboundStreamError) -> SenderReport {
        guard !finished else { throw .finished }
        finished = true
        do { try driver.finish() } catch { throw .init(error) }
        var report = driver.report(configuration: session.configuration, reason: .limit, sendBufferBytes: session.sendBufferBytes)
        session.awaitReport(&report, reliable: driver.reliable)
        return report
    }

    deinit {
        // A stream dropped without finish(): the kernel may still read slots (or ring
        // frames), so wait for them before the memory is unmapped.
        guard !finished else { return }
        try? driver.flush()
        try? driver.drain()
    }
}

/// Why an ``OutboundStream`` call failed.
public enum OutboundStreamError: Error, Equatable, CustomStringConvertible {
    /// The producer claimed more bytes than the payload area holds.
    case payloadTooLarge(Int, max: Int)
    /// Every slot is in flight and the configuration says not to wait.
    case wouldBlock
    /// The stream was finished; open a new one.
    case finished
    /// packet-ring could not start: interface, addresses, MTU, privilege
    /// (``PacketRingSetupError/kind`` says which), or the ring itself.
    case packetRingSetup(PacketRingSetupError)
    /// The producer's closure threw (its description); nothing was sent.
    case producer(String)
    /// A system call failed (socket, ring, registration, send).
    case system(SystemError)
    /// Sending failed for a reason other than a system call (a drain that timed out,
    /// a frame the packet ring's interface rejected).
    case engine(SendEngineError)
    /// The path cannot carry the configured datagrams with GSO (each segment must fit the
    /// path MTU less `headers`).
    case pathMTU(mtu: Int, datagramSize: Int, headers: Int)
    /// `reliability` with what cannot carry it (the reason).
    case reliabilityUnsupported(String)

    init(_ error: SendEngineError) {
        if case .system(let e) = error { self = .system(e) } else { self = .engine(error) }
    }

    /// A session that could not open, or an engine that failed, as a pushed stream says it.
    init(_ error: SenderError) {
        switch error {
        case .system(let e): self = .system(e)
        case .engine(let e): self = .engine(e)
        case .packetRingSetup(let e): self = .packetRingSetup(e)
        case .pathMTU(let mtu, let size, let headers): self = .pathMTU(mtu: mtu, datagramSize: size, headers: headers)
        case .reliabilityUnsupported(let why): self = .reliabilityUnsupported(why)
        case .source: preconditionFailure("a pushed stream has no source")
        }
    }

    /// One line for a person: what failed and, for ranges, what is allowed.
    public var description: String {
        switch self {
        case .payloadTooLarge(let n, let max): return "payload of \(n) bytes is out of range: allowed 0...\(max)"
        case .wouldBlock: return "every slot is in flight (back-pressure: fail)"
        case .finished: return "the stream is finished"
        case .packetRingSetup(let e): return e.message
        case .producer(let why): return "the producer failed: \(why)"
        case .system(let e): return e.description
        case .engine(let e): return e.description
        case .reliabilityUnsupported(let why): return "reliability: \(why)"
        case .pathMTU(let mtu, let size, let headers):
            return "datagram size \(size) is out of range with GSO on this path: allowed up to \(mtu - headers) bytes (path MTU \(mtu))"
        }
    }
}
