#if canImport(Glibc)
import Glibc
#endif
import CURing
import StreamProtocol
import URing
import ZCSystem

/// The io_uring send engines: `uring-zc` (SEND_ZC from the registered pool) and
/// `uring` (plain SEND, the kernel copies); `auto` starts with SEND_ZC and leaves it
/// for good when the notifications say the kernel copies anyway. One thread, one ring.
///
/// Slot lifecycle (zero copy): free -> lent and filled -> committed (an SQE) ->
/// submitted -> send CQE (F_MORE set: the kernel may still read the pages) ->
/// notification CQE -> free. A slot is never written between its submission and its
/// notification: ``UringSlotState/owed`` counts the CQEs still owed before it may be
/// lent again.
final class UringSendEngine: SendEngine {
    /// SEND_ZC now (`auto` may turn it off once; sends already in flight keep their own kind).
    private(set) var zeroCopy: Bool
    /// `--engine auto`: watch the notifications and leave zero copy when they report copies.
    let adaptive: Bool
    /// Notifications `auto` waits for before judging; half of them copied makes it switch.
    static let adaptiveSample: UInt64 = 32
    private let startNanoseconds = MonotonicClock.nanoseconds()
    let ring: Ring
    private var pool: BufferPool
    let segmentsPerSlot: Int
    let datagramSize: Int
    /// Test-only hazard mode: recycle a slot at its send completion, before the notification.
    let recycleOnSendCompletion: Bool
    private var slots: UringSlotTable
    private let completions: UnsafeMutableBufferPointer<Completion>

    /// Fixed file index of the socket.
    private static let socketIndex: Int32 = 0

    /// Creates the ring and the pool, registers both and the socket.
    static func make(configuration c: SenderConfiguration, socket: borrowing UDPSocket) throws(SystemError) -> UringSendEngine {
        // Every send may owe two CQEs (completion + notification).
        let cq = UInt32(max(c.poolSlots, c.ringDepth) * 2)
        let thread = c.submissionPolling.map { Ring.SubmissionThread(idleMilliseconds: $0.idleMilliseconds, cpu: $0.cpu) }
        let ring = try Ring(.init(entries: UInt32(c.ringDepth), completionEntries: cq, submissionThread: thread))
        // Payloads on cache lines: the fused pattern fill stores whole aligned lines (no split
        // stores, no lane shuffle; fill micro-benchmark at 1 MiB 25.5 -> 29 GB/s).
        let pool = try BufferPool(slots: c.poolSlots, slotBytes: c.segmentsPerSend * c.datagramSize,
                                  leadBytes: DatagramHeader.payloadLineLead)
        do {
            try ring.registerBuffer(pool.region)
        } catch where error.errno == ENOMEM {
            throw SystemError(call: "io_uring_register_buffers: \(MemoryLockBudget.registrationHint(poolBytes: pool.region.count))", errno: ENOMEM)
        }
        try ring.registerFiles([socket.fd])
        ring.registerRingFD()
        return UringSendEngine(configuration: c, ring: ring, pool: pool)
    }

    private init(configuration c: SenderConfiguration, ring: consuming Ring, pool: consuming BufferPool) {
        zeroCopy = c.engine.usesZeroCopy
        adaptive = c.engine == .auto
        segmentsPerSlot = c.segmentsPerSend
        datagramSize = c.datagramSize
        recycleOnSendCompletion = c.recycleOnSendCompletion && zeroCopy
        slotsPerTurn = ring.pollsSubmissions ? SendEngineTuning.submissionThreadSlotsPerTurn : SendEngineTuning.socketSlotsPerTurn
        self.ring = ring
        self.pool = pool
        slots = UringSlotTable(count: c.poolSlots)
        completions = .allocate(capacity: 512)
    }

    deinit {
        ring.unregisterBuffers()
        completions.deallocate()
    }

    // MARK: SendEngine

    var slotCount: Int { pool.count }
    @inline(__always) func address(of slot: Int) -> UnsafeMutableRawPointer { pool.address(of: slot) }
    var inFlight: Int { pool.inUse }
    var queued: Int { Int(ring.pendingSubmissions) }
    /// Each slot is a whole GSO send: it goes at once.
    var pushBatch: Int { 1 }
    /// See ``SendEngineTuning/socketSlotsPerTurn``; with SQPOLL ``SendEngineTuning/submissionThreadSlotsPerTurn``.
    let slotsPerTurn: Int

