#if canImport(Glibc)
import Glibc
#endif
import Sender
import StreamProtocol
import XCTest
import ZCSystem

/// An engine that sends nowhere: it validates every datagram at commit (as a receiver
/// would), keeps slots "in the kernel" for a configurable number of service calls, and
/// can fail, halt or never finish on cue. The driver's logic — limits, pacing, END
/// repeats, drain, errors — is tested against it without a network.
final class FakeEngine: SendEngine {
    struct Sent: Equatable {
        var sequence: UInt64
        var isEnd: Bool
        var payload: Int
        var totals: EndOfStream?
    }
    let segmentsPerSlot: Int
    let slotCount: Int
    let datagramSize: Int
    private let memory: UnsafeMutableRawPointer
    private var free: [Int]
    private var lent: Set<Int> = []
    private var queue: [(slot: Int, length: Int, datagrams: Int, isEnd: Bool)] = []
    /// Committed sends handed to the "kernel", with the service call that finishes them.
    private var inKernel: [(slot: Int, length: Int, datagrams: Int, isEnd: Bool, doneAt: Int)] = []
    private(set) var serviceCalls = 0
    private(set) var sent: [Sent] = []
    private(set) var sendTimes: [UInt64] = []
    private(set) var waits: [ServiceWait] = []

    /// Service calls a send stays in the kernel (0: done at the call that hands it over).
    var holdCalls = 0
    /// The kernel never finishes anything (a drain must time out).
    var neverComplete = false
    /// Throw this from the service call with this number.
    var failAtServiceCall: (Int, SendEngineError)?
    /// Refuse every data send with this errno (counted, as a kernel refusal is).
    var refuseWith: Int32?
    /// After this many data commits, the engine halts and loses the ENDs queued.
    var haltAfterDataCommits: Int?
    private var dataCommits = 0
    private var lostEnds = 0
    private var lostAnEnd = false
    private var isHalted = false

    init(slots: Int, segments: Int, datagramSize: Int) {
        slotCount = slots
        segmentsPerSlot = segments
        self.datagramSize = datagramSize
        memory = .allocate(byteCount: slots * segments * datagramSize, alignment: 64)
        free = Array((0..<slots).reversed())
    }

    deinit { memory.deallocate() }

    func address(of slot: Int) -> UnsafeMutableRawPointer { memory + slot * segmentsPerSlot * datagramSize }
    var hasFreeSlot: Bool { !free.isEmpty }
    func lend() -> Int? {
        guard let slot = free.popLast() else { return nil }
        lent.insert(slot)
        return slot
    }
    func giveBack(_ slot: Int) {
        lent.remove(slot)
        free.append(slot)
    }
    func commit(_ slot: Int, length: Int, datagrams: Int, isEnd: Bool, stats: inout SenderStatistics) throws(SendEngineError) {
        lent.remove(slot)
        // Validate every datagram now, as the receiver will.
        var p = 0
        let base = address(of: slot)
        while p < length {
            let size = min(datagramSize, length - p)
            guard case .valid(let header) = Datagram.validate(UnsafeRawBufferPointer(start: base + p, count: size)) else {
                XCTFail("invalid datagram committed at \(p) of slot \(slot)"); break
            }
            let end = header.flags.contains(.end)
            sent.append(Sent(sequence: header.sequence, isEnd: end, payload: Int(header.payloadLength),
                             totals: end ? EndOfStream(reading: base + p + DatagramHeader.size) : nil))
            sendTimes.append(MonotonicClock.nanoseconds())
            p += size
        }
        queue.append((slot, length, datagrams, isEnd))
        stats.sends &+= 1
        if !isEnd {
            dataCommits += 1
        } else if isHalted && !lostAnEnd {
            // The first END after the halt is lost, as a rejected ring loses it.
            lostAnEnd = true
            lostEnds = 1
            queue.removeLast()
            free.append(slot)
        }
    }
    var queued: Int { queue.count }
    var pushBatch: Int { 1 }
    var inFlight: Int { queue.count + inKernel.count + lent.count }
    var haltError: SendEngineError? { isHalted ? .frameRejected(interface: "fake0") : nil }
    func takeLostEnds() -> Int { defer { lostEnds = 0 }; return lostEnds }

