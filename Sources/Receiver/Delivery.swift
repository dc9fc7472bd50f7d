/// One intact DATA datagram, handed to an application's delivery callback after
/// validation (checksum, structure, and for PATTERN streams the payload content).
///
/// `payload` points into the receive buffer and is valid **only during the
/// callback**: the buffer is reused for the next datagrams as soon as the callback
/// returns. Copy what you need to keep.
public struct DeliveredDatagram {
    /// The sender's stream id.
    public let streamID: UInt64
    /// Where it came from (a stream is keyed by id and source).
    public let source: SourceAddress
    /// Sequence number within the stream (from 0).
    public let sequence: UInt64
    /// Byte offset of the payload within the stream.
    public let offset: UInt64
    /// The payload bytes; valid only during the callback.
    public let payload: UnsafeRawBufferPointer
}

/// Called once for every datagram whose sequence number is new to its stream
/// (duplicates and datagrams too late to classify are counted, not delivered). It
/// runs on the receive thread, in arrival order per thread; with several receive
/// threads it is called from each, so it must be thread-safe. Keep it short: the
/// receive loop waits for it.
public typealias DeliveryHandler = @Sendable (DeliveredDatagram) -> Void
