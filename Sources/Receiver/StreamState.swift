import StreamProtocol

/// Everything the receiver knows about one stream: one stream id from one source.
public struct StreamState: Sendable {
    /// Which stream this is: stream id and source.
    public let key: StreamKey
    /// The sender's stream id.
    public var streamID: UInt64 { key.streamID }
    /// The sender's address.
    public var source: SourceAddress { key.source }
    /// Sequence accounting: unique, duplicates, reordered, late, loss ranges.
    public var tracker = SequenceTracker()
    /// Intact data datagrams (duplicates included).
    public var datagrams: UInt64 = 0
    /// Their bytes, headers included (the UDP payload bytes, as the sender counts).
    public var bytes: UInt64 = 0
    /// Payload bytes of the distinct (unique) intact datagrams.
    public var uniquePayloadBytes: UInt64 = 0
    /// Datagrams whose checksum failed, charged to this stream by its (untrusted) id.
    public var checksumErrors: UInt64 = 0
    /// Datagrams with a good checksum whose PATTERN payload was wrong (a sender bug
    /// or corruption before checksumming).
    public var patternMismatches: UInt64 = 0
    /// Data datagrams that arrived after an END (still counted above).
    public var afterEnd: UInt64 = 0
    /// Valid END datagrams of this stream, copies included.
    public var endsReceived: UInt64 = 0
    /// END copies whose totals differ from the first END's (a sender bug).
    public var endMismatches: UInt64 = 0
    /// The totals of the first valid END; nil while none arrived (tail loss then unknown).
    public var expected: EndOfStream?
    /// Monotonic time (`MonotonicClock.nanoseconds()`) of the first intact data datagram; 0 if none.
    public var firstArrivalNanoseconds: UInt64 = 0
    /// Monotonic time of the latest intact data datagram; 0 if none.
    public var lastArrivalNanoseconds: UInt64 = 0
    /// One-way latency from the header timestamp (CLOCK_REALTIME on both ends).
    public var latency = LatencyHistogram()
    /// What `--output` did with this stream (set when the run ends).
    public var output: StreamOutputReport?

    /// A stream with nothing received yet.
    public init(key: StreamKey) { self.key = key }
    /// A stream with nothing received yet, from an unknown source (tests, tools).
    public init(streamID: UInt64) { self.key = StreamKey(streamID: streamID, source: .unknown) }

    /// Corrupt datagrams: checksum failures plus pattern mismatches.
    public var corrupt: UInt64 { checksumErrors + patternMismatches }

    /// True once END arrived and every sequence number it announced is here.
    public var isComplete: Bool {
        guard let expected else { return false }
        return tracker.unique >= expected.datagrams
    }

    /// The stream's loss, final once the run ended.
    public struct Summary: Sendable {
        /// Sequence numbers expected but never received intact.
        public var lost: UInt64
        /// The first ``SequenceTracker/maxRanges`` ranges of lost sequence numbers, in order.
        public var lostRanges: [ClosedRange<UInt64>]
        /// Ranges of lost sequence numbers in all, kept or not.
        public var lostRangeCount: UInt64
        /// The END's total datagrams; nil when no END arrived (``lost`` is then counted up to the highest sequence seen).
        public var expectedDatagrams: UInt64?
    }

    /// Closes the books on the sequence tracker (a copy: the state is unchanged).
    public func summary() -> Summary {
        let f = tracker.finish(expected: expected?.datagrams)
        return Summary(lost: f.lost, lostRanges: f.ranges, lostRangeCount: f.rangeCount, expectedDatagrams: expected?.datagrams)
    }

    /// Adds what another thread saw of the same stream (see `SequenceTracker.merge`).
    public mutating func merge(_ other: StreamState) {
        tracker.merge(other.tracker)
        datagrams += other.datagrams
        bytes += other.bytes
        uniquePayloadBytes += other.uniquePayloadBytes
        checksumErrors += other.checksumErrors
        patternMismatches += other.patternMismatches
        afterEnd += other.afterEnd
        endsReceived += other.endsReceived
        endMismatches += other.endMismatches
        if let e = other.expected {
            if let mine = expected { if mine != e { endMismatches += 1 } } else { expected = e }
        }
        if other.firstArrivalNanoseconds != 0 && (firstArrivalNanoseconds == 0 || other.firstArrivalNanoseconds < firstArrivalNanoseconds) {
            firstArrivalNanoseconds = other.firstArrivalNanoseconds
        }
        lastArrivalNanoseconds = max(lastArrivalNanoseconds, other.lastArrivalNanoseconds)
        latency.add(other.latency)
        if let o = other.output {
            if output == nil { output = o } else { output!.merge(o) }
        }
    }
}
