import Sender
import XCTest
import ZCSystem

final class ConfigurationTests: XCTestCase {
    let loopback = try! SocketAddress.parse("127.0.0.1:9000")

    func testRateParsing() {
        XCTAssertEqual(Rate.parse("10G"), .bitsPerSecond(10e9))
        XCTAssertEqual(Rate.parse("800m"), .bitsPerSecond(800e6))
        XCTAssertEqual(Rate.parse("1.5g"), .bitsPerSecond(1.5e9))
        XCTAssertEqual(Rate.parse("500kpps"), .packetsPerSecond(500e3))
        XCTAssertEqual(Rate.parse("12000"), .bitsPerSecond(12000))
        XCTAssertNil(Rate.parse("0"))
        XCTAssertNil(Rate.parse("-5M"))
        XCTAssertNil(Rate.parse("fast"))
        XCTAssertNil(Rate.parse("nan"))
    }

    func testGSOAutoPicksMostWholeDatagramsUnder64K() throws {
        XCTAssertEqual(try SenderConfiguration(destination: loopback, datagramSize: 1472).segmentsPerSend, 44)
        XCTAssertEqual(try SenderConfiguration(destination: loopback, datagramSize: 8972).segmentsPerSend, 7)
        XCTAssertEqual(try SenderConfiguration(destination: loopback, datagramSize: 100).segmentsPerSend, 64)
        XCTAssertEqual(try SenderConfiguration(destination: loopback, datagramSize: 1472, gso: .off).segmentsPerSend, 1)
    }

    func testRejectsOutOfRange() {
        XCTAssertThrowsError(try SenderConfiguration(destination: loopback, datagramSize: 47))
        XCTAssertThrowsError(try SenderConfiguration(destination: loopback, datagramSize: 65508))
        XCTAssertThrowsError(try SenderConfiguration(destination: loopback, datagramSize: 8972, gso: .segments(8)))
        XCTAssertThrowsError(try SenderConfiguration(destination: loopback, poolSlots: 1))
        XCTAssertNoThrow(try SenderConfiguration(destination: loopback, datagramSize: 65507, gso: .off))
    }

    func testPacerHoldsRate() {
        var pacer = Pacer(rate: .packetsPerSecond(1000))!
        var now: UInt64 = 1_000_000_000
        var sent = 0
        // Simulate 1 s in 100 us steps: 1000 packets may go, not more.
        for _ in 0..<10_000 {
            while pacer.delay(now: now) == 0 {
                pacer.charge(datagrams: 1, bytes: 1000)
                sent += 1
            }
            now += 100_000
        }
        XCTAssertEqual(Double(sent), 1000, accuracy: 3)
    }

    func testPacerLimitsCatchUpBurst() {
        var pacer = Pacer(rate: .bitsPerSecond(8e6))! // 1 MB/s: 1000 B per ms
        _ = pacer.delay(now: 1_000_000_000)
        // A 1 s stall: the pacer allows at most ~2 ms worth of catch-up, not 1 s.
        let later: UInt64 = 2_000_000_000
        var burst = 0
        while pacer.delay(now: later) == 0 { pacer.charge(datagrams: 1, bytes: 1000); burst += 1 }
        XCTAssertLessThanOrEqual(burst, 3)
    }

    /// Library errors speak in the library's terms; a CLI renames the properties to its flags.
    func testErrorsNamePropertiesAndTheCLIRenamesThem() {
        let e = SenderConfiguration.Invalid.datagramSize(10, min: 48, max: 65_507)
        XCTAssertEqual(e.description, "datagramSize 10 is out of range: allowed 48...65507 bytes")
        XCTAssertEqual(e.describe { $0 == "datagramSize" ? "--size" : $0 }, "--size 10 is out of range: allowed 48...65507 bytes")
        let mtu = SenderError.pathMTU(mtu: 1500, datagramSize: 1472, headers: 48)
        XCTAssertTrue(mtu.description.hasPrefix("datagramSize 1472 is out of range with GSO on this path"), mtu.description)
        XCTAssertFalse(mtu.description.contains("--"), mtu.description)
    }

    /// packet-ring set-up errors too: properties in the library, flags through the CLI's map.
    func testPacketRingSetupErrorsSpeakLibraryTerms() throws {
        let e = PacketRingSetupError(kind: .badInput, message: "{engine} packet-ring needs {packetRing.interface}", errno: EINVAL)
        XCTAssertEqual(e.description, "engine packet-ring needs packetRing.interface")
        let flags = ["engine": "--engine", "packetRing.interface": "--interface"]
        XCTAssertEqual(e.describe { flags[$0] ?? $0 }, "--engine packet-ring needs --interface")
        // A real one, from resolving: an interface that does not exist names no flag.
        let dst = try SocketAddress.parse("198.18.0.2:9000")
        XCTAssertThrowsError(try PacketRingTarget.resolve(PacketRingOptions(interface: "zcnone0"), destination: dst, datagramSize: 1472)) {
            let error = $0 as! PacketRingSetupError
            XCTAssertEqual(error.kind, .badInput)
            XCTAssertFalse(error.description.contains("--"), error.description)
        }
        // Through SenderError as the CLI prints it.
        let viaSender = SenderError.packetRingSetup(e)
        XCTAssertEqual(viaSender.describe { flags[$0] ?? $0 }, "--engine packet-ring needs --interface")
        XCTAssertTrue(viaSender.isUsageError)
    }
}
