#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 socket address, parsed from the forms people type:
/// `HOST:PORT`, `[V6]:PORT`, `PORT` (with a default host), and names that
/// resolve through `getaddrinfo`.
public enum SocketAddress: Sendable, CustomStringConvertible, Equatable {
    /// An IPv4 address and port.
    case v4(sockaddr_in)
    /// An IPv6 address and port (flow info and scope id as `getaddrinfo` gave them).
    case v6(sockaddr_in6)

    /// Why ``SocketAddress/parse(_:defaultHost:allowPortZero:)`` or ``SocketAddress/resolve(host:port:)`` failed.
    public enum ParseError: Error, CustomStringConvertible, Equatable {
        /// The text is none of `HOST:PORT`, `[IPV6]:PORT` or `PORT` (a bare IPv6 address needs brackets).
        case malformed(String)
        /// The port is not a number from 1 to 65535 (0 only where allowed).
        case badPort(String)
        /// The host could not be resolved: the host, and `getaddrinfo`'s reason.
        case unresolvable(String, String)

        /// One line naming the offending text and what is wrong with it.
        public var description: String {
            switch self {
            case .malformed(let s): return "'\(s)' is not HOST:PORT, [IPV6]:PORT or PORT"
            case .badPort(let s): return "port '\(s)' is not a number from 1 to 65535"
            case .unresolvable(let h, let why): return "cannot resolve host '\(h)': \(why)"
            }
        }
    }

    /// Parses `text`. A bare port takes `defaultHost`; port 0 is allowed only when
    /// `allowPortZero` (a receiver binding an ephemeral port).
    public static func parse(_ text: String, defaultHost: String? = nil, allowPortZero: Bool = false) throws(ParseError) -> SocketAddress {
        var host: String
        var portText: String
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .malformed(text) }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .malformed(text) }
            portText = String(rest.dropFirst())
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
            if host.contains(":") { throw .malformed(text) } // bare IPv6 needs brackets
        } else if let defaultHost, text.allSatisfy(\.isNumber) {
            host = defaultHost
            portText = text
        } else {
            throw .malformed(text)
        }
        guard let port = UInt16(portText), port > 0 || allowPortZero else { throw .badPort(portText) }
        if host.isEmpty {
            guard let defaultHost else { throw .malformed(text) }
            host = defaultHost
        }
        return try resolve(host: host, port: port)
    }

    /// Resolves a numeric address or a name (first result, IPv4 or IPv6).
    public static func resolve(host: String, port: UInt16) throws(ParseError) -> SocketAddress {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw .unresolvable(host, String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(result) }
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let e = entry {
            if e.pointee.ai_family == AF_INET {
                return .v4(UnsafeRawPointer(e.pointee.ai_addr).load(as: sockaddr_in.self))
            }
            if e.pointee.ai_family == AF_INET6 {
                return .v6(UnsafeRawPointer(e.pointee.ai_addr).load(as: sockaddr_in6.self))
            }
            entry = e.pointee.ai_next
        }
        throw .unresolvable(host, "no IPv4 or IPv6 address")
    }

    /// The same address with another port.
    public func withPort(_ port: UInt16) -> SocketAddress {
        switch self {
        case .v4(var a): a.sin_port = port.bigEndian; return .v4(a)
        case .v6(var a): a.sin6_port = port.bigEndian; return .v6(a)
        }
    }

    /// `AF_INET` or `AF_INET6`.
    public var family: Int32 {
        switch self {
        case .v4: return AF_INET
        case .v6: return AF_INET6
        }
    }

    /// The port in host byte order.
    public var port: UInt16 {
        switch self {
        case .v4(let a): return UInt16(bigEndian: a.sin_port)
        case .v6(let a): return UInt16(bigEndian: a.sin6_port)
        }
    }

    /// The IP layer's header bytes plus UDP's 8, for MTU arithmetic.
    public var ipUDPHeaderBytes: Int { family == AF_INET ? 28 : 48 }

    /// Largest UDP payload one datagram can carry on this family.
    public var maxDatagramPayload: Int { family == AF_INET ? 65_507 : 65_527 }

    /// The numeric address as `inet_ntop` prints it, without brackets or port.
    public var host: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch self {
        case .v4(var a):
            _ = inet_ntop(AF_INET, &a.sin_addr, &buffer, socklen_t(buffer.count))
        case .v6(var a):
            _ = inet_ntop(AF_INET6, &a.sin6_addr, &buffer, socklen_t(buffer.count))
        }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// `HOST:PORT`, or `[HOST]:PORT` for IPv6.
    public var description: String {
        family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Calls `body` with a `sockaddr` view of this address.
    public func withSockAddr<R, E: Error>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws(E) -> R) throws(E) -> R {
        switch self {
        case .v4(var a):
            return try withUnsafePointer(to: &a) { (p) throws(E) in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { (s) throws(E) in try body(s, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(var a):
            return try withUnsafePointer(to: &a) { (p) throws(E) in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { (s) throws(E) in try body(s, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    /// Reads an address the kernel wrote into `storage`.
    public init?(storage: UnsafeRawPointer) {
        let family = storage.load(as: sa_family_t.self)
        switch Int32(family) {
        case AF_INET: self = .v4(storage.load(as: sockaddr_in.self))
        case AF_INET6: self = .v6(storage.load(as: sockaddr_in6.self))
        default: return nil
        }
    }

    /// Equal when family, numeric address and port are equal (compared through ``description``).
    public static func == (lhs: SocketAddress, rhs: SocketAddress) -> Bool {
        lhs.description == rhs.description
    }
}