    func service(_ wait: ServiceWait, stats: inout SenderStatistics) throws(SendEngineError) {
        serviceCalls += 1
        waits.append(wait)
        if let (call, error) = failAtServiceCall, call == serviceCalls { throw error }
        // A rejected frame shows itself when the kernel looks at the queue.
        if let limit = haltAfterDataCommits, dataCommits >= limit { isHalted = true }
        for q in queue { inKernel.append((q.slot, q.length, q.datagrams, q.isEnd, serviceCalls + holdCalls)) }
        queue.removeAll()
        guard !neverComplete else {
            if case .upTo(let ns) = wait { MonotonicClock.sleep(nanoseconds: min(ns, 1_000_000)) }
            return
        }
        var still: [(slot: Int, length: Int, datagrams: Int, isEnd: Bool, doneAt: Int)] = []
        for k in inKernel {
            guard k.doneAt <= serviceCalls else { still.append(k); continue }
            if k.isEnd {
                stats.endsSent &+= 1
            } else if let code = refuseWith {
                stats.errors[code, default: 0] += 1
                stats.datagramsFailed &+= UInt64(k.datagrams)
            } else {
                stats.datagrams &+= UInt64(k.datagrams)
                stats.bytes &+= UInt64(k.length)
            }
            free.append(k.slot)
        }
        inKernel = still
        if case .upTo(let ns) = wait, !still.isEmpty || queue.isEmpty { MonotonicClock.sleep(nanoseconds: min(ns, 1_000_000)) }
    }
}

final class StreamDriverTests: XCTestCase {
    private let size = 200

    private func writer(count: UInt64? = nil, duration: UInt64? = nil, faults: FaultInjection = FaultInjection(),
                        patternPayload: Bool = true) -> DatagramWriter {
        DatagramWriter(streamID: 0x5EED, datagramSize: size,
                       limit: StreamLimit(datagrams: count, durationNanoseconds: duration), faults: faults, patternPayload: patternPayload)
    }

    /// A configuration and the pulled stream's limit: what ProductionLimits reads.
    struct Setup { var configuration: SenderConfiguration; var limit: StreamLimit }

    private func configuration(count: UInt64? = nil, duration: UInt64? = nil, onError: ErrorPolicy = .continue) throws -> Setup {
        var c = try SenderConfiguration(destination: SocketAddress.parse("198.18.0.1:9"), datagramSize: size)
        c.onError = onError
        return Setup(configuration: c, limit: StreamLimit(datagrams: count, durationNanoseconds: duration))
    }

    private func run(_ engine: FakeEngine, writer: DatagramWriter, configuration c: Setup, rate: Rate? = nil,
                     endRepeats: Int = 3, drainTimeout: UInt64 = 10_000_000_000) throws(SendEngineError) -> (StopReason, SenderStatistics, UInt64) {
        var driver = StreamDriver(engine: engine, writer: writer, rate: rate, endRepeats: endRepeats, drainTimeoutNanoseconds: drainTimeout)
        var ticker = ProgressTicker(intervalNanoseconds: 0, start: driver.start) { _ in }
        let reason = try driver.run(source: nil, limits: ProductionLimits(c.configuration, limit: c.limit, start: driver.start), flushIntervalNanoseconds: 5_000_000, ticker: &ticker)
        // END and the drain: the same finish() a pushed stream ends with.
        try driver.finish()
        return (reason, driver.stats, driver.elapsedNanoseconds)
    }

    /// Every sequence number once, in order, packed in full slots; then END `endRepeats`
    /// times, 1 ms apart, after the last data, each with the stream's totals; every
    /// slot back before the run returns.
    func testCountLimitThenRepeatedEndWithTotals() throws {
        let engine = FakeEngine(slots: 4, segments: 8, datagramSize: size)
        engine.holdCalls = 1
        let (reason, stats, _) = try run(engine, writer: writer(count: 100), configuration: configuration(count: 100))
        XCTAssertEqual(reason, .limit)
        let data = engine.sent.filter { !$0.isEnd }
        XCTAssertEqual(data.map(\.sequence), Array(0..<100))
        let ends = engine.sent.enumerated().filter { $0.element.isEnd }
        XCTAssertEqual(ends.count, 3)
        XCTAssertEqual(ends.first!.offset, 100, "END goes after the last data datagram")
        for end in ends { XCTAssertEqual(end.element.totals, EndOfStream(datagrams: 100, bytes: 100 * UInt64(size - DatagramHeader.size))) }
        for (a, b) in zip(ends.dropFirst(), ends) {
            XCTAssertGreaterThanOrEqual(engine.sendTimes[a.offset] - engine.sendTimes[b.offset], 900_000, "ENDs 1 ms apart")
        }
        XCTAssertEqual(stats.datagrams, 100)
        XCTAssertEqual(stats.endsSent, 3)
        XCTAssertEqual(stats.sends, 13 + 3, "13 slots of up to 8 datagrams, 3 ENDs")
        XCTAssertEqual(engine.inFlight, 0, "drained")
    }

