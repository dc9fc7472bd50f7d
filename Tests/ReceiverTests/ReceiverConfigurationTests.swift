import Receiver
import XCTest
import ZCSystem

final class ReceiverConfigurationTests: XCTestCase {
    func testValidationNamesTheSettingAndRange() throws {
        let base = ReceiverConfiguration(listen: try SocketAddress.parse("127.0.0.1:0", allowPortZero: true))
        XCTAssertNoThrow(try base.validate())
        var c = base; c.threads = 0
        XCTAssertThrowsError(try c.validate()) { XCTAssertEqual($0 as? ReceiverConfiguration.Invalid, .threads(0)) }
        c = base; c.streams = 0
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("1...65536")) }
        c = base; c.receiveBufferBytes = 0
        XCTAssertThrowsError(try c.validate()) { XCTAssertEqual($0 as? ReceiverConfiguration.Invalid, .receiveBuffer(0)) }
        c = base; c.idleTimeoutNanoseconds = 0
        XCTAssertThrowsError(try c.validate())
        c = base; c.cpus = [10_000]
        XCTAssertThrowsError(try c.validate()) { XCTAssertEqual($0 as? ReceiverConfiguration.Invalid, .cpus) }
    }
}
