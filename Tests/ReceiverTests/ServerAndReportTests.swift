import Receiver
#if canImport(Glibc)
import Glibc
#endif
import StreamProtocol
import TestSupport
import XCTest

/// Server-side pieces of issue 13: retiring finished streams, the REPORT a stream makes,
/// the per-source rate limit and the allow list.
final class ServerAndReportTests: XCTestCase {
    private func datagram(stream: UInt64, seq: UInt64) -> [UInt8] {
        TestDatagrams.data(stream: stream, seq: seq, timestamp: 1_000 + seq * 1_000)
    }

    private func end(stream: UInt64, datagrams: UInt64, bytes: UInt64) -> [UInt8] {
        TestDatagrams.end(stream: stream, datagrams: datagrams, bytes: bytes)
    }

    private func feed(_ core: inout ValidatingCore, _ bytes: [UInt8], source: SourceAddress, now: UInt64 = 1) {
        bytes.withUnsafeBytes { _ = core.processBuffer($0.baseAddress!, length: $0.count, segment: 0, now: now, wallNow: 2, source: source) }
    }

    private func v4(_ a: UInt32, port: UInt16 = 5000) -> SourceAddress {
        SourceAddress(high: 0, low: 0xFFFF_0000_0000 | UInt64(a), port: port, family: UInt16(AF_INET))
    }

    func testRetiredStreamsAreFreedAndTheirLateCopiesOpenNoGhost() {
        var core = ValidatingCore()
        let src = v4(0xC612_5001)
        for q in UInt64(0)..<10 where q != 4 { feed(&core, datagram(stream: 1, seq: q), source: src) }
        feed(&core, end(stream: 1, datagrams: 10, bytes: 1000), source: src, now: 5)
        feed(&core, datagram(stream: 2, seq: 0), source: src)
        let gone = core.retireStreams { $0.endSeen }
        XCTAssertEqual(gone.map(\.streamID), [1])
        XCTAssertEqual(core.streams.map(\.streamID), [2])
        XCTAssertEqual(core.streamsEnded, 0)
        XCTAssertEqual(core.streamsRetired, 1)
        // The END's repeat after retirement: counted apart, no new stream.
        feed(&core, end(stream: 1, datagrams: 10, bytes: 1000), source: src, now: 6)
        XCTAssertEqual(core.streams.count, 1)
        XCTAssertEqual(core.statistics.retiredStreamDatagrams, 1)
        // The live stream still accounts (its index moved).
        feed(&core, datagram(stream: 2, seq: 1), source: src)
        XCTAssertEqual(core.streams[0].tracker.unique, 2)

        let report = gone[0].streamReport(kernelDrops: 3, pass: false, wallNow: 9)
        XCTAssertEqual(report.lost, 1)
        XCTAssertEqual(report.lostRanges, [4...4])
        XCTAssertEqual(report.unique, 9)
        XCTAssertEqual(report.kernelDrops, 3)
        XCTAssertEqual(report.gaps, 1)
        XCTAssertEqual(report.longestGapDatagrams, 1)
        XCTAssertEqual(report.longestGapNanoseconds, 2_000) // send times 4000 -> 6000 across the gap
        XCTAssertEqual(report.firstToLastNanoseconds, 9_000)
        XCTAssertTrue(report.endSeen)
        XCTAssertFalse(report.complete)
        // What the stream delivered: 9 x 148 bytes of DATA and one 64-byte END.
        XCTAssertEqual(gone[0].deliveredBytes, 9 * 148 + 64)
        guard case .success(let back) = StreamReport.decode(report.encoded()!) else { return XCTFail("REPORT does not decode") }
        XCTAssertEqual(back, report)
    }

    func testRetiredMemoryIsBounded() {
        var core = ValidatingCore()
        let src = v4(0xC612_5001)
        for id in UInt64(1)...UInt64(ValidatingCore.retiredMemory + 10) {
            feed(&core, datagram(stream: id, seq: 0), source: src)
            _ = core.retireStreams { _ in true }
        }
        XCTAssertEqual(core.streams.count, 0)
        // The oldest keys were forgotten: stream 1 may come again; the newest may not.
        feed(&core, datagram(stream: 1, seq: 1), source: src)
        XCTAssertEqual(core.streams.count, 1)
        feed(&core, datagram(stream: UInt64(ValidatingCore.retiredMemory + 10), seq: 1), source: src)
        XCTAssertEqual(core.streams.count, 1)
    }

