import CLISupport
import Dispatch
import FlyingFox
import FlyingSocks
import Foundation
import Synchronization
import ZCSystem

/// Why `--metrics` could not start.
public struct MetricsServerError: Error, CustomStringConvertible {
    /// What went wrong, for the user.
    public var description: String
}

/// The `--metrics HOST:PORT` listener: FlyingFox serving `GET /metrics` in the
/// Prometheus text format from a ``MetricsRegistry``. It runs on Swift concurrency's
/// threads, apart from the data path's own threads; the data path never waits for it
/// (it only ever sees snapshots the data path published). A client that sends nothing
/// or never finishes its request is dropped after ``requestTimeoutSeconds``.
public final class MetricsServer: Sendable {
    /// Seconds a connection may take to send its request.
    public static let requestTimeoutSeconds: Double = 5
    /// The address actually bound, HOST:PORT (the kernel's port when PORT was 0).
    public let boundAddress: String
    let server: HTTPServer

    private init(boundAddress: String, server: HTTPServer) {
        self.boundAddress = boundAddress
        self.server = server
    }

    /// Parses `listen` (PORT, HOST:PORT or [IPV6]:PORT; HOST defaults to 0.0.0.0),
    /// binds and starts serving; returns once it listens.
    public static func start(_ listen: String, registry: MetricsRegistry) throws(MetricsServerError) -> MetricsServer {
        let parsed: ZCSystem.SocketAddress
        do { parsed = try ZCSystem.SocketAddress.parse(listen, defaultHost: "0.0.0.0", allowPortZero: true) }
        catch { throw MetricsServerError(description: "--metrics '\(listen)': \(error)") }
        let server: HTTPServer
        do {
            if parsed.family == AF_INET6 {
                server = HTTPServer(address: try sockaddr_in6.inet6(ip6: parsed.host, port: parsed.port),
                                    timeout: requestTimeoutSeconds, logger: .disabled)
            } else {
                server = HTTPServer(address: try sockaddr_in.inet(ip4: parsed.host, port: parsed.port),
                                    timeout: requestTimeoutSeconds, logger: .disabled)
            }
        } catch {
            throw MetricsServerError(description: "--metrics '\(listen)': \(error)")
        }
        let routes = Routes(registry: registry)
        let outcome = StartOutcome()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            await server.appendRoute("GET /metrics", to: routes)
            await server.appendRoute("GET /", to: routes)
            Task.detached {
                do {
                    try await server.waitUntilListening(timeout: 10)
                    let address: String
                    switch await server.listeningAddress {
                    case .ip4(let host, let port): address = "\(host):\(port)"
                    case .ip6(let host, let port): address = "[\(host)]:\(port)"
                    default: address = parsed.description
                    }
                    outcome.value.withLock { if $0 == nil { $0 = .success(address) } }
                } catch {
                    outcome.value.withLock { if $0 == nil { $0 = .failure(MetricsServerError(description: "--metrics \(listen): not listening: \(error)")) } }
                }
                done.signal()
            }
            do {
                try await server.run()
            } catch {
                outcome.value.withLock { if $0 == nil { $0 = .failure(MetricsServerError(description: "--metrics \(listen): \(error)")) } }
                done.signal()
            }
        }
        done.wait()
        switch outcome.value.withLock({ $0 })! {
        case .success(let address): return MetricsServer(boundAddress: address, server: server)
        case .failure(let error): throw error
        }
    }

    /// Stops listening and closes the connections.
    public func stop() {
        let done = DispatchSemaphore(value: 0)
        Task.detached { [server] in await server.stop(timeout: 1); done.signal() }
        _ = done.wait(timeout: .now() + 2)
    }
}

/// `/metrics`: the exposition; `/`: a pointer to it.
struct Routes: HTTPHandler {
    let registry: MetricsRegistry

    func handleRequest(_ request: HTTPRequest) async throws -> HTTPResponse {
        if request.path == "/metrics" {
            return HTTPResponse(statusCode: .ok,
                                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                                body: Data(registry.exposition()))
        }
        return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: Data("zcstream \(ZCStreamVersion.string): metrics at /metrics\n".utf8))
    }
}

/// The first of "listening at ADDRESS" and "failed", shared with the start tasks.
final class StartOutcome: Sendable {
    let value = Mutex<Result<String, MetricsServerError>?>(nil)
}
