import CLISupport
import Receiver
import StreamProtocol
import ZCSystem

/// The end-of-run report, as JSON for scripts and as text for people.
enum ReceiverReportFormatter {
    static func latencyJSON(_ l: LatencyHistogram.Summary) -> JSONValue {
        .object([
            ("samples", .uint(l.samples)),
            ("min", .double(l.minMicroseconds)),
            ("p50", .double(l.p50)),
            ("p99", .double(l.p99)),
            ("p99_9", .double(l.p999)),
            ("max", .double(l.maxMicroseconds)),
            ("mean", .double(l.meanMicroseconds)),
            ("negative", .uint(l.negative)),
            ("clamped", .uint(l.clamped)),
        ])
    }

    static func spans(_ r: [ByteRanges.Span]) -> JSONValue {
        .array(r.map { .array([.uint($0.lower), .uint($0.upper)]) })
    }

    static func outputJSON(_ o: StreamOutputReport) -> JSONValue {
        .object([
            ("path", .string(o.destination)),
            ("bytes_written", .uint(o.bytesWritten)),
            ("length", .uint(o.length)),
            // Half-open byte ranges [start, end) of the stream missing from the output.
            ("holes", spans(o.holes.ranges)),
            ("hole_count", .uint(o.holes.count)),
            ("hole_bytes", .uint(o.holes.bytes)),
            ("holes_complete", .bool(o.holesComplete)),
            ("late_datagrams", .uint(o.lateDatagrams)),
            ("late_bytes", .uint(o.lateBytes)),
            ("write_errors", .uint(o.writeErrors)),
            ("first_write_error", o.firstWriteError == 0 ? .null : .string(SystemError.describe(o.firstWriteError))),
            // The output is the whole stream: END seen, no hole, everything on disk.
            ("ok", .bool(o.complete)),
            ("complete", .bool(o.complete)),
            ("end_seen", .bool(o.endSeen)),
            // Everything that arrived intact is in the output and on disk (holes aside).
            ("arrived_bytes_written", .bool(o.ok)),
            ("incomplete", .array(o.incompleteness.map { .string($0) })),
            // Half-open ranges [start, end) that arrived but are not in the file: a write failed,
            // the file could not be opened, or it was deleted.
            ("failed_ranges", spans(o.failedRanges.ranges)),
            ("failed_range_count", .uint(o.failedRanges.count)),
            ("failed_bytes", .uint(o.failedRanges.bytes)),
            ("failed_ranges_complete", .bool(o.failedRangesComplete)),
            // Ranges that arrived but lie at or beyond max_bytes or the END total: not written.
            ("beyond_limit", spans(o.beyondLimit.ranges)),
            ("beyond_limit_count", .uint(o.beyondLimit.count)),
            ("beyond_limit_bytes", .uint(o.beyondLimit.bytes)),
            ("max_bytes", o.maxBytes.map { .uint($0) } ?? .null),
            ("open_error", o.openError == 0 ? .null : .string(SystemError.describe(o.openError))),
            ("deleted", .bool(o.fileDeleted)),
            ("synced", .bool(o.synced)),
            ("fsync_seconds", .double(o.fsyncSeconds)),
            ("interval_syncs", .uint(o.intervalSyncs)),
            // Seconds between the last successful sync (final or interval) and this report; null: never synced.
            ("last_sync_seconds_ago", o.lastSyncNanoseconds == 0 ? .null
                : .double(Double(MonotonicClock.nanoseconds() &- o.lastSyncNanoseconds) / 1e9)),
            ("sync_error", o.syncError == 0 ? .null : .string(SystemError.describe(o.syncError))),
        ])
    }

