import Foundation
import StreamProtocol
import TestSupport
import XCTest

/// Keyed streams (SPEC §14): the secret and its keys, the trailer, sealing and opening with
/// OpenSSL's AES-256-GCM, the structural checks and the replay window. The vectors the
/// Python reference wrote (Protocol/vectors/keyed.json) are in KeyedVectorTests.
final class KeyedStreamTests: XCTestCase {
    static let secretBytes: [UInt8] = (0..<32).map { UInt8($0) }

    func testSecretFromRawBytesAndHexAgree() throws {
        let raw = try StreamSecret(fileContents: Self.secretBytes)
        let hex = Self.secretBytes.map { String(format: "%02x", $0) }.joined()
        let fromHex = try StreamSecret(fileContents: Array(("  " + hex + "\n").utf8))
        XCTAssertEqual(raw, fromHex)
        XCTAssertEqual(raw.keyID, fromHex.keyID)
        XCTAssertEqual(try StreamSecret(fileContents: Array(hex.uppercased().utf8)).bytes, Self.secretBytes)
    }

    func testBadSecretsAreRefusedWithAReason() {
        XCTAssertThrowsError(try StreamSecret(fileContents: Array(repeating: 7, count: 31))) {
            XCTAssertEqual($0 as? StreamSecret.Invalid, .badLength(31))
            XCTAssertTrue("\($0)".contains("head -c 32 /dev/urandom"))
        }
        XCTAssertThrowsError(try StreamSecret(fileContents: Array(String(repeating: "g", count: 64).utf8))) {
            XCTAssertEqual($0 as? StreamSecret.Invalid, .notHex)
        }
        XCTAssertThrowsError(try StreamSecret(fileContents: Array(repeating: 0, count: 32))) {
            XCTAssertEqual($0 as? StreamSecret.Invalid, .notRandom)
        }
        XCTAssertThrowsError(try StreamSecret(contentsOf: "/nonexistent/zc.key")) {
            XCTAssertTrue("\($0)".contains("No such file"), "\($0)")
        }
    }

    func testKeysDifferPerStreamDirectionAndReceiver() throws {
        let secret = try StreamSecret(bytes: Self.secretBytes)
        let keys = [secret.sourceKey(streamID: 1), secret.sourceKey(streamID: 2),
                    secret.receiverKey(streamID: 1, receiverID: 9), secret.receiverKey(streamID: 1, receiverID: 10),
                    secret.receiverKey(streamID: 2, receiverID: 9)]
        XCTAssertEqual(Set(keys).count, keys.count)
        XCTAssertTrue(keys.allSatisfy { $0.count == 32 })
        XCTAssertEqual(secret.key(streamID: 1, origin: 0), keys[0])
        XCTAssertEqual(secret.key(streamID: 1, origin: 9), keys[2])
        var other = Self.secretBytes
        other[0] ^= 1
        XCTAssertNotEqual(try StreamSecret(bytes: other).keyID, secret.keyID)
    }

    /// A DATA datagram sealed in `buffer`; returns its length.
    func seal(_ buffer: UnsafeMutableRawPointer, payload: [UInt8], suite: AuthTrailer.Suite, packetNumber: UInt64,
              authenticator: DatagramAuthenticator, keyID: UInt32, sequence: UInt64 = 5) -> Int {
        DatagramHeader(flags: .data, streamID: 1, sequence: sequence, offset: sequence * 64, timestampNanoseconds: 42,
                       payloadLength: UInt32(payload.count)).write(to: buffer, version: KeyedDatagram.version)
        payload.withUnsafeBytes { buffer.advanced(by: DatagramHeader.size).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return authenticator.seal(buffer, payloadLength: payload.count,
                                  trailer: AuthTrailer(keyID: keyID, suite: suite, origin: 0, packetNumber: packetNumber))
    }

    func testSealedDatagramOpensAndEveryFlippedBitFails() throws {
        let secret = try StreamSecret(bytes: Self.secretBytes)
        let sealer = DatagramAuthenticator(key: secret.sourceKey(streamID: 1), sealing: true)
        let opener = DatagramAuthenticator(key: secret.sourceKey(streamID: 1), sealing: false)
        let payload = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        for suite in [AuthTrailer.Suite.authenticated, .encrypted] {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 64)
            defer { buffer.deallocate() }
            let length = seal(buffer, payload: payload, suite: suite, packetNumber: 77, authenticator: sealer, keyID: secret.keyID)
            XCTAssertEqual(length, 48 + 200 + 40)
            let sent = Array(UnsafeRawBufferPointer(start: buffer, count: length))
            let onWire = Array(sent[48..<248])
            XCTAssertEqual(onWire == payload, suite == .authenticated, "suite 2 sends ciphertext")
            guard case .success(let parsed) = KeyedDatagram.parse(buffer, length: length) else { return XCTFail("parse") }
            XCTAssertEqual(parsed.trailer, AuthTrailer(keyID: secret.keyID, suite: suite, origin: 0, packetNumber: 77))
            XCTAssertEqual(parsed.kind, .stream)
            XCTAssertTrue(opener.open(buffer, payloadLength: 200))
            XCTAssertEqual(Array(UnsafeRawBufferPointer(start: buffer + 48, count: 200)), payload, "opened in place")
            // Every single-bit flip anywhere (header, payload, trailer, tag) fails the tag.
            for bit in stride(from: 0, to: length * 8, by: 13) {
                var damaged = sent
                damaged[bit / 8] ^= 1 << UInt8(bit % 8)
                let ok = damaged.withUnsafeMutableBytes { opener.open($0.baseAddress!, payloadLength: 200) }
                XCTAssertFalse(ok, "suite \(suite) bit \(bit)")
            }
        }
    }

