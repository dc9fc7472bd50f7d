import ZCSystem

/// Who a raw frame is from and to: both ends' link and IPv4 addresses, UDP ports,
/// and the few IPv4 header choices the packet-ring engine makes.
public struct FrameAddressing: Equatable, Sendable {
    /// The Ethernet source: the sending interface's address.
    public var sourceMAC: MACAddress
    /// The Ethernet destination: the receiver's or the next hop's address.
    public var destinationMAC: MACAddress
    /// The IPv4 source address.
    public var sourceIP: IPv4Address
    /// The IPv4 destination address.
    public var destinationIP: IPv4Address
    /// The UDP source port, host byte order.
    public var sourcePort: UInt16
    /// The UDP destination port, host byte order.
    public var destinationPort: UInt16
    /// The IPv4 time to live.
    public var ttl: UInt8
    /// Sets IPv4 DF. Frames never exceed the interface MTU (checked at start), so
    /// nothing on the first hop fragments them; DF keeps a smaller MTU further on
    /// from fragmenting silently, as the kernel's own UDP does with PMTU discovery.
    public var dontFragment: Bool

    /// Addressing with the given ends; TTL 64 and DF set unless told otherwise.
    public init(sourceMAC: MACAddress, destinationMAC: MACAddress, sourceIP: IPv4Address, destinationIP: IPv4Address,
                sourcePort: UInt16, destinationPort: UInt16, ttl: UInt8 = 64, dontFragment: Bool = true) {
        self.sourceMAC = sourceMAC
        self.destinationMAC = destinationMAC
        self.sourceIP = sourceIP
        self.destinationIP = destinationIP
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.ttl = ttl
        self.dontFragment = dontFragment
    }
}

/// Writes Ethernet II + IPv4 + UDP headers in front of a UDP payload that is
/// already in place, and computes both checksums in software.
///
/// Layout of a frame (byte offsets): Ethernet 0..<14 (dst MAC, src MAC, 0x0800),
/// IPv4 14..<34 (IHL 5, TOS 0, no options), UDP 34..<42, payload from 42.
///
/// Checksums are ones-complement sums of little-endian loads (RFC 1071: the sum is
/// byte-order independent up to a final swap), so storing the complemented result
/// natively puts the right bytes on the wire. No allocation, no ARC: a value type
/// with a 42-byte template copied per frame and three fields patched.
public struct FrameBuilder: Sendable {
    /// Ethernet II header bytes (no VLAN tag).
    public static let ethernetHeaderSize = 14
    /// IPv4 header bytes (no options).
    public static let ipv4HeaderSize = 20
    /// UDP header bytes.
    public static let udpHeaderSize = 8
    /// Bytes in front of the UDP payload.
    public static let headerSize = 42
    /// Offsets of the per-frame fields.
    static let ipTotalLengthOffset = 16
    static let ipIDOffset = 18
    static let ipChecksumOffset = 24
    static let udpOffset = 34
    static let udpLengthOffset = 38
    static let udpChecksumOffset = 40

    /// The addresses every frame carries.
    public let addressing: FrameAddressing
    /// The 42 constant header bytes (length, id and checksums zero), padded to 48.
    private let template: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
    /// Ones-complement partial sum of the IPv4 header's constant words.
    private let ipConstantSum: UInt64
    /// Partial sum of the UDP pseudo-header's constant part (addresses, protocol).
    private let pseudoConstantSum: UInt64

