import ZCSystem

/// Who a raw frame is from and to: both ends' link and IP addresses, UDP ports, an
/// optional 802.1Q tag, and the few IP header choices the packet-ring engine makes.
package struct FrameAddressing: Equatable, Sendable {
    /// The Ethernet source: the sending interface's address.
    package var sourceMAC: MACAddress
    /// The Ethernet destination: the receiver's or the next hop's address.
    package var destinationMAC: MACAddress
    /// The IP source address (IPv4 or IPv6, the same family as `destination`).
    package var source: IPAddress
    /// The IP destination address.
    package var destination: IPAddress
    /// The UDP source port, host byte order.
    package var sourcePort: UInt16
    /// The UDP destination port, host byte order.
    package var destinationPort: UInt16
    /// The IPv4 time to live, or the IPv6 hop limit.
    package var ttl: UInt8
    /// Sets IPv4 DF. Frames never exceed the interface MTU (checked at start), so
    /// nothing on the first hop fragments them; DF keeps a smaller MTU further on
    /// from fragmenting silently, as the kernel's own UDP does with PMTU discovery.
    /// (IPv6 routers never fragment.)
    package var dontFragment: Bool
    /// An 802.1Q tag after the Ethernet addresses; nil: untagged.
    package var vlan: VLANTag?
    /// The IPv4 TOS byte / IPv6 traffic class (DSCP << 2 | ECN), as `--tos`/`--dscp` set it.
    package var trafficClass: UInt8 = 0

    /// Addressing with the given ends (both IPv4 or both IPv6); TTL 64 and DF set unless told otherwise.
    package init(sourceMAC: MACAddress, destinationMAC: MACAddress, source: IPAddress, destination: IPAddress,
                sourcePort: UInt16, destinationPort: UInt16, ttl: UInt8 = 64, dontFragment: Bool = true, vlan: VLANTag? = nil) {
        precondition(source.family == destination.family, "FrameAddressing: \(source) and \(destination) are different families")
        self.sourceMAC = sourceMAC
        self.destinationMAC = destinationMAC
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.ttl = ttl
        self.dontFragment = dontFragment
        self.vlan = vlan
    }

    /// IPv4 addressing with the given ends; TTL 64 and DF set unless told otherwise.
    package init(sourceMAC: MACAddress, destinationMAC: MACAddress, sourceIP: IPv4Address, destinationIP: IPv4Address,
                sourcePort: UInt16, destinationPort: UInt16, ttl: UInt8 = 64, dontFragment: Bool = true, vlan: VLANTag? = nil) {
        self.init(sourceMAC: sourceMAC, destinationMAC: destinationMAC, source: .v4(sourceIP), destination: .v4(destinationIP),
                  sourcePort: sourcePort, destinationPort: destinationPort, ttl: ttl, dontFragment: dontFragment, vlan: vlan)
    }

    /// IPv6 frames (else IPv4).
    package var isIPv6: Bool { if case .v6 = source { return true } else { return false } }
}

