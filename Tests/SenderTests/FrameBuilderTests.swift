import Foundation
import XCTest
import Sender
import TestSupport
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

    static var vectorsURL: URL { Repository.vector("frames.json") }

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

    /// IPv6 + UDP behind an 802.1Q tag (VID 100, PCP 5), odd payload length: every
    /// byte, the mandatory UDP checksum included, as an independent Python
    /// implementation (RFC 8200 §8.1 pseudo-header) computed them.
    func testIPv6FrameWithVLANTag() throws {
        let addressing = FrameAddressing(
            sourceMAC: MACAddress("02:00:00:00:00:01")!, destinationMAC: MACAddress("02:00:00:00:00:02")!,
            source: IPAddress("2001:2:70::1")!, destination: IPAddress("2001:2:70::2")!,
            sourcePort: 40000, destinationPort: 9000, ttl: 64, vlan: VLANTag("100:5"))
        let builder = FrameBuilder(addressing)
        XCTAssertEqual(builder.headerLength, 66)
        XCTAssertEqual(FrameBuilder.headerLength(ipv6: true, vlan: true), 66)
        let got = try build(builder, payload: (0..<37).map(UInt8.init), ipID: 7)
        XCTAssertEqual(hex(got), "0200000000020200000000018100a06486dd60000000002d11402001000200700000000000000000000120010002"
                       + "0070000000000000000000029c402328002da7fd000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324")
        XCTAssertEqual(UInt16(got[12]) << 8 | UInt16(got[13]), 0x8100, "TPID")
        XCTAssertEqual(got[14] >> 5, 5, "PCP")
        XCTAssertEqual((UInt16(got[14]) << 8 | UInt16(got[15])) & 0x0FFF, 100, "VID")
    }

    /// IPv4 behind a tag with VID 4094, PCP 0: the IPv4 header moves 4 bytes on and
    /// both checksums stay right (independent Python computation).
    func testIPv4FrameWithVLANTag() throws {
        let addressing = FrameAddressing(
            sourceMAC: MACAddress("02:00:00:00:00:01")!, destinationMAC: MACAddress("02:00:00:00:00:02")!,
            sourceIP: IPv4Address("198.18.70.1")!, destinationIP: IPv4Address("198.18.70.2")!,
            sourcePort: 40000, destinationPort: 9000, vlan: VLANTag(id: 4094))
        let got = try build(FrameBuilder(addressing), payload: (0..<37).map(UInt8.init), ipID: 0x1234)
        XCTAssertEqual(hex(got), "02000000000202000000000181000ffe0800450000411234400040111050c6124601c61246029c402328002dd0bd"
                       + "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324")
    }

    /// --tos/--dscp with packet-ring: the byte lands in the IPv4 TOS field (inside the header
    /// checksum) and in the IPv6 traffic class (split over the first two bytes).
    func testTrafficClassInIPv4AndIPv6Headers() throws {
        var v4 = FrameAddressing(sourceMAC: MACAddress(2, 0, 0, 0, 0, 1), destinationMAC: MACAddress(2, 0, 0, 0, 0, 2),
                                 sourceIP: IPv4Address("198.18.0.1")!, destinationIP: IPv4Address("198.18.0.2")!,
                                 sourcePort: 40000, destinationPort: 9100)
        v4.trafficClass = 0xB8 // DSCP 46 (EF)
        let four = try build(FrameBuilder(v4), payload: Array(repeating: 7, count: 100), ipID: 9)
        XCTAssertEqual(four[15], 0xB8)
        XCTAssertEqual(four.withUnsafeBytes { FrameBuilder.internetChecksum($0.baseAddress! + 14, count: 20) }, 0, "IPv4 header checksum")
        var v6 = FrameAddressing(sourceMAC: MACAddress(2, 0, 0, 0, 0, 1), destinationMAC: MACAddress(2, 0, 0, 0, 0, 2),
                                 source: IPAddress("2001:2:70::1")!, destination: IPAddress("2001:2:70::2")!,
                                 sourcePort: 40000, destinationPort: 9000)
        v6.trafficClass = 0xB8
        let six = try build(FrameBuilder(v6), payload: Array(repeating: 7, count: 100), ipID: 9)
        XCTAssertEqual(six[14], 0x6B, "version 6, traffic class high nibble")
        XCTAssertEqual(six[15], 0x80, "traffic class low nibble, flow label 0")
    }

    /// A GSO super-frame: total lengths in the headers, a correct IPv4 header
    /// checksum, and in the UDP checksum field the pseudo-header sum (not
    /// complemented) for the kernel to finish per segment; the virtio_net_hdr asks
    /// for UDP_L4 segmentation at the datagram size with the checksum at UDP + 6.
    func testSegmentationFrameAndVirtioHeader() throws {
        let addressing = FrameAddressing(
            sourceMAC: MACAddress("02:00:00:00:00:01")!, destinationMAC: MACAddress("02:00:00:00:00:02")!,
            sourceIP: IPv4Address("198.18.70.1")!, destinationIP: IPv4Address("198.18.70.2")!,
            sourcePort: 40000, destinationPort: 9000)
        let builder = FrameBuilder(addressing)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 8192, alignment: 64)
        defer { buffer.deallocate() }
        memset(buffer, 0xEE, 8192)
        let length = builder.finishForSegmentation(buffer, payloadLength: 3000, ipID: 7)
        XCTAssertEqual(length, 42 + 3000)
        let f = Array(UnsafeRawBufferPointer(start: buffer, count: 42))
        func be16(_ i: Int) -> UInt16 { UInt16(f[i]) << 8 | UInt16(f[i + 1]) }
        XCTAssertEqual(be16(16), 3028, "IPv4 total length of the whole super-frame")
        XCTAssertEqual(be16(24), 0x16ea, "IPv4 header checksum (Python)")
        XCTAssertEqual(be16(38), 3008, "UDP length")
        XCTAssertEqual(be16(40), 0x23fa, "pseudo-header sum: ~csum_tcpudp_magic, as the kernel's UDP GSO leaves it")

        let vnet = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 8)
        defer { vnet.deallocate() }
        VirtioNetHeader.writeSegmentation(at: vnet, linearBytes: 42, segmentSize: 1500, udpOffset: 34)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: vnet, count: 10)),
                       [1, 5, 42, 0, 0xDC, 0x05, 34, 0, 6, 0], "flags NEEDS_CSUM, GSO_UDP_L4, hdr_len, gso_size, csum_start, csum_offset (LE)")
        VirtioNetHeader.writePlain(at: vnet, linearBytes: 1514)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: vnet, count: 10)), [0, 0, 0xEA, 0x05, 0, 0, 0, 0, 0, 0])
    }

    func testSegmentationChoice() {
        XCTAssertEqual(PacketRingSegmentation.choose(gso: .auto, datagramSize: 1472, kernelRelease: "6.18.4").segments, 44)
        XCTAssertEqual(PacketRingSegmentation.choose(gso: .auto, datagramSize: 8972, kernelRelease: "6.18.4").segments, 7)
        XCTAssertEqual(PacketRingSegmentation.choose(gso: .segments(8), datagramSize: 1472, kernelRelease: "6.2.0").segments, 8)
        XCTAssertEqual(PacketRingSegmentation.choose(gso: .off, datagramSize: 1472, kernelRelease: "6.18.4").segments, 1)
        let old = PacketRingSegmentation.choose(gso: .auto, datagramSize: 1472, kernelRelease: "6.1.0-13-amd64")
        XCTAssertEqual(old.segments, 1)
        XCTAssertTrue(old.note.hasPrefix("off: kernel 6.1.0-13-amd64"), old.note)
        XCTAssertEqual(VirtioNetHeader.kernelSegmentsPacketFrames(release: "5.15.0"), false)
    }

    func testVLANTagParsing() {
        XCTAssertEqual(VLANTag("100")?.tagControl, 100)
        XCTAssertEqual(VLANTag("100:5")?.tagControl, 0xA064)
        XCTAssertNil(VLANTag("4095"))
        XCTAssertNil(VLANTag("10:8"))
        XCTAssertNil(VLANTag("x"))
        XCTAssertNil(VLANTag("1:2:3"))
    }

    /// An RTM_NEWNEIGH body as the kernel sends it: ndmsg, NDA_DST, NDA_LLADDR.
    func testNeighbourEntryFromNetlink() {
        var body: [UInt8] = [UInt8(AF_INET), 0, 0, 0]
        withUnsafeBytes(of: Int32(7)) { body += $0 }
        withUnsafeBytes(of: UInt16(0x02)) { body += $0 }          // NUD_REACHABLE
        body += [0, 1]
        NetlinkSocket.appendAttribute(1, [198, 18, 70, 2], to: &body)
        NetlinkSocket.appendAttribute(2, [0x5a, 0x89, 0x05, 0xd4, 0xe9, 0x46], to: &body)
        let e = NeighbourTable.Entry(netlinkBody: body)
        XCTAssertEqual(e?.address, IPAddress("198.18.70.2"))
        XCTAssertEqual(e?.interfaceIndex, 7)
        XCTAssertEqual(e?.mac?.description, "5a:89:05:d4:e9:46")
        XCTAssertEqual(e?.isUsable, true)
        body[8] = 0x20                                             // NUD_FAILED
        XCTAssertEqual(NeighbourTable.Entry(netlinkBody: body)?.isUsable, false)
        XCTAssertEqual(IPAddress("2001:2:70::2")?.bytes.count, 16)
        XCTAssertEqual(IPAddress(bytes: IPAddress("2001:2:70::2")!.bytes)?.description, "2001:2:70::2")
        XCTAssertEqual(IPv6Address("fe80::2")?.isLinkLocal, true)
    }

    private func build(_ builder: FrameBuilder, payload: [UInt8], ipID: UInt16) throws -> [UInt8] {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
        defer { buffer.deallocate() }
        memset(buffer, 0xEE, 4096)
        let frame = buffer + 1
        payload.withUnsafeBytes { (frame + builder.headerLength).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let length = builder.finish(frame, payloadLength: payload.count, ipID: ipID)
        XCTAssertEqual(length, builder.headerLength + payload.count)
        return Array(UnsafeRawBufferPointer(start: frame, count: length))
    }

    func testRingGeometry() {
        // 1472-byte datagrams: 1514-byte frames + 32-byte tpacket2 header -> 2048-byte frames, two a page.
        let g = PacketRingGeometry(slots: 256, maxFrameLength: 1514, pageSize: 4096)
        XCTAssertEqual(g.frameSize, 2048)
        XCTAssertEqual(g.blockSize, 4096)
        XCTAssertEqual(g.frames, 256)
        XCTAssertEqual(g.blocks * (g.blockSize / g.frameSize), g.frames)
        // Jumbo: 9014 + 32 -> 16 KiB frames, one a block.
        let j = PacketRingGeometry(slots: 3, maxFrameLength: 9014, pageSize: 4096)
        XCTAssertEqual(j.frameSize, 16384)
        XCTAssertEqual(j.blockSize, 16384)
        XCTAssertEqual(j.frames, 3)
        // Odd pool sizes round up to whole blocks; at least two frames.
        XCTAssertEqual(PacketRingGeometry(slots: 5, maxFrameLength: 1514, pageSize: 4096).frames, 6)
        XCTAssertEqual(PacketRingGeometry(slots: 1, maxFrameLength: 100, pageSize: 4096).frames, 16)
    }

    // MARK: helpers

    struct Xorshift {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state
        }
    }
}
