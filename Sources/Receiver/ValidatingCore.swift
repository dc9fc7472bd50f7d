import StreamProtocol
import ZCSystem

/// The receive-side heart, shared by every receive engine: validates each
/// datagram and charges it to its stream (stream id + source address). No
/// allocation per datagram: streams are created once (bounded by `maxStreams`),
/// the last stream hit is cached because consecutive datagrams almost always
/// belong to the same stream, and a datagram's accounting is one in-place update
/// of its `StreamState` (one array access, not one per field).
///
/// One core per receive thread; cores of several threads are combined with `merge`.
public struct ValidatingCore: Sendable {
    /// Streams a core tracks unless told otherwise.
    public static let defaultMaxStreams = 1024
    /// The most streams this core tracks; valid datagrams of further streams are not
    /// accounted and count as ``ReceiverStatistics/streamsRefusedDatagrams`` (a
    /// resource limit, not invalid: SPEC §9).
    public let maxStreams: Int
    /// Every stream seen, in order of first arrival.
    public private(set) var streams: [StreamState] = []
    /// Counters not tied to one stream: invalid datagrams by reason, kernel drops, batching.
    public private(set) var statistics = ReceiverStatistics()
    private var index: [StreamKey: Int] = [:]
    private var lastKey = StreamKey(streamID: 0, source: .unknown)
    private var lastIndex = -1
    /// Monotonic time of the first and latest intact data datagram.
    public private(set) var firstDataNanoseconds: UInt64 = 0
    /// Monotonic time of the latest intact data datagram (0 if none).
    public private(set) var lastDataNanoseconds: UInt64 = 0
    /// Streams whose END has arrived.
    public private(set) var streamsEnded = 0
    /// New streams account from their first sequence number received (multicast
    /// receivers that may join late; see ``StreamState/excludeHead``).
    public var excludeHead = false
    /// The socket is a multicast group's: a reliable stream's NAKs wait a random backoff
    /// (SPEC §13.11), so that a loss many receivers share is NAKed by few.
    public var groupReceiver = false
    /// A keyed receiver (SPEC §14, `zc-recv --key`): only keyed datagrams under this secret
    /// are taken; nil: plain datagrams as before (and keyed ones are `unsupported_version`).
    public var keyring: ReceiverKeyring?
    /// Monotonic time of the first datagram of any kind, valid or not (0: none yet).
    public private(set) var firstSeenNanoseconds: UInt64 = 0
    // Flag bits as literals: DatagramFlags' static members live in another module
    // and cost an accessor call per use on the hot path.
    @inline(__always) static var endFlag: UInt8 { 0x02 }
    @inline(__always) static var patternFlag: UInt8 { 0x04 }

    /// Keys of streams retired by ``retireStreams(where:)``, remembered for a while (the
    /// last ``retiredMemory``) so late copies do not open a ghost stream.
    private var retired = Set<StreamKey>()
    private var retiredOrder: [StreamKey] = []
    private var retiredNext = 0
    /// How many retired keys a core remembers: at thousands of streams a second that is
    /// still about a second, far longer than END repeats take.
    public static let retiredMemory = 4096
    /// Streams retired so far (server mode).
    public private(set) var streamsRetired: UInt64 = 0
    /// What the retired streams had counted, kept so running totals (progress lines, the
    /// coordinator's snapshot) never go down when a finished stream's state is freed.
    public private(set) var retiredTotals = RetiredTotals()

    /// Sums over the streams ``retireStreams(where:)`` removed.
    public struct RetiredTotals: Sendable, Equatable {
        /// Intact data datagrams (duplicates included) and their UDP payload bytes.
        public var datagrams: UInt64 = 0
        public var bytes: UInt64 = 0
        /// Final loss (the whole count, window and tail included).
        public var lost: UInt64 = 0
        /// Checksum failures and pattern mismatches charged to them.
        public var corrupt: UInt64 = 0
    }

