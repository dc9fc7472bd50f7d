import Foundation
import StreamProtocol
import XCTest

/// Loading of the golden vectors in Protocol/vectors (written by
/// Protocol/tools/zcstream.py gen-vectors, an independent Python implementation).
/// u64 values are decimal strings in the JSON; u8/u16/u32 values are numbers.
enum Vectors {
    /// Repo root: this file is <root>/Tests/StreamProtocolTests/VectorSupport.swift.
    static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["ZC_VECTORS_DIR"] {
            return URL(fileURLWithPath: dir)
        }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent() // StreamProtocolTests
            .deletingLastPathComponent() // Tests
            .deletingLastPathComponent() // repo root
            .appendingPathComponent("Protocol/vectors")
    }

    static func load<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        let url = directory.appendingPathComponent(name)
        let data = try Data(contentsOf: url)
        return try JSONDecoder().decode(T.self, from: data)
    }

    struct Fields: Decodable {
        var flags: UInt8
        var header_length: UInt16
        var stream_id: String
        var sequence: String
        var offset: String
        var timestamp_ns: String
        var payload_length: UInt32
        var checksum: UInt32

        /// The header these fields describe (u64 strings parsed strictly).
        func header(file: StaticString = #filePath, line: UInt = #line) throws -> DatagramHeader {
            DatagramHeader(
                flags: DatagramFlags(rawValue: flags),
                streamID: try u64(stream_id, file: file, line: line),
                sequence: try u64(sequence, file: file, line: line),
                offset: try u64(offset, file: file, line: line),
                timestampNanoseconds: try u64(timestamp_ns, file: file, line: line),
                payloadLength: payload_length,
                checksum: checksum,
                headerLength: header_length)
        }
    }

    struct EndTotals: Decodable {
        var datagrams: String
        var bytes: String
    }

    struct Valid: Decodable {
        var name: String
        var hex: String
        var fields: Fields
        var pattern_ok: Bool
        var first_mismatch: Int?
        var end: EndTotals?
        var extension_hex: String?
    }

    struct Invalid: Decodable {
        var name: String
        var hex: String
        var reason: String
        var fields: Fields?
        var computed_checksum: UInt32?
    }

    struct CRC: Decodable {
        var name: String
        var hex: String
        var crc32c: UInt32
    }

    static func valid() throws -> [Valid] { try load("valid.json", as: [Valid].self) }
    static func invalid() throws -> [Invalid] { try load("invalid.json", as: [Invalid].self) }
    static func crc() throws -> [CRC] { try load("crc32c.json", as: [CRC].self) }
}

struct VectorError: Error, CustomStringConvertible {
    var description: String
}

func u64(_ s: String, file: StaticString = #filePath, line: UInt = #line) throws -> UInt64 {
    guard let v = UInt64(s) else { throw VectorError(description: "not a decimal u64: \(s)") }
    return v
}

func bytes(hex: String) throws -> [UInt8] {
    let chars = Array(hex.utf8)
    guard chars.count % 2 == 0 else { throw VectorError(description: "odd hex length") }
    var out: [UInt8] = []
    out.reserveCapacity(chars.count / 2)
    var i = 0
    while i < chars.count {
        guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else {
            throw VectorError(description: "bad hex digit in \(hex)")
        }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}

private func nibble(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

func hex(_ b: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var s = ""
    for x in b { s.append(digits[Int(x >> 4)]); s.append(digits[Int(x & 15)]) }
    return s
}

/// SplitMix64: a seeded generator so random tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Validates a byte array (any alignment handled by the API's unaligned loads).
func validate(_ b: [UInt8]) -> Datagram.Validation {
    b.withUnsafeBytes { Datagram.validate($0) }
}

/// "valid", "bad_checksum", or the rejection's raw value: the names the vectors use.
func outcomeName(_ v: Datagram.Validation) -> String {
    switch v {
    case .valid: return "valid"
    case .badChecksum: return "bad_checksum"
    case .rejected(let r): return r.rawValue
    }
}
