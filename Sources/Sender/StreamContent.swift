/// What a pulled stream (``StreamSender``, ``MultiStreamSender``) carries and when it
/// ends: the pull path's own settings. A pushed stream (``OutboundStream``) has none of
/// them — its content is whatever the application writes, and it ends at ``OutboundStream/finish()``;
/// how both reach the wire is ``SenderConfiguration``.
public struct StreamContent: Sendable, Equatable {
    /// Where the payload comes from.
    public var source: PayloadSource
    /// When the stream ends (a regular file's size also ends it; END carries the totals).
    public var limit: StreamLimit
    /// Test-only damage to inject (the receiver must report exactly what was applied).
    public var faults: FaultInjection
    /// A live source (a pipe, a terminal): how long a partly filled datagram waits for
    /// more bytes before it is sent as it is. 5 ms by default: an interactive pipe feels
    /// immediate, and a fast producer fills whole datagrams long before it.
    public var flushIntervalNanoseconds: UInt64

    public init(source: PayloadSource = .pattern, limit: StreamLimit, faults: FaultInjection = FaultInjection(),
                flushIntervalNanoseconds: UInt64 = 5_000_000) {
        self.source = source
        self.limit = limit
        self.faults = faults
        self.flushIntervalNanoseconds = flushIntervalNanoseconds
    }
}