    /// `--allow`: only these sources are accepted (checked only when ``hasAllowList``, so a
    /// receiver without one pays one predictable branch per buffer).
    public var allowList = AllowList([]) { didSet { hasAllowList = true } }
    private(set) var hasAllowList = false
    /// Datagrams dropped because their source is outside ``allowList``, by host (bounded).
    public private(set) var refusedSources = RefusedSources()

    /// The local address the buffer being processed was sent to (a wildcard socket's
    /// IP_PKTINFO), set by the engine per buffer; a new stream keeps it for its REPORT.
    public var arrivalAddress = SourceAddress.unknown

    /// Reliable streams (SPEC §13): the socket buffer the window is sized against, and the
    /// timing of NAK and STATUS.
    public var receiveBufferBytes = 256 << 20
    public var reliableTiming = ReliableReceiveTiming()

    /// Reliable streams still owed feedback (a final STATUS at least); 0: the feedback turn
    /// costs one comparison.
    public var reliableStreamsActive: Int { streams.reduce(0) { $0 + ($1.wantsFeedback ? 1 : 0) } }
    /// Reliable streams still being repaired (not complete, not given up).
    public var reliablePending: Int { streams.reduce(0) { $0 + ($1.reliablePending ? 1 : 0) } }
    /// True once any stream asked for reliability (the receive thread then wakes often).
    public private(set) var sawReliable = false

    /// One feedback turn over the reliable streams: STATUS and NAK sent from `fd` (the
    /// receiving socket) to each stream's source. The receive thread calls it between
    /// batches; no allocation but a NAK's range list.
    public mutating func serviceReliable(now: UInt64, wallNow: UInt64, fd: Int32) {
        guard sawReliable else { return }
        let timing = reliableTiming
        withUnsafeTemporaryAllocation(byteCount: 1280, alignment: 8) { scratch in
            for i in streams.indices where streams[i].wantsFeedback {
                guard let destination = streams[i].source.socketAddress else { continue }
                if let keyring, streams[i].feedback!.sealing == nil {
                    // A keyed stream's first feedback turn: its STATUS and NAK are sealed (SPEC §14).
                    streams[i].feedback!.sealing = FeedbackSealing(secret: keyring.secret, streamID: streams[i].streamID,
                                                                   receiverID: streams[i].feedback!.receiverID)
                }
                let local = streams[i].localAddress
                streams[i].serviceFeedback(now: now, wallNow: wallNow, timing: timing, scratch: scratch.baseAddress!) { bytes, count in
                    SourceReply.send(UnsafeRawBufferPointer(start: bytes, count: count), fd: fd, to: destination, from: local) == nil
                }
            }
        }
    }

    /// Where payloads go with `--output` (nil: nowhere).
    let output: CoreOutput?
    /// The application's callback for new intact datagrams (nil: none).
    let delivery: DeliveryHandler?

    /// A core that tracks up to `maxStreams` streams and hands every new intact datagram to
    /// `delivery`, if given (see ``DeliveryHandler`` for its threading and lifetime rules).
    public init(maxStreams: Int = ValidatingCore.defaultMaxStreams, delivery: DeliveryHandler? = nil) {
        self.init(maxStreams: maxStreams, output: nil, delivery: delivery)
    }

    /// A core that also writes every new intact payload to `output` (see `OutputTarget`).
    package init(maxStreams: Int = ValidatingCore.defaultMaxStreams, output: OutputTarget) {
        self.init(maxStreams: maxStreams, output: CoreOutput(target: output))
    }

    init(maxStreams: Int, output: CoreOutput?, delivery: DeliveryHandler? = nil) {
        self.maxStreams = maxStreams
        self.output = output
        self.delivery = delivery
        streams.reserveCapacity(min(maxStreams, 64))
    }

