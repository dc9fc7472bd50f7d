import Foundation
import TestSupport
import XCTest

/// Two network namespaces joined by a veth pair, made for one test and removed
/// after it. Addresses come from 198.18.0.0/15 (the benchmarking range).
final class NamespacePair {
    let a: String
    let b: String
    let interfaceA: String
    let interfaceB: String
    let addressA: String
    let addressB: String
    /// IPv6 addresses (2001:2:SUBNET::1 and ::2, /64) once `addIPv6()` added them.
    let addressA6: String
    let addressB6: String
    let subnet: Int

    /// Skips the test (with the reason printed) when namespaces cannot be made here.
    init(tag: String, subnet: Int) throws {
        guard isRoot else { throw XCTSkip("needs root to create network namespaces (running as uid \(geteuid()))") }
        let id = "\(tag)\(getpid() % 100000)"
        a = "zc-\(id)-a"; b = "zc-\(id)-b"
        interfaceA = "zc\(id)a"; interfaceB = "zc\(id)b"
        addressA = "198.18.\(subnet).1"; addressB = "198.18.\(subnet).2"
        addressA6 = "2001:2:\(subnet)::1"; addressB6 = "2001:2:\(subnet)::2"
        self.subnet = subnet
        let setup = [
            "ip netns add \(a)", "ip netns add \(b)",
            "ip link add \(interfaceA) netns \(a) type veth peer name \(interfaceB) netns \(b)",
            "ip -n \(a) addr add \(addressA)/24 dev \(interfaceA)", "ip -n \(b) addr add \(addressB)/24 dev \(interfaceB)",
            "ip -n \(a) link set lo up", "ip -n \(b) link set lo up",
            "ip -n \(a) link set \(interfaceA) up", "ip -n \(b) link set \(interfaceB) up",
        ]
        for command in setup {
            let r = shell(command)
            if r.status != 0 {
                remove()
                throw XCTSkip("cannot build the namespace pair: `\(command)` failed: \(r.output)")
            }
        }
    }

    /// Runs a command inside namespace `ns`, failing the test if it fails.
    func run(_ ns: String, _ command: String, file: StaticString = #filePath, line: UInt = #line) {
        let r = shell("ip netns exec \(ns) \(command)")
        XCTAssertEqual(r.status, 0, "`\(command)` in \(ns): \(r.output)", file: file, line: line)
    }

    /// Adds the IPv6 addresses, and link-local ones (fe80::SUBNET:1 and :2), all
    /// nodad: usable at once. The link-local ones matter: the kernel sends a
    /// neighbour solicitation only from a link-local address that finished duplicate
    /// detection, and the automatic one is still tentative for a second or two.
    func addIPv6(file: StaticString = #filePath, line: UInt = #line) {
        run(a, "ip addr add \(addressA6)/64 dev \(interfaceA) nodad", file: file, line: line)
        run(b, "ip addr add \(addressB6)/64 dev \(interfaceB) nodad", file: file, line: line)
        run(a, "ip addr add \(linkLocalA6)/64 dev \(interfaceA) nodad", file: file, line: line)
        run(b, "ip addr add \(linkLocalB6)/64 dev \(interfaceB) nodad", file: file, line: line)
    }

    var linkLocalA6: String { "fe80::\(subnet):1" }
    var linkLocalB6: String { "fe80::\(subnet):2" }

    /// The MAC address of `interface` in namespace `ns`.
    func mac(_ ns: String, _ interface: String) -> String {
        shell("ip netns exec \(ns) cat /sys/class/net/\(interface)/address").output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func remove() {
        shell("ip netns del \(a) 2>/dev/null; ip netns del \(b) 2>/dev/null")
    }

    deinit { remove() }
}
