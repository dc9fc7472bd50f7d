import ZCSystem

/// How a receiver listening on a multicast group joins it and accounts its streams.
///
/// Several receivers on one host may listen on the same group and port: each socket
/// is bound with `SO_REUSEADDR`, and the kernel gives every one of them its own copy
/// of each datagram (for the same reason a receiver keeps one thread per group).
/// The membership is left when the run ends.
public struct MulticastReceiveOptions: Sendable {
    /// The interface to join on (nil: the kernel picks by its routing table).
    public var interface: String?
    /// Source-specific multicast (IGMPv3 / MLDv2): only this sender's datagrams.
    public var source: SocketAddress?
    /// Count the stream's head that arrived before this receiver joined (sequence
    /// numbers below the first one received) as lost. Off by default: a receiver
    /// that joined late accounts the stream from its first sequence number and says
    /// so (`joined_late`, `first_sequence`, `head_not_counted`).
    public var countHeadLoss = false

    /// Join on the kernel's choice of interface, any source, head not counted.
    public init(interface: String? = nil, source: SocketAddress? = nil, countHeadLoss: Bool = false) {
        self.interface = interface
        self.source = source
        self.countHeadLoss = countHeadLoss
    }
}

/// What a multicast receiver did: which membership, and when the first datagram came.
public struct MulticastReceiveReport: Sendable {
    /// The group, interface and source filter joined.
    public var membership: MulticastMembership
    /// The interface's name as given (nil: the kernel's choice).
    public var interface: String?
    /// Monotonic time of the join.
    public var joinedAtNanoseconds: UInt64
    /// Nanoseconds from the join to the first datagram of any kind (nil: none came). A
    /// switch slow to learn the group shows here, and as a stream that joined late.
    public var joinToFirstDatagramNanoseconds: UInt64?
    /// The head of a late-joined stream counted as loss (see ``MulticastReceiveOptions/countHeadLoss``).
    public var countHeadLoss: Bool
}
