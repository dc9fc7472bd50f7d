/// Reading JSON back without Foundation: the reports this package writes (zc-report reads a
/// `--json-stream` run). Integers stay exact (`int` / `uint`); other numbers are doubles.
extension JSONValue {
    /// Why a text is not one JSON value.
    public struct ParseError: Error, CustomStringConvertible, Equatable {
        /// What was wrong, and the UTF-8 offset where.
        public var description: String
    }

    /// Parses one JSON value (surrounding whitespace allowed, nothing else).
    public static func parse(_ text: String) throws(ParseError) -> JSONValue {
        var parser = JSONParser(bytes: Array(text.utf8))
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.at == parser.bytes.count else { throw parser.error("text after the value") }
        return value
    }

    /// The member `key` of an object (the first, if repeated); nil for anything else.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let fields) = self else { return nil }
        return fields.first { $0.0 == key }?.1
    }

    /// A number as a Double (nil for anything else).
    public var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .uint(let u): return Double(u)
        case .double(let d): return d
        default: return nil
        }
    }

    /// A string's text (nil for anything else).
    public var text: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

private struct JSONParser {
    let bytes: [UInt8]
    var at = 0

    func error(_ what: String) -> JSONValue.ParseError { JSONValue.ParseError(description: "\(what) at byte \(at)") }

    mutating func skipSpace() {
        while at < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at]) { at += 1 }
    }

    mutating func literal(_ word: String, _ value: JSONValue) throws(JSONValue.ParseError) -> JSONValue {
        let w = Array(word.utf8)
        guard at + w.count <= bytes.count, Array(bytes[at..<at + w.count]) == w else { throw error("unknown literal") }
        at += w.count
        return value
    }

    mutating func value(depth: Int) throws(JSONValue.ParseError) -> JSONValue {
        guard depth < 512 else { throw error("nested too deep") }
        skipSpace()
        guard at < bytes.count else { throw error("unexpected end") }
        switch bytes[at] {
        case UInt8(ascii: "{"):
            at += 1
            var fields: [(String, JSONValue)] = []
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "}") { at += 1; return .object(fields) }
            while true {
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw error("expected a key") }
                let key = try string()
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { throw error("expected ':'") }
                at += 1
                fields.append((key, try value(depth: depth + 1)))
                if try closes(UInt8(ascii: "}")) { return .object(fields) }
            }
        case UInt8(ascii: "["):
            at += 1
            var items: [JSONValue] = []
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "]") { at += 1; return .array(items) }
            while true {
                items.append(try value(depth: depth + 1))
                if try closes(UInt8(ascii: "]")) { return .array(items) }
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        default: return try number()
        }
    }

    /// After a member or element: true at the closing bracket, false after a comma.
    mutating func closes(_ close: UInt8) throws(JSONValue.ParseError) -> Bool {
        skipSpace()
        guard at < bytes.count else { throw error("unexpected end") }
        if bytes[at] == UInt8(ascii: ",") { at += 1; return false }
        guard bytes[at] == close else { throw error("expected ',' or '\(Character(Unicode.Scalar(close)))'") }
        at += 1
        return true
    }

    mutating func number() throws(JSONValue.ParseError) -> JSONValue {
        let start = at
        var integral = true
        while at < bytes.count {
            let c = bytes[at]
            if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") || c == UInt8(ascii: "-") { at += 1 }
            else if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+") { integral = false; at += 1 }
            else { break }
        }
        let text = String(decoding: bytes[start..<at], as: UTF8.self)
        if integral, let i = Int64(text) { return .int(i) }
        if integral, let u = UInt64(text) { return .uint(u) }
        guard !text.isEmpty, let d = Double(text) else { throw error("not a number") }
        return .double(d)
    }

    mutating func string() throws(JSONValue.ParseError) -> String {
        at += 1  // the opening quote
        var out: [UInt8] = []
        while at < bytes.count {
            let c = bytes[at]
            at += 1
            switch c {
            case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard at < bytes.count else { throw error("unexpected end") }
                let e = bytes[at]
                at += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    guard at + 4 <= bytes.count, var code = UInt32(String(decoding: bytes[at..<at + 4], as: UTF8.self), radix: 16) else {
                        throw error("bad \\u escape")
                    }
                    at += 4
                    // A surrogate pair: the second half follows as another \u escape.
                    if (0xD800..<0xDC00).contains(code), at + 6 <= bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u"),
                       let low = UInt32(String(decoding: bytes[at + 2..<at + 6], as: UTF8.self), radix: 16), (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        at += 6
                    }
                    out.append(contentsOf: Array(String(Unicode.Scalar(code).map(Character.init) ?? "\u{FFFD}").utf8))
                default: out.append(e)  // \" \\ \/
                }
            default: out.append(c)
            }
        }
        throw error("unterminated string")
    }
}
