#if canImport(Glibc)
import Glibc
#endif
import CURing
import StreamProtocol
import URing
import ZCSystem

/// The io_uring send engines: `uring-zc` (SEND_ZC from the registered pool) and
/// `uring` (plain SEND, the kernel copies). One thread, one ring, run to completion.
///
/// Slot lifecycle (zero copy): free -> filled -> submitted -> send CQE (F_MORE set:
/// the kernel may still read the pages) -> notification CQE -> free. A slot is
/// never written between submission and its notification; `outstanding[slot]`
/// counts the CQEs still owed before it may be reused.
final class UringSendEngine {
    /// SEND_ZC now (`auto` may turn it off once; sends already in flight keep their own kind).
    var zeroCopy: Bool
    /// `--engine auto`: watch the notifications and leave zero copy when they report copies.
    let adaptive: Bool
    /// Notifications `auto` waits for before judging, and the copied share that makes it switch.
    static let adaptiveSample: UInt64 = 32
    private var startNanoseconds: UInt64 = 0
    let ring: Ring
    var pool: BufferPool
    let segmentsPerSend: Int
    let datagramSize: Int
    let recycleOnSendCompletion: Bool

    // Per-slot bookkeeping, allocated once.
    private let slotLength: UnsafeMutablePointer<Int32>
    private let slotDatagrams: UnsafeMutablePointer<Int32>
    private let slotIsEnd: UnsafeMutablePointer<Bool>
    private let outstanding: UnsafeMutablePointer<Int32>
    private let retryPending: UnsafeMutablePointer<Bool>
    private let retryQueue: UnsafeMutablePointer<Int32>
    private var retryHead = 0
    private var retryCount = 0
    private let completions: UnsafeMutableBufferPointer<Completion>

    // File source: payloads arrive by READ_FIXED straight into the slot; a slot is
    // sealed and sent once all its reads completed, in the order slots were planned.
    private let input: PayloadInput?
    private let readsPending: UnsafeMutablePointer<Int32>
    private let readBytes: UnsafeMutablePointer<Int>
    private let planFirst: UnsafeMutablePointer<UInt64>
    private let planCount: UnsafeMutablePointer<Int32>
    private let planOrder: UnsafeMutablePointer<Int32>
    private var planHead = 0
    private var planQueued = 0
    private var readError: Int32 = 0
    private static let readTag: UInt64 = 1 << 63

    /// Creates the ring and the pool, registers both, then builds the engine.
    static func make(configuration c: SenderConfiguration, socket: borrowing UDPSocket,
                     input: PayloadInput? = nil) throws(SystemError) -> UringSendEngine {
        // Every send may owe two CQEs (completion + notification).
        let cq = UInt32(max(c.poolSlots, c.ringDepth) * 2)
        let ring = try Ring(.init(entries: UInt32(c.ringDepth), completionEntries: cq))
        let pool = try BufferPool(slots: c.poolSlots, slotBytes: c.segmentsPerSend * c.datagramSize)
        try ring.registerBuffer(pool.region)
        try ring.registerFiles([socket.fd])
        ring.registerRingFD()
        return UringSendEngine(configuration: c, ring: ring, pool: pool, input: input)
    }

    private init(configuration c: SenderConfiguration, ring: consuming Ring, pool: consuming BufferPool, input: PayloadInput?) {
        self.input = input
        zeroCopy = c.engine.usesZeroCopy
        adaptive = c.engine == .auto
        segmentsPerSend = c.segmentsPerSend
        datagramSize = c.datagramSize
        recycleOnSendCompletion = c.faults.recycleOnSendCompletion && zeroCopy
        self.ring = ring
        self.pool = pool
        let n = c.poolSlots
        slotLength = .allocate(capacity: n); slotLength.initialize(repeating: 0, count: n)
        slotDatagrams = .allocate(capacity: n); slotDatagrams.initialize(repeating: 0, count: n)
        slotIsEnd = .allocate(capacity: n); slotIsEnd.initialize(repeating: false, count: n)
        outstanding = .allocate(capacity: n); outstanding.initialize(repeating: 0, count: n)
        retryPending = .allocate(capacity: n); retryPending.initialize(repeating: false, count: n)
        retryQueue = .allocate(capacity: n)
        completions = .allocate(capacity: 512)
        readsPending = .allocate(capacity: n); readsPending.initialize(repeating: 0, count: n)
        readBytes = .allocate(capacity: n); readBytes.initialize(repeating: 0, count: n)
        planFirst = .allocate(capacity: n); planFirst.initialize(repeating: 0, count: n)
        planCount = .allocate(capacity: n); planCount.initialize(repeating: 0, count: n)
        planOrder = .allocate(capacity: n)
    }