    /// One stream's record: the same keys in zc-recv's report (`streams`), in a server's
    /// NDJSON lines, and in zc-send's `receiver` object (from the REPORT).
    static func streamFields(_ s: StreamState) -> [(String, JSONValue)] {
        let summary = s.summary()
        let sSeconds = s.lastArrivalNanoseconds > s.firstArrivalNanoseconds ? Double(s.lastArrivalNanoseconds - s.firstArrivalNanoseconds) / 1e9 : 0
        var fields: [(String, JSONValue)] = [
            // Stream ids are u64: a string (as in the text report), so no JSON parser rounds them.
            ("stream_id", .string(hexID(s.streamID))),
            ("source", .string(s.source.description)),
            ("datagrams", .uint(s.datagrams)),
            ("received", .uint(s.datagrams)),
            ("unique", .uint(s.tracker.unique)),
            ("unique_payload_bytes", .uint(s.uniquePayloadBytes)),
            ("bytes", .uint(s.bytes)),
            ("end_seen", .bool(s.endSeen)),
            ("expected_datagrams", .uint(s.expectedDatagrams)),
            ("expected_payload_bytes", .uint(s.expectedPayloadBytes)),
            ("lost", .uint(summary.lost)),
            ("lost_ranges", .array(summary.lostRanges.map { .array([.uint($0.lowerBound), .uint($0.upperBound)]) })),
            ("lost_range_count", .uint(summary.lostRangeCount)),
            ("reordered", .uint(s.tracker.reordered)),
            ("max_reorder_distance", .uint(s.tracker.maxReorderDistance)),
            ("duplicates", .uint(s.tracker.duplicates)),
            ("conflicting_duplicates", .uint(s.conflictingDuplicates)),
            ("reliable", .bool(s.reliable)),
            ("repaired", .uint(s.repaired)),
            ("repair_duplicates", .uint(s.repairDuplicates)),
            ("naks_sent", .uint(s.naksSent)),
            ("status_sent", .uint(s.statusSent)),
            ("gave_up", .bool(s.gaveUp)),
            ("mode_mismatches", .uint(s.modeMismatches)),
            ("corrupt", .uint(s.corrupt)),
            ("checksum_errors", .uint(s.checksumErrors)),
            ("pattern_mismatches", .uint(s.patternMismatches)),
            ("late", .uint(s.tracker.late)),
            ("beyond_end", .uint(s.beyondEnd)),
            ("beyond_end_payload_bytes", .uint(s.beyondEndPayloadBytes)),
            ("after_end", .uint(s.afterEnd)),
            ("ends_received", .uint(s.endsReceived)),
            ("end_mismatches", .uint(s.endMismatches)),
            ("merge_unresolved", .uint(s.tracker.mergeUnresolved)),
            ("exact", .bool(s.exact)),
            ("complete", .bool(s.isComplete)),
            ("first_sequence", s.firstSequence.map { .uint($0) } ?? .null),
            // Multicast: the stream began before this receiver joined (its head not seen).
            ("joined_late", .bool(s.joinedLate)),
            ("head_not_counted", .uint(s.headNotCounted)),
            ("seconds", .double(sSeconds)),
            ("gbps", .double(sSeconds > 0 ? Double(s.bytes) * 8 / sSeconds / 1e9 : 0)),
            // Outages (send-time clock): loss ranges, the longest in sequence numbers (of the
            // listed ranges) and in ms (the send-time jump where a gap opened), first to last.
            ("gaps", .uint(summary.lostRangeCount)),
            ("longest_gap_datagrams", .uint(summary.lostRanges.map { $0.upperBound - $0.lowerBound + 1 }.max() ?? 0)),
            ("longest_gap_ms", .double(Double(s.longestGapNanoseconds) / 1e6)),
            ("first_to_last_ms", .double(Double(s.firstToLastSendNanoseconds) / 1e6)),
        ]
        if let l = s.latency.summary { fields.append(("latency_us", latencyJSON(l))) }
        if let o = s.output { fields.append(("output", outputJSON(o))) }
        return fields
    }

