import CURing
import URing
import XCTest
import ZCSystem
#if canImport(Glibc)
import Glibc
#endif

final class RingTests: XCTestCase {
    func testNopRoundTrip() throws {
        let ring = try Ring(.init(entries: 8))
        let completions = UnsafeMutableBufferPointer<Completion>.allocate(capacity: 8)
        defer { completions.deallocate() }
        for i in 0..<4 {
            let sqe = try XCTUnwrap(ring.nextSubmission())
            zc_prep_nop(sqe, UInt64(100 + i))
        }
        try ring.submit(waitFor: 4)
        var seen: [UInt64] = []
        while seen.count < 4 {
            let n = ring.reap(into: completions)
            if n == 0 { try ring.submit(waitFor: 1) }
            seen += (0..<n).map { completions[$0].user_data }
        }
        XCTAssertEqual(seen.sorted(), [100, 101, 102, 103])
    }

    /// SQPOLL: the kernel thread takes entries off the queue by itself; more entries than
    /// the queue holds go through once it makes room (waitForSubmissionSpace), and every
    /// one completes.
    func testSubmissionThreadTakesEntriesWithoutEnter() throws {
        let options = Ring.Options(entries: 4, completionEntries: 64, submissionThread: .init(idleMilliseconds: 50, cpu: 0))
        do { _ = try Ring(options) } catch { throw XCTSkip("the kernel refused IORING_SETUP_SQPOLL here: \(error)") }
        let ring = try Ring(options)
        XCTAssertTrue(ring.pollsSubmissions)
        XCTAssertFalse(ring.defersTaskRun, "DEFER_TASKRUN needs the owner to submit: never with SQPOLL")
        let completions = UnsafeMutableBufferPointer<Completion>.allocate(capacity: 64)
        defer { completions.deallocate() }
        var seen: [UInt64] = []
        for i in 0..<40 {
            var sqe = ring.nextSubmission()
            if sqe == nil {
                try ring.submit()
                try ring.waitForSubmissionSpace()
                sqe = ring.nextSubmission()
            }
            zc_prep_nop(try XCTUnwrap(sqe, "no room after waitForSubmissionSpace"), UInt64(1000 + i))
            try ring.submit()
            let n = ring.reap(into: completions)
            seen += (0..<n).map { completions[$0].user_data }
        }
        let deadline = MonotonicClock.nanoseconds() + 5_000_000_000
        while seen.count < 40 && MonotonicClock.nanoseconds() < deadline {
            try ring.submit(waitFor: 1)
            let n = ring.reap(into: completions)
            seen += (0..<n).map { completions[$0].user_data }
        }
        XCTAssertEqual(seen.sorted(), (0..<40).map { UInt64(1000 + $0) })
    }

    /// SEND_ZC from a registered buffer to a local socket: the send CQE carries F_MORE,
    /// then a notification arrives, and (loopback) reports that the kernel copied.
    func testSendZCPostsNotificationAfterCompletion() throws {
        let ring = try Ring(.init(entries: 8, completionEntries: 16))
        let receiver = try UDPSocket(family: AF_INET)
        try receiver.bind(to: try SocketAddress.parse("127.0.0.1:0", allowPortZero: true))
        let target = try receiver.localAddress()
        let sender = try UDPSocket(family: AF_INET)
        try sender.connect(to: target)

        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { buffer.deallocate() }
        memset(buffer.baseAddress!, 0x5A, 4096)
        try ring.registerBuffer(buffer)
        try ring.registerFiles([sender.fd])
        let sqe = try XCTUnwrap(ring.nextSubmission())
        zc_prep_send_zc_fixed(sqe, 0, buffer.baseAddress, 1000, 0, 1, 7)
        try ring.submit(waitFor: 1)

        let completions = UnsafeMutableBufferPointer<Completion>.allocate(capacity: 8)
        defer { completions.deallocate() }
        var events: [Completion] = []
        let deadline = Date().addingTimeInterval(5)
        while events.count < 2 && Date() < deadline {
            let n = ring.reap(into: completions)
            events += (0..<n).map { completions[$0] }
            if events.count < 2 { try ring.submit(waitTimeoutNanoseconds: 10_000_000) }
        }
        XCTAssertEqual(events.count, 2)
        XCTAssertEqual(events[0].user_data, 7)
        XCTAssertEqual(events[0].res, 1000)
        XCTAssertTrue(events[0].hasMore, "first CQE must say a notification follows")
        XCTAssertFalse(events[0].isNotification)
        XCTAssertTrue(events[1].isNotification)
        XCTAssertEqual(events[1].user_data, 7)
        XCTAssertTrue(events[1].reportsCopied, "loopback delivery copies zero-copy pages")

        var got = [UInt8](repeating: 0, count: 2000)
        let n = recv(receiver.fd, &got, got.count, Int32(MSG_DONTWAIT))
        XCTAssertEqual(n, 1000)
        XCTAssertEqual(got[0], 0x5A)
    }

    func testSetupStepsDownAndReportsFlags() throws {
        let ring = try Ring(.init(entries: 4))
        // This kernel (6.x) takes SINGLE_ISSUER|DEFER_TASKRUN; older ones fall back.
        XCTAssertNotEqual(ring.setupFlags & (zc_setup_defer_taskrun | zc_setup_coop_taskrun), 0)
    }
}
