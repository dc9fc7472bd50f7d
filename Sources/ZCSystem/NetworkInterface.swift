#if canImport(Glibc)
import Glibc
#endif

/// A 48-bit Ethernet address.
public struct MACAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The six octets in wire order.
    public var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

    /// The address `b0:b1:b2:b3:b4:b5`.
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        bytes = (b0, b1, b2, b3, b4, b5)
    }

    /// The address in `array`; nil unless it holds exactly 6 bytes.
    public init?(bytes array: [UInt8]) {
        guard array.count == 6 else { return nil }
        self.init(array[0], array[1], array[2], array[3], array[4], array[5])
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (or `-` separated), case-insensitive.
    public init?(_ text: String) {
        let parts = text.split(separator: text.contains("-") ? "-" : ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard (1...2).contains(p.count), let v = UInt8(p, radix: 16) else { return nil }
            out.append(v)
        }
        self.init(bytes: out)
    }

    /// The six octets as an array, in wire order.
    public var array: [UInt8] { [bytes.0, bytes.1, bytes.2, bytes.3, bytes.4, bytes.5] }
    /// `00:00:00:00:00:00`: what an unresolved neighbour entry shows.
    public var isZero: Bool { array.allSatisfy { $0 == 0 } }
    /// The group bit (least significant bit of the first octet) is set: multicast or broadcast.
    public var isMulticast: Bool { bytes.0 & 1 != 0 }

    /// Lower-case `aa:bb:cc:dd:ee:ff`.
    public var description: String {
        array.map { b in
            let s = String(b, radix: 16)
            return b < 16 ? "0" + s : s
        }.joined(separator: ":")
    }

    /// Equal when all six octets are equal.
    public static func == (l: MACAddress, r: MACAddress) -> Bool { l.array == r.array }
    /// Hashes the six octets.
    public func hash(into h: inout Hasher) { h.combine(array) }
}

/// An IPv4 address as its four bytes in network order (a.b.c.d = bytes 0...3).
public struct IPv4Address: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The address as a host-order integer (a << 24 | b << 16 | c << 8 | d).
    public var value: UInt32

    /// The address whose host-order integer is `value` (`0x7F000001` is 127.0.0.1).
    public init(_ value: UInt32) { self.value = value }

    /// From a `struct in_addr` (network order in memory).
    public init(_ addr: in_addr) { value = UInt32(bigEndian: addr.s_addr) }

    /// Parses dotted-quad text.
    public init?(_ text: String) {
        var addr = in_addr()
        guard inet_pton(AF_INET, text, &addr) == 1 else { return nil }
        self.init(addr)
    }

    /// The address as a `struct in_addr` (network order in memory), for socket calls.
    public var inAddr: in_addr { in_addr(s_addr: value.bigEndian) }

    /// Dotted-quad text, e.g. `198.18.0.2`.
    public var description: String {
        "\(value >> 24).\((value >> 16) & 255).\((value >> 8) & 255).\(value & 255)"
    }

    /// True when `other` lies in this address's subnet of `prefixLength` bits.
    public func sameSubnet(as other: IPv4Address, prefixLength: Int) -> Bool {
        let mask: UInt32 = prefixLength <= 0 ? 0 : prefixLength >= 32 ? .max : ~(UInt32.max >> UInt32(prefixLength))
        return value & mask == other.value & mask
    }
}

/// What the kernel says about one network interface: index, link-layer address,
/// MTU, flags and IPv4 addresses. Read once, at start; nothing here is live.
public struct NetworkInterface: Sendable, Equatable {
    /// The interface name, e.g. `eth0` or `veth1`.
    public let name: String
    /// The kernel's interface index (`if_nametoindex`), as `sockaddr_ll.sll_ifindex` wants it.
    public let index: Int32
    /// ARPHRD_* of the device (1 = Ethernet).
    public let hardwareType: UInt16
    /// The link-layer (hardware) address; all zeros on loopback.
    public let mac: MACAddress
    /// The MTU in bytes: the largest IP packet the link carries, link-layer header excluded.
    public let mtu: Int
    /// The `IFF_*` interface flags (`SIOCGIFFLAGS`), as read at lookup.
    public let flags: Int32
    /// IPv4 addresses with their prefix lengths, primary (first) first.
    public let ipv4: [(address: IPv4Address, prefixLength: Int)]
    /// No hardware behind it (veth, bridge, dummy...): /sys/class/net/NAME/device is absent.
    public let isVirtual: Bool

    public static func == (a: NetworkInterface, b: NetworkInterface) -> Bool {
        a.name == b.name && a.index == b.index && a.hardwareType == b.hardwareType && a.mac == b.mac && a.mtu == b.mtu
            && a.flags == b.flags && a.isVirtual == b.isVirtual
            && a.ipv4.elementsEqual(b.ipv4) { $0.address == $1.address && $0.prefixLength == $1.prefixLength }
    }