    @inline(__always)
    private mutating func lookup(_ key: StreamKey, create: Bool) -> Int? {
        if lastIndex >= 0 && key == lastKey { return lastIndex }
        if let i = index[key] { lastKey = key; lastIndex = i; return i }
        guard create else { return nil }
        // A stream a server already reported (its END repeats, its stragglers): not a new stream.
        if !retired.isEmpty && retired.contains(key) {
            statistics.retiredStreamDatagrams &+= 1
            return nil
        }
        guard streams.count < maxStreams else {
            statistics.streamsRefusedDatagrams &+= 1
            return nil
        }
        var state = StreamState(key: key)
        state.excludeHead = excludeHead
        state.groupReceiver = groupReceiver
        state.kernelDropsAtStart = statistics.kernelDrops
        state.localAddress = arrivalAddress
        streams.append(state)
        let i = streams.count - 1
        index[key] = i
        lastKey = key; lastIndex = i
        output?.streamCreated(key)
        return i
    }

    /// Validates a received buffer: one datagram, or with UDP GRO several of one
    /// flow back to back, `segment` bytes each (the last may be shorter). Returns
    /// true when the buffer was a coalesced one. Every receive engine calls this.
    @inline(__always) @discardableResult
    public mutating func processBuffer(_ base: UnsafeRawPointer, length: Int, segment: Int, now: UInt64, wallNow: UInt64,
                                       source: SourceAddress) -> Bool {
        // --allow: a source outside the list is dropped here, before anything is validated,
        // accounted, written or reported (one buffer is one source, GRO or not).
        if hasAllowList && !allowList.allows(source) {
            refusedSources.count(source, datagrams: segment > 0 && segment < length ? UInt64((length + segment - 1) / segment) : 1)
            return false
        }
        guard segment > 0 && segment < length else {
            process(base, length: length, now: now, wallNow: wallNow, source: source)
            return false
        }
        var offset = 0
        while offset < length {
            let size = min(segment, length - offset)
            process(base + offset, length: size, now: now, wallNow: wallNow, source: source)
            offset += size
        }
        return true
    }

    /// Validates one datagram from `source` received at `now` (monotonic) / `wallNow` (realtime).
    @inline(__always)
    public mutating func process(_ p: UnsafeRawPointer, length: Int, now: UInt64, wallNow: UInt64,
                                 source: SourceAddress = .unknown) {
        statistics.datagramsSeen &+= 1
        if firstSeenNanoseconds == 0 { firstSeenNanoseconds = now }
        if _slowPath(keyring != nil) {
            processKeyed(UnsafeMutableRawPointer(mutating: p), length: length, now: now, wallNow: wallNow, source: source)
            return
        }
        // Checksum and pattern in one pass over the payload.
        var patternMatches = true
        switch Datagram.validate(p, length: length, patternMatches: &patternMatches) {
        case .valid(var h):
            guard let i = lookup(StreamKey(streamID: h.streamID, source: source), create: true) else { return }
            if _slowPath(h.flags.contains(.repair)) {
                // Duplicates compare the identity checksum: a repair's with REPAIR clear (SPEC §13.3).
                h.checksum = Datagram.identityChecksum(p, length: length)
            }
            take(i, h, p, length: length, patternMatches: patternMatches, now: now, wallNow: wallNow, source: source)
        case .badChecksum(let h, _):
            if let i = lookup(StreamKey(streamID: h.streamID, source: source), create: false) {
                streams[i].checksumErrors &+= 1
            } else {
                statistics.corruptUnattributed &+= 1
            }
        case .rejected(let reason):
            statistics.invalid[reason.index] &+= 1
            if reason == .unsupportedVersion && p.load(fromByteOffset: 4, as: UInt8.self) == KeyedDatagram.version {
                statistics.keyedWithoutKey &+= 1
            }
        }
    }

