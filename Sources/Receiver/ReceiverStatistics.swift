import StreamProtocol

/// Totals across streams, kept by the validating core.
public struct ReceiverStatistics: Sendable {
    /// Datagrams handed to validation (after GRO splitting), of any kind.
    public var datagramsSeen: UInt64 = 0
    /// Rejected as not our protocol, by reason (index: `Datagram.Rejection.allCases`).
    public var invalid = [UInt64](repeating: 0, count: Datagram.Rejection.allCases.count)
    /// Checksum failures whose stream id matches no known stream.
    public var corruptUnattributed: UInt64 = 0
    /// Keyed receivers (SPEC §14.4): datagrams dropped before they touched any stream, by
    /// reason (``KeyedDatagram/Rejection``, `allCases` order). Never in a stream's counters,
    /// a REPORT or the verdict: whoever sends them cannot make a stream fail.
    public var unauthenticated = [UInt64](repeating: 0, count: KeyedDatagram.Rejection.allCases.count)
    /// The last foreign key id seen (a `wrong_key` datagram's), 0: none; for the message
    /// that says the sender holds another key.
    public var foreignKeyID: UInt32 = 0
    /// A receiver without a key: datagrams of keyed streams (version 4) among the
    /// `unsupported_version` ones, for the message that says to give `--key`.
    public var keyedWithoutKey: UInt64 = 0
    /// Total of ``unauthenticated``.
    public var unauthenticatedTotal: UInt64 { unauthenticated.reduce(0, +) }
    /// Valid datagrams not accounted because the stream table was full (the receiver's
    /// `maxStreams` limit): a resource limit, not invalid. Any makes the verdict fail.
    public var streamsRefusedDatagrams: UInt64 = 0
    /// Datagrams longer than the receive buffer (cut by the kernel): a receiver limit,
    /// not invalid (their content is unknown). Any makes the verdict fail.
    public var truncated: UInt64 = 0
    /// Server mode: valid datagrams of a stream already reported and retired (its END
    /// repeats, stragglers past --linger): not a new stream, not accounted again.
    public var retiredStreamDatagrams: UInt64 = 0
    /// Datagrams the kernel dropped because the socket buffer was full (SO_RXQ_OVFL).
    public var kernelDrops: UInt64 = 0
    /// Receive calls (`recvmmsg` calls, or batches of completions reaped by the io_uring
    /// engine); with ``buffers`` and ``coalescedBuffers`` they show batching at work.
    public var receiveCalls: UInt64 = 0
    /// Buffers the kernel delivered (one per datagram without GRO, one per coalesced run with it).
    public var buffers: UInt64 = 0
    /// Of ``buffers``, those that held more than one datagram (GRO at work).
    public var coalescedBuffers: UInt64 = 0
    /// io_uring engine: times the multishot receive had to be armed again
    /// (completion without IORING_CQE_F_MORE), and how often for lack of buffers.
    public var rearms: UInt64 = 0
    /// Completions that reported `ENOBUFS`: the provided buffer ring ran empty, which
    /// ends the multishot receive until it is re-armed.
    public var bufferShortages: UInt64 = 0

    /// All counters zero.
    public init() {}

    /// Datagrams rejected by SPEC §8 checks 1-6 or 8, any reason. Checksum failures are
    /// corrupt, not invalid; refused streams and truncated datagrams are counted apart.
    public var invalidTotal: UInt64 { invalid.reduce(0, +) }

    /// SO_RXQ_OVFL counts socket buffers (skbs), not datagrams. Without GRO a
    /// buffer is one datagram and `kernelDrops` is exact; with GRO a dropped
    /// buffer may hold many (a whole GSO send: 44 × 1472 B), so the datagrams lost
    /// that way are estimated from the datagrams per buffer actually received.
    public var kernelDropsAreBuffers: Bool { coalescedBuffers > 0 }

    /// Datagrams the kernel dropped at our socket: exact without GRO coalescing,
    /// else `kernelDrops` × datagrams per received buffer (rounded).
    public var kernelDroppedDatagramsEstimate: UInt64 {
        guard kernelDropsAreBuffers, buffers > 0 else { return kernelDrops }
        return UInt64((Double(kernelDrops) * Double(datagramsSeen) / Double(buffers)).rounded())
    }

    /// Adds another thread's statistics (each thread has its own socket, so kernel drops add up too).
    public mutating func merge(_ o: ReceiverStatistics) {
        datagramsSeen += o.datagramsSeen
        for i in invalid.indices { invalid[i] += o.invalid[i] }
        corruptUnattributed += o.corruptUnattributed
        for i in unauthenticated.indices { unauthenticated[i] += o.unauthenticated[i] }
        keyedWithoutKey += o.keyedWithoutKey
        if o.foreignKeyID != 0 { foreignKeyID = o.foreignKeyID }
        streamsRefusedDatagrams += o.streamsRefusedDatagrams
        truncated += o.truncated
        retiredStreamDatagrams += o.retiredStreamDatagrams
        kernelDrops += o.kernelDrops
        receiveCalls += o.receiveCalls
        buffers += o.buffers
        coalescedBuffers += o.coalescedBuffers
        rearms += o.rearms
        bufferShortages += o.bufferShortages
    }
}