    /// An unbounded stream stops at the duration, and its END says how far it got.
    func testDurationLimit() throws {
        let engine = FakeEngine(slots: 4, segments: 4, datagramSize: size)
        let (reason, stats, elapsed) = try run(engine, writer: writer(duration: 30_000_000), configuration: configuration(duration: 30_000_000),
                                               rate: .packetsPerSecond(20_000), endRepeats: 1)
        XCTAssertEqual(reason, .limit)
        XCTAssertGreaterThanOrEqual(elapsed, 30_000_000)
        XCTAssertLessThan(elapsed, 1_000_000_000)
        let end = try XCTUnwrap(engine.sent.last)
        XCTAssertTrue(end.isEnd)
        XCTAssertEqual(end.totals?.datagrams, stats.datagrams)
    }

    /// 200 datagrams at 4000/s take about 50 ms (less the pacer's 2 ms burst allowance):
    /// the driver sleeps instead of sending ahead of schedule.
    func testPacingSpacesTheStream() throws {
        let engine = FakeEngine(slots: 8, segments: 1, datagramSize: size)
        let (_, stats, elapsed) = try run(engine, writer: writer(count: 200), configuration: configuration(count: 200),
                                          rate: .packetsPerSecond(4000), endRepeats: 1)
        XCTAssertEqual(stats.datagrams, 200)
        XCTAssertGreaterThanOrEqual(elapsed, 45_000_000)
        let data = engine.sendTimes.prefix(200)
        // The first and second half of the stream are ~25 ms apart, not sent in one burst.
        XCTAssertGreaterThanOrEqual(data[150] - data[50], 20_000_000)
    }

    /// A kernel that never hands slots back: the drain gives up with a typed error
    /// that says how many slots were owed.
    func testDrainTimeoutIsATypedError() throws {
        let engine = FakeEngine(slots: 4, segments: 2, datagramSize: size)
        engine.neverComplete = true
        XCTAssertThrowsError(try run(engine, writer: writer(count: 4), configuration: configuration(count: 4),
                                     endRepeats: 1, drainTimeout: 50_000_000)) { error in
            guard case .drainTimeout(let owed, let seconds) = error as? SendEngineError else { return XCTFail("\(error)") }
            XCTAssertEqual(owed, 3, "two data slots and the END")
            XCTAssertEqual(seconds, 0.05)
        }
    }

    /// A failing system call in the engine ends the run with that error.
    func testEngineErrorsPropagate() throws {
        let engine = FakeEngine(slots: 2, segments: 1, datagramSize: size)
        let failure = SendEngineError.system(SystemError(call: "io_uring_enter", errno: EBADF))
        engine.failAtServiceCall = (3, failure)
        XCTAssertThrowsError(try run(engine, writer: writer(count: 1000), configuration: configuration(count: 1000))) {
            XCTAssertEqual($0 as? SendEngineError, failure)
        }
    }

    /// `--on-error stop`: the first refused send stops production; END still goes.
    func testStopOnErrorPolicy() throws {
        let engine = FakeEngine(slots: 2, segments: 1, datagramSize: size)
        engine.refuseWith = ECONNREFUSED
        let (reason, stats, _) = try run(engine, writer: writer(count: 1000), configuration: configuration(count: 1000, onError: .stop))
        XCTAssertEqual(reason, .error)
        XCTAssertLessThan(stats.datagramsFailed, 1000)
        XCTAssertEqual(stats.errors[ECONNREFUSED], stats.datagramsFailed)
        XCTAssertEqual(stats.endsSent, 3)
        XCTAssertTrue(engine.sent.last!.isEnd)
    }

