import CURing
import ZCSystem
#if canImport(Glibc)
import Glibc
#endif

/// One io_uring instance, owned by exactly one thread (SINGLE_ISSUER).
///
/// `~Copyable`: the ring, its registered buffers and files are torn down once, in
/// `deinit`, by whoever owns it last. The `io_uring` struct lives at a fixed heap
/// address because liburing keeps pointers into it.
package struct Ring: ~Copyable {
    @usableFromInline let ring: UnsafeMutablePointer<io_uring>
    /// The setup flags the kernel accepted (we ask for the best and step down).
    package let setupFlags: UInt32
    /// Submission queue entries as requested in ``Options/entries`` (the kernel may have rounded up).
    package let entries: UInt32

    /// Ring geometry, passed to ``Ring/init(_:)``.
    package struct Options: Sendable {
        /// Submission queue entries; the kernel rounds up to a power of two (at most 32768).
        package var entries: UInt32
        /// Completion queue entries (`IORING_SETUP_CQSIZE`); nil takes the kernel's default of twice ``entries``.
        /// Size it for every CQE that may be outstanding at once: a `SEND_ZC` yields two.
        package var completionEntries: UInt32?
        /// A kernel thread that takes submissions off the queue itself (IORING_SETUP_SQPOLL);
        /// nil: the owner submits with io_uring_enter.
        package var submissionThread: SubmissionThread?
        /// Geometry with `entries` submission entries and, when given, `completionEntries` completion entries.
        package init(entries: UInt32, completionEntries: UInt32? = nil, submissionThread: SubmissionThread? = nil) {
            self.entries = entries
            self.completionEntries = completionEntries
            self.submissionThread = submissionThread
        }
    }

    /// IORING_SETUP_SQPOLL: a kernel thread polls the submission queue and issues what it
    /// finds, so the work of each request (for a send: the whole network stack down to the
    /// driver) runs on that thread's core, not the owner's. It spins while requests keep
    /// coming and sleeps after ``idleMilliseconds`` without any (the next submit wakes it).
    package struct SubmissionThread: Sendable, Equatable {
        /// Idle time before the thread sleeps.
        package var idleMilliseconds: UInt32
        /// The CPU to pin it to (IORING_SETUP_SQ_AFF); nil: where the scheduler puts it.
        package var cpu: Int?
        package init(idleMilliseconds: UInt32 = 100, cpu: Int? = nil) {
            self.idleMilliseconds = idleMilliseconds
            self.cpu = cpu
        }
    }

    /// Creates a ring, trying SINGLE_ISSUER|DEFER_TASKRUN (6.1+), then
    /// COOP_TASKRUN (5.19+), then no flags: older kernels answer EINVAL. With a
    /// ``SubmissionThread``: SQPOLL with SINGLE_ISSUER, then SQPOLL alone (DEFER_TASKRUN
    /// needs the owner to submit, so it never goes with SQPOLL); a kernel that refuses
    /// SQPOLL (EPERM before 5.11 without CAP_SYS_NICE) fails the call rather than
    /// quietly giving a ring without it.
    package init(_ options: Options) throws(SystemError) {
        let ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        ring.initialize(to: io_uring())
        var base: UInt32 = options.completionEntries != nil ? zc_setup_cqsize : 0
        let attempts: [UInt32]
        if let thread = options.submissionThread {
            base |= zc_setup_sqpoll | (thread.cpu != nil ? zc_setup_sq_aff : 0)
            attempts = [base | zc_setup_single_issuer | zc_setup_submit_all, base | zc_setup_submit_all, base]
        } else {
            attempts = [
                base | zc_setup_single_issuer | zc_setup_defer_taskrun | zc_setup_submit_all,
                base | zc_setup_coop_taskrun | zc_setup_submit_all,
                base,
            ]
        }
        var lastError: Int32 = 0
        var accepted: UInt32? = nil
        for flags in attempts {
            var params = io_uring_params()
            params.flags = flags
            if let cq = options.completionEntries { params.cq_entries = cq }
            if let thread = options.submissionThread {
                params.sq_thread_idle = thread.idleMilliseconds
                if let cpu = thread.cpu { params.sq_thread_cpu = UInt32(cpu) }
            }
            let rc = io_uring_queue_init_params(options.entries, ring, &params)
            if rc == 0 { accepted = flags; break }
            lastError = -rc
            if lastError != EINVAL { break }
        }
        guard let accepted else {
            ring.deallocate()
            throw SystemError(call: "io_uring_queue_init", errno: lastError)
        }
        self.ring = ring
        self.setupFlags = accepted
        self.entries = options.entries
    }

    deinit {
        io_uring_queue_exit(ring)
        ring.deallocate()
    }

    /// True when a kernel thread takes the submissions (SQPOLL): a submit only wakes it
    /// if it sleeps, and the queue empties on its own time, not at the submit.
    package var pollsSubmissions: Bool { setupFlags & zc_setup_sqpoll != 0 }

    /// SQPOLL: waits until the kernel thread has taken at least one entry off a full
    /// submission queue (io_uring_sqring_wait). Without SQPOLL there is nothing to wait
    /// for: a submit empties the queue.
    package func waitForSubmissionSpace() throws(SystemError) {
        guard pollsSubmissions else { return }
        _ = try Self.entered { io_uring_sqring_wait(ring) }
    }

    /// Polls the completion queue up to `spinning` times without entering the kernel;
    /// true once a completion is ready. For rings whose completions are posted without
    /// us (SQPOLL), where a short spin beats a sleep and a wake-up.
    package func awaitCompletion(spinning: Int) -> Bool {
        for _ in 0..<spinning {
            if io_uring_cq_ready(ring) > 0 { return true }
            zc_cpu_relax()
        }
        return io_uring_cq_ready(ring) > 0
    }

    /// True when the kernel runs completions only when we enter it (DEFER_TASKRUN).
    package var defersTaskRun: Bool { setupFlags & zc_setup_defer_taskrun != 0 }

    /// Registers `buffer` as fixed buffer 0; SEND_ZC/READ_FIXED may then use any
    /// address inside it, and the kernel pins the pages once instead of per send.
    package func registerBuffer(_ buffer: UnsafeMutableRawBufferPointer) throws(SystemError) {
        var iov = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
        let rc = io_uring_register_buffers(ring, &iov, 1)
        if rc < 0 { throw SystemError(call: "io_uring_register_buffers", errno: -rc) }
    }

    /// Unregisters the fixed buffers. Call it only once no request still uses them
    /// (after the last notification); errors are ignored.
    package func unregisterBuffers() {
        _ = io_uring_unregister_buffers(ring)
    }

    /// Registers file descriptors; SQEs then name them by index with IOSQE_FIXED_FILE,
    /// which saves a file-table lookup and refcount per request.
    package func registerFiles(_ fds: [Int32]) throws(SystemError) {
        let rc = fds.withUnsafeBufferPointer { io_uring_register_files(ring, $0.baseAddress, UInt32($0.count)) }
        if rc < 0 { throw SystemError(call: "io_uring_register_files", errno: -rc) }
    }

    /// Registers the ring's own fd so io_uring_enter skips the fd lookup (5.18+).
    /// Best effort: older kernels say EINVAL and nothing changes.
    package func registerRingFD() {
        _ = io_uring_register_ring_fd(ring)
    }

    /// The next free SQE, or nil when the submission queue is full.
    @inline(__always)
    package func nextSubmission() -> UnsafeMutablePointer<io_uring_sqe>? {
        io_uring_get_sqe(ring)
    }

    /// SQEs prepared but not yet submitted.
    @inline(__always) package var pendingSubmissions: UInt32 { io_uring_sq_ready(ring) }

    /// Submits what is queued; with `waitFor > 0` also waits for that many CQEs.
    ///
    /// io_uring_enter follows the one EINTR policy (``Interruption``): EINTR without a stop
    /// request enters again; with one (a stop signal) it returns 0 so loops re-check their
    /// flags, as do ETIME and EBUSY/EAGAIN (completion queue overflow: the caller reaps).
    @discardableResult
    package func submit(waitFor: UInt32 = 0) throws(SystemError) -> Int {
        try Self.entered { waitFor > 0 ? io_uring_submit_and_wait(ring, waitFor) : io_uring_submit(ring) }
    }

    /// Runs one io_uring_enter (through liburing, which returns `-errno`) under the EINTR
    /// policy: its result, 0 for a stop interruption, ETIME, EBUSY or EAGAIN, or a ``SystemError``.
    @inline(__always)
    static func entered(_ enter: () -> Int32) throws(SystemError) -> Int {
        let rc = Interruption.attemptReturningErrno(enter)
        if rc >= 0 { return Int(rc) }
        switch -rc {
        case EINTR, ETIME, EBUSY, EAGAIN: return 0
        default: throw SystemError(call: "io_uring_enter", errno: -rc)
        }
    }

    /// Submits what is queued and runs pending completion work without waiting,
    /// so completions are reaped even under DEFER_TASKRUN.
    @discardableResult
    package func submitAndGetEvents() throws(SystemError) -> Int {
        try Self.entered { io_uring_submit_and_get_events(ring) }
    }

    /// Waits up to `timeoutNanoseconds` for at least one CQE (after submitting).
    package func submit(waitTimeoutNanoseconds ns: UInt64) throws(SystemError) {
        var ts = __kernel_timespec(tv_sec: Int64(ns / 1_000_000_000), tv_nsec: Int64(ns % 1_000_000_000))
        var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
        _ = try Self.entered { io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nil) }
    }

    /// Copies ready completions into `into` (caller-owned, reused every call) and
    /// advances the queue. Never enters the kernel.
    @inline(__always)
    package func reap(into buffer: UnsafeMutableBufferPointer<zc_completion>) -> Int {
        Int(zc_reap(ring, buffer.baseAddress, UInt32(buffer.count)))
    }

    /// Completions waiting in the queue.
    @inline(__always) package var readyCompletions: UInt32 { zc_cq_ready(ring) }

    /// Raw access for the few operations this type does not wrap (buffer rings).
    package var raw: UnsafeMutablePointer<io_uring> { ring }

    // --- provided buffer ring (receiver) ---------------------------------------
    // liburing 2.3 lacks io_uring_setup_buf_ring: map the ring memory here and
    // register it with io_uring_register_buf_ring. The caller fills it with
    // zc_buf_ring_add/advance and hands it back with `unregisterBufferRing`.

    /// Maps and registers a provided-buffer ring of `entries` (a power of two)
    /// for buffer group `group`; returns the ring, initialised and empty.
    package func registerBufferRing(entries: UInt32, group: UInt16) throws(SystemError) -> UnsafeMutablePointer<io_uring_buf_ring> {
        let bytes = Int(entries) * MemoryLayout<io_uring_buf>.stride
        let memory = try MemoryMap.anonymous(bytes: bytes, call: "mmap(buffer ring)")
        let br = memory.bindMemory(to: io_uring_buf_ring.self, capacity: 1)
        zc_buf_ring_init(br)
        var reg = io_uring_buf_reg()
        reg.ring_addr = UInt64(UInt(bitPattern: memory))
        reg.ring_entries = entries
        reg.bgid = group
        let rc = io_uring_register_buf_ring(ring, &reg, 0)
        if rc < 0 {
            MemoryMap.unmap(memory, bytes: bytes)
            throw SystemError(call: "io_uring_register_buf_ring", errno: -rc)
        }
        return br
    }

    /// Unregisters buffer group `group` and unmaps its ring.
    package func unregisterBufferRing(_ br: UnsafeMutablePointer<io_uring_buf_ring>, entries: UInt32, group: UInt16) {
        _ = io_uring_unregister_buf_ring(ring, Int32(group))
        MemoryMap.unmap(UnsafeMutableRawPointer(br), bytes: Int(entries) * MemoryLayout<io_uring_buf>.stride)
    }
}

/// A completion copied out of the ring.
package typealias Completion = zc_completion

/// Flag tests on a reaped completion (`user_data`, `res`, `flags` copied from the CQE).
extension zc_completion {
    /// More CQEs will follow for this request (SEND_ZC: its notification).
    @inline(__always) package var hasMore: Bool { flags & zc_cqe_f_more != 0 }
    /// This is a SEND_ZC notification: the kernel no longer references the buffer.
    @inline(__always) package var isNotification: Bool { flags & zc_cqe_f_notif != 0 }
    /// For a notification: the kernel fell back to copying the data.
    @inline(__always) package var reportsCopied: Bool { UInt32(bitPattern: res) & zc_notif_usage_zc_copied != 0 }
}
