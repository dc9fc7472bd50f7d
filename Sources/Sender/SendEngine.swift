#if canImport(Glibc)
import Glibc
#endif
import ZCSystem

/// What a send engine does, and nothing more: lend slots of memory the kernel will
/// send from, take them back filled, hand them to the kernel, and say when the kernel
/// is done with them. Everything a stream needs on top — limits, pacing, END and its
/// repeats, draining, progress and the report — is ``StreamDriver``'s, written once
/// for every engine.
///
/// A slot is an index into the engine's memory: a registered pool slot (io_uring), a
/// message of a `sendmmsg` batch, or a TX ring frame (AF_PACKET). It holds up to
/// ``segmentsPerSlot`` datagrams back to back, all full-size but the last (one GSO send).
///
/// Lifecycle: ``lend()`` → the driver writes datagrams at ``address(of:)`` →
/// ``commit(_:length:datagrams:isEnd:stats:)`` (queued, no system call) →
/// ``service(_:stats:)`` hands queued slots to the kernel and takes in completions;
/// a slot becomes lendable again only when the kernel is done with it (for SEND_ZC:
/// its notification). Engines are single-threaded and never allocate after set-up.
///
/// A new engine is one type conforming to this protocol plus one ``SendEngineKind`` case.
package protocol SendEngine: AnyObject {
    /// Datagrams one slot holds (more than 1: a GSO send).
    var segmentsPerSlot: Int { get }
    /// Slots in all; ``address(of:)`` is valid for `0..<slotCount`.
    var slotCount: Int { get }
    /// Where slot `slot`'s first datagram goes.
    func address(of slot: Int) -> UnsafeMutableRawPointer
    /// True when ``lend()`` would return a slot now.
    var hasFreeSlot: Bool { get }
    /// A free slot to fill, without entering the kernel; nil when none is free now
    /// (the pool is in flight, the submission queue or batch is full, or sends the
    /// kernel refused are waiting to go again first). Lending twice without a commit
    /// may return the same slot (the packet ring's head frame).
    func lend() -> Int?
    /// A lent slot that will not be sent.
    func giveBack(_ slot: Int)
    /// Queues a lent slot holding `length` bytes: `datagrams` data datagrams, or one
    /// END datagram (`isEnd`, `datagrams` 0). Counts the send; enters the kernel only
    /// when its own queue is full.
    func commit(_ slot: Int, length: Int, datagrams: Int, isEnd: Bool, stats: inout SenderStatistics) throws(SendEngineError)
    /// Slots committed and not yet handed to the kernel.
    var queued: Int { get }
    /// How many queued slots are worth one kernel entry when a producer pushes slots
    /// one at a time (``OutboundStream``): 1 sends each slot at once.
    var pushBatch: Int { get }
    /// Most slots a pulling driver fills before it enters the kernel (`Int.max`: as many
    /// as the engine lends).
    var slotsPerTurn: Int { get }
    /// Hands queued slots to the kernel, takes in what it finished, and waits as asked.
    func service(_ wait: ServiceWait, stats: inout SenderStatistics) throws(SendEngineError)
    /// Slots the kernel (or the queue) still holds: lent out, committed or in flight.
    var inFlight: Int { get }
    /// Set when the engine can send no more data (the packet ring's interface rejected
    /// a frame); ENDs may still go. The driver stops producing.
    var haltError: SendEngineError? { get }
    /// ENDs committed that the kernel never sent (a rejected ring took them down):
    /// the driver sends that many again. Reading resets the count.
    func takeLostEnds() -> Int
    /// After the drain: wait (bounded) until the kernel let go of all the engine's memory.
    func settle()
    /// After the drain: anything the engine adds to the report (its own section, the
    /// socket buffer it was granted).
    func annotate(_ report: inout SenderReport)
    /// Regular files only: the engine can queue one vectored read of the file's consecutive
    /// bytes at `fileOffset` of `fd` into `count` pieces inside `slot` (the payload positions
    /// between its datagram headers; io_uring READV). False when the engine cannot (the
    /// driver then reads with `pread` as it fills). `vectors` stays valid until the read completes.
    var readsFilesAsynchronously: Bool { get }
    func queueRead(vectors: UnsafePointer<iovec>, count: Int, fileOffset: UInt64, fd: Int32, slot: Int)
    /// Reads queued for `slot` still outstanding, and the bytes the finished ones read
    /// (an error: -errno).
    func readProgress(of slot: Int) -> (pending: Int, bytes: Int)
    /// Submission-queue entries free for reads now.
    var readCapacity: Int { get }

    // MARK: Reliable streams (SPEC §13): slots kept until the receiver acknowledges them

    /// The engine can keep a slot after the kernel let go of it (``hold(_:)``) and send one
    /// datagram again from inside it (``resend(_:offset:length:stats:)``). False: `--reliable`
    /// refuses the engine.
    var holdsSlots: Bool { get }
    /// Before its commit: the slot stays out of the pool after the kernel is done with it,
    /// until ``release(_:)``.
    func hold(_ slot: Int)
    /// The receiver acknowledged every datagram in the slot: it goes back to the pool as soon
    /// as the kernel holds nothing of it (now, or at its last notification).
    func release(_ slot: Int)
    /// The kernel is done with the slot's first send (its notification came): its bytes may
    /// be rewritten (a repair's flag and checksum) while repairs from it are in flight.
    func originalSendDone(_ slot: Int) -> Bool
    /// Sends `length` bytes at `offset` in a held slot again (one datagram: a repair), from
    /// the same memory (SEND_ZC from the registered buffer where the engine has it).
    func resend(_ slot: Int, offset: Int, length: Int, stats: inout SenderStatistics) throws(SendEngineError)
    /// A descriptor that turns readable when the engine has completions to take in (the
    /// ring's), so a thread waiting for feedback wakes for either; nil: none.
    var completionDescriptor: Int32? { get }
}

