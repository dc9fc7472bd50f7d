#if canImport(Glibc)
import Glibc
#endif

/// A NETLINK_ROUTE socket that asks the kernel one question at a time: a request
/// goes out, the answers (or the kernel's error) come back. Used at start-up only
/// (route and neighbour look-ups), so messages are plain byte arrays.
///
/// Message layout (linux/netlink.h, linux/rtnetlink.h): a 16-byte `nlmsghdr`
/// (length, type, flags, sequence, port id), a fixed family header (`rtmsg`,
/// `ndmsg`: 12 bytes each), then attributes: `rtattr` (length, type, 2 bytes each)
/// and the value, each padded to 4 bytes (NLMSG_ALIGN / RTA_ALIGN).
package final class NetlinkSocket {
    private let fd: Int32
    private var sequence: UInt32 = 1

    /// Message types (linux/rtnetlink.h).
    package static let newRoute: UInt16 = 24, getRoute: UInt16 = 26
    package static let newNeighbour: UInt16 = 28, getNeighbour: UInt16 = 30
    /// NLMSG_ERROR (an error, or with errno 0 an acknowledgement) and NLMSG_DONE.
    static let errorMessage: UInt16 = 2, doneMessage: UInt16 = 3
    /// nlmsg_flags.
    package static let request: UInt16 = 0x1, acknowledge: UInt16 = 0x4, replace: UInt16 = 0x100, create: UInt16 = 0x400

    /// One message from the kernel: its type and the bytes after the `nlmsghdr`.
    package struct Message {
        package var type: UInt16
        package var body: [UInt8]

        /// The attributes after the first `headerLength` bytes of the body (the family header).
        package func attributes(after headerLength: Int) -> [UInt16: [UInt8]] {
            var out: [UInt16: [UInt8]] = [:]
            var i = headerLength
            while i + 4 <= body.count {
                let length = Int(body.load16(at: i)), type = body.load16(at: i + 2) & 0x3FFF // drop NLA_F_NESTED/NET_BYTEORDER
                guard length >= 4, i + length <= body.count else { break }
                out[type] = Array(body[(i + 4)..<(i + length)])
                i += (length + 3) & ~3
            }
            return out
        }
    }

    /// Opens the socket (no multicast groups: answers to our own requests only).
    package init() throws(SystemError) {
        fd = try SocketCalls.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0 /* NETLINK_ROUTE */,
                                    call: "socket(AF_NETLINK, NETLINK_ROUTE)")
        // An answer that never comes must not hang the sender.
        try? SocketCalls.setOption(fd, level: SOL_SOCKET, name: SO_RCVTIMEO, bytes: timeval(tv_sec: 2, tv_usec: 0), call: "SO_RCVTIMEO")
    }

    deinit { FileCalls.close(fd) }

    /// Appends one attribute (type, value) to `message`, padded to 4 bytes.
    package static func appendAttribute(_ type: UInt16, _ value: [UInt8], to message: inout [UInt8]) {
        message.append16(UInt16(4 + value.count))
        message.append16(type)
        message += value
        while message.count % 4 != 0 { message.append(0) }
    }

    /// Sends a message of `type` whose body (family header and attributes) is `body`,
    /// and returns the kernel's answers up to NLMSG_DONE, the acknowledgement, or the
    /// first answer of a single-answer request. The kernel's error becomes
    /// `SystemError(call: what, errno:)`.
    package func ask(_ type: UInt16, flags: UInt16, body: [UInt8], what: String) throws(SystemError) -> [Message] {
        sequence &+= 1
        var message: [UInt8] = []
        message.append32(UInt32(16 + body.count))
        message.append16(type)
        message.append16(flags | Self.request)
        message.append32(sequence)
        message.append32(0)
        message += body
        // struct sockaddr_nl (Glibc's module lacks it): family, pad, port id 0 (the kernel), groups.
        var kernel: [UInt8] = []
        kernel.append16(UInt16(AF_NETLINK)); kernel.append16(0); kernel.append32(0); kernel.append32(0)
        // (Array.withUnsafeBytes rethrows untyped: the typed error travels in a Result.)
        let sent = try message.withUnsafeBytes { bytes in
            kernel.withUnsafeBytes { k in
                Result { () throws(SystemError) in
                    try SocketCalls.send(fd, bytes, flags: 0, to: k.baseAddress!.assumingMemoryBound(to: sockaddr.self),
                                         length: socklen_t(k.count), call: "sendto(netlink, \(what))")
                }
            }
        }.get()
        guard sent == message.count else { throw SystemError(call: "sendto(netlink, \(what))", errno: sent == nil ? EAGAIN : EMSGSIZE) }

        var answers: [Message] = []
        var buffer = [UInt8](repeating: 0, count: 32 * 1024)
        while true {
            // SO_RCVTIMEO: no answer within 2 s is EAGAIN, an error here.
            let received = try buffer.withUnsafeMutableBytes { b in
                Result { () throws(SystemError) in try SocketCalls.receive(fd, into: b, flags: 0, call: "recv(netlink, \(what))") }
            }.get()
            guard let got = received else { throw SystemError(call: "recv(netlink, \(what))", errno: EAGAIN) }
            var i = 0
            var finished = false
            while i + 16 <= got {
                let length = Int(buffer.load32(at: i))
                guard length >= 16, i + length <= got else { break }
                let answerType = buffer.load16(at: i + 4)
                let answerSequence = buffer.load32(at: i + 8)
                let body = Array(buffer[(i + 16)..<(i + length)])
                i += (length + 3) & ~3
                guard answerSequence == sequence else { continue } // a late answer to an earlier question
                switch answerType {
                case Self.errorMessage:
                    let code = body.count >= 4 ? -Int32(bitPattern: body.load32(at: 0)) : EPROTO
                    if code != 0 { throw SystemError(call: what, errno: code) }
                    finished = true // an acknowledgement
                case Self.doneMessage:
                    finished = true
                default:
                    answers.append(Message(type: answerType, body: body))
                    // A single-answer request (no NLM_F_DUMP) gets one message and no DONE.
                    if flags & 0x300 == 0 && flags & Self.acknowledge == 0 { finished = true }
                }
            }
            if finished { return answers }
        }
    }
}

extension Array where Element == UInt8 {
    /// Appends `v` in host byte order (netlink headers are host-endian).
    mutating func append16(_ v: UInt16) { Swift.withUnsafeBytes(of: v) { append(contentsOf: $0) } }
    mutating func append32(_ v: UInt32) { Swift.withUnsafeBytes(of: v) { append(contentsOf: $0) } }
    /// Reads a host-order integer at byte `offset`.
    func load16(at offset: Int) -> UInt16 { withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt16.self) } }
    func load32(at offset: Int) -> UInt32 { withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) } }
}
