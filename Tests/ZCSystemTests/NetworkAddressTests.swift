import XCTest
import ZCSystem

/// MACAddress and IPv4Address: parsing, printing, subnet arithmetic.
final class NetworkAddressTests: XCTestCase {
    func testAddressParsing() {
        XCTAssertEqual(MACAddress("02:00:00:00:00:0a")?.description, "02:00:00:00:00:0a")
        XCTAssertEqual(MACAddress("AA-BB-CC-DD-EE-FF")?.description, "aa:bb:cc:dd:ee:ff")
        XCTAssertNil(MACAddress("02:00:00:00:00"))
        XCTAssertNil(MACAddress("02:00:00:00:00:100"))
        XCTAssertNil(MACAddress("zz:00:00:00:00:00"))
        XCTAssertEqual(IPv4Address("198.18.0.2")?.value, 0xC612_0002)
        XCTAssertEqual(IPv4Address(0xC612_0002).description, "198.18.0.2")
        XCTAssertNil(IPv4Address("198.18.0"))
        XCTAssertTrue(IPv4Address("198.18.0.1")!.sameSubnet(as: IPv4Address("198.18.0.200")!, prefixLength: 24))
        XCTAssertFalse(IPv4Address("198.18.0.1")!.sameSubnet(as: IPv4Address("198.18.1.1")!, prefixLength: 24))
        XCTAssertTrue(IPv4Address("198.18.0.1")!.sameSubnet(as: IPv4Address("198.19.1.1")!, prefixLength: 15))
    }
}
