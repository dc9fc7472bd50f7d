import CLISupport
import NIOCore
import NIOHTTP1
import NIOPosix
import ZCSystem

/// Why `--metrics` could not start.
public struct MetricsServerError: Error, CustomStringConvertible {
    /// What went wrong, for the user.
    public var description: String
}

/// The `--metrics HOST:PORT` listener: SwiftNIO's HTTP/1.1 server (NIOPosix + NIOHTTP1, no
/// Foundation) serving `GET /metrics` in the Prometheus text format from a ``MetricsRegistry``.
/// It runs on one event-loop thread of its own, apart from the data path's threads; the data
/// path never waits for it (it only ever sees snapshots the data path published). A
/// connection gets ``requestTimeoutSeconds`` for each request (the first, and each next one
/// on a kept-alive connection); one that sends nothing or never finishes is closed. A request
/// NIO cannot parse gets a 400 and is closed.
public final class MetricsServer: Sendable {
    /// Seconds a connection may take to send its request.
    public static let requestTimeoutSeconds: Int64 = 5
    /// The address actually bound, HOST:PORT (the kernel's port when PORT was 0).
    public let boundAddress: String
    let channel: any Channel
    let group: MultiThreadedEventLoopGroup

    private init(boundAddress: String, channel: any Channel, group: MultiThreadedEventLoopGroup) {
        self.boundAddress = boundAddress
        self.channel = channel
        self.group = group
    }

    /// Parses `listen` (PORT, HOST:PORT or [IPV6]:PORT; HOST defaults to 0.0.0.0),
    /// binds and starts serving; returns once it listens.
    public static func start(_ listen: String, registry: MetricsRegistry) throws(MetricsServerError) -> MetricsServer {
        let parsed: ZCSystem.SocketAddress
        do { parsed = try ZCSystem.SocketAddress.parse(listen, defaultHost: "0.0.0.0", allowPortZero: true) }
        catch { throw MetricsServerError(description: "--metrics '\(listen)': \(error)") }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry))
                }
            }
        do {
            let address = try NIOCore.SocketAddress(ipAddress: parsed.host, port: Int(parsed.port))
            let channel = try bootstrap.bind(to: address).wait()
            let bound = channel.localAddress
            let host = bound?.ipAddress ?? parsed.host
            let text = "\(host.contains(":") ? "[\(host)]" : host):\(bound?.port ?? Int(parsed.port))"
            return MetricsServer(boundAddress: text, channel: channel, group: group)
        } catch {
            try? group.syncShutdownGracefully()
            throw MetricsServerError(description: "--metrics '\(listen)': \(error)")
        }
    }

    /// Stops listening and closes the connections.
    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// `/metrics`: the exposition; `/`: a pointer to it; anything else 404. GET and HEAD only.
final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: MetricsRegistry
    private var head: HTTPRequestHead?
    private var deadline: Scheduled<Void>?

    init(registry: MetricsRegistry) { self.registry = registry }

    func channelActive(context: ChannelHandlerContext) {
        armDeadline(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    /// The next request must be complete within ``MetricsServer/requestTimeoutSeconds``.
    private func armDeadline(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: .seconds(MetricsServer.requestTimeoutSeconds)) {
            channel.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break  // no request here has a body worth reading; NIO bounds the parse
        case .end:
            guard let request = head else { return }
            head = nil
            respond(to: request, context: context)
            armDeadline(context)
        }
    }

    private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let (status, type, body): (HTTPResponseStatus, String, [UInt8])
        if request.method != .GET && request.method != .HEAD {
            (status, type, body) = (.methodNotAllowed, "text/plain; charset=utf-8", Array("GET /metrics\n".utf8))
        } else if path == "/metrics" {
            (status, type, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.exposition())
        } else if path == "/" {
            (status, type, body) = (.ok, "text/plain; charset=utf-8", Array("zcstream \(ZCStreamVersion.string): metrics at /metrics\n".utf8))
        } else {
            (status, type, body) = (.notFound, "text/plain; charset=utf-8", Array("not found: metrics at /metrics\n".utf8))
        }
        let keepAlive = request.isKeepAlive
        var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", String(body.count))])
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        if !keepAlive {
            let channel = context.channel
            done.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
