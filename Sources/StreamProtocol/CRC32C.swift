import CURing

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78, init and final XOR
/// 0xFFFFFFFF): the checksum iSCSI, SCTP and ext4 use. Runs on the SSE4.2
/// instruction where the CPU has it (checked once), a slicing-by-8 table otherwise.
public enum CRC32C {
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

    /// CRC32C of a byte collection. Copies into an array first: for tests and tools, not the data path.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        Array(bytes).withUnsafeBytes { checksum($0) }
    }

    /// The table implementation, for tests that compare both paths.
    public static func portableChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        zc_crc32c_portable(crc, bytes.baseAddress, bytes.count)
    }

    /// True when the hardware instruction is in use.
    public static var usesHardware: Bool { zc_crc32c_hardware() != 0 }
}
