#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// An owned UDP socket. `~Copyable`, so exactly one owner closes it, once.
package struct UDPSocket: ~Copyable {
    /// The file descriptor; valid for the socket's lifetime, closed by `deinit`. Do not close it yourself.
    package let fd: Int32
    /// `AF_INET` or `AF_INET6`.
    package let family: Int32

    /// Opens a `SOCK_DGRAM | SOCK_CLOEXEC` socket of `family` (`AF_INET` or `AF_INET6`).
    ///
    /// - Throws: ``SystemError`` from `socket(2)`.
    package init(family: Int32) throws(SystemError) {
        let fd = try SocketCalls.socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
        self.fd = fd
        self.family = family
    }

    deinit { FileCalls.close(fd) }

    /// Fixes the peer: plain sends go to `address`, and only its datagrams are received.
    ///
    /// - Throws: ``SystemError`` from `connect(2)`, e.g. `ENETUNREACH`.
    package func connect(to address: SocketAddress) throws(SystemError) {
        try address.withSockAddr { (a, n) throws(SystemError) in try SocketCalls.connect(fd, a, n, call: "connect(\(address))") }
    }

    /// Binds the local address; port 0 lets the kernel choose (see ``localAddress()``).
    ///
    /// - Throws: ``SystemError`` from `bind(2)`, e.g. `EADDRINUSE`.
    package func bind(to address: SocketAddress) throws(SystemError) {
        try address.withSockAddr { (a, n) throws(SystemError) in try SocketCalls.bind(fd, a, n, call: "bind(\(address))") }
    }

    /// The locally bound address (after `bind` to port 0, the port the kernel chose).
    package func localAddress() throws(SystemError) -> SocketAddress {
        var storage = sockaddr_storage()
        try SocketCalls.localAddress(fd, into: &storage)
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
    package func setOption(level: Int32, name: Int32, value: Int32, call: String) throws(SystemError) {
        try SocketCalls.setOption(fd, level: level, name: name, value: value, call: "setsockopt(\(call))")
    }

    /// Reads an `int`-valued socket option.
    ///
    /// - Parameters:
    ///   - level: `SOL_SOCKET`, `IPPROTO_IP`, ...
    ///   - name: The option, e.g. `SO_RCVBUF`.
    ///   - call: The option's name for the error message.
    /// - Throws: ``SystemError`` from `getsockopt(2)`.
    package func getOption(level: Int32, name: Int32, call: String) throws(SystemError) -> Int32 {
        try SocketCalls.option(fd, level: level, name: name, call: "getsockopt(\(call))")
    }

    /// Sets a socket buffer size: the *FORCE variant first (root may exceed
    /// net.core.[rw]mem_max), then the plain one. Returns what the kernel granted.
    @discardableResult
    package func setBufferSize(receive: Bool, bytes: Int32) -> Int32 {
        let force = receive ? SO_RCVBUFFORCE : SO_SNDBUFFORCE
        let plain = receive ? SO_RCVBUF : SO_SNDBUF
        if (try? setOption(level: SOL_SOCKET, name: force, value: bytes, call: "force")) == nil {
            try? setOption(level: SOL_SOCKET, name: plain, value: bytes, call: "plain")
        }
        return (try? getOption(level: SOL_SOCKET, name: plain, call: "get")) ?? 0
    }

    /// UDP_SEGMENT: the kernel splits each send into datagrams of `segmentSize`.
    package func setGSOSegment(_ segmentSize: Int) throws(SystemError) {
        try setOption(level: Int32(IPPROTO_UDP), name: zc_udp_segment, value: Int32(segmentSize), call: "UDP_SEGMENT")
    }

    /// The path MTU of a connected socket (IP_MTU / IPV6_MTU), nil if unknown.
    package func pathMTU() -> Int? {
        let v = family == AF_INET6
            ? try? getOption(level: Int32(IPPROTO_IPV6), name: 24 /* IPV6_MTU */, call: "IPV6_MTU")
            : try? getOption(level: Int32(IPPROTO_IP), name: 14 /* IP_MTU */, call: "IP_MTU")
        return v.map(Int.init)
    }

    /// Sends one datagram to `address` (an unconnected socket) or to the peer (`nil`, connected).
    ///
    /// - Throws: ``SystemError`` from `sendto(2)`, e.g. `EAGAIN`, `ECONNREFUSED`.
    package func send(_ bytes: [UInt8], to address: SocketAddress? = nil) throws(SystemError) {
        let fd = self.fd
        let call = { "sendto(\(address?.description ?? "peer"))" }
        // (Array.withUnsafeBytes rethrows untyped: the typed error travels in a Result.)
        let sent = try bytes.withUnsafeBytes { b in
            Result { () throws(SystemError) -> Int? in
                guard let address else { return try SocketCalls.send(fd, b, flags: Int32(MSG_DONTWAIT), call: call()) }
                return try address.withSockAddr { (a, n) throws(SystemError) in
                    try SocketCalls.send(fd, b, flags: Int32(MSG_DONTWAIT), to: a, length: n, call: call())
                }
            }
        }.get()
        // MSG_DONTWAIT: a full send buffer is EAGAIN, which this method reports as an error.
        if sent == nil { throw SystemError(call: call(), errno: EAGAIN) }
    }

    /// Waits up to `timeoutNanoseconds` for one datagram and reads it into `buffer`: its
    /// length and sender, or nil when the time passed (or a stop was requested, see ``Interruption``).
    /// A datagram longer than `buffer` is cut (the length returned is what was kept).
    ///
    /// - Throws: ``SystemError`` from `poll(2)` or `recvfrom(2)`, e.g. `ECONNREFUSED` when an
    ///   ICMP port unreachable came back for a connected socket.
    package func receive(into buffer: UnsafeMutableRawBufferPointer, timeoutNanoseconds: UInt64) throws(SystemError) -> (length: Int, from: SocketAddress?)? {
        let ms = Int32(min(timeoutNanoseconds / 1_000_000, UInt64(Int32.max)))
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let n: Int?
        do {
            if try FileCalls.poll(fd, events: Int16(POLLIN), timeoutMilliseconds: ms) == 0 { return nil }
            n = try withUnsafeMutablePointer(to: &storage) { (s) throws(SystemError) in
                try s.withMemoryRebound(to: sockaddr.self, capacity: 1) { (a) throws(SystemError) in
                    try SocketCalls.receive(fd, into: buffer, flags: Int32(MSG_DONTWAIT), from: a, length: &len)
                }
            }
        } catch where error.isStopInterruption {
            return nil // a stop was requested: the caller winds down
        }
        guard let n else { return nil }
        return (n, withUnsafeBytes(of: &storage) { SocketAddress(storage: $0.baseAddress!) })
    }

    /// The IP header's traffic class on every datagram this socket sends: IP_TOS (IPv4) or
    /// IPV6_TCLASS (IPv6); DSCP is its upper six bits.
    ///
    /// - Throws: ``SystemError`` from `setsockopt(2)`.
    package func setTrafficClass(_ value: UInt8) throws(SystemError) {
        if family == AF_INET6 {
            try setOption(level: Int32(IPPROTO_IPV6), name: 67 /* IPV6_TCLASS */, value: Int32(value), call: "IPV6_TCLASS")
        } else {
            try setOption(level: Int32(IPPROTO_IP), name: IP_TOS, value: Int32(value), call: "IP_TOS")
        }
    }
}
