import ZCSystem

/// Spaces sends to a target rate. Each send is due at a time on an ideal schedule;
/// a sender that fell behind may catch up by at most `maxBurstNanoseconds`, so a
/// stall is not followed by a flood. No state but two integers: no allocation.
package struct Pacer {
    /// Time each UDP payload bit costs at a bit rate (0 for a packet rate).
    package let nanosecondsPerBit: Double
    /// Time each datagram costs at a packet rate (0 for a bit rate).
    package let nanosecondsPerPacket: Double
    private var due: UInt64 = 0
    private let maxBurstNanoseconds: UInt64 = 2_000_000
    /// Sends may go this far ahead of their due time, so a slow stream wakes up at
    /// most ~2000 times a second and sends a small burst, instead of paying a
    /// timer wake-up per datagram.
    private let earlyNanoseconds: UInt64 = 500_000

    /// A pacer for `rate`; nil when `rate` is nil (unpaced).
    package init?(rate: Rate?) {
        switch rate {
        case nil:
            return nil
        case .bitsPerSecond(let b):
            nanosecondsPerBit = 1e9 / b
            nanosecondsPerPacket = 0
        case .packetsPerSecond(let p):
            nanosecondsPerBit = 0
            nanosecondsPerPacket = 1e9 / p
        }
    }

    /// Nanoseconds to wait before the next send may go, 0 if it may go now.
    @inline(__always)
    package mutating func delay(now: UInt64) -> UInt64 {
        if due == 0 { due = now }
        if due + maxBurstNanoseconds < now { due = now - maxBurstNanoseconds }
        // Blocked: sleep until the send is due, then a burst of up to `early` goes.
        return due > now + earlyNanoseconds ? due - now : 0
    }

    /// Charges a send of `datagrams` datagrams carrying `bytes` UDP payload bytes.
    /// Bits count the UDP payload, as iperf3 does.
    @inline(__always)
    package mutating func charge(datagrams: Int, bytes: Int) {
        let cost = Double(bytes) * 8 * nanosecondsPerBit + Double(datagrams) * nanosecondsPerPacket
        due &+= UInt64(cost)
    }
}
