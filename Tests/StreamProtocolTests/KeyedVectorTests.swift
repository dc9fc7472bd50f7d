import Foundation
import StreamProtocol
import TestSupport
import XCTest

/// Keyed streams (SPEC §14) against Protocol/vectors/keyed.json, written by the Python
/// reference from the spec text with the `cryptography` package (Protocol/tools/
/// gen-keyed-vectors): the same keys, byte-identical sealed datagrams, and the same
/// rejection reason, in the same check order, for every invalid one.
final class KeyedVectorTests: XCTestCase {
    struct File: Decodable {
        struct Key: Decodable { var stream_id, origin, key_hex: String }
        struct Valid: Decodable {
            var name: String
            var stream_id, origin, packet_number, sequence, offset, timestamp_ns: String
            var suite, flags: UInt8
            var header_length: UInt16
            var payload_length: UInt32
            var payload_hex, hex: String
        }
        struct Invalid: Decodable { var name, hex, reason: String }
        var secret_hex: String
        var key_id: UInt32
        var keys: [Key]
        var valid: [Valid]
        var invalid: [Invalid]
    }

    var file: File!
    var secret: StreamSecret!

    override func setUpWithError() throws {
        file = try Vectors.load("keyed.json", as: File.self)
        secret = try StreamSecret(fileContents: Array(file.secret_hex.utf8))
    }

    func testKeyIDAndDerivedKeysMatchThePythonReference() throws {
        XCTAssertEqual(secret.keyID, file.key_id)
        XCTAssertGreaterThanOrEqual(file.keys.count, 3)
        for k in file.keys {
            XCTAssertEqual(hex(secret.key(streamID: try u64(k.stream_id), origin: try u64(k.origin))), k.key_hex,
                           "stream \(k.stream_id) origin \(k.origin)")
        }
    }

    /// The reason a keyed reader gives, checks 1–9 and the END rule of §14.4.
    func reason(_ bytes: [UInt8]) -> String? {
        var copy = bytes
        return copy.withUnsafeMutableBytes { b -> String? in
            let p = b.baseAddress!
            switch KeyedDatagram.parse(p, length: b.count) {
            case .failure(let r): return r.rawValue
            case .success(let d):
                guard d.trailer.keyID == secret.keyID else { return "wrong_key" }
                let opener = DatagramAuthenticator(key: secret.key(streamID: d.header.streamID, origin: d.trailer.origin), sealing: false)
                guard opener.open(p, headerLength: Int(d.header.headerLength), payloadLength: Int(d.header.payloadLength)) else {
                    return "bad_tag"
                }
                if d.header.flags.contains(.end) && !Datagram.endTotalsAgree(d.header, payload: p + Int(d.header.headerLength)) {
                    return "bad_end"
                }
                return nil
            }
        }
    }

    func testEveryValidVectorOpensAndSwiftSealsItByteForByte() throws {
        XCTAssertGreaterThanOrEqual(file.valid.count, 10)
        for v in file.valid {
            let wire = try bytes(hex: v.hex)
            XCTAssertNil(reason(wire), v.name)
            // Opened: the plaintext payload is the vector's.
            var opened = wire
            let hlen = Int(v.header_length)
            let origin = try u64(v.origin)
            let streamID = try u64(v.stream_id)
            opened.withUnsafeMutableBytes {
                XCTAssertTrue(DatagramAuthenticator(key: secret.key(streamID: streamID, origin: origin), sealing: false)
                    .open($0.baseAddress!, headerLength: hlen, payloadLength: Int(v.payload_length)), v.name)
            }
            XCTAssertEqual(hex(Array(opened[hlen..<hlen + Int(v.payload_length)])), v.payload_hex, v.name)
            // Sealed again by Swift from the opened bytes (header, extension and plaintext as
            // sent): the same datagram.
            var resealed = opened
            let suite = try XCTUnwrap(AuthTrailer.Suite(rawValue: v.suite))
            let length = resealed.withUnsafeMutableBytes {
                DatagramAuthenticator(key: secret.key(streamID: streamID, origin: origin), sealing: true)
                    .seal($0.baseAddress!, headerLength: hlen, payloadLength: Int(v.payload_length),
                          trailer: AuthTrailer(keyID: secret.keyID, suite: suite, origin: origin,
                                               packetNumber: try! u64(v.packet_number)))
            }
            XCTAssertEqual(length, wire.count, v.name)
            XCTAssertEqual(hex(resealed), v.hex, v.name)
            let header = wire.withUnsafeBytes { DatagramHeader(reading: $0.baseAddress!) }
            XCTAssertEqual(header.flags.rawValue, v.flags, v.name)
            XCTAssertEqual(header.sequence, try u64(v.sequence), v.name)
            XCTAssertEqual(header.offset, try u64(v.offset), v.name)
            XCTAssertEqual(header.checksum, 0, "\(v.name): keyed datagrams carry no CRC")
        }
    }

