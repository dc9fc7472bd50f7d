#if canImport(Glibc)
import Glibc
#endif
import CLinux
import StreamProtocol
import ZCSystem

/// The copying baseline: batches of `sendmmsg` on a blocking socket. Each slot is one
/// message of the batch (a GSO super-buffer when GSO is on). The kernel copies at the
/// call, so every slot is free again as soon as the call returns.
final class SendmmsgEngine: SendEngine {
    static let batch = 64
    private var pool: BufferPool
    let segmentsPerSlot: Int
    private let fd: Int32
    private let messages: UnsafeMutablePointer<zc_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let datagrams: UnsafeMutablePointer<Int32>
    private let isEnd: UnsafeMutablePointer<Bool>
    /// Messages committed since the last `sendmmsg`: slots `0..<queued`.
    private(set) var queued = 0
    /// Slots lent and not committed (0 or 1: slots are lent in order).
    private var lent = 0
    /// Reliable streams (``holdsSlots``): slots come from a pool of their own and stay out of
    /// it until acknowledged, so a message points at its slot (`messageSlot`) instead of
    /// being it. Plain streams keep slot = message (the memory is free when the call returns).
    private let holding: Bool
    private let messageSlot: UnsafeMutablePointer<Int32>
    private let heldSlot: UnsafeMutablePointer<Bool>
    private let inBatch: UnsafeMutablePointer<Bool>

    /// `socket` must stay open for the engine's life (the caller owns it).
    init(configuration c: SenderConfiguration, socket: borrowing UDPSocket) throws(SystemError) {
        segmentsPerSlot = c.segmentsPerSend
        fd = socket.fd
        holding = c.reliability != nil
        let slots = holding ? max(Self.batch, c.poolSlots) : Self.batch
        pool = try BufferPool(slots: slots, slotBytes: segmentsPerSlot * c.datagramSize,
                              leadBytes: DatagramHeader.payloadLineLead)
        messageSlot = .allocate(capacity: Self.batch)
        heldSlot = .allocate(capacity: slots)
        heldSlot.initialize(repeating: false, count: slots)
        inBatch = .allocate(capacity: slots)
        inBatch.initialize(repeating: false, count: slots)
        messages = .allocate(capacity: Self.batch)
        iovecs = .allocate(capacity: Self.batch)
        datagrams = .allocate(capacity: Self.batch)
        isEnd = .allocate(capacity: Self.batch)
        for i in 0..<Self.batch {
            iovecs[i] = iovec(iov_base: pool.address(of: i), iov_len: 0)
            messages[i] = zc_mmsghdr()
            messages[i].msg_hdr.msg_iov = iovecs + i
            messages[i].msg_hdr.msg_iovlen = 1
        }
    }

    deinit {
        messages.deallocate(); iovecs.deallocate(); datagrams.deallocate(); isEnd.deallocate()
        messageSlot.deallocate(); heldSlot.deallocate(); inBatch.deallocate()
    }

    var slotCount: Int { pool.count }
    @inline(__always) func address(of slot: Int) -> UnsafeMutableRawPointer { pool.address(of: slot) }
    var hasFreeSlot: Bool { queued < Self.batch && (!holding || !pool.isEmpty) }
    /// Nothing stays with the kernel after a call; a lent slot counts until committed
    /// (holding: every slot out of the pool, held ones included).
    var inFlight: Int { holding ? pool.inUse : queued + lent }
    /// Without GSO a slot is one datagram: a pushed stream batches them; with GSO each goes at once.
    var pushBatch: Int { segmentsPerSlot > 1 ? 1 : Self.batch }
    /// 32 messages a call: see ``SendEngineTuning/socketSlotsPerTurn``.
    var slotsPerTurn: Int { SendEngineTuning.socketSlotsPerTurn }

    /// The next message of the batch.
    @inline(__always)
    func lend() -> Int? {
        guard queued < Self.batch else { return nil }
        if holding { return pool.take() }
        lent = 1
        return queued
    }

    func giveBack(_ slot: Int) {
        if holding { pool.give(slot) } else { lent = 0 }
    }