    /// A valid DATA or END of stream `i` (its header `h` trusted, its payload at `p + h.headerLength`):
    /// what every receive path does with it.
    @inline(__always)
    private mutating func take(_ i: Int, _ h: DatagramHeader, _ p: UnsafeRawPointer, length: Int, patternMatches: Bool,
                               now: UInt64, wallNow: UInt64, source: SourceAddress) {
        let isReliable = h.flags.contains(.reliable)
        if _slowPath(!streams[i].modeKnown || streams[i].reliable != isReliable) {
            guard Self.fixMode(&streams[i], reliable: isReliable, length: length, receiveBufferBytes: receiveBufferBytes) else { return }
            if isReliable { sawReliable = true }
        }
        let payload = p + Int(h.headerLength)
        if h.flags.rawValue & Self.endFlag != 0 {
            streams[i].lastOtherNanoseconds = now
            if isReliable { streams[i].feedback?.echoArrival = now; streams[i].feedback?.echoTimestamp = h.timestampNanoseconds }
            if Self.recordEnd(&streams[i], EndOfStream(reading: payload)) {
                streams[i].endArrivalNanoseconds = now
                streamsEnded += 1
            }
            return
        }
        if !patternMatches {
            streams[i].patternMismatches &+= 1
            streams[i].lastOtherNanoseconds = now
            return
        }
        let isNew = Self.recordData(&streams[i], h, length: length, now: now, wallNow: wallNow)
        if firstDataNanoseconds == 0 { firstDataNanoseconds = now }
        lastDataNanoseconds = now
        if isNew && h.payloadLength > 0, let output {
            // Read in place: `streams[i].expected` here copied the whole StreamState per datagram.
            let endTotal = streams.withUnsafeBufferPointer { $0[i].expected?.bytes }
            output.write(stream: i, payload, count: Int(h.payloadLength), offset: h.offset, endTotal: endTotal)
        }
        if isNew, let delivery {
            delivery(DeliveredDatagram(streamID: h.streamID, source: source, sequence: h.sequence, offset: h.offset,
                                       payload: UnsafeRawBufferPointer(start: payload, count: Int(h.payloadLength))))
        }
    }

    /// One datagram at a keyed receiver (SPEC §14.4): structure, key id, tag (a suite 2
    /// payload is decrypted in place: the receive buffer is the engine's, written by the
    /// kernel), replay window, then the same accounting as a plain datagram. Whatever fails
    /// is counted unauthenticated and touches no stream: a forged datagram opens none.
    @inline(never)
    private mutating func processKeyed(_ p: UnsafeMutableRawPointer, length: Int, now: UInt64, wallNow: UInt64,
                                       source: SourceAddress) {
        guard let keyring else { return }
        let d: KeyedDatagram.Parsed
        switch KeyedDatagram.parse(p, length: length) {
        case .failure(let reason): statistics.unauthenticated[reason.index] &+= 1; return
        case .success(let parsed): d = parsed
        }
        // A REPORT, STATUS or NAK is for a sender, never a stream (as bad_flags at a plain receiver).
        guard d.kind == .stream else { statistics.unauthenticated[KeyedDatagram.Rejection.badFlags.index] &+= 1; return }
        guard d.trailer.keyID == keyring.secret.keyID else {
            statistics.unauthenticated[KeyedDatagram.Rejection.wrongKey.index] &+= 1
            statistics.foreignKeyID = d.trailer.keyID
            return
        }
        let key = StreamKey(streamID: d.header.streamID, source: source)
        let known = lookup(key, create: false)
        // In place (`streams[i]` read as a value copies the whole StreamState).
        let opener = known.flatMap { i in streams.withUnsafeBufferPointer { $0[i].keyed?.opener } }
            ?? keyring.opener(for: d.header.streamID)
        let headerLength = Int(d.header.headerLength)
        let payloadLength = Int(d.header.payloadLength)
        guard opener.open(p, headerLength: headerLength, payloadLength: payloadLength) else {
            statistics.unauthenticated[KeyedDatagram.Rejection.badTag.index] &+= 1
            return
        }
        guard let i = known ?? lookup(key, create: true) else { return }
        let fresh = streams.withUnsafeMutableBufferPointer { b -> Bool in
            if b[i].keyed == nil { b[i].keyed = KeyedStreamAuth(opener: opener) }
            return b[i].keyed!.window.take(d.trailer.packetNumber)
        }
        guard fresh else {
            statistics.unauthenticated[KeyedDatagram.Rejection.replayed.index] &+= 1
            return
        }
        var h = d.header
        let payload = UnsafeRawPointer(p + headerLength)
        var patternMatches = true
        if h.flags.contains(.end) {
            guard Datagram.endTotalsAgree(h, payload: payload) else {
                statistics.invalid[Datagram.Rejection.badEnd.index] &+= 1
                return
            }
        } else if h.flags.contains(.pattern) {
            // The identity for duplicates is the payload's CRC32C (no CRC on the wire), taken
            // in the pass that checks the pattern.
            let r = PayloadPattern.checkChecksummed(payload, count: payloadLength, streamID: h.streamID, offset: h.offset, continuing: 0)
            h.checksum = r.crc
            patternMatches = r.matches
        } else {
            h.checksum = CRC32C.checksum(payload, count: payloadLength)
        }
        take(i, h, p, length: length, patternMatches: patternMatches, now: now, wallNow: wallNow, source: source)
    }

