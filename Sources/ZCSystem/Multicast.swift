#if canImport(Glibc)
import Glibc
#endif

// IP multicast on a UDP socket, IPv4 and IPv6 through one code path: the
// protocol-independent MCAST_* options (RFC 3678) take a sockaddr_storage group and
// an interface index for both families, so joining any-source (IGMPv2/MLDv1 or later)
// and source-specific (IGMPv3/MLDv2) groups needs no per-family structs.

// Option numbers from <netinet/in.h> (the same for IPPROTO_IP and IPPROTO_IPV6 levels).
private let mcastJoinGroup: Int32 = 42
private let mcastLeaveGroup: Int32 = 45
private let mcastJoinSourceGroup: Int32 = 46
private let mcastLeaveSourceGroup: Int32 = 47

extension SocketAddress {
    /// True for an IPv4 (224.0.0.0/4) or IPv6 (ff00::/8) multicast group address.
    public var isMulticast: Bool {
        switch self {
        case .v4(let a): return UInt32(bigEndian: a.sin_addr.s_addr) >> 28 == 0xE
        case .v6(let a): return withUnsafeBytes(of: a.sin6_addr) { $0[0] } == 0xFF
        }
    }

    /// True for the wildcard address (0.0.0.0 or ::): a socket bound to it takes datagrams
    /// sent to any local address.
    public var isWildcard: Bool {
        switch self {
        case .v4(let a): return a.sin_addr.s_addr == 0
        case .v6(let a): return withUnsafeBytes(of: a.sin6_addr) { $0.allSatisfy { $0 == 0 } }
        }
    }

    /// The Ethernet destination for this multicast group (RFC 1112 §6.4: 01:00:5e + the
    /// group's low 23 bits; RFC 2464 §7: 33:33 + the group's low 32 bits); nil if unicast.
    public var multicastMAC: [UInt8]? {
        guard isMulticast else { return nil }
        switch self {
        case .v4(let a):
            let g = UInt32(bigEndian: a.sin_addr.s_addr)
            return [0x01, 0x00, 0x5E, UInt8((g >> 16) & 0x7F), UInt8((g >> 8) & 0xFF), UInt8(g & 0xFF)]
        case .v6(let a):
            let b = withUnsafeBytes(of: a.sin6_addr) { Array($0) }
            return [0x33, 0x33, b[12], b[13], b[14], b[15]]
        }
    }
}

/// A multicast membership as the kernel takes it: group, interface, optional source.
public struct MulticastMembership: Sendable, CustomStringConvertible {
    /// The group (its port is ignored).
    public let group: SocketAddress
    /// The interface to join on (`if_nametoindex`); 0 lets the kernel pick by route.
    public let interfaceIndex: UInt32
    /// Source-specific multicast: only this sender's datagrams (IGMPv3 / MLDv2).
    public let source: SocketAddress?

    /// A membership of `group` on `interfaceIndex`, any source or only `source`.
    public init(group: SocketAddress, interfaceIndex: UInt32, source: SocketAddress? = nil) {
        self.group = group
        self.interfaceIndex = interfaceIndex
        self.source = source
    }

    /// `group [source S] on interface #N`.
    public var description: String {
        "\(group.host)\(source.map { " source \($0.host)" } ?? "") on interface #\(interfaceIndex)"
    }
}

/// Why a multicast option could not be set: the option and the errno, as one line.
public enum MulticastError: Error, CustomStringConvertible, Sendable {
    /// `if_nametoindex` found no such interface.
    case noSuchInterface(String)
    /// The group and the source (or interface) are of different families.
    case familyMismatch(String)
    /// The kernel refused an option.
    case system(SystemError)

    /// One line.
    public var description: String {
        switch self {
        case .noSuchInterface(let name): return "no interface named '\(name)'"
        case .familyMismatch(let what): return what
        case .system(let e): return e.description
        }
    }
}

/// The kernel's index of interface `name`.
public func interfaceIndex(named name: String) throws(MulticastError) -> UInt32 {
    let index = if_nametoindex(name)
    guard index != 0 else { throw .noSuchInterface(name) }
    return index
}

extension UDPSocket {
    private var ipLevel: Int32 { family == AF_INET6 ? Int32(IPPROTO_IPV6) : Int32(IPPROTO_IP) }

