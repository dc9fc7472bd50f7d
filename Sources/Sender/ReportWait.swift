#if canImport(Glibc)
import Glibc
#endif
import StreamProtocol
import ZCSystem

/// Waits for the receiver's REPORT after END.
enum ReportWait {
    /// After an ICMP port unreachable, how long to keep reading for a REPORT queued behind it.
    static let refusalGraceNanoseconds: UInt64 = 200_000_000

    /// Reads datagrams on `socket` until the REPORT of `streamID` from `from` arrives or the
    /// timeout passes; anything else (another stream's REPORT, stray datagrams) is skipped.
    static func await(on socket: borrowing UDPSocket, streamID: UInt64, from: SocketAddress, timeoutNanoseconds: UInt64) -> ReceiverAnswer {
        let start = MonotonicClock.nanoseconds()
        let deadline = start + timeoutNanoseconds
        var buffer = [UInt8](repeating: 0, count: 2048)
        var skipped = 0
        var refusedAt: UInt64 = 0
        while true {
            let now = MonotonicClock.nanoseconds()
            if now >= deadline || StopFlag.isSet { break }
            if refusedAt != 0 && now - refusedAt >= Self.refusalGraceNanoseconds {
                return .none(why: "the receiver's port is closed (ICMP port unreachable)")
            }
            let wait = min(deadline - now, 100_000_000, refusedAt != 0 ? refusedAt + Self.refusalGraceNanoseconds - now : .max)
            let result = buffer.withUnsafeMutableBytes { b in
                Result { () throws(SystemError) in try socket.receive(into: b, timeoutNanoseconds: wait) }
            }
            let got: (length: Int, from: SocketAddress?)?
            switch result {
            case .success(let g): got = g
            case .failure(let error):
                // ECONNREFUSED: an ICMP port unreachable came back. Linux reports a pending
                // ICMP error before datagrams already queued, so a REPORT may still be
                // waiting behind it: read on for a moment before believing the port is closed.
                if error.errno == ECONNREFUSED {
                    if refusedAt == 0 { refusedAt = MonotonicClock.nanoseconds() }
                    continue
                }
                return .none(why: "\(error)")
            }
            guard let got else { continue }
            if let sender = got.from, sender.host != from.host || sender.port != from.port { skipped += 1; continue }
            switch StreamReport.decode(Array(buffer[0..<got.length])) {
            case .success(let r) where r.streamID == streamID:
                return .report(r, afterNanoseconds: MonotonicClock.nanoseconds() - start)
            default:
                skipped += 1
            }
        }
        if StopFlag.isSet { return .none(why: "stopped by a signal while waiting for the REPORT") }
        let seconds = Double(timeoutNanoseconds) / 1e9
        return .none(why: "no REPORT within \(seconds) s" + (skipped > 0 ? " (\(skipped) other datagrams ignored)" : ""))
    }
}
