import Foundation
import StreamProtocol
import TestSupport
import XCTest

/// Loading of the golden vectors in Protocol/vectors (written by
/// Protocol/tools/zcstream.py gen-vectors, an independent Python implementation).
/// u64 values are decimal strings in the JSON; u8/u16/u32 values are numbers.
enum Vectors {
    static var directory: URL { Repository.vectors }

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
