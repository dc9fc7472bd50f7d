import Foundation
import XCTest

/// The examples under Examples/ run for real, briefly: the DAQ producer streams
/// through the fill-in-place API into the validated-sink example, which writes the
/// validated data to a file.
final class ExampleTests: XCTestCase {
    private var daq: String { Binaries.directory.appendingPathComponent("daq-producer").path }
    private var sink: String { Binaries.directory.appendingPathComponent("validated-sink").path }

    func testDAQProducerIntoValidatedSink() throws {
        let path = NSTemporaryDirectory() + "zc-sink-\(getpid()).bin"
        defer { unlink(path) }
        let receiver = try Child(sink, ["127.0.0.1:0", path, "--streams", "1", "--idle-timeout", "5"])
        guard let line = waitStdout(receiver, "listening on"),
              let address = line.components(separatedBy: "listening on ").last?.split(separator: ",").first else {
            return XCTFail("validated-sink did not start: \(receiver.stderr.text)")
        }
        let producer = try Child(daq, [String(address), "--seconds", "1", "--sample-rate", "2000000", "--json"]).wait(timeout: 30)
        XCTAssertEqual(producer.status, 0, producer.stderr)
        let sent = try XCTUnwrap(producer.json, producer.stdout)
        let result = receiver.wait(timeout: 30)
        XCTAssertEqual(result.status, 0, "sink: \(result.stdout) \(result.stderr)")
        XCTAssertTrue(result.stdout.contains("lost 0, corrupt 0, complete true"), result.stdout)
        // 2 M samples/s of 16 bits for 1 s, give or take the pacer's start.
        let bytes = (sent["bytes"] as? NSNumber)?.uint64Value ?? 0
        let datagrams = (sent["datagrams"] as? NSNumber)?.uint64Value ?? 0
        let fileSize = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value ?? 0
        XCTAssertEqual(fileSize, bytes - datagrams * 48, "the file holds exactly the payload bytes sent")
        XCTAssertEqual(Double(fileSize), 4_000_000, accuracy: 400_000)
        XCTAssertEqual((sent["notifications"] as? NSNumber), (sent["sends"] as? NSNumber))
    }

    func testDAQCopyingPathToZcRecv() throws {
        let receiver = try RunningReceiver.start(["--streams", "1"])
        let producer = try Child(daq, [receiver.address, "--seconds", "1", "--sample-rate", "1000000", "--copy", "--json"]).wait(timeout: 30)
        XCTAssertEqual(producer.status, 0, producer.stderr)
        let r = try XCTUnwrap(receiver.child.wait(timeout: 30).json)
        XCTAssertEqual(u64(r, "datagrams"), u64(producer.json, "datagrams"))
        XCTAssertEqual(u64(r, "lost"), 0)
        XCTAssertEqual(u64(r, "corrupt"), 0)
    }

    private func waitStdout(_ child: Child, _ marker: String) -> String? {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let line = child.stdout.text.split(separator: "\n").first(where: { $0.contains(marker) }) { return String(line) }
            usleep(10_000)
        }
        return nil
    }
}
