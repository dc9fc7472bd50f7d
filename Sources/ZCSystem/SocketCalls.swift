#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinux

/// Socket system calls as thin wrappers under the one EINTR policy (``Interruption``):
/// each throws ``SystemError`` named after the call (or `call`, when given) and is
/// retried on EINTR unless a stop was requested.
///
/// The send and receive calls that may find nothing to do (MSG_DONTWAIT, a non-blocking
/// socket, a receive timeout) return `nil` for EAGAIN/EWOULDBLOCK instead of throwing,
/// so hot loops need no error path for it.
package enum SocketCalls {
    /// `socket(2)`.
    @inline(__always)
    package static func socket(_ family: Int32, _ type: Int32, _ protocol: Int32 = 0,
                              call: @autoclosure () -> String = "socket") throws(SystemError) -> Int32 {
        try systemCall(call()) { Glibc.socket(family, type, `protocol`) }
    }

    /// `setsockopt(2)` with an `int` value.
    @inline(__always)
    package static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32,
                                 call: @autoclosure () -> String) throws(SystemError) {
        try setOption(fd, level: level, name: name, bytes: value, call: call())
    }

    /// `setsockopt(2)` with a plain-struct value (`timeval`, `ip_mreqn`, `group_req`, ...).
    @inline(__always)
    package static func setOption<Value>(_ fd: Int32, level: Int32, name: Int32, bytes value: Value,
                                                         call: @autoclosure () -> String) throws(SystemError) {
        var v = value
        _ = try withUnsafePointer(to: &v) { (p) throws(SystemError) in
            try systemCall(call()) { Glibc.setsockopt(fd, level, name, p, socklen_t(MemoryLayout<Value>.size)) }
        }
    }

    /// `setsockopt(2)` with `length` raw bytes at `value` (a C string, say).
    @inline(__always)
    package static func setOption(_ fd: Int32, level: Int32, name: Int32, raw value: UnsafeRawPointer, length: Int,
                                 call: @autoclosure () -> String) throws(SystemError) {
        _ = try systemCall(call()) { Glibc.setsockopt(fd, level, name, value, socklen_t(length)) }
    }

    /// `getsockopt(2)` of an `int` value.
    @inline(__always)
    package static func option(_ fd: Int32, level: Int32, name: Int32,
                              call: @autoclosure () -> String) throws(SystemError) -> Int32 {
        var v: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        _ = try systemCall(call()) { Glibc.getsockopt(fd, level, name, &v, &len) }
        return v
    }

    /// `bind(2)`.
    @inline(__always)
    package static func bind(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t,
                            call: @autoclosure () -> String = "bind") throws(SystemError) {
        _ = try systemCall(call()) { Glibc.bind(fd, address, length) }
    }

    /// `connect(2)` (for UDP: fixes the peer; it does not block).
    @inline(__always)
    package static func connect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t,
                               call: @autoclosure () -> String = "connect") throws(SystemError) {
        _ = try systemCall(call()) { Glibc.connect(fd, address, length) }
    }

    /// `getsockname(2)` into `storage`.
    @inline(__always)
    package static func localAddress(_ fd: Int32, into storage: inout sockaddr_storage,
                                    call: @autoclosure () -> String = "getsockname") throws(SystemError) {
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) { (s) throws(SystemError) in
            try s.withMemoryRebound(to: sockaddr.self, capacity: 1) { (a) throws(SystemError) in
                try systemCall(call()) { getsockname(fd, a, &len) }
            }
        }
    }

    /// `sendto(2)` (`address` nil: `send(2)` to the connected peer): the bytes sent, or nil
    /// for EAGAIN/EWOULDBLOCK.
    @inline(__always)
    package static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, flags: Int32,
                            to address: UnsafePointer<sockaddr>? = nil, length: socklen_t = 0,
                            call: @autoclosure () -> String = "sendto") throws(SystemError) -> Int? {
        try nonBlockingSystemCall(call()) { Glibc.sendto(fd, bytes.baseAddress, bytes.count, flags, address, length) }
    }

    /// `recvfrom(2)` into `buffer`, the sender into `from` when given: the bytes received,
    /// or nil for EAGAIN/EWOULDBLOCK (MSG_DONTWAIT, or the receive timeout passed).
    @inline(__always)
    package static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, flags: Int32,
                               from: UnsafeMutablePointer<sockaddr>? = nil, length: UnsafeMutablePointer<socklen_t>? = nil,
                               call: @autoclosure () -> String = "recvfrom") throws(SystemError) -> Int? {
        try nonBlockingSystemCall(call()) { recvfrom(fd, buffer.baseAddress, buffer.count, flags, from, length) }
    }

    /// `sendmmsg(2)` of `count` messages: how many were sent, or nil for EAGAIN/EWOULDBLOCK.
    @inline(__always)
    package static func sendMessages(_ fd: Int32, _ messages: UnsafeMutablePointer<zc_mmsghdr>, count: Int, flags: Int32,
                                    call: @autoclosure () -> String = "sendmmsg") throws(SystemError) -> Int? {
        try nonBlockingSystemCall(call()) { zc_sendmmsg(fd, messages, UInt32(count), flags) }.map(Int.init)
    }

    /// `recvmmsg(2)` into up to `count` messages (no timeout): how many arrived, or nil for
    /// EAGAIN/EWOULDBLOCK (MSG_DONTWAIT, or the socket's receive timeout passed).
    @inline(__always)
    package static func receiveMessages(_ fd: Int32, _ messages: UnsafeMutablePointer<zc_mmsghdr>, count: Int, flags: Int32,
                                       call: @autoclosure () -> String = "recvmmsg") throws(SystemError) -> Int? {
        try nonBlockingSystemCall(call()) { zc_recvmmsg(fd, messages, UInt32(count), flags) }.map(Int.init)
    }

    /// The AF_PACKET TX ring's kick (`sendto` with no data, MSG_DONTWAIT): the bytes the
    /// kernel sent, or nil for EAGAIN/EWOULDBLOCK.
    @inline(__always)
    package static func kickPacketRing(_ fd: Int32, call: @autoclosure () -> String = "sendto(packet ring)") throws(SystemError) -> Int? {
        try nonBlockingSystemCall(call()) { zc_packet_kick(fd) }
    }
}
