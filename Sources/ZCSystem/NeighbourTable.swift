#if canImport(Glibc)
import Glibc
#endif

/// The kernel's neighbour table (ARP for IPv4, NDP for IPv6) through netlink:
/// look an entry up (RTM_GETNEIGH), or make the kernel resolve one (RTM_NEWNEIGH
/// with NTF_USE, as its own stack does when a packet waits) and wait for it.
/// Nothing is cached: every call asks the kernel.
package enum NeighbourTable {
    /// One neighbour entry on one interface.
    package struct Entry: Equatable, Sendable {
        package var address: IPAddress
        package var interfaceIndex: Int32
        /// NUD_* state bits.
        package var state: UInt16
        /// The link-layer address; nil while unresolved.
        package var mac: MACAddress?

        /// Frames may go to `mac`: resolved (reachable, stale, being re-probed),
        /// permanent, or a NOARP device; and the address is there.
        package var isUsable: Bool {
            guard let mac, !mac.isZero else { return false }
            return state & Self.usableStates != 0
        }

        /// NUD_REACHABLE | STALE | DELAY | PROBE | NOARP | PERMANENT: a STALE entry
        /// is still the kernel's answer (it sends to it and re-probes in passing).
        static let usableStates: UInt16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80
        static let failedState: UInt16 = 0x20

        /// Reads an RTM_NEWNEIGH body: `ndmsg` (family, pads, ifindex, state,
        /// flags, type), then NDA_DST (1) and NDA_LLADDR (2).
        package init?(netlinkBody body: [UInt8]) {
            guard body.count >= 12 else { return nil }
            let a = NetlinkSocket.Message(type: NetlinkSocket.newNeighbour, body: body).attributes(after: 12)
            guard let dst = a[1].flatMap({ IPAddress(bytes: $0) }) else { return nil }
            address = dst
            interfaceIndex = Int32(bitPattern: body.load32(at: 4))
            state = body.load16(at: 8)
            mac = a[2].flatMap { MACAddress(bytes: $0) }
        }
    }

    /// ndmsg for `address` on interface `index`, with `state` and `flags`, and NDA_DST.
    static func request(_ address: IPAddress, interface index: Int32, state: UInt16 = 0, flags: UInt8 = 0) -> [UInt8] {
        var body: [UInt8] = [UInt8(address.family), 0, 0, 0]
        body.append32(UInt32(bitPattern: index))
        body.append16(state)
        body += [flags, 0]
        NetlinkSocket.appendAttribute(1, address.bytes, to: &body) // NDA_DST
        return body
    }

    /// The kernel's entry for `address` on interface `index`; nil when it has none.
    package static func lookup(_ address: IPAddress, interface index: Int32, using netlink: NetlinkSocket) throws(SystemError) -> Entry? {
        do {
            let answers = try netlink.ask(NetlinkSocket.getNeighbour, flags: 0, body: request(address, interface: index),
                                          what: "neighbour \(address) (RTM_GETNEIGH)")
            return answers.lazy.compactMap { Entry(netlinkBody: $0.body) }.first
        } catch where error.errno == ENOENT {
            return nil
        }
    }

    /// How a link-layer address was found.
    package enum Resolution: Equatable, Sendable {
        /// The kernel had a usable entry already.
        case cached(MACAddress)
        /// No entry: the kernel resolved it (ARP/NDP) while we waited.
        case resolved(MACAddress, waitedNanoseconds: UInt64)
        /// Nothing answered within the time allowed; the entry's last state.
        case unresolved(state: UInt16?)
    }

    /// The MAC of `address` on interface `index`, asking the kernel to resolve it
    /// when it has no usable entry, and waiting up to `timeoutNanoseconds` (polling
    /// every 10 ms). The kernel is nudged with RTM_NEWNEIGH + NTF_USE (it creates an
    /// INCOMPLETE entry and sends a solicitation, as for a queued packet); if it
    /// refuses that, an empty UDP datagram to `probe` through an ordinary socket
    /// makes its stack resolve the next hop itself.
    package static func resolve(_ address: IPAddress, interface index: Int32, probe: SocketAddress?,
                               timeoutNanoseconds: UInt64, using netlink: NetlinkSocket) throws(SystemError) -> Resolution {
        if let e = try lookup(address, interface: index, using: netlink), e.isUsable, let mac = e.mac { return .cached(mac) }
        let start = MonotonicClock.nanoseconds()
        do {
            let use: UInt8 = 0x01 // NTF_USE
            _ = try netlink.ask(NetlinkSocket.newNeighbour,
                                flags: NetlinkSocket.create | NetlinkSocket.replace | NetlinkSocket.acknowledge,
                                body: request(address, interface: index, flags: use), what: "resolve \(address) (RTM_NEWNEIGH NTF_USE)")
        } catch {
            if let probe { sendProbe(to: probe, interface: index) }
        }
        var last: Entry? = nil
        while true {
            last = try lookup(address, interface: index, using: netlink)
            if let e = last, e.isUsable, let mac = e.mac {
                return .resolved(mac, waitedNanoseconds: MonotonicClock.nanoseconds() - start)
            }
            if MonotonicClock.nanoseconds() - start >= timeoutNanoseconds { return .unresolved(state: last?.state) }
            MonotonicClock.sleep(nanoseconds: 10_000_000)
        }
    }

    /// One empty UDP datagram to port `probe` (the discard port, if the caller
    /// picked it) through the kernel's stack, which resolves the next hop on the way.
    private static func sendProbe(to probe: SocketAddress, interface index: Int32) {
        let family = IPAddress(probe).family
        guard let fd = try? SocketCalls.socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)) else { return }
        defer { FileCalls.close(fd) }
        var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE))
        if if_indextoname(UInt32(index), &name) != nil {
            try? SocketCalls.setOption(fd, level: SOL_SOCKET, name: SO_BINDTODEVICE, raw: name, length: strlen(name), call: "SO_BINDTODEVICE")
        }
        _ = try? probe.withSockAddr { (sa, len) throws(SystemError) in
            try SocketCalls.send(fd, UnsafeRawBufferPointer(start: nil, count: 0), flags: Int32(MSG_DONTWAIT), to: sa, length: len)
        }
    }
}
