/// The `struct virtio_net_hdr` (linux/virtio_net.h) the kernel reads in front of
/// each ring frame once PACKET_VNET_HDR is on: how much of the frame to copy into
/// the skb, and what the kernel must still do to it (checksum, segmentation).
/// Little-endian on every host the kernel calls "virtio legacy little-endian"
/// (all of ours); 10 bytes: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
package enum VirtioNetHeader {
    package static let size = 10
    /// VIRTIO_NET_HDR_F_NEEDS_CSUM: complete the checksum at csum_start + csum_offset.
    package static let needsChecksum: UInt8 = 1
    /// VIRTIO_NET_HDR_GSO_UDP_L4: split the UDP payload every gso_size bytes (USO).
    package static let gsoUDPL4: UInt8 = 5

    /// A frame the kernel sends as it is: no offloads; it copies `linearBytes` of it
    /// into the skb's own buffer (the rest stays in the ring pages).
    @inline(__always)
    package static func writePlain(at p: UnsafeMutableRawPointer, linearBytes: Int) {
        p.storeBytes(of: 0, as: UInt64.self)
        (p + 8).storeBytes(of: 0, as: UInt16.self)
        (p + 2).storeBytes(of: UInt16(truncatingIfNeeded: linearBytes).littleEndian, as: UInt16.self)
    }

    /// A super-frame the kernel segments after the ring: every `segmentSize` bytes
    /// of UDP payload become one datagram, whose UDP checksum (at `udpOffset` + 6 of
    /// the frame) the kernel completes from the pseudo-header sum already there.
    @inline(__always)
    package static func writeSegmentation(at p: UnsafeMutableRawPointer, linearBytes: Int, segmentSize: Int, udpOffset: Int) {
        p.storeBytes(of: needsChecksum, as: UInt8.self)
        (p + 1).storeBytes(of: gsoUDPL4, as: UInt8.self)
        (p + 2).storeBytes(of: UInt16(truncatingIfNeeded: linearBytes).littleEndian, as: UInt16.self)
        (p + 4).storeBytes(of: UInt16(truncatingIfNeeded: segmentSize).littleEndian, as: UInt16.self)
        (p + 6).storeBytes(of: UInt16(truncatingIfNeeded: udpOffset).littleEndian, as: UInt16.self)
        (p + 8).storeBytes(of: UInt16(6).littleEndian, as: UInt16.self) // offsetof(struct udphdr, check)
    }

    /// One datagram whose UDP checksum the kernel (or the NIC) completes from the
    /// pseudo-header sum at `udpOffset` + 6: CHECKSUM_PARTIAL, as the kernel's own
    /// UDP sends it. Paths that deliver locally (veth into a socket) trust it without
    /// computing it at all; a NIC fills it in; the kernel does it in software only
    /// where neither can.
    @inline(__always)
    package static func writeChecksumOffload(at p: UnsafeMutableRawPointer, linearBytes: Int, udpOffset: Int) {
        p.storeBytes(of: needsChecksum, as: UInt8.self)
        (p + 1).storeBytes(of: 0, as: UInt8.self)                 // VIRTIO_NET_HDR_GSO_NONE
        (p + 2).storeBytes(of: UInt16(truncatingIfNeeded: linearBytes).littleEndian, as: UInt16.self)
        (p + 4).storeBytes(of: 0, as: UInt16.self)
        (p + 6).storeBytes(of: UInt16(truncatingIfNeeded: udpOffset).littleEndian, as: UInt16.self)
        (p + 8).storeBytes(of: UInt16(6).littleEndian, as: UInt16.self)
    }

    /// UDP segmentation of packet-socket frames (virtio_net_hdr GSO_UDP_L4) arrived
    /// in Linux 6.2; older kernels refuse such frames (EINVAL, TP_STATUS_WRONG_FORMAT).
    /// nil when the kernel release cannot be read.
    package static func kernelSegmentsPacketFrames(release: String) -> Bool? {
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return nil }
        return parts[0] > 6 || (parts[0] == 6 && parts[1] >= 2)
    }
}
