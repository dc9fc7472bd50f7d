import ZCSystem

/// What the packet-ring engine reports beyond the common statistics.
public struct PacketRingReport: Sendable {
    public var interface: String
    public var interfaceIndex: Int32
    public var mtu: Int
    public var sourceMAC: MACAddress
    public var destinationMAC: MACAddress
    public var destinationMACSource: String
    /// The next hop the frames go to, and whether it is on-link or the gateway.
    public var nextHop: String
    public var source: String
    public var dontFragment: Bool
    /// The 802.1Q tag ("ID:PCP"); nil: untagged.
    public var vlan: String?
    /// Datagrams per frame (more than 1: the kernel segments them after the ring), and why.
    public var segmentsPerFrame: Int
    public var gso: String
    /// "software" (zerocopy without GSO: the engine computes it), or "offloaded"
    /// (a virtio_net_hdr asks the kernel or NIC to finish it: copy mode, GSO).
    /// The IPv4 header checksum is always computed here.
    public var udpChecksum: String
    public var qdiscBypass: Bool
    public var transfer: PacketRingTransfer
    public var transferChoice: String
    public var maxFrameLength: Int
    /// Ring geometry: `frames` slots of `frameSize` bytes in blocks of `blockSize`.
    public var frameSize: Int
    public var frames: Int
    public var blockSize: Int
    /// sendto kicks.
    public var kicks: UInt64 = 0
    /// Kicks the kernel answered with ENOBUFS / EAGAIN (the frames stayed queued and went later).
    public var kicksRetried: UInt64 = 0
    /// Frames the kernel marked TP_STATUS_WRONG_FORMAT (counted as errors, never sent).
    public var wrongFormat: UInt64 = 0
    /// Rings replaced after a rejected frame (the kernel never steps over one).
    public var ringsReopened: Int = 0
    /// Frames still owned by the kernel when the run gave up waiting for them.
    public var framesInFlightAtExit: Int = 0
}

