import Foundation
import XCTest
import Sender
import ZCSystem

/// The packet-ring engine's frames, byte for byte, against Protocol/vectors/frames.json
/// (written by Protocol/tools/gen-frame-vectors, an independent Python implementation
/// whose frames tshark also verifies), plus the checksum arithmetic on its own.
final class FrameBuilderTests: XCTestCase {
    struct Addressing: Decodable {
        var src_mac: String, dst_mac: String, src_ip: String, dst_ip: String
        var src_port: UInt16, dst_port: UInt16, ttl: UInt8, dont_fragment: Bool
    }
    struct Vector: Decodable {
        var name: String
        var addressing: Addressing
        var ip_id: UInt16
        var payload_hex: String
        var ip_checksum: UInt16
        var udp_checksum: UInt16
        var frame_hex: String
    }

    static var vectorsURL: URL {
        if let dir = ProcessInfo.processInfo.environment["ZC_VECTORS_DIR"] {
            return URL(fileURLWithPath: dir).appendingPathComponent("frames.json")
        }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Protocol/vectors/frames.json")
    }

    func testGoldenFrames() throws {
        let vectors = try JSONDecoder().decode([Vector].self, from: Data(contentsOf: Self.vectorsURL))
        XCTAssertGreaterThanOrEqual(vectors.count, 5)
        for v in vectors {
            let a = v.addressing
            let addressing = FrameAddressing(
                sourceMAC: try XCTUnwrap(MACAddress(a.src_mac)), destinationMAC: try XCTUnwrap(MACAddress(a.dst_mac)),
                sourceIP: try XCTUnwrap(IPv4Address(a.src_ip)), destinationIP: try XCTUnwrap(IPv4Address(a.dst_ip)),
                sourcePort: a.src_port, destinationPort: a.dst_port, ttl: a.ttl, dontFragment: a.dont_fragment)
            let builder = FrameBuilder(addressing)
            let payload = try bytes(hex: v.payload_hex)
            let expected = try bytes(hex: v.frame_hex)
            // Odd buffer offset: nothing may assume alignment.
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
            defer { buffer.deallocate() }
            memset(buffer, 0xEE, 4096) // stale bytes from an earlier frame must not leak through
            let frame = buffer + 3
            payload.withUnsafeBytes { (frame + FrameBuilder.headerSize).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            let length = builder.finish(frame, payloadLength: payload.count, ipID: v.ip_id)
            XCTAssertEqual(length, expected.count, v.name)
            let got = Array(UnsafeRawBufferPointer(start: frame, count: length))
            XCTAssertEqual(hex(got), v.frame_hex, v.name)
            XCTAssertEqual(UInt16(got[24]) << 8 | UInt16(got[25]), v.ip_checksum, "\(v.name): IPv4 checksum")
            XCTAssertEqual(UInt16(got[40]) << 8 | UInt16(got[41]), v.udp_checksum, "\(v.name): UDP checksum")
        }
    }

    /// The receiver's view: a correct header sums to 0xFFFF (checksum 0), and so
    /// does the UDP pseudo-header + UDP header + payload.
    func testChecksumsVerify() {
        let a = FrameAddressing(sourceMAC: MACAddress(2, 0, 0, 0, 0, 1), destinationMAC: MACAddress(2, 0, 0, 0, 0, 2),
                                sourceIP: IPv4Address("198.18.0.1")!, destinationIP: IPv4Address("198.18.0.2")!,
                                sourcePort: 40000, destinationPort: 9100)
        let builder = FrameBuilder(a)
        let frame = UnsafeMutableRawPointer.allocate(byteCount: 9100, alignment: 16)
        defer { frame.deallocate() }
        var rng = Xorshift(state: 0x9E37_79B9_7F4A_7C15)
        for length in [0, 1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1471, 1472, 8972, 9000] {
            for i in 0..<length { frame.storeBytes(of: UInt8(truncatingIfNeeded: rng.next()), toByteOffset: 42 + i, as: UInt8.self) }
            let n = builder.finish(frame, payloadLength: length, ipID: UInt16(truncatingIfNeeded: length))
            XCTAssertEqual(n, 42 + length)
            XCTAssertEqual(FrameBuilder.internetChecksum(frame + 14, count: 20), 0, "IPv4 header, payload \(length)")
            var pseudo = [UInt8]([198, 18, 0, 1, 198, 18, 0, 2, 0, 17, UInt8((8 + length) >> 8), UInt8((8 + length) & 255)])
            let pseudoSum = pseudo.withUnsafeMutableBytes { FrameBuilder.onesComplementSum($0.baseAddress!, count: 12) }
            XCTAssertEqual(FrameBuilder.internetChecksum(frame + 34, count: 8 + length, initial: pseudoSum), 0, "UDP, payload \(length)")
            XCTAssertNotEqual(frame.load(fromByteOffset: 40, as: UInt16.self), 0, "a UDP checksum of 0 means none")
        }
    }

    /// The SIMD sum against the textbook one (big-endian 16-bit words), at every
    /// length and alignment around the vector boundaries.
    func testOnesComplementSumMatchesReference() {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 600, alignment: 64)
        defer { buffer.deallocate() }
        var rng = Xorshift(state: 42)
        for i in 0..<600 { buffer.storeBytes(of: UInt8(truncatingIfNeeded: rng.next()), toByteOffset: i, as: UInt8.self) }
        for start in [0, 1, 2, 5, 8] {
            for count in 0...260 {
                let p = UnsafeRawPointer(buffer + start)
                var reference: UInt32 = 0
                var i = 0
                while i < count {
                    let hi = UInt32(p.load(fromByteOffset: i, as: UInt8.self))
                    let lo = i + 1 < count ? UInt32(p.load(fromByteOffset: i + 1, as: UInt8.self)) : 0
                    reference += hi << 8 | lo
                    i += 2
                }
                while reference >> 16 != 0 { reference = (reference & 0xFFFF) + (reference >> 16) }
                let expected = ~UInt16(reference)
                XCTAssertEqual(FrameBuilder.internetChecksum(p, count: count), expected, "start \(start) count \(count)")
            }
        }
        // All-ones input must not overflow or fold wrongly.
        memset(buffer, 0xFF, 600)
        XCTAssertEqual(FrameBuilder.internetChecksum(buffer, count: 600), 0)
    }

