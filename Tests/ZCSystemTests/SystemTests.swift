import XCTest
import ZCSystem
#if canImport(Glibc)
import Glibc
#endif

final class SystemTests: XCTestCase {
    func testAddressParsing() throws {
        XCTAssertEqual(try SocketAddress.parse("127.0.0.1:9000").description, "127.0.0.1:9000")
        XCTAssertEqual(try SocketAddress.parse("[::1]:9000").description, "[::1]:9000")
        XCTAssertEqual(try SocketAddress.parse("9000", defaultHost: "0.0.0.0").description, "0.0.0.0:9000")
        XCTAssertEqual(try SocketAddress.parse("localhost:5").port, 5)
        XCTAssertEqual(try SocketAddress.parse("[::1]:0", allowPortZero: true).port, 0)
        XCTAssertThrowsError(try SocketAddress.parse("127.0.0.1"))
        XCTAssertThrowsError(try SocketAddress.parse("::1:9000"))
        XCTAssertThrowsError(try SocketAddress.parse("127.0.0.1:0"))
        XCTAssertThrowsError(try SocketAddress.parse("127.0.0.1:65536"))
        XCTAssertThrowsError(try SocketAddress.parse("no.such.host.invalid:1"))
    }

    func testSystemErrorNamesErrno() {
        let e = SystemError(call: "connect", errno: ECONNREFUSED)
        XCTAssertTrue(e.description.contains("connect"))
        XCTAssertTrue(e.description.contains("ECONNREFUSED"))
    }

    func testStopFlag() {
        XCTAssertFalse(StopFlag.isSet)
    }

    // --- the one EINTR policy (Interruption) -----------------------------------
    // StopFlag cannot be cleared once set (and testStopFlag expects it clear), so the
    // stop request is injected through `stopRequested`, the parameter every wrapper's
    // default (StopFlag.isSet) fills in.

    /// A fake call: fails with each errno of `errnos` in turn, then returns `result`.
    private final class FakeCall {
        var errnos: [Int32]
        var result: Int
        var calls = 0
        init(_ errnos: [Int32], then result: Int) { self.errnos = errnos; self.result = result }
        func callAsFunction() -> Int {
            calls += 1
            if errnos.isEmpty { return result }
            Glibc.errno = errnos.removeFirst()
            return -1
        }
    }

    func testInterruptIsRetriedWithoutStopRequest() throws {
        let call = FakeCall([EINTR, EINTR, EINTR], then: 7)
        XCTAssertEqual(try systemCall("fake", stopRequested: { false }) { call() }, 7)
        XCTAssertEqual(call.calls, 4, "three interruptions retried, the fourth attempt succeeds")
        XCTAssertTrue(Interruption.shouldRetry(afterInterruptWithStopRequested: false))
    }

    func testInterruptSurfacesAsStopWhenStopRequested() {
        let call = FakeCall([EINTR, EINTR], then: 7)
        XCTAssertThrowsError(try systemCall("fake", stopRequested: { true }) { call() }) { error in
            let e = error as! SystemError
            XCTAssertEqual(e.errno, EINTR)
            XCTAssertTrue(e.isStopInterruption)
            XCTAssertEqual(e.call, "fake")
        }
        XCTAssertEqual(call.calls, 1, "no retry once a stop was requested")
        XCTAssertFalse(Interruption.shouldRetry(afterInterruptWithStopRequested: true))
    }

    func testStopIsCheckedAtEachInterrupt() {
        // The stop arrives during the second interruption: the first is retried, the second surfaces.
        let call = FakeCall([EINTR, EINTR, EINTR], then: 7)
        var checks = 0
        let (result, code) = Interruption.attempt(stopRequested: { checks += 1; return checks >= 2 }) { call() }
        XCTAssertEqual(result, -1)
        XCTAssertEqual(code, EINTR)
        XCTAssertEqual(call.calls, 2)
    }

    func testOtherErrorsAreNotRetriedAndNotStops() {
        let call = FakeCall([EBADF], then: 7)
        XCTAssertThrowsError(try systemCall("fake(\(3))", stopRequested: { false }) { call() }) { error in
            let e = error as! SystemError
            XCTAssertEqual(e.errno, EBADF)
            XCTAssertFalse(e.isStopInterruption)
            XCTAssertEqual(e.call, "fake(3)")
        }
        XCTAssertEqual(call.calls, 1)
    }

    func testWouldBlockIsNilNotError() throws {
        let again = FakeCall([EINTR, EAGAIN], then: 7)
        XCTAssertNil(try nonBlockingSystemCall("fake", stopRequested: { false }) { again() })
        XCTAssertEqual(again.calls, 2)
        let ok = FakeCall([], then: 5)
        XCTAssertEqual(try nonBlockingSystemCall("fake", stopRequested: { false }) { ok() }, 5)
        let stopped = FakeCall([EINTR], then: 5)
        XCTAssertThrowsError(try nonBlockingSystemCall("fake", stopRequested: { true }) { stopped() }) {
            XCTAssertTrue(($0 as! SystemError).isStopInterruption)
        }
    }

    func testNegativeErrnoCallsFollowThePolicy() {
        // liburing's convention (io_uring_enter behind Ring.submit): -errno as the result.
        var results: [Int32] = [-EINTR, -EINTR, 5]
        XCTAssertEqual(Interruption.attemptReturningErrno(stopRequested: { false }) { results.removeFirst() }, 5)
        XCTAssertTrue(results.isEmpty)
        results = [-EINTR, 5]
        XCTAssertEqual(Interruption.attemptReturningErrno(stopRequested: { true }) { results.removeFirst() }, -EINTR)
        XCTAssertEqual(results, [5])
        results = [-EBUSY, 5]
        XCTAssertEqual(Interruption.attemptReturningErrno(stopRequested: { false }) { results.removeFirst() }, -EBUSY)
    }

