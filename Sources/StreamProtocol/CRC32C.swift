import CCRC32C

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78, init and final XOR
/// 0xFFFFFFFF): the checksum iSCSI, SCTP and ext4 use.
///
/// Several kernels (``Variant``) compute it; the fastest this CPU runs is chosen once,
/// at first use, unless the environment variable `ZC_CRC32C` names another supported
/// one (`portable`, `sse42-3lane`, `pclmulqdq-avx2`, `vpclmulqdq-avx512`) or
/// ``select(_:)`` forces one. Every variant computes the same function.
public enum CRC32C {
    /// The kernels, slowest first.
    public enum Variant: Int32, CaseIterable, Sendable, CustomStringConvertible {
        /// Slicing-by-8 tables: any CPU.
        case portable = 0
        /// The SSE4.2 crc32 instruction, three interleaved lanes.
        case sse42 = 1
        /// PCLMULQDQ folding, 4 x 16-byte accumulators; AVX2 pattern generator.
        case pclmul = 2
        /// VPCLMULQDQ + AVX-512 folding, 4 x 64-byte accumulators.
        case avx512 = 3

        /// The name reports and `ZC_CRC32C` use, e.g. "vpclmulqdq-avx512".
        public var description: String { String(cString: zc_crc32c_name(rawValue)) }
        /// True when this CPU (and OS) can run the variant.
        public var isSupported: Bool { zc_crc32c_supported(rawValue) != 0 }
        /// The variant with this name, if any.
        public init?(name: String) {
            guard let v = Variant.allCases.first(where: { $0.description == name }) else { return nil }
            self = v
        }
        /// Every variant this machine runs.
        public static var supported: [Variant] { allCases.filter(\.isSupported) }
    }

    /// The variant in use.
    public static var active: Variant { Variant(rawValue: zc_crc32c_active()) ?? .portable }

    /// Forces `variant` for the whole process (tests, benchmarks). False when unsupported.
    @discardableResult
    public static func select(_ variant: Variant) -> Bool { zc_crc32c_select(variant.rawValue) == 0 }

    /// CRC32C of `bytes`, continuing from `crc` (0 to start).
    @inline(__always)
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        zc_crc32c(crc, bytes.baseAddress, bytes.count)
    }

    /// CRC32C of the `count` bytes at `pointer`, continuing from `crc` (0 to start).
    @inline(__always)
    public static func checksum(_ pointer: UnsafeRawPointer, count: Int, continuing crc: UInt32 = 0) -> UInt32 {
        zc_crc32c(crc, pointer, count)
    }

    /// The same with an explicit (supported) variant.
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0, variant: Variant) -> UInt32 {
        precondition(variant.isSupported, "CRC32C variant \(variant) not supported here")
        return zc_crc32c_variant(variant.rawValue, crc, bytes.baseAddress, bytes.count)
    }

    /// CRC32C of a byte collection. Copies into an array first: for tests and tools, not the data path.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        Array(bytes).withUnsafeBytes { checksum($0) }
    }

    /// The table implementation, for tests that compare both paths.
    public static func portableChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        checksum(bytes, continuing: crc, variant: .portable)
    }

    /// True when a hardware kernel (anything but ``Variant/portable``) is in use.
    public static var usesHardware: Bool { active != .portable }

    /// crc(A ‖ B) from crc(A), crc(B) and the length of B (CRC32C is linear: crc(A) is
    /// multiplied by x^(8·len(B)) mod P, the "zeros operator", then xored with crc(B)).
    public static func combine(_ crcA: UInt32, _ crcB: UInt32, lengthB: Int) -> UInt32 {
        zc_crc32c_combine(crcA, crcB, UInt64(lengthB))
    }

    /// ``combine(_:_:lengthB:)`` for one fixed length of B, as four table lookups:
    /// for a payload whose CRC is known, the checksum of header ‖ payload costs the
    /// header's CRC and one `combine`.
    public struct Combiner: Sendable {
        /// The length of B this combiner shifts over.
        public let lengthB: Int
        @usableFromInline let table: [UInt32]  // 4 x 256

        /// Builds the zeros operator for `lengthB` bytes (1024 table entries, once).
        public init(lengthB: Int) {
            self.lengthB = lengthB
            var t = [UInt32](repeating: 0, count: 1024)
            t.withUnsafeMutableBufferPointer { zc_crc32c_shift_table($0.baseAddress!, UInt64(lengthB)) }
            table = t
        }

        /// Seals a datagram whose payload (``lengthB`` bytes) has CRC `payloadCRC`: the
        /// header's CRC, shifted past the payload and combined, in the checksum field.
        @inlinable @inline(__always)
        public func seal(_ datagram: UnsafeMutableRawPointer, payloadCRC: UInt32) {
            table.withUnsafeBufferPointer { _ = zc_crc32c_seal_fixed(datagram, payloadCRC, $0.baseAddress!) }
        }

        /// crc(A ‖ B) from crc(A) and crc(B).
        @inline(__always)
        public func combine(_ crcA: UInt32, _ crcB: UInt32) -> UInt32 {
            table.withUnsafeBufferPointer { t in
                t[Int(crcA & 0xFF)] ^ t[256 + Int((crcA >> 8) & 0xFF)] ^ t[512 + Int((crcA >> 16) & 0xFF)]
                    ^ t[768 + Int(crcA >> 24)] ^ crcB
            }
        }
    }
}
