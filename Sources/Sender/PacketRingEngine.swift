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
    /// Where `destinationMAC` came from when it was not typed (`--dst-mac`): a caller
    /// that resolved the target once (zc-send checks before it starts) passes the
    /// MAC on with how it was found, so the streams do not resolve again.
    public var destinationMACSource: String?
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

/// Why a packet-ring run cannot start: the user's input, or missing privilege.
public struct PacketRingSetupError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The command line (interface, addresses, sizes): exit 64.
        case badInput
        /// Not allowed to open AF_PACKET sockets (needs CAP_NET_RAW): exit 77.
        case noPermission
        /// The kernel refused something else.
        case system
        /// No route to the destination, or its next hop did not answer ARP/NDP in
        /// time: nothing was sent (exit 2).
        case unreachable
    }
    public var kind: Kind
    public var message: String
    public var errno: Int32

    public var description: String { message }

    /// As a `SystemError`, for the engine's typed throws.
    public var systemError: SystemError { SystemError(call: message, errno: errno) }
}

/// Everything resolved before the first frame: interface, both ends' addresses,
/// frame sizes. Resolving sends nothing.
public struct PacketRingTarget: Sendable {
    public var interface: NetworkInterface
    public var addressing: FrameAddressing
    /// "--dst-mac", "multicast group", "neighbour table", or "resolved by ARP/NDP in N ms".
    public var destinationMACSource: String
    /// The largest frame the run writes: Ethernet + IPv4 + UDP + datagram.
    public var maxFrameLength: Int
    public var qdiscBypass: Bool
    public var transfer: PacketRingTransfer
    /// Why: "--ring-transfer", or "auto (virtual device)" / "auto (hardware device)".
    public var transferChoice: String

    /// The next hop the frames go to ("198.18.70.2 (on-link)", "198.18.71.1 (gateway for 198.18.72.2)").
    public var nextHop: String
    /// Datagrams per frame, and why.
    public var segmentation: PacketRingSegmentation
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
    public static func resolve(_ o: PacketRingOptions, destination: SocketAddress, datagramSize: Int,
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
            throw bad("\(destination.host) is scoped to another interface than --interface \(dev.name)", EINVAL)
        }
        if case .v6 = destinationIP, o.sourceIP != nil {
            throw bad("--src takes an IPv4 address; for IPv6 the source is the route's preferred source", EINVAL)
        }
        let ipv6: Bool = { if case .v6 = destinationIP { return true } else { return false } }()
        let headerLength = FrameBuilder.headerLength(ipv6: ipv6, vlan: o.vlan != nil)
        let frameLength = headerLength + datagramSize
        let segmentation = PacketRingSegmentation.choose(gso: gso, datagramSize: datagramSize)
        let linkBytes = FrameBuilder.ethernetHeaderSize + (o.vlan != nil ? FrameBuilder.vlanTagSize : 0)
        guard frameLength <= dev.mtu + linkBytes else {
            let ipUDP = headerLength - linkBytes
            throw bad("--size \(datagramSize) makes \(frameLength)-byte frames, more than '\(dev.name)' carries (MTU \(dev.mtu) + \(linkBytes)): "
                      + "use --size \(dev.mtu - ipUDP) or less, or raise the MTU (`ip link set \(dev.name) mtu \(datagramSize + ipUDP)`)", EMSGSIZE)
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
                      + (ipv6 ? " (`ip -6 addr add IP/LEN dev \(dev.name)`)" : ": pass --src IP (or `ip addr add IP/LEN dev \(dev.name)`)"), EADDRNOTAVAIL)
        }
        let hop = route.nextHop(for: destinationIP)
        let hopText = route.gateway != nil ? "\(hop) (gateway for \(destinationIP))" : "\(hop) (on-link)"

        let destinationMAC: MACAddress
        let macSource: String
        if let given = o.destinationMAC {
            destinationMAC = given
            macSource = o.destinationMACSource ?? "--dst-mac"
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
                                  + "or pass --dst-mac MAC", EHOSTUNREACH)
            }
        }
        // Privilege: the same socket the engine will open, closed at once.
        let probe = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if probe < 0 {
            let e = errno
            if e == EPERM || e == EACCES {
                throw PacketRingSetupError(kind: .noPermission,
                                           message: "--engine packet-ring needs CAP_NET_RAW (run as root): socket(AF_PACKET, SOCK_RAW): \(SystemError.describe(e))",
                                           errno: e)
            }
            throw PacketRingSetupError(kind: .system, message: "socket(AF_PACKET, SOCK_RAW): \(SystemError.describe(e))", errno: e)
        }
        close(probe)
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