    deinit {
        ring.unregisterBuffers()
        slotLength.deallocate(); slotDatagrams.deallocate(); slotIsEnd.deallocate()
        outstanding.deallocate(); retryPending.deallocate(); retryQueue.deallocate()
        completions.deallocate()
        readsPending.deallocate(); readBytes.deallocate(); planFirst.deallocate(); planCount.deallocate(); planOrder.deallocate()
    }

    /// Fixed file index of the socket.
    private static let socketIndex: Int32 = 0

    @inline(__always)
    private func prepare(_ sqe: UnsafeMutablePointer<io_uring_sqe>, slot: Int) {
        let address = pool.address(of: slot)
        let length = Int(slotLength[slot])
        if zeroCopy {
            zc_prep_send_zc_fixed(sqe, Self.socketIndex, address, length, 0, 1, UInt64(slot))
        } else {
            zc_prep_send(sqe, Self.socketIndex, address, length, 1, UInt64(slot))
        }
        outstanding[slot] += 1
    }

    /// Returns a slot to the pool once nothing is owed on it.
    @inline(__always)
    private func releaseIfIdle(_ slot: Int) {
        if outstanding[slot] == 0 && !retryPending[slot] { pool.give(slot) }
    }

    func run(writer: inout DatagramWriter, configuration c: SenderConfiguration,
                      ticker: inout ProgressTicker, stats: inout SenderStatistics) throws(SystemError) -> StopReason {
        var pacer = Pacer(rate: c.rate)
        let start = MonotonicClock.nanoseconds()
        startNanoseconds = start
        let limits = ProductionLimits(c, start: start)
        var producing = true
        var reason = StopReason.limit
        var endsRemaining = c.endRepeats
        var nextEndAt: UInt64 = 0
        var drainDeadline: UInt64 = .max
        if writer.isFixedPayload {
            for slot in 0..<pool.count { writer.prepareSlot(pool.address(of: slot), maxSegments: segmentsPerSend) }
        }

        while true {
            let now = MonotonicClock.nanoseconds()
            if producing, let stop = limits.reasonToStop(now: now, writer: writer, stats: stats) {
                producing = false
                reason = stop
                drainDeadline = now + 10_000_000_000
            }

            resubmitRetries(stats: &stats)

            if readError != 0 { throw SystemError(call: "read(source)", errno: readError) }
            if planQueued > 0 { try dispatchReadSlots(writer: &writer, stats: &stats) }

            var paceWait: UInt64 = 0
            while producing && retryCount == 0 {
                if pacer != nil {
                    let d = pacer!.delay(now: MonotonicClock.nanoseconds())
                    if d > 0 { paceWait = d; break }
                }
                if let input, input.seekable {
                    // Reads first; the send follows when they complete.
                    guard !pool.isEmpty, io_uring_sq_space_left(ring.raw) >= UInt32(segmentsPerSend) else { break }
                    let slot = pool.take()!
                    let planned = planReads(slot: slot, fd: input.fd, writer: &writer)
                    if planned == 0 { pool.give(slot); producing = false; break }
                    pacer?.charge(datagrams: planned, bytes: planned * datagramSize)
                    if writer.isExhausted { producing = false; break }
                    continue
                }
                guard !pool.isEmpty, let sqe = ring.nextSubmission() else { break }
                let slot = pool.take()!
                let (bytes, datagrams): (Int, Int)
                if let input {
                    let reader = SourceReader(input, flushIntervalNanoseconds: c.flushIntervalNanoseconds)
                    let r = writer.fill(pool.address(of: slot), maxSegments: segmentsPerSend) {
                        reader.read(into: $0, count: $1, streamOffset: $2)
                    }
                    if r.error != 0 { pool.give(slot); zc_prep_nop(sqe, UInt64.max); throw SystemError(call: "read(source)", errno: r.error) }
                    (bytes, datagrams) = (r.bytes, r.datagrams)
                } else {
                    (bytes, datagrams) = writer.fill(pool.address(of: slot), maxSegments: segmentsPerSend)
                }
                if datagrams == 0 {
                    pool.give(slot); zc_prep_nop(sqe, UInt64.max)
                    // A live source with nothing new for now keeps the stream open.
                    if input == nil || writer.isExhausted { producing = false }
                    break
                }
                record(slot, length: bytes, datagrams: datagrams, isEnd: false)
                prepare(sqe, slot: slot)
                stats.sends &+= 1
                pacer?.charge(datagrams: datagrams, bytes: bytes)
                if writer.isExhausted { producing = false; break }
            }

            // END goes after the last data on the same socket, a few times, 1 ms apart.
            if !producing && planQueued == 0 && endsRemaining > 0 && now >= nextEndAt && !pool.isEmpty,
               let sqe = ring.nextSubmission() {
                let slot = pool.take()!
                record(slot, length: writer.writeEnd(at: pool.address(of: slot)), datagrams: 0, isEnd: true)
                prepare(sqe, slot: slot)
                stats.sends &+= 1
                endsRemaining -= 1
                nextEndAt = now + 1_000_000
            }

            let inFlight = pool.inUse
            if !producing && endsRemaining == 0 && inFlight == 0 && retryCount == 0 { break }
            if !producing && now >= drainDeadline {
                reason = .error
                throw SystemError(call: "drain: \(inFlight) slots still owed a notification after 10 s", errno: ETIMEDOUT)
            }

            // Enter the kernel once per turn: submit the batch, and wait only when
            // there is nothing else useful to do.
            if paceWait > 0 && !pool.isEmpty {
                // Ahead of schedule with slots to spare: completions can wait, so
                // sleep rather than be woken by every CQE.
                try ring.submitAndGetEvents()
                MonotonicClock.sleep(nanoseconds: paceWait)
            } else if paceWait > 0 {
                try ring.submit(waitTimeoutNanoseconds: paceWait)
            } else if !producing && endsRemaining > 0 && inFlight == 0 {
                try ring.submit(waitTimeoutNanoseconds: nextEndAt > now ? nextEndAt - now : 1)
            } else if pool.isEmpty || !producing {
                if inFlight > 0 { try ring.submit(waitFor: 1) } else { try ring.submitAndGetEvents() }
            } else {
                try ring.submitAndGetEvents()
            }

            reapAll(stats: &stats)
            ticker.tick(now: now, start: start, statistics: stats, inFlight: pool.inUse)
        }
        return reason
    }

