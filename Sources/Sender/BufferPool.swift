#if canImport(Glibc)
import Glibc
#endif
import ZCSystem

/// The sender's memory, owned up front: `count` page-aligned slots of `slotBytes`
/// in one anonymous mapping (MAP_POPULATE, so no page faults on the hot path),
/// registered with the ring as a single fixed buffer. A slot's datagrams may start
/// ``leadBytes`` into it (`DatagramHeader.payloadLineLead` puts payloads on cache lines).
///
/// Free slots are a LIFO stack of indices: the most recently returned slot is
/// reused first, which keeps its lines warm in cache. `~Copyable`: one owner
/// unmaps it, and only after the owner has seen every notification.
package struct BufferPool: ~Copyable {
    /// Start of the mapping (page-aligned); valid until the pool is destroyed.
    package let base: UnsafeMutableRawPointer
    /// Bytes per slot: the requested size plus the lead, rounded up to whole pages.
    package let slotBytes: Int
    /// Where in its slot ``address(of:)`` points.
    package let leadBytes: Int
    /// Number of slots.
    package let count: Int
    /// Bytes mapped: ``count`` × ``slotBytes``.
    package let totalBytes: Int
    private let freeStack: UnsafeMutablePointer<Int32>
    /// Slots free now.
    package private(set) var freeCount: Int

    /// Maps and pre-faults `count` slots of at least `requested` bytes each (after
    /// `leadBytes`), all free.
    ///
    /// - Throws: `SystemError` when `mmap` fails (e.g. `ENOMEM`).
    package init(slots count: Int, slotBytes requested: Int, leadBytes: Int = 0) throws(SystemError) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let slotBytes = (requested + leadBytes + page - 1) / page * page
        let total = slotBytes * count
        self.base = try MemoryMap.anonymous(bytes: total, extraFlags: MAP_POPULATE, call: "mmap(\(total) bytes)")
        self.slotBytes = slotBytes
        self.leadBytes = leadBytes
        self.count = count
        self.totalBytes = total
        self.freeStack = .allocate(capacity: count)
        // Highest index at the bottom so slot 0 is handed out first.
        for i in 0..<count { freeStack[i] = Int32(count - 1 - i) }
        self.freeCount = count
    }

    deinit {
        MemoryMap.unmap(base, bytes: totalBytes)
        freeStack.deallocate()
    }

    /// The whole pool, for `io_uring_register_buffers`.
    package var region: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: totalBytes) }

    /// Where `slot`'s first datagram goes (0..<``count``, not checked): ``leadBytes`` into it.
    @inline(__always) package func address(of slot: Int) -> UnsafeMutableRawPointer {
        base + slot * slotBytes + leadBytes
    }

    /// No slot is free: every one is in flight.
    @inline(__always) package var isEmpty: Bool { freeCount == 0 }
    /// Slots taken and not yet given back.
    @inline(__always) package var inUse: Int { count - freeCount }

    /// Takes a free slot, or nil when all are in flight.
    @inline(__always) package mutating func take() -> Int? {
        guard freeCount > 0 else { return nil }
        freeCount -= 1
        return Int(freeStack[freeCount])
    }

    /// Returns a slot. The caller guarantees the kernel no longer reads it.
    @inline(__always) package mutating func give(_ slot: Int) {
        precondition(freeCount < count, "BufferPool: slot \(slot) returned twice")
        freeStack[freeCount] = Int32(slot)
        freeCount += 1
    }
}
