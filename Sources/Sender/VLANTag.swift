/// An IEEE 802.1Q tag (`--vlan ID[:PCP]`): the VLAN id and the priority code point
/// the frames carry between the Ethernet addresses and the EtherType.
public struct VLANTag: Equatable, Sendable, CustomStringConvertible {
    /// VLAN identifier, 1-4094 (0 means "priority tag only", 4095 is reserved).
    public var id: UInt16
    /// Priority code point, 0-7.
    public var priority: UInt8

    /// The tag; nil when `id` is not 0-4094 or `priority` is not 0-7.
    public init?(id: UInt16, priority: UInt8 = 0) {
        guard id <= 4094, priority <= 7 else { return nil }
        self.id = id
        self.priority = priority
    }

    /// Parses `ID` or `ID:PCP`.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let id = UInt16(parts[0]) else { return nil }
        var pcp: UInt8 = 0
        if parts.count == 2 {
            guard let p = UInt8(parts[1]) else { return nil }
            pcp = p
        }
        self.init(id: id, priority: pcp)
    }

    /// The 16-bit tag control information: PCP (3 bits), DEI 0, VID (12 bits).
    public var tagControl: UInt16 { UInt16(priority) << 13 | id }

    /// `ID:PCP`.
    public var description: String { "\(id):\(priority)" }
}
