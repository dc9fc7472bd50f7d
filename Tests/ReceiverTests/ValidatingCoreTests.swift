import Receiver
#if canImport(Glibc)
import Glibc
#endif
import StreamProtocol
import TestSupport
import XCTest

final class ValidatingCoreTests: XCTestCase {
    /// A sealed PATTERN datagram for (stream, seq) with `payload` bytes.
    private func datagram(stream: UInt64, seq: UInt64, payload: Int = 100) -> [UInt8] {
        TestDatagrams.data(stream: stream, seq: seq, payload: payload)
    }

    private func end(stream: UInt64, datagrams: UInt64, bytes: UInt64) -> [UInt8] {
        TestDatagrams.end(stream: stream, datagrams: datagrams, bytes: bytes)
    }

    private func feed(_ core: inout ValidatingCore, _ bytes: [UInt8], source: SourceAddress = .unknown, wallNow: UInt64 = 2) {
        bytes.withUnsafeBytes { core.process($0.baseAddress!, length: $0.count, now: 1, wallNow: wallNow, source: source) }
    }

    private func source(_ port: UInt16) -> SourceAddress {
        SourceAddress(high: 0, low: 0xFFFF_7F00_0001, port: port, family: 2 /* AF_INET */)
    }

    func testTwoStreamsAccountedSeparately() {
        var core = ValidatingCore()
        for s in UInt64(0)..<10 { feed(&core, datagram(stream: 7, seq: s)) }
        for s in UInt64(0)..<5 where s != 2 { feed(&core, datagram(stream: 9, seq: s)) }
        feed(&core, end(stream: 7, datagrams: 10, bytes: 1000))
        feed(&core, end(stream: 9, datagrams: 5, bytes: 500))
        XCTAssertEqual(core.streams.count, 2)
        XCTAssertEqual(core.streamsEnded, 2)
        let a = core.streams.first { $0.streamID == 7 }!
        let b = core.streams.first { $0.streamID == 9 }!
        XCTAssertTrue(a.isComplete)
        XCTAssertFalse(b.isComplete)
        XCTAssertEqual(a.summary().lost, 0)
        XCTAssertEqual(b.summary().lost, 1)
        XCTAssertEqual(b.summary().lostRanges, [2...2])
        XCTAssertFalse(core.allComplete(streams: 2))
    }

    func testConflictingDuplicateIsCountedApartAndFailsTheVerdict() {
        var core = ValidatingCore()
        for q in UInt64(0)..<10 { feed(&core, datagram(stream: 7, seq: q)) }
        // The same bytes again: a plain duplicate (what a network or a retransmission makes).
        feed(&core, datagram(stream: 7, seq: 3))
        // Other bytes (a zero-length forgery, another timestamp) under numbers already seen.
        feed(&core, TestDatagrams.data(stream: 7, seq: 4, payload: 0, offset: 400))
        feed(&core, TestDatagrams.data(stream: 7, seq: 5, timestamp: 99))
        // Reordered from far back must not overwrite a newer number's first copy.
        for q in UInt64(10)..<5000 { feed(&core, datagram(stream: 7, seq: q + 100)) }
        feed(&core, datagram(stream: 7, seq: 104))   // new, 4995 below the highest: slot 104 is 4200's
        feed(&core, datagram(stream: 7, seq: 4200))  // the same bytes as its first copy
        let s = core.streams[0]
        XCTAssertEqual(s.tracker.duplicates, 4)
        XCTAssertEqual(s.conflictingDuplicates, 2)
        XCTAssertFalse(StreamVerdictLimits().failures(s).isEmpty)
        XCTAssertTrue(StreamVerdictLimits().failures(s).contains { $0.contains("conflicting") })
    }

