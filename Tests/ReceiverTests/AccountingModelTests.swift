import Foundation
import Receiver
import StreamProtocol
import TestSupport
import XCTest

/// SPEC §9 as an exact reference model with unbounded memory (a set of every sequence
/// number seen). The receiver keeps a bitmap of the last W numbers instead; these tests
/// make both run the same events and compare every counter. The Python reference
/// (`Protocol/tools/zcstream.py`, `StreamAccount`) is the same model; its results are
/// pinned in `Protocol/vectors/accounting.json`, which `testGoldenAccountingVectors` replays.
struct AccountingModel {
    let window: UInt64
    var seen: [UInt64: UInt64] = [:]          // sequence -> payload length (stream data, intact)
    var highest: UInt64?
    var limit = UInt64.max
    var end: EndOfStream?
    var highestByteEnd: UInt64 = 0
    var c: [String: UInt64] = [
        "received": 0, "duplicates": 0, "reordered": 0, "max_reorder_distance": 0, "late": 0,
        "beyond_end": 0, "beyond_end_payload_bytes": 0, "after_end": 0, "corrupt": 0,
        "ends_received": 0, "end_mismatches": 0,
    ]

    init(window: UInt64 = UInt64(SequenceTracker.defaultWindow)) { self.window = window }

    mutating func data(_ seq: UInt64, offset: UInt64 = 0, length: UInt64 = 0) {
        c["received"]! += 1
        if seq >= limit {
            c["beyond_end"]! += 1
            c["beyond_end_payload_bytes"]! += length
            return
        }
        if end != nil { c["after_end"]! += 1 }
        let (e, o) = offset.addingReportingOverflow(length)
        highestByteEnd = max(highestByteEnd, o ? .max : e)
        if let h = highest, seq < h, h - seq >= window { c["late"]! += 1; return }
        if seen[seq] != nil { c["duplicates"]! += 1; return }
        seen[seq] = length
        if let h = highest, seq < h {
            c["reordered"]! += 1
            c["max_reorder_distance"] = max(c["max_reorder_distance"]!, h - seq)
        }
        highest = max(highest ?? seq, seq)
    }

    mutating func corrupt() { c["corrupt"]! += 1 }

    mutating func endOfStream(_ totals: EndOfStream) {
        c["ends_received"]! += 1
        if let end {
            if end != totals { c["end_mismatches"]! += 1 }
            return
        }
        end = totals
        limit = totals.datagrams
        for (q, length) in seen where q >= totals.datagrams {
            seen[q] = nil
            c["beyond_end"]! += 1
            c["beyond_end_payload_bytes"]! += length
        }
    }

    /// The counters by their JSON names, u64 values as decimal strings (as in accounting.json).
    func report() -> [String: AnyHashable] {
        let total = end?.datagrams ?? highest.map { $0 + 1 } ?? 0
        var ranges: [[String]] = []
        var count: UInt64 = 0
        var start: UInt64 = 0
        for q in seen.keys.sorted() + [total] {
            if q > start {
                count += 1
                if ranges.count < SequenceTracker.maxRanges { ranges.append([String(start), String(q - 1)]) }
            }
            if q == total { break }
            start = q + 1
        }
        var r: [String: AnyHashable] = c.mapValues { String($0) as AnyHashable }
        let unique = UInt64(seen.count)
        r["unique"] = String(unique)
        r["unique_payload_bytes"] = String(seen.values.reduce(0, +))
        r["end_seen"] = end != nil
        r["expected_datagrams"] = String(total)
        r["expected_payload_bytes"] = String(end?.bytes ?? highestByteEnd)
        r["lost"] = String(total - unique)
        r["lost_ranges"] = ranges
        r["lost_range_count"] = String(count)
        // Every sequence number and every byte (SPEC §9.4).
        r["complete"] = end != nil && unique == total && seen.values.reduce(0, +) == end!.bytes
        return r
    }
}

