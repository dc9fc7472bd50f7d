import Foundation
import TestSupport
import XCTest

/// zcstream as a dependency, the way another project uses it: a fresh package that
/// names a tagged clone of this repository by URL and version (`from: "X.Y.Z"`, the
/// VERSION file), imports `ZCStream`, builds (SwiftPM refuses packages with unsafe
/// build flags here) and round-trips a stream through the library over loopback.
final class PackageDependencyTests: XCTestCase {
    func testSeparatePackageDependsOnTaggedCloneByVersion() throws {
        let root = Repository.root
        guard FileManager.default.fileExists(atPath: root.appendingPathComponent(".git").path) else {
            throw XCTSkip("not a git checkout (\(root.path)): nothing to clone and tag")
        }
        let version = try String(contentsOf: root.appendingPathComponent("VERSION"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("zc-dependency-\(getpid())")
        try? FileManager.default.removeItem(at: work)
        try FileManager.default.createDirectory(at: work.appendingPathComponent("consumer/Sources/consumer"),
                                                withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }

        // The clone holds what is committed (HEAD), tagged with the version.
        let clone = work.appendingPathComponent("zcstream").path
        let cloned = shell("git clone -q \(root.path) \(clone) && git -C \(clone) tag -f \(version)")
        XCTAssertEqual(cloned.status, 0, cloned.output)

        try """
        // swift-tools-version: 6.0
        import PackageDescription
        let package = Package(
            name: "consumer",
            dependencies: [.package(url: "file://\(clone)", from: "\(version)")],
            targets: [.executableTarget(name: "consumer", dependencies: [.product(name: "ZCStream", package: "zcstream")])]
        )
        """.write(to: work.appendingPathComponent("consumer/Package.swift"), atomically: true, encoding: .utf8)
        try Self.consumerMain.write(to: work.appendingPathComponent("consumer/Sources/consumer/main.swift"),
                                    atomically: true, encoding: .utf8)

        let consumer = work.appendingPathComponent("consumer").path
        let build = shell("cd \(consumer) && swift build --scratch-path \(consumer)/.build-consumer > build.log 2>&1; "
                          + "s=$?; tail -20 build.log; exit $s")
        XCTAssertEqual(build.status, 0, build.output)
        XCTAssertFalse(build.output.contains("error:"), build.output)
        let run = shell("\(consumer)/.build-consumer/debug/consumer")
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("received 5000 of 5000, lost 0, corrupt 0, complete"), run.output)
    }

    /// The consumer: a receiver on one thread, an OutboundStream on another.
    static let consumerMain = """
    import Synchronization
    import ZCStream
    #if canImport(Glibc)
    import Glibc
    #endif

    var configuration = ReceiverConfiguration(listen: try SocketAddress.parse("127.0.0.1:0", allowPortZero: true))
    configuration.streams = 1
    configuration.idleTimeoutNanoseconds = 5_000_000_000
    let ready = Mutex<SocketAddress?>(nil)
    let sender = try WorkerThread {
        var address: SocketAddress?
        while address == nil { address = ready.withLock { $0 }; usleep(1000) }
        do {
            let c = try SenderConfiguration(destination: address!, datagramSize: 1472, rate: .bitsPerSecond(2e9))
            let stream = try OutboundStream(c)
            for i in 0..<5000 {
                try stream.send { area in
                    for j in 0..<1000 { area[j] = UInt8(truncatingIfNeeded: i &+ j) }
                    return 1000
                }
            }
            _ = try stream.finish()
        } catch {
            print("sender: \\(error)")
            exit(2)
        }
    }
    let report = try StreamReceiver.run(configuration, ready: { address, _, _ in ready.withLock { $0 = address } })
    sender.join()
    guard let stream = report.core.streams.first else { print("no stream"); exit(1) }
    let summary = stream.summary()
    print("received \\(stream.tracker.unique) of 5000, lost \\(summary.lost), corrupt \\(stream.corrupt), \\(stream.isComplete ? "complete" : "incomplete")")
    exit(stream.isComplete && summary.lost == 0 && stream.corrupt == 0 ? 0 : 1)
    """
}
