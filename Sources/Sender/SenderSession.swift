#if canImport(Glibc)
import Glibc
#endif
import StreamProtocol
import ZCSystem

/// Everything one stream needs before its first datagram and after its last, done once for
/// both ways in: ``StreamSender`` (pull: the driver fills slots from a source) and
/// ``OutboundStream`` (push: the application writes payloads in place) are two consumers
/// of a session.
///
/// A session opens the UDP socket (source options, multicast, connect, the path-MTU check
/// for GSO, the GSO segment size), or for `packet-ring` resolves the interface and
/// addresses once and binds the feedback socket to the frames' source port; picks the
/// engine in one switch (``open(_:_:)``); and owns the **feedback channel**: the socket the
/// receiver's REPORT comes back on (and, with reliable streams, STATUS and NAK).
///
/// A new engine is one ``SendEngine`` type plus one case in ``open(_:_:)``'s switch:
/// nothing else in the pull or push path needs it to work (SenderSessionTests runs both
/// through a fake engine handed to ``open(_:engine:_:)``). For speed on the push path only,
/// add its `@_specialize` line to `PushedStream.send` (a generic class's vtable entry is
/// generic code; see the note there).
package final class SenderSession {
    /// The configuration the stream runs with.
    package let configuration: SenderConfiguration
    /// Socket engines send on it (the ring registered its descriptor, so it lives as long
    /// as the session); for packet-ring it only takes feedback, bound to the frames' source
    /// port when feedback is awaited (else unbound and unused).
    package let socket: UDPSocket
    /// What the kernel granted for the socket engines' send buffer (packet-ring reports
    /// its own through ``SendEngine/annotate(_:)``).
    package let sendBufferBytes: Int32
    /// packet-ring's interface and addresses, resolved once (nil for the socket engines).
    package let packetRingTarget: PacketRingTarget?
    /// The receiver's REPORT is awaited after END (a timeout is set, unicast).
    package let awaitsReport: Bool
    /// A reliable stream to a multicast group: the socket its receivers' feedback arrives on,
    /// bound to ``socket``'s port and not connected (``socket``, connected to the group,
    /// takes no datagram from a receiver's address).
    package let groupFeedback: UDPSocket?
    /// Where a reliable stream's feedback is read: ``groupFeedback``'s or ``socket``'s.
    package let feedbackFD: Int32
    /// A keyed stream's sealing (SPEC §14), made once: the writer and a reliable stream's
    /// repairs share its packet number counter. nil: a plain stream.
    package let keying: StreamKeying?

    /// Opens the socket (or resolves packet-ring's target and binds its feedback socket).
    init(opening c: SenderConfiguration) throws(SenderError) {
        configuration = c
        keying = c.keying
        if c.reliability != nil {
            // Checked before anything opens: the feedback needs a socket it can answer.
            if c.engine == .packetRing {
                throw .reliabilityUnsupported("--engine packet-ring cannot hold frames until they are acknowledged; use a socket engine (auto, uring-zc, uring, sendmmsg)")
            }
        }
        awaitsReport = c.reportTimeoutNanoseconds != nil && !c.destination.isMulticast
        do {
            if c.engine == .packetRing {
                let target = try Self.resolvePacketRing(c)
                packetRingTarget = target
                socket = try UDPSocket(family: c.destination.family)
                if awaitsReport {
                    // The frames carry this source port: the REPORT comes back to it, and only a
                    // socket bound to it (any address) can take it, bound before the first frame.
                    let any = c.destination.family == AF_INET6 ? "[::]" : "0.0.0.0"
                    try socket.bind(to: try! SocketAddress.parse("\(any):\(target.addressing.sourcePort)"))
                }
                sendBufferBytes = 0
                groupFeedback = nil
                feedbackFD = socket.fd
            } else {
                packetRingTarget = nil
                socket = try UDPSocket(family: c.destination.family)
                let group = c.destination.isMulticast && c.reliability != nil
                if c.destination.isMulticast { try c.multicast.apply(to: socket) }
                if group {
                    // Both sockets share the port: the receivers answer the port the data came from.
                    try socket.setOption(level: SOL_SOCKET, name: SO_REUSEADDR, value: 1, call: "SO_REUSEADDR")
                    if c.bindAddress == nil { try socket.bind(to: try! SocketAddress.parse(c.destination.family == AF_INET6 ? "[::]:0" : "0.0.0.0:0", allowPortZero: true)) }
                }
                try c.applySourceOptions(to: socket)
                if group {
                    let bound = try socket.localAddress()
                    let feedback = try UDPSocket(family: c.destination.family)
                    try feedback.setOption(level: SOL_SOCKET, name: SO_REUSEADDR, value: 1, call: "SO_REUSEADDR")
                    try feedback.bind(to: bound)
                    feedbackFD = feedback.fd
                    groupFeedback = .some(consume feedback)
                } else {
                    groupFeedback = nil
                    feedbackFD = socket.fd
                }
                try socket.connect(to: c.destination)
                if c.segmentsPerSend > 1 {
                    // GSO segments are never fragmented: each must fit the path MTU.
                    if let mtu = socket.pathMTU(), c.datagramSize + c.destination.ipUDPHeaderBytes > mtu {
                        throw SenderError.pathMTU(mtu: mtu, datagramSize: c.datagramSize, headers: c.destination.ipUDPHeaderBytes)
                    }
                    try socket.setGSOSegment(c.datagramSize)
                }
                sendBufferBytes = socket.setBufferSize(receive: false, bytes: c.sendBufferBytes)
            }
        } catch let error as SenderError {
            throw error
        } catch let error as SystemError {
            throw .system(error)
        } catch {
            fatalError("unexpected error \(error)")
        }
    }

    /// packet-ring's target: the one the caller resolved for several streams (with this
    /// stream's source port), or resolved now.
    private static func resolvePacketRing(_ c: SenderConfiguration) throws(SenderError) -> PacketRingTarget {
        guard let options = c.packetRing else {
            throw .packetRingSetup(.init(kind: .badInput, message: "{engine} packet-ring needs {packetRing.interface}", errno: EINVAL))
        }
        if var resolved = options.resolvedTarget {
            resolved.addressing.sourcePort = options.sourcePort
            return resolved
        }
        do { return try PacketRingTarget.resolve(options, destination: c.destination, datagramSize: c.datagramSize, gso: c.gso) }
        catch { throw .packetRingSetup(error) }
    }

    /// Opens a session and the engine the configuration names — the one switch over
    /// engines — and hands both to `body`, specialised for that engine.
    package static func open<Body: SenderSessionBody>(_ c: SenderConfiguration, _ body: Body) throws(SenderError) -> Body.Output {
        switch c.engine {
        case .uringZC, .uring, .auto:
            return try open(c, engine: { s throws(SystemError) in try UringSendEngine.make(configuration: c, socket: s.socket) }, body)
        case .sendmmsg:
            return try open(c, engine: { s throws(SystemError) in try SendmmsgEngine(configuration: c, socket: s.socket) }, body)
        case .packetRing:
            return try open(c, engine: { s throws(SystemError) in try PacketRingEngine(configuration: c, target: s.packetRingTarget!) }, body)
        }
    }

    /// Opens a session, makes the engine with `make`, and runs `body` on both. Every
    /// engine goes through here; tests hand it an engine of their own.
    package static func open<Engine: SendEngine, Body: SenderSessionBody>(
        _ c: SenderConfiguration, engine make: (SenderSession) throws(SystemError) -> Engine, _ body: Body
    ) throws(SenderError) -> Body.Output {
        let session = try SenderSession(opening: c)
        let engine: Engine
        do { engine = try make(session) } catch { throw .system(error) }
        return try body.run(engine, in: session)
    }

    /// A reliable stream's sender half, reading feedback on this session's socket (nil for a
    /// plain stream). Throws when `engine` cannot hold slots until they are acknowledged.
    package func reliableDelivery<Engine: SendEngine>(for engine: Engine) throws(SenderError) -> ReliableDelivery? {
        guard let parameters = configuration.reliability else { return nil }
        guard engine.holdsSlots else {
            throw .reliabilityUnsupported("--engine \(configuration.engine.rawValue) cannot hold its slots until they are acknowledged; use a socket engine (auto, uring-zc, uring, sendmmsg)")
        }
        let group = configuration.destination.isMulticast
        return ReliableDelivery(parameters: parameters, streamID: configuration.streamID, datagramSize: configuration.datagramSize,
                                segments: engine.segmentsPerSlot, slotCount: engine.slotCount, feedbackFD: feedbackFD,
                                group: group, reportWaitNanoseconds: group ? configuration.reportTimeoutNanoseconds : nil,
                                keying: keying)
    }

    /// After END and the drain: waits for the receiver's REPORT on the feedback socket when
    /// the session awaits one (not after a stop request) and puts it in `report`. A reliable
    /// stream's REPORT may already have come in with the feedback; a multicast reliable
    /// stream collects every receiver's.
    package func awaitReport(_ report: inout SenderReport, reliable: ReliableDelivery? = nil) {
        if let reliable, reliable.isGroup, let finished = report.reliability {
            // A group: each receiver's REPORT, not before its run ends (after its idle timeout).
            guard report.stopReason != .signal, let timeout = configuration.reportTimeoutNanoseconds else { return }
            report.reliability = reliable.collectReports(finished, timeoutNanoseconds: timeout)
            return
        }
        let early = reliable?.receiverReport
        if let early, awaitsReport {
            report.receiver = .report(early, afterNanoseconds: 0)
            return
        }
        guard awaitsReport, report.stopReason != .signal, let timeout = configuration.reportTimeoutNanoseconds else { return }
        report.receiver = ReportWait.await(on: socket, streamID: configuration.streamID, from: configuration.destination,
                                           timeoutNanoseconds: timeout, key: configuration.key)
    }
}

/// What runs a stream on a session's engine: the pull run (``StreamSender``) or the push
/// stream (``OutboundStream``). `run` is generic over the engine, so each consumer is
/// compiled once per engine: the per-datagram path makes direct calls into it.
package protocol SenderSessionBody {
    associatedtype Output
    func run<Engine: SendEngine>(_ engine: Engine, in session: SenderSession) throws(SenderError) -> Output
}
