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
}