    // MARK: Slot API
    // The run loop above pulls datagrams from a DatagramWriter. The library's
    // fill-in-place sender (OutboundStream) pushes instead, one slot at a time,
    // through these methods; both share the completion handling below.

    /// What a slot holds, for the completion handler.
    @inline(__always)
    private func record(_ slot: Int, length: Int, datagrams: Int, isEnd: Bool) {
        slotLength[slot] = Int32(length)
        slotDatagrams[slot] = Int32(datagrams)
        slotIsEnd[slot] = isEnd
    }

    /// Resubmits, in order, the slots whose send failed for lack of kernel memory.
    private func resubmitRetries(stats: inout SenderStatistics) {
        while retryCount > 0, let sqe = ring.nextSubmission() {
            let slot = Int(retryQueue[retryHead])
            retryHead = (retryHead + 1) % pool.count
            retryCount -= 1
            retryPending[slot] = false
            prepare(sqe, slot: slot)
            stats.sends &+= 1
            stats.retries &+= 1
        }
    }

    /// Bytes one slot holds (a whole GSO send).
    var slotCapacity: Int { pool.slotBytes }
    func slotAddress(_ slot: Int) -> UnsafeMutableRawPointer { pool.address(of: slot) }
    var slotsInFlight: Int { pool.inUse }