    /// Administratively up (`IFF_UP`).
    public var isUp: Bool { flags & Int32(IFF_UP) != 0 }
    /// The carrier is present (IFF_RUNNING): a veth whose peer is down is up but not running.
    public var isRunning: Bool { flags & Int32(IFF_RUNNING) != 0 }
    /// A loopback device (`IFF_LOOPBACK`).
    public var isLoopback: Bool { flags & Int32(IFF_LOOPBACK) != 0 }
    /// An Ethernet device (`ARPHRD_ETHER`), the only kind the packet-ring engine frames for.
    public var isEthernet: Bool { hardwareType == 1 } // ARPHRD_ETHER
    /// The first IPv4 address, nil when the interface has none.
    public var primaryIPv4: IPv4Address? { ipv4.first?.address }

    /// Why ``NetworkInterface/lookup(_:)`` failed.
    public enum LookupError: Error, CustomStringConvertible, Equatable {
        /// The name is empty, too long (`IFNAMSIZ` - 1 characters at most), or contains NUL or `/`.
        case badName(String)
        /// No interface has this name in the caller's network namespace.
        case noSuchInterface(String)
        /// A system call failed while reading the named interface.
        case system(String, SystemError)

        /// One line naming the interface and the problem.
        public var description: String {
            switch self {
            case .badName(let n): return "interface name '\(n)' is not valid (1 to \(Int(IFNAMSIZ) - 1) characters)"
            case .noSuchInterface(let n): return "interface '\(n)' does not exist (see `ip link`)"
            case .system(let n, let e): return "interface '\(n)': \(e)"
            }
        }
    }

    /// Looks `name` up: if_nametoindex, then SIOCGIFHWADDR / SIOCGIFMTU / SIOCGIFFLAGS
    /// on a throwaway datagram socket, then getifaddrs for its IPv4 addresses.
    public static func lookup(_ name: String) throws(LookupError) -> NetworkInterface {
        let utf8 = Array(name.utf8)
        guard !utf8.isEmpty, utf8.count < Int(IFNAMSIZ), !utf8.contains(0), !utf8.contains(UInt8(ascii: "/")) else {
            throw .badName(name)
        }
        let index = if_nametoindex(name)
        guard index != 0 else {
            if errno == ENODEV || errno == ENXIO || errno == ENOENT { throw .noSuchInterface(name) }
            throw .system(name, SystemError(call: "if_nametoindex"))
        }
        let fd: Int32
        do { fd = try SocketCalls.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), call: "socket(AF_INET)") }
        catch { throw .system(name, error) }
        defer { FileCalls.close(fd) }

        func request(_ code: Int, _ what: String) throws(LookupError) -> ifreq {
            var r = ifreq()
            withUnsafeMutableBytes(of: &r.ifr_ifrn.ifrn_name) { dst in
                for (i, b) in utf8.enumerated() { dst[i] = b }
            }
            do throws(SystemError) { try FileCalls.ioctl(fd, UInt(code), &r, call: "ioctl(\(what))") } catch {
                if error.errno == ENODEV { throw .noSuchInterface(name) }
                throw .system(name, error)
            }
            return r
        }
        let hw = try request(Int(SIOCGIFHWADDR), "SIOCGIFHWADDR").ifr_ifru.ifru_hwaddr
        let mac = withUnsafeBytes(of: hw.sa_data) { MACAddress(bytes: Array($0.prefix(6)))! }
        let mtu = Int(try request(Int(SIOCGIFMTU), "SIOCGIFMTU").ifr_ifru.ifru_mtu)
        let flags = Int32(try request(Int(SIOCGIFFLAGS), "SIOCGIFFLAGS").ifr_ifru.ifru_flags)

        var addresses: [(IPv4Address, Int)] = []
        var list: UnsafeMutablePointer<ifaddrs>?
        if getifaddrs(&list) == 0 {
            defer { freeifaddrs(list) }
            var entry = list
            while let e = entry {
                defer { entry = e.pointee.ifa_next }
                guard let addr = e.pointee.ifa_addr, Int32(addr.pointee.sa_family) == AF_INET,
                      String(cString: e.pointee.ifa_name) == name else { continue }
                let a = UnsafeRawPointer(addr).load(as: sockaddr_in.self)
                var prefix = 32
                if let m = e.pointee.ifa_netmask {
                    prefix = UnsafeRawPointer(m).load(as: sockaddr_in.self).sin_addr.s_addr.nonzeroBitCount
                }
                addresses.append((IPv4Address(a.sin_addr), prefix))
            }
        }
        let isVirtual = access("/sys/class/net/\(name)/device", F_OK) != 0
        return NetworkInterface(name: name, index: Int32(index), hardwareType: hw.sa_family, mac: mac, mtu: mtu,
                                flags: flags, ipv4: addresses.map { (address: $0.0, prefixLength: $0.1) }, isVirtual: isVirtual)
    }
}