    /// The stream's first valid datagram fixes its kind; a later one of the other kind is
    /// counted (``StreamState/modeMismatches``) and ignored. True when the datagram goes on.
    @inline(never)
    private static func fixMode(_ s: inout StreamState, reliable: Bool, length: Int, receiveBufferBytes: Int) -> Bool {
        if s.modeKnown {
            s.modeMismatches &+= 1
            return false
        }
        s.modeKnown = true
        if reliable { s.becomeReliable(datagramLength: length, receiveBufferBytes: receiveBufferBytes) }
        return true
    }

    /// A reliable stream's DATA: the echo for the sender's RTT (not from a repair, Karn's
    /// rule) and the repair counts. Returns true for a repair.
    @inline(__always)
    private static func noteReliable(_ s: inout StreamState, _ h: DatagramHeader, outcome: SequenceTracker.Outcome, now: UInt64) -> Bool {
        guard h.flags.contains(.repair) else {
            s.feedback?.echoArrival = now
            s.feedback?.echoTimestamp = h.timestampNanoseconds
            return false
        }
        switch outcome {
        case .inOrder, .gapAhead, .reordered:
            s.repaired &+= 1
            s.feedback?.repairArrived(h.sequence, now: now)
        case .duplicate:
            s.repairDuplicates &+= 1
        case .late, .beyondEnd:
            break
        }
        return true
    }

    /// One intact DATA datagram; returns true when it is new stream data.
    @inline(__always)
    private static func recordData(_ s: inout StreamState, _ h: DatagramHeader, length: Int, now: UInt64, wallNow: UInt64) -> Bool {
        let outcome = s.tracker.record(h.sequence)
        s.datagrams &+= 1
        s.bytes &+= UInt64(length)
        if s.firstArrivalNanoseconds == 0 { s.firstArrivalNanoseconds = now }
        s.lastArrivalNanoseconds = now
        // A repair carries its first send's timestamp: not a latency sample (SPEC §13.3).
        let isRepair = s.reliable && noteReliable(&s, h, outcome: outcome, now: now)
        if !isRepair { s.latency.record(Int64(bitPattern: wallNow &- h.timestampNanoseconds)) }
        let sent = h.timestampNanoseconds
        if s.firstSendNanoseconds == 0 || sent < s.firstSendNanoseconds { s.firstSendNanoseconds = sent }
        if sent > s.lastSendNanoseconds { s.lastSendNanoseconds = sent }
        if outcome == .beyondEnd {
            s.beyondEndPayloadBytes &+= UInt64(h.payloadLength)
            return false
        }
        if s.endsReceived > 0 { s.afterEnd &+= 1 }
        let (end, overflow) = h.offset.addingReportingOverflow(UInt64(h.payloadLength))
        let byteEnd = overflow ? UInt64.max : end
        if byteEnd > s.highestByteEnd { s.highestByteEnd = byteEnd }
        switch outcome {
        case .duplicate:
            s.checkDuplicate(h.sequence, checksum: h.checksum)
            return false
        case .late, .beyondEnd:
            return false
        case .gapAhead:
            if s.highestSendNanoseconds != 0 && sent > s.highestSendNanoseconds {
                s.longestGapNanoseconds = max(s.longestGapNanoseconds, sent - s.highestSendNanoseconds)
            }
            fallthrough
        case .inOrder, .reordered:
            if outcome != .reordered { s.highestSendNanoseconds = sent }
            s.noteFirstCopy(h.sequence, checksum: h.checksum, payloadLength: h.payloadLength)
            s.uniquePayloadBytes &+= UInt64(h.payloadLength)
            if h.payloadLength < s.uniquePayloadMin { s.uniquePayloadMin = h.payloadLength }
            if h.payloadLength > s.uniquePayloadMax { s.uniquePayloadMax = h.payloadLength }
            return true
        }
    }