    // --- real signals: a pipe read interrupted by SIGUSR1 (handler without SA_RESTART) ---

    /// Blocks in `read` on an empty pipe while another thread sends SIGUSR1 to this thread
    /// after 100 ms and writes one byte after 250 ms. Returns what `read` returned.
    private func readInterrupted(_ read: (Int32, UnsafeMutableRawBufferPointer) -> Result<Int, SystemError>) throws -> (Result<Int, SystemError>, signals: Int32) {
        try withEmptyPipeAndCountedUSR1 { fds in
            let reader = pthread_self(), writeEnd = fds[1]
            let helper = try WorkerThread {
                usleep(100_000)
                pthread_kill(reader, SIGUSR1)
                usleep(150_000)
                var byte: UInt8 = 0x5A
                _ = write(writeEnd, &byte, 1)
            }
            var buffer = [UInt8](repeating: 0, count: 8)
            let result = buffer.withUnsafeMutableBytes { read(fds[0], $0) }
            helper.join()
            return result
        }
    }

    /// Runs `body` with an empty pipe (read end, write end) and a SIGUSR1 handler
    /// installed without SA_RESTART (so a blocked call returns EINTR) that counts the
    /// signals; restores the old handler and closes the pipe after. Returns what `body`
    /// returned and how many SIGUSR1s arrived meanwhile.
    private func withEmptyPipeAndCountedUSR1<T>(_ body: ([Int32]) throws -> T) throws -> (T, signals: Int32) {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in usr1Count &+= 1 }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0 // no SA_RESTART
        var old = sigaction()
        XCTAssertEqual(sigaction(SIGUSR1, &action, &old), 0)
        defer { sigaction(SIGUSR1, &old, nil) }
        let before = usr1Count
        let result = try body(fds)
        return (result, usr1Count - before)
    }

    func testRawReadIsInterruptedBySignal() throws {
        // The premise of the tests below: this handler really makes read return EINTR.
        let (result, signals) = try readInterrupted { fd, b in
            let n = Glibc.read(fd, b.baseAddress, b.count)
            return n < 0 ? .failure(SystemError(call: "read")) : .success(n)
        }
        XCTAssertEqual(signals, 1)
        guard case .failure(let e) = result else { return XCTFail("read was not interrupted: \(result)") }
        XCTAssertEqual(e.errno, EINTR)
    }

    func testInterruptedReadIsRetriedWithoutStop() throws {
        let (result, signals) = try readInterrupted { fd, b in
            Result { () throws(SystemError) in try FileCalls.read(fd, into: b) } // StopFlag is clear in tests
        }
        XCTAssertEqual(signals, 1)
        XCTAssertEqual(try result.get(), 1, "the read went on after the signal and got the byte")
    }

    func testInterruptedReadStopsWhenStopRequested() throws {
        let start = MonotonicClock.nanoseconds()
        let (result, signals) = try readInterrupted { fd, b in
            Result { () throws(SystemError) in
                try systemCall("read", stopRequested: { true }) { Glibc.read(fd, b.baseAddress, b.count) }
            }
        }
        let elapsed = MonotonicClock.nanoseconds() - start
        XCTAssertEqual(signals, 1)
        guard case .failure(let e) = result else { return XCTFail("expected the stop interruption, got \(result)") }
        XCTAssertTrue(e.isStopInterruption)
        XCTAssertEqual(e.call, "read")
        XCTAssertLessThan(elapsed, 2_000_000_000)
    }

    func testInterruptedPollWaitsOutItsTimeout() throws {
        let ((events, elapsed), signals) = try withEmptyPipeAndCountedUSR1 { fds in
            let reader = pthread_self()
            let helper = try WorkerThread { usleep(50_000); pthread_kill(reader, SIGUSR1) }
            let start = MonotonicClock.nanoseconds()
            let events = try FileCalls.poll(fds[0], events: Int16(POLLIN), timeoutMilliseconds: 300)
            let elapsed = MonotonicClock.nanoseconds() - start
            helper.join()
            return (events, elapsed)
        }
        XCTAssertEqual(signals, 1)
        XCTAssertEqual(events, 0, "nothing was written: nothing ready")
        // Retried with what was left: neither cut short at the signal nor restarted in full.
        XCTAssertGreaterThanOrEqual(elapsed, 290_000_000)
        XCTAssertLessThan(elapsed, 550_000_000)
    }

    func testWrappersReportErrnoWithCallName() {
        XCTAssertThrowsError(try FileCalls.write(-1, "x", count: 1, call: "write(test)")) {
            XCTAssertEqual(($0 as! SystemError).errno, EBADF)
            XCTAssertEqual(($0 as! SystemError).call, "write(test)")
        }
        XCTAssertThrowsError(try SocketCalls.option(-1, level: SOL_SOCKET, name: SO_ERROR, call: "SO_ERROR")) {
            XCTAssertEqual(($0 as! SystemError).errno, EBADF)
        }
        XCTAssertThrowsError(try MemoryMap.anonymous(bytes: 0)) { XCTAssertEqual(($0 as! SystemError).errno, EINVAL) }
        XCTAssertEqual(FileCalls.close(-1), EBADF)
    }
}

/// SIGUSR1 deliveries seen by the tests' handler.
nonisolated(unsafe) private var usr1Count: Int32 = 0
