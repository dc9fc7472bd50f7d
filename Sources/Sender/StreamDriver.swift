#if canImport(Glibc)
import Glibc
#endif
import CLinux
import StreamProtocol
import ZCSystem

/// One stream over one ``SendEngine``: the only place that knows limits, pacing, END
/// and its repeats, draining, progress and the report. Engines only move bytes.
///
/// Two ways in, one state:
/// - **Pull** (``run(source:limits:flushIntervalNanoseconds:ticker:)``, for
///   ``StreamSender``): the driver fills every slot the engine lends from its
///   ``DatagramWriter`` (the payload pattern, `--source fixed`, a file or a pipe), then
///   enters the kernel once per turn.
///
/// Both end the same way: ``finish()`` (END and its repeats, then the drain).
/// - **Push** (``lendDatagram(wait:)`` … ``commitPushed()``, for ``OutboundStream``): the
///   application writes each payload in place and the driver packs, seals, paces and
///   commits.
///
/// Generic over the engine (specialised, never an existential), so the per-datagram
/// path is direct calls into the concrete engine. `~Copyable`: it owns scratch memory.
package struct StreamDriver<Engine: SendEngine>: ~Copyable {
    package let engine: Engine
    package var writer: DatagramWriter
    package var stats = SenderStatistics()
    package var pacer: Pacer?
    /// Monotonic start of the run.
    package let start: UInt64
    /// END datagrams still to send (repeats, and any a rejected ring swallowed).
    package private(set) var endsRemaining: Int
    /// How long the end of the run waits for the kernel to hand back every slot.
    package let drainTimeoutNanoseconds: UInt64
    /// Gap between END repeats.
    package static var endGapNanoseconds: UInt64 { 2_000_000 }
    /// Longest single sleep while pacing, so progress and stop requests stay timely.
    package static var maxSleepNanoseconds: UInt64 { 1_000_000 }

    /// A reliable stream's feedback, acknowledgements and repairs (nil: a plain stream).
    package let reliable: ReliableDelivery?
    /// Production waits on the receiver's window (reliable streams).
    private var windowClosed = false

    /// A reorder/duplicate fault writes two datagrams at once; when a slot holds one,
    /// they are written here and copied into slots of their own.
    private let scratch: UnsafeMutableRawPointer
    /// Per slot, the payload positions a file read fills (one vectored read per slot); they
    /// must outlive the asynchronous read, so they are owned here, allocated up front.
    private let readVectors: UnsafeMutablePointer<iovec>
    /// preadv2(RWF_NOWAIT) works on this source: page-cache hits are read in place on this
    /// thread; only misses go to the ring (false after EOPNOTSUPP).
    private var readsWithoutWaiting = true
    private var scratchDatagrams = 0
    private var scratchNext = 0
    private var scratchBytes = 0
    /// Regular files read by the engine (one READV per slot): slots waiting for their reads.
    private var plan: FileReadPlan

    // Push: the slot being packed (-1: none), its bytes and datagrams.
    private var current = -1
    private var currentBytes = 0
    private var currentDatagrams = 0

    package init(engine: Engine, writer: consuming DatagramWriter, rate: Rate?, endRepeats: Int,
         drainTimeoutNanoseconds: UInt64 = 10_000_000_000, reliable: ReliableDelivery? = nil) {
        self.reliable = reliable
        self.engine = engine
        self.writer = writer
        self.pacer = Pacer(rate: rate)
        self.start = MonotonicClock.nanoseconds()
        self.endsRemaining = endRepeats
        self.drainTimeoutNanoseconds = drainTimeoutNanoseconds
        let size = self.writer.datagramSize
        scratch = .allocate(byteCount: 2 * size + 64, alignment: 64)
        readVectors = .allocate(capacity: engine.slotCount * max(1, engine.segmentsPerSlot))
        plan = FileReadPlan(capacity: engine.slotCount)
        if self.writer.isFixedPayload {
            // --source fixed: slots are memory we keep; the one payload goes into every
            // datagram position once, and fills write headers only.
            for slot in 0..<engine.slotCount { self.writer.prepareSlot(engine.address(of: slot), maxSegments: engine.segmentsPerSlot) }
            self.writer.prepareSlot(scratch, maxSegments: 2)
        }
    }

    deinit { scratch.deallocate(); readVectors.deallocate() }

    package var datagramSize: Int { writer.datagramSize }
    package var elapsedNanoseconds: UInt64 { MonotonicClock.nanoseconds() - start }

    // MARK: - Pull

    /// Produces the whole stream: fills what the engine lends until a limit, the end of
    /// the source or a stop, and returns (why production stopped) once every slot it
    /// filled is handed to the kernel. END and the drain follow in ``finish()``, the same
    /// for pull and push.
    package mutating func run(source input: PayloadInput?, limits: ProductionLimits, flushIntervalNanoseconds: UInt64,
                      ticker: inout ProgressTicker) throws(SendEngineError) -> StopReason {
        let reader = input.map { SourceReader($0, flushIntervalNanoseconds: flushIntervalNanoseconds) }
        let readFD: Int32? = input.flatMap { $0.seekable && engine.readsFilesAsynchronously ? $0.fd : nil }
        var producing = true
        var reason = StopReason.limit
        var readsDeadline: UInt64 = .max

        while true {
            let now = MonotonicClock.nanoseconds()
            if producing, let stop = limits.reasonToStop(now: now, writer: writer, stats: stats, engineFailed: engine.halted) {
                producing = false
                reason = stop
            }
            if let reliable {
                // Feedback once per turn: acknowledgements free slots, NAKs are repaired now.
                try reliable.poll(engine, stats: &stats)
                if producing && reliable.checkDeadline(now: now) { producing = false; reason = .error }
            }
            if !plan.isEmpty { try sendReadSlots() }

            var paceWait: UInt64 = 0
            if producing {
                (paceWait, producing) = try produce(reader: reader, readFD: readFD)
            }
            if !producing {
                reliable?.unblocked(now: now)
                // Reads still outstanding go out first (datagrams leave in sequence order),
                // bounded like the drain from the turn production stopped.
                if plan.isEmpty { break }
                if readsDeadline == .max { readsDeadline = now + drainTimeoutNanoseconds }
                if now >= readsDeadline {
                    throw .drainTimeout(slotsOwed: engine.inFlight, seconds: Double(drainTimeoutNanoseconds) / 1e9)
                }
            }

            // Enter the kernel once per turn, and wait only when there is nothing else to do.
            if paceWait > 0 && engine.hasFreeSlot {
                // Ahead of schedule with slots to spare: hand over what is queued, then
                // sleep rather than be woken by every completion.
                try engine.service(.none, stats: &stats)
                MonotonicClock.sleep(nanoseconds: min(paceWait, Self.maxSleepNanoseconds))
            } else if paceWait > 0 {
                try engine.service(.upTo(nanoseconds: paceWait), stats: &stats)
            } else if let reliable, windowClosed || !engine.hasFreeSlot {
                // Slots come back only with acknowledgements: wait for feedback or completions.
                reliable.blocked(now: now)
                try reliable.wait(engine, stats: &stats)
            } else if !engine.hasFreeSlot || !producing {
                try engine.service(engine.inFlight > 0 ? .untilSlotFree : .none, stats: &stats)
            } else {
                try engine.service(.none, stats: &stats)
            }
            ticker.tick(now: now, start: start, statistics: stats, inFlight: engine.inFlight, reliable: reliable?.progress)
        }
        return reason
    }

    /// Fills and commits every slot the engine lends until the pacer, the engine or
    /// the source says stop for this turn. Returns the pacing wait (0: none) and
    /// whether the stream goes on producing.
    @inline(__always)
    private mutating func produce(reader: SourceReader?, readFD: Int32?) throws(SendEngineError) -> (paceWait: UInt64, producing: Bool) {
        let segments = engine.segmentsPerSlot
        let turnLimit = engine.slotsPerTurn
        var slots = 0
        while true {
            if slots >= turnLimit { return (0, true) }
            slots += 1
            if let reliable {
                windowClosed = !nextSlotFits(reliable)
                if windowClosed { return (0, true) }
                let now = MonotonicClock.nanoseconds()
                reliable.unblocked(now: now)
                // The loss response's cap, like pacing.
                let d = reliable.congestionDelay(now: now)
                if d > 0 { return (d, true) }
            }
            if pacer != nil {
                let d = pacer!.delay(now: MonotonicClock.nanoseconds())
                if d > 0 { return (d, true) }
            }
            if scratchDatagrams > 0 {
                guard try sendScratchDatagram() else { return (0, true) }
                if scratchDatagrams == 0 && writer.isExhausted { return (0, false) }
                continue
            }
            if let readFD {
                // Reads first; the send follows when they complete (sendReadSlots).
                guard engine.readCapacity >= 1, let slot = engine.lend() else { return (0, true) }
                let planned = try planReads(slot: slot, fd: readFD)
                if planned == 0 { engine.giveBack(slot); return (0, false) }
                let bytes = planned * datagramSize
                pacer?.charge(datagrams: planned, bytes: bytes)
                if writer.isExhausted { return (0, false) }
                continue
            }
            guard let slot = engine.lend() else { return (0, true) }
            let base = engine.address(of: slot)
            let bytes: Int, datagrams: Int
            if let reader {
                // Payloads read straight into place (pread for files; pipes polled, flushed after the interval).
                let r = writer.fill(base, maxSegments: segments) { reader.read(into: $0, count: $1, streamOffset: $2) }
                if r.error != 0 {
                    engine.giveBack(slot)
                    throw .system(SystemError(call: "read(source)", errno: r.error))
                }
                (bytes, datagrams) = (r.bytes, r.datagrams)
            } else {
                (bytes, datagrams) = writer.fill(base, maxSegments: segments)
            }
            if datagrams == 0 {
                engine.giveBack(slot)
                if writer.isExhausted { return (0, false) }
                if reader != nil { return (0, true) }  // a live source with nothing new for now
                // A scheduled reorder/duplicate needs two datagrams at once and a slot
                // holds one: write the pair aside, then send each in a slot of its own.
                let pair = writer.fill(scratch, maxSegments: 2)
                if pair.datagrams == 0 { return (0, !writer.isExhausted) }
                (scratchDatagrams, scratchNext, scratchBytes) = (pair.datagrams, 0, pair.bytes)
                continue
            }
            try commitData(slot, length: bytes, datagrams: datagrams)
            pacer?.charge(datagrams: datagrams, bytes: bytes)
            if writer.isExhausted { return (0, false) }
        }
    }

    /// The whole next data slot fits the receiver's window (SPEC §13.5): its numbers up to a
    /// full slot, or to the stream's end when that comes first.
    @inline(__always)
    private func nextSlotFits(_ reliable: ReliableDelivery) -> Bool {
        reliable.windowAllows(through: min(writer.nextSequence + UInt64(engine.segmentsPerSlot), writer.totalDatagrams ?? .max))
    }

    /// Commits a slot of data datagrams; a reliable stream's slot is held until acknowledged.
    @inline(__always)
    private mutating func commitData(_ slot: Int, length: Int, datagrams: Int) throws(SendEngineError) {
        if let reliable { reliable.noteSent(slot, base: engine.address(of: slot), datagrams: datagrams, length: length, engine: engine) }
        try engine.commit(slot, length: length, datagrams: datagrams, isEnd: false, stats: &stats)
    }

    /// Copies the next datagram written aside into a slot of its own and commits it.
    /// False when no slot is free now.
    private mutating func sendScratchDatagram() throws(SendEngineError) -> Bool {
        guard let slot = engine.lend() else { return false }
        let k = scratchNext
        let size = datagramSize
        let length = k < scratchDatagrams - 1 ? size : scratchBytes - k * size
        engine.address(of: slot).copyMemory(from: scratch + k * size, byteCount: length)
        try engine.commit(slot, length: length, datagrams: 1, isEnd: false, stats: &stats)
        pacer?.charge(datagrams: 1, bytes: length)
        scratchNext += 1
        if scratchNext == scratchDatagrams { scratchDatagrams = 0 }
        return true
    }

    /// Reserves the slot's sequence numbers and queues one read per datagram, each
    /// straight into the payload area behind that datagram's header. Returns the
    /// datagrams planned.
    /// Reads the next datagrams' payloads of a regular file into `slot`: the file's bytes
    /// for one slot are consecutive, so one vectored read puts them between the headers.
    /// Page-cache hits are read right here (preadv2 RWF_NOWAIT: a copy, no worker hand-off)
    /// and the slot goes out at once; a miss is one READV on the ring, sealed and sent in
    /// order by ``sendReadSlots()``. Returns the datagrams planned (0: the file is done).
    private mutating func planReads(slot: Int, fd: Int32) throws(SendEngineError) -> Int {
        let (first, count) = writer.reserve(maxSegments: engine.segmentsPerSlot)
        guard count > 0 else { return 0 }
        let base = engine.address(of: slot)
        let vectors = readVectors + slot * max(1, engine.segmentsPerSlot)
        var total = 0
        for k in 0..<count {
            let (at, length, _) = writer.layout(first: first, index: k)
            vectors[k] = iovec(iov_base: base + at + DatagramHeader.size, iov_len: length)
            total += length
        }
        let fileOffset = writer.layout(first: first, index: 0).streamOffset
        // Only while no slot waits for the ring: datagrams leave in sequence order.
        if readsWithoutWaiting && plan.isEmpty {
            let n = zc_preadv_nowait(fd, vectors, Int32(count), Int64(bitPattern: fileOffset))
            if n == total {
                let length = writer.seal(base, first: first, count: count)
                try commitData(slot, length: length, datagrams: count)
                return count
            }
            if n < 0 && errno != EAGAIN { readsWithoutWaiting = false }
            // A miss or a short read: the ring reads the whole slot again.
        }
        engine.queueRead(vectors: vectors, count: count, fileOffset: fileOffset, fd: fd, slot: slot)
        plan.append(slot: slot, first: first, count: count)
        return count
    }

    /// Seals and commits, in plan order, every slot whose reads all completed.
    private mutating func sendReadSlots() throws(SendEngineError) {
        while let entry = plan.oldest {
            let slot = Int(entry.slot)
            let progress = engine.readProgress(of: slot)
            guard progress.pending == 0 else { return }
            if progress.bytes < 0 { throw .system(SystemError(call: "read(source)", errno: Int32(-progress.bytes))) }
            var expected = 0
            for k in 0..<Int(entry.count) { expected += writer.layout(first: entry.first, index: k).payloadLength }
            if progress.bytes != expected { throw .sourceChanged(read: progress.bytes, expected: expected) }
            let length = writer.seal(engine.address(of: slot), first: entry.first, count: Int(entry.count))
            try commitData(slot, length: length, datagrams: Int(entry.count))
            plan.removeOldest()
        }
    }

    /// Writes END (the totals so far) into `slot` and commits it.
    private mutating func sendEnd(in slot: Int) throws(SendEngineError) {
        let length = writer.writeEnd(at: engine.address(of: slot))
        try engine.commit(slot, length: length, datagrams: 0, isEnd: true, stats: &stats)
        endsRemaining -= 1
    }

    // MARK: - Push

    /// Largest payload one datagram carries.
    package var maxPayload: Int { writer.payloadSize }

    /// A free slot: lent at once if there is one; otherwise the engine is serviced
    /// (waiting, with `wait`, until the kernel hands one back). Nil without `wait`
    /// when none is free, or when a stop is requested while waiting.
    package mutating func acquire(wait: Bool, forData: Bool = false) throws(SendEngineError) -> Int? {
        if let reliable { return try acquireReliably(reliable, wait: wait, forData: forData) }
        if let slot = engine.lend() { return slot }
        while true {
            try engine.service(wait ? .untilSlotFree : .none, stats: &stats)
            if let slot = engine.lend() { return slot }
            if !wait || StopFlag.isSet { return nil }
        }
    }

    /// ``acquire(wait:forData:)`` for a reliable stream: held slots come back only with
    /// acknowledgements, so waiting means reading feedback (never a wait on the kernel alone,
    /// which may owe nothing). New data also waits for the receiver's window. Nil on a stop,
    /// or once the stream gave up.
    private mutating func acquireReliably(_ reliable: ReliableDelivery, wait: Bool, forData: Bool) throws(SendEngineError) -> Int? {
        while true {
            try reliable.poll(engine, stats: &stats)
            var now = MonotonicClock.nanoseconds()
            if forData {
                // The loss response's cap, like pacing.
                var d = reliable.congestionDelay(now: now)
                while d > 0 && wait {
                    try engine.service(.none, stats: &stats)
                    MonotonicClock.sleep(nanoseconds: min(d, Self.maxSleepNanoseconds))
                    try reliable.poll(engine, stats: &stats)
                    now = MonotonicClock.nanoseconds()
                    d = reliable.congestionDelay(now: now)
                }
                if d > 0 { return nil }  // not waiting (back-pressure: fail)
            }
            let open = !forData || nextSlotFits(reliable)
            if open, let slot = engine.lend() { reliable.unblocked(now: now); return slot }
            if !wait || reliable.checkDeadline(now: now) { return nil }
            if forData { reliable.blocked(now: now) }
            try reliable.wait(engine, stats: &stats)
        }
    }

    /// Where the next pushed datagram goes (its header first, the payload
    /// ``DatagramHeader/size`` bytes on); nil when no slot is free and `wait` is false.
    @inline(__always)
    package mutating func lendDatagram(wait: Bool) throws(SendEngineError) -> UnsafeMutableRawPointer? {
        if let e = engine.haltError { throw e }
        if current < 0 {
            guard let slot = try acquire(wait: wait, forData: true) else { return nil }
            current = slot
        }
        return engine.address(of: current) + currentBytes
    }

    /// Seals the datagram whose `payload` bytes the producer wrote behind the header
    /// at the address ``lendDatagram(wait:)`` gave. A short datagram, or a full slot,
    /// goes at once (GSO cuts a send at the segment size: only its last may be short).
    @inline(__always)
    package mutating func sealPushed(payload: Int) throws(SendEngineError) {
        currentBytes += writer.append(at: engine.address(of: current) + currentBytes, payload: payload,
                                      timestamp: MonotonicClock.wallNanoseconds())
        currentDatagrams += 1
        if payload < maxPayload || currentDatagrams == engine.segmentsPerSlot { try commitPushed() }
    }

    /// A datagram was lent but not written (the producer failed): a slot holding
    /// nothing else goes back unsent.
    package mutating func abandonPushed() {
        if current >= 0 && currentDatagrams == 0 {
            engine.giveBack(current)
            current = -1
            currentBytes = 0
        }
    }

    /// Paces, then commits the slot being packed; enters the kernel once the engine's
    /// push batch is queued.
    package mutating func commitPushed() throws(SendEngineError) {
        guard current >= 0, currentDatagrams > 0 else { return }
        if var p = pacer {
            var d = p.delay(now: MonotonicClock.nanoseconds())
            if d > 0 {
                // What is queued goes before the sleep.
                try engine.service(.none, stats: &stats)
                while d > 0 {
                    MonotonicClock.sleep(nanoseconds: min(d, Self.maxSleepNanoseconds))
                    try engine.service(.none, stats: &stats)
                    d = p.delay(now: MonotonicClock.nanoseconds())
                }
            }
            p.charge(datagrams: currentDatagrams, bytes: currentBytes)
            pacer = p
        }
        let (slot, bytes, datagrams) = (current, currentBytes, currentDatagrams)
        (current, currentBytes, currentDatagrams) = (-1, 0, 0)
        if let e = engine.haltError {
            // The engine failed while this slot waited (the ring was replaced under it): it never goes.
            stats.errors[e.errno, default: 0] += 1
            stats.datagramsFailed &+= UInt64(datagrams)
            throw e
        }
        try commitData(slot, length: bytes, datagrams: datagrams)
        if engine.queued >= engine.pushBatch { try engine.service(.none, stats: &stats) }
    }

    /// Commits the slot being packed and hands everything queued to the kernel.
    package mutating func flush() throws(SendEngineError) {
        try commitPushed()
        try engine.service(.none, stats: &stats)
    }

    /// Ends the stream, pulled or pushed: flush, END ``endsRemaining`` times 2 ms apart
    /// (and again for any the engine lost), then the drain. Between repeats the engine is
    /// serviced, not slept on, so completions and notifications keep coming in.
    package mutating func finish() throws(SendEngineError) {
        try flush()
        endsRemaining += engine.takeLostEnds()
        while true {
            var nextEndAt: UInt64 = 0
            while endsRemaining > 0 {
                var now = MonotonicClock.nanoseconds()
                while now < nextEndAt {
                    try engine.service(.upTo(nanoseconds: nextEndAt - now), stats: &stats)
                    now = MonotonicClock.nanoseconds()
                }
                // nil: a stop was requested while every slot was held (or a reliable stream
                // gave up); drain what went.
                guard let slot = try acquire(wait: true) else {
                    if let reliable { reliabilityReport = reliable.close(total: writer.nextSequence, engine: engine) }
                    return try drain()
                }
                try sendEnd(in: slot)
                try engine.service(.none, stats: &stats)
                nextEndAt = MonotonicClock.nanoseconds() + Self.endGapNanoseconds
            }
            // A reliable stream ends when the receiver says complete (or the sender gives up).
            if let reliable { try awaitDelivery(reliable) }
            // A rejected ring shows itself once its frames are accounted: drain, then
            // send again any END it took down.
            try drain()
            let lost = engine.takeLostEnds()
            if lost == 0 { return }
            endsRemaining += lost
        }
    }

    /// SPEC §13.7: after the first END repeats, answers NAKs and repeats END (the interval
    /// doubling up to 250 ms) until a STATUS says `complete`, the receiver's REPORT comes, or
    /// the deadline passes; then hands every held slot back for the drain.
    private mutating func awaitDelivery(_ reliable: ReliableDelivery) throws(SendEngineError) {
        reliable.noteEnd()
        var interval = reliable.endRepeatStart
        var nextEnd = MonotonicClock.nanoseconds() + interval
        while !reliable.delivered && reliable.receiverReport == nil {
            let now = MonotonicClock.nanoseconds()
            if reliable.checkDeadline(now: now) { break }
            if now >= nextEnd, let slot = engine.lend() {
                try sendEnd(in: slot)
                endsRemaining += 1  // a repeat of its own, not one of the §6 count
                interval = min(interval * 2, ReliableDelivery.endRepeatCap)
                nextEnd = now + interval
            }
            try reliable.wait(engine, stats: &stats)
        }
        reliabilityReport = reliable.close(total: writer.nextSequence, engine: engine)
    }

    /// What the reliable stream's sender saw (set by ``finish()``).
    package private(set) var reliabilityReport: ReliabilityReport?

    /// Waits until the engine holds nothing (every completion and notification in),
    /// then lets the engine settle. Throws after ``drainTimeoutNanoseconds``.
    package mutating func drain() throws(SendEngineError) {
        let deadline = MonotonicClock.nanoseconds() + drainTimeoutNanoseconds
        while engine.inFlight > 0 {
            try engine.service(.upTo(nanoseconds: 10_000_000), stats: &stats)
            if engine.inFlight > 0 && MonotonicClock.nanoseconds() > deadline {
                throw .drainTimeout(slotsOwed: engine.inFlight, seconds: Double(drainTimeoutNanoseconds) / 1e9)
            }
        }
        engine.settle()
    }

    // MARK: - The report

    /// The run's report, built once for every engine and both ways in.
    package func report(configuration: SenderConfiguration, reason: StopReason, sendBufferBytes: Int32) -> SenderReport {
        var report = SenderReport(configuration: configuration, statistics: stats, injected: writer.injected,
                                  sequences: writer.nextSequence, seconds: Double(elapsedNanoseconds) / 1e9,
                                  stopReason: engine.halted && reason == .limit ? .error : reason,
                                  sendBufferBytes: sendBufferBytes)
        engine.annotate(&report)
        report.reliability = reliabilityReport
        return report
    }
}