    static func json(_ r: ReceiverReport, verdict: Verdict) -> JSONValue {
        let t = Totals(r)
        let seconds = r.dataSeconds
        let stats = r.core.statistics
        let invalidByReason: [(String, JSONValue)] = Datagram.Rejection.allCases.map { ($0.rawValue, .uint(stats.invalid[$0.index])) }
        let streams: [JSONValue] = r.core.streams.enumerated().map { i, s in
            var fields = streamFields(s)
            if i < r.reportOutcomes.count { fields.append(("report", .string(r.reportOutcomes[i].description))) }
            return .object(fields)
        }
        let expected = t.expected
        return .object([
            ("role", .string("receiver")),
            ("engine", .string(r.configuration.engine.rawValue)),
            ("crc32c", .string(CRC32C.active.description)),
            ("listen", .string(r.boundAddress.description)),
            ("gro", .bool(r.groEnabled)),
            ("threads", .int(Int64(r.threads.count))),
            ("rcvbuf", .int(Int64(r.receiveBufferBytes))),
            ("rcvbuf_requested", .int(Int64(r.configuration.receiveBufferBytes))),
            ("rcvbuf_forced", .bool(r.receiveBufferForced)),
            ("rmem_max", r.receiveBufferLimit.map { .int(Int64($0)) } ?? .null),
            ("datagrams", .uint(t.datagrams)),
            ("bytes", .uint(t.bytes)),
            ("seconds", .double(seconds)),
            ("gbps", .double(seconds > 0 ? Double(t.bytes) * 8 / seconds / 1e9 : 0)),
            ("pps", .double(seconds > 0 ? Double(t.datagrams) / seconds : 0)),
            ("unique", .uint(t.unique)),
            ("expected", .uint(expected)),
            ("lost", .uint(t.lost)),
            ("loss_percent", .double(expected == 0 ? 0 : Double(t.lost) / Double(expected) * 100)),
            ("reordered", .uint(t.reordered)),
            ("duplicates", .uint(t.duplicates)),
            ("corrupt", .uint(t.corrupt)),
            ("corrupt_unattributed", .uint(stats.corruptUnattributed)),
            ("late", .uint(t.late)),
            ("beyond_end", .uint(t.beyondEnd)),
            ("after_end", .uint(t.afterEnd)),
            ("exact", .bool(t.exact)),
            // SPEC §8 rejections only; resource limits are counted apart below.
            ("invalid", .uint(stats.invalidTotal)),
            ("invalid_by_reason", .object(invalidByReason)),
            // --key (SPEC §14): whether this receiver took only keyed datagrams, and what it
            // dropped before any stream saw it (never in a stream's counters or the verdict).
            ("keyed", r.configuration.key.map { .object([("key_id", .string(Units.hex32($0.keyID)))]) } ?? .null),
            ("unauthenticated", .uint(stats.unauthenticatedTotal)),
            ("keyed_without_key", .uint(stats.keyedWithoutKey)),
            ("unauthenticated_by_reason", .object(KeyedDatagram.Rejection.allCases.map { ($0.rawValue, .uint(stats.unauthenticated[$0.index])) })),
            ("max_streams", .int(Int64(r.configuration.maxStreams))),
            // Valid datagrams of streams beyond --max-streams: not accounted anywhere else.
            ("streams_refused_datagrams", .uint(stats.streamsRefusedDatagrams)),
            // Datagrams cut by the receive buffer: content unknown.
            ("truncated", .uint(stats.truncated)),
            // --allow: datagrams from sources outside it, dropped before validation, by host.
            ("allow", r.configuration.allowList.map { .array($0.rules.map { .string($0.description) }) } ?? .null),
            ("not_allowed", .uint(r.core.refusedSources.total)),
            ("not_allowed_sources", .array(r.core.refusedSources.byHost.sorted { $0.value > $1.value }.map {
                .object([("source", .string($0.key.socketAddress?.host ?? "unknown")), ("datagrams", .uint($0.value))])
            })),
            ("not_allowed_untracked", .uint(r.core.refusedSources.untracked)),
            ("retired_stream_datagrams", .uint(stats.retiredStreamDatagrams)),
            ("reorder_window", .uint(UInt64(SequenceTracker.defaultWindow))),
            // SO_RXQ_OVFL: socket buffers the kernel dropped for lack of room at this receiver.
            ("kernel_drops", .uint(stats.kernelDrops)),
            // With GRO a dropped buffer can hold many datagrams: then the count below is an estimate.
            ("kernel_drops_are_buffers", .bool(stats.kernelDropsAreBuffers)),
            ("kernel_dropped_datagrams", .uint(stats.kernelDroppedDatagramsEstimate)),
            ("datagrams_per_buffer", .double(stats.buffers > 0 ? Double(stats.datagramsSeen) / Double(stats.buffers) : 0)),
            // Loss not explained by our own socket buffer: the path (or the sender).
            ("lost_beyond_kernel_drops", .uint(t.lost - min(t.lost, stats.kernelDroppedDatagramsEstimate))),
            ("socket_buffer_bottleneck", .bool(r.socketBufferWasBottleneck)),
            ("latency_us", r.core.latency.summary.map(latencyJSON) ?? .null),
            ("receive_calls", .uint(stats.receiveCalls)),
            ("coalesced_buffers", .uint(stats.coalescedBuffers)),
            ("rearms", .uint(stats.rearms)),
            ("buffer_shortages", .uint(stats.bufferShortages)),
            ("per_thread", .array(r.threads.map { th in
                .object([("datagrams", .uint(th.datagrams)), ("kernel_drops", .uint(th.kernelDrops)),
                         ("streams", .int(Int64(th.streams))), ("cpu", th.cpu.map { .int(Int64($0)) } ?? .null)])
            })),
            ("output_errors", .array(r.outputErrors.map { .string($0) })),
            ("output_ok", .bool(r.outputOK)),
            ("output_failed_bytes", .uint(r.outputFailedBytes)),
            ("output_beyond_limit_bytes", .uint(r.outputBeyondLimitBytes)),
            ("output_synced", .bool(r.outputSynced)),
            ("output_fsync_seconds", .double(r.core.streams.reduce(0) { $0 + ($1.output?.fsyncSeconds ?? 0) })),
            ("multicast", r.multicast.map { m in
                .object([
                    ("group", .string(m.membership.group.host)),
                    ("interface", m.interface.map { .string($0) } ?? .null),
                    ("source_filter", m.membership.source.map { .string($0.host) } ?? .null),
                    ("join_to_first_datagram_ms", m.joinToFirstDatagramNanoseconds.map { .double(Double($0) / 1e6) } ?? .null),
                    ("count_head_loss", .bool(m.countHeadLoss)),
                    ("streams_joined_late", .uint(UInt64(r.core.streams.filter(\.joinedLate).count))),
                ])
            } ?? .null),
            ("stop_reason", .string(r.stopReason.rawValue)),
            ("wall_seconds", .double(r.wallSeconds)),
            ("ok", .bool(verdict.ok)),
            ("failures", .array(verdict.failures.map { .string($0) })),
            ("streams", .array(streams)),
        ])
    }

