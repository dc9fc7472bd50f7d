import Receiver
import XCTest

final class SequenceTrackerTests: XCTestCase {
    private func track(_ seqs: [UInt64], window: Int = SequenceTracker.defaultWindow) -> SequenceTracker {
        var t = SequenceTracker(window: window)
        for s in seqs { t.record(s) }
        return t
    }

    func testInOrder() {
        let t = track(Array(0..<1000))
        XCTAssertEqual(t.unique, 1000)
        XCTAssertEqual(t.duplicates, 0)
        XCTAssertEqual(t.reordered, 0)
        let f = t.finish(expected: 1000)
        XCTAssertEqual(f.lost, 0)
        XCTAssertEqual(f.ranges, [])
    }

    func testGapsBecomeRanges() {
        let t = track([0, 1, 2, 5, 6, 9])
        let f = t.finish(expected: 12)
        XCTAssertEqual(f.lost, 6) // 3,4,7,8,10,11
        XCTAssertEqual(f.ranges, [3...4, 7...8, 10...11])
        XCTAssertEqual(f.rangeCount, 3)
    }

    func testLateStartCountsLeadingLoss() {
        let t = track([5, 6, 7])
        XCTAssertEqual(t.finish(expected: 8).lost, 5)
        XCTAssertEqual(t.finish(expected: 8).ranges, [0...4])
    }

    func testReorderWithinWindow() {
        var t = SequenceTracker()
        XCTAssertEqual(t.record(0), .inOrder)
        XCTAssertEqual(t.record(2), .gapAhead)
        XCTAssertEqual(t.record(1), .reordered)
        XCTAssertEqual(t.record(3), .inOrder)
        XCTAssertEqual(t.record(10), .gapAhead)
        XCTAssertEqual(t.record(4), .reordered)
        XCTAssertEqual(t.reordered, 2)
        XCTAssertEqual(t.maxReorderDistance, 6)
        XCTAssertEqual(t.finish(expected: 11).lost, 5) // 5...9
    }

    func testDuplicates() {
        var t = SequenceTracker()
        t.record(0); t.record(1)
        XCTAssertEqual(t.record(1), .duplicate)
        XCTAssertEqual(t.record(0), .duplicate)
        t.record(2)
        XCTAssertEqual(t.duplicates, 2)
        XCTAssertEqual(t.unique, 3)
        XCTAssertEqual(t.finish(expected: 3).lost, 0)
    }

    func testBeyondWindowIsLateAndLost() {
        var t = SequenceTracker(window: 64)
        t.record(0)
        t.record(100) // 1...99 missing; 1...36 pushed out of the 64-wide window
        XCTAssertEqual(t.lostFinal, 36)
        XCTAssertEqual(t.record(10), .late)
        XCTAssertEqual(t.record(50), .reordered)
        XCTAssertEqual(t.late, 1)
        let f = t.finish(expected: 101)
        XCTAssertEqual(f.lost, 101 - 3)
        XCTAssertEqual(f.ranges, [1...49, 51...99])
    }

    func testWindowWrapsManyTimes() {
        // Every 7th lost over ten windows: the bitmap is reused correctly.
        var t = SequenceTracker(window: 128)
        var expectedLost: UInt64 = 0
        for s in UInt64(0)..<1280 {
            if s % 7 == 3 { expectedLost += 1; continue }
            t.record(s)
        }
        let f = t.finish(expected: 1280)
        XCTAssertEqual(f.lost, expectedLost)
        XCTAssertEqual(f.rangeCount, expectedLost)
        XCTAssertEqual(f.ranges.count, SequenceTracker.maxRanges)
        XCTAssertEqual(f.ranges.first, 3...3)
    }

    func testHugeJumpIsBoundedAndExact() {
        var t = SequenceTracker()
        t.record(0); t.record(1)
        let jump: UInt64 = 1 << 40
        let start = Date()
        XCTAssertEqual(t.record(jump), .gapAhead)
        XCTAssertLessThan(Date().timeIntervalSince(start), 0.5, "a jump must not cost per skipped number")
        t.record(jump + 1)
        let f = t.finish(expected: jump + 2)
        XCTAssertEqual(f.lost, jump - 2)
        XCTAssertEqual(f.ranges, [2...(jump - 1)])
        XCTAssertEqual(t.unique, 4)
    }

