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
    /// With `key` (a keyed stream, SPEC §14.6) only a REPORT sealed under a receiver's key
    /// for this stream is taken; everything else is counted unauthenticated and ignored.
    static func await(on socket: borrowing UDPSocket, streamID: UInt64, from: SocketAddress, timeoutNanoseconds: UInt64,
                      key: StreamSecret? = nil) -> ReceiverAnswer {
        let start = MonotonicClock.nanoseconds()
        let deadline = start + timeoutNanoseconds
        var buffer = [UInt8](repeating: 0, count: 2048)
        var skipped = 0
        var unauthenticated: [KeyedDatagram.Rejection: Int] = [:]
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
            let bytes = Array(buffer[0..<got.length])
            if let key {
                switch StreamReport.decodeKeyed(bytes, secret: key) {
                case .success(let r) where r.report.streamID == streamID:
                    return .report(r.report, afterNanoseconds: MonotonicClock.nanoseconds() - start)
                case .failure(.unauthenticated(let reason)):
                    unauthenticated[reason, default: 0] += 1
                default:
                    skipped += 1
                }
                continue
            }
            switch StreamReport.decode(bytes) {
            case .success(let r) where r.streamID == streamID:
                return .report(r, afterNanoseconds: MonotonicClock.nanoseconds() - start)
            default:
                skipped += 1
            }
        }
        if StopFlag.isSet { return .none(why: "stopped by a signal while waiting for the REPORT") }
        let seconds = Double(timeoutNanoseconds) / 1e9
        var why = "no REPORT within \(seconds) s" + (skipped > 0 ? " (\(skipped) other datagrams ignored)" : "")
        if !unauthenticated.isEmpty {
            let reasons = unauthenticated.sorted { $0.key.index < $1.key.index }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")
            why += "; \(unauthenticated.values.reduce(0, +)) unauthenticated datagrams ignored (\(reasons))"
            if unauthenticated[.wrongKey] != nil { why += ": the receiver holds a different --key" }
            if unauthenticated[.notKeyed] != nil { why += ": a REPORT without a tag (does the receiver have --key?)" }
        }
        return .none(why: why)
    }
}
