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
    /// Payload bytes of the distinct (unique) intact datagrams below the END's total.
    public var uniquePayloadBytes: UInt64 = 0
    /// Payload bytes of intact datagrams beyond the END's total (see ``beyondEnd``).
    public var beyondEndPayloadBytes: UInt64 = 0
    /// Smallest and largest payload length among unique datagrams: when equal, the
    /// bytes of numbers taken back by a late END are known exactly.
    public var uniquePayloadMin: UInt32 = .max
    /// See ``uniquePayloadMin``.
    public var uniquePayloadMax: UInt32 = 0
    /// The end (offset + payload length) of the furthest intact stream datagram: the
    /// expected payload bytes while no END has arrived (a lower bound, SPEC §9).
    public var highestByteEnd: UInt64 = 0
    /// False when a count could not be kept exact (see ``SequenceTracker/exact``; or
    /// the bytes of numbers taken back by a late END were not all the same size).
    public var bytesExact = true
    /// Datagrams whose checksum failed, charged to this stream by its (untrusted) id.
    public var checksumErrors: UInt64 = 0
    /// Datagrams with a good checksum whose PATTERN payload was wrong (a sender bug
    /// or corruption before checksumming).
    public var patternMismatches: UInt64 = 0
    /// Stream data (sequence below the END's total) that arrived after the first END:
    /// the END overtook it. Counted as usual (unique, duplicate, ...) as well.
    public var afterEnd: UInt64 = 0
    /// Intact DATA datagrams whose sequence is at or above the END's total (or 2^64-1):
    /// a sender bug or a foreign sender; never unique, lost or written (SPEC §9).
    public var beyondEnd: UInt64 { tracker.beyondEnd }
    /// True when every counter of this stream is exact (see ``SequenceTracker/exact``).
    public var exact: Bool { tracker.exact && bytesExact }
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
    /// Outages, from the senders' clock (header timestamps), so the receive path's own
    /// jitter does not count: the earliest and latest send time of an intact datagram,
    /// the send time of the datagram at the highest sequence so far, and the longest jump
    /// in send time across a sequence gap as it opened (a gap later filled by reordered
    /// datagrams still counts: an outage is when nothing came).
    public var firstSendNanoseconds: UInt64 = 0
    /// See ``firstSendNanoseconds``.
    public var lastSendNanoseconds: UInt64 = 0
    /// See ``firstSendNanoseconds``.
    public var highestSendNanoseconds: UInt64 = 0
    /// See ``firstSendNanoseconds``.
    public var longestGapNanoseconds: UInt64 = 0
    /// Monotonic time of the first valid END (0: none yet): a server retires the stream
    /// --linger after it, so the END's repeats still find it.
    public var endArrivalNanoseconds: UInt64 = 0
    /// Monotonic time of the latest END or pattern-mismatched datagram (datagrams that do
    /// not move ``lastArrivalNanoseconds``): with it, ``lastActivityNanoseconds``.
    public var lastOtherNanoseconds: UInt64 = 0
    /// When the stream last showed life (any valid datagram): a server retires a stream
    /// silent for --idle-timeout.
    public var lastActivityNanoseconds: UInt64 { max(lastArrivalNanoseconds, lastOtherNanoseconds) }
    /// The socket's kernel drop count when the stream appeared (its drops are the growth since).
    public var kernelDropsAtStart: UInt64 = 0
    /// What `--output` did with this stream (set when the run ends).
    public var output: StreamOutputReport?

    // MARK: Reliable streams (SPEC §13)

    /// The stream's first valid datagram asked for reliability (version 3, RELIABLE): the
    /// receiver acknowledges, NAKs gaps and counts repairs.
    public var reliable = false
    /// The stream's kind (plain or reliable) is fixed by its first valid datagram.
    var modeKnown = false
    /// Valid datagrams of the other kind than the stream's first (SPEC §13.2): ignored,
    /// and the verdict fails.
    public var modeMismatches: UInt64 = 0
    /// Distinct numbers whose first intact arrival was a repair (lost, then recovered).
    public var repaired: UInt64 = 0
    /// Repairs of numbers already held (also in `duplicates`): never a second byte.
    public var repairDuplicates: UInt64 = 0
    /// The feedback state of a reliable stream (nil: a plain stream).
    var feedback: ReliableFeedback?
    /// NAK and STATUS datagrams sent for the stream.
    public var naksSent: UInt64 { feedback?.naksSent ?? 0 }
    public var statusSent: UInt64 { feedback?.statusSent ?? 0 }
    /// The receiver's deadline passed with numbers still missing: it stopped asking.
    public var gaveUp: Bool { feedback?.gaveUp ?? false }

    /// A stream with nothing received yet.
    public init(key: StreamKey) { self.key = key }

    /// The local address the stream's first datagram was sent to, when the receiving socket
    /// is bound to the wildcard address (IP_PKTINFO): its REPORT goes out from there, so a
    /// sender connected to that address accepts it (SPEC §12). ``SourceAddress/unknown``
    /// otherwise (a socket bound to one address answers from it anyway).
    public var localAddress = SourceAddress.unknown

    /// Arrivals of a sequence number already seen whose checksum differs from the first
    /// copy's: two different datagrams claim one place in the stream (a forger, or a sender
    /// that reused a number). Also counted in `duplicates`; any fails the verdict.
    public var conflictingDuplicates: UInt64 = 0
    /// The first copy of each of the last ``firstCopyMemory`` sequence numbers (a ring
    /// indexed by sequence): its checksum (high 32 bits), to tell a true duplicate (the same
    /// bytes again, as networks and retransmissions make) from a conflicting one, and its
    /// payload length (low 32 bits), so an END that takes numbers back (§9.3) takes back
    /// exactly their bytes whatever their sizes. Allocated with the stream (32 KiB), never
    /// per datagram.
    var firstCopies = [UInt64](repeating: 0, count: StreamState.firstCopyMemory)
    /// How far below the highest sequence number a duplicate can still be compared.
    public static let firstCopyMemory = 4096

    /// Remembers the checksum and payload length of a new sequence number's first copy.
    @inline(__always) mutating func noteFirstCopy(_ sequence: UInt64, checksum: UInt32, payloadLength: UInt32) {
        // A number reordered from further back than the ring would overwrite a newer one's slot.
        guard tracker.highest &- sequence < UInt64(Self.firstCopyMemory) else { return }
        firstCopies.withUnsafeMutableBufferPointer {
            $0[Int(sequence & UInt64(Self.firstCopyMemory - 1))] = UInt64(checksum) << 32 | UInt64(payloadLength)
        }
    }

    /// A duplicate of `sequence` arrived with `checksum`: counts it as conflicting when the
    /// first copy is still remembered and differs.
    @inline(__always) mutating func checkDuplicate(_ sequence: UInt64, checksum: UInt32) {
        guard tracker.highest &- sequence < UInt64(Self.firstCopyMemory) else { return }
        let first = firstCopies.withUnsafeBufferPointer { $0[Int(sequence & UInt64(Self.firstCopyMemory - 1))] }
        if UInt32(truncatingIfNeeded: first >> 32) != checksum { conflictingDuplicates &+= 1 }
    }
    /// A stream with nothing received yet, from an unknown source (tests, tools).
    public init(streamID: UInt64) { self.key = StreamKey(streamID: streamID, source: .unknown) }

    /// Corrupt datagrams: checksum failures plus pattern mismatches.
    public var corrupt: UInt64 { checksumErrors + patternMismatches }

    /// Account the stream from its first sequence number received, not from 0: a
    /// multicast receiver that joined after the stream began never saw its head, and
    /// that is not path loss (``headNotCounted`` says how much was left out).
    public var excludeHead = false
    /// Received through a multicast group's socket (a reliable stream's NAKs back off at random).
    /// A keyed stream (SPEC §14): its opener and replay window; nil for a plain stream.
    public var keyed: KeyedStreamAuth?
    public var groupReceiver = false

    /// Sequence numbers before the first one received, left out of the accounts when
    /// ``excludeHead`` (else 0).
    public var headNotCounted: UInt64 {
        guard excludeHead, tracker.started else { return 0 }
        return min(tracker.lowest, totalDatagrams)
    }

    /// The first sequence number received as stream data (nil before any).
    public var firstSequence: UInt64? { tracker.started ? tracker.lowest : nil }

    /// True when the stream's first datagrams were never seen (first sequence > 0).
    /// True when the stream is accounted from its first sequence number received, not from
    /// 0 (SPEC §9.7: ``excludeHead`` and a first number above 0): exactly when
    /// ``headNotCounted`` > 0. A unicast stream whose first datagrams were lost counts them
    /// lost and is not "joined late".
    public var joinedLate: Bool { headNotCounted > 0 }

    /// True once END arrived and every sequence number it announced is here (from the first
    /// one received, with ``excludeHead``) and so is every byte: the unique payload bytes
    /// add up to the END's byte total (SPEC §9.4). Zero-length datagrams that fill the
    /// sequence space do not complete a stream; with the head not counted only the
    /// sequence numbers are compared.
    public var isComplete: Bool {
        guard let expected else { return false }
        guard tracker.unique >= expected.datagrams - headNotCounted else { return false }
        return headNotCounted > 0 || uniquePayloadBytes == expected.bytes
    }

    /// The END's total, else the highest seen + 1 (0 if none), the head included.
    private var totalDatagrams: UInt64 {
        if let expected { return expected.datagrams }
        return tracker.started ? tracker.highest + 1 : 0
    }

    /// Sequence numbers the stream has: the END's total, else the highest seen + 1
    /// (0 if none); see ``endSeen``. Less ``headNotCounted``.
    public var expectedDatagrams: UInt64 { totalDatagrams - headNotCounted }

    /// Payload bytes the stream has: the END's total, else the furthest byte an intact
    /// datagram reached (a lower bound; the tail is unknown without END).
    public var expectedPayloadBytes: UInt64 { expected?.bytes ?? highestByteEnd }

    /// True once a valid END fixed the totals.
    public var endSeen: Bool { expected != nil }

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

    /// Send time from the first datagram to the last (header timestamps), ns.
    public var firstToLastSendNanoseconds: UInt64 {
        lastSendNanoseconds > firstSendNanoseconds ? lastSendNanoseconds - firstSendNanoseconds : 0
    }

    /// Closes the books on the sequence tracker (a copy: the state is unchanged).
    public func summary() -> Summary {
        var f = tracker.finish()
        if !exact {
            // Inexact (SPEC §9.8): bounds, nothing false — never more lost than expected,
            // never more loss ranges than lost numbers.
            f.lost = min(f.lost, totalDatagrams)
            f.rangeCount = min(f.rangeCount, f.lost)
        }
        let head = headNotCounted
        guard head > 0, let first = f.ranges.first, first.lowerBound == 0 else {
            return Summary(lost: f.lost, lostRanges: f.ranges, lostRangeCount: f.rangeCount, expectedDatagrams: expected?.datagrams)
        }
        // The head is exactly the first loss range, [0, first received - 1].
        return Summary(lost: f.lost - min(f.lost, head), lostRanges: Array(f.ranges.dropFirst()),
                       lostRangeCount: f.rangeCount - 1, expectedDatagrams: expected.map { $0.datagrams - head })
    }

    /// Applies the first END's totals: numbers already counted at or above its total are
    /// taken out of `unique` (and their bytes out of ``uniquePayloadBytes``).
    mutating func applyEnd(_ totals: EndOfStream) {
        // The numbers it takes back are [total, highest] as far as they arrived: while they
        // are all among the first copies remembered, their bytes are known exactly, each
        // with its own size (a short last datagram, a stray beyond the total).
        var remembered: UInt64?
        if tracker.started && tracker.highest >= totals.datagrams
            && tracker.highest - totals.datagrams < UInt64(Self.firstCopyMemory) {
            var sum: UInt64 = 0
            var q = totals.datagrams
            while true {
                if tracker.contains(q) {
                    sum &+= firstCopies[Int(q & UInt64(Self.firstCopyMemory - 1))] & 0xFFFF_FFFF
                }
                if q == tracker.highest { break }
                q += 1
            }
            remembered = sum
        }
        let taken = tracker.setLimit(totals.datagrams)
        guard taken > 0 else { return }
        if let remembered, remembered <= uniquePayloadBytes {
            uniquePayloadBytes -= remembered
            beyondEndPayloadBytes &+= remembered
        } else if uniquePayloadMin == uniquePayloadMax {
            let bytes = taken.multipliedReportingOverflow(by: UInt64(uniquePayloadMax))
            if bytes.overflow || bytes.partialValue > uniquePayloadBytes { bytesExact = false }
            let b = min(bytes.partialValue, uniquePayloadBytes)
            uniquePayloadBytes -= b
            beyondEndPayloadBytes &+= b
        } else {
            bytesExact = false
        }
    }

    /// Adds what another thread saw of the same stream (see `SequenceTracker.merge`).
    public mutating func merge(_ other: StreamState) {
        let limitBefore = tracker.hasLimit
        let uniqueBefore = tracker.unique + other.tracker.unique
        tracker.merge(other.tracker)
        datagrams += other.datagrams
        bytes += other.bytes
        uniquePayloadBytes += other.uniquePayloadBytes
        beyondEndPayloadBytes += other.beyondEndPayloadBytes
        uniquePayloadMin = min(uniquePayloadMin, other.uniquePayloadMin)
        uniquePayloadMax = max(uniquePayloadMax, other.uniquePayloadMax)
        highestByteEnd = max(highestByteEnd, other.highestByteEnd)
        bytesExact = bytesExact && other.bytesExact
        // Unique numbers the merge found to be duplicates (or beyond a late END): their
        // bytes leave uniquePayloadBytes the same way (exact when sizes are uniform).
        let gone = uniqueBefore - min(uniqueBefore, tracker.unique)
        if gone > 0 || (!limitBefore && tracker.hasLimit) {
            if uniquePayloadMin == uniquePayloadMax || gone == 0 {
                let b = min(gone &* UInt64(uniquePayloadMax == 0 ? 0 : uniquePayloadMax), uniquePayloadBytes)
                uniquePayloadBytes -= b
            } else { bytesExact = false }
        }
        checksumErrors += other.checksumErrors
        conflictingDuplicates += other.conflictingDuplicates
        reliable = reliable || other.reliable
        modeMismatches += other.modeMismatches
        repaired += other.repaired
        repairDuplicates += other.repairDuplicates
        if feedback == nil { feedback = other.feedback }
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
        if other.firstSendNanoseconds != 0 && (firstSendNanoseconds == 0 || other.firstSendNanoseconds < firstSendNanoseconds) {
            firstSendNanoseconds = other.firstSendNanoseconds
        }
        lastSendNanoseconds = max(lastSendNanoseconds, other.lastSendNanoseconds)
        longestGapNanoseconds = max(longestGapNanoseconds, other.longestGapNanoseconds)
        if let o = other.output {
            if output == nil { output = o } else { output!.merge(o) }
        }
    }
}
