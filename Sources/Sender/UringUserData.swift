/// What a completion's `user_data` names: the send of a slot, or a read into a slot.
/// The one encoding the io_uring send engine writes into SQEs and reads back from
/// CQEs: the operation in the top byte, the slot below.
enum UringUserData {
    enum Operation: UInt8 {
        /// SEND or SEND_ZC of a slot (its completion, and for SEND_ZC its notification).
        case send = 1
        /// A READV of a file into a slot's payload positions.
        case read = 2
        /// A repair: one datagram sent again from inside a held slot (reliable streams).
        case repair = 3
    }

    @inline(__always)
    static func encode(_ operation: Operation, slot: Int) -> UInt64 {
        UInt64(operation.rawValue) << 56 | UInt64(UInt32(truncatingIfNeeded: slot))
    }

    /// The operation and slot; nil for a value this engine never wrote.
    @inline(__always)
    static func decode(_ value: UInt64) -> (operation: Operation, slot: Int)? {
        guard let operation = Operation(rawValue: UInt8(truncatingIfNeeded: value >> 56)) else { return nil }
        return (operation, Int(UInt32(truncatingIfNeeded: value)))
    }
}