    /// Takes a free slot. When every slot is in flight: with `wait`, enters the
    /// kernel until a notification frees one; without, returns nil.
    func acquireSlot(wait: Bool, stats: inout SenderStatistics) throws(SystemError) -> Int? {
        while pool.isEmpty {
            resubmitRetries(stats: &stats)
            if wait { try ring.submit(waitFor: 1) } else { try ring.submitAndGetEvents() }
            reapAll(stats: &stats)
            if !wait && pool.isEmpty { return nil }
            if StopFlag.isSet && pool.isEmpty { return nil }
        }
        return pool.take()
    }

    /// Hands back a slot that was acquired but will not be sent.
    func releaseUnsent(_ slot: Int) { pool.give(slot) }

    /// Queues a filled slot for sending (submitting first if the queue is full).
    func submit(slot: Int, length: Int, datagrams: Int, isEnd: Bool, stats: inout SenderStatistics) throws(SystemError) {
        var sqe = ring.nextSubmission()
        if sqe == nil {
            try ring.submitAndGetEvents()
            reapAll(stats: &stats)
            sqe = ring.nextSubmission()
        }
        guard let sqe else { throw SystemError(call: "io_uring_get_sqe", errno: EBUSY) }
        record(slot, length: length, datagrams: datagrams, isEnd: isEnd)
        prepare(sqe, slot: slot)
        stats.sends &+= 1
    }

    /// Submits what is queued and reaps what completed, without waiting.
    func poll(stats: inout SenderStatistics) throws(SystemError) {
        resubmitRetries(stats: &stats)
        try ring.submitAndGetEvents()
        reapAll(stats: &stats)
    }

    /// Waits until the kernel is done with every slot (all notifications seen).
    func drain(stats: inout SenderStatistics, timeoutNanoseconds: UInt64 = 10_000_000_000) throws(SystemError) {
        let deadline = MonotonicClock.nanoseconds() + timeoutNanoseconds
        while pool.inUse > 0 || retryCount > 0 {
            resubmitRetries(stats: &stats)
            try ring.submit(waitTimeoutNanoseconds: 10_000_000)
            reapAll(stats: &stats)
            if MonotonicClock.nanoseconds() > deadline {
                throw SystemError(call: "drain: \(pool.inUse) slots still owed a notification", errno: ETIMEDOUT)
            }
        }
    }

    @inline(__always)
    private func reapAll(stats: inout SenderStatistics) {
        while true {
            let n = ring.reap(into: completions)
            if n == 0 { return }
            for i in 0..<n {
                handle(completions[i], stats: &stats)
            }
        }
    }

