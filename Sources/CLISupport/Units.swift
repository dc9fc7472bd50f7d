/// Parsing and printing of the quantities the CLIs take and show.
public enum Units {
    /// A 32-bit value (a key id) as `0x` and 8 hex digits.
    public static func hex32(_ v: UInt32) -> String {
        let digits = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// `64K`, `16M`, `1G` (powers of 1024), or a plain number of bytes.
    public static func parseBytes(_ text: String) -> UInt64? {
        var s = text.uppercased()
        if s.hasSuffix("IB") { s.removeLast(2) } else if s.hasSuffix("B") { s.removeLast() }
        var scale: UInt64 = 1
        if let last = s.last, let m = ["K": UInt64(1) << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40][String(last)] {
            scale = m
            s.removeLast()
        }
        guard let v = UInt64(s) else { return nil }
        let (product, overflow) = v.multipliedReportingOverflow(by: scale)
        return overflow ? nil : product
    }

    /// `10s`, `1.5`, `500ms`, `2m` into nanoseconds.
    public static func parseDuration(_ text: String) -> UInt64? {
        var s = text.lowercased()
        var scale = 1e9
        if s.hasSuffix("ms") { scale = 1e6; s.removeLast(2) }
        else if s.hasSuffix("us") { scale = 1e3; s.removeLast(2) }
        else if s.hasSuffix("s") { s.removeLast() }
        else if s.hasSuffix("m") { scale = 60e9; s.removeLast() }
        else if s.hasSuffix("h") { scale = 3600e9; s.removeLast() }
        guard let v = Double(s), v.isFinite, v >= 0, v * scale < 1.8e19 else { return nil }
        return UInt64(v * scale)
    }

    /// `3.21 Gbit/s` style.
    public static func bitRate(_ bitsPerSecond: Double) -> String {
        scaled(bitsPerSecond, unit: "bit/s")
    }

    /// `value` with a decimal (SI) prefix and two decimals, e.g. `1.25 Mpps` for `count(1.25e6, unit: "pps")`.
    public static func count(_ value: Double, unit: String) -> String {
        scaled(value, unit: unit)
    }

    private static func scaled(_ v: Double, unit: String) -> String {
        let steps: [(Double, String)] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        for (factor, prefix) in steps where abs(v) >= factor {
            return fixed(v / factor, 2) + " " + prefix + unit
        }
        return fixed(v, 2) + " " + unit
    }

    /// A fixed-point rendering without Foundation's String(format:).
    public static func fixed(_ v: Double, _ digits: Int) -> String {
        guard v.isFinite else { return "-" }
        var p = 1.0
        for _ in 0..<digits { p *= 10 }
        let r = (abs(v) * p).rounded()
        let whole = UInt64(r / p)
        var frac = String(UInt64(r) - whole * UInt64(p))
        while frac.count < digits { frac = "0" + frac }
        return (v < 0 && r > 0 ? "-" : "") + String(whole) + (digits > 0 ? "." + frac : "")
    }

    /// A byte count in binary units with two decimals, e.g. `1.50 GiB`; below 1 KiB, `512 B`.
    public static func bytes(_ b: UInt64) -> String {
        let units: [(UInt64, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (f, u) in units where b >= f { return fixed(Double(b) / Double(f), 2) + " " + u }
        return "\(b) B"
    }

    /// A CPU list as taskset writes it: `0,2`, `0-3`, `0-1,4`. Nil when malformed.
    public static func parseCPUList(_ text: String) -> [Int]? {
        var out: [Int] = []
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            if bounds.count == 1, let a = bounds[0], a >= 0 { out.append(a) }
            else if bounds.count == 2, let a = bounds[0], let b = bounds[1], a >= 0, b >= a { out += Array(a...b) }
            else { return nil }
        }
        return out
    }
}
