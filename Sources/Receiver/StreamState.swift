import StreamProtocol

/// Everything the receiver knows about one stream.
public struct StreamState: Sendable {
    public let streamID: UInt64
    public var tracker = SequenceTracker()
    /// Intact data datagrams (duplicates included).
    public var datagrams: UInt64 = 0
    /// Their bytes, headers included (the UDP payload bytes, as the sender counts).
    public var bytes: UInt64 = 0
    /// Datagrams whose checksum failed, charged to this stream by its (untrusted) id.
    public var checksumErrors: UInt64 = 0
    /// Datagrams with a good checksum whose PATTERN payload was wrong (a sender bug
    /// or corruption before checksumming).
    public var patternMismatches: UInt64 = 0
    /// Data datagrams that arrived after an END (still counted above).
    public var afterEnd: UInt64 = 0
    public var endsReceived: UInt64 = 0
    public var expected: EndOfStream?
    public var firstArrivalNanoseconds: UInt64 = 0
    public var lastArrivalNanoseconds: UInt64 = 0
    /// One-way latency from the header timestamp (CLOCK_REALTIME on both ends).
    public var latencyMin: Int64 = .max
    public var latencyMax: Int64 = .min
    public var latencySum: Int64 = 0
    public var latencySamples: UInt64 = 0

    public init(streamID: UInt64) { self.streamID = streamID }

    public var corrupt: UInt64 { checksumErrors + patternMismatches }

    /// True once END arrived and every sequence number it announced is here.
    public var isComplete: Bool {
        guard let expected else { return false }
        return tracker.unique >= expected.datagrams
    }

    public struct Summary: Sendable {
        public var lost: UInt64
        public var lostRanges: [ClosedRange<UInt64>]
        public var lostRangeCount: UInt64
        public var expectedDatagrams: UInt64?
    }

    public func summary() -> Summary {
        let f = tracker.finish(expected: expected?.datagrams)
        return Summary(lost: f.lost, lostRanges: f.ranges, lostRangeCount: f.rangeCount, expectedDatagrams: expected?.datagrams)
    }
}