/// The receiver's view of one stream in the model's terms.
func accountingReport(_ s: StreamState, corrupt: UInt64) -> [String: AnyHashable] {
    let f = s.summary()
    return [
        "received": String(s.datagrams), "duplicates": String(s.tracker.duplicates),
        "reordered": String(s.tracker.reordered), "max_reorder_distance": String(s.tracker.maxReorderDistance),
        "late": String(s.tracker.late), "beyond_end": String(s.beyondEnd),
        "beyond_end_payload_bytes": String(s.beyondEndPayloadBytes), "after_end": String(s.afterEnd),
        "corrupt": String(corrupt), "ends_received": String(s.endsReceived), "end_mismatches": String(s.endMismatches),
        "unique": String(s.tracker.unique), "unique_payload_bytes": String(s.uniquePayloadBytes),
        "end_seen": s.endSeen, "expected_datagrams": String(s.expectedDatagrams),
        "expected_payload_bytes": String(s.expectedPayloadBytes), "lost": String(f.lost),
        "lost_ranges": f.lostRanges.map { [String($0.lowerBound), String($0.upperBound)] },
        "lost_range_count": String(f.lostRangeCount), "complete": s.isComplete,
    ]
}

final class AccountingModelTests: XCTestCase {
    static let stream: UInt64 = 0x5EED

    enum Event {
        case data(UInt64, length: UInt64)
        case corrupt(UInt64)
        case end(EndOfStream)
    }

    /// Stream offset for `seq` as the Python scenarios define it (0 where it would pass 2^64).
    static func offset(_ seq: UInt64, _ length: UInt64) -> UInt64 {
        let (o, overflow) = seq.multipliedReportingOverflow(by: 100)
        return overflow || o > UInt64.max - length ? 0 : o
    }

    static func bytes(_ e: Event) -> [UInt8] {
        switch e {
        case .data(let q, let length):
            return dataDatagram(q, length: Int(length))
        case .corrupt(let q):
            var out = dataDatagram(q, length: 100)
            out[20] ^= 0x40 // in the sequence field: the checksum catches it, the header is untrusted
            return out
        case .end(let t):
            var out = [UInt8](repeating: 0, count: DatagramHeader.size + EndOfStream.payloadSize)
            out.withUnsafeMutableBytes { buf in
                t.write(to: buf.baseAddress! + DatagramHeader.size)
                Datagram.encode(DatagramHeader(flags: [.end], streamID: stream, sequence: t.datagrams, offset: t.bytes,
                                               timestampNanoseconds: 1, payloadLength: 16), at: buf.baseAddress!)
            }
            return out
        }
    }