    /// SPEC §9.8: a late END after a sender ran far past its total, with the loss ranges it
    /// would need evicted: inexact, but nothing false — the 5 numbers below the total that
    /// arrived stay unique, lost is at most the total, ranges never outnumber lost numbers.
    func testInexactTakeBackReportsBoundsNotNonsense() {
        var core = ValidatingCore()
        for q in stride(from: UInt64(0), to: 10, by: 2) { feed(&core, datagram(stream: 7, seq: q)) }
        for k in UInt64(0)..<300 { feed(&core, datagram(stream: 7, seq: 100 + 2 * k)) }
        feed(&core, datagram(stream: 7, seq: 200_000))
        feed(&core, end(stream: 7, datagrams: 10, bytes: 1000))
        let s = core.streams[0]
        let summary = s.summary()
        XCTAssertFalse(s.exact)
        XCTAssertEqual(s.tracker.unique, 5, "0, 2, 4, 6, 8 arrived below the total")
        XCTAssertLessThanOrEqual(summary.lost, 10)
        XCTAssertGreaterThanOrEqual(summary.lost, 5)
        XCTAssertLessThanOrEqual(summary.lostRangeCount, summary.lost)
        XCTAssertEqual(s.datagrams, s.tracker.unique + s.tracker.duplicates + s.tracker.late + s.tracker.beyondEnd)
        XCTAssertEqual(summary.lostRanges.prefix(4), [1...1, 3...3, 5...5, 7...7])
    }

    /// SPEC §9.7: a unicast stream whose first datagrams were lost counts them lost; it did
    /// not "join late".
    func testUnicastHeadLossIsLossNotALateJoin() {
        var core = ValidatingCore()
        for q in UInt64(5)..<10 { feed(&core, datagram(stream: 7, seq: q)) }
        feed(&core, end(stream: 7, datagrams: 10, bytes: 1000))
        XCTAssertFalse(core.streams[0].joinedLate)
        XCTAssertEqual(core.streams[0].summary().lost, 5)
        XCTAssertEqual(core.streams[0].streamReport(kernelDrops: 0, pass: true, wallNow: 0).joinedLate, false)
    }

    func testZeroLengthDatagramsDoNotCompleteAStream() {
        var core = ValidatingCore()
        for q in UInt64(0)..<5 { feed(&core, TestDatagrams.data(stream: 7, seq: q, payload: q == 2 ? 0 : 100, offset: q * 100)) }
        feed(&core, end(stream: 7, datagrams: 5, bytes: 500))
        XCTAssertEqual(core.streams[0].summary().lost, 0)
        XCTAssertFalse(core.streams[0].isComplete, "100 bytes never arrived")
        feed(&core, end(stream: 9, datagrams: 0, bytes: 0))
        XCTAssertTrue(core.streams[1].isComplete)
    }

    func testChecksumFailureChargedToKnownStreamOnly() {
        var core = ValidatingCore()
        feed(&core, datagram(stream: 7, seq: 0))
        var bad = datagram(stream: 7, seq: 1)
        bad[bad.count - 1] ^= 0xFF
        feed(&core, bad)
        var foreign = datagram(stream: 1234, seq: 0)
        foreign[60] ^= 1
        feed(&core, foreign)
        XCTAssertEqual(core.streams.count, 1, "a corrupt datagram must not create a stream")
        XCTAssertEqual(core.streams[0].checksumErrors, 1)
        XCTAssertEqual(core.statistics.corruptUnattributed, 1)
    }

    func testPatternMismatchWithValidChecksumIsCorrupt() {
        var core = ValidatingCore()
        var d = datagram(stream: 7, seq: 0)
        d[DatagramHeader.size + 3] ^= 0x10
        for i in 44..<48 { d[i] = 0 }
        d.withUnsafeMutableBytes { Datagram.seal($0.baseAddress!, length: $0.count) } // re-seal: checksum valid again
        feed(&core, d)
        XCTAssertEqual(core.streams.count, 1)
        XCTAssertEqual(core.streams.first?.patternMismatches, 1)
        XCTAssertEqual(core.streams.first?.tracker.unique, 0)
    }

    func testInvalidDatagramsCountedByReason() {
        var core = ValidatingCore()
        feed(&core, [1, 2, 3])
        feed(&core, [UInt8](repeating: 0x41, count: 100))
        var v2 = datagram(stream: 1, seq: 0)
        v2[4] = 2
        feed(&core, v2)
        XCTAssertEqual(core.statistics.invalid[Datagram.Rejection.tooShort.index], 1)
        XCTAssertEqual(core.statistics.invalid[Datagram.Rejection.badMagic.index], 1)
        XCTAssertEqual(core.statistics.invalid[Datagram.Rejection.unsupportedVersion.index], 1)
        XCTAssertEqual(core.statistics.invalidTotal, 3)
        XCTAssertTrue(core.streams.isEmpty)
    }