/// Writes Ethernet II (optionally 802.1Q-tagged) + IPv4 or IPv6 + UDP headers in
/// front of a UDP payload that is already in place, and computes the checksums in
/// software (IPv4 header and UDP; UDP's is mandatory over IPv6).
///
/// Layout of a frame (byte offsets, N = 14, or 18 with a VLAN tag): Ethernet 0..<12
/// (dst MAC, src MAC), [0x8100, TCI at 12..<16], EtherType at N-2 (0x0800 / 0x86DD);
/// IPv4 N..<N+20 (IHL 5, no options) or IPv6 N..<N+40 (no extension headers);
/// UDP 8 bytes; payload from `headerLength` (42, 46, 62 or 66).
///
/// Checksums are ones-complement sums of little-endian loads (RFC 1071: the sum is
/// byte-order independent up to a final swap), so storing the complemented result
/// natively puts the right bytes on the wire. No allocation, no ARC: a value type
/// with a header template copied per frame and a few fields patched.
package struct FrameBuilder: Sendable {
    /// Ethernet II header bytes (no VLAN tag).
    package static let ethernetHeaderSize = 14
    /// An 802.1Q tag's bytes.
    package static let vlanTagSize = 4
    /// IPv4 header bytes (no options).
    package static let ipv4HeaderSize = 20
    /// IPv6 header bytes (no extension headers).
    package static let ipv6HeaderSize = 40
    /// UDP header bytes.
    package static let udpHeaderSize = 8
    /// Bytes in front of the UDP payload of an untagged IPv4 frame.
    package static let headerSize = 42

    /// Bytes in front of the UDP payload: link (with tag) + network + UDP headers.
    package static func headerLength(ipv6: Bool, vlan: Bool) -> Int {
        ethernetHeaderSize + (vlan ? vlanTagSize : 0) + (ipv6 ? ipv6HeaderSize : ipv4HeaderSize) + udpHeaderSize
    }

    /// The addresses every frame carries.
    package let addressing: FrameAddressing
    /// Bytes in front of the UDP payload in this builder's frames.
    package let headerLength: Int
    /// Where the IP header starts (14, or 18 after a VLAN tag).
    package let networkOffset: Int
    /// Where the UDP header starts.
    package let udpOffset: Int
    private let isIPv6: Bool
    /// The constant header bytes (lengths, id and checksums zero), padded to 80.
    private let template: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
    /// Ones-complement partial sum of the IPv4 header's constant words (0 for IPv6: no header checksum).
    private let ipConstantSum: UInt64
    /// Partial sum of the UDP pseudo-header's constant part (addresses, protocol).
    private let pseudoConstantSum: UInt64

    /// Precomputes the constant header bytes and checksum parts for `a`.
    package init(_ a: FrameAddressing) {
        addressing = a
        isIPv6 = a.isIPv6
        networkOffset = FrameBuilder.ethernetHeaderSize + (a.vlan == nil ? 0 : FrameBuilder.vlanTagSize)
        udpOffset = networkOffset + (isIPv6 ? FrameBuilder.ipv6HeaderSize : FrameBuilder.ipv4HeaderSize)
        headerLength = udpOffset + FrameBuilder.udpHeaderSize
        var h = [UInt8](repeating: 0, count: 80)
        for (i, b) in a.destinationMAC.array.enumerated() { h[i] = b }
        for (i, b) in a.sourceMAC.array.enumerated() { h[6 + i] = b }
        if let tag = a.vlan {
            h[12] = 0x81; h[13] = 0x00                    // TPID 802.1Q
            h[14] = UInt8(tag.tagControl >> 8); h[15] = UInt8(tag.tagControl & 255)
        }
        let l3 = networkOffset
        let source = a.source.bytes, destination = a.destination.bytes
        let addressesAt: Int
        if isIPv6 {
            h[l3 - 2] = 0x86; h[l3 - 1] = 0xDD            // EtherType IPv6
            h[l3] = 0x60 | (a.trafficClass >> 4)          // version 6, traffic class (high nibble)
            h[l3 + 1] = (a.trafficClass & 0x0F) << 4      // traffic class (low nibble), flow label 0
            h[l3 + 6] = 17                                // next header: UDP
            h[l3 + 7] = a.ttl                             // hop limit
            addressesAt = l3 + 8
        } else {
            h[l3 - 2] = 0x08; h[l3 - 1] = 0x00            // EtherType IPv4
            h[l3] = 0x45                                  // version 4, IHL 5
            h[l3 + 1] = a.trafficClass                    // TOS (DSCP, ECN); in the header checksum
            h[l3 + 6] = a.dontFragment ? 0x40 : 0         // flags, fragment offset
            h[l3 + 8] = a.ttl
            h[l3 + 9] = 17                                // UDP
            addressesAt = l3 + 12
        }
        for (i, b) in (source + destination).enumerated() { h[addressesAt + i] = b }
        let u = udpOffset
        h[u] = UInt8(a.sourcePort >> 8); h[u + 1] = UInt8(a.sourcePort & 255)
        h[u + 2] = UInt8(a.destinationPort >> 8); h[u + 3] = UInt8(a.destinationPort & 255)
        var t: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &t) { dst in h.withUnsafeBytes { dst.copyMemory(from: $0) } }
        template = t
        let v6 = isIPv6
        ipConstantSum = v6 ? 0 : h.withUnsafeBytes { FrameBuilder.onesComplementSum($0.baseAddress! + l3, count: 20) }
        // The pseudo-header's next-header/protocol word (0x0011) counts as in IPv4;
        // IPv6's 32-bit upper-layer length has zero high half, so both add the 16-bit length.
        pseudoConstantSum = h.withUnsafeBytes { FrameBuilder.onesComplementSum($0.baseAddress! + addressesAt, count: 2 * source.count) }
            &+ UInt64(UInt16(17).bigEndian)
    }

    /// Frame length for a UDP payload of `payloadLength` bytes.
    @inline(__always) package func frameLength(payloadLength: Int) -> Int { headerLength + payloadLength }

    /// Completes the frame at `frame` whose UDP payload (`payloadLength` bytes) is
    /// already written at `frame + headerLength`: headers, IPv4 id, checksums.
    /// Returns the frame length.
    @inline(__always)
    package func finish(_ frame: UnsafeMutableRawPointer, payloadLength: Int, ipID: UInt16) -> Int {
        let udpLength = writeHeaders(frame, payloadLength: payloadLength, ipID: ipID)
        // UDP checksum: pseudo-header (addresses, protocol, UDP length) + UDP header + payload.
        let sum = pseudoConstantSum &+ UInt64(udpLength.bigEndian)
            &+ FrameBuilder.onesComplementSum(UnsafeRawPointer(frame + udpOffset), count: FrameBuilder.udpHeaderSize + payloadLength)
        var check = ~FrameBuilder.fold(sum)
        if check == 0 { check = 0xFFFF } // 0 means "no checksum" over IPv4, and is forbidden over IPv6
        frame.storeBytes(of: check, toByteOffset: udpOffset + 6, as: UInt16.self)
        return headerLength + payloadLength
    }

    /// Completes a super-frame for UDP segmentation after the ring (GSO): the UDP
    /// payload is several whole datagrams back to back, the headers carry the total
    /// lengths, and the UDP checksum field holds the pseudo-header sum only (not
    /// complemented), as the kernel's own UDP GSO leaves it (CHECKSUM_PARTIAL):
    /// the segmenter rewrites each segment's lengths, adjusts that sum and completes
    /// every segment's checksum over its own bytes. Returns the frame length.
    @inline(__always)
    package func finishForSegmentation(_ frame: UnsafeMutableRawPointer, payloadLength: Int, ipID: UInt16) -> Int {
        let udpLength = writeHeaders(frame, payloadLength: payloadLength, ipID: ipID)
        let pseudo = FrameBuilder.fold(pseudoConstantSum &+ UInt64(udpLength.bigEndian))
        frame.storeBytes(of: pseudo, toByteOffset: udpOffset + 6, as: UInt16.self)
        return headerLength + payloadLength
    }

    /// The header template, lengths, IPv4 id and IPv4 header checksum. Returns the UDP length.
    @inline(__always)
    private func writeHeaders(_ frame: UnsafeMutableRawPointer, payloadLength: Int, ipID: UInt16) -> UInt16 {
        // Whole 8-byte words, then one more ending exactly at headerLength
        // (overlapping the last): no memcpy call for a length not known at compile time.
        withUnsafeBytes(of: template) { t in
            var i = 0
            while i &+ 8 <= headerLength {
                frame.storeBytes(of: t.loadUnaligned(fromByteOffset: i, as: UInt64.self), toByteOffset: i, as: UInt64.self)
                i &+= 8
            }
            let last = headerLength &- 8
            frame.storeBytes(of: t.loadUnaligned(fromByteOffset: last, as: UInt64.self), toByteOffset: last, as: UInt64.self)
        }
        let udpLength = UInt16(truncatingIfNeeded: FrameBuilder.udpHeaderSize + payloadLength)
        if isIPv6 {
            frame.storeBytes(of: udpLength.bigEndian, toByteOffset: networkOffset + 4, as: UInt16.self) // payload length
        } else {
            let ipLength = UInt16(truncatingIfNeeded: FrameBuilder.ipv4HeaderSize) &+ udpLength
            frame.storeBytes(of: ipLength.bigEndian, toByteOffset: networkOffset + 2, as: UInt16.self)
            frame.storeBytes(of: ipID.bigEndian, toByteOffset: networkOffset + 4, as: UInt16.self)
            let ipSum = ipConstantSum &+ UInt64(ipLength.bigEndian) &+ UInt64(ipID.bigEndian)
            frame.storeBytes(of: ~FrameBuilder.fold(ipSum), toByteOffset: networkOffset + 10, as: UInt16.self)
        }
        frame.storeBytes(of: udpLength.bigEndian, toByteOffset: udpOffset + 4, as: UInt16.self)
        return udpLength
    }

    /// Ones-complement partial sum of `count` bytes as little-endian words, in a
    /// 64-bit accumulator (fold it with `fold`). An odd trailing byte counts as the
    /// high byte of a zero-padded big-endian word, as RFC 1071 requires, provided
    /// `p` is at an even offset of the checksummed data.
    @inline(__always)
    package static func onesComplementSum(_ p: UnsafeRawPointer, count: Int) -> UInt64 {
        // 32-bit halves of 64-bit words added into 64-bit lanes: no carries to
        // track (each add is < 2^33, so 2^30 words cannot overflow). Four
        // independent SIMD accumulators keep the adds from waiting on each other.
        let mask = SIMD2<UInt64>(repeating: 0xFFFF_FFFF)
        var a0 = SIMD2<UInt64>(), a1 = SIMD2<UInt64>(), a2 = SIMD2<UInt64>(), a3 = SIMD2<UInt64>()
        var i = 0
        while i &+ 64 <= count {
            let v0 = p.loadUnaligned(fromByteOffset: i, as: SIMD2<UInt64>.self)
            let v1 = p.loadUnaligned(fromByteOffset: i &+ 16, as: SIMD2<UInt64>.self)
            let v2 = p.loadUnaligned(fromByteOffset: i &+ 32, as: SIMD2<UInt64>.self)
            let v3 = p.loadUnaligned(fromByteOffset: i &+ 48, as: SIMD2<UInt64>.self)
            a0 &+= (v0 & mask) &+ (v0 &>> 32)
            a1 &+= (v1 & mask) &+ (v1 &>> 32)
            a2 &+= (v2 & mask) &+ (v2 &>> 32)
            a3 &+= (v3 & mask) &+ (v3 &>> 32)
            i &+= 64
        }
        while i &+ 16 <= count {
            let v = p.loadUnaligned(fromByteOffset: i, as: SIMD2<UInt64>.self)
            a0 &+= (v & mask) &+ (v &>> 32)
            i &+= 16
        }
        let v = (a0 &+ a1) &+ (a2 &+ a3)
        var sum = v[0] &+ v[1]
        if i &+ 8 <= count {
            let w = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            sum &+= (w & 0xFFFF_FFFF) &+ (w >> 32)
            i &+= 8
        }
        if i < count {
            // An odd tail is zero-padded: in little-endian loads that makes a
            // trailing byte the high byte of a big-endian word, as RFC 1071 wants.
            var tail: UInt64 = 0
            withUnsafeMutableBytes(of: &tail) { $0.baseAddress!.copyMemory(from: p + i, byteCount: count &- i) }
            sum &+= (tail & 0xFFFF_FFFF) &+ (tail >> 32)
        }
        return sum
    }

    /// Folds a 64-bit ones-complement accumulator to 16 bits (end-around carry).
    @inline(__always)
    package static func fold(_ sum: UInt64) -> UInt16 {
        var s = (sum & 0xFFFF_FFFF) &+ (sum >> 32)
        s = (s & 0xFFFF_FFFF) &+ (s >> 32)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        return UInt16(truncatingIfNeeded: s)
    }

    /// The Internet checksum of `count` bytes (for tests and diagnostics): 0 when
    /// the bytes include a correct checksum field.
    package static func internetChecksum(_ p: UnsafeRawPointer, count: Int, initial: UInt64 = 0) -> UInt16 {
        UInt16(bigEndian: ~fold(initial &+ onesComplementSum(p, count: count)))
    }
}