    // MARK: Reliable streams: held slots, repairs with send(2) from the slot

    var holdsSlots: Bool { holding }
    func hold(_ slot: Int) { heldSlot[slot] = true }
    func release(_ slot: Int) {
        heldSlot[slot] = false
        if !inBatch[slot] { pool.give(slot) }
    }
    /// The kernel copied the slot when its batch went: done once it is not queued.
    func originalSendDone(_ slot: Int) -> Bool { !inBatch[slot] }

    /// One datagram again from inside the held slot: `send(2)` of its bytes in place (the
    /// kernel copies, as for every sendmmsg datagram; nothing is copied in user space).
    func resend(_ slot: Int, offset: Int, length: Int, stats: inout SenderStatistics) throws(SendEngineError) {
        let bytes = UnsafeRawBufferPointer(start: pool.address(of: slot) + offset, count: length)
        do {
            if try SocketCalls.send(fd, bytes, flags: Int32(MSG_DONTWAIT)) == nil { stats.repairErrors &+= 1 }
        } catch {
            stats.repairErrors &+= 1  // the receiver NAKs it again
        }
    }

    @inline(__always)
    func commit(_ slot: Int, length: Int, datagrams n: Int, isEnd end: Bool, stats: inout SenderStatistics) throws(SendEngineError) {
        var m = slot
        if holding {
            m = queued
            iovecs[m].iov_base = pool.address(of: slot)
            messageSlot[m] = Int32(slot)
            inBatch[slot] = true
        }
        iovecs[m].iov_len = length
        datagrams[m] = Int32(n)
        isEnd[m] = end
        queued += 1
        lent = 0
        stats.sends &+= 1
    }

    /// Sends the batch (the kernel copies it, so it is done when the call returns);
    /// with nothing queued, `.upTo` just waits.
    func service(_ wait: ServiceWait, stats: inout SenderStatistics) throws(SendEngineError) {
        if queued > 0 {
            send(stats: &stats)
        } else if case .upTo(let ns) = wait {
            MonotonicClock.sleep(nanoseconds: ns)
        }
    }

    /// Sends messages [0, queued), retrying transient errors, skipping a message the
    /// kernel refused for good (and counting it). A stop request while the call is
    /// blocked fails the rest of the batch (counted) so the stream winds down.
    private func send(stats: inout SenderStatistics) {
        var first = 0
        let count = queued
        queued = 0
        // Holding: the call copied every message (or failed it); each slot is free unless held.
        defer { if holding { releaseBatch(count) } }
        while first < count {
            let code: Int32
            do {
                if let sent = try SocketCalls.sendMessages(fd, messages + first, count: count - first, flags: 0), sent > 0 {
                    for i in first..<(first + sent) { account(i, stats: &stats) }
                    first += sent
                    continue
                }
                code = EAGAIN
            } catch {
                code = error.errno
            }
            switch code {
            case EINTR:
                // Only a stop gets here (the wrapper retries any other interruption):
                // the rest of the batch is counted failed and the stream winds down.
                for i in first..<count where !isEnd[i] { stats.datagramsFailed &+= UInt64(datagrams[i]) }
                return
            case ENOBUFS, EAGAIN, ENOMEM:
                stats.retries &+= 1
                MonotonicClock.sleep(nanoseconds: 10_000)
            default:
                // This message failed (ECONNREFUSED, EMSGSIZE, ...): count it and move on.
                stats.errors[code, default: 0] += 1
                if !isEnd[first] { stats.datagramsFailed &+= UInt64(datagrams[first]) }
                first += 1
            }
        }
    }

    private func releaseBatch(_ count: Int) {
        for m in 0..<count {
            let slot = Int(messageSlot[m])
            inBatch[slot] = false
            if !heldSlot[slot] { pool.give(slot) }
        }
    }

    @inline(__always)
    private func account(_ i: Int, stats: inout SenderStatistics) {
        if isEnd[i] {
            stats.endsSent &+= 1
        } else {
            stats.datagrams &+= UInt64(datagrams[i])
            stats.bytes &+= UInt64(iovecs[i].iov_len)
        }
    }
}