    func testAddressParsing() {
        XCTAssertEqual(MACAddress("02:00:00:00:00:0a")?.description, "02:00:00:00:00:0a")
        XCTAssertEqual(MACAddress("AA-BB-CC-DD-EE-FF")?.description, "aa:bb:cc:dd:ee:ff")
        XCTAssertNil(MACAddress("02:00:00:00:00"))
        XCTAssertNil(MACAddress("02:00:00:00:00:100"))
        XCTAssertNil(MACAddress("zz:00:00:00:00:00"))
        XCTAssertEqual(IPv4Address("198.18.0.2")?.value, 0xC612_0002)
        XCTAssertEqual(IPv4Address(0xC612_0002).description, "198.18.0.2")
        XCTAssertNil(IPv4Address("198.18.0"))
        XCTAssertTrue(IPv4Address("198.18.0.1")!.sameSubnet(as: IPv4Address("198.18.0.200")!, prefixLength: 24))
        XCTAssertFalse(IPv4Address("198.18.0.1")!.sameSubnet(as: IPv4Address("198.18.1.1")!, prefixLength: 24))
        XCTAssertTrue(IPv4Address("198.18.0.1")!.sameSubnet(as: IPv4Address("198.19.1.1")!, prefixLength: 15))
    }

    func testNeighbourTableParse() {
        let text = """
        IP address       HW type     Flags       HW address            Mask     Device
        198.18.0.2       0x1         0x2         5a:89:05:d4:e9:46     *        veth0
        198.18.0.3       0x1         0x0         00:00:00:00:00:00     *        veth0
        198.18.9.2       0x1         0x6         02:00:00:00:00:02     *        sink0
        192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0

        """
        let entries = NeighbourTable.parse(text)
        XCTAssertEqual(entries.count, 4)
        XCTAssertEqual(NeighbourTable.lookup(IPv4Address("198.18.0.2")!, device: "veth0", in: entries)?.description, "5a:89:05:d4:e9:46")
        XCTAssertNil(NeighbourTable.lookup(IPv4Address("198.18.0.3")!, device: "veth0", in: entries), "incomplete entry")
        XCTAssertEqual(NeighbourTable.lookup(IPv4Address("198.18.9.2")!, device: "sink0", in: entries)?.description, "02:00:00:00:00:02")
        XCTAssertNil(NeighbourTable.lookup(IPv4Address("198.18.9.2")!, device: "veth0", in: entries), "other device")
    }

    func testRingGeometry() {
        // 1472-byte datagrams: 1514-byte frames + 32-byte tpacket2 header -> 2048-byte frames, two a page.
        let g = PacketRingEngine.geometry(poolSlots: 256, maxFrameLength: 1514, pageSize: 4096)
        XCTAssertEqual(g.frameSize, 2048)
        XCTAssertEqual(g.blockSize, 4096)
        XCTAssertEqual(g.frames, 256)
        XCTAssertEqual(g.blocks * (g.blockSize / g.frameSize), g.frames)
        // Jumbo: 9014 + 32 -> 16 KiB frames, one a block.
        let j = PacketRingEngine.geometry(poolSlots: 3, maxFrameLength: 9014, pageSize: 4096)
        XCTAssertEqual(j.frameSize, 16384)
        XCTAssertEqual(j.blockSize, 16384)
        XCTAssertEqual(j.frames, 3)
        // Odd pool sizes round up to whole blocks; at least two frames.
        XCTAssertEqual(PacketRingEngine.geometry(poolSlots: 5, maxFrameLength: 1514, pageSize: 4096).frames, 6)
        XCTAssertEqual(PacketRingEngine.geometry(poolSlots: 1, maxFrameLength: 100, pageSize: 4096).frames, 16)
    }

    // MARK: helpers

    struct Xorshift {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state
        }
    }

    struct HexError: Error {}

    func bytes(hex: String) throws -> [UInt8] {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0 else { throw HexError() }
        return try stride(from: 0, to: chars.count, by: 2).map { i in
            guard let b = UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16) else { throw HexError() }
            return b
        }
    }

    func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }
}