    /// Sends to multicast groups through interface `index` (IP_MULTICAST_IF with an
    /// `ip_mreqn`, or IPV6_MULTICAST_IF).
    public func setMulticastInterface(index: UInt32) throws(SystemError) {
        if family == AF_INET6 {
            try setOption(level: Int32(IPPROTO_IPV6), name: IPV6_MULTICAST_IF, value: Int32(index), call: "IPV6_MULTICAST_IF")
            return
        }
        var m = ip_mreqn()
        m.imr_ifindex = Int32(index)
        try SocketCalls.setOption(fd, level: Int32(IPPROTO_IP), name: IP_MULTICAST_IF, bytes: m, call: "setsockopt(IP_MULTICAST_IF)")
    }

    /// Hops a multicast datagram may take (IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS, 0...255).
    public func setMulticastHops(_ hops: Int32) throws(SystemError) {
        if family == AF_INET6 {
            try setOption(level: Int32(IPPROTO_IPV6), name: IPV6_MULTICAST_HOPS, value: hops, call: "IPV6_MULTICAST_HOPS")
        } else {
            try setOption(level: Int32(IPPROTO_IP), name: IP_MULTICAST_TTL, value: hops, call: "IP_MULTICAST_TTL")
        }
    }

    /// Whether this host's own sockets get a copy of what it sends to a group.
    public func setMulticastLoop(_ on: Bool) throws(SystemError) {
        if family == AF_INET6 {
            try setOption(level: Int32(IPPROTO_IPV6), name: IPV6_MULTICAST_LOOP, value: on ? 1 : 0, call: "IPV6_MULTICAST_LOOP")
        } else {
            try setOption(level: Int32(IPPROTO_IP), name: IP_MULTICAST_LOOP, value: on ? 1 : 0, call: "IP_MULTICAST_LOOP")
        }
    }

    /// IPv4: deliver only the groups this socket joined, not every group some socket on
    /// the host joined that matches the bound port (Linux's default is all).
    public func setMulticastAll(_ on: Bool) throws(SystemError) {
        guard family == AF_INET else { return }
        try setOption(level: Int32(IPPROTO_IP), name: 49 /* IP_MULTICAST_ALL */, value: on ? 1 : 0, call: "IP_MULTICAST_ALL")
    }

    /// Joins (MCAST_JOIN_GROUP, or MCAST_JOIN_SOURCE_GROUP with a source).
    public func join(_ m: MulticastMembership) throws(MulticastError) {
        try membership(m, join: true)
    }

    /// Leaves (MCAST_LEAVE_GROUP / MCAST_LEAVE_SOURCE_GROUP). Closing the socket leaves too.
    public func leave(_ m: MulticastMembership) throws(MulticastError) {
        try membership(m, join: false)
    }

    private func membership(_ m: MulticastMembership, join: Bool) throws(MulticastError) {
        guard m.group.family == family else { throw .familyMismatch("group \(m.group.host) is not of this socket's address family") }
        if let source = m.source, source.family != m.group.family {
            throw .familyMismatch("source \(source.host) and group \(m.group.host) are of different address families")
        }
        do {
            if let source = m.source {
                var req = group_source_req()
                req.gsr_interface = m.interfaceIndex
                Self.store(m.group, into: &req.gsr_group)
                Self.store(source, into: &req.gsr_source)
                let call = join ? "MCAST_JOIN_SOURCE_GROUP" : "MCAST_LEAVE_SOURCE_GROUP"
                try SocketCalls.setOption(fd, level: ipLevel, name: join ? mcastJoinSourceGroup : mcastLeaveSourceGroup,
                                          bytes: req, call: "setsockopt(\(call) \(m))")
            } else {
                var req = group_req()
                req.gr_interface = m.interfaceIndex
                Self.store(m.group, into: &req.gr_group)
                let call = join ? "MCAST_JOIN_GROUP" : "MCAST_LEAVE_GROUP"
                try SocketCalls.setOption(fd, level: ipLevel, name: join ? mcastJoinGroup : mcastLeaveGroup,
                                          bytes: req, call: "setsockopt(\(call) \(m))")
            }
        } catch {
            throw .system(error)
        }
    }

    private static func store(_ address: SocketAddress, into storage: inout sockaddr_storage) {
        withUnsafeMutableBytes(of: &storage) { dst in
            address.withSockAddr { p, len in
                dst.copyMemory(from: UnsafeRawBufferPointer(start: p, count: Int(len)))
            }
        }
    }
}
