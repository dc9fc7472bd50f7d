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

    /// `socket` must stay open for the engine's life (the caller owns it).
    init(configuration c: SenderConfiguration, socket: borrowing UDPSocket) throws(SystemError) {
        segmentsPerSlot = c.segmentsPerSend
        fd = socket.fd
        pool = try BufferPool(slots: Self.batch, slotBytes: segmentsPerSlot * c.datagramSize,
                              leadBytes: DatagramHeader.payloadLineLead)
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
    }

    var slotCount: Int { Self.batch }
    @inline(__always) func address(of slot: Int) -> UnsafeMutableRawPointer { pool.address(of: slot) }
    var hasFreeSlot: Bool { queued < Self.batch }
    /// Nothing stays with the kernel after a call; a lent slot counts until committed.
    var inFlight: Int { queued + lent }
    /// Without GSO a slot is one datagram: a pushed stream batches them; with GSO each goes at once.
    var pushBatch: Int { segmentsPerSlot > 1 ? 1 : Self.batch }
    /// 32 messages a call: see ``SendEngineTuning/socketSlotsPerTurn``.
    var slotsPerTurn: Int { SendEngineTuning.socketSlotsPerTurn }

    /// The next message of the batch.
    @inline(__always)
    func lend() -> Int? {
        guard queued < Self.batch else { return nil }
        lent = 1
        return queued
    }

    func giveBack(_ slot: Int) { lent = 0 }

    @inline(__always)
    func commit(_ slot: Int, length: Int, datagrams n: Int, isEnd end: Bool, stats: inout SenderStatistics) throws(SendEngineError) {
        iovecs[slot].iov_len = length
        datagrams[slot] = Int32(n)
        isEnd[slot] = end
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
