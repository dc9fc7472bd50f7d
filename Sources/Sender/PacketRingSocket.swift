#if canImport(Glibc)
import Glibc
#endif
import CLinux
import ZCSystem

/// The shape of a TPACKET_V2 TX ring: `frames` frames of `frameSize` bytes in
/// `blocks` blocks of `blockSize` bytes.
package struct PacketRingGeometry: Equatable, Sendable {
    package var frameSize: Int
    package var blockSize: Int
    package var blocks: Int
    package var frames: Int
    /// Bytes mapped.
    package var ringBytes: Int { blockSize * blocks }

    /// Power-of-two frames that hold the largest frame, in blocks of a page (or one
    /// frame, if larger), at least `slots` of them.
    package init(slots: Int, maxFrameLength: Int, pageSize: Int) {
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
        let fd = try SocketCalls.socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0,
                                        call: "socket(AF_PACKET, SOCK_RAW)")
        do throws(SystemError) {
            (self.ring, self.sendBufferBytes) = try Self.setUp(fd, target: target, geometry: g, sendBufferBytes: sendBufferBytes)
        } catch {
            _ = FileCalls.close(fd)
            throw error
        }
        self.fd = fd
        self.ringBytes = g.ringBytes
    }

    private static func setUp(_ fd: Int32, target: PacketRingTarget, geometry g: PacketRingGeometry,
                              sendBufferBytes: Int32) throws(SystemError) -> (UnsafeMutableRawPointer, Int32) {
        func option(_ name: Int32, _ value: Int32, _ what: String) throws(SystemError) {
            try SocketCalls.setOption(fd, level: zc_sol_packet, name: name, value: value, call: "setsockopt(\(what))")
        }
        try option(zc_packet_version, zc_tpacket_v2, "PACKET_VERSION TPACKET_V2")
        if target.qdiscBypass { try option(zc_packet_qdisc_bypass, 1, "PACKET_QDISC_BYPASS") }
        if target.usesVirtioNetHeader { try option(zc_packet_vnet_hdr, 1, "PACKET_VNET_HDR") }
        // Every frame in flight is charged to the socket (skb + frame bytes): make
        // the send buffer hold the whole ring so it never throttles the kicks.
        // SO_SNDBUFFORCE passes the sysctl cap with CAP_NET_ADMIN; without it, SO_SNDBUF.
        let wanted = Int64(g.frames) * Int64(target.maxFrameLength + 1024)
        let size = Int32(clamping: max(Int64(sendBufferBytes), min(wanted, Int64(Int32.max / 2))))
        do { try SocketCalls.setOption(fd, level: SOL_SOCKET, name: SO_SNDBUFFORCE, value: size, call: "setsockopt(SO_SNDBUFFORCE)") }
        catch { try? SocketCalls.setOption(fd, level: SOL_SOCKET, name: SO_SNDBUF, value: size, call: "setsockopt(SO_SNDBUF)") }
        let granted = (try? SocketCalls.option(fd, level: SOL_SOCKET, name: SO_SNDBUF, call: "getsockopt(SO_SNDBUF)")) ?? 0
        _ = try systemCall("setsockopt(PACKET_TX_RING \(g.frames) frames of \(g.frameSize) B in \(g.blocks) blocks of \(g.blockSize) B)") {
            zc_packet_set_tx_ring(fd, UInt32(g.blockSize), UInt32(g.blocks), UInt32(g.frameSize), UInt32(g.frames))
        }
        let ring = try MemoryMap.map(bytes: g.ringBytes, flags: MAP_SHARED | MAP_POPULATE, fd: fd, call: "mmap(TX ring, \(g.ringBytes) bytes)")
        do {
            _ = try systemCall("bind(AF_PACKET, \(target.interface.name))") { zc_packet_bind(fd, target.interface.index, 0) }
        } catch {
            MemoryMap.unmap(ring, bytes: g.ringBytes)
            throw error
        }
        return (ring, granted)
    }

    /// Waits up to `milliseconds` for the kernel to hand a frame back (POLLOUT).
    func waitForFrame(milliseconds: Int32) {
        _ = try? FileCalls.poll(fd, events: Int16(POLLOUT), timeoutMilliseconds: milliseconds, call: "poll(packet ring)")
    }

    deinit {
        MemoryMap.unmap(ring, bytes: ringBytes)
        _ = FileCalls.close(fd)
    }
}
