#if canImport(Glibc)
import Glibc
#endif
import CLinux
import ZCSystem

/// What setting up the receive sockets found out, for the report and the `ready` callback.
struct ReceiveSocketFacts {
    /// The address actually bound (the kernel's port when the configuration asked for port 0).
    var bound: SocketAddress
    /// What the kernel granted for SO_RCVBUF (getsockopt reports twice the usable size).
    var granted: Int32 = 0
    /// SO_RCVBUFFORCE worked (root / CAP_NET_ADMIN).
    var forced = false
    /// UDP GRO was asked for and the kernel accepted it.
    var groEnabled = false
    /// The group joined (multicast), and when.
    var membership: MulticastMembership?
    var joinedAt: UInt64 = 0

    init(listen: SocketAddress) { bound = listen }
}

/// Opens the receive threads' sockets: one per thread, SO_REUSEPORT when more than one.
enum ReceiveSockets {
    /// Opens, configures and binds socket `index` (the first binds the configured address,
    /// the others join its port), joins a multicast group, and notes what it learnt in `facts`.
    static func open(_ c: ReceiverConfiguration, index: Int, threads: Int, facts: inout ReceiveSocketFacts) throws(SystemError) -> UDPSocket {
        let socket = try UDPSocket(family: c.listen.family)
        if threads > 1 {
            try socket.setOption(level: SOL_SOCKET, name: SO_REUSEPORT, value: 1, call: "SO_REUSEPORT")
        }
        if c.isMulticast {
            // Several receivers of one group on one host: each bound socket gets a copy.
            try socket.setOption(level: SOL_SOCKET, name: SO_REUSEADDR, value: 1, call: "SO_REUSEADDR")
            try socket.setMulticastAll(false)
        }
        facts.forced = (try? socket.setOption(level: SOL_SOCKET, name: SO_RCVBUFFORCE, value: c.receiveBufferBytes, call: "SO_RCVBUFFORCE")) != nil
        facts.granted = socket.setBufferSize(receive: true, bytes: c.receiveBufferBytes)
        if c.gro {
            facts.groEnabled = (try? socket.setOption(level: Int32(IPPROTO_UDP), name: zc_udp_gro, value: 1, call: "UDP_GRO")) != nil
        }
        try socket.setOption(level: SOL_SOCKET, name: zc_so_rxq_ovfl, value: 1, call: "SO_RXQ_OVFL")
        if c.reports && !c.isMulticast && c.listen.isWildcard {
            // Bound to any address: learn which one each stream was sent to, so its REPORT
            // goes out from there (a sender connected to that address accepts only it).
            try socket.setOption(level: Int32(IPPROTO_IP), name: zc_ip_pktinfo, value: 1, call: "IP_PKTINFO")
            if c.listen.family == AF_INET6 {
                try socket.setOption(level: Int32(IPPROTO_IPV6), name: zc_ipv6_recvpktinfo, value: 1, call: "IPV6_RECVPKTINFO")
            }
        }
        try SocketCalls.setOption(socket.fd, level: SOL_SOCKET, name: SO_RCVTIMEO,
                                  bytes: timeval(tv_sec: 0, tv_usec: 100_000), call: "setsockopt(SO_RCVTIMEO)")
        try socket.bind(to: index == 0 ? c.listen : facts.bound)
        if index == 0 { facts.bound = try socket.localAddress() }
        if c.isMulticast {
            // validate() allows one thread for a group: this socket joins it.
            do {
                let interface = try c.multicast.interface.map { name throws(MulticastError) in try interfaceIndex(named: name) } ?? 0
                let m = MulticastMembership(group: c.listen, interfaceIndex: interface, source: c.multicast.source)
                try socket.join(m)
                facts.membership = m
                facts.joinedAt = MonotonicClock.nanoseconds()
            } catch {
                switch error {
                case .system(let e): throw e
                default: throw SystemError(call: "join \(c.listen.host): \(error)", errno: EINVAL)
                }
            }
        }
        return socket
    }
}