    /// Sends the kernel refused for lack of memory go again first, in order.
    @inline(__always)
    var hasFreeSlot: Bool { !pool.isEmpty && slots.retryCount == 0 && io_uring_sq_space_left(ring.raw) > 0 }

    @inline(__always)
    func lend() -> Int? { hasFreeSlot ? pool.take() : nil }

    func giveBack(_ slot: Int) { pool.give(slot) }

    @inline(__always)
    func commit(_ slot: Int, length: Int, datagrams: Int, isEnd: Bool, stats: inout SenderStatistics) throws(SendEngineError) {
        slots[slot].length = Int32(length)
        slots[slot].datagrams = Int32(datagrams)
        slots[slot].isEnd = isEnd
        try submitSend(of: slot, stats: &stats)
    }

    func service(_ wait: ServiceWait, stats: inout SenderStatistics) throws(SendEngineError) {
        try resubmitRetries(stats: &stats)
        do {
            switch wait {
            case .none where ring.pollsSubmissions:
                // The kernel thread posts completions itself: publishing the queue is a
                // store (a system call only to wake the thread when it sleeps).
                try ring.submit()
            case .none:
                try ring.submitAndGetEvents()
            case .untilSlotFree where ring.pollsSubmissions:
                try ring.submit()
                // Completions arrive while we look: spin briefly before sleeping in the kernel.
                if pool.inUse > 0 && !ring.awaitCompletion(spinning: SendEngineTuning.submissionThreadSpin) {
                    try ring.submit(waitFor: 1)
                }
            case .untilSlotFree:
                if pool.inUse > 0 { try ring.submit(waitFor: 1) } else { try ring.submitAndGetEvents() }
            case .upTo(let ns):
                try ring.submit(waitTimeoutNanoseconds: ns)
            }
        } catch {
            throw .system(error)
        }
        reapAll(stats: &stats)
    }

    // MARK: Files read by the ring (READV: one request per slot)

    var readsFilesAsynchronously: Bool { true }
    var readCapacity: Int { Int(io_uring_sq_space_left(ring.raw)) }

    func queueRead(vectors: UnsafePointer<iovec>, count: Int, fileOffset: UInt64, fd: Int32, slot: Int) {
        let sqe = ring.nextSubmission()!  // the driver checked readCapacity
        zc_prep_readv(sqe, fd, vectors, UInt32(count), fileOffset, UringUserData.encode(.read, slot: slot))
        if slots[slot].readsPending == 0 { slots[slot].readBytes = 0 }
        slots[slot].readsPending += 1
    }

    func readProgress(of slot: Int) -> (pending: Int, bytes: Int) {
        (Int(slots[slot].readsPending), slots[slot].readBytes)
    }

    // MARK: Reliable streams: held slots and repairs from them

    var holdsSlots: Bool { true }
    func hold(_ slot: Int) { slots[slot].held = true }
    func release(_ slot: Int) {
        slots[slot].held = false
        releaseIfIdle(slot)
    }
    func originalSendDone(_ slot: Int) -> Bool { slots[slot].owed == slots[slot].repairsOwed && !slots[slot].retryPending }
    var completionDescriptor: Int32? { ring.raw.pointee.ring_fd }

    /// One datagram again from inside the held slot: SEND_ZC from the registered buffer at
    /// its offset (SEND on `uring`), never a copy in user space.
    func resend(_ slot: Int, offset: Int, length: Int, stats: inout SenderStatistics) throws(SendEngineError) {
        try queueSend(pool.address(of: slot) + offset, length: length, userData: UringUserData.encode(.repair, slot: slot), stats: &stats)
        slots[slot].owed += 1
        slots[slot].repairsOwed += 1
    }

    /// A free submission entry, submitting (and taking in completions) first when the queue is full.
    @inline(__always)
    private func nextEntry(stats: inout SenderStatistics) throws(SendEngineError) -> UnsafeMutablePointer<io_uring_sqe>? {
        if let sqe = ring.nextSubmission() { return sqe }
        do {
            try ring.submitAndGetEvents()
            // SQPOLL: the kernel thread empties the queue on its own time (a no-op otherwise).
            if io_uring_sq_space_left(ring.raw) == 0 { try ring.waitForSubmissionSpace() }
        } catch { throw .system(error) }
        reapAll(stats: &stats)
        return ring.nextSubmission()
    }

    // MARK: Sends and completions

