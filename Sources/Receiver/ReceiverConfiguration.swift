import ZCSystem

public enum ReceiveEngineKind: String, CaseIterable, Sendable {
    /// Batched `recvmmsg`, with UDP GRO when enabled.
    case recvmmsg
}

/// Everything one receiver run needs.
public struct ReceiverConfiguration: Sendable {
    public var listen: SocketAddress
    public var engine: ReceiveEngineKind = .recvmmsg
    /// Ask the kernel to coalesce datagrams of a flow (UDP_GRO) and split them here.
    public var gro: Bool = true
    /// Socket receive buffer to request (SO_RCVBUFFORCE when permitted).
    public var receiveBufferBytes: Int32 = 256 << 20
    /// Stop after this many streams ended (and are complete, or `linger` passed).
    public var streams: Int?
    /// Stop when nothing arrived for this long, once something has.
    public var idleTimeoutNanoseconds: UInt64 = 5_000_000_000
    /// Stop after this long in any case.
    public var timeoutNanoseconds: UInt64?
    /// After the last expected END: how long to wait for stragglers.
    public var lingerNanoseconds: UInt64 = 300_000_000
    public var maxStreams: Int = ValidatingCore.defaultMaxStreams

    public init(listen: SocketAddress) { self.listen = listen }
}