    /// A reorder and a duplicate with one datagram per slot: the pair is written aside
    /// and each datagram goes in a slot of its own — none is lost, the stream goes on.
    func testPairFaultsWithSingleDatagramSlots() throws {
        var faults = FaultInjection()
        faults.reorder = 1
        faults.duplicate = 1
        let engine = FakeEngine(slots: 3, segments: 1, datagramSize: size)
        let w = writer(count: 3000, faults: faults)
        var driver = StreamDriver(engine: engine, writer: w, rate: nil, endRepeats: 1)
        var ticker = ProgressTicker(intervalNanoseconds: 0, start: driver.start) { _ in }
        let setup = try configuration(count: 3000)
        _ = try driver.run(source: nil, limits: ProductionLimits(setup.configuration, limit: setup.limit, start: driver.start),
                           flushIntervalNanoseconds: 5_000_000, ticker: &ticker)
        try driver.finish()
        XCTAssertEqual(driver.writer.injected.reordered, 1)
        XCTAssertEqual(driver.writer.injected.duplicated, 1)
        let data = engine.sent.filter { !$0.isEnd }.map(\.sequence)
        XCTAssertEqual(data.count, 3001, "every sequence number once, one twice")
        XCTAssertEqual(Set(data), Set(0..<3000))
        let swapped = zip(data, data.dropFirst()).filter { $0.0 == $0.1 + 1 }
        XCTAssertEqual(swapped.count, 1, "exactly one pair sent swapped")
        XCTAssertEqual(driver.stats.datagrams, 3001)
    }

    /// An engine that halts (a rejected packet ring) stops production with reason
    /// `error`, and an END it lost is sent again.
    func testHaltedEngineStopsAndLostEndGoesAgain() throws {
        let engine = FakeEngine(slots: 4, segments: 1, datagramSize: size)
        engine.haltAfterDataCommits = 10
        let (reason, stats, _) = try run(engine, writer: writer(count: 1000), configuration: configuration(count: 1000), endRepeats: 2)
        XCTAssertEqual(reason, .error)
        XCTAssertEqual(engine.sent.filter { !$0.isEnd }.count, 12, "production stops at the first turn after the halt (4 slots a turn)")
        XCTAssertEqual(stats.endsSent, 2, "the lost END went again: two arrived")
    }

    /// Push: datagrams pack into full slots, a short one closes its slot at once, and
    /// finish() sends END and drains.
    func testPushPacksSlotsAndFinishes() throws {
        let engine = FakeEngine(slots: 2, segments: 4, datagramSize: size)
        engine.holdCalls = 1
        var driver = StreamDriver(engine: engine, writer: writer(patternPayload: false), rate: nil, endRepeats: 2)
        let full = driver.maxPayload
        for i in 0..<10 {
            let p = try XCTUnwrap(driver.lendDatagram(wait: true))
            memset(p + DatagramHeader.size, Int32(i), full)
            try driver.sealPushed(payload: i == 5 ? 10 : full)
        }
        try driver.finish()
        XCTAssertEqual(engine.sent.filter { !$0.isEnd }.map(\.payload), [full, full, full, full, full, 10, full, full, full, full])
        XCTAssertEqual(engine.sent.filter(\.isEnd).count, 2)
        XCTAssertEqual(driver.stats.sends, 3 + 2, "slots of 4, 2 (the short one closes its slot) and 4, then 2 ENDs")
        XCTAssertEqual(driver.stats.datagrams, 10)
        XCTAssertEqual(engine.inFlight, 0)
    }

    /// Push without waiting: when every slot is held, lendDatagram says so (nil)
    /// instead of blocking.
    func testPushWithoutWaitingReportsFullPool() throws {
        let engine = FakeEngine(slots: 1, segments: 1, datagramSize: size)
        engine.neverComplete = true
        var driver = StreamDriver(engine: engine, writer: writer(patternPayload: false), rate: nil, endRepeats: 1,
                                  drainTimeoutNanoseconds: 10_000_000)
        XCTAssertNotNil(try driver.lendDatagram(wait: false))
        try driver.sealPushed(payload: driver.maxPayload)
        XCTAssertNil(try driver.lendDatagram(wait: false))
        XCTAssertThrowsError(try driver.drain())
    }
}