    func testAlternatingJumpsStayBounded() {
        // A hostile pattern: far ahead, then stale numbers. Memory is fixed; time per record bounded.
        var t = SequenceTracker(window: 1024)
        var s: UInt64 = 0
        for i in 0..<2000 {
            s &+= UInt64(5000 + i)
            t.record(s)
            t.record(s &- 3000)
        }
        XCTAssertEqual(t.late, 2000)
        XCTAssertEqual(t.unique, 2000)
    }

    func testEndBeforeLastData() {
        // END announces 10 while 8 and 9 are still on the way.
        var t = SequenceTracker()
        for s in UInt64(0)..<8 { t.record(s) }
        XCTAssertEqual(t.finish(expected: 10).lost, 2)
        t.record(9); t.record(8)
        XCTAssertEqual(t.finish(expected: 10).lost, 0)
        XCTAssertEqual(t.reordered, 1)
    }

    func testNothingArrived() {
        let t = SequenceTracker()
        let f = t.finish(expected: 5)
        XCTAssertEqual(f.lost, 5)
        XCTAssertEqual(f.ranges, [0...4])
    }

    // MARK: merge (two threads saw parts of one stream)

    func testMergeOfDisjointHalvesIsExact() {
        // Even numbers on one thread, odd on the other, 9 missing.
        var a = SequenceTracker(), b = SequenceTracker()
        for s in UInt64(0)..<20 where s != 9 { if s % 2 == 0 { a.record(s) } else { b.record(s) } }
        a.merge(b)
        XCTAssertEqual(a.unique, 19)
        XCTAssertEqual(a.duplicates, 0)
        XCTAssertEqual(a.late, 0)
        XCTAssertEqual(a.mergeUnresolved, 0)
        let f = a.finish(expected: 20)
        XCTAssertEqual(f.lost, 1)
        XCTAssertEqual(f.ranges, [9...9])
    }

    func testMergeFindsCrossThreadDuplicates() {
        var a = SequenceTracker(), b = SequenceTracker()
        for s in UInt64(0)..<10 { a.record(s) }
        for s in UInt64(5)..<12 { b.record(s) }
        a.merge(b)
        XCTAssertEqual(a.unique, 12)
        XCTAssertEqual(a.duplicates, 5)  // 5...9 arrived on both
        XCTAssertEqual(a.unique + a.duplicates + a.late, 17, "every arrival is accounted once")
        XCTAssertEqual(a.finish(expected: 12).lost, 0)
    }

    func testMergeIsConservativeBeyondTheWindow() {
        // The smaller side saw numbers that later left its window: they cannot be
        // placed, so they count late (received, not unique) and their numbers stay lost.
        var a = SequenceTracker(window: 64), b = SequenceTracker(window: 64)
        for s in UInt64(0)..<300 where s % 10 != 3 { a.record(s) }   // 270 unique, misses 3, 13, ...
        for s in [UInt64(3), 13, 295] { b.record(s) }                // 3 and 13 left b's window (top 295)
        a.merge(b)
        XCTAssertEqual(a.mergeUnresolved, 2)
        XCTAssertEqual(a.late, 2)
        XCTAssertEqual(a.duplicates, 1) // 295
        let f = a.finish(expected: 300)
        XCTAssertEqual(f.lost, 30, "never less loss than the truth (28): 3 and 13 stay lost")
        XCTAssertEqual(a.unique + a.duplicates + a.late, 273)
    }

    func testMergeIntoEmptyAndFromEmpty() {
        var a = SequenceTracker(), b = SequenceTracker()
        for s in UInt64(0)..<5 { b.record(s) }
        a.merge(b)
        XCTAssertEqual(a.unique, 5)
        a.merge(SequenceTracker())
        XCTAssertEqual(a.unique, 5)
        XCTAssertEqual(a.finish(expected: 5).lost, 0)
    }
}
