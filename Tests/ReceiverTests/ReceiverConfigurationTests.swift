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

    /// Library errors name the configuration property; zc-recv passes its flag names.
    func testErrorsNamePropertiesAndTheCLIRenamesThem() {
        let e = ReceiverConfiguration.Invalid.receiveBuffer(0)
        XCTAssertEqual(e.description, "receiveBufferBytes 0 is out of range: allowed 1 byte to 2G")
        XCTAssertEqual(e.describe { $0 == "receiveBufferBytes" ? "--rcvbuf" : $0 }, "--rcvbuf 0 is out of range: allowed 1 byte to 2G")
        XCTAssertEqual(ReceiverConfiguration.Invalid.multicastOnly("multicast.source").property, "multicast.source")
    }
}