    /// A stream id as both reports print it: 0x and 16 hex digits.
    static func hexID(_ id: UInt64) -> String {
        let digits = String(id, radix: 16)
        return "0x" + String(repeating: "0", count: 16 - digits.count) + digits
    }

    static func microseconds(_ v: Double) -> String { "\(Units.fixed(v, 1)) µs" }

    static func rangesText(_ r: [ByteRanges.Span], total: UInt64, shown: Int = 5) -> String {
        let parts = r.prefix(shown).map { "\($0.lower)-\($0.upper - 1)" }
        return "[\(parts.joined(separator: ", "))\(total > UInt64(min(shown, r.count)) ? ", ..." : "")]"
    }

    /// One stream's lines in the text report (and a server's block per finished stream).
    static func streamLines(_ s: StreamState) -> [String] {
        var lines: [String] = []
        let summary = s.summary()
        var line = "  stream \(hexID(s.streamID)) from \(s.source): \(s.tracker.unique)/\(s.expectedDatagrams)\(s.endSeen ? "" : "+?") unique, lost \(summary.lost)"
        if !summary.lostRanges.isEmpty {
            let shown = summary.lostRanges.prefix(5).map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
            line += " [\(shown.joined(separator: ", "))\(summary.lostRangeCount > 5 ? ", ..." : "")]"
        }
        line += ", reordered \(s.tracker.reordered), duplicates \(s.tracker.duplicates), corrupt \(s.corrupt)"
        if s.reliable {
            line += ", reliable: repaired \(s.repaired), \(s.naksSent) NAKs, \(s.statusSent) STATUS"
            if s.repairDuplicates > 0 { line += ", \(s.repairDuplicates) repairs of datagrams already held" }
            if s.gaveUp { line += ", GAVE UP (nothing arrived for the receiver deadline while datagrams were missing)" }
        }
        if s.modeMismatches > 0 { line += ", MODE MISMATCHES \(s.modeMismatches) (plain and reliable datagrams under one stream id)" }
        if s.conflictingDuplicates > 0 { line += ", CONFLICTING DUPLICATES \(s.conflictingDuplicates) (other bytes under a sequence number already received)" }
        if s.tracker.late > 0 { line += ", late \(s.tracker.late)" }
        if s.afterEnd > 0 { line += ", \(s.afterEnd) overtaken by END" }
        if s.beyondEnd > 0 { line += ", BEYOND END \(s.beyondEnd) (sequence >= END total: sender bug or foreign sender; not stream data)" }
        if !s.exact { line += ", INEXACT (a late END needed loss ranges no longer kept)" }
        if s.joinedLate {
            line += ", joined late: accounted from sequence \(s.firstSequence ?? 0) (head of \(s.headNotCounted) not counted)"
        }
        line += s.isComplete ? ", complete" : s.expected == nil ? ", no END seen (tail loss unknown)" : ""
        lines.append(line)
        if let o = s.output {
            var out = "    output \(o.destination): \(Units.bytes(o.bytesWritten)) written"
            if o.holes.count == 0 {
                out += ", no holes"
            } else {
                out += o.destination == "-" ? ", not written in order: " : ", holes (zeros): "
                out += "\(o.holes.count) (\(o.holes.bytes) bytes) \(rangesText(o.holes.ranges, total: o.holes.count))"
                if !o.holesComplete { out += " (list incomplete)" }
            }
            if o.lateDatagrams > 0 { out += ", \(o.lateDatagrams) datagrams arrived after their place had passed" }
            if o.synced { out += ", synced (fsync \(Units.fixed(o.fsyncSeconds, 3)) s\(o.intervalSyncs > 0 ? ", \(o.intervalSyncs) interval syncs" : ""))" }
            else if o.destination != "-" || o.syncError != 0 { out += ", NOT synced" }
            lines.append(out)
            if o.failedRanges.bytes > 0 {
                lines.append("    NOT WRITTEN (\(o.fileDeleted ? "file deleted" : o.openError != 0 ? "cannot open: \(SystemError.describe(o.openError))" : SystemError.describe(o.firstWriteError))): \(o.failedRanges.count) range(s) (\(o.failedRanges.bytes) bytes) \(rangesText(o.failedRanges.ranges, total: o.failedRanges.count))\(o.failedRangesComplete ? "" : " (list incomplete)")")
            } else if !o.ok && (o.writeErrors > 0 || o.firstWriteError != 0) {
                lines.append("    \(o.writeErrors) write errors (\(SystemError.describe(o.firstWriteError)))")
            }
            if o.beyondLimit.bytes > 0 {
                lines.append("    BEYOND LIMIT (\(o.maxBytes.map { "--output-max-bytes \($0)" } ?? "no --output-max-bytes") or END total), not written: \(o.beyondLimit.count) range(s) (\(o.beyondLimit.bytes) bytes) \(rangesText(o.beyondLimit.ranges, total: o.beyondLimit.count))")
            }
            if o.syncError != 0 {
                let last = o.lastSyncNanoseconds == 0 ? "never synced" : "last good sync \(Units.fixed(Double(MonotonicClock.nanoseconds() &- o.lastSyncNanoseconds) / 1e9, 1)) s ago"
                lines.append("    FSYNC FAILED (\(SystemError.describe(o.syncError))): what was written since the last good sync may not be on disk (\(last))")
            }
        }
        return lines
    }

