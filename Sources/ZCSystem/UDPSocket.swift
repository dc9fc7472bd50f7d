#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// An owned UDP socket. `~Copyable`, so exactly one owner closes it, once.
public struct UDPSocket: ~Copyable {
    /// The file descriptor; valid for the socket's lifetime, closed by `deinit`. Do not close it yourself.
    public let fd: Int32
    /// `AF_INET` or `AF_INET6`.
    public let family: Int32

    /// Opens a `SOCK_DGRAM | SOCK_CLOEXEC` socket of `family` (`AF_INET` or `AF_INET6`).
    ///
    /// - Throws: ``SystemError`` from `socket(2)`.
    public init(family: Int32) throws(SystemError) {
        let fd = try retryingOnInterrupt("socket") { socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        self.fd = fd
        self.family = family
    }

    deinit { close(fd) }

    /// Fixes the peer: plain sends go to `address`, and only its datagrams are received.
    ///
    /// - Throws: ``SystemError`` from `connect(2)`, e.g. `ENETUNREACH`.
    public func connect(to address: SocketAddress) throws(SystemError) {
        let rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        if rc != 0 { throw SystemError(call: "connect(\(address))") }
    }

    /// Binds the local address; port 0 lets the kernel choose (see ``localAddress()``).
    ///
    /// - Throws: ``SystemError`` from `bind(2)`, e.g. `EADDRINUSE`.
    public func bind(to address: SocketAddress) throws(SystemError) {
        let rc = address.withSockAddr { Glibc.bind(fd, $0, $1) }
        if rc != 0 { throw SystemError(call: "bind(\(address))") }
    }

    /// The locally bound address (after `bind` to port 0, the port the kernel chose).
    public func localAddress() throws(SystemError) -> SocketAddress {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        if rc != 0 { throw SystemError(call: "getsockname") }
        return withUnsafeBytes(of: &storage) { SocketAddress(storage: $0.baseAddress!)! }
    }

    /// Sets an `int`-valued socket option.
    ///
    /// - Parameters:
    ///   - level: `SOL_SOCKET`, `IPPROTO_UDP`, ...
    ///   - name: The option, e.g. `SO_REUSEPORT`.
    ///   - value: The value to set.
    ///   - call: The option's name for the error message.
    /// - Throws: ``SystemError`` from `setsockopt(2)`.
    public func setOption(level: Int32, name: Int32, value: Int32, call: String) throws(SystemError) {
        var v = value
        if setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            throw SystemError(call: "setsockopt(\(call))")
        }
    }

    /// Reads an `int`-valued socket option.
    ///
    /// - Parameters:
    ///   - level: `SOL_SOCKET`, `IPPROTO_IP`, ...
    ///   - name: The option, e.g. `SO_RCVBUF`.
    ///   - call: The option's name for the error message.
    /// - Throws: ``SystemError`` from `getsockopt(2)`.
    public func getOption(level: Int32, name: Int32, call: String) throws(SystemError) -> Int32 {
        var v: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, level, name, &v, &len) != 0 { throw SystemError(call: "getsockopt(\(call))") }
        return v
    }

    /// Sets a socket buffer size: the *FORCE variant first (root may exceed
    /// net.core.[rw]mem_max), then the plain one. Returns what the kernel granted.
    @discardableResult
    public func setBufferSize(receive: Bool, bytes: Int32) -> Int32 {
        let force = receive ? SO_RCVBUFFORCE : SO_SNDBUFFORCE
        let plain = receive ? SO_RCVBUF : SO_SNDBUF
        if (try? setOption(level: SOL_SOCKET, name: force, value: bytes, call: "force")) == nil {
            try? setOption(level: SOL_SOCKET, name: plain, value: bytes, call: "plain")
        }
        return (try? getOption(level: SOL_SOCKET, name: plain, call: "get")) ?? 0
    }

    /// UDP_SEGMENT: the kernel splits each send into datagrams of `segmentSize`.
    public func setGSOSegment(_ segmentSize: Int) throws(SystemError) {
        try setOption(level: Int32(IPPROTO_UDP), name: zc_udp_segment, value: Int32(segmentSize), call: "UDP_SEGMENT")
    }

    /// The path MTU of a connected socket (IP_MTU / IPV6_MTU), nil if unknown.
    public func pathMTU() -> Int? {
        let v = family == AF_INET6
            ? try? getOption(level: Int32(IPPROTO_IPV6), name: 24 /* IPV6_MTU */, call: "IPV6_MTU")
            : try? getOption(level: Int32(IPPROTO_IP), name: 14 /* IP_MTU */, call: "IP_MTU")
        return v.map(Int.init)
    }

    /// Sends one datagram to `address` (an unconnected socket) or to the peer (`nil`, connected).
    ///
    /// - Throws: ``SystemError`` from `sendto(2)`, e.g. `EAGAIN`, `ECONNREFUSED`.
    public func send(_ bytes: [UInt8], to address: SocketAddress? = nil) throws(SystemError) {
        let fd = self.fd
        let n = bytes.withUnsafeBytes { b in
            address.map { a in a.withSockAddr { sendto(fd, b.baseAddress, b.count, Int32(MSG_DONTWAIT), $0, $1) } }
                ?? Glibc.send(fd, b.baseAddress, b.count, Int32(MSG_DONTWAIT))
        }
        if n < 0 { throw SystemError(call: "sendto(\(address?.description ?? "peer"))") }
    }

    /// Waits up to `timeoutNanoseconds` for one datagram and reads it into `buffer`: its
    /// length and sender, or nil when the time passed (or a signal interrupted the wait).
    /// A datagram longer than `buffer` is cut (the length returned is what was kept).
    ///
    /// - Throws: ``SystemError`` from `poll(2)` or `recvfrom(2)`, e.g. `ECONNREFUSED` when an
    ///   ICMP port unreachable came back for a connected socket.
    public func receive(into buffer: UnsafeMutableRawBufferPointer, timeoutNanoseconds: UInt64) throws(SystemError) -> (length: Int, from: SocketAddress?)? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(min(timeoutNanoseconds / 1_000_000, UInt64(Int32.max)))
        let ready = poll(&p, 1, ms)
        if ready < 0 {
            if Glibc.errno == EINTR { return nil }
            throw SystemError(call: "poll")
        }
        if ready == 0 { return nil }
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let n = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT), $0, &len)
            }
        }
        if n < 0 {
            if Glibc.errno == EAGAIN || Glibc.errno == EINTR { return nil }
            throw SystemError(call: "recvfrom")
        }
        return (n, withUnsafeBytes(of: &storage) { SocketAddress(storage: $0.baseAddress!) })
    }

    /// The IP header's traffic class on every datagram this socket sends: IP_TOS (IPv4) or
    /// IPV6_TCLASS (IPv6); DSCP is its upper six bits.
    ///
    /// - Throws: ``SystemError`` from `setsockopt(2)`.
    public func setTrafficClass(_ value: UInt8) throws(SystemError) {
        if family == AF_INET6 {
            try setOption(level: Int32(IPPROTO_IPV6), name: 67 /* IPV6_TCLASS */, value: Int32(value), call: "IPV6_TCLASS")
        } else {
            try setOption(level: Int32(IPPROTO_IP), name: IP_TOS, value: Int32(value), call: "IP_TOS")
        }
    }

    /// Pending socket error (SO_ERROR), cleared by reading.
    public func takePendingError() -> Int32 {
        (try? getOption(level: SOL_SOCKET, name: SO_ERROR, call: "SO_ERROR")) ?? 0
    }
}
