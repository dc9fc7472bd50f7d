#if canImport(Glibc)
import Glibc
#endif
import CLinux
import ZCSystem

/// The shape of a TPACKET_V2 TX ring: `frames` frames of `frameSize` bytes in
/// `blocks` blocks of `blockSize` bytes.
public struct PacketRingGeometry: Equatable, Sendable {
    public var frameSize: Int
    public var blockSize: Int
    public var blocks: Int
    public var frames: Int
    /// Bytes mapped.
    public var ringBytes: Int { blockSize * blocks }

    /// Power-of-two frames that hold the largest frame, in blocks of a page (or one
    /// frame, if larger), at least `slots` of them.
    public init(slots: Int, maxFrameLength: Int, pageSize: Int) {
        var frameSize = 64
        while frameSize < Int(zc_tpacket2_data_offset) + maxFrameLength { frameSize <<= 1 }
        let blockSize = max(frameSize, pageSize)
        let perBlock = blockSize / frameSize
        let blocks = max(1, (max(slots, 2) + perBlock - 1) / perBlock)
        self.frameSize = frameSize
        self.blockSize = blockSize
        self.blocks = blocks
        self.frames = blocks * perBlock
    }
}

/// An AF_PACKET socket with its TX ring mapped: the socket, the mapping, and the send
/// buffer the kernel granted. `~Copyable`: the one owner unmaps and closes it, after
/// the kernel handed every frame back.
struct PacketRingSocket: ~Copyable {
    let fd: Int32
    let ring: UnsafeMutableRawPointer
    let ringBytes: Int
    let sendBufferBytes: Int32

    /// TPACKET_V2, optional qdisc bypass and virtio_net_hdr, a send buffer that holds
    /// the whole ring, PACKET_TX_RING, one MAP_POPULATE mapping, bound to the interface
    /// (protocol 0: send only).
    init(target: PacketRingTarget, geometry g: PacketRingGeometry, sendBufferBytes: Int32) throws(SystemError) {
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket(AF_PACKET, SOCK_RAW)") }
        func option(_ name: Int32, _ value: Int32, _ what: String) throws(SystemError) {
            var v = value
            if setsockopt(fd, zc_sol_packet, name, &v, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                let e = SystemError(call: "setsockopt(\(what))"); close(fd); throw e
            }
        }
        try option(zc_packet_version, zc_tpacket_v2, "PACKET_VERSION TPACKET_V2")
        if target.qdiscBypass { try option(zc_packet_qdisc_bypass, 1, "PACKET_QDISC_BYPASS") }
        if target.usesVirtioNetHeader { try option(zc_packet_vnet_hdr, 1, "PACKET_VNET_HDR") }
        // Every frame in flight is charged to the socket (skb + frame bytes): make
        // the send buffer hold the whole ring so it never throttles the kicks.
        let wanted = Int64(g.frames) * Int64(target.maxFrameLength + 1024)
        var v = Int32(clamping: max(Int64(sendBufferBytes), min(wanted, Int64(Int32.max / 2))))
        if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, socklen_t(MemoryLayout<Int32>.size))
        }
        var granted: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &granted, &len)
        if zc_packet_set_tx_ring(fd, UInt32(g.blockSize), UInt32(g.blocks), UInt32(g.frameSize), UInt32(g.frames)) != 0 {
            let e = SystemError(call: "setsockopt(PACKET_TX_RING \(g.frames) frames of \(g.frameSize) B in \(g.blocks) blocks of \(g.blockSize) B)")
            close(fd); throw e
        }
        let mem = mmap(nil, g.ringBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)
        guard let mem, mem != MAP_FAILED else {
            let e = SystemError(call: "mmap(TX ring, \(g.ringBytes) bytes)"); close(fd); throw e
        }
        if zc_packet_bind(fd, target.interface.index, 0) != 0 {
            let e = SystemError(call: "bind(AF_PACKET, \(target.interface.name))")
            munmap(mem, g.ringBytes); close(fd); throw e
        }
        self.fd = fd
        self.ring = mem
        self.ringBytes = g.ringBytes
        self.sendBufferBytes = granted
    }

    deinit {
        munmap(ring, ringBytes)
        close(fd)
    }
}
