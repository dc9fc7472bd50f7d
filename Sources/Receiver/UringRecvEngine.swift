#if canImport(Glibc)
import Glibc
#endif
import CLinux
import CURing
import URing
import ZCSystem

/// io_uring receive: one multishot IORING_OP_RECVMSG stays armed on the socket and
/// the kernel picks a buffer for each datagram (or GRO-coalesced run) from a
/// provided buffer ring, so there is no per-datagram submission at all. Each
/// completion names its buffer; the buffer holds an `io_uring_recvmsg_out` header,
/// the source address, the control messages (UDP_GRO segment size, SO_RXQ_OVFL
/// counter) and the payload, parsed by `zc_recvmsg_parse` (liburing's
/// io_uring_recvmsg_* helpers). After a batch of completions is validated (and
/// written, with `--output`) its buffers go straight back to the ring. A completion
/// without IORING_CQE_F_MORE means the request ended — ENOBUFS when the ring ran
/// dry, or the kernel's own reasons — and it is armed again at once; datagrams
/// wait in the socket buffer meanwhile, so nothing is lost by it.
///
/// The ring is created on the thread that runs it (SINGLE_ISSUER|DEFER_TASKRUN).
final class UringRecvEngine {
    static let bufferCount: UInt32 = 256           // power of two
    static let bufferBytes = 65_536 + 4_096        // payload area >= 64 KiB after header, name, control
    /// GRO segment (24) + SO_RXQ_OVFL (24) + IPV6_PKTINFO (40), with room to spare.
    static let controlBytes = 128
    static let nameBytes = MemoryLayout<sockaddr_in6>.size
    static let group: UInt16 = 0
    static let recvTag: UInt64 = 1

    private var ring: Ring
    private let bufferRing: UnsafeMutablePointer<io_uring_buf_ring>
    private let memory: UnsafeMutableRawPointer
    private let mask: Int32
    private let message: UnsafeMutablePointer<msghdr>
    private let completions: UnsafeMutableBufferPointer<zc_completion>
    private let returned: UnsafeMutablePointer<UInt16>

    init() throws(SystemError) {
        ring = try Ring(Ring.Options(entries: 16, completionEntries: Self.bufferCount * 4))
        bufferRing = try ring.registerBufferRing(entries: Self.bufferCount, group: Self.group)
        mask = zc_buf_ring_mask(Self.bufferCount)
        memory = .allocate(byteCount: Int(Self.bufferCount) * Self.bufferBytes, alignment: 4096)
        message = .allocate(capacity: 1)
        message.initialize(to: msghdr())
        message.pointee.msg_namelen = socklen_t(Self.nameBytes)
        message.pointee.msg_controllen = Self.controlBytes
        completions = .allocate(capacity: Int(Self.bufferCount) * 2)
        returned = .allocate(capacity: completions.count)
        for b in 0..<Int(Self.bufferCount) {
            zc_buf_ring_add(bufferRing, memory + b * Self.bufferBytes, UInt32(Self.bufferBytes), UInt16(b), mask, Int32(b))
        }
        zc_buf_ring_advance(bufferRing, Int32(Self.bufferCount))
    }

    deinit {
        ring.unregisterBufferRing(bufferRing, entries: Self.bufferCount, group: Self.group)
        memory.deallocate()
        message.deallocate()
        completions.deallocate()
        returned.deallocate()
    }

    private func arm(fd: Int32) throws(SystemError) {
        var sqe = ring.nextSubmission()
        if sqe == nil {
            // Cannot happen with one request in flight; submit and retry once.
            try ring.submit()
            sqe = ring.nextSubmission()
        }
        guard let sqe else { throw SystemError(call: "io_uring_get_sqe", errno: EBUSY) }
        zc_prep_recvmsg_multishot(sqe, fd, message, UInt32(Self.group), 0, Self.recvTag)
    }

    /// Receives until `shouldStop` says so; it runs after every batch of
    /// completions and at least every 100 ms.
    func run(socket: borrowing UDPSocket, core: inout ValidatingCore,
             shouldStop: (inout ValidatingCore, UInt64) -> Bool) throws(SystemError) {
        let fd = socket.fd
        try arm(fd: fd)
        var info = zc_recvmsg_info()
        while true {
            // Reliable streams' timers (NAK, STATUS) run between waits: 1 ms once one exists.
            try ring.submit(waitTimeoutNanoseconds: core.sawReliable ? 1_000_000 : 100_000_000)
            let n = ring.reap(into: completions)
            let now = MonotonicClock.nanoseconds()
            if n == 0 {
                if shouldStop(&core, now) { return }
                continue
            }
            let wallNow = MonotonicClock.wallNanoseconds()
            var rearm = false
            var coalesced: UInt64 = 0
            var returning = 0
            for c in 0..<n {
                let cqe = completions[c]
                if cqe.flags & zc_cqe_f_more == 0 { rearm = true }
                if cqe.flags & zc_cqe_f_buffer != 0 {
                    returned[returning] = UInt16(truncatingIfNeeded: cqe.flags >> zc_cqe_buffer_shift)
                    returning += 1
                }
                if cqe.res < 0 {
                    if cqe.res == -zc_enobufs { core.noteBufferShortage(); continue }
                    // A CQE's result, not a system call's: the request ended (no F_MORE, so it is
                    // re-armed below); the wait itself went through Ring.submit's EINTR policy.
                    if cqe.res == -EINTR || cqe.res == -EAGAIN { continue }
                    throw SystemError(call: "io_uring recvmsg", errno: -cqe.res)
                }
                guard cqe.flags & zc_cqe_f_buffer != 0 else { continue }
                let buffer = memory + Int(returned[returning - 1]) * Self.bufferBytes
                guard zc_recvmsg_parse(buffer, cqe.res, message, &info) == 0 else { core.noteTruncated(); continue }
                if info.rxq_ovfl >= 0 { core.noteKernelDrops(UInt64(info.rxq_ovfl)) }
                if info.flags & UInt32(zc_msg_trunc) != 0 || info.payload_len < info.full_len {
                    core.noteTruncated()
                    continue
                }
                let source = SourceAddress(sockaddr: info.name, length: Int(info.namelen))
                let base = info.payload!
                let length = Int(info.payload_len)
                if info.local.family != 0 { core.arrivalAddress = SourceAddress(local: info.local) }
                let segment = Int(info.gro_segment)
                if core.processBuffer(base, length: length, segment: segment, now: now, wallNow: wallNow, source: source) {
                    coalesced &+= 1
                }
            }
            // Validated (and written): the buffers go back to the kernel now.
            core.flushOutput()
            if returning > 0 {
                for r in 0..<returning {
                    let b = Int(returned[r])
                    zc_buf_ring_add(bufferRing, memory + b * Self.bufferBytes, UInt32(Self.bufferBytes), UInt16(b), mask, Int32(r))
                }
                zc_buf_ring_advance(bufferRing, Int32(returning))
            }
            core.noteReceive(buffers: UInt64(returning), coalesced: coalesced)
            if rearm {
                core.noteRearm()
                try arm(fd: fd)
            }
            if shouldStop(&core, now) { return }
        }
    }
}