/// What the packet-ring engine reports beyond the common statistics.
public struct PacketRingReport: Sendable {
    public var interface: String
    public var interfaceIndex: Int32
    public var mtu: Int
    public var sourceMAC: MACAddress
    public var destinationMAC: MACAddress
    public var destinationMACSource: String
    /// The next hop the frames go to, and whether it is on-link or the gateway.
    public var nextHop: String
    public var source: String
    public var dontFragment: Bool
    /// The 802.1Q tag ("ID:PCP"); nil: untagged.
    public var vlan: String?
    /// Datagrams per frame (more than 1: the kernel segments them after the ring), and why.
    public var segmentsPerFrame: Int
    public var gso: String
    /// "software" (zerocopy without GSO: the engine computes it), or "offloaded"
    /// (a virtio_net_hdr asks the kernel or NIC to finish it: copy mode, GSO).
    /// The IPv4 header checksum is always computed here.
    public var udpChecksum: String
    public var qdiscBypass: Bool
    public var transfer: PacketRingTransfer
    public var transferChoice: String
    public var maxFrameLength: Int
    /// Ring geometry: `frames` slots of `frameSize` bytes in blocks of `blockSize`.
    public var frameSize: Int
    public var frames: Int
    public var blockSize: Int
    /// sendto kicks.
    public var kicks: UInt64 = 0
    /// Kicks the kernel answered with ENOBUFS / EAGAIN (the frames stayed queued and went later).
    public var kicksRetried: UInt64 = 0
    /// Frames the kernel marked TP_STATUS_WRONG_FORMAT (counted as errors, never sent).
    public var wrongFormat: UInt64 = 0
    /// Rings replaced after a rejected frame (the kernel never steps over one).
    public var ringsReopened: Int = 0
    /// Frames still owned by the kernel when the run gave up waiting for them.
    public var framesInFlightAtExit: Int = 0
}

/// Raw mode: whole Ethernet/IPv4/UDP frames written in place into an AF_PACKET
/// TPACKET_V2 TX ring, kicked with one `sendto` per batch.
///
/// Frame lifecycle: AVAILABLE (ours) -> filled, tp_len, SEND_REQUEST published with
/// release ordering -> the kick: the kernel walks SEND_REQUEST frames from its own
/// head in ring order, attaching each frame's pages to an skb (SENDING) -> the skb
/// is freed -> AVAILABLE. A frame is written only when it is AVAILABLE again and
/// has been accounted, so the kernel never sees a half-written frame and no frame
/// is counted twice. On ENOBUFS (a queue or the device dropped the frame) the
/// kernel leaves the frame at SEND_REQUEST: it is kicked again, never dropped.
public final class PacketRingEngine {
    private(set) var fd: Int32
    private(set) var ring: UnsafeMutableRawPointer
    let geometry: (frameSize: Int, blockSize: Int, blocks: Int, frames: Int)
    let requestedSendBuffer: Int32
    let ringBytes: Int
    let frameSize: Int
    let frameCount: Int
    let blockSize: Int
    let builder: FrameBuilder
    let target: PacketRingTarget
    private(set) var sendBufferBytes: Int32
    /// The kernel reads from here in each frame: a virtio_net_hdr in copy mode,
    /// else the Ethernet header.
    let dataOffset = Int(zc_tpacket2_data_offset)
    /// The Ethernet header starts here; the UDP payload (our datagram) `builder.headerLength` bytes on.
    let ethernetOffset: Int
    /// Bytes in front of the Ethernet header that tp_len counts (the virtio_net_hdr).
    let vnetBytes: Int
    /// The UDP payload (our datagram) starts here in each frame: after the
    /// Ethernet (+ VLAN) + IP + UDP headers.
    let payloadOffset: Int
    /// Per frame: the UDP payload length, its datagrams, and whether it is an END datagram.
    private let frameUDPLength: UnsafeMutablePointer<Int32>
    private let frameDatagrams: UnsafeMutablePointer<Int32>
    /// Datagrams a frame carries at most (more than 1: GSO after the ring).
    let segmentsPerFrame: Int
    /// The segment size the kernel cuts GSO frames at: one whole datagram.
    let datagramSize: Int
    /// Copy mode: the kernel copies the whole frame into the skb; else only the headers.
    let copiesWholeFrame: Bool
    private let frameIsEnd: UnsafeMutablePointer<Bool>
    /// Room for two datagrams: a reorder/duplicate fault writes a pair at once.
    private let scratch: UnsafeMutableRawPointer
    var report: PacketRingReport

