import Foundation
import XCTest

/// Runs the real `zc-send` / `zc-recv` binaries and reads their JSON reports.
/// The binaries sit next to the test bundle (`swift test` builds them as
/// dependencies of this target); ZCSTREAM_BIN overrides the directory.
enum Binaries {
    static let directory: URL = {
        if let dir = ProcessInfo.processInfo.environment["ZCSTREAM_BIN"] {
            return URL(fileURLWithPath: dir)
        }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = bundle.deletingLastPathComponent()
        // Inside a .xctest bundle directory on some layouts: walk up to the build dir.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("zc-send").path),
              dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()

    static var send: String { directory.appendingPathComponent("zc-send").path }
    static var recv: String { directory.appendingPathComponent("zc-recv").path }
}

/// Collects a pipe's bytes on a background thread so the child never blocks on a full pipe.
final class PipeCollector: @unchecked Sendable {
    let pipe = Pipe()
    private let lock = NSLock()
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    func start() {
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                lock.lock(); data.append(chunk); lock.unlock()
            }
            done.signal()
        }
    }

    var text: String {
        lock.lock(); defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    /// Waits for end of file (the child exited and closed the pipe).
    func finish() -> String {
        done.wait()
        return text
    }
}

/// A running child process with collected stdout/stderr.
final class Child: @unchecked Sendable {
    let process = Process()
    let stdout = PipeCollector()
    let stderr = PipeCollector()
    let commandLine: String

    init(_ executable: String, _ arguments: [String], namespace: String? = nil) throws {
        if let namespace {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", namespace, executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        commandLine = ([namespace.map { "ip netns exec \($0)" } ?? ""] + [executable] + arguments).joined(separator: " ")
        process.standardOutput = stdout.pipe
        process.standardError = stderr.pipe
        stdout.start()
        stderr.start()
        try process.run()
    }

    /// Polls stderr until `marker` appears (or the timeout passes); returns the line.
    func waitForLine(containing marker: String, timeout: TimeInterval = 10) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = stderr.text.split(separator: "\n").first(where: { $0.contains(marker) }) {
                return String(line)
            }
            if !process.isRunning { return nil }
            usleep(10_000)
        }
        return nil
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        var json: [String: Any]? {
            guard let d = stdout.data(using: .utf8) else { return nil }
            return (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
        }
    }

    /// Waits for exit (killing the child after `timeout`).
    func wait(timeout: TimeInterval = 60) -> Result {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate(); usleep(200_000); if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: stdout.finish(), stderr: stderr.finish())
    }
}

/// A receiver started on an ephemeral port, ready for a sender.
struct RunningReceiver {
    let child: Child
    let address: String  // HOST:PORT as the receiver printed it

    /// `progress`: keep zc-recv's default progress lines (stderr) instead of `--interval 0`.
    static func start(listen: String = "127.0.0.1:0", _ extra: [String] = [], namespace: String? = nil, progress: Bool = false,
                      file: StaticString = #filePath, line: UInt = #line) throws -> RunningReceiver {
        let child = try Child(Binaries.recv, [listen, "--json"] + (progress ? [] : ["--interval", "0"]) + extra, namespace: namespace)
        return RunningReceiver(child: child, address: try listeningAddress(child, file: file, line: line))
    }

    /// Waits for zc-recv's "listening on" line on `child`'s stderr (zc-recv itself, or a shell
    /// pipeline it heads) and returns the HOST:PORT it names.
    static func listeningAddress(_ child: Child, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        guard let ready = child.waitForLine(containing: "listening on") else {
            let r = child.wait(timeout: 1)
            XCTFail("zc-recv did not start: status \(r.status), stderr: \(r.stderr)", file: file, line: line)
            throw XCTSkip("receiver failed to start")
        }
        // "zc-recv: listening on 127.0.0.1:PORT (...)"
        let afterOn = ready.components(separatedBy: "listening on ")[1]
        return String(afterOn.split(separator: " ")[0])
    }
}

/// One receiver (`--streams 1` and `receiverArgs`) and one sender to it, both to the end;
/// returns both JSON reports and the receiver's exit status.
func runPair(listen: String = "127.0.0.1:0", receiverArgs: [String] = [], senderArgs: [String],
             file: StaticString = #filePath, line: UInt = #line) throws -> (send: [String: Any], recv: [String: Any], recvStatus: Int32) {
    let receiver = try RunningReceiver.start(listen: listen, ["--streams", "1"] + receiverArgs)
    let sent = try runSender([receiver.address] + senderArgs)
    XCTAssertEqual(sent.status, 0, "zc-send failed: \(sent.stderr)", file: file, line: line)
    let received = receiver.child.wait(timeout: 30)
    let s = try XCTUnwrap(sent.json, "no sender JSON: \(sent.stdout) \(sent.stderr)", file: file, line: line)
    let r = try XCTUnwrap(received.json, "no receiver JSON: \(received.stdout) \(received.stderr)", file: file, line: line)
    return (s, r, received.status)
}

/// Runs zc-send to completion.
func runSender(_ arguments: [String], namespace: String? = nil, timeout: TimeInterval = 60) throws -> Child.Result {
    let child = try Child(Binaries.send, arguments + ["--json", "--interval", "0"], namespace: namespace)
    return child.wait(timeout: timeout)
}

/// A free UDP port on 127.0.0.1 (bound and released).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: a.sin_port))
}

/// Reads a JSON number as UInt64 (JSONSerialization gives NSNumber).
func u64(_ json: [String: Any]?, _ path: String...) -> UInt64? {
    var node: Any? = json
    for key in path { node = (node as? [String: Any])?[key] }
    // u64 values that JSON numbers cannot carry exactly (stream ids) are hex strings.
    if let text = node as? String {
        return text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
    }
    return (node as? NSNumber)?.uint64Value
}

var isRoot: Bool { geteuid() == 0 }
