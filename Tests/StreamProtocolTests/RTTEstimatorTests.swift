import StreamProtocol
import XCTest

/// RFC 6298's smoothing, as both ends of a reliable stream use it (SPEC §13.10).
final class RTTEstimatorTests: XCTestCase {
    func testFirstSampleThenSmoothing() {
        var r = RTTEstimator()
        XCTAssertEqual(r.smoothed(orInitial: 10_000), 10_000, "the initial RTT before any sample")
        XCTAssertEqual(r.timeout(orInitial: 10_000), 10_000)
        XCTAssertNil(r.mean)
        r.add(800)
        XCTAssertEqual(r.smoothed, 800)
        XCTAssertEqual(r.variation, 400)
        XCTAssertEqual(r.timeout(orInitial: 10_000), 800 + 4 * 400)
        r.add(1600)
        XCTAssertEqual(r.variation, (3 * 400 + 800) / 4)
        XCTAssertEqual(r.smoothed, (7 * 800 + 1600) / 8)
        XCTAssertEqual(r.minimum, 800)
        XCTAssertEqual(r.mean, 1200)
        XCTAssertEqual(r.samples, 2)
    }
}
