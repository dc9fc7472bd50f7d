#if canImport(Glibc)
import Glibc
#endif

/// How many datagrams one TX ring frame carries: one, or (`--gso`, on a kernel that
/// segments packet-socket frames) several, split by the kernel after the ring
/// (virtio_net_hdr GSO_UDP_L4). `note` says which and why, for the report: a
/// fallback is stated there, never presented as the feature.
package struct PacketRingSegmentation: Equatable, Sendable {
    /// Datagrams per frame (1: no segmentation).
    package var segments: Int
    /// "UDP_L4 GSO: ..." or "off: why".
    package var note: String

    /// Largest frame the kernel's ring takes in one piece here: 64 KiB frames,
    /// less the tpacket2 header (32), virtio_net_hdr (10) and the largest headers (66).
    static let maxSegmentedPayload = 65_536 - 32 - VirtioNetHeader.size - 66

    package static func choose(gso: GSOSetting, datagramSize: Int, kernelRelease: String = runningKernelRelease) -> PacketRingSegmentation {
        if case .off = gso { return .init(segments: 1, note: "off (--gso off)") }
        guard datagramSize >= SenderConfiguration.minGSODatagram else {
            return .init(segments: 1, note: "off: datagrams under \(SenderConfiguration.minGSODatagram) B are sent one per frame")
        }
        guard VirtioNetHeader.kernelSegmentsPacketFrames(release: kernelRelease) == true else {
            return .init(segments: 1, note: "off: kernel \(kernelRelease) does not segment packet-socket frames (UDP_L4 GSO needs Linux 6.2); one datagram per frame")
        }
        let limit = min(SenderConfiguration.segmentLimit(datagramSize: datagramSize), maxSegmentedPayload / datagramSize)
        let n: Int
        switch gso {
        case .off: n = 1
        case .auto: n = limit
        case .segments(let k): n = min(k, limit)
        }
        if n < 2 { return .init(segments: 1, note: "off: one \(datagramSize) B datagram a frame (--gso \(gso))") }
        return .init(segments: n, note: "UDP_L4 GSO: up to \(n) x \(datagramSize) B datagrams a frame, segmented by the kernel after the ring")
    }

    /// `uname -r`.
    package static var runningKernelRelease: String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