    func testRateLimiterBurstRefillAndBoundedTable() {
        var limiter = ReportRateLimiter(perSecond: 2, burst: 3, capacity: 2)
        let a = v4(0x0A00_0001, port: 1), a2 = v4(0x0A00_0001, port: 2), b = v4(0x0A00_0002), c = v4(0x0A00_0003)
        // One budget per host, whatever the port.
        XCTAssertTrue(limiter.allow(a, now: 0))
        XCTAssertTrue(limiter.allow(a2, now: 0))
        XCTAssertTrue(limiter.allow(a, now: 0))
        XCTAssertFalse(limiter.allow(a2, now: 0))
        // Half a second at 2/s: one more.
        XCTAssertTrue(limiter.allow(a, now: 500_000_000))
        XCTAssertFalse(limiter.allow(a, now: 500_000_000))
        XCTAssertTrue(limiter.allow(b, now: 500_000_000))
        // The table is full (a, b) and neither has refilled: a new host gets nothing.
        XCTAssertFalse(limiter.allow(c, now: 600_000_000))
        XCTAssertEqual(limiter.tracked, 2)
        // Ten seconds later both have refilled and are forgotten: c gets its REPORT.
        XCTAssertTrue(limiter.allow(c, now: 10_600_000_000))
    }

    func testAllowListMatchesIPv4AndIPv6Prefixes() throws {
        let list = try AllowList.parse(["198.18.80.0/24", "10.0.0.7", "2001:db8:1::/48", "[::1]"]).get()
        XCTAssertTrue(list.allows(v4(0xC612_5001)))             // 198.18.80.1
        XCTAssertTrue(list.allows(v4(0xC612_50FE, port: 9)))    // 198.18.80.254
        XCTAssertFalse(list.allows(v4(0xC612_5101)))            // 198.18.81.1
        XCTAssertTrue(list.allows(v4(0x0A00_0007)))
        XCTAssertFalse(list.allows(v4(0x0A00_0008)))
        // An IPv4-mapped source on a dual-stack socket matches the IPv4 rule.
        XCTAssertTrue(list.allows(SourceAddress(high: 0, low: 0xFFFF_C612_5002, port: 1, family: UInt16(AF_INET6))))
        XCTAssertTrue(list.allows(SourceAddress(high: 0x2001_0DB8_0001_FFFF, low: 5, port: 1, family: UInt16(AF_INET6))))
        XCTAssertFalse(list.allows(SourceAddress(high: 0x2001_0DB8_0002_0000, low: 5, port: 1, family: UInt16(AF_INET6))))
        XCTAssertTrue(list.allows(SourceAddress(high: 0, low: 1, port: 1, family: UInt16(AF_INET6))))
        XCTAssertFalse(list.allows(SourceAddress(high: 0, low: 2, port: 1, family: UInt16(AF_INET6))))
        let everything = try AllowList.parse(["0.0.0.0/0"]).get()
        XCTAssertTrue(everything.allows(v4(0x0102_0304)))
        XCTAssertFalse(everything.allows(SourceAddress(high: 0x2001_0DB8_0000_0000, low: 1, port: 1, family: UInt16(AF_INET6))))
        for bad in ["198.18.0.0/33", "::/129", "nonsense/8", "/24", "1.2.3.4/x"] {
            XCTAssertThrowsError(try AllowList.parse([bad]).get(), bad)
        }
    }

    func testSourcesOutsideTheAllowListNeverReachAStream() throws {
        var core = ValidatingCore()
        core.allowList = try AllowList.parse(["198.18.80.0/24"]).get()
        let inside = v4(0xC612_5001), outside = v4(0xC612_5101)
        feed(&core, datagram(stream: 1, seq: 0), source: outside)
        feed(&core, end(stream: 1, datagrams: 1, bytes: 100), source: outside)
        feed(&core, [1, 2, 3], source: outside) // not even looked at: not invalid
        XCTAssertEqual(core.streams.count, 0)
        XCTAssertEqual(core.statistics.invalidTotal, 0)
        XCTAssertEqual(core.statistics.datagramsSeen, 0)
        XCTAssertEqual(core.refusedSources.total, 3)
        XCTAssertEqual(core.refusedSources.byHost.count, 1)
        feed(&core, datagram(stream: 1, seq: 0), source: inside)
        XCTAssertEqual(core.streams.count, 1)
        // The per-host table is bounded.
        for host in UInt32(0)..<UInt32(RefusedSources.capacity + 20) { feed(&core, [0], source: v4(0x0B00_0000 + host)) }
        XCTAssertEqual(core.refusedSources.byHost.count, RefusedSources.capacity)
        XCTAssertEqual(core.refusedSources.untracked, 21)
        XCTAssertEqual(core.refusedSources.total, 3 + UInt64(RefusedSources.capacity + 20))
    }
}
