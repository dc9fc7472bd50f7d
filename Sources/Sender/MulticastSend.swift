#if canImport(Glibc)
import Glibc
#endif
import ZCSystem

/// Sending to a multicast group with a socket engine (`uring-zc`, `uring`, `sendmmsg`):
/// which interface the datagrams leave by, how many hops they may take, and whether
/// this host's own sockets get a copy. Ignored for a unicast destination. The
/// `packet-ring` engine writes the group's MAC (01:00:5e… / 33:33…) itself and takes
/// the interface and TTL from ``PacketRingOptions``.
public struct MulticastSendOptions: Sendable, Equatable {
    /// IP_MULTICAST_IF / IPV6_MULTICAST_IF: the outgoing interface (nil: by route).
    public var interface: String?
    /// IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS, 0...255 (nil: the kernel's default, 1).
    public var hops: Int32?
    /// IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP (nil: the kernel's default, on).
    public var loop: Bool?

    /// The kernel's defaults: route's interface, 1 hop, loop on.
    public init(interface: String? = nil, hops: Int32? = nil, loop: Bool? = nil) {
        self.interface = interface
        self.hops = hops
        self.loop = loop
    }

    /// Sets the options on `socket` (before `connect`, so the route is looked up on the
    /// chosen interface).
    package func apply(to socket: borrowing UDPSocket) throws(SystemError) {
        if let interface {
            let index: UInt32
            do { index = try interfaceIndex(named: interface) } catch {
                throw SystemError(call: "multicast interface '\(interface)'", errno: ENODEV)
            }
            try socket.setMulticastInterface(index: index)
        }
        if let hops { try socket.setMulticastHops(hops) }
        if let loop { try socket.setMulticastLoop(loop) }
    }
}
