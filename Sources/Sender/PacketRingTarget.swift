#if canImport(Glibc)
import Glibc
#endif
import CLinux
import StreamProtocol
import ZCSystem

/// What `--engine packet-ring` needs beyond the common configuration.
public struct PacketRingOptions: Equatable, Sendable {
    /// The interface the frames leave by (`--interface`).
    public var interface: String
    /// Source IPv4 address; nil: the route's preferred source (IPv6: always the route's).
    public var sourceIP: IPv4Address?
    public var sourcePort: UInt16
    /// Destination MAC; nil: the next hop's, from the kernel's route and neighbour table.
    public var destinationMAC: MACAddress?
    /// PACKET_QDISC_BYPASS: hand frames straight to the driver.
    public var qdiscBypass: Bool
    /// How frames reach the driver; nil: `copy` on a virtual device (veth...),
    /// `zerocopy` on hardware.
    public var transfer: PacketRingTransfer?
    /// The frames' IPv4 TTL / IPv6 hop limit (nil: 64).
    public var ttl: UInt8?
    /// An 802.1Q tag in every frame (`--vlan ID[:PCP]`); nil: untagged.
    public var vlan: VLANTag?
    /// The frames' IPv4 TOS / IPv6 traffic class (`--tos`, `--dscp`); nil: 0.
    public var trafficClass: UInt8?
    /// A target resolved before for these options (zc-send resolves once to check the
    /// interface, addresses and privilege before any stream starts): used as it is, with
    /// this stream's ``sourcePort``, instead of resolving again per stream.
    package var resolvedTarget: PacketRingTarget?
    /// How long to wait for the kernel to resolve the next hop's MAC.
    public var resolveTimeoutNanoseconds: UInt64 = 1_000_000_000

    public static let defaultSourcePort: UInt16 = 40000

    public init(interface: String, sourceIP: IPv4Address? = nil, sourcePort: UInt16 = PacketRingOptions.defaultSourcePort,
                destinationMAC: MACAddress? = nil, qdiscBypass: Bool = false, transfer: PacketRingTransfer? = nil) {
        self.interface = interface
        self.sourceIP = sourceIP
        self.sourcePort = sourcePort
        self.destinationMAC = destinationMAC
        self.qdiscBypass = qdiscBypass
        self.transfer = transfer
    }
}

/// How the kernel turns a ring frame into an skb.
public enum PacketRingTransfer: String, CaseIterable, Equatable, Sendable {
    /// The skb points at the frame's pages (beyond the 14-byte Ethernet header):
    /// nothing is copied on the way to the driver, and a NIC reads the ring itself.
    /// A veth (or any path that delivers locally) must then copy the pages into
    /// fresh ones, page allocation included.
    case zerocopy
    /// PACKET_VNET_HDR with hdr_len = the whole frame: the kernel copies each frame
    /// into the skb's own buffer at the kick, as a UDP socket copies from user
    /// memory. On veth, measured 10-35% more frames/s than zerocopy (no page
    /// allocation per frame); in front of a NIC, one copy more.
    case copy
}

