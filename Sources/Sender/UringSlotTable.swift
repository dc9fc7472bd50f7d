/// What the io_uring send engine knows of each pool slot, in one array of one
/// struct (one cache line holds a slot's whole state), allocated once.
struct UringSlotState {
    /// Bytes of the send (a whole GSO super-buffer, or one END datagram).
    var length: Int32 = 0
    /// Data datagrams it carries (0 for END).
    var datagrams: Int32 = 0
    /// Completions still owed before the slot may be reused: the send's own CQE and,
    /// for SEND_ZC, its notification.
    var owed: Int32 = 0
    /// Reads queued into the slot (READV) that have not completed.
    var readsPending: Int32 = 0
    /// Bytes those reads delivered, or -errno once one failed.
    var readBytes: Int = 0
    var isEnd = false
    /// The send failed for lack of kernel memory and waits in the retry queue.
    var retryPending = false
    /// Reliable streams: kept out of the pool until the receiver acknowledged it.
    var held = false
    /// Of ``owed``, the CQEs of repairs sent from the slot (the rest are its first send's).
    var repairsOwed: Int32 = 0
}

/// The slot states and the queue of sends to retry. `~Copyable`: one owner frees them.
struct UringSlotTable: ~Copyable {
    private let states: UnsafeMutablePointer<UringSlotState>
    private let retryQueue: UnsafeMutablePointer<Int32>
    let count: Int
    private var retryHead = 0
    /// Sends waiting to go again, oldest first.
    private(set) var retryCount = 0

    init(count: Int) {
        self.count = count
        states = .allocate(capacity: count)
        states.initialize(repeating: UringSlotState(), count: count)
        retryQueue = .allocate(capacity: count)
    }

    deinit {
        states.deallocate()
        retryQueue.deallocate()
    }

    @inline(__always)
    subscript(slot: Int) -> UringSlotState {
        get { states[slot] }
        nonmutating _modify { yield &states[slot] }
    }

    /// Queues `slot`'s send to go again, after the ones already waiting.
    mutating func queueRetry(_ slot: Int) {
        states[slot].retryPending = true
        retryQueue[(retryHead + retryCount) % count] = Int32(slot)
        retryCount += 1
    }

    /// The oldest send waiting to go again, taken off the queue.
    mutating func nextRetry() -> Int? {
        guard retryCount > 0 else { return nil }
        let slot = Int(retryQueue[retryHead])
        retryHead = (retryHead + 1) % count
        retryCount -= 1
        states[slot].retryPending = false
        return slot
    }
}
