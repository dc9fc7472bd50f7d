import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// zc-recv --output against real failures (issue 17): a filesystem that fills up, a file
/// size limit, the output directory removed mid-run, an offset of 2^62, a datagram beyond
/// --output-max-bytes. Each must name the exact byte ranges that are not in the file, fail
/// the run with exit 3, and leave the stream accounting exact.
final class OutputFailureTests: XCTestCase {
    static let payload: UInt64 = 1424 // zc-send's default payload at 1472-byte datagrams
    private var mounted: String?
    private var directories: [String] = []

    override func tearDown() {
        if let mounted { shell("umount \(mounted)") }
        mounted = nil
        for d in directories { shell("rm -rf '\(d)'") }
        directories = []
        super.tearDown()
    }

    private func temporaryDirectory(_ tag: String) -> String {
        var template = Array((NSTemporaryDirectory() + "zc-recv-out-\(tag)-XXXXXX").utf8CString)
        let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        directories.append(path)
        return path
    }

    private func read(_ path: String) -> [UInt8] {
        (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? []
    }

    private func spans(_ any: Any?) -> [[UInt64]] {
        (any as? [[NSNumber]])?.map { $0.map(\.uint64Value) } ?? []
    }

    private func stream(_ r: [String: Any]) -> [String: Any] {
        (r["streams"] as? [[String: Any]])?.first ?? [:]
    }

    /// Starts zc-recv (optionally under `prefix`, e.g. prlimit), runs zc-send to it, returns both.
    private func pair(_ receiverArgs: [String], sender: [String], prefix: [String] = [], during: (() -> Void)? = nil,
                      file: StaticString = #filePath, line: UInt = #line) throws -> (send: [String: Any], recv: [String: Any], status: Int32) {
        let args = ["127.0.0.1:0", "--json", "--interval", "0", "--streams", "1"] + receiverArgs
        let child = prefix.isEmpty ? try Child(Binaries.recv, args) : try Child(prefix[0], Array(prefix.dropFirst()) + [Binaries.recv] + args)
        let ready = try XCTUnwrap(child.waitForLine(containing: "listening on"), "zc-recv did not start", file: file, line: line)
        let address = String(ready.components(separatedBy: "listening on ")[1].split(separator: " ")[0])
        let s = try Child(Binaries.send, [address, "--json", "--interval", "0"] + sender)
        during?()
        let sent = s.wait()
        XCTAssertEqual(sent.status, 0, "zc-send: \(sent.stderr)", file: file, line: line)
        let r = child.wait(timeout: 30)
        let json = try XCTUnwrap(r.json, "no receiver JSON: \(r.stdout) \(r.stderr)", file: file, line: line)
        return (try XCTUnwrap(sent.json, file: file, line: line), json, r.status)
    }

    /// The checks every failure shares: exit 3, top level and stream agree, the accounting is exact.
    private func assertIncomplete(_ r: [String: Any], status: Int32, count: UInt64, failed: [[UInt64]], beyond: [[UInt64]] = [],
                                  complete: Bool = true, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(status, 3, "output incomplete: exit 3", file: file, line: line)
        XCTAssertEqual(r["ok"] as? Bool, false, file: file, line: line)
        XCTAssertEqual(r["output_ok"] as? Bool, false, file: file, line: line)
        XCTAssertFalse((r["output_errors"] as? [String] ?? []).isEmpty, "the top level names the problem", file: file, line: line)
        XCTAssertTrue((r["failures"] as? [String] ?? []).contains { $0.hasPrefix("output incomplete") }, file: file, line: line)
        let out = stream(r)["output"] as? [String: Any]
        XCTAssertEqual(out?["ok"] as? Bool, false, file: file, line: line)
        XCTAssertEqual(spans(out?["failed_ranges"]), failed, "failed ranges", file: file, line: line)
        XCTAssertEqual(spans(out?["beyond_limit"]), beyond, "beyond-limit ranges", file: file, line: line)
        let failedBytes = failed.reduce(0) { $0 + $1[1] - $1[0] }
        XCTAssertEqual(u64(out, "failed_bytes"), failedBytes, file: file, line: line)
        XCTAssertEqual(u64(r, "output_failed_bytes"), failedBytes, "top level and stream agree", file: file, line: line)
        XCTAssertEqual(u64(r, "output_beyond_limit_bytes"), beyond.reduce(0) { $0 + $1[1] - $1[0] }, file: file, line: line)
        // The disk failing changes nothing in the stream's accounting.
        XCTAssertEqual(u64(r, "datagrams"), count, file: file, line: line)
        XCTAssertEqual(u64(r, "unique"), count, file: file, line: line)
        XCTAssertEqual(u64(r, "lost"), 0, file: file, line: line)
        XCTAssertEqual(u64(r, "corrupt"), 0, file: file, line: line)
        XCTAssertEqual(stream(r)["complete"] as? Bool, complete, file: file, line: line)
    }

    func testCleanOutputIsSyncedAndOK() throws {
        let dir = temporaryDirectory("clean")
        let (_, r, status) = try pair(["--output", dir + "/out", "--fsync-interval", "100ms"], sender: ["--count", "3000", "--rate", "100M"])
        XCTAssertEqual(status, 0)
        XCTAssertEqual(r["output_ok"] as? Bool, true)
        XCTAssertEqual(r["output_synced"] as? Bool, true)
        XCTAssertEqual(r["output_errors"] as? [String], [])
        let out = try XCTUnwrap(stream(r)["output"] as? [String: Any])
        XCTAssertEqual(out["synced"] as? Bool, true)
        XCTAssertGreaterThan(u64(out, "interval_syncs") ?? 0, 0, "a ~0.35 s run at 100M syncs every 100 ms")
        XCTAssertTrue(out["sync_error"] is NSNull, "\(out)")
        XCTAssertLessThan((out["last_sync_seconds_ago"] as? NSNumber)?.doubleValue ?? 99, 1, "synced just before the report")
    }

    func testFilesystemFillingUpMidStream() throws {
        guard isRoot else { throw XCTSkip("needs root to mount a 1 MiB tmpfs (uid \(geteuid()))") }
        let dir = temporaryDirectory("full")
        let m = shell("mount -t tmpfs -o size=1m tmpfs '\(dir)'")
        guard m.status == 0 else { throw XCTSkip("cannot mount tmpfs here: \(m.output)") }
        mounted = dir
        let count: UInt64 = 2000 // 2.85 MB into 1 MiB
        let path = dir + "/out"
        let (s, r, status) = try pair(["--output", path], sender: ["--count", "\(count)", "--rate", "500M"])
        let out = try XCTUnwrap(stream(r)["output"] as? [String: Any])
        let written = try XCTUnwrap(u64(out, "bytes_written"))
        XCTAssertGreaterThan(written, 0)
        XCTAssertLessThanOrEqual(written, 1 << 20)
        assertIncomplete(r, status: status, count: count, failed: [[written, count * Self.payload]])
        XCTAssertTrue((out["first_write_error"] as? String ?? "").contains("No space left"), "\(out)")
        XCTAssertEqual(u64(out, "hole_count"), 0, "nothing was lost on the wire")
        let id = try XCTUnwrap(u64(s, "stream_id"))
        let bytes = read(path)
        XCTAssertTrue(Array(bytes.prefix(Int(written))) == ReceiverPairTests.pattern(id: id, count: Int(written)),
                      "what the report says was written is the stream")
    }

    func testFileSizeLimit() throws {
        // prlimit lowers RLIMIT_FSIZE for the receiver only; zc-recv ignores SIGXFSZ, so the write fails with EFBIG.
        let dir = temporaryDirectory("fsize")
        let path = dir + "/out"
        let count: UInt64 = 1000
        let (s, r, status) = try pair(["--output", path], sender: ["--count", "\(count)", "--rate", "500M"],
                                      prefix: ["/usr/bin/prlimit", "--fsize=1000000"])
        let out = try XCTUnwrap(stream(r)["output"] as? [String: Any])
        assertIncomplete(r, status: status, count: count, failed: [[1_000_000, count * Self.payload]])
        XCTAssertEqual(u64(out, "bytes_written"), 1_000_000, "written up to the limit, in the middle of a datagram")
        XCTAssertTrue((out["first_write_error"] as? String ?? "").contains("File too large"), "\(out)")
        let id = try XCTUnwrap(u64(s, "stream_id"))
        XCTAssertTrue(read(path) == ReceiverPairTests.pattern(id: id, count: 1_000_000))
    }

    func testOutputDirectoryRemovedMidRun() throws {
        let dir = temporaryDirectory("gone")
        let count: UInt64 = 3000
        // ~1.8 s at 20 Mbit/s: the directory goes 0.6 s in.
        let (_, r, status) = try pair(["--output", dir + "/out"], sender: ["--count", "\(count)", "--rate", "20M"], during: {
            usleep(600_000)
            XCTAssertEqual(shell("rm -rf '\(dir)'").status, 0)
        })
        assertIncomplete(r, status: status, count: count, failed: [[0, count * Self.payload]])
        let out = try XCTUnwrap(stream(r)["output"] as? [String: Any])
        XCTAssertEqual(out["deleted"] as? Bool, true)
        XCTAssertEqual(out["synced"] as? Bool, false)
        XCTAssertEqual(r["output_synced"] as? Bool, false)
    }

    func testBeyondOutputMaxBytes() throws {
        let dir = temporaryDirectory("max")
        let path = dir + "/out"
        let count: UInt64 = 1000
        let (s, r, status) = try pair(["--output", path, "--output-max-bytes", "1000000"], sender: ["--count", "\(count)", "--rate", "500M"])
        assertIncomplete(r, status: status, count: count, failed: [], beyond: [[1_000_000, count * Self.payload]])
        let out = try XCTUnwrap(stream(r)["output"] as? [String: Any])
        XCTAssertEqual(u64(out, "length"), 1_000_000, "the file stops at the limit")
        XCTAssertEqual(u64(out, "max_bytes"), 1_000_000)
        XCTAssertEqual(out["synced"] as? Bool, true, "what is in the file is on disk")
        let id = try XCTUnwrap(u64(s, "stream_id"))
        XCTAssertTrue(read(path) == ReceiverPairTests.pattern(id: id, count: 1_000_000))
    }

    /// The reproduction: offsets 0 and 2^62. With the default limit (1 TiB) the far
    /// datagram is beyond it; with no limit the kernel refuses it (EFBIG). Both fail the run,
    /// and the file holds the first 200 bytes, not a 4 EiB sparse file.
    func testOffsetTwoToThe62() throws {
        let far: UInt64 = 1 << 62
        for limit in ["default", "none"] {
            let dir = temporaryDirectory("far")
            let path = dir + "/out"
            let extra = limit == "none" ? ["--output-max-bytes", "none"] : []
            let receiver = try RunningReceiver.start(["--streams", "1", "--output", path] + extra)
            let port = try XCTUnwrap(UInt16(receiver.address.split(separator: ":").last!))
            let datagrams = [
                RobustnessTests.datagram(flags: 0x01, stream: 0x62, sequence: 0, offset: 0, payload: [UInt8](repeating: 0x41, count: 200)),
                RobustnessTests.datagram(flags: 0x01, stream: 0x62, sequence: 1, offset: far, payload: [UInt8](repeating: 0x42, count: 200)),
                RobustnessTests.datagram(flags: 0x02, stream: 0x62, sequence: 2, offset: far + 200,
                                         payload: RobustnessTests.be64(2) + RobustnessTests.be64(far + 200)),
            ]
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            for d in datagrams { XCTAssertEqual(RobustnessTests.send(d, on: fd, toPort: port), d.count) }
            close(fd)
            let result = receiver.child.wait(timeout: 20)
            let r = try XCTUnwrap(result.json, result.stderr)
            // Every sequence number arrived, but not every byte the END announces (2^62 + 200):
            // the stream is not complete (SPEC §9.4).
            if limit == "none" {
                assertIncomplete(r, status: result.status, count: 2, failed: [[far, far + 200]], complete: false)
            } else {
                assertIncomplete(r, status: result.status, count: 2, failed: [], beyond: [[far, far + 200]], complete: false)
            }
            let out = try XCTUnwrap(stream(r)["output"] as? [String: Any])
            XCTAssertEqual(u64(out, "bytes_written"), 200, limit)
            XCTAssertEqual(read(path), [UInt8](repeating: 0x41, count: 200), "\(limit): the file is what could be written")
            var st = stat()
            XCTAssertEqual(stat(path, &st), 0)
            XCTAssertEqual(st.st_size, 200, "\(limit): no sparse giant")
        }
    }
}