    func testEveryInvalidVectorFailsWithItsReason() throws {
        XCTAssertGreaterThanOrEqual(file.invalid.count, 12)
        for v in file.invalid {
            XCTAssertEqual(reason(try bytes(hex: v.hex)), v.reason, v.name)
        }
    }

    /// A repair (SPEC §13.3, §14.3): the reliable DATA vector with REPAIR set, resealed in
    /// place under packet number 12, is the repair vector byte for byte.
    func testResealOfReliableDataIsTheRepairVector() throws {
        let data = try XCTUnwrap(file.valid.first { $0.name == "keyed_reliable_data" })
        let repair = try XCTUnwrap(file.valid.first { $0.name == "keyed_reliable_repair" })
        var wire = try bytes(hex: data.hex)
        let sealer = DatagramAuthenticator(key: secret.sourceKey(streamID: try u64(data.stream_id)), sealing: true)
        let length = wire.withUnsafeMutableBytes { b -> Int in
            b[5] |= DatagramFlags.repair.rawValue
            return sealer.reseal(b.baseAddress!, headerLength: Int(data.header_length), payloadLength: Int(data.payload_length),
                                 packetNumber: try! u64(repair.packet_number))
        }
        XCTAssertEqual(length, wire.count)
        XCTAssertEqual(hex(wire), repair.hex)
    }

    /// Suite 2: the slot holds ciphertext under the first packet number. Resealed under a new
    /// one it is exactly what sealing the plaintext afresh under that number gives, and opens
    /// to the plaintext; the old number's ciphertext is gone.
    func testResealOfAnEncryptedDatagramRestoresThePlaintextFirst() throws {
        let key = secret.sourceKey(streamID: 1)
        let sealer = DatagramAuthenticator(key: key, sealing: true)
        let payload = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        func sealed(flags: DatagramFlags, packetNumber: UInt64) -> [UInt8] {
            var b = [UInt8](repeating: 0, count: DatagramHeader.size + payload.count + AuthTrailer.size)
            b.withUnsafeMutableBytes { p in
                DatagramHeader(flags: flags, streamID: 1, sequence: 9, offset: 1800, timestampNanoseconds: 42,
                               payloadLength: UInt32(payload.count)).write(to: p.baseAddress!, version: KeyedDatagram.version)
                payload.withUnsafeBytes { (p.baseAddress! + DatagramHeader.size).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                sealer.seal(p.baseAddress!, payloadLength: payload.count,
                            trailer: AuthTrailer(keyID: secret.keyID, suite: .encrypted, origin: 0, packetNumber: packetNumber))
            }
            return b
        }
        let original = sealed(flags: [.data, .reliable], packetNumber: 3)
        XCTAssertNotEqual(Array(original[48..<248]), payload, "suite 2 encrypts the payload")
        var repair = original
        repair.withUnsafeMutableBytes { b in
            b[5] |= DatagramFlags.repair.rawValue
            sealer.reseal(b.baseAddress!, payloadLength: payload.count, packetNumber: 8)
        }
        XCTAssertEqual(repair, sealed(flags: [.data, .reliable, .repair], packetNumber: 8))
        XCTAssertNotEqual(Array(repair[48..<248]), Array(original[48..<248]), "a new nonce, a new keystream")
        let opened = repair.withUnsafeMutableBytes { b -> [UInt8]? in
            guard DatagramAuthenticator(key: key, sealing: false).open(b.baseAddress!, payloadLength: payload.count) else { return nil }
            return Array(b[48..<248])
        }
        XCTAssertEqual(opened, payload)
        // Suite 1 too: the same as a fresh seal (nothing to restore).
        var plain = [UInt8](repeating: 0, count: DatagramHeader.size + payload.count + AuthTrailer.size)
        plain.withUnsafeMutableBytes { p in
            DatagramHeader(flags: [.data, .reliable], streamID: 1, sequence: 9, offset: 1800, timestampNanoseconds: 42,
                           payloadLength: UInt32(payload.count)).write(to: p.baseAddress!, version: KeyedDatagram.version)
            payload.withUnsafeBytes { (p.baseAddress! + DatagramHeader.size).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            sealer.seal(p.baseAddress!, payloadLength: payload.count,
                        trailer: AuthTrailer(keyID: secret.keyID, suite: .authenticated, origin: 0, packetNumber: 1))
            p[5] |= DatagramFlags.repair.rawValue
            sealer.reseal(p.baseAddress!, payloadLength: payload.count, packetNumber: 2)
        }
        XCTAssertTrue(plain.withUnsafeMutableBytes { DatagramAuthenticator(key: key, sealing: false).open($0.baseAddress!, payloadLength: payload.count) })
        XCTAssertEqual(Array(plain[48..<248]), payload)
    }
}
