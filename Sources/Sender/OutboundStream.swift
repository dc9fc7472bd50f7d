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
/// notification (``SenderConfiguration/BackPressure/wait``) or throws
/// ``OutboundStreamError/wouldBlock`` (``SenderConfiguration/BackPressure/fail``).
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
/// One thread owns an `OutboundStream` (the ring is single-issuer); it is not
/// `Sendable`.
public final class OutboundStream {
    /// The configuration the stream was opened with.
    public let configuration: SenderConfiguration
    // The transport: exactly one of the two is set. Plain `let`s rather than an
    // enum, so the io_uring hot path reads its engine without a retain/release
    // per send (binding an enum payload costs one, ~3% of a datagram).
    private let socket: UDPSocket?
    private let uring: UringSendEngine?
    private let packetRing: PacketRingEngine?
    @inline(__always) private var engine: UringSendEngine { uring.unsafelyUnwrapped }
    @inline(__always) private var ring: PacketRingEngine { packetRing.unsafelyUnwrapped }
    private var writer: DatagramWriter
    private var pacer: Pacer?
    private var stats = SenderStatistics()
    private let start = MonotonicClock.nanoseconds()

    // The slot being packed: full-size datagrams back to back.
    private var slot: Int?
    private var slotBytes = 0
    private var slotDatagrams = 0
    private var finished = false

    /// Largest payload one datagram carries: the datagram size less the header.
    public var maxPayload: Int { configuration.datagramSize - DatagramHeader.size }
    /// Counters so far (datagrams count once the kernel accepted their send).
    public var statistics: SenderStatistics { stats }
    /// Slots (packet-ring: frames) the kernel has not released yet.
    public var slotsInFlight: Int { packetRing?.framesInFlight ?? engine.slotsInFlight }
    /// Datagrams handed to `send` so far (the next sequence number).
    public var sequence: UInt64 { writer.nextSequence }

    /// Opens the socket, the ring and the registered pool. The io_uring engines
    /// (`uring-zc`, `uring`) lend registered memory; `packet-ring` lends TX ring
    /// frames (it resolves the interface, addresses and privilege first and throws
    /// ``OutboundStreamError/packetRingSetup(_:)`` when they do not work out).
    public init(_ configuration: SenderConfiguration) throws(OutboundStreamError) {
        self.configuration = configuration
        switch configuration.engine {
        case .uringZC, .uring, .auto:
            do {
                let socket = try UDPSocket(family: configuration.destination.family)
                if configuration.destination.isMulticast { try configuration.multicast.apply(to: socket) }
                try configuration.applySourceOptions(to: socket)
                try socket.connect(to: configuration.destination)
                socket.setBufferSize(receive: false, bytes: configuration.sendBufferBytes)
                if configuration.segmentsPerSend > 1 { try socket.setGSOSegment(configuration.datagramSize) }
                uring = try UringSendEngine.make(configuration: configuration, socket: socket)
                self.socket = .some(consume socket)
            } catch {
                throw .system(error)
            }
            packetRing = nil
        case .packetRing:
            guard let options = configuration.packetRing else {
                throw .packetRingSetup(PacketRingSetupError(kind: .badInput, message: "engine packet-ring needs configuration.packetRing (the interface)",
                                                            errno: EINVAL))
            }
            let target: PacketRingTarget
            do { target = try PacketRingTarget.resolve(options, destination: configuration.destination, datagramSize: configuration.datagramSize) }
            catch { throw .packetRingSetup(error) }
            do { packetRing = try PacketRingEngine(configuration: configuration, target: target) }
            catch { throw .packetRingSetup(PacketRingSetupError(kind: .system, message: error.description, errno: error.errno)) }
            socket = nil
            uring = nil
        case .sendmmsg:
            throw .unsupportedEngine(configuration.engine)
        }
        writer = DatagramWriter(streamID: configuration.streamID, datagramSize: configuration.datagramSize,
                                limit: StreamLimit(), faults: FaultInjection(), patternPayload: false)
        pacer = Pacer(rate: configuration.rate)
    }