    func testStreamTableIsBounded() {
        var core = ValidatingCore(maxStreams: 4)
        for id in UInt64(1)...10 { feed(&core, datagram(stream: id, seq: 0)) }
        XCTAssertEqual(core.streams.count, 4)
        XCTAssertEqual(core.statistics.streamsRefusedDatagrams, 6)
    }

    func testHostileOffsetDoesNotTrap() {
        // A PATTERN datagram whose offset runs past 2^64 with a valid checksum.
        var core = ValidatingCore()
        var d = [UInt8](repeating: 0xEE, count: DatagramHeader.size + 40)
        d.withUnsafeMutableBytes {
            Datagram.encode(DatagramHeader(flags: [.data, .pattern], streamID: 5, sequence: 0, offset: UInt64.max - 3,
                                           timestampNanoseconds: 0, payloadLength: 40), at: $0.baseAddress!)
        }
        feed(&core, d)
        XCTAssertEqual(core.streams.first?.patternMismatches, 1)
    }

    func testSameIDFromTwoSourcesIsTwoStreams() {
        var core = ValidatingCore()
        for s in UInt64(0)..<10 { feed(&core, datagram(stream: 7, seq: s), source: source(1000)) }
        for s in UInt64(0)..<4 { feed(&core, datagram(stream: 7, seq: s), source: source(2000)) }
        feed(&core, end(stream: 7, datagrams: 10, bytes: 1000), source: source(1000))
        feed(&core, end(stream: 7, datagrams: 5, bytes: 500), source: source(2000))
        XCTAssertEqual(core.streams.count, 2)
        XCTAssertEqual(core.streams.map(\.source.description), ["127.0.0.1:1000", "127.0.0.1:2000"])
        XCTAssertEqual(core.streams[0].tracker.unique, 10)
        XCTAssertEqual(core.streams[0].duplicatesTotal, 0, "the other sender's copies are not duplicates")
        XCTAssertTrue(core.streams[0].isComplete)
        XCTAssertEqual(core.streams[1].summary().lost, 1)
        XCTAssertEqual(core.streamsEnded, 2)
        XCTAssertEqual(core.streams[0].endMismatches, 0)
    }

    func testSourceAddressParsing() {
        var v4 = sockaddr_in()
        v4.sin_family = sa_family_t(AF_INET)
        v4.sin_port = UInt16(9000).bigEndian
        v4.sin_addr.s_addr = UInt32(0xC612_0001).bigEndian // 198.18.0.1
        let a = withUnsafeBytes(of: &v4) { SourceAddress(sockaddr: $0.baseAddress!, length: $0.count) }
        XCTAssertEqual(a.description, "198.18.0.1:9000")
        var v6 = sockaddr_in6()
        v6.sin6_family = sa_family_t(AF_INET6)
        v6.sin6_port = UInt16(5).bigEndian
        withUnsafeMutableBytes(of: &v6.sin6_addr) { $0[15] = 1 }
        let b = withUnsafeBytes(of: &v6) { SourceAddress(sockaddr: $0.baseAddress!, length: $0.count) }
        XCTAssertEqual(b.description, "[::1]:5")
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(SourceAddress(sockaddr: [UInt8](repeating: 0, count: 16), length: 16), .unknown)
    }

    func testEndCopiesWithOtherTotalsAreReported() {
        var core = ValidatingCore()
        feed(&core, end(stream: 7, datagrams: 10, bytes: 1000))
        feed(&core, end(stream: 7, datagrams: 10, bytes: 1000))
        feed(&core, end(stream: 7, datagrams: 11, bytes: 1100))
        XCTAssertEqual(core.streams[0].endsReceived, 3)
        XCTAssertEqual(core.streams[0].endMismatches, 1)
        XCTAssertEqual(core.streams[0].expected, EndOfStream(datagrams: 10, bytes: 1000), "the first END fixes the totals")
    }

