import Sender
import StreamProtocol
import ZCSystem

/// The slot bookkeeping of the test engines (``SenderSessionTests``, and those that play a
/// reliable stream's network, ``ReliableDeliveryTests`` and ``ReliableGroupTests``): slot
/// memory, lending, holding until acknowledged, and the kernel's release of committed slots. Counts a slot lent while it
/// was still held (the defect a reliable sender must never have).
class HeldSlotPool {
    let slotCount: Int
    let segmentsPerSlot: Int
    let datagramSize: Int
    private let memory: UnsafeMutableRawPointer
    private let slotBytes: Int
    private var free: [Int]
    private var held = Set<Int>()
    private var committed: [Int] = []
    private(set) var lentWhileHeld = 0

    init(slotCount: Int, segmentsPerSlot: Int, datagramSize: Int) {
        self.slotCount = slotCount
        self.segmentsPerSlot = segmentsPerSlot
        self.datagramSize = datagramSize
        slotBytes = segmentsPerSlot * datagramSize
        memory = .allocate(byteCount: slotCount * slotBytes, alignment: 64)
        free = Array(0..<slotCount)
    }
    deinit { memory.deallocate() }

    func address(of slot: Int) -> UnsafeMutableRawPointer { memory + slot * slotBytes }
    var hasFreeSlot: Bool { !free.isEmpty }
    func lend() -> Int? {
        guard let slot = free.popLast() else { return nil }
        if held.contains(slot) { lentWhileHeld += 1 }
        return slot
    }
    func giveBack(_ slot: Int) { free.append(slot) }
    var queued: Int { committed.count }
    var pushBatch: Int { 1 }
    var inFlight: Int { slotCount - free.count }
    var holdsSlots: Bool { true }
    func hold(_ slot: Int) { held.insert(slot) }
    func release(_ slot: Int) {
        held.remove(slot)
        if !committed.contains(slot) { free.append(slot) }
    }
    func originalSendDone(_ slot: Int) -> Bool { !committed.contains(slot) }
    var completionDescriptor: Int32? { nil }

    /// The "kernel" takes `slot`: each of its datagrams (split as GSO would on the wire) goes
    /// to `body` with its header, the statistics count the send, and the slot is committed.
    func commitDatagrams(_ slot: Int, length: Int, datagrams n: Int, isEnd: Bool, stats: inout SenderStatistics,
                         _ body: (DatagramHeader, [UInt8]) -> Void) {
        var at = 0
        while at < length {
            let p = address(of: slot) + at
            let h = DatagramHeader(reading: p)
            // A keyed datagram (version 4) has its 40-byte trailer behind the payload.
            let keyed = p.load(fromByteOffset: 4, as: UInt8.self) == KeyedDatagram.version
            let total = Int(h.headerLength) + Int(h.payloadLength) + (keyed ? AuthTrailer.size : 0)
            body(h, Array(UnsafeRawBufferPointer(start: p, count: total)))
            at += total
        }
        if isEnd { stats.endsSent &+= 1 } else { stats.datagrams &+= UInt64(n); stats.bytes &+= UInt64(length) }
        stats.sends &+= 1
        noteCommitted(slot)
    }

    /// `slot` was handed to the "kernel".
    func noteCommitted(_ slot: Int) { committed.append(slot) }

    /// The slots committed since the last call (the caller decides when they come back).
    func takeCommitted() -> [Int] {
        defer { committed = [] }
        return committed
    }

    /// The "kernel" is done with every committed slot: free unless held for an acknowledgement.
    func completeCommitted() {
        for slot in committed where !held.contains(slot) { free.append(slot) }
        committed = []
    }
}