    /// Most frames filled before a kick.
    static let batch = 256
    /// How long the ring may make no progress (every kick refused) before the run fails.
    static let stallNanoseconds: UInt64 = 2_000_000_000
    /// How long the end of the run waits for the kernel to release every frame.
    static let drainNanoseconds: UInt64 = 5_000_000_000

    /// `--pool` slots become ring frames, one datagram each: power-of-two frames that
    /// hold the largest frame, in blocks of a page (or one frame, if larger). The
    /// default 256 frames keep the ring in cache (1472-byte datagrams: 512 KiB);
    /// measured on the sink veth, 8192 frames (16 MiB) ran 15% slower than 256-512.
    public static func geometry(poolSlots: Int, maxFrameLength: Int, pageSize: Int) -> (frameSize: Int, blockSize: Int, blocks: Int, frames: Int) {
        var frameSize = 64
        while frameSize < Int(zc_tpacket2_data_offset) + maxFrameLength { frameSize <<= 1 }
        let blockSize = max(frameSize, pageSize)
        let perBlock = blockSize / frameSize
        let blocks = max(1, (max(poolSlots, 2) + perBlock - 1) / perBlock)
        return (frameSize, blockSize, blocks, blocks * perBlock)
    }

    init(configuration c: SenderConfiguration, target: PacketRingTarget) throws(SystemError) {
        self.target = target
        builder = FrameBuilder(target.addressing)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        segmentsPerFrame = target.segmentation.segments
        datagramSize = c.datagramSize
        copiesWholeFrame = target.transfer == .copy
        vnetBytes = target.usesVirtioNetHeader ? VirtioNetHeader.size : 0
        ethernetOffset = Int(zc_tpacket2_data_offset) + vnetBytes
        payloadOffset = ethernetOffset + builder.headerLength
        // A GSO frame holds up to 64 KiB: fewer frames hold as many datagrams (32 frames: 2 MiB).
        let slots = segmentsPerFrame > 1 ? max(32, c.poolSlots / segmentsPerFrame) : c.poolSlots
        let g = Self.geometry(poolSlots: slots, maxFrameLength: target.maxFrameLength + vnetBytes, pageSize: page)
        frameSize = g.frameSize; blockSize = g.blockSize; frameCount = g.frames
        ringBytes = g.blockSize * g.blocks

        let opened = try Self.open(target: target, geometry: g, ringBytes: ringBytes, sendBufferBytes: c.sendBufferBytes)
        fd = opened.fd
        ring = opened.ring
        sendBufferBytes = opened.sendBuffer
        geometry = g
        requestedSendBuffer = c.sendBufferBytes
        frameUDPLength = .allocate(capacity: g.frames); frameUDPLength.initialize(repeating: 0, count: g.frames)
        frameDatagrams = .allocate(capacity: g.frames); frameDatagrams.initialize(repeating: 0, count: g.frames)
        frameIsEnd = .allocate(capacity: g.frames); frameIsEnd.initialize(repeating: false, count: g.frames)
        scratch = .allocate(byteCount: 2 * c.datagramSize + 64, alignment: 64)
        kickBatch = max(1, min(Self.batch, g.frames / 4))
        ipID = UInt16(truncatingIfNeeded: c.streamID)
        let a = target.addressing
        report = PacketRingReport(interface: target.interface.name, interfaceIndex: target.interface.index,
                                  mtu: target.interface.mtu, sourceMAC: a.sourceMAC, destinationMAC: a.destinationMAC,
                                  destinationMACSource: target.destinationMACSource, nextHop: target.nextHop,
                                  source: a.isIPv6 ? "[\(a.source)]:\(a.sourcePort)" : "\(a.source):\(a.sourcePort)",
                                  dontFragment: a.dontFragment && !a.isIPv6, vlan: a.vlan?.description,
                                  segmentsPerFrame: target.segmentation.segments, gso: target.segmentation.note,
                                  udpChecksum: target.usesVirtioNetHeader ? "offloaded" : "software",
                                  qdiscBypass: target.qdiscBypass, transfer: target.transfer,
                                  transferChoice: target.transferChoice, maxFrameLength: target.maxFrameLength,
                                  frameSize: g.frameSize, frames: g.frames, blockSize: g.blockSize)
    }

