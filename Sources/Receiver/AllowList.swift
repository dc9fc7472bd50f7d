#if canImport(Glibc)
import Glibc
#endif
import ZCSystem

/// The sources a receiver accepts (`zc-recv --allow CIDR`, repeatable, IPv4 and IPv6).
/// Rules are kept as precomputed 128-bit masks over ``SourceAddress``'s form (IPv4 as
/// IPv4-mapped IPv6, so `10.0.0.0/8` also matches `::ffff:10.1.2.3` on a dual-stack
/// socket): a check is two ANDs and two compares per rule, no allocation.
public struct AllowList: Sendable, Equatable, CustomStringConvertible {
    /// One CIDR: the network's bits and its mask, in ``SourceAddress``'s two halves.
    public struct Rule: Sendable, Equatable, CustomStringConvertible {
        public var high: UInt64
        public var low: UInt64
        public var maskHigh: UInt64
        public var maskLow: UInt64
        /// As given, e.g. `198.18.80.0/24`.
        public var description: String

        /// Parses `ADDRESS/PREFIX` or a bare address (a host: /32 or /128).
        public init?(_ text: String) {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard let host = parts.first, !host.isEmpty,
                  let address = try? SocketAddress.resolve(host: host.trimmingBrackets, port: 0) else { return nil }
            let source = address.withSockAddr { SourceAddress(sockaddr: UnsafeRawPointer($0), length: Int($1)) }
            let isV4 = address.family == AF_INET
            let width = isV4 ? 32 : 128
            let prefix: Int
            if parts.count == 2 {
                guard let p = Int(parts[1]), (0...width).contains(p) else { return nil }
                prefix = p
            } else {
                prefix = width
            }
            // IPv4 lives in the low 32 bits of the mapped form: its prefix starts at bit 96.
            let bits = isV4 ? 96 + prefix : prefix
            maskHigh = bits >= 64 ? .max : bits == 0 ? 0 : ~(UInt64.max >> UInt64(bits))
            maskLow = bits >= 128 ? .max : bits <= 64 ? 0 : ~(UInt64.max >> UInt64(bits - 64))
            high = source.high & maskHigh
            low = source.low & maskLow
            description = parts.count == 2 ? text : "\(host)/\(width)"
        }

        @inline(__always)
        func matches(_ s: SourceAddress) -> Bool {
            s.high & maskHigh == high && s.low & maskLow == low
        }
    }

    public private(set) var rules: [Rule]

    /// An allow list of `rules` (an empty list allows nothing).
    public init(_ rules: [Rule]) { self.rules = rules }

    /// Parses every CIDR; nil (and the bad one) when one does not parse.
    public static func parse(_ cidrs: [String]) -> Result<AllowList, InvalidCIDR> {
        var rules: [Rule] = []
        for c in cidrs {
            guard let r = Rule(c) else { return .failure(InvalidCIDR(text: c)) }
            rules.append(r)
        }
        return .success(AllowList(rules))
    }

    /// A CIDR that does not parse.
    public struct InvalidCIDR: Error, CustomStringConvertible {
        public var text: String
        public var description: String { "'\(text)' is not an address or CIDR (e.g. 198.18.0.0/15, 2001:db8::/32, 192.0.2.7)" }
    }

    /// True when some rule covers `source`'s address (the port does not matter).
    @inline(__always)
    public func allows(_ source: SourceAddress) -> Bool {
        for i in rules.indices where rules[i].matches(source) { return true }
        return false
    }

    public var description: String { rules.map(\.description).joined(separator: ", ") }
}

/// Datagrams dropped because their source is outside the allow list, per source host, in a
/// bounded table: the first ``capacity`` hosts are counted by name, the rest together.
public struct RefusedSources: Sendable {
    /// Hosts counted by name at most.
    public static let capacity = 64
    /// Datagrams per host (port 0), for the first ``capacity`` hosts seen.
    public private(set) var byHost: [SourceAddress: UInt64] = [:]
    /// Datagrams of hosts beyond the table.
    public private(set) var untracked: UInt64 = 0
    /// All of them.
    public private(set) var total: UInt64 = 0

    public init() {}

    @inline(__always)
    mutating func count(_ source: SourceAddress, datagrams: UInt64) {
        var host = source
        host.port = 0
        total &+= datagrams
        if let n = byHost[host] { byHost[host] = n &+ datagrams }
        else if byHost.count < Self.capacity { byHost[host] = datagrams }
        else { untracked &+= datagrams }
    }

    mutating func merge(_ other: RefusedSources) {
        for (host, n) in other.byHost { count(host, datagrams: n) }
        untracked &+= other.untracked
        total &+= other.untracked
    }
}

extension String {
    /// `[::1]` -> `::1` (a bracketed IPv6 address as people write it next to ports).
    var trimmingBrackets: String {
        hasPrefix("[") && hasSuffix("]") ? String(dropFirst().dropLast()) : self
    }
}