extension SendEngine {
    package var halted: Bool { haltError != nil }
    package var haltError: SendEngineError? { nil }
    package func settle() {}
    package func takeLostEnds() -> Int { 0 }
    package func annotate(_ report: inout SenderReport) {}
    package var readsFilesAsynchronously: Bool { false }
    package func queueRead(vectors: UnsafePointer<iovec>, count: Int, fileOffset: UInt64, fd: Int32, slot: Int) {
        preconditionFailure("\(Self.self) reads no files asynchronously")
    }
    package func readProgress(of slot: Int) -> (pending: Int, bytes: Int) { (0, 0) }
    package var readCapacity: Int { 0 }
    package var slotsPerTurn: Int { .max }
    package var holdsSlots: Bool { false }
    package func hold(_ slot: Int) { preconditionFailure("\(Self.self) holds no slots") }
    package func release(_ slot: Int) { preconditionFailure("\(Self.self) holds no slots") }
    package func originalSendDone(_ slot: Int) -> Bool { true }
    package func resend(_ slot: Int, offset: Int, length: Int, stats: inout SenderStatistics) throws(SendEngineError) {
        preconditionFailure("\(Self.self) cannot resend")
    }
    package var completionDescriptor: Int32? { nil }
}

/// Measured choices shared by the socket engines.
package enum SendEngineTuning {
    /// Slots (64 KiB GSO sends at 1472 B) the socket engines fill before they enter the
    /// kernel. Fewer per turn keeps the working set in cache: the pool's free list is
    /// LIFO, so slots the kernel hands back at once are refilled while still warm, and
    /// the pool is only walked end to end when the kernel holds slots long (a NIC's
    /// notifications): then each turn lends more of it. Measured on the veth sink
    /// (2 s runs, medians of 3, interleaved), vs filling every free slot per turn:
    /// uring-zc `--source pattern` 115 -> 149 Gbit/s, `--source fixed` 317 -> 371,
    /// sendmmsg 72 -> 83 (16: 88; 64: below 32 for uring-zc).
    static let socketSlotsPerTurn = 32
    /// With SQPOLL the kernel thread takes each slot as soon as the queue's tail moves
    /// (no system call per turn), so small turns keep the slots in flight, and so the
    /// memory the filler touches, few enough to stay in L2 (8 x 64 KiB). Sink, uring-zc
    /// `--source pattern --sqpoll`, interleaved medians of 3: 32 a turn 164 Gbit/s, 8: 209,
    /// 4: 177-216, 2: 205, 1: 183 (the fill runs near its hot-cache speed from 4 to 8).
    static let submissionThreadSlotsPerTurn = 8
    /// With SQPOLL: completion-queue polls before a thread waiting for a slot sleeps in
    /// the kernel (the kernel thread posts notifications within microseconds; a few µs of
    /// PAUSE loops cost less than a sleep and a wake-up, measured no slower than none).
    static let submissionThreadSpin = 2000
}

/// How long ``SendEngine/service(_:stats:)`` may wait after handing over the queue.
package enum ServiceWait: Equatable {
    /// Not at all: submit and take in what is already done.
    case none
    /// Until the kernel hands back at least one slot (returns at once if none is held,
    /// or when a stop is requested).
    case untilSlotFree
    /// At most this long, for anything to happen (pacing, the gap between ENDs).
    case upTo(nanoseconds: UInt64)
}

/// Why sending failed, other than a send the kernel refused (those are counted, see
/// ``ErrorPolicy``).
public enum SendEngineError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A system call failed.
    case system(SystemError)
    /// The kernel still held `slotsOwed` slots (sends without their completion or
    /// notification, or ring frames) when the drain gave up after `seconds`.
    case drainTimeout(slotsOwed: Int, seconds: Double)
    /// A regular file read back fewer bytes than its size promised: it changed
    /// while it was being sent.
    case sourceChanged(read: Int, expected: Int)
    /// The packet ring's interface rejected a frame (longer than its MTU allows
    /// now): the stream can only be finished.
    case frameRejected(interface: String)
    /// The io_uring submission queue was still full right after the kernel consumed it
    /// (a bug: the engine checks for room before it lends a slot).
    case submissionQueueFull

    /// The errno a failed datagram is counted under.
    public var errno: Int32 {
        switch self {
        case .system(let e): return e.errno
        case .drainTimeout: return ETIMEDOUT
        case .sourceChanged: return EIO
        case .frameRejected: return EMSGSIZE
        case .submissionQueueFull: return EBUSY
        }
    }

    public var description: String {
        switch self {
        case .system(let e): return e.description
        case .drainTimeout(let owed, let seconds):
            return "drain: the kernel still held \(owed) slots after \(seconds) s (completions or zero-copy notifications never came)"
        case .sourceChanged(let read, let expected):
            return "read(source): short read (\(read) of \(expected) bytes): the file changed while it was being sent"
        case .submissionQueueFull:
            return "io_uring: the submission queue was still full right after submitting"
        case .frameRejected(let interface):
            return "packet ring: '\(interface)' rejected a frame (TP_STATUS_WRONG_FORMAT: longer than the MTU allows now?); the stream can only be finished"
        }
    }
}