    /// A valid END; returns true for the stream's first.
    @inline(__always)
    private static func recordEnd(_ s: inout StreamState, _ totals: EndOfStream) -> Bool {
        s.endsReceived &+= 1
        if let e = s.expected {
            if e != totals { s.endMismatches &+= 1 }
            return false
        }
        s.expected = totals
        s.applyEnd(totals)
        return true
    }

    /// Server mode: removes the streams `isFinished` picks and returns them, freeing their
    /// state (the core then holds only live streams, so memory stays bounded however many
    /// streams come and go). Their keys are remembered (``retiredMemory``) so late copies
    /// count as ``ReceiverStatistics/retiredStreamDatagrams``, not as a new stream.
    /// O(streams); called every few milliseconds, never per datagram.
    public mutating func retireStreams(where isFinished: (StreamState) -> Bool) -> [StreamState] {
        let indices = streams.indices.filter { isFinished(streams[$0]) }
        guard !indices.isEmpty else { return [] }
        var gone = indices.map { streams[$0] }
        if let output {
            // Their gathered writes go out now; their output reports leave with them.
            for (k, report) in output.retire(indices).enumerated() { gone[k].output = report }
        }
        for i in indices.reversed() { streams.remove(at: i) }
        index.removeAll(keepingCapacity: true)
        for (i, s) in streams.enumerated() { index[s.key] = i }
        lastIndex = -1
        for s in gone {
            if s.expected != nil { streamsEnded -= 1 }
            if retiredOrder.count < Self.retiredMemory {
                retiredOrder.append(s.key)
            } else {
                retired.remove(retiredOrder[retiredNext])
                retiredOrder[retiredNext] = s.key
                retiredNext = (retiredNext + 1) % Self.retiredMemory
            }
            retired.insert(s.key)
        }
        streamsRetired &+= UInt64(gone.count)
        for s in gone {
            retiredTotals.datagrams &+= s.datagrams
            retiredTotals.bytes &+= s.bytes
            retiredTotals.lost = retiredTotals.lost.saturatingAdd(s.summary().lost)
            retiredTotals.corrupt &+= s.corrupt
        }
        return gone
    }

    /// Engines report each receive call: the buffers it returned and how many of them were
    /// GRO-coalesced (see ``ReceiverStatistics/receiveCalls``).
    public mutating func noteReceive(calls: UInt64 = 1, buffers: UInt64, coalesced: UInt64) {
        statistics.receiveCalls &+= calls
        statistics.buffers &+= buffers
        statistics.coalescedBuffers &+= coalesced
    }

    /// Engines report the socket's cumulative `SO_RXQ_OVFL` counter; the core keeps the highest seen.
    public mutating func noteKernelDrops(_ cumulative: UInt64) {
        if cumulative > statistics.kernelDrops { statistics.kernelDrops = cumulative }
    }