    @inline(__always)
    private func handle(_ c: Completion, stats: inout SenderStatistics) {
        if c.user_data == UInt64.max { return } // a NOP standing in for an unused SQE
        if c.user_data & Self.readTag != 0 {
            let slot = Int(c.user_data & ~Self.readTag)
            if c.res < 0 { readError = -c.res } else { readBytes[slot] += Int(c.res) }
            readsPending[slot] -= 1
            return
        }
        let slot = Int(c.user_data)
        if c.isNotification {
            stats.notifications &+= 1
            if c.reportsCopied { stats.copied &+= 1 }
            if adaptive && zeroCopy && stats.notifications >= Self.adaptiveSample && stats.copied * 2 >= stats.notifications {
                // Copied anyway: SEND_ZC only adds the notification round trip. Switch for good.
                zeroCopy = false
                stats.switchedToCopy = .init(afterSeconds: Double(MonotonicClock.nanoseconds() &- startNanoseconds) / 1e9,
                                             notifications: stats.notifications, copied: stats.copied)
            }
            if !recycleOnSendCompletion {
                outstanding[slot] -= 1
                releaseIfIdle(slot)
            }
            return
        }
        // The send's own completion.
        if c.res >= 0 {
            if slotIsEnd[slot] {
                stats.endsSent &+= 1
            } else {
                stats.datagrams &+= UInt64(slotDatagrams[slot])
                stats.bytes &+= UInt64(c.res)
            }
        } else {
            let code = -c.res
            if code == ENOBUFS || code == EAGAIN || code == ENOMEM {
                // The kernel had no room: send the same bytes again (the slot is unchanged).
                retryPending[slot] = true
                retryQueue[(retryHead + retryCount) % pool.count] = Int32(slot)
                retryCount += 1
            } else {
                stats.errors[code, default: 0] += 1
                if !slotIsEnd[slot] { stats.datagramsFailed &+= UInt64(slotDatagrams[slot]) }
            }
        }
        if c.hasMore {
            // Zero copy: the pages may still be queued in the stack. The notification
            // will release the slot, unless the test-only hazard mode recycles now.
            if recycleOnSendCompletion {
                outstanding[slot] -= 1
                scribble(slot)
                stats.recycledEarly &+= 1
                releaseIfIdle(slot)
            }
        } else {
            outstanding[slot] -= 1
            releaseIfIdle(slot)
        }
    }

    /// Queues one READ_FIXED per datagram of a new slot, each straight into the
    /// payload area behind that datagram's header. Returns the datagrams planned.
    private func planReads(slot: Int, fd: Int32, writer: inout DatagramWriter) -> Int {
        let (first, count) = writer.reserve(maxSegments: segmentsPerSend)
        guard count > 0 else { return 0 }
        let base = pool.address(of: slot)
        for k in 0..<count {
            let (at, length, offset) = writer.layout(first: first, index: k)
            let sqe = ring.nextSubmission()! // space was checked by the caller
            zc_prep_read_fixed(sqe, fd, base + at + DatagramHeader.size, UInt32(length), offset, 0, Self.readTag | UInt64(slot))
        }
        readsPending[slot] = Int32(count)
        readBytes[slot] = 0
        planFirst[slot] = first
        planCount[slot] = Int32(count)
        planOrder[(planHead + planQueued) % pool.count] = Int32(slot)
        planQueued += 1
        return count
    }

    /// Seals and sends, in plan order, every slot whose reads all completed.
    private func dispatchReadSlots(writer: inout DatagramWriter, stats: inout SenderStatistics) throws(SystemError) {
        while planQueued > 0 {
            let slot = Int(planOrder[planHead])
            guard readsPending[slot] == 0, let sqe = ring.nextSubmission() else { return }
            let first = planFirst[slot]
            let count = Int(planCount[slot])
            var expected = 0
            for k in 0..<count { expected += writer.layout(first: first, index: k).payloadLength }
            if readBytes[slot] != expected {
                zc_prep_nop(sqe, UInt64.max)
                throw SystemError(call: "read(source): short read (\(readBytes[slot]) of \(expected) bytes; file changed while sending?)", errno: EIO)
            }
            record(slot, length: writer.seal(pool.address(of: slot), first: first, count: count), datagrams: count, isEnd: false)
            prepare(sqe, slot: slot)
            stats.sends &+= 1
            planHead = (planHead + 1) % pool.count
            planQueued -= 1
        }
    }

    /// Hazard mode only: overwrite every payload in the slot, as an application
    /// refilling its buffer would. Headers stay, so the receiver sees checksum errors.
    private func scribble(_ slot: Int) {
        guard !slotIsEnd[slot] else { return }
        let base = pool.address(of: slot)
        let length = Int(slotLength[slot])
        let stride = datagramSize
        var p = 0
        while p + DatagramHeader.size < length {
            let payload = min(stride, length - p) - DatagramHeader.size
            if payload > 0 { memset(base + p + DatagramHeader.size, 0xA5, payload) }
            p += stride
        }
    }
}
