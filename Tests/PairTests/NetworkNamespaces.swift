import Foundation
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

    /// Skips the test (with the reason printed) when namespaces cannot be made here.
    init(tag: String, subnet: Int) throws {
        guard isRoot else { throw XCTSkip("needs root to create network namespaces (running as uid \(geteuid()))") }
        let id = "\(tag)\(getpid() % 100000)"
        a = "zc-\(id)-a"; b = "zc-\(id)-b"
        interfaceA = "zc\(id)a"; interfaceB = "zc\(id)b"
        addressA = "198.18.\(subnet).1"; addressB = "198.18.\(subnet).2"
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

    func remove() {
        shell("ip netns del \(a) 2>/dev/null; ip netns del \(b) 2>/dev/null")
    }

    deinit { remove() }
}