    /// Precomputes the constant header bytes and checksum parts for `a`.
    public init(_ a: FrameAddressing) {
        addressing = a
        var h = [UInt8](repeating: 0, count: 48)
        for (i, b) in a.destinationMAC.array.enumerated() { h[i] = b }
        for (i, b) in a.sourceMAC.array.enumerated() { h[6 + i] = b }
        h[12] = 0x08; h[13] = 0x00                        // EtherType IPv4
        h[14] = 0x45                                      // version 4, IHL 5
        h[15] = 0                                         // DSCP/ECN
        h[20] = a.dontFragment ? 0x40 : 0; h[21] = 0      // flags, fragment offset
        h[22] = a.ttl
        h[23] = 17                                        // UDP
        for i in 0..<4 {
            h[26 + i] = UInt8(truncatingIfNeeded: a.sourceIP.value >> (24 - 8 * UInt32(i)))
            h[30 + i] = UInt8(truncatingIfNeeded: a.destinationIP.value >> (24 - 8 * UInt32(i)))
        }
        h[34] = UInt8(a.sourcePort >> 8); h[35] = UInt8(a.sourcePort & 255)
        h[36] = UInt8(a.destinationPort >> 8); h[37] = UInt8(a.destinationPort & 255)
        var t: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &t) { dst in h.withUnsafeBytes { dst.copyMemory(from: $0) } }
        template = t
        ipConstantSum = h.withUnsafeBytes { FrameBuilder.onesComplementSum($0.baseAddress! + 14, count: 20) }
        pseudoConstantSum = h.withUnsafeBytes { FrameBuilder.onesComplementSum($0.baseAddress! + 26, count: 8) }
            &+ UInt64(UInt16(17).bigEndian)
    }

    /// Frame length for a UDP payload of `payloadLength` bytes.
    @inline(__always) public static func frameLength(payloadLength: Int) -> Int { headerSize + payloadLength }

    /// Completes the frame at `frame` whose UDP payload (`payloadLength` bytes) is
    /// already written at `frame + headerSize`: headers, IPv4 id, both checksums.
    /// Returns the frame length.
    @inline(__always)
    public func finish(_ frame: UnsafeMutableRawPointer, payloadLength: Int, ipID: UInt16) -> Int {
        withUnsafeBytes(of: template) { frame.copyMemory(from: $0.baseAddress!, byteCount: FrameBuilder.headerSize) }
        let ipLength = UInt16(truncatingIfNeeded: FrameBuilder.ipv4HeaderSize + FrameBuilder.udpHeaderSize + payloadLength)
        let udpLength = UInt16(truncatingIfNeeded: FrameBuilder.udpHeaderSize + payloadLength)
        frame.storeBytes(of: ipLength.bigEndian, toByteOffset: FrameBuilder.ipTotalLengthOffset, as: UInt16.self)
        frame.storeBytes(of: ipID.bigEndian, toByteOffset: FrameBuilder.ipIDOffset, as: UInt16.self)
        let ipSum = ipConstantSum &+ UInt64(ipLength.bigEndian) &+ UInt64(ipID.bigEndian)
        frame.storeBytes(of: ~FrameBuilder.fold(ipSum), toByteOffset: FrameBuilder.ipChecksumOffset, as: UInt16.self)
        frame.storeBytes(of: udpLength.bigEndian, toByteOffset: FrameBuilder.udpLengthOffset, as: UInt16.self)
        // UDP checksum: pseudo-header (addresses, protocol, UDP length) + UDP header + payload.
        let sum = pseudoConstantSum &+ UInt64(udpLength.bigEndian)
            &+ FrameBuilder.onesComplementSum(UnsafeRawPointer(frame + FrameBuilder.udpOffset),
                                              count: FrameBuilder.udpHeaderSize + payloadLength)
        var check = ~FrameBuilder.fold(sum)
        if check == 0 { check = 0xFFFF } // 0 means "no checksum" in UDP over IPv4
        frame.storeBytes(of: check, toByteOffset: FrameBuilder.udpChecksumOffset, as: UInt16.self)
        return FrameBuilder.headerSize + payloadLength
    }

    /// Ones-complement partial sum of `count` bytes as little-endian words, in a
    /// 64-bit accumulator (fold it with `fold`). An odd trailing byte counts as the
    /// high byte of a zero-padded big-endian word, as RFC 1071 requires, provided
    /// `p` is at an even offset of the checksummed data.
    @inline(__always)
    public static func onesComplementSum(_ p: UnsafeRawPointer, count: Int) -> UInt64 {
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
    public static func fold(_ sum: UInt64) -> UInt16 {
        var s = (sum & 0xFFFF_FFFF) &+ (sum >> 32)
        s = (s & 0xFFFF_FFFF) &+ (s >> 32)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        return UInt16(truncatingIfNeeded: s)
    }

    /// The Internet checksum of `count` bytes (for tests and diagnostics): 0 when
    /// the bytes include a correct checksum field.
    public static func internetChecksum(_ p: UnsafeRawPointer, count: Int, initial: UInt64 = 0) -> UInt16 {
        UInt16(bigEndian: ~fold(initial &+ onesComplementSum(p, count: count)))
    }
}
