#if canImport(Glibc)
import Glibc
#endif

/// The kernel's answer to "how would you send to this address?" (`ip route get`):
/// RTM_GETROUTE over netlink, as the kernel's own UDP would route a datagram.
package struct Route: Equatable, Sendable {
    /// The interface the kernel would send by.
    package var outputInterfaceIndex: Int32
    /// The router to hand the packet to; nil when the destination is on-link.
    package var gateway: IPAddress?
    /// The source address the kernel would pick (RTA_PREFSRC).
    package var preferredSource: IPAddress?
    /// RTN_* (1 unicast, 2 local, 3 broadcast, 5 multicast...).
    package var type: UInt8

    /// The address whose link-layer address the frames need: the gateway, or the
    /// destination itself when it is on-link.
    package func nextHop(for destination: IPAddress) -> IPAddress { gateway ?? destination }

    package static let unicastType: UInt8 = 1, localType: UInt8 = 2

    /// Attribute types (linux/rtnetlink.h).
    static let destinationAttribute: UInt16 = 1, outputInterfaceAttribute: UInt16 = 4
    static let gatewayAttribute: UInt16 = 5, preferredSourceAttribute: UInt16 = 7

    /// Asks the kernel for its route to `destination`. With `interface`, the lookup
    /// is bound to it (RTA_OIF, as `ip route get ADDR oif IF`): needed for link-local
    /// IPv6, and what a sender tied to one interface wants. Throws the kernel's
    /// refusal (ENETUNREACH, EHOSTUNREACH...) as a `SystemError`.
    package static func lookup(_ destination: IPAddress, interface: Int32?, using netlink: NetlinkSocket) throws(SystemError) -> Route {
        let address = destination.bytes
        var body: [UInt8] = [UInt8(destination.family), UInt8(address.count * 8), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] // rtmsg
        NetlinkSocket.appendAttribute(destinationAttribute, address, to: &body)
        if let interface {
            var index: [UInt8] = []
            index.append32(UInt32(bitPattern: interface))
            NetlinkSocket.appendAttribute(outputInterfaceAttribute, index, to: &body)
        }
        let answers = try netlink.ask(NetlinkSocket.getRoute, flags: 0, body: body, what: "route to \(destination) (RTM_GETROUTE)")
        guard let answer = answers.first(where: { $0.type == NetlinkSocket.newRoute }), answer.body.count >= 12 else {
            throw SystemError(call: "route to \(destination) (RTM_GETROUTE): no answer", errno: EPROTO)
        }
        let a = answer.attributes(after: 12)
        let oif = a[outputInterfaceAttribute].flatMap { $0.count == 4 ? Int32(bitPattern: $0.load32(at: 0)) : nil }
        return Route(outputInterfaceIndex: oif ?? interface ?? 0,
                     gateway: a[gatewayAttribute].flatMap { IPAddress(bytes: $0) },
                     preferredSource: a[preferredSourceAttribute].flatMap { IPAddress(bytes: $0) },
                     type: answer.body[7])
    }
}
