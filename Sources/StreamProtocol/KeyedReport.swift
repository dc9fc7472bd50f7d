/// A REPORT of a keyed stream (SPEC §14): the version 2 REPORT's header and body, version 4,
/// no CRC, the trailer sealed under the reporting receiver's key.
extension StreamReport {
    /// Why a keyed REPORT was not taken.
    public enum KeyedRejection: Error, Equatable, Sendable, CustomStringConvertible {
        /// Dropped by SPEC §14.4 checks 1–9: counted unauthenticated.
        case unauthenticated(KeyedDatagram.Rejection)
        /// Authentic, but not a REPORT (a receiver's STATUS or NAK).
        case notReport
        /// Authentic, but its body breaks §12.3 check 8.
        case badBody(Rejection)

        public var description: String {
            switch self {
            case .unauthenticated(let r): return "unauthenticated (\(r.rawValue))"
            case .notReport: return "not a REPORT"
            case .badBody(let r): return "bad REPORT body (\(r))"
            }
        }
    }

    /// Seals an encoded REPORT (``encoded(limit:)``, version 2) as keyed: version 4, checksum
    /// 0, the trailer with `receiverID` as origin and `packetNumber`, tagged under the
    /// receiver's key for the stream. 40 bytes longer.
    public static func sealKeyed(_ report: [UInt8], secret: StreamSecret, receiverID: UInt64, packetNumber: UInt64) -> [UInt8] {
        precondition(receiverID != 0, "a receiver id is never 0")
        var bytes = report + [UInt8](repeating: 0, count: AuthTrailer.size)
        let streamID = bytes.withUnsafeBytes { DatagramHeader(reading: $0.baseAddress!).streamID }
        let sealer = DatagramAuthenticator(key: secret.receiverKey(streamID: streamID, receiverID: receiverID), sealing: true)
        bytes.withUnsafeMutableBytes { b in
            KeyedDatagram.seal(b.baseAddress!, authenticator: sealer,
                               trailer: AuthTrailer(keyID: secret.keyID, suite: .authenticated, origin: receiverID, packetNumber: packetNumber))
        }
        return bytes
    }

    /// Opens a keyed REPORT: SPEC §14.4 checks 1–9 under the key of the receiver the
    /// trailer names, then the body rules of §12.3. Returns the report and that receiver's id.
    public static func decodeKeyed(_ bytes: [UInt8], secret: StreamSecret) -> Result<(report: StreamReport, receiverID: UInt64), KeyedRejection> {
        var copy = bytes
        return copy.withUnsafeMutableBytes { b -> Result<(report: StreamReport, receiverID: UInt64), KeyedRejection> in
            let p = b.baseAddress!
            let parsed: KeyedDatagram.Parsed
            switch KeyedDatagram.parse(p, length: b.count) {
            case .failure(let r): return .failure(.unauthenticated(r))
            case .success(let d): parsed = d
            }
            guard parsed.trailer.keyID == secret.keyID else { return .failure(.unauthenticated(.wrongKey)) }
            let opener = DatagramAuthenticator(key: secret.receiverKey(streamID: parsed.header.streamID, receiverID: parsed.trailer.origin),
                                               sealing: false)
            guard opener.open(p, headerLength: Int(parsed.header.headerLength), payloadLength: Int(parsed.header.payloadLength)) else {
                return .failure(.unauthenticated(.badTag))
            }
            guard parsed.kind == .report else { return .failure(.notReport) }
            // Authentic: read the body with the version 2 rules (version and CRC as a v2 REPORT).
            var plain = [UInt8](repeating: 0, count: b.count - AuthTrailer.size)
            plain.withUnsafeMutableBytes { KeyedDatagram.unseal(p, length: b.count, version: StreamReport.version, into: $0.baseAddress!) }
            switch decode(plain) {
            case .success(let r): return .success((r, parsed.trailer.origin))
            case .failure(let r): return .failure(.badBody(r))
            }
        }
    }
}
