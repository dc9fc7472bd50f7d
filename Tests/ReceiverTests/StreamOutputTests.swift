import Foundation
import Receiver
import StreamProtocol
import TestSupport
import XCTest
import ZCSystem
#if canImport(Glibc)
import Glibc
#endif

final class StreamOutputTests: XCTestCase {
    let stream: UInt64 = 0x1122_3344_5566_7788
    let payload = 1000

    private func datagram(seq: UInt64, payload n: Int? = nil) -> [UInt8] {
        TestDatagrams.data(stream: stream, seq: seq, payload: n ?? payload, offset: seq * UInt64(payload))
    }

    private func end(datagrams: UInt64, bytes: UInt64) -> [UInt8] {
        TestDatagrams.end(stream: stream, datagrams: datagrams, bytes: bytes)
    }

    private func feed(_ core: inout ValidatingCore, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { core.process($0.baseAddress!, length: $0.count, now: 1, wallNow: 2) }
        core.flushOutput()
    }

    private func expectedBytes(_ range: Range<Int>) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: range.count)
        b.withUnsafeMutableBytes { PayloadPattern.fill($0.baseAddress!, count: range.count, streamID: stream, offset: UInt64(range.lowerBound)) }
        return b
    }

    private func temporaryPath(_ name: String) -> String {
        let path = "/tmp/zc-recv-test-\(getpid())-\(name)"
        unlink(path)
        return path
    }

    private func read(_ path: String) -> [UInt8] {
        (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? []
    }

    func testFileOutputReproducesTheStreamWithHoles() throws {
        let path = temporaryPath("file")
        defer { unlink(path) }
        let target = OutputTarget(.file(path), expectedStreams: 1)
        var core = ValidatingCore(output: target)
        // 20 datagrams (the last would be short), out of order, 5 and 19 lost, 3 duplicated.
        let order: [UInt64] = [0, 1, 2, 4, 3, 3, 6, 8, 7, 9, 10, 12, 11, 13, 14, 15, 16, 17, 18]
        for s in order { feed(&core, datagram(seq: s)) }
        feed(&core, end(datagrams: 20, bytes: 19 * 1000 + 500))
        core.finishOutput()
        core.finalizeOutput(target)
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(out.destination, path)
        XCTAssertEqual(out.bytesWritten, 18 * 1000, "each new payload once, the duplicate not again")
        XCTAssertEqual(out.holes.ranges.map { [$0.lower, $0.upper] }, [[5000, 6000], [19_000, 19_500]])
        XCTAssertEqual(out.holes.count, 2)
        XCTAssertEqual(out.holes.bytes, 1500)
        XCTAssertTrue(out.holesComplete)
        let bytes = read(path)
        XCTAssertEqual(bytes.count, 19_500, "the file has the stream's length: a lost tail is a hole")
        var expected = expectedBytes(0..<19_500)
        for i in 5000..<6000 { expected[i] = 0 }
        for i in 19_000..<19_500 { expected[i] = 0 }
        XCTAssertTrue(bytes == expected, "the file is the stream, holes zero")
    }

    func testSeveralStreamsGetTheirIDAppended() throws {
        let path = temporaryPath("multi")
        defer { unlink(path); unlink(path + ".00000000000000ab") }
        let target = OutputTarget(.file(path), expectedStreams: nil)
        var core = ValidatingCore(output: target)
        feed(&core, datagram(seq: 0))
        var other = datagram(seq: 0)
        other.withUnsafeMutableBytes { buf in
            // Same payload bytes under another stream id (no PATTERN flag).
            Datagram.encode(DatagramHeader(flags: [.data], streamID: 0xAB, sequence: 0, offset: 0, timestampNanoseconds: 1,
                                           payloadLength: UInt32(payload)), at: buf.baseAddress!)
        }
        feed(&core, other)
        core.finishOutput()
        core.finalizeOutput(target)
        XCTAssertEqual(core.streams.map { $0.output?.destination }, [path, path + ".00000000000000ab"])
        XCTAssertEqual(read(path), expectedBytes(0..<1000))
        XCTAssertEqual(read(path + ".00000000000000ab"), expectedBytes(0..<1000))
    }

    func testInOrderOutputReordersWithinTheWindow() throws {
        let path = temporaryPath("inorder")
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let target = OutputTarget(.inOrder(fd: fd, windowBytes: 65_536), expectedStreams: 1)
        var core = ValidatingCore(output: target)
        let order: [UInt64] = [0, 2, 1, 5, 4, 3, 6, 9, 8, 7, 7, 10]
        for s in order { feed(&core, datagram(seq: s)) }
        feed(&core, end(datagrams: 11, bytes: 11_000))
        core.finishOutput()
        core.finalizeOutput(target)
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(out.destination, "-")
        XCTAssertEqual(out.holes.count, 0)
        XCTAssertEqual(out.lateDatagrams, 0)
        XCTAssertEqual(out.bytesWritten, 11_000)
        XCTAssertEqual(read(path), expectedBytes(0..<11_000))
    }

    func testInOrderOutputSkipsWhatTheWindowCannotHold() throws {
        let path = temporaryPath("skip")
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let target = OutputTarget(.inOrder(fd: fd, windowBytes: 65_536), expectedStreams: 1)
        var core = ValidatingCore(output: target)
        // 10 arrives last, after 11...99 pushed its place out of the 64 KiB window.
        for s in UInt64(0)..<100 where s != 10 { feed(&core, datagram(seq: s)) }
        feed(&core, datagram(seq: 10))                   // too late for the in-order output
        feed(&core, end(datagrams: 102, bytes: 102_000)) // 100 and 101 never come
        core.finishOutput()
        core.finalizeOutput(target)
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(out.holes.ranges.map { [$0.lower, $0.upper] }, [[10_000, 11_000], [100_000, 102_000]])
        XCTAssertEqual(out.holes.bytes, 3000)
        XCTAssertEqual(out.lateDatagrams, 1)
        XCTAssertEqual(out.lateBytes, 1000)
        XCTAssertEqual(read(path), expectedBytes(0..<10_000) + expectedBytes(11_000..<100_000), "nothing invented: the gap is skipped")
        XCTAssertEqual(core.streams[0].summary().lost, 2, "the sequence accounting is unaffected (10 did arrive)")
    }

    func testByteRanges() {
        var r = ByteRanges(capacity: 4)
        r.insert(0, 10); r.insert(10, 20)            // extends
        XCTAssertEqual(r.spans, [.init(0, 20)])
        r.insert(30, 40); r.insert(50, 60)
        r.insert(20, 30)                             // joins two
        XCTAssertEqual(r.spans, [.init(0, 40), .init(50, 60)])
        r.insert(70, 80); r.insert(90, 100)
        r.insert(110, 120)                           // fifth disjoint: not kept
        XCTAssertTrue(r.overflowed)
        XCTAssertEqual(r.spans.count, 4)
        r.insert(5, 95)                              // swallows the middle
        XCTAssertEqual(r.spans, [.init(0, 100)])
        let g = ByteRanges().gaps(below: 10)
        XCTAssertEqual(g.count, 1); XCTAssertEqual(g.bytes, 10)
        var list = RangeList(limit: 1)
        list.add(0, 5); list.add(5, 7); list.add(9, 10)
        XCTAssertEqual(list.ranges, [.init(0, 7)])
        XCTAssertEqual(list.count, 2)
        XCTAssertEqual(list.bytes, 8)
    }

    // MARK: issue 17: what is not in the file, and durability

    private func spans(_ l: RangeList) -> [[UInt64]] { l.ranges.map { [$0.lower, $0.upper] } }

    private func run(_ target: OutputTarget, _ seqs: [UInt64], end: (datagrams: UInt64, bytes: UInt64)? = nil,
                     endFirst: Bool = false, between: () -> Void = {}) -> ValidatingCore {
        var core = ValidatingCore(output: target)
        if endFirst, let end { feed(&core, self.end(datagrams: end.datagrams, bytes: end.bytes)) }
        for (k, s) in seqs.enumerated() {
            feed(&core, datagram(seq: s))
            if k == seqs.count / 2 { between() }
        }
        if !endFirst, let end { feed(&core, self.end(datagrams: end.datagrams, bytes: end.bytes)) }
        core.finishOutput()
        core.finalizeOutput(target)
        return core
    }

    func testByteRangesRemoveAboveAndSubtract() {
        var r = ByteRanges()
        r.insert(0, 10); r.insert(20, 30); r.insert(40, 50)
        let above = r.removeAll(atOrAbove: 25)
        XCTAssertEqual(r.spans, [.init(0, 10), .init(20, 25)])
        XCTAssertEqual(above.spans, [.init(25, 30), .init(40, 50)])
        XCTAssertTrue(r.removeAll(atOrAbove: 100).isEmpty)
        var a = ByteRanges()
        a.insert(0, 100)
        var b = ByteRanges()
        b.insert(10, 20); b.insert(50, 60); b.insert(90, 200)
        XCTAssertEqual(a.subtracting(b).spans, [.init(0, 10), .init(20, 50), .init(60, 90)])
        XCTAssertEqual(b.subtracting(a).spans, [.init(100, 200)])
        XCTAssertEqual(a.subtracting(ByteRanges()).spans, a.spans)
        let list = RangeList(a.subtracting(b), limit: 2)
        XCTAssertEqual(list.ranges, [.init(0, 10), .init(20, 50)])
        XCTAssertEqual(list.count, 3)
        XCTAssertEqual(list.bytes, 70)
    }

    func testACleanFileIsSyncedAndOK() throws {
        let path = temporaryPath("synced")
        defer { unlink(path) }
        let target = OutputTarget(.file(path), expectedStreams: 1)
        let core = run(target, Array(0..<10), end: (10, 10_000))
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertTrue(out.ok, "\(out.problems)")
        XCTAssertTrue(out.synced)
        XCTAssertGreaterThan(out.lastSyncNanoseconds, 0)
        XCTAssertEqual(out.syncError, 0)
        XCTAssertEqual(out.failedRanges.bytes, 0)
        XCTAssertEqual(out.beyondLimit.bytes, 0)
        XCTAssertEqual(out.maxBytes, ReceiverConfiguration.defaultOutputMaxBytes)
        XCTAssertTrue(target.problems(core.streams).isEmpty)
    }

    func testBytesBeyondMaxBytesAreNotWrittenButReported() throws {
        let path = temporaryPath("max")
        defer { unlink(path) }
        let target = OutputTarget(.file(path), expectedStreams: 1, maxBytes: 5500)
        let core = run(target, Array(0..<10), end: (10, 10_000))
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(spans(out.beyondLimit), [[5500, 10_000]], "the datagram straddling the limit is cut there")
        XCTAssertEqual(out.beyondLimit.bytes, 4500)
        XCTAssertEqual(out.bytesWritten, 5500)
        XCTAssertEqual(out.holes.count, 0, "beyond the limit is not a hole: it arrived")
        XCTAssertEqual(out.failedRanges.count, 0)
        XCTAssertEqual(out.length, 5500, "the END total beyond the limit does not stretch the file")
        XCTAssertFalse(out.ok)
        XCTAssertEqual(read(path), expectedBytes(0..<5500))
        XCTAssertEqual(core.streams[0].tracker.unique, 10, "the sequence accounting is unaffected")
        XCTAssertEqual(core.streams[0].summary().lost, 0)
        XCTAssertEqual(target.problems(core.streams).count, 1)
    }

    func testBytesBeyondTheEndTotalAreNotInTheFile() throws {
        let path = temporaryPath("endtotal")
        defer { unlink(path) }
        // Before END: 0...6 (5 and 6 lie beyond the byte total announced later). After END: 8,
        // a sequence number below the END's datagram total whose bytes lie beyond its byte total.
        let target = OutputTarget(.file(path), expectedStreams: 1)
        var core = ValidatingCore(output: target)
        for s: UInt64 in 0...6 { feed(&core, datagram(seq: s)) }
        feed(&core, end(datagrams: 10, bytes: 4_500))
        feed(&core, datagram(seq: 8))
        core.finishOutput()
        core.finalizeOutput(target)
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(spans(out.beyondLimit), [[4_500, 7_000], [8_000, 9_000]])
        XCTAssertEqual(out.length, 4_500, "the file is cut back to the END total")
        XCTAssertEqual(read(path), expectedBytes(0..<4_500))
        XCTAssertFalse(out.ok)
    }

    func testFailedWritesAreExactRanges() throws {
        // A real EFBIG: RLIMIT_FSIZE on this process for the duration of the run.
        let path = temporaryPath("fsize")
        defer { unlink(path) }
        let previous = signal(SIGXFSZ, SIG_IGN)
        var old = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &old)
        var limit = old
        limit.rlim_cur = 5_500
        XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit), 0)
        let target = OutputTarget(.file(path), expectedStreams: 1)
        // 7 lost: the failed ranges and the hole stay apart.
        let core = run(target, [0, 1, 2, 3, 4, 5, 6, 8, 9], end: (10, 10_000))
        XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &old), 0)
        signal(SIGXFSZ, previous)
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(spans(out.failedRanges), [[5_500, 7_000], [8_000, 10_000]], "partial write to the limit, then EFBIG")
        XCTAssertEqual(out.failedRanges.bytes, 3_500)
        XCTAssertEqual(out.firstWriteError, EFBIG)
        XCTAssertEqual(out.bytesWritten, 5_500)
        XCTAssertEqual(spans(out.holes), [[7_000, 8_000]], "only what never arrived is a hole")
        XCTAssertFalse(out.ok)
        XCTAssertEqual(read(path), expectedBytes(0..<5_500))
        XCTAssertEqual(core.streams[0].tracker.unique, 9, "validation went on")
        XCTAssertEqual(core.streams[0].summary().lost, 1)
        XCTAssertTrue(target.problems(core.streams).first?.contains("3500 bytes in 2 range(s) not written") ?? false,
                      "\(target.problems(core.streams))")
    }

    func testAFileDeletedDuringTheRunIsLost() throws {
        let directory = temporaryPath("dir")
        mkdir(directory, 0o755)
        let path = directory + "/out"
        defer { unlink(path); rmdir(directory) }
        let target = OutputTarget(.file(path), expectedStreams: 1)
        let core = run(target, Array(0..<10), end: (10, 10_000), between: { unlink(path); rmdir(directory) })
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertTrue(out.fileDeleted)
        XCTAssertEqual(spans(out.failedRanges), [[0, 10_000]], "everything written went with the file")
        XCTAssertEqual(out.holes.count, 0)
        XCTAssertFalse(out.synced)
        XCTAssertFalse(out.ok)
    }

    func testAFileThatCannotBeOpenedIsAllFailed() throws {
        let path = temporaryPath("nodir") + "/missing/out"
        let target = OutputTarget(.file(path), expectedStreams: 1)
        let core = run(target, [0, 1, 3], end: (4, 4_000))
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(out.openError, ENOENT)
        XCTAssertEqual(spans(out.failedRanges), [[0, 2_000], [3_000, 4_000]])
        XCTAssertEqual(spans(out.holes), [[2_000, 3_000]])
        XCTAssertFalse(out.ok)
        XCTAssertEqual(target.openErrors.count, 1)
    }

    func testIntervalSyncCountsAndConfigurationChecks() throws {
        let path = temporaryPath("interval")
        defer { unlink(path) }
        let target = OutputTarget(.file(path), expectedStreams: 1)
        var core = ValidatingCore(output: target)
        feed(&core, datagram(seq: 0))
        XCTAssertEqual(target.syncNow(), 1)
        XCTAssertEqual(target.syncNow(), 1)
        core.finishOutput()
        core.finalizeOutput(target)
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(out.intervalSyncs, 2)
        XCTAssertTrue(out.synced)
        var c = ReceiverConfiguration(listen: try SocketAddress.parse("127.0.0.1:0", allowPortZero: true))
        c.outputMaxBytes = 0
        XCTAssertThrowsError(try c.validate())
        c.outputMaxBytes = nil
        c.fsyncIntervalNanoseconds = 0
        XCTAssertThrowsError(try c.validate())
        c.fsyncIntervalNanoseconds = 1_000_000_000
        XCTAssertNoThrow(try c.validate())
    }

    // MARK: runs: contiguous payloads of a stream go out in one call per receive batch

    /// One receive batch: the datagrams sit in one buffer (as the engines' do) that stays
    /// valid until the batch's flush.
    private func feedBatch(_ core: inout ValidatingCore, _ datagrams: [[UInt8]]) {
        let all = datagrams.flatMap { $0 }
        all.withUnsafeBytes { buffer in
            var at = 0
            for d in datagrams {
                core.process(buffer.baseAddress! + at, length: d.count, now: 1, wallNow: 2)
                at += d.count
            }
            core.flushOutput()
        }
    }

    private func runBatch(_ target: OutputTarget, _ seqs: [UInt64], end: (datagrams: UInt64, bytes: UInt64)) -> ValidatingCore {
        var core = ValidatingCore(output: target)
        feedBatch(&core, seqs.map { datagram(seq: $0) })
        feed(&core, self.end(datagrams: end.datagrams, bytes: end.bytes))
        core.finishOutput()
        core.finalizeOutput(target)
        return core
    }

    func testContiguousPayloadsOfABatchAreOneWrite() throws {
        let path = temporaryPath("run")
        defer { unlink(path) }
        let target = OutputTarget(.file(path), expectedStreams: 1)
        let core = runBatch(target, Array(0..<300), end: (300, 300_000))
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(out.writeCalls, 1, "300 contiguous payloads, one pwritev")
        XCTAssertEqual(out.bytesWritten, 300_000)
        XCTAssertTrue(read(path) == expectedBytes(0..<300_000))
        XCTAssertTrue(out.complete)
    }

    func testARunHoldsAtMostIOVMaxPieces() throws {
        let path = temporaryPath("iovmax")
        defer { unlink(path) }
        let target = OutputTarget(.file(path), expectedStreams: 1)
        let core = runBatch(target, Array(0..<2_500), end: (2_500, 2_500_000))
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(out.writeCalls, 3, "1024 + 1024 + 452 pieces")
        XCTAssertTrue(read(path) == expectedBytes(0..<2_500_000))
        XCTAssertTrue(out.complete)
    }

    func testAGapOrAReorderedPayloadEndsARunDuplicatesDoNot() throws {
        let path = temporaryPath("gaps")
        defer { unlink(path) }
        let target = OutputTarget(.file(path), expectedStreams: 1)
        // Runs: [0, 3), [4], [3], [5, 9) (5 and 6 duplicated: not written again, no new run),
        // 9 lost, [10, 12).
        let core = runBatch(target, [0, 1, 2, 4, 3, 5, 5, 6, 6, 7, 8, 10, 11], end: (12, 12_000))
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(out.writeCalls, 5)
        XCTAssertEqual(out.bytesWritten, 11_000, "each new payload once")
        XCTAssertEqual(spans(out.holes), [[9_000, 10_000]])
        var expected = expectedBytes(0..<12_000)
        for i in 9_000..<10_000 { expected[i] = 0 }
        XCTAssertTrue(read(path) == expected, "out-of-order payloads land at their offsets")
    }

    func testRunsAcrossBatchesAreWrittenAtEachBatchEnd() throws {
        let path = temporaryPath("batches")
        defer { unlink(path) }
        let target = OutputTarget(.file(path), expectedStreams: 1)
        var core = ValidatingCore(output: target)
        feedBatch(&core, (0..<10).map { datagram(seq: $0) })
        // The first batch is in the file before the next one arrives (its buffers are reused).
        XCTAssertTrue(read(path) == expectedBytes(0..<10_000))
        feedBatch(&core, (10..<20).map { datagram(seq: $0) })
        feed(&core, end(datagrams: 20, bytes: 20_000))
        core.finishOutput()
        core.finalizeOutput(target)
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(out.writeCalls, 2)
        XCTAssertTrue(read(path) == expectedBytes(0..<20_000))
    }

    func testInterleavedStreamsKeepARunEach() throws {
        let path = temporaryPath("interleaved")
        defer { unlink(path); unlink(path + ".00000000000000aa"); unlink(path + ".00000000000000bb") }
        let target = OutputTarget(.file(path), expectedStreams: 2)
        var core = ValidatingCore(output: target)
        var batch: [[UInt8]] = []
        for s in UInt64(0)..<50 {
            for id: UInt64 in [0xaa, 0xbb] { batch.append(TestDatagrams.data(stream: id, seq: s, payload: payload, offset: s * 1000)) }
        }
        feedBatch(&core, batch)
        core.finishOutput()
        core.finalizeOutput(target)
        XCTAssertEqual(core.streams.count, 2)
        for (k, id) in [UInt64(0xaa), 0xbb].enumerated() {
            let out = try XCTUnwrap(core.streams[k].output)
            XCTAssertEqual(out.writeCalls, 1, "alternating datagrams of two streams: still one pwritev per stream")
            var expected = [UInt8](repeating: 0, count: 50_000)
            expected.withUnsafeMutableBytes { PayloadPattern.fill($0.baseAddress!, count: 50_000, streamID: id, offset: 0) }
            XCTAssertTrue(read(out.destination) == expected)
        }
    }

    func testAShortWriteInARunFailsExactlyTheBytesNotWritten() throws {
        // RLIMIT_FSIZE 5500: the run [0, 7000) is written to 5500 (a short pwritev), the rest
        // of it fails with EFBIG, as does the next run [8000, 10000); 7 never arrived.
        let path = temporaryPath("shortrun")
        defer { unlink(path) }
        let previous = signal(SIGXFSZ, SIG_IGN)
        var old = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &old)
        var limit = old
        limit.rlim_cur = 5_500
        XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit), 0)
        let target = OutputTarget(.file(path), expectedStreams: 1)
        var core = ValidatingCore(output: target)
        feedBatch(&core, [0, 1, 2, 3, 4, 5, 6, 8, 9].map { datagram(seq: $0) })
        XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &old), 0)
        signal(SIGXFSZ, previous)
        feed(&core, end(datagrams: 10, bytes: 10_000))
        core.finishOutput()
        core.finalizeOutput(target)
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertEqual(spans(out.failedRanges), [[5_500, 7_000], [8_000, 10_000]])
        XCTAssertEqual(out.failedRanges.bytes, 3_500)
        XCTAssertEqual(out.firstWriteError, EFBIG)
        XCTAssertEqual(out.bytesWritten, 5_500)
        XCTAssertEqual(out.writeErrors, 2)
        XCTAssertEqual(out.writeCalls, 3, "short write, its retry (EFBIG), the second run (EFBIG)")
        XCTAssertEqual(spans(out.holes), [[7_000, 8_000]])
        // The limit is lifted before the end, so the file is sized to the END total: what
        // failed is zeros, not data.
        XCTAssertTrue(read(path) == expectedBytes(0..<5_500) + [UInt8](repeating: 0, count: 4_500))
        XCTAssertFalse(out.ok)
    }

    func testAFullFilesystemFailsExactlyTheBytesNotWritten() throws {
        guard geteuid() == 0 else { throw XCTSkip("needs root to mount a small tmpfs (uid \(geteuid()))") }
        let directory = temporaryPath("fullfs")
        XCTAssertEqual(mkdir(directory, 0o755), 0)
        defer { rmdir(directory) }
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=64k", "tmpfs", directory]
        try mount.run()
        mount.waitUntilExit()
        guard mount.terminationStatus == 0 else { throw XCTSkip("cannot mount tmpfs at \(directory)") }
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = [directory]
            try? umount.run()
            umount.waitUntilExit()
        }
        let path = directory + "/out"
        let target = OutputTarget(.file(path), expectedStreams: 1)
        // 100 KB in one run into 64 KiB of space: a short pwritev, then ENOSPC.
        let core = runBatch(target, Array(0..<100), end: (100, 100_000))
        let out = try XCTUnwrap(core.streams.first?.output)
        let written = out.bytesWritten
        XCTAssertGreaterThan(written, 0)
        XCTAssertLessThan(written, 100_000)
        XCTAssertEqual(out.coverage.spans, [.init(0, written)])
        XCTAssertEqual(spans(out.failedRanges), [[written, 100_000]], "exactly what the filesystem did not take")
        XCTAssertEqual(out.firstWriteError, ENOSPC)
        XCTAssertEqual(out.holes.count, 0)
        XCTAssertTrue(Array(read(path).prefix(Int(written))) == expectedBytes(0..<Int(written)))
        XCTAssertFalse(out.ok)
        unlink(path)
    }

    func testInOrderOutputWritesABatchInOneCall() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]) }
        let target = OutputTarget(.inOrder(fd: fds[1], windowBytes: 65_536), expectedStreams: 1)
        var core = ValidatingCore(output: target)
        // 40 in order, then 41 before 40 (buffered, then drained), then 42...49.
        feedBatch(&core, (0..<40).map { datagram(seq: $0) })
        feedBatch(&core, [41, 40, 42, 43, 44, 45, 46, 47, 48, 49].map { datagram(seq: $0) })
        feed(&core, end(datagrams: 50, bytes: 50_000))
        core.finishOutput()
        close(fds[1])
        var got: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fds[0], $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            got += chunk[0..<n]
        }
        core.finalizeOutput(target)
        let out = try XCTUnwrap(core.streams.first?.output)
        XCTAssertTrue(got == expectedBytes(0..<50_000))
        XCTAssertEqual(out.bytesWritten, 50_000)
        // Batch 1: one writev. Batch 2: 41 waits in the ring; 40 is gathered, written when the
        // ring drains (41 in one write), 42...49 gathered into one writev at the batch end.
        XCTAssertEqual(out.writeCalls, 4)
    }
}