    func testAnotherStreamsKeyOrAReceiversKeyDoesNotOpen() throws {
        let secret = try StreamSecret(bytes: Self.secretBytes)
        let sealer = DatagramAuthenticator(key: secret.sourceKey(streamID: 1), sealing: true)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 64)
        defer { buffer.deallocate() }
        _ = seal(buffer, payload: [1, 2, 3], suite: .authenticated, packetNumber: 0, authenticator: sealer, keyID: secret.keyID)
        for key in [secret.sourceKey(streamID: 2), secret.receiverKey(streamID: 1, receiverID: 5)] {
            XCTAssertFalse(DatagramAuthenticator(key: key, sealing: false).open(buffer, payloadLength: 3))
        }
        XCTAssertTrue(DatagramAuthenticator(key: secret.sourceKey(streamID: 1), sealing: false).open(buffer, payloadLength: 3))
    }

    func testStructuralChecksComeInSpecOrder() throws {
        let secret = try StreamSecret(bytes: Self.secretBytes)
        let sealer = DatagramAuthenticator(key: secret.sourceKey(streamID: 1), sealing: true)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 64)
        defer { buffer.deallocate() }
        let length = seal(buffer, payload: [1, 2, 3, 4], suite: .authenticated, packetNumber: 1, authenticator: sealer, keyID: secret.keyID)
        let good = Array(UnsafeRawBufferPointer(start: buffer, count: length))
        func reason(_ bytes: [UInt8]) -> KeyedDatagram.Rejection? {
            bytes.withUnsafeBytes {
                if case .failure(let r) = KeyedDatagram.parse($0.baseAddress!, length: $0.count) { return r }
                return nil
            }
        }
        XCTAssertNil(reason(good))
        XCTAssertEqual(reason(Array(good.prefix(87))), .tooShort)
        var b = good; b[0] = 0; XCTAssertEqual(reason(b), .badMagic)
        b = good; b[4] = 1; XCTAssertEqual(reason(b), .notKeyed)
        b = good; b[4] = 3; XCTAssertEqual(reason(b), .notKeyed)
        b = good; b[7] = 50; XCTAssertEqual(reason(b), .badHeaderLength)
        b = good; b[5] = 0x03; XCTAssertEqual(reason(b), .badFlags)
        XCTAssertEqual(reason(Array(good.dropLast())), .lengthMismatch)
        b = good; b[48 + 4 + 4] = 3; XCTAssertEqual(reason(b), .badTrailer, "suite 3")
        b = good; b[48 + 4 + 8 + 7] = 1; XCTAssertEqual(reason(b), .badTrailer, "a receiver's origin on DATA")
        b = good; b[5] = 0x40; XCTAssertEqual(reason(b), .badTrailer, "origin 0 on a STATUS")
    }

    func testReplayWindowTakesEachNumberOnceAndForgetsOnlyBeyondItsSize() {
        var window = ReplayWindow()
        XCTAssertTrue(window.take(0))
        XCTAssertFalse(window.take(0))
        XCTAssertTrue(window.take(5))
        XCTAssertTrue(window.take(3), "reordered but fresh")
        XCTAssertFalse(window.take(3))
        XCTAssertTrue(window.take(4))
        XCTAssertTrue(window.take(100_000))
        XCTAssertFalse(window.isFresh(100_000 - ReplayWindow.size), "65536 below the highest: older than the window")
        XCTAssertTrue(window.isFresh(100_000 - ReplayWindow.size + 1), "the window's oldest number is still tracked")
        XCTAssertTrue(window.take(99_999))
        XCTAssertFalse(window.take(99_999))
        // Sliding forward clears the bits of numbers the window passes over.
        var w2 = ReplayWindow()
        for n in UInt64(0)..<200 { XCTAssertTrue(w2.take(n)) }
        XCTAssertTrue(w2.take(ReplayWindow.size + 150))
        XCTAssertTrue(w2.isFresh(ReplayWindow.size + 10), "a number never seen whose bit slot was reused")
        XCTAssertFalse(w2.isFresh(100), "now too old")
        XCTAssertTrue(w2.take(ReplayWindow.size + 149))
        XCTAssertFalse(w2.take(ReplayWindow.size + 150))
    }
}