    /// The socket and its mapped ring: TPACKET_V2, optional qdisc bypass and
    /// virtio_net_hdr, a send buffer that holds the whole ring, PACKET_TX_RING,
    /// one MAP_POPULATE mapping, bound to the interface (protocol 0: send only).
    static func open(target: PacketRingTarget, geometry g: (frameSize: Int, blockSize: Int, blocks: Int, frames: Int),
                     ringBytes: Int, sendBufferBytes: Int32) throws(SystemError) -> (fd: Int32, ring: UnsafeMutableRawPointer, sendBuffer: Int32) {
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket(AF_PACKET, SOCK_RAW)") }
        func option(_ name: Int32, _ value: Int32, _ what: String) throws(SystemError) {
            var v = value
            if setsockopt(fd, zc_sol_packet, name, &v, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                let e = SystemError(call: "setsockopt(\(what))"); close(fd); throw e
            }
        }
        try option(zc_packet_version, zc_tpacket_v2, "PACKET_VERSION TPACKET_V2")
        if target.qdiscBypass { try option(zc_packet_qdisc_bypass, 1, "PACKET_QDISC_BYPASS") }
        if target.usesVirtioNetHeader { try option(zc_packet_vnet_hdr, 1, "PACKET_VNET_HDR") }
        // Every frame in flight is charged to the socket (skb + frame bytes): make
        // the send buffer hold the whole ring so it never throttles the kicks.
        let wanted = Int64(g.frames) * Int64(target.maxFrameLength + 1024)
        var v = Int32(clamping: max(Int64(sendBufferBytes), min(wanted, Int64(Int32.max / 2))))
        if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, socklen_t(MemoryLayout<Int32>.size))
        }
        var granted: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &granted, &len)
        if zc_packet_set_tx_ring(fd, UInt32(g.blockSize), UInt32(g.blocks), UInt32(g.frameSize), UInt32(g.frames)) != 0 {
            let e = SystemError(call: "setsockopt(PACKET_TX_RING \(g.frames) frames of \(g.frameSize) B in \(g.blocks) blocks of \(g.blockSize) B)")
            close(fd); throw e
        }
        let mem = mmap(nil, ringBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)
        guard let mem, mem != MAP_FAILED else {
            let e = SystemError(call: "mmap(TX ring, \(ringBytes) bytes)"); close(fd); throw e
        }
        if zc_packet_bind(fd, target.interface.index, 0) != 0 {
            let e = SystemError(call: "bind(AF_PACKET, \(target.interface.name))")
            munmap(mem, ringBytes); close(fd); throw e
        }
        return (fd, mem, granted)
    }

    deinit {
        munmap(ring, ringBytes)
        close(fd)
        frameUDPLength.deallocate(); frameDatagrams.deallocate(); frameIsEnd.deallocate(); scratch.deallocate()
    }

    @inline(__always) private func frame(_ i: Int) -> UnsafeMutableRawPointer { ring + i &* frameSize }
    @inline(__always) private func payload(_ i: Int) -> UnsafeMutableRawPointer { ring + i &* frameSize + payloadOffset }
    @inline(__always) private func next(_ i: Int) -> Int { i + 1 == frameCount ? 0 : i + 1 }
    /// The next frame in ring order is ours to fill: handed back and accounted.
    @inline(__always) private var headAvailable: Bool {
        submitted < frameCount && zc_tp_status_load(frame(head)) == zc_tp_status_available
    }

    /// Runs a whole stream: resolve, set up the ring, send, END, drain, report.
    static func runStream(configuration c: SenderConfiguration, input: PayloadInput?, writer: inout DatagramWriter,
                          ticker: inout ProgressTicker, stats: inout SenderStatistics,
                          start: UInt64) throws(SystemError) -> SenderReport {
        guard let options = c.packetRing else {
            throw SystemError(call: "--engine packet-ring needs --interface", errno: EINVAL)
        }
        let target: PacketRingTarget
        do { target = try PacketRingTarget.resolve(options, destination: c.destination, datagramSize: c.datagramSize, gso: c.gso) }
        catch { throw error.systemError }
        let engine = try PacketRingEngine(configuration: c, target: target)
        let reason = try engine.run(writer: &writer, input: input, configuration: c, ticker: &ticker, stats: &stats)
        let seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
        var report = SenderReport(configuration: c, statistics: stats, injected: writer.injected,
                                  sequences: writer.nextSequence, seconds: seconds, stopReason: reason,
                                  sendBufferBytes: engine.sendBufferBytes)
        report.packetRing = engine.report
        return report
    }

    // MARK: - The run

    private var head = 0        // next frame to fill
    private var tail = 0        // oldest submitted frame not yet accounted
    private var submitted = 0   // frames between tail and head
    private var unkicked = 0    // frames published that the kernel has not taken yet
    private var ipID: UInt16 = 0
    private var lastKickError: Int32 = 0
    private var endsRemaining = 0
    /// Set when the kernel rejected a frame (TP_STATUS_WRONG_FORMAT): data stops.
    private(set) var halted = false
    /// When a frame last moved (or the queue last started from empty): a stall is
    /// measured from here.
    private var lastProgress: UInt64 = 0
    /// The frame API kicks every this many published frames (a quarter of the ring,
    /// at most `batch`), so the producer fills while the kernel sends.
    let kickBatch: Int

    func run(writer: inout DatagramWriter, input: PayloadInput?, configuration c: SenderConfiguration,
             ticker: inout ProgressTicker, stats: inout SenderStatistics) throws(SystemError) -> StopReason {
        var pacer = Pacer(rate: c.rate)
        let start = MonotonicClock.nanoseconds()
        let limits = ProductionLimits(c, start: start)
        var producing = true
        var reason = StopReason.limit
        endsRemaining = c.endRepeats
        var nextEndAt: UInt64 = 0
        lastProgress = start
        if writer.isFixedPayload {
            // --source fixed: ring frames are memory we keep, like a pool's slots: the
            // one payload goes into every datagram position once; fills write headers.
            // (ENDs overwrite a frame's payload, but only after the last data frame.)
            for i in 0..<frameCount { writer.prepareSlot(payload(i), maxSegments: segmentsPerFrame) }
        }

        while true {
            let now = MonotonicClock.nanoseconds()
            if producing, let stop = limits.reasonToStop(now: now, writer: writer, stats: stats, engineFailed: halted) {
                producing = false
                reason = stop
            }

            var paceWait: UInt64 = 0
            var filled = 0
            while producing && filled < Self.batch {
                if pacer != nil {
                    let d = pacer!.delay(now: MonotonicClock.nanoseconds())
                    if d > 0 { paceWait = d; break }
                }
                guard headAvailable else { break }
                let bytes: Int, n: Int
                if let input {
                    let reader = SourceReader(input, flushIntervalNanoseconds: c.flushIntervalNanoseconds)
                    let r = writer.fill(payload(head), maxSegments: segmentsPerFrame) {
                        reader.read(into: $0, count: $1, streamOffset: $2)
                    }
                    if r.error != 0 { throw SystemError(call: "read(source)", errno: r.error) }
                    (bytes, n) = (r.bytes, r.datagrams)
                } else {
                    (bytes, n) = writer.fill(payload(head), maxSegments: segmentsPerFrame)
                }
                if n == 0 {
                    if writer.isExhausted { producing = false; break }
                    if input != nil { break } // a live source with nothing new for now
                    // A scheduled reorder/duplicate fault: two datagrams at once.
                    guard fillPair(writer: &writer, stats: &stats, pacer: &pacer) else {
                        if writer.isExhausted { producing = false }
                        break
                    }
                    filled += 2
                } else {
                    publish(head, udpLength: bytes, datagrams: n, isEnd: false)
                    stats.sends &+= 1
                    pacer?.charge(datagrams: n, bytes: bytes)
                    filled += 1
                }
                if writer.isExhausted { producing = false; break }
            }

            // END goes after the last data frame, through the ring too, a few times, 1 ms apart.
            if !producing && endsRemaining > 0 && now >= nextEndAt && headAvailable {
                let len = writer.writeEnd(at: payload(head))
                publish(head, udpLength: len, datagrams: 1, isEnd: true)
                stats.sends &+= 1
                endsRemaining -= 1
                nextEndAt = now + 1_000_000
            }

            let refused = try service(now: now, stats: &stats)

            if !producing && endsRemaining == 0 && submitted == 0 { break }

            // Wait only when there is nothing useful to do.
            if refused {
                waitForRoom(refused: true)                    // a queue is full: let it drain
            } else if paceWait > 0 {
                MonotonicClock.sleep(nanoseconds: min(paceWait, 1_000_000))
            } else if !producing && endsRemaining > 0 && nextEndAt > now {
                MonotonicClock.sleep(nanoseconds: min(nextEndAt - now, 1_000_000))
            } else if filled == 0 && !headAvailable {
                waitForRoom(refused: false)                   // ring full: wait for the kernel to free a frame
            }
            ticker.tick(now: now, start: start, statistics: stats, inFlight: submitted)
        }
        report.framesInFlightAtExit = waitForRelease()
        return reason
    }

    // MARK: - Shared by the run loop and the frame API

    /// Kicks what is published, accounts what the kernel took. Returns true when
    /// the kernel refused frames for now (they stay queued). Throws once it has
    /// refused them, with nothing moving, for `stallNanoseconds`.
    @inline(__always)
    private func service(now: UInt64, stats: inout SenderStatistics) throws(SystemError) -> Bool {
        var refused = false
        if unkicked > 0 {
            refused = try kick(stats: &stats)
        }
        if try account(stats: &stats) { lastProgress = now }
        if refused && now > lastProgress && now - lastProgress > Self.stallNanoseconds {
            throw SystemError(call: "packet ring: '\(target.interface.name)' refused every frame for \(Self.stallNanoseconds / 1_000_000_000) s "
                              + "(\(submitted) queued; is its link or its peer down?)", errno: lastKickError)
        }
        return refused
    }

    /// Nothing to fill: after a refused kick, give the queue 20 µs to drain;
    /// otherwise wait (up to 1 ms) for the kernel to hand the head frame back.
    private func waitForRoom(refused: Bool) {
        if refused {
            MonotonicClock.sleep(nanoseconds: 20_000)
        } else {
            _ = zc_poll_out(fd, 1)
        }
    }

    // MARK: - The frame API (push-style, for OutboundStream)
    // The run loop above pulls datagrams from a DatagramWriter. The library's
    // fill-in-place sender pushes instead, one frame at a time: acquireFrame, the
    // producer writes the datagram at framePayload(_:), commit publishes it (and
    // kicks every `kickBatch` frames), flush kicks the rest, finishFrames drains.
    // Publishing, kicking, accounting, the stall check and halt are the run loop's.

    /// Where frame `i`'s UDP payload (our datagram, up to `datagramSize` bytes) goes.
    @inline(__always) func framePayload(_ i: Int) -> UnsafeMutableRawPointer { payload(i) }

    /// Frames the kernel has not handed back (queued, being sent, or rejected).
    var framesInFlight: Int {
        var held = 0
        for i in 0..<frameCount where zc_tp_status_load(frame(i)) != zc_tp_status_available { held += 1 }
        return held
    }

    /// ENDs that a rejected ring swallowed (see `halt`): the caller sends them again.
    var endsOwed: Int { endsRemaining }
    func endResent() { endsRemaining = max(0, endsRemaining - 1) }

    /// The frame the next datagram goes into. Frames go out in ring order, so it is
    /// always the head frame; acquiring again without a commit returns the same one.
    /// When it is not free yet: kicks and accounts, then with `wait` waits until the
    /// kernel hands it back; without, returns nil. Also nil if a stop signal arrives
    /// while waiting.
    @inline(__always)
    func acquireFrame(wait: Bool, stats: inout SenderStatistics) throws(SystemError) -> Int? {
        if headAvailable { return head }
        return try acquireFrameSlowly(wait: wait, stats: &stats)
    }

    private func acquireFrameSlowly(wait: Bool, stats: inout SenderStatistics) throws(SystemError) -> Int? {
        while true {
            let refused = try service(now: MonotonicClock.nanoseconds(), stats: &stats)
            if headAvailable { return head }
            if !wait || StopFlag.isSet { return nil }
            waitForRoom(refused: refused)
        }
    }

    /// Publishes the frame `acquireFrame` returned, whose datagram (`udpLength`
    /// bytes) is in place at `framePayload(i)`: headers, checksums, SEND_REQUEST.
    /// Kicks once `kickBatch` frames wait.
    @inline(__always)
    func commit(_ i: Int, udpLength: Int, isEnd: Bool, stats: inout SenderStatistics) throws(SystemError) {
        precondition(i == head && headAvailable, "commit(\(i)): not the acquired frame")
        if submitted == 0 { lastProgress = MonotonicClock.nanoseconds() }  // a stall counts from here
        publish(i, udpLength: udpLength, datagrams: 1, isEnd: isEnd)
        stats.sends &+= 1
        if unkicked >= kickBatch { _ = try service(now: MonotonicClock.nanoseconds(), stats: &stats) }
    }

    /// Kicks every published frame and accounts what the kernel took, without waiting.
    func flush(stats: inout SenderStatistics) throws(SystemError) {
        _ = try service(now: MonotonicClock.nanoseconds(), stats: &stats)
    }

    /// Kicks until the kernel took every published frame, then waits until it
    /// released every frame, so the ring can be unmapped. Throws if frames are
    /// still held after `drainNanoseconds`.
    func finishFrames(stats: inout SenderStatistics) throws(SystemError) {
        let deadline = MonotonicClock.nanoseconds() + Self.drainNanoseconds
        while submitted > 0 {
            let now = MonotonicClock.nanoseconds()
            let refused = try service(now: now, stats: &stats)
            if submitted == 0 { break }
            if now >= deadline {
                throw SystemError(call: "packet ring: '\(target.interface.name)' did not take \(submitted) frames in \(Self.drainNanoseconds / 1_000_000_000) s", errno: ETIMEDOUT)
            }
            waitForRoom(refused: refused)
        }
        let held = waitForRelease()
        report.framesInFlightAtExit = held
        if held > 0 {
            throw SystemError(call: "packet ring: \(held) frames still held by the kernel after \(Self.drainNanoseconds / 1_000_000_000) s", errno: ETIMEDOUT)
        }
    }

    /// Headers, checksums, tp_len, then SEND_REQUEST with release ordering. A frame
    /// of several datagrams (`udpLength` bytes of back-to-back whole datagrams, all
    /// `datagramSize` but the last) asks the kernel to segment it.
    @inline(__always)
    private func publish(_ i: Int, udpLength: Int, datagrams: Int, isEnd: Bool) {
        let f = frame(i)
        let length: Int
        if datagrams > 1 {
            length = builder.finishForSegmentation(f + ethernetOffset, payloadLength: udpLength, ipID: ipID)
            ipID &+= UInt16(truncatingIfNeeded: datagrams) // the kernel numbers the segments from here
            VirtioNetHeader.writeSegmentation(at: f + dataOffset, linearBytes: linearBytes(length), segmentSize: datagramSize,
                                              udpOffset: builder.udpOffset)
        } else if vnetBytes > 0 {
            // The virtio_net_hdr is there anyway: let the kernel/NIC finish the UDP checksum.
            length = builder.finishForSegmentation(f + ethernetOffset, payloadLength: udpLength, ipID: ipID)
            ipID &+= 1
            VirtioNetHeader.writeChecksumOffload(at: f + dataOffset, linearBytes: linearBytes(length), udpOffset: builder.udpOffset)
        } else {
            length = builder.finish(f + ethernetOffset, payloadLength: udpLength, ipID: ipID)
            ipID &+= 1
        }
        zc_tp_set_len(f, UInt32(length + vnetBytes))
        frameUDPLength[i] = Int32(udpLength)
        frameDatagrams[i] = Int32(datagrams)
        frameIsEnd[i] = isEnd
        zc_tp_status_store(f, zc_tp_status_send_request)
        head = next(i)
        submitted += 1
        unkicked += 1
    }

    /// How much of a frame the kernel copies into the skb's own buffer (hdr_len):
    /// all of it in copy mode; else the headers, the payload staying in the ring's pages.
    @inline(__always) private func linearBytes(_ frameLength: Int) -> Int { copiesWholeFrame ? frameLength : builder.headerLength }

    /// The rare fault path: the writer emits two datagrams (a swapped pair or a
    /// duplicate) into scratch memory; each is copied into its own frame.
    private func fillPair(writer: inout DatagramWriter, stats: inout SenderStatistics, pacer: inout Pacer?) -> Bool {
        let second = next(head)
        guard submitted + 2 <= frameCount, zc_tp_status_load(frame(head)) == zc_tp_status_available,
              zc_tp_status_load(frame(second)) == zc_tp_status_available else { return false }
        let (bytes, n) = writer.fill(scratch, maxSegments: 2)
        guard n > 0 else { return false }
        let size = writer.datagramSize
        for k in 0..<n {
            let length = k < n - 1 ? size : bytes - (n - 1) * size
            payload(head).copyMemory(from: scratch + k * size, byteCount: length)
            publish(head, udpLength: length, datagrams: 1, isEnd: false)
            stats.sends &+= 1
            pacer?.charge(datagrams: 1, bytes: length)
        }
        return true
    }

    /// One sendto for every published frame. Returns true when the kernel refused
    /// to take frames for now (ENOBUFS/EAGAIN): they stay queued for the next kick.
    private func kick(stats: inout SenderStatistics) throws(SystemError) -> Bool {
        report.kicks &+= 1
        let rc = zc_packet_kick(fd)
        if rc >= 0 { unkicked = 0; return false }
        let e = errno
        lastKickError = e
        switch e {
        case ENOBUFS, EAGAIN, ENOMEM:
            report.kicksRetried &+= 1
            stats.retries &+= 1
            return true
        case EINTR:
            return false
        case EMSGSIZE, EINVAL:
            // A frame the kernel could not send: it is marked WRONG_FORMAT, and
            // `account` deals with it.
            return false
        default:
            throw SystemError(call: "sendto(packet ring, \(target.interface.name))", errno: e)
        }
    }

    /// Accounts frames the kernel has taken (SENDING or already AVAILABLE), in ring
    /// order. Returns true when any frame moved.
    private func account(stats: inout SenderStatistics) throws(SystemError) -> Bool {
        var moved = false
        while submitted > 0 {
            let f = frame(tail)
            let status = zc_tp_status_load(f)
            if status == zc_tp_status_send_request { break }
            if status & zc_tp_status_wrong_format != 0 {
                try halt(stats: &stats)
                return true
            } else if frameIsEnd[tail] {
                stats.endsSent &+= 1
            } else {
                stats.datagrams &+= UInt64(frameDatagrams[tail])
                stats.bytes &+= UInt64(frameUDPLength[tail])
            }
            tail = next(tail)
            submitted -= 1
            moved = true
        }
        // Frames the kernel has not taken yet (a refused or partial kick) need
        // another kick, whether or not anything new was published.
        unkicked = submitted > 0 && zc_tp_status_load(frame(tail)) == zc_tp_status_send_request ? submitted : 0
        return moved
    }

    /// The kernel rejected the frame at `tail` (TP_STATUS_WRONG_FORMAT: too long for
    /// the device, which only happens if its MTU shrank during the run). It then
    /// stops at that frame for good: it never steps over a rejected frame unless
    /// PACKET_LOSS was set before the ring, and PACKET_LOSS would skip such frames
    /// silently. So: count the rejected frame and every frame queued behind it as
    /// failed, stop producing data, and open a fresh ring for the END datagrams
    /// (small frames, which still fit), so the receiver learns the totals.
    private func halt(stats: inout SenderStatistics) throws(SystemError) {
        let code = lastKickError != 0 ? lastKickError : EMSGSIZE
        report.wrongFormat &+= 1
        var i = tail
        for _ in 0..<submitted {
            if frameIsEnd[i] {
                endsRemaining += 1  // never sent: send it again through the new ring
            } else {
                stats.errors[code, default: 0] += 1
                stats.datagramsFailed &+= UInt64(frameDatagrams[i])
            }
            i = next(i)
        }
        if halted {
            throw SystemError(call: "packet ring: '\(target.interface.name)' rejected END frames too (TP_STATUS_WRONG_FORMAT)", errno: code)
        }
        halted = true
        let opened = try Self.open(target: target, geometry: geometry, ringBytes: ringBytes, sendBufferBytes: requestedSendBuffer)
        munmap(ring, ringBytes)
        close(fd)
        fd = opened.fd
        ring = opened.ring
        head = 0; tail = 0; submitted = 0; unkicked = 0
        report.ringsReopened += 1
    }

    /// Waits (bounded) until the kernel has released every frame, so the ring is
    /// unmapped only once nothing refers to it. Returns the frames still held.
    private func waitForRelease() -> Int {
        let deadline = MonotonicClock.nanoseconds() + Self.drainNanoseconds
        while true {
            let held = framesInFlight
            if held == 0 || MonotonicClock.nanoseconds() >= deadline { return held }
            _ = zc_poll_out(fd, 1)
        }
    }
}