    func testLatencyHistogramPercentiles() {
        var core = ValidatingCore()
        // Timestamp 1 (see `datagram`); arrival wall clock 1 + latency.
        for s in UInt64(0)..<1000 {
            let latency: UInt64 = s < 990 ? 50_000 : 5_000_000   // 50 µs, 1% at 5 ms
            feed(&core, datagram(stream: 7, seq: s), wallNow: 1 + latency)
        }
        let l = try! XCTUnwrap(core.streams[0].latency.summary)
        XCTAssertEqual(l.samples, 1000)
        XCTAssertEqual(l.p50, 50, accuracy: 0.1)
        XCTAssertEqual(l.p99, 50, accuracy: 0.1)
        XCTAssertEqual(l.p999, 5000, accuracy: 5)
        XCTAssertEqual(l.maxMicroseconds, 5000, accuracy: 0.001)
        XCTAssertEqual(core.latency.summary?.samples, 1000)
        // Clock skew: a timestamp in our future is counted, recorded as 0.
        feed(&core, datagram(stream: 8, seq: 0), wallNow: 0)
        XCTAssertEqual(core.streams[1].latency.summary?.negative, 1)
    }

    func testLatencyRunsOfEqualValuesAreCountedExactly() {
        var h = LatencyHistogram()
        for v: Int64 in [5_000, 5_000, 5_000, 7_000, 7_000, 5_000, -3, 90_000_000_000] { h.record(v) }
        XCTAssertEqual(h.count, 8)
        XCTAssertEqual(h.histogram.totalCount, 8, "the pending run is in the histogram handed out")
        XCTAssertEqual(h.histogram.count(within: 4_990...5_010), 4)
        XCTAssertEqual(h.histogram.count(within: 6_990...7_010), 2)
        let s = try! XCTUnwrap(h.summary)
        XCTAssertEqual(s.negative, 1)
        XCTAssertEqual(s.clamped, 1)
        // One rule for every field (SPEC §12.5): above 60 s counts as 60 s, so max >= p99.9 >= p50 >= min.
        XCTAssertEqual(s.maxMicroseconds, 60_000_000, "clamped like the percentiles")
        XCTAssertEqual(s.minMicroseconds, -0.003, accuracy: 1e-9, "a negative sample stays negative in min")
        XCTAssertLessThanOrEqual(s.p999, s.maxMicroseconds)
        XCTAssertGreaterThanOrEqual(s.p50, s.minMicroseconds)
        // Everything above 60 s: min, percentiles and max agree (min used to exceed p50).
        var far = LatencyHistogram()
        for v: Int64 in [70_000_000_000, 80_000_000_000] { far.record(v) }
        let f = try! XCTUnwrap(far.summary)
        XCTAssertEqual(f.minMicroseconds, 60_000_000)
        XCTAssertLessThanOrEqual(f.minMicroseconds, f.p50)
        XCTAssertLessThanOrEqual(f.p50, f.maxMicroseconds)
        // All negative: the percentiles stay within [min, max].
        var skew = LatencyHistogram()
        for v: Int64 in [-2_000, -1_000] { skew.record(v) }
        let k = try! XCTUnwrap(skew.summary)
        XCTAssertLessThanOrEqual(k.p50, k.maxMicroseconds)
        XCTAssertGreaterThanOrEqual(k.p50, k.minMicroseconds)
        var other = LatencyHistogram()
        other.record(5_000)
        h.add(other)
        XCTAssertEqual(h.count, 9)
        XCTAssertEqual(h.histogram.count(within: 4_990...5_010), 5)
    }

    func testMergeCoresSumsAndMergesSameKey() {
        var a = ValidatingCore(), b = ValidatingCore()
        for s in UInt64(0)..<6 { feed(&a, datagram(stream: 7, seq: s), source: source(1)) }
        for s in UInt64(6)..<10 { feed(&b, datagram(stream: 7, seq: s), source: source(1)) }
        feed(&b, end(stream: 7, datagrams: 10, bytes: 1000), source: source(1))
        for s in UInt64(0)..<3 { feed(&b, datagram(stream: 9, seq: s), source: source(2)) }
        feed(&b, [1, 2, 3])
        a.merge(b)
        XCTAssertEqual(a.streams.count, 2)
        XCTAssertEqual(a.streamsEnded, 1)
        let s7 = a.streams[0]
        XCTAssertEqual(s7.datagrams, 10)
        XCTAssertEqual(s7.tracker.unique, 10)
        XCTAssertTrue(s7.isComplete)
        XCTAssertEqual(s7.summary().lost, 0)
        XCTAssertEqual(s7.latency.count, 10)
        XCTAssertEqual(a.streams[1].datagrams, 3)
        XCTAssertEqual(a.statistics.invalidTotal, 1)
        XCTAssertTrue(a.allComplete(streams: 1))
    }
}

extension StreamState {
    var duplicatesTotal: UInt64 { tracker.duplicates }
}