/// Why a packet-ring run cannot start: the configuration, missing privilege, the
/// kernel, or the path. Described in the library's terms: configuration properties
/// by their Swift names (`datagramSize`, `packetRing.sourceIP`); a program names its
/// own flags through ``describe(naming:)``.
public struct PacketRingSetupError: ConfigurationError, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The configuration (interface, addresses, sizes): a CLI's usage error.
        case badInput
        /// Not allowed to open AF_PACKET sockets (needs CAP_NET_RAW).
        case noPermission
        /// The kernel refused something else.
        case system
        /// No route to the destination, or its next hop did not answer ARP/NDP in
        /// time: nothing was sent.
        case unreachable
    }
    public var kind: Kind
    /// The message with each configuration property it names written `{property}`.
    public var template: String
    public var errno: Int32

    /// `message` names properties as `{property}` (e.g. `{datagramSize}`), filled in by ``describe(naming:)``.
    public init(kind: Kind, message: String, errno: Int32) {
        self.kind = kind
        self.template = message
        self.errno = errno
    }

    /// The message in the library's terms.
    public var message: String { describe { $0 } }

    public func describe(naming name: (String) -> String) -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            out += rest[..<open]
            out += name(String(rest[rest.index(after: open)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }
}

/// Everything resolved before the first frame: interface, both ends' addresses,
/// frame sizes. Resolving sends nothing.
package struct PacketRingTarget: Sendable, Equatable {
    package var interface: NetworkInterface
    package var addressing: FrameAddressing
    /// "--dst-mac", "multicast group", "neighbour table", or "resolved by ARP/NDP in N ms".
    package var destinationMACSource: String
    /// The largest frame the run writes: Ethernet + IPv4 + UDP + datagram.
    package var maxFrameLength: Int
    package var qdiscBypass: Bool
    package var transfer: PacketRingTransfer
    /// Why: "--ring-transfer", or "auto (virtual device)" / "auto (hardware device)".
    package var transferChoice: String

    /// The next hop the frames go to ("198.18.70.2 (on-link)", "198.18.71.1 (gateway for 198.18.72.2)").
    package var nextHop: String
    /// Datagrams per frame, and why.
    package var segmentation: PacketRingSegmentation
    /// Frames start with a virtio_net_hdr (PACKET_VNET_HDR): it carries the copy
    /// length (all of the frame in copy mode; the headers in zerocopy mode, which is
    /// what the kernel copies without one), the UDP checksum offload and the
    /// segmentation request (GSO). Always on: offloading the UDP checksum measured
    /// 10-20% more frames/s at 8972 B than computing it here.
    var usesVirtioNetHeader: Bool { true }

    /// Looks up the interface, the kernel's route to the destination (next hop and
    /// source address) and the next hop's MAC (making the kernel resolve it when it
    /// has no entry, waiting `resolveTimeoutNanoseconds`), checks sizes against the
    /// MTU, and checks that this process may open an AF_PACKET socket. Sends no
    /// datagram (resolving may send an ARP/NDP solicitation).
    package static func resolve(_ o: PacketRingOptions, destination: SocketAddress, datagramSize: Int,
                               gso: GSOSetting = .off) throws(PacketRingSetupError) -> PacketRingTarget {
        func bad(_ m: String, _ e: Int32 = EINVAL) -> PacketRingSetupError { .init(kind: .badInput, message: m, errno: e) }
        func unreachable(_ m: String, _ e: Int32) -> PacketRingSetupError { .init(kind: .unreachable, message: m, errno: e) }
        let destinationIP = IPAddress(destination)
        let dev: NetworkInterface
        do { dev = try NetworkInterface.lookup(o.interface) } catch {
            switch error {
            case .noSuchInterface, .badName: throw bad(error.description, ENODEV)
            case .system(_, let e): throw PacketRingSetupError(kind: .system, message: error.description, errno: e.errno)
            }
        }
        guard dev.isEthernet else {
            throw bad("interface '\(dev.name)' is not an Ethernet device (ARPHRD \(dev.hardwareType)): packet-ring writes Ethernet frames", EOPNOTSUPP)
        }
        guard dev.isUp else {
            throw bad("interface '\(dev.name)' is down: bring it up with `ip link set \(dev.name) up`", ENETDOWN)
        }
        if case .v6(let sin6) = destination, sin6.sin6_scope_id != 0, Int32(bitPattern: sin6.sin6_scope_id) != dev.index {
            throw bad("\(destination.host) is scoped to another interface than {packetRing.interface} \(dev.name)", EINVAL)
        }
        if case .v6 = destinationIP, o.sourceIP != nil {
            throw bad("{packetRing.sourceIP} takes an IPv4 address; for IPv6 the source is the route's preferred source", EINVAL)
        }
        let ipv6: Bool = { if case .v6 = destinationIP { return true } else { return false } }()
        let headerLength = FrameBuilder.headerLength(ipv6: ipv6, vlan: o.vlan != nil)
        let frameLength = headerLength + datagramSize
        let segmentation = PacketRingSegmentation.choose(gso: gso, datagramSize: datagramSize)
        let linkBytes = FrameBuilder.ethernetHeaderSize + (o.vlan != nil ? FrameBuilder.vlanTagSize : 0)
        guard frameLength <= dev.mtu + linkBytes else {
            let ipUDP = headerLength - linkBytes
            throw bad("{datagramSize} \(datagramSize) makes \(frameLength)-byte frames, more than '\(dev.name)' carries (MTU \(dev.mtu) + \(linkBytes)): "
                      + "use {datagramSize} \(dev.mtu - ipUDP) or less, or raise the MTU (`ip link set \(dev.name) mtu \(datagramSize + ipUDP)`)", EMSGSIZE)
        }

        // The route, as the kernel's own UDP would take it from this interface.
        let netlink: NetlinkSocket
        do { netlink = try NetlinkSocket() } catch { throw PacketRingSetupError(kind: .system, message: error.description, errno: error.errno) }
        let route: Route
        do { route = try Route.lookup(destinationIP, interface: dev.index, using: netlink) } catch {
            throw unreachable("no route to \(destinationIP) from '\(dev.name)': \(SystemError.describe(error.errno)); nothing sent", error.errno)
        }
        if route.type == Route.localType {
            throw bad("\(destinationIP) is an address of this host: packet-ring frames leave by '\(dev.name)' and never reach it", EINVAL)
        }
        let source: IPAddress
        if let given = o.sourceIP {
            source = .v4(given)
        } else if let preferred = route.preferredSource, preferred.family == destinationIP.family {
            source = preferred
        } else if !ipv6, let primary = dev.primaryIPv4 {
            source = .v4(primary)
        } else {
            throw bad("interface '\(dev.name)' has no \(ipv6 ? "IPv6" : "IPv4") source address for \(destinationIP)"
                      + (ipv6 ? " (`ip -6 addr add IP/LEN dev \(dev.name)`)" : ": pass {packetRing.sourceIP} IP (or `ip addr add IP/LEN dev \(dev.name)`)"), EADDRNOTAVAIL)
        }
        let hop = route.nextHop(for: destinationIP)
        let hopText = route.gateway != nil ? "\(hop) (gateway for \(destinationIP))" : "\(hop) (on-link)"

        let destinationMAC: MACAddress
        let macSource: String
        if let given = o.destinationMAC {
            destinationMAC = given
            macSource = "--dst-mac"
        } else if let group = destination.multicastMAC {
            // A group has no neighbour: its MAC follows from the address (RFC 1112 §6.4, RFC 2464 §7).
            destinationMAC = MACAddress(bytes: group)!
            macSource = "multicast group"
        } else {
            // The fallback probe goes to the discard port: it must not reach the receiver's port.
            var probe = destination
            switch probe {
            case .v4(var a): a.sin_port = UInt16(9).bigEndian; probe = .v4(a)
            case .v6(var a): a.sin6_port = UInt16(9).bigEndian; probe = .v6(a)
            }
            let resolution: NeighbourTable.Resolution
            do {
                resolution = try NeighbourTable.resolve(hop, interface: dev.index, probe: probe,
                                                        timeoutNanoseconds: o.resolveTimeoutNanoseconds, using: netlink)
            } catch {
                throw PacketRingSetupError(kind: .system, message: error.description, errno: error.errno)
            }
            switch resolution {
            case .cached(let mac):
                destinationMAC = mac
                macSource = "neighbour table"
            case .resolved(let mac, let waited):
                destinationMAC = mac
                macSource = "resolved by \(hop.resolutionProtocol) in \(waited / 1_000_000) ms"
            case .unresolved(let state):
                let what = state.map { $0 & 0x20 != 0 ? "FAILED" : $0 & 0x01 != 0 ? "INCOMPLETE" : "state \($0)" } ?? "no entry"
                throw unreachable("next hop \(hopText) did not answer \(hop.resolutionProtocol) on '\(dev.name)' within "
                                  + "\(o.resolveTimeoutNanoseconds / 1_000_000) ms (\(what)): nothing sent; check the address and the link, "
                                  + "or pass {packetRing.destinationMAC} MAC", EHOSTUNREACH)
            }
        }
        // Privilege: the same socket the engine will open, closed at once.
        do {
            _ = FileCalls.close(try SocketCalls.socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
        } catch {
            let e = error.errno
            if e == EPERM || e == EACCES {
                throw PacketRingSetupError(kind: .noPermission,
                                           message: "{engine} packet-ring needs CAP_NET_RAW (run as root): socket(AF_PACKET, SOCK_RAW): \(SystemError.describe(e))",
                                           errno: e)
            }
            throw PacketRingSetupError(kind: .system, message: "socket(AF_PACKET, SOCK_RAW): \(SystemError.describe(e))", errno: e)
        }
        var addressing = FrameAddressing(sourceMAC: dev.mac, destinationMAC: destinationMAC, source: source,
                                         destination: destinationIP, sourcePort: o.sourcePort, destinationPort: destination.port,
                                         ttl: o.ttl ?? 64, vlan: o.vlan)
        addressing.trafficClass = o.trafficClass ?? 0
        return PacketRingTarget(interface: dev, addressing: addressing, destinationMACSource: macSource,
                                maxFrameLength: headerLength + segmentation.segments * datagramSize, qdiscBypass: o.qdiscBypass,
                                transfer: o.transfer ?? (dev.isVirtual ? .copy : .zerocopy),
                                transferChoice: o.transfer != nil ? "--ring-transfer"
                                    : dev.isVirtual ? "auto (virtual device)" : "auto (hardware device)",
                                nextHop: hopText, segmentation: segmentation)
    }
}