    /// An opaque DATA datagram (no pattern) for `q` with `length` payload bytes, sealed.
    static func dataDatagram(_ q: UInt64, length: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0xA5, count: DatagramHeader.size + length)
        out.withUnsafeMutableBytes { buf in
            Datagram.encode(DatagramHeader(flags: [.data], streamID: stream, sequence: q, offset: offset(q, UInt64(length)),
                                           timestampNanoseconds: 1, payloadLength: UInt32(length)), at: buf.baseAddress!)
        }
        return out
    }

    /// Runs events through a real ValidatingCore and the model; returns both reports.
    static func run(_ events: [Event]) -> (core: [String: AnyHashable]?, model: [String: AnyHashable], exact: Bool) {
        var core = ValidatingCore()
        var model = AccountingModel()
        for e in events {
            let b = bytes(e)
            b.withUnsafeBytes { core.process($0.baseAddress!, length: $0.count, now: 1, wallNow: 2) }
            switch e {
            case .data(let q, let length): model.data(q, offset: offset(q, length), length: length)
            case .corrupt: model.corrupt()
            case .end(let t): model.endOfStream(t)
            }
        }
        guard let s = core.streams.first else { return (nil, model.report(), true) }
        let corrupt = s.corrupt + core.statistics.corruptUnattributed
        return (accountingReport(s, corrupt: corrupt), model.report(), s.exact)
    }

    /// Invariants that hold for every report, whatever the input.
    static func checkInvariants(_ r: [String: AnyHashable], file: StaticString = #filePath, line: UInt = #line) {
        func u(_ k: String) -> UInt64 { UInt64(r[k] as! String)! }
        XCTAssertEqual(u("received"), u("unique") + u("duplicates") + u("late") + u("beyond_end"), "received = unique + duplicates + late + beyond_end", file: file, line: line)
        XCTAssertEqual(u("lost"), u("expected_datagrams") - u("unique"), "lost = expected - unique", file: file, line: line)
        let ranges = r["lost_ranges"] as! [[String]]
        if u("lost_range_count") == UInt64(ranges.count) {
            let sum = ranges.reduce(UInt64(0)) { $0 &+ (UInt64($1[1])! - UInt64($1[0])! &+ 1) }
            XCTAssertEqual(sum, u("lost"), "the lost ranges add up to lost", file: file, line: line)
        }
        XCTAssertEqual(r["complete"] as! Bool, (r["end_seen"] as! Bool) && u("lost") == 0 && u("unique_payload_bytes") == u("expected_payload_bytes"),
                       "complete = END seen, nothing lost, every byte", file: file, line: line)
    }

    func testGoldenAccountingVectors() throws {
        struct Vector: Decodable {
            var name: String
            var window: UInt64
            var events: [[String: StringOrInt]]
            var expected: [String: JSONLeaf]
        }
        enum StringOrInt: Decodable {
            case s(String), i(UInt64)
            init(from d: Decoder) throws {
                let c = try d.singleValueContainer()
                if let v = try? c.decode(UInt64.self) { self = .i(v) } else { self = .s(try c.decode(String.self)) }
            }
            var value: UInt64 { switch self { case .s(let v): return UInt64(v)!; case .i(let v): return v } }
        }
        enum JSONLeaf: Decodable {
            case s(String), b(Bool), ranges([[String]])
            init(from d: Decoder) throws {
                let c = try d.singleValueContainer()
                if let v = try? c.decode(Bool.self) { self = .b(v) } else if let v = try? c.decode(String.self) { self = .s(v) } else { self = .ranges(try c.decode([[String]].self)) }
            }
            var hashable: AnyHashable { switch self { case .s(let v): return v; case .b(let v): return v; case .ranges(let v): return v } }
        }
        let url = Repository.vector("accounting.json")
        let vectors = try JSONDecoder().decode([Vector].self, from: Data(contentsOf: url))
        XCTAssertGreaterThanOrEqual(vectors.count, 15)
        for v in vectors {
            XCTAssertEqual(v.window, UInt64(SequenceTracker.defaultWindow), v.name)
            let events: [Event] = v.events.map { e in
                if let q = e["data"] { return .data(q.value, length: e["length"]!.value) }
                if let q = e["corrupt"] { return .corrupt(q.value) }
                return .end(EndOfStream(datagrams: e["end"]!.value, bytes: e["bytes"]!.value))
            }
            let (core, model, exact) = Self.run(events)
            let expected = v.expected.mapValues(\.hashable)
            XCTAssertEqual(model, expected, "\(v.name): the Swift model agrees with the Python one")
            XCTAssertTrue(exact, v.name)
            guard let core else { XCTFail("\(v.name): no stream"); continue }
            for key in expected.keys.sorted() where core[key] != expected[key] {
                XCTFail("\(v.name): \(key) is \(String(describing: core[key])), the model says \(String(describing: expected[key]))")
            }
            Self.checkInvariants(core)
        }
    }

    /// Random fault mixes through the real core: loss, duplicates, local and far
    /// reordering, corruption, ENDs before/among/after the data (copies, differing
    /// totals), sequence numbers near 2^64. Every counter must equal the model's.
    func testRandomFaultMixesMatchTheModel() {
        var inexact = 0
        for seed in UInt64(1)...1500 {
            var rng = SplitMix64(seed: seed)
            let n = UInt64.random(in: 0...300, using: &rng)
            let length = [0, 1, 100, 1400].randomElement(using: &rng)! as UInt64
            var events: [Event] = []
            let pLoss = Double.random(in: 0...0.3, using: &rng)
            let pDup = Double.random(in: 0...0.2, using: &rng)
            let pCorrupt = Double.random(in: 0...0.1, using: &rng)
            for q in 0..<n {
                if Double.random(in: 0...1, using: &rng) < pCorrupt { events.append(.corrupt(q)) }
                if Double.random(in: 0...1, using: &rng) < pLoss { continue }
                events.append(.data(q, length: length))
                if Double.random(in: 0...1, using: &rng) < pDup { events.append(.data(q, length: length)) }
            }
            // Reordering: local swaps, and now and then one datagram moved far.
            if events.count > 1 {
                for _ in 0..<Int.random(in: 0...events.count, using: &rng) {
                    let i = Int.random(in: 0..<events.count, using: &rng)
                    let j = min(events.count - 1, i + Int.random(in: 1...8, using: &rng))
                    events.swapAt(i, j)
                }
                if Bool.random(using: &rng) { events.swapAt(0, events.count - 1) }
            }
            // Hostile or extreme sequence numbers.
            for _ in 0..<Int.random(in: 0...2, using: &rng) {
                let q = [n + 5, n + 70_000, 1 << 63, UInt64.max, UInt64.max - 1, UInt64.max - 70_000].randomElement(using: &rng)!
                events.insert(.data(q, length: length), at: Int.random(in: 0...events.count, using: &rng))
            }
            // ENDs: none, or 1-3 copies anywhere; the total right, short or long; sometimes two totals.
            if Double.random(in: 0...1, using: &rng) < 0.85 {
                var total = n
                switch Int.random(in: 0..<6, using: &rng) {
                case 0: total = n / 2
                case 1: total = n + 3
                default: break
                }
                let totals = EndOfStream(datagrams: total, bytes: total &* length)
                for copy in 0..<Int.random(in: 1...3, using: &rng) {
                    let t = copy > 0 && Int.random(in: 0..<5, using: &rng) == 0 ? EndOfStream(datagrams: total + 1, bytes: 0) : totals
                    events.insert(.end(t), at: Int.random(in: 0...events.count, using: &rng))
                }
            }
            let (core, model, exact) = Self.run(events)
            guard let core else {
                XCTAssertTrue(events.allSatisfy { if case .corrupt = $0 { return true }; return false }, "seed \(seed): a stream exists")
                continue
            }
            Self.checkInvariants(core)
            guard exact else { inexact += 1; continue }
            for key in model.keys.sorted() where core[key] != model[key] {
                XCTFail("seed \(seed): \(key) is \(String(describing: core[key])), the model says \(String(describing: model[key]))")
            }
        }
        XCTAssertEqual(inexact, 0, "no random mix should need loss ranges the receiver no longer keeps")
    }

    /// The tracker alone with a 64-number window, so numbers leave it all the time: late
    /// arrivals, far jumps, and ENDs whose total lies far below numbers already counted.
    func testSmallWindowTrackerMatchesTheModel() {
        var inexact = 0
        for seed in UInt64(1)...3000 {
            var rng = SplitMix64(seed: seed &* 7919)
            var tracker = SequenceTracker(window: 64)
            var model = AccountingModel(window: 64)
            var limitAt = Int.random(in: 0...400, using: &rng)
            let total = UInt64.random(in: 0...500, using: &rng)
            var next: UInt64 = 0
            for step in 0..<Int.random(in: 1...400, using: &rng) {
                if step == limitAt {
                    tracker.setLimit(total)
                    model.endOfStream(EndOfStream(datagrams: total, bytes: 0))
                    limitAt = -1
                }
                let q: UInt64
                switch Int.random(in: 0..<10, using: &rng) {
                case 0: q = next &+ UInt64.random(in: 2...200, using: &rng)           // a gap ahead
                case 1: q = next > 0 ? UInt64.random(in: 0..<next, using: &rng) : 0  // from anywhere below
                case 2: q = next > 0 ? next - 1 : 0                                   // a duplicate or refill
                default: q = next
                }
                next = max(next, q + 1)
                let outcome = tracker.record(q)
                model.data(q)
                _ = outcome
            }
            if limitAt >= 0 {
                tracker.setLimit(total)
                model.endOfStream(EndOfStream(datagrams: total, bytes: 0))
            }
            guard tracker.exact else { inexact += 1; continue }
            let r = model.report()
            let f = tracker.finish()
            func m(_ k: String) -> UInt64 { UInt64(r[k] as! String)! }
            XCTAssertEqual(tracker.unique, m("unique"), "seed \(seed) unique")
            XCTAssertEqual(tracker.duplicates, m("duplicates"), "seed \(seed) duplicates")
            XCTAssertEqual(tracker.late, m("late"), "seed \(seed) late")
            XCTAssertEqual(tracker.reordered, m("reordered"), "seed \(seed) reordered")
            XCTAssertEqual(tracker.maxReorderDistance, m("max_reorder_distance"), "seed \(seed) max reorder distance")
            XCTAssertEqual(tracker.beyondEnd, m("beyond_end"), "seed \(seed) beyond_end")
            XCTAssertEqual(f.lost, m("lost"), "seed \(seed) lost")
            XCTAssertEqual(f.rangeCount, m("lost_range_count"), "seed \(seed) range count")
            XCTAssertEqual(f.ranges.map { [String($0.lowerBound), String($0.upperBound)] }, r["lost_ranges"] as! [[String]], "seed \(seed) ranges")
        }
        // Only an END whose total lies more than a window below numbers already counted,
        // with more than `recentRangeCapacity` loss ranges in between, can be inexact.
        XCTAssertEqual(inexact, 0, "inexact trackers: \(inexact) of 3000")
    }

    /// Past what the tracker keeps, it says so rather than guessing.
    func testTakingBackMoreThanTheKeptRangesIsFlagged() {
        var t = SequenceTracker(window: 64)
        // Every other number from 0 to 2000: ~1000 loss ranges, then END(10).
        for q in stride(from: UInt64(0), through: 2000, by: 2) { t.record(q) }
        t.setLimit(10)
        XCTAssertFalse(t.exact, "1000 ranges between the total and the window cannot all be kept")
        // With the ranges still at hand it is exact: END(1900) needs ~30.
        var u = SequenceTracker(window: 64)
        for q in stride(from: UInt64(0), through: 2000, by: 2) { u.record(q) }
        u.setLimit(1900)
        XCTAssertTrue(u.exact)
        XCTAssertEqual(u.unique, 950)
        XCTAssertEqual(u.finish().lost, 950)
        XCTAssertEqual(u.beyondEnd, 51)
    }

    // The four cases of issue 10, by name (the vectors hold them too).

    func testLossBeforeEndIsNotHiddenByASequenceBeyondIt() {
        let data = (UInt64(0)..<20).filter { $0 != 3 }.map { Event.data($0, length: 100) }
        for events in [data + [.end(EndOfStream(datagrams: 20, bytes: 2000)), .data(25, length: 100)],
                       data + [.data(25, length: 100), .end(EndOfStream(datagrams: 20, bytes: 2000))]] {
            let (core, model, exact) = Self.run(events)
            XCTAssertTrue(exact)
            XCTAssertEqual(core, model)
            XCTAssertEqual(core?["lost"], "1")
            XCTAssertEqual(core?["lost_ranges"], [["3", "3"]] as [[String]])
            XCTAssertEqual(core?["beyond_end"], "1")
            XCTAssertEqual(core?["complete"], false)
        }
        // A far jump (2^63) before END(10): no loss range past the total.
        let far: [Event] = (UInt64(0)..<10).map { .data($0, length: 100) } + [.data(1 << 63, length: 100), .end(EndOfStream(datagrams: 10, bytes: 1000))]
        let (core, model, _) = Self.run(far)
        XCTAssertEqual(core, model)
        XCTAssertEqual(core?["lost_ranges"], [] as [[String]])
        XCTAssertEqual(core?["complete"], true)
    }

    func testAfterEndCountsStreamDataOvertakenByTheEnd() {
        let events: [Event] = [.end(EndOfStream(datagrams: 20, bytes: 2000))] + (UInt64(0)..<20).map { .data($0, length: 100) }
        let (core, model, _) = Self.run(events)
        XCTAssertEqual(core, model)
        XCTAssertEqual(core?["after_end"], "20")
        XCTAssertEqual(core?["beyond_end"], "0")
        XCTAssertEqual(core?["complete"], true)
    }

    func testStreamsBeyondTheLimitAreNotInvalid() {
        var core = ValidatingCore(maxStreams: 1024)
        for id in UInt64(1)...1030 {
            var d = [UInt8](repeating: 0, count: DatagramHeader.size + 100)
            d.withUnsafeMutableBytes {
                Datagram.encode(DatagramHeader(flags: [.data], streamID: id, sequence: 0, offset: 0, timestampNanoseconds: 1, payloadLength: 100), at: $0.baseAddress!)
            }
            d.withUnsafeBytes { core.process($0.baseAddress!, length: $0.count, now: 1, wallNow: 2) }
        }
        XCTAssertEqual(core.streams.count, 1024)
        XCTAssertEqual(core.statistics.streamsRefusedDatagrams, 6)
        XCTAssertEqual(core.statistics.invalidTotal, 0, "a resource limit is not an invalid datagram")
    }

    func testExpectedWithoutEndIsPerStreamToo() {
        let events: [Event] = (UInt64(0)..<50).filter { !(10...12).contains($0) }.map { .data($0, length: 100) }
        let (core, model, _) = Self.run(events)
        XCTAssertEqual(core, model)
        XCTAssertEqual(core?["expected_datagrams"], "50")
        XCTAssertEqual(core?["expected_payload_bytes"], "5000")
        XCTAssertEqual(core?["end_seen"], false)
        XCTAssertEqual(core?["lost"], "3")
    }
}
