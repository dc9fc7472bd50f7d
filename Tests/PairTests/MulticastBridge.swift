import Foundation
import TestSupport
import XCTest

/// A Linux bridge in its own namespace with one host namespace per port: a small
/// switched LAN for multicast tests, made for one test and removed after it.
/// IGMP/MLD snooping is off, so the bridge floods group traffic to every port and
/// each host's own socket membership decides what it receives (the test of the
/// join, not of the switch). Addresses: 198.18.`subnet`.N/24 and 2001:2:`subnet`::N/64.
final class MulticastBridge {
    struct Host {
        let namespace: String
        let interface: String
        let ipv4: String
        let ipv6: String
    }

    let bridge: String
    private(set) var hosts: [Host] = []

    /// Skips the test (with the reason printed) when namespaces cannot be made here.
    init(tag: String, subnet: Int, hosts count: Int) throws {
        guard isRoot else { throw XCTSkip("needs root to create network namespaces (running as uid \(geteuid()))") }
        let id = "\(tag)\(getpid() % 100000)"
        bridge = "zc-\(id)-br"
        var setup = [
            "ip netns add \(bridge)",
            "ip -n \(bridge) link add br0 type bridge",
            "ip -n \(bridge) link set br0 type bridge mcast_snooping 0",
            "ip -n \(bridge) link set br0 up",
        ]
        for n in 1...count {
            let host = Host(namespace: "zc-\(id)-h\(n)", interface: "zc\(id)h\(n)",
                            ipv4: "198.18.\(subnet).\(n)", ipv6: "2001:2:\(subnet)::\(n)")
            hosts.append(host)
            setup += [
                "ip netns add \(host.namespace)",
                "ip link add \(host.interface) netns \(host.namespace) type veth peer name p\(n) netns \(bridge)",
                "ip -n \(bridge) link set p\(n) master br0", "ip -n \(bridge) link set p\(n) up",
                "ip -n \(host.namespace) link set lo up", "ip -n \(host.namespace) link set \(host.interface) up",
                "ip -n \(host.namespace) addr add \(host.ipv4)/24 dev \(host.interface)",
                "ip -n \(host.namespace) addr add \(host.ipv6)/64 dev \(host.interface) nodad",
            ]
        }
        for command in setup {
            let r = shell(command)
            if r.status != 0 {
                remove()
                throw XCTSkip("cannot build the bridge: `\(command)` failed: \(r.output)")
            }
        }
    }

    func remove() {
        let namespaces = [bridge] + hosts.map(\.namespace)
        shell(namespaces.map { "ip netns del \($0) 2>/dev/null" }.joined(separator: "; "))
    }

    deinit { remove() }
}
