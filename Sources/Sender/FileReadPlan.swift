/// The slots whose payloads are being read from a regular file by the engine
/// (one io_uring READV straight into the slot's payload positions), in the order they were planned.
///
/// A slot's sequence numbers are reserved when its reads are queued, so slots must be
/// sealed and sent in plan order even when a later slot's reads finish first: the
/// driver sends the head only, and only once all its reads completed. A fixed ring of
/// `capacity` entries (one per slot), allocated once; `~Copyable`, one owner frees it.
struct FileReadPlan: ~Copyable {
    struct Entry {
        var slot: Int32
        var count: Int32
        var first: UInt64
    }
    private let entries: UnsafeMutablePointer<Entry>
    private let capacity: Int
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        entries = .allocate(capacity: self.capacity)
    }

    deinit { entries.deallocate() }

    var isEmpty: Bool { count == 0 }

    /// The oldest planned slot: the next to seal and send.
    var oldest: Entry? { count > 0 ? entries[head] : nil }

    /// Plans `slot`, holding sequence numbers `first..<first + count`.
    mutating func append(slot: Int, first: UInt64, count n: Int) {
        precondition(count < capacity, "more slots planned than the pool holds")
        entries[(head + count) % capacity] = Entry(slot: Int32(slot), count: Int32(n), first: first)
        count += 1
    }

    /// The oldest slot was sent.
    mutating func removeOldest() {
        head = (head + 1) % capacity
        count -= 1
    }
}