    /// Lends `fill` the payload area of the next datagram (``maxPayload`` bytes of
    /// registered memory) and sends what it wrote.
    ///
    /// - Parameter fill: writes the payload and returns its length (0...maxPayload).
    ///   The buffer is valid only during the call: the library seals and sends it
    ///   afterwards and the kernel may read it until its notification.
    /// - Throws: ``OutboundStreamError/payloadTooLarge(_:max:)`` if `fill` claims
    ///   more than it was lent, ``OutboundStreamError/finished`` after ``finish()``,
    ///   ``OutboundStreamError/wouldBlock`` when every slot is in flight and the
    ///   configuration says not to wait, and ``OutboundStreamError/producer(_:)``
    ///   wrapping an error `fill` threw (nothing is sent then).
    public func send(_ fill: (UnsafeMutableRawBufferPointer) throws -> Int) throws(OutboundStreamError) {
        guard !finished else { throw .finished }
        if packetRing != nil { return try sendFrame(fill) }
        let slot = try currentSlot()
        let datagram = engine.slotAddress(slot) + slotBytes
        let area = UnsafeMutableRawBufferPointer(start: datagram + DatagramHeader.size, count: maxPayload)
        let written: Int
        do { written = try fill(area) } catch {
            releaseSlotIfEmpty()
            throw .producer(String(describing: error))
        }
        guard written >= 0 && written <= maxPayload else {
            releaseSlotIfEmpty()
            throw .payloadTooLarge(written, max: maxPayload)
        }
        slotBytes += writer.append(at: datagram, payload: written, timestamp: MonotonicClock.wallNanoseconds())
        slotDatagrams += 1
        // GSO cuts a send at the segment size, so only the last datagram of a send
        // may be short; a short one, or a full slot, goes now.
        if written < maxPayload || slotDatagrams == configuration.segmentsPerSend {
            try flush()
        }
    }

    /// packet-ring: lends the payload area inside the next TX ring frame, then
    /// seals and publishes the frame. A refused datagram leaves the frame
    /// unpublished: the next one reuses it.
    @inline(never)
    private func sendFrame(_ fill: (UnsafeMutableRawBufferPointer) throws -> Int) throws(OutboundStreamError) {
        let frame: Int?
        do { frame = try ring.acquireFrame(wait: configuration.backPressure == .wait, stats: &stats) }
        catch { throw .system(error) }
        guard let frame else { throw .wouldBlock }
        if ring.halted { throw .system(rejectedFrame) }
        let datagram = ring.framePayload(frame)
        let area = UnsafeMutableRawBufferPointer(start: datagram + DatagramHeader.size, count: maxPayload)
        let written: Int
        do { written = try fill(area) } catch {
            throw .producer(String(describing: error))
        }
        guard written >= 0 && written <= maxPayload else {
            throw .payloadTooLarge(written, max: maxPayload)
        }
        let length = writer.append(at: datagram, payload: written, timestamp: MonotonicClock.wallNanoseconds())
        do throws(SystemError) {
            if pacer != nil {
                try paceFrame(bytes: length)
                // The pacer's kicks may have met a rejected frame: the ring was
                // replaced under this datagram, which then never goes.
                if ring.halted {
                    stats.errors[EMSGSIZE, default: 0] += 1
                    stats.datagramsFailed &+= 1
                    throw rejectedFrame
                }
            }
            try ring.commit(frame, udpLength: length, isEnd: false, stats: &stats)
        } catch {
            throw .system(error)
        }
    }

    /// packet-ring: waits until the pacer lets the next datagram go; what is
    /// published goes to the kernel before any sleep.
    private func paceFrame(bytes: Int) throws(SystemError) {
        guard var p = pacer else { return }
        var d = p.delay(now: MonotonicClock.nanoseconds())
        if d > 0 {
            try ring.flush(stats: &stats)
            while d > 0 {
                MonotonicClock.sleep(nanoseconds: min(d, 1_000_000))
                try ring.flush(stats: &stats)
                d = p.delay(now: MonotonicClock.nanoseconds())
            }
        }
        p.charge(datagrams: 1, bytes: bytes)
        pacer = p
    }