    static func text(_ r: ReceiverReport, verdict: Verdict) -> String {
        let t = Totals(r)
        let seconds = r.dataSeconds
        let stats = r.core.statistics
        var lines = [
            "zc-recv \(r.configuration.engine.rawValue) on \(r.boundAddress)  GRO \(r.groEnabled ? "on" : "off")  \(r.threads.count) thread(s)  \(r.core.streams.count) stream(s); stopped by \(r.stopReason.rawValue)",
            "  received \(t.datagrams) datagrams, \(Units.bytes(t.bytes)) in \(Units.fixed(seconds, 3)) s: \(Units.bitRate(seconds > 0 ? Double(t.bytes) * 8 / seconds : 0)), \(Units.count(seconds > 0 ? Double(t.datagrams) / seconds : 0, unit: "pps"))",
            "  lost \(t.lost)  reordered \(t.reordered)  duplicates \(t.duplicates)  corrupt \(t.corrupt)  late \(t.late)  invalid \(stats.invalidTotal)  kernel-drops \(stats.kernelDrops)\(stats.kernelDropsAreBuffers && stats.kernelDrops > 0 ? " (GRO buffers)" : "")",
        ]
        if stats.streamsRefusedDatagrams > 0 {
            lines.append("  STREAM LIMIT: \(stats.streamsRefusedDatagrams) valid datagrams of streams beyond --max-streams \(r.configuration.maxStreams) were not accounted (raise --max-streams)")
        }
        if r.core.refusedSources.total > 0 {
            let top = r.core.refusedSources.byHost.sorted { $0.value > $1.value }.prefix(5).map { "\($0.key.socketAddress?.host ?? "?") \($0.value)" }
            lines.append("  NOT ALLOWED: \(r.core.refusedSources.total) datagrams from sources outside --allow dropped unread (\(top.joined(separator: ", "))\(r.core.refusedSources.byHost.count > 5 ? ", ..." : ""))")
        }
        if stats.truncated > 0 {
            lines.append("  TRUNCATED: \(stats.truncated) datagrams were longer than the receive buffer and cut (content unknown)")
        }
        if let l = r.core.latency.summary {
            lines.append("  latency (one-way, header timestamp): p50 \(microseconds(l.p50))  p99 \(microseconds(l.p99))  p99.9 \(microseconds(l.p999))  max \(microseconds(l.maxMicroseconds))\(l.negative > 0 ? "  (\(l.negative) negative: clocks differ)" : "")")
        }
        if let key = r.configuration.key {
            var line = "  keyed (key id \(Units.hex32(key.keyID))): unauthenticated \(stats.unauthenticatedTotal)"
            let reasons = KeyedDatagram.Rejection.allCases.filter { stats.unauthenticated[$0.index] > 0 }
            if !reasons.isEmpty { line += " (" + reasons.map { "\($0.rawValue) \(stats.unauthenticated[$0.index])" }.joined(separator: ", ") + ")" }
            lines.append(line)
            if stats.unauthenticated[KeyedDatagram.Rejection.wrongKey.index] > 0 {
                lines.append("  WRONG KEY: \(stats.unauthenticated[KeyedDatagram.Rejection.wrongKey.index]) datagrams carry key id \(Units.hex32(stats.foreignKeyID)), not this --key's \(Units.hex32(key.keyID)): the sender holds a different key")
            }
            if stats.unauthenticated[KeyedDatagram.Rejection.notKeyed.index] > 0 && r.core.streams.isEmpty {
                lines.append("  NOT KEYED: \(stats.unauthenticated[KeyedDatagram.Rejection.notKeyed.index]) datagrams without a tag: the sender has no --key (a keyed receiver takes only keyed streams)")
            }
        }
        if r.configuration.key == nil && stats.keyedWithoutKey > 0 {
            lines.append("  KEYED STREAM: \(stats.keyedWithoutKey) datagrams of a keyed stream (version 4, SPEC §14) rejected: give --key FILE (the sender's secret) to take them")
        }
        if stats.invalidTotal > 0 {
            let reasons = Datagram.Rejection.allCases.filter { stats.invalid[$0.index] > 0 }.map { "\($0.rawValue) \(stats.invalid[$0.index])" }
            lines.append("  invalid: \(reasons.joined(separator: ", "))")
        }
        for s in r.core.streams { lines += streamLines(s) }
        if r.configuration.output != nil {
            lines.append(r.outputOK
                ? "  output: complete\(r.outputSynced ? ", synced to disk" : "")"
                : "  OUTPUT INCOMPLETE: \(r.outputErrors.joined(separator: "; "))")
        }
        if let m = r.multicast {
            let first = m.joinToFirstDatagramNanoseconds.map { "first datagram \(Units.fixed(Double($0) / 1e6, 1)) ms after the join" } ?? "no datagram after the join"
            lines.append("  multicast: joined \(m.membership.group.host)\(m.membership.source.map { " from source \($0.host)" } ?? "") on \(m.interface ?? "the kernel's choice of interface"); \(first)")
        }
        lines += bottleneckAdvice(r, lost: t.lost)
        lines.append(verdict.ok ? "  verdict: ok" : "  verdict: FAIL (\(verdict.failures.joined(separator: "; ")))")
        return lines.joined(separator: "\n")
    }

    /// A server's record of one finished stream: one NDJSON line (with `--json`).
    /// The stream's failures against the limits, and its output's problems (a server's verdict per stream).
    static func finishedFailures(_ f: FinishedStream, limits: StreamVerdictLimits) -> [String] {
        limits.failures(f.state) + (f.state.output?.incompleteness.map { "output incomplete: \($0)" } ?? [])
    }

    static func finishedJSON(_ f: FinishedStream, limits: StreamVerdictLimits) -> JSONValue {
        let failures = finishedFailures(f, limits: limits)
        let fields: [(String, JSONValue)] = [
            ("role", .string("receiver")),
            ("event", .string("stream_finished")),
            ("timestamp", .string(WallClock.rfc3339(f.wallNanoseconds))),
            ("finished", .string(f.reason.rawValue)),
        ] + streamFields(f.state) + [
            ("kernel_drops", .uint(f.kernelDrops)),
            ("report", f.report.map { .string($0.description) } ?? .null),
            ("ok", .bool(failures.isEmpty)),
            ("failures", .array(failures.map { .string($0) })),
        ]
        return JSONValue.object(fields).withVersion()
    }

    /// A server's text block for one finished stream.
    static func finishedText(_ f: FinishedStream, limits: StreamVerdictLimits) -> String {
        let failures = finishedFailures(f, limits: limits)
        var lines = ["\(WallClock.rfc3339(f.wallNanoseconds)) stream \(hexID(f.state.streamID)) from \(f.state.source) finished (\(f.reason.rawValue))"]
        lines += streamLines(f.state)
        let s = f.state
        if s.longestGapNanoseconds > 0 || s.firstToLastSendNanoseconds > 0 {
            lines.append("    outages: \(s.summary().lostRangeCount) gap(s), longest \(Units.fixed(Double(s.longestGapNanoseconds) / 1e6, 3)) ms; first to last datagram \(Units.fixed(Double(s.firstToLastSendNanoseconds) / 1e6, 3)) ms")
        }
        if let l = s.latency.summary {
            lines.append("    latency p50 \(microseconds(l.p50))  p99 \(microseconds(l.p99))  p99.9 \(microseconds(l.p999))  max \(microseconds(l.maxMicroseconds))")
        }
        lines.append("    kernel drops \(f.kernelDrops); REPORT \(f.report?.description ?? "off")")
        lines.append(failures.isEmpty ? "    verdict: ok" : "    verdict: FAIL (\(failures.joined(separator: "; ")))")
        return lines.joined(separator: "\n")
    }

    /// When the socket buffer overflowed, say so plainly and what to change.
    static func bottleneckAdvice(_ r: ReceiverReport, lost: UInt64) -> [String] {
        let stats = r.core.statistics
        let drops = stats.kernelDrops
        guard drops > 0 else { return [] }
        let usable = UInt64(max(0, r.receiveBufferBytes)) / 2
        let dropped = stats.kernelDroppedDatagramsEstimate
        let what = stats.kernelDropsAreBuffers
            ? "\(drops) GRO buffers (about \(dropped) datagrams at \(Units.fixed(Double(stats.datagramsSeen) / Double(max(1, stats.buffers)), 1)) per buffer)"
            : "\(drops) datagrams"
        var lines = ["  SOCKET BUFFER FULL: the kernel dropped \(what) at this receiver's socket (SO_RXQ_OVFL): " +
                     "the receiver did not keep up, this is not path loss. Of \(lost) lost, \(stats.kernelDropsAreBuffers ? "about " : "")\(lost - min(lost, dropped)) are not explained by it."]
        if !r.receiveBufferForced, let limit = r.receiveBufferLimit, Int(r.receiveBufferBytes) / 2 < Int(r.configuration.receiveBufferBytes) {
            lines.append("    rcvbuf is capped at \(Units.bytes(UInt64(limit))) by net.core.rmem_max (asked \(Units.bytes(UInt64(r.configuration.receiveBufferBytes)))): " +
                         "run as root (SO_RCVBUFFORCE) or `sysctl -w net.core.rmem_max=\(UInt64(r.configuration.receiveBufferBytes))`")
        } else {
            let suggestion = max(usable * 4, 512 << 20) >> 20
            var remedies = ["raise --rcvbuf (e.g. --rcvbuf \(suggestion)M\(r.receiveBufferForced ? "" : "; beyond net.core.rmem_max it needs root"))"]
            if !r.groEnabled { remedies.append("turn --gro on (one receive per 44 datagrams)") }
            remedies.append(r.threads.count > 1 ? "spread senders over more --threads" : "add --threads (several senders)")
            remedies.append("or pace the sender")
            lines.append("    rcvbuf \(Units.bytes(usable)) usable: " + remedies.joined(separator: ", "))
        }
        return lines
    }
}