    /// Prepares the SQE for `slot`'s send (SEND_ZC or SEND), submitting first if the
    /// submission queue is full.
    @inline(__always)
    private func submitSend(of slot: Int, stats: inout SenderStatistics) throws(SendEngineError) {
        try queueSend(pool.address(of: slot), length: Int(slots[slot].length), userData: UringUserData.encode(.send, slot: slot), stats: &stats)
        slots[slot].owed += 1
        stats.sends &+= 1
    }

    /// One SEND_ZC from the registered pool (SEND when copying) of `length` bytes at `address`.
    @inline(__always)
    private func queueSend(_ address: UnsafeMutableRawPointer, length: Int, userData: UInt64, stats: inout SenderStatistics) throws(SendEngineError) {
        // The kernel consumed the queue at a submit: an entry must be free now.
        guard let sqe = try nextEntry(stats: &stats) else { throw .submissionQueueFull }
        if zeroCopy {
            zc_prep_send_zc_fixed(sqe, Self.socketIndex, address, length, 0, 1, userData)
        } else {
            zc_prep_send(sqe, Self.socketIndex, address, length, 1, userData)
        }
    }

    /// Resubmits, in order, the slots whose send failed for lack of kernel memory.
    private func resubmitRetries(stats: inout SenderStatistics) throws(SendEngineError) {
        while slots.retryCount > 0 && io_uring_sq_space_left(ring.raw) > 0, let slot = slots.nextRetry() {
            try submitSend(of: slot, stats: &stats)
            stats.retries &+= 1
        }
    }

    /// Returns a slot to the pool once nothing is owed on it.
    @inline(__always)
    private func releaseIfIdle(_ slot: Int) {
        if slots[slot].owed == 0 && !slots[slot].retryPending && !slots[slot].held { pool.give(slot) }
    }

    @inline(__always)
    private func reapAll(stats: inout SenderStatistics) {
        while true {
            let n = ring.reap(into: completions)
            if n == 0 { return }
            for i in 0..<n { handle(completions[i], stats: &stats) }
        }
    }

    @inline(__always)
    private func handle(_ c: Completion, stats: inout SenderStatistics) {
        guard let (operation, slot) = UringUserData.decode(c.user_data) else { return }
        if operation == .repair {
            // A repair's send CQE (F_MORE: its notification follows) or its notification.
            if c.isNotification {
                stats.notifications &+= 1
                if c.reportsCopied { stats.copied &+= 1 }
            } else if c.res < 0 {
                stats.repairErrors &+= 1
            }
            if c.isNotification || !c.hasMore {
                slots[slot].owed -= 1
                slots[slot].repairsOwed -= 1
                releaseIfIdle(slot)
            }
            return
        }
        if operation == .read {
            if c.res < 0 { slots[slot].readBytes = Int(c.res) } else if slots[slot].readBytes >= 0 { slots[slot].readBytes += Int(c.res) }
            slots[slot].readsPending -= 1
            return
        }
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
                slots[slot].owed -= 1
                releaseIfIdle(slot)
            }
            return
        }
        // The send's own completion.
        let state = slots[slot]
        if c.res >= 0 {
            if state.isEnd {
                stats.endsSent &+= 1
            } else {
                stats.datagrams &+= UInt64(state.datagrams)
                stats.bytes &+= UInt64(c.res)
            }
        } else {
            let code = -c.res
            if code == ENOBUFS || code == EAGAIN || code == ENOMEM {
                // The kernel had no room: send the same bytes again (the slot is unchanged).
                slots.queueRetry(slot)
            } else {
                stats.errors[code, default: 0] += 1
                if !state.isEnd { stats.datagramsFailed &+= UInt64(state.datagrams) }
            }
        }
        if c.hasMore {
            // Zero copy: the pages may still be queued in the stack. The notification
            // will release the slot, unless the test-only hazard mode recycles now.
            if recycleOnSendCompletion {
                slots[slot].owed -= 1
                scribble(slot)
                stats.recycledEarly &+= 1
                releaseIfIdle(slot)
            }
        } else {
            slots[slot].owed -= 1
            releaseIfIdle(slot)
        }
    }

    /// Hazard mode only: overwrite every payload in the slot, as an application
    /// refilling its buffer would. Headers stay, so the receiver sees checksum errors.
    private func scribble(_ slot: Int) {
        guard !slots[slot].isEnd else { return }
        let base = pool.address(of: slot)
        let length = Int(slots[slot].length)
        var p = 0
        while p + DatagramHeader.size < length {
            let payload = min(datagramSize, length - p) - DatagramHeader.size
            if payload > 0 { memset(base + p + DatagramHeader.size, 0xA5, payload) }
            p += datagramSize
        }
    }
}