    private var rejectedFrame: SystemError {
        SystemError(call: "packet ring: '\(ring.target.interface.name)' rejected a frame (TP_STATUS_WRONG_FORMAT: longer than the MTU allows now?); "
                    + "the stream can only be finished", errno: EMSGSIZE)
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

    /// Submits the slot being packed, even if it holds fewer datagrams than a full
    /// GSO send, and reaps completions (packet-ring: kicks the kernel to send every
    /// published frame). Call it when latency matters more than batching (e.g. at
    /// the end of a burst).
    public func flush() throws(OutboundStreamError) {
        if packetRing != nil {
            do { try ring.flush(stats: &stats) } catch { throw .system(error) }
            return
        }
        guard let slot, slotDatagrams > 0 else { return }
        do {
            if var p = pacer {
                var d = p.delay(now: MonotonicClock.nanoseconds())
                while d > 0 {
                    try engine.poll(stats: &stats)
                    MonotonicClock.sleep(nanoseconds: d)
                    d = p.delay(now: MonotonicClock.nanoseconds())
                }
                p.charge(datagrams: slotDatagrams, bytes: slotBytes)
                pacer = p
            }
            try engine.submit(slot: slot, length: slotBytes, datagrams: slotDatagrams, isEnd: false, stats: &stats)
            try engine.poll(stats: &stats)
        } catch {
            throw .system(error)
        }
        self.slot = nil
        slotBytes = 0
        slotDatagrams = 0
    }

    /// Ends the stream: flushes, sends END (with the totals) ``SenderConfiguration/endRepeats``
    /// times, waits until the kernel released every slot, and reports. The stream
    /// cannot be used afterwards.
    public func finish() throws(OutboundStreamError) -> SenderReport {
        guard !finished else { throw .finished }
        try flush()
        finished = true
        if packetRing != nil { return try finishFrames() }
        do {
            for i in 0..<configuration.endRepeats {
                if i > 0 { MonotonicClock.sleep(nanoseconds: 1_000_000) }
                guard let end = try engine.acquireSlot(wait: true, stats: &stats) else { break }
                let length = writer.writeEnd(at: engine.slotAddress(end))
                try engine.submit(slot: end, length: length, datagrams: 0, isEnd: true, stats: &stats)
                try engine.poll(stats: &stats)
            }
            try engine.drain(stats: &stats)
        } catch {
            throw .system(error)
        }
        return SenderReport(configuration: configuration, statistics: stats, injected: InjectedFaults(),
                            sequences: writer.nextSequence,
                            seconds: Double(MonotonicClock.nanoseconds() - start) / 1e9,
                            stopReason: .limit, sendBufferBytes: configuration.sendBufferBytes)
    }

    /// packet-ring: END through the ring (again for any END a rejected ring
    /// swallowed), then wait until the kernel handed back every frame.
    private func finishFrames() throws(OutboundStreamError) -> SenderReport {
        let ring = self.ring
        func sendEnd() throws(SystemError) -> Bool {
            guard let end = try ring.acquireFrame(wait: true, stats: &stats) else { return false }
            let length = writer.writeEnd(at: ring.framePayload(end))
            try ring.commit(end, udpLength: length, isEnd: true, stats: &stats)
            try ring.flush(stats: &stats)
            return true
        }
        do {
            for i in 0..<configuration.endRepeats {
                if i > 0 { MonotonicClock.sleep(nanoseconds: 1_000_000) }
                guard try sendEnd() else { break }
            }
            try ring.finishFrames(stats: &stats)
            // A rejected frame takes every frame queued behind it down, ENDs
            // included (see PacketRingEngine.halt): those go again, through the
            // fresh ring.
            while ring.endsOwed > 0 {
                ring.endResent()
                guard try sendEnd() else { break }
                try ring.finishFrames(stats: &stats)
            }
        } catch {
            throw .system(error)
        }
        var report = SenderReport(configuration: configuration, statistics: stats, injected: InjectedFaults(),
                                  sequences: writer.nextSequence,
                                  seconds: Double(MonotonicClock.nanoseconds() - start) / 1e9,
                                  stopReason: ring.halted ? .error : .limit, sendBufferBytes: ring.sendBufferBytes)
        report.packetRing = ring.report
        return report
    }

    /// A slot taken for a datagram that was then refused goes back unsent.
    private func releaseSlotIfEmpty() {
        if let slot, slotDatagrams == 0 {
            engine.releaseUnsent(slot)
            self.slot = nil
            slotBytes = 0
        }
    }

    private func currentSlot() throws(OutboundStreamError) -> Int {
        if let slot { return slot }
        let acquired: Int?
        do { acquired = try engine.acquireSlot(wait: configuration.backPressure == .wait, stats: &stats) }
        catch { throw .system(error) }
        guard let acquired else { throw .wouldBlock }
        slot = acquired
        return acquired
    }

    deinit {
        // A stream dropped without finish(): the kernel may still read slots, so
        // wait for their notifications before the pool is unmapped (packet-ring:
        // published frames go out and come back before the ring is unmapped).
        guard !finished else { return }
        if let packetRing { try? packetRing.finishFrames(stats: &stats) } else { try? engine.drain(stats: &stats) }
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
    /// Only the io_uring engines and packet-ring lend the memory the kernel sends from.
    case unsupportedEngine(SendEngineKind)
    /// packet-ring could not start: interface, addresses, MTU, privilege
    /// (``PacketRingSetupError/kind`` says which), or the ring itself.
    case packetRingSetup(PacketRingSetupError)
    /// The producer's closure threw (its description); nothing was sent.
    case producer(String)
    /// A system call failed (socket, ring, registration, send).
    case system(SystemError)

    /// One line for a person: what failed and, for ranges, what is allowed.
    public var description: String {
        switch self {
        case .payloadTooLarge(let n, let max): return "payload of \(n) bytes is out of range: allowed 0...\(max)"
        case .wouldBlock: return "every slot is in flight (back-pressure: fail)"
        case .finished: return "the stream is finished"
        case .unsupportedEngine(let e): return "engine \(e.rawValue) cannot lend registered memory: use uring-zc, uring or packet-ring"
        case .packetRingSetup(let e): return e.message
        case .producer(let why): return "the producer failed: \(why)"
        case .system(let e): return e.description
        }
    }
}
