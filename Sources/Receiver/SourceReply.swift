#if canImport(Glibc)
import Glibc
#endif
import CLinux
import ZCSystem

/// The one way a receiver answers a stream's source (its REPORT, a reliable stream's STATUS
/// and NAK): from the receiving socket, and from the address the stream was sent to when the
/// socket is bound to a wildcard (a sender's connected socket accepts only that address).
enum SourceReply {
    /// Sends `bytes` to `destination` without blocking; nil when sent, else why not.
    static func send(_ bytes: UnsafeRawBufferPointer, fd: Int32, to destination: SocketAddress, from local: SourceAddress) -> SystemError? {
        if local.family != 0 {
            var from = local.localAddress
            let sent = destination.withSockAddr { a, n in zc_send_from(fd, bytes.baseAddress, bytes.count, a, n, &from, Int32(MSG_DONTWAIT)) }
            guard sent < 0 else { return nil }
            let code = errno
            return SystemError(call: "sendmsg(\(destination), from \(local.socketAddress?.host ?? "?"))", errno: code)
        }
        do {
            let sent = try destination.withSockAddr { (a, n) throws(SystemError) in
                try SocketCalls.send(fd, bytes, flags: Int32(MSG_DONTWAIT), to: a, length: n, call: "sendto(\(destination))")
            }
            // MSG_DONTWAIT: a full send buffer is EAGAIN, reported like any failure.
            return sent == nil ? SystemError(call: "sendto(\(destination))", errno: EAGAIN) : nil
        } catch {
            return error
        }
    }
}