    /// Datagrams the engine could not hand to validation whole (truncated by the
    /// receive buffer): counted invalid.
    public mutating func noteTruncated(_ count: UInt64 = 1) {
        statistics.truncated &+= count
    }

    /// The io_uring engine re-armed its multishot receive.
    public mutating func noteRearm() { statistics.rearms &+= 1 }
    /// The io_uring engine got `ENOBUFS`: no provided buffer was free.
    public mutating func noteBufferShortage() { statistics.bufferShortages &+= 1 }

    /// Writes gathered output; engines call it before reusing receive buffers.
    @inline(__always)
    public func flushOutput() {
        output?.flush()
    }

    /// Ends output for this core: flushes, drains stdout, and stores each stream's output report.
    public mutating func finishOutput() {
        guard let output else { return }
        let snapshot = streams
        let reports = output.finish { snapshot[$0].expected?.bytes }
        for i in streams.indices where i < reports.count { streams[i].output = reports[i] }
    }

    /// True when `count` streams have ended and all are complete.
    public func allComplete(streams count: Int) -> Bool {
        streamsEnded >= count && streams.lazy.filter { $0.expected != nil }.allSatisfy(\.isComplete)
    }

    /// Streams that ended (END seen) but still miss sequence numbers.
    public var endedIncomplete: Int {
        streams.reduce(0) { $0 + ($1.expected != nil && !$1.isComplete ? 1 : 0) }
    }

    /// Adds another thread's core: streams with the same key are merged
    /// (`StreamState.merge`), others appended; counters summed. Kernel drops are
    /// per socket, so the per-thread counts add up.
    public mutating func merge(_ other: ValidatingCore) {
        for s in other.streams {
            if let i = index[s.key] {
                let endedBefore = streams[i].expected != nil
                streams[i].merge(s)
                if !endedBefore && streams[i].expected != nil { streamsEnded += 1 }
            } else {
                streams.append(s)
                index[s.key] = streams.count - 1
                if s.expected != nil { streamsEnded += 1 }
            }
        }
        statistics.merge(other.statistics)
        streamsRetired &+= other.streamsRetired
        retiredTotals.datagrams &+= other.retiredTotals.datagrams
        retiredTotals.bytes &+= other.retiredTotals.bytes
        retiredTotals.lost = retiredTotals.lost.saturatingAdd(other.retiredTotals.lost)
        retiredTotals.corrupt &+= other.retiredTotals.corrupt
        refusedSources.merge(other.refusedSources)
        if other.firstDataNanoseconds != 0 && (firstDataNanoseconds == 0 || other.firstDataNanoseconds < firstDataNanoseconds) {
            firstDataNanoseconds = other.firstDataNanoseconds
        }
        lastDataNanoseconds = max(lastDataNanoseconds, other.lastDataNanoseconds)
        if other.firstSeenNanoseconds != 0 && (firstSeenNanoseconds == 0 || other.firstSeenNanoseconds < firstSeenNanoseconds) {
            firstSeenNanoseconds = other.firstSeenNanoseconds
        }
        lastIndex = -1
    }

    /// After `finishOutput` (and `merge`, with several threads): sizes the files,
    /// computes each stream's holes, closes the files.
    package mutating func finalizeOutput(_ target: OutputTarget) {
        target.finalize(&streams)
    }

    /// All streams' latency in one histogram.
    public var latency: LatencyHistogram {
        var all = LatencyHistogram()
        for s in streams where s.latency.count > 0 { all.add(s.latency) }
        return all
    }
}

/// Counter indexing for rejection reasons.
extension Datagram.Rejection {
    /// Position in `allCases`, for counter arrays.
    @inline(__always) public var index: Int {
        switch self {
        case .tooShort: return 0
        case .badMagic: return 1
        case .unsupportedVersion: return 2
        case .badHeaderLength: return 3
        case .badFlags: return 4
        case .lengthMismatch: return 5
        case .badEnd: return 6
        }
    }
}
