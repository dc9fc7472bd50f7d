#if canImport(Glibc)
import Glibc
#endif
import CLinux
import ZCSystem

/// The sender's address as the kernel reported it, in a fixed-size, hashable form
/// (no allocation to build or compare: it is part of every datagram's stream lookup).
/// IPv4 addresses are kept as IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
public struct SourceAddress: Hashable, Sendable, CustomStringConvertible {
    /// The 16 address bytes, big-endian halves.
    public var high: UInt64
    /// The low 8 address bytes (for IPv4, `0x0000FFFF` followed by the four address bytes).
    public var low: UInt64
    /// The source port, host byte order.
    public var port: UInt16
    /// AF_INET, AF_INET6, or 0 when unknown.
    public var family: UInt16

    /// No address: the kernel gave none (or an unsupported family).
    public static let unknown = SourceAddress(high: 0, low: 0, port: 0, family: 0)

    /// An address from its parts; see the properties for their encoding.
    public init(high: UInt64, low: UInt64, port: UInt16, family: UInt16) {
        self.high = high; self.low = low; self.port = port; self.family = family
    }

    /// Reads a `sockaddr_in` / `sockaddr_in6` the kernel wrote (`length` bytes).
    @inline(__always)
    public init(sockaddr p: UnsafeRawPointer, length: Int) {
        guard length >= 2 else { self = .unknown; return }
        let family = p.loadUnaligned(as: sa_family_t.self)
        if Int32(family) == AF_INET && length >= 8 {
            let port = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            let v4 = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            self.init(high: 0, low: 0xFFFF_0000_0000 | UInt64(v4), port: port, family: UInt16(AF_INET))
        } else if Int32(family) == AF_INET6 && length >= 24 {
            let port = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            let high = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            let low = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
            self.init(high: high, low: low, port: port, family: UInt16(AF_INET6))
        } else {
            self = .unknown
        }
    }

    /// The local address in a control message (IP_PKTINFO / IPV6_PKTINFO), port 0;
    /// ``unknown`` when the message had none.
    @inline(__always)
    init(local: zc_local_address) {
        guard local.family != 0 else { self = .unknown; return }
        var a = local.addr
        let (high, low) = withUnsafeBytes(of: &a) { b in
            (UInt64(bigEndian: b.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
             UInt64(bigEndian: b.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
        self.init(high: high, low: low, port: 0, family: local.family)
    }

    /// The control-message form of this address (for `zc_send_from`).
    var localAddress: zc_local_address {
        var out = zc_local_address()
        out.family = family
        withUnsafeMutableBytes(of: &out.addr) { b in
            b.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
            b.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
        return out
    }

    /// The address to send to (a REPORT goes back here), nil when unknown.
    public var socketAddress: SocketAddress? {
        switch Int32(family) {
        case AF_INET:
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            a.sin_addr.s_addr = UInt32(truncatingIfNeeded: low).bigEndian
            return .v4(a)
        case AF_INET6:
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &a.sin6_addr) { b in
                b.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
                b.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
            }
            return .v6(a)
        default:
            return nil
        }
    }

    /// `HOST:PORT` / `[V6]:PORT`, or "unknown".
    public var description: String { socketAddress?.description ?? "unknown" }
}

/// What identifies a stream: the id the sender picked *and* where it comes from,
/// so two senders that happen to pick the same id are two streams.
public struct StreamKey: Hashable, Sendable {
    /// The id in the datagrams' headers.
    public var streamID: UInt64
    /// The address the datagrams came from.
    public var source: SourceAddress

    /// The key of stream `streamID` from `source`.
    public init(streamID: UInt64, source: SourceAddress) {
        self.streamID = streamID
        self.source = source
    }
}
