/// Reliable streams (SPEC §13, wire format version 3): validation of a reliable stream's
/// DATA and END, and the REPAIR marking of a retransmission. STATUS and NAK, the datagrams
/// a receiver sends back, are ``StatusMessage`` and ``NakMessage``.
extension Datagram {
    /// SPEC §8 check 5 for a version 1 DATA/END: only ``DatagramFlags/known`` bits, exactly
    /// one of DATA and END.
    @inlinable @inline(__always)
    public static func plainFlagsValid(_ flags: DatagramFlags) -> Bool {
        flags.isSubset(of: .known) && flags.contains(.data) != flags.contains(.end)
    }

    /// SPEC §13.2 check 5 for a version 3 DATA/END: only ``DatagramFlags/knownReliable``
    /// bits, exactly one of DATA and END, RELIABLE set, REPAIR only with DATA.
    @inlinable @inline(__always)
    public static func reliableFlagsValid(_ flags: DatagramFlags) -> Bool {
        flags.isSubset(of: .knownReliable) && flags.contains(.data) != flags.contains(.end)
            && flags.contains(.reliable) && !(flags.contains(.repair) && flags.contains(.end))
    }

    /// Validates a stream datagram as a version 3 receiver does (SPEC §8 with §13.2):
    /// version 1 as before, version 3 with the reliable flag rules; any other version is
    /// ``Rejection/unsupportedVersion``. The same as ``validate(_:length:)``, which speaks
    /// both; kept as the name the protocol tests and the fuzz target use.
    public static func validateReliable(_ p: UnsafeRawPointer, length: Int) -> Validation {
        validate(p, length: length)
    }

    /// ``validateReliable(_:length:)`` over a buffer (empty: ``Rejection/tooShort``).
    public static func validateReliable(_ bytes: UnsafeRawBufferPointer) -> Validation {
        guard let base = bytes.baseAddress else { return .rejected(.tooShort) }
        return validateReliable(base, length: bytes.count)
    }

    /// The identity checksum of a sealed datagram (SPEC §13.3): its checksum as it would
    /// be with REPAIR clear, which a repair shares with its original. A receiver compares
    /// it, not the stored checksum, for conflicting duplicates. For a datagram without
    /// REPAIR it is the stored checksum; for a repair it costs one CRC pass (repairs are rare).
    public static func identityChecksum(_ p: UnsafeRawPointer, length: Int) -> UInt32 {
        let stored = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: DatagramHeader.checksumOffset, as: UInt32.self))
        let flags = p.load(fromByteOffset: 5, as: UInt8.self)
        guard length >= DatagramHeader.size, flags & DatagramFlags.repair.rawValue != 0 else { return stored }
        var crc = CRC32C.checksum(p, count: 5)
        var cleared = flags & ~DatagramFlags.repair.rawValue
        crc = withUnsafeBytes(of: &cleared) { CRC32C.checksum($0, continuing: crc) }
        crc = CRC32C.checksum(p + 6, count: DatagramHeader.checksumOffset - 6, continuing: crc)
        let zero: UInt32 = 0
        crc = withUnsafeBytes(of: zero) { CRC32C.checksum($0, continuing: crc) }
        let rest = DatagramHeader.checksumOffset + 4
        return CRC32C.checksum(p + rest, count: length - rest, continuing: crc)
    }

    /// Turns a sealed reliable DATA datagram in place into its repair (SPEC §13.3): sets
    /// REPAIR in the flag byte and reseals; no other byte changes (the timestamp stays the
    /// first send's). Touches 5 header bytes and reads the rest: the retransmission goes
    /// out from the same buffer. Only once the kernel is done with the buffer's previous
    /// send (the zero-copy notification). Returns the new checksum.
    @discardableResult
    public static func markRepair(_ p: UnsafeMutableRawPointer, length: Int) -> UInt32 {
        let flags = p.load(fromByteOffset: 5, as: UInt8.self)
        p.storeBytes(of: flags | DatagramFlags.repair.rawValue, toByteOffset: 5, as: UInt8.self)
        let crc = computeChecksum(UnsafeRawPointer(p), length: length)
        p.storeBytes(of: crc.bigEndian, toByteOffset: DatagramHeader.checksumOffset, as: UInt32.self)
        return crc
    }
}
