#if canImport(Glibc)
import Glibc
#endif

/// The kernel's IPv4 neighbour (ARP) table, as /proc/net/arp shows it for the
/// caller's network namespace. Read on demand; nothing is cached.
public enum NeighbourTable {
    /// One line of the table: an IPv4 neighbour as the kernel resolved it on one device.
    public struct Entry: Equatable, Sendable {
        /// The neighbour's IPv4 address.
        public var address: IPv4Address
        /// Its link-layer address; all zeros while unresolved.
        public var mac: MACAddress
        /// ATF_* flags: 0x2 complete, 0x4 permanent.
        public var flags: UInt32
        /// The interface the entry belongs to, e.g. `eth0`.
        public var device: String

        /// A usable entry: resolved (ATF_COM) with a non-zero address.
        public var isComplete: Bool { flags & 0x2 != 0 && !mac.isZero }
    }

    /// Parses the text of /proc/net/arp:
    /// `IP address  HW type  Flags  HW address  Mask  Device`, one entry a line.
    public static func parse(_ text: String) -> [Entry] {
        var entries: [Entry] = []
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard f.count >= 6, let ip = IPv4Address(String(f[0])), let mac = MACAddress(String(f[3])) else { continue }
            let flagText = f[2].hasPrefix("0x") ? f[2].dropFirst(2) : f[2]
            guard let flags = UInt32(flagText, radix: 16) else { continue }
            entries.append(Entry(address: ip, mac: mac, flags: flags, device: String(f[5])))
        }
        return entries
    }

    /// Every entry the kernel has now.
    public static func read(path: String = "/proc/net/arp") -> [Entry] {
        guard let f = fopen(path, "r") else { return [] }
        defer { fclose(f) }
        var text = ""
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), f) != nil {
            text += buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
        return parse(text)
    }

    /// The resolved MAC of `address` on `device`, or nil when the kernel has no
    /// complete entry for it (never resolved, failed, or incomplete).
    public static func lookup(_ address: IPv4Address, device: String, in entries: [Entry]? = nil) -> MACAddress? {
        (entries ?? read()).first { $0.address == address && $0.device == device && $0.isComplete }?.mac
    }
}
