#if canImport(Glibc)
import Glibc
#endif

/// An IPv6 address as its 16 bytes in network order.
public struct IPv6Address: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The 16 octets in wire order.
    public let bytes: [UInt8]

    /// The address in `bytes`; nil unless it holds exactly 16 bytes.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// From a `struct in6_addr`.
    public init(_ addr: in6_addr) {
        var a = addr
        bytes = withUnsafeBytes(of: &a) { Array($0) }
    }

    /// Parses the text forms `inet_pton` accepts (no scope suffix).
    public init?(_ text: String) {
        var addr = in6_addr()
        guard inet_pton(AF_INET6, text, &addr) == 1 else { return nil }
        self.init(addr)
    }

    /// fe80::/10: needs an interface (a scope) to mean anything.
    public var isLinkLocal: Bool { bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 }
    /// ff00::/8.
    public var isMulticast: Bool { bytes[0] == 0xFF }

    /// The compressed text form (`inet_ntop`), e.g. `2001:2:70::2`.
    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var a = in6_addr()
        withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: bytes) }
        _ = inet_ntop(AF_INET6, &a, &text, socklen_t(text.count))
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// An IPv4 or IPv6 address: what a route, a neighbour entry or a frame's network
/// header names.
public enum IPAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// AF_INET or AF_INET6.
    public var family: Int32 { if case .v4 = self { return AF_INET } else { return AF_INET6 } }

    /// The address bytes in network order (4 or 16), as netlink attributes carry them.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let a): return [UInt8(a.value >> 24), UInt8((a.value >> 16) & 255), UInt8((a.value >> 8) & 255), UInt8(a.value & 255)]
        case .v6(let a): return a.bytes
        }
    }

    /// From 4 or 16 network-order bytes; nil for any other length.
    public init?(bytes: [UInt8]) {
        if bytes.count == 4 {
            self = .v4(IPv4Address(UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])))
        } else if let a = IPv6Address(bytes: bytes) {
            self = .v6(a)
        } else {
            return nil
        }
    }

    /// Parses IPv4 or IPv6 text.
    public init?(_ text: String) {
        if let a = IPv4Address(text) { self = .v4(a) } else if let a = IPv6Address(text) { self = .v6(a) } else { return nil }
    }

    /// The host part of a socket address (the scope id is not part of it).
    public init(_ address: SocketAddress) {
        switch address {
        case .v4(let sin): self = .v4(IPv4Address(sin.sin_addr))
        case .v6(let sin6): self = .v6(IPv6Address(sin6.sin6_addr))
        }
    }

    /// The protocol that resolves this address's link-layer address.
    public var resolutionProtocol: String { if case .v4 = self { return "ARP" } else { return "NDP" } }

    public var description: String {
        switch self {
        case .v4(let a): return a.description
        case .v6(let a): return a.description
        }
    }
}
