import CLISupport
import Receiver
import StreamProtocol

/// The end-of-run report, as JSON for scripts and as text for people.
enum ReceiverReportFormatter {
    static func json(_ r: ReceiverReport, verdict: Verdict) -> JSONValue {
        let t = Totals(r)
        let seconds = r.dataSeconds
        let stats = r.core.statistics
        var invalidByReason: [(String, JSONValue)] = Datagram.Rejection.allCases.map { ($0.rawValue, .uint(stats.invalid[$0.index])) }
        invalidByReason.append(("too_many_streams", .uint(stats.tooManyStreams)))
        let streams: [JSONValue] = r.core.streams.map { s in
            let summary = s.summary()
            let sSeconds = s.lastArrivalNanoseconds > s.firstArrivalNanoseconds ? Double(s.lastArrivalNanoseconds - s.firstArrivalNanoseconds) / 1e9 : 0
            var fields: [(String, JSONValue)] = [
                ("stream_id", .uint(s.streamID)),
                ("datagrams", .uint(s.datagrams)),
                ("received", .uint(s.datagrams)),
                ("unique", .uint(s.tracker.unique)),
                ("bytes", .uint(s.bytes)),
                ("expected_datagrams", s.expected.map { .uint($0.datagrams) } ?? .null),
                ("expected_payload_bytes", s.expected.map { .uint($0.bytes) } ?? .null),
                ("lost", .uint(summary.lost)),
                ("lost_ranges", .array(summary.lostRanges.map { .array([.uint($0.lowerBound), .uint($0.upperBound)]) })),
                ("lost_range_count", .uint(summary.lostRangeCount)),
                ("reordered", .uint(s.tracker.reordered)),
                ("max_reorder_distance", .uint(s.tracker.maxReorderDistance)),
                ("duplicates", .uint(s.tracker.duplicates)),
                ("corrupt", .uint(s.corrupt)),
                ("checksum_errors", .uint(s.checksumErrors)),
                ("pattern_mismatches", .uint(s.patternMismatches)),
                ("late", .uint(s.tracker.late)),
                ("after_end", .uint(s.afterEnd)),
                ("ends_received", .uint(s.endsReceived)),
                ("complete", .bool(s.isComplete)),
                ("seconds", .double(sSeconds)),
                ("gbps", .double(sSeconds > 0 ? Double(s.bytes) * 8 / sSeconds / 1e9 : 0)),
            ]
            if s.latencySamples > 0 {
                fields.append(("latency_us", .object([
                    ("min", .double(Double(s.latencyMin) / 1e3)),
                    ("avg", .double(Double(s.latencySum) / Double(s.latencySamples) / 1e3)),
                    ("max", .double(Double(s.latencyMax) / 1e3)),
                ])))
            }
            return .object(fields)
        }
        return .object([
            ("role", .string("receiver")),
            ("engine", .string(r.configuration.engine.rawValue)),
            ("listen", .string(r.boundAddress.description)),
            ("gro", .bool(r.groEnabled)),
            ("rcvbuf", .int(Int64(r.receiveBufferBytes))),
            ("datagrams", .uint(t.datagrams)),
            ("bytes", .uint(t.bytes)),
            ("seconds", .double(seconds)),
            ("gbps", .double(seconds > 0 ? Double(t.bytes) * 8 / seconds / 1e9 : 0)),
            ("pps", .double(seconds > 0 ? Double(t.datagrams) / seconds : 0)),
            ("unique", .uint(t.unique)),
            ("lost", .uint(t.lost)),
            ("reordered", .uint(t.reordered)),
            ("duplicates", .uint(t.duplicates)),
            ("corrupt", .uint(t.corrupt)),
            ("corrupt_unattributed", .uint(stats.corruptUnattributed)),
            ("late", .uint(t.late)),
            ("invalid", .uint(stats.invalidTotal)),
            ("invalid_by_reason", .object(invalidByReason)),
            ("kernel_drops", .uint(stats.kernelDrops)),
            ("receive_calls", .uint(stats.receiveCalls)),
            ("coalesced_buffers", .uint(stats.coalescedBuffers)),
            ("stop_reason", .string(r.stopReason.rawValue)),
            ("wall_seconds", .double(r.wallSeconds)),
            ("ok", .bool(verdict.ok)),
            ("failures", .array(verdict.failures.map { .string($0) })),
            ("streams", .array(streams)),
        ])
    }

    static func text(_ r: ReceiverReport, verdict: Verdict) -> String {
        let t = Totals(r)
        let seconds = r.dataSeconds
        let stats = r.core.statistics
        var lines = [
            "zc-recv \(r.configuration.engine.rawValue) on \(r.boundAddress)  GRO \(r.groEnabled ? "on" : "off")  \(r.core.streams.count) stream(s); stopped by \(r.stopReason.rawValue)",
            "  received \(t.datagrams) datagrams, \(Units.bytes(t.bytes)) in \(Units.fixed(seconds, 3)) s: \(Units.bitRate(seconds > 0 ? Double(t.bytes) * 8 / seconds : 0)), \(Units.count(seconds > 0 ? Double(t.datagrams) / seconds : 0, unit: "pps"))",
            "  lost \(t.lost)  reordered \(t.reordered)  duplicates \(t.duplicates)  corrupt \(t.corrupt)  invalid \(stats.invalidTotal)  kernel-drops \(stats.kernelDrops)",
        ]
        for s in r.core.streams {
            let summary = s.summary()
            var line = "  stream 0x\(String(s.streamID, radix: 16)): \(s.tracker.unique)/\(summary.expectedDatagrams.map(String.init) ?? "?") unique, lost \(summary.lost)"
            if !summary.lostRanges.isEmpty {
                let shown = summary.lostRanges.prefix(5).map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
                line += " [\(shown.joined(separator: ", "))\(summary.lostRangeCount > 5 ? ", ..." : "")]"
            }
            line += ", reordered \(s.tracker.reordered), duplicates \(s.tracker.duplicates), corrupt \(s.corrupt)\(s.isComplete ? ", complete" : s.expected == nil ? ", no END seen" : "")"
            lines.append(line)
        }
        if stats.kernelDrops > 0 {
            lines.append("  note: the kernel dropped \(stats.kernelDrops) datagrams because the socket buffer was full (rcvbuf \(Units.bytes(UInt64(r.receiveBufferBytes)))): raise --rcvbuf or pace the sender")
        }
        lines.append(verdict.ok ? "  verdict: ok" : "  verdict: FAIL (\(verdict.failures.joined(separator: "; ")))")
        return lines.joined(separator: "\n")
    }
}
