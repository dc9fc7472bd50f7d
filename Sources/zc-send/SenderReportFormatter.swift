#if canImport(Glibc)
import Glibc
#endif
import CLISupport
import Sender
import StreamProtocol
import ZCSystem

/// The end-of-run report, as JSON for scripts and as text for people.
enum SenderReportFormatter {
    /// Totals over all streams at the top level (the shape of a single stream's
    /// report), and every stream's own report in `streams`.
    static func json(_ reports: [SenderReport]) -> JSONValue {
        guard case .object(var fields) = json(combined(reports)) else { return .null }
        fields.removeAll { ($0.0 == "stream_id" || $0.0 == "receiver") && reports.count > 1 }
        fields.append(("stream_count", .int(Int64(reports.count))))
        fields.append(("streams", .array(reports.map { json($0) })))
        return .object(fields)
    }

    static func text(_ reports: [SenderReport]) -> String {
        guard reports.count > 1 else { return text(reports[0]) }
        var lines = reports.map { text($0) }
        lines.append(text(combined(reports), title: "total over \(reports.count) streams"))
        return lines.joined(separator: "\n")
    }

    /// One report whose counters are the sum of all streams, over the longest duration.
    static func combined(_ reports: [SenderReport]) -> SenderReport {
        var total = reports[0]
        for r in reports.dropFirst() {
            total.statistics.merge(r.statistics)
            total.sequences += r.sequences
            total.seconds = max(total.seconds, r.seconds)
            total.injected.corrupted += r.injected.corrupted
            total.injected.skipped += r.injected.skipped
            total.injected.reordered += r.injected.reordered
            total.injected.duplicated += r.injected.duplicated
            if r.stopReason != .limit { total.stopReason = r.stopReason }
        }
        return total
    }

    static func json(_ r: SenderReport) -> JSONValue {
        let s = r.statistics
        let c = r.configuration
        var fields: [(String, JSONValue)] = [
            ("role", .string("sender")),
            ("engine", .string(c.engine.rawValue)),
            ("crc32c", .string(CRC32C.active.description)),
            ("destination", .string(c.destination.description)),
            ("stream_id", .string(hex(c.streamID))),  // u64 as a string: no JSON parser rounds it
            ("datagram_size", .int(Int64(c.datagramSize))),
            // --key (SPEC §14): the secret's key id and whether payloads are encrypted; null: plain.
            ("keyed", c.key.map { .object([("key_id", .string(Units.hex32($0.keyID))), ("encrypted", .bool(c.encrypt))]) } ?? .null),
            ("gso_segments", .int(Int64(c.segmentsPerSend))),
            ("datagrams", .uint(s.datagrams)),
            ("bytes", .uint(s.bytes)),
            ("sequences", .uint(r.sequences)),
            ("seconds", .double(r.seconds)),
            ("gbps", .double(r.seconds > 0 ? Double(s.bytes) * 8 / r.seconds / 1e9 : 0)),
            ("pps", .double(r.seconds > 0 ? Double(s.datagrams) / r.seconds : 0)),
            ("sends", .uint(s.sends)),
            ("ends_sent", .uint(s.endsSent)),
            ("retries", .uint(s.retries)),
            ("datagrams_failed", .uint(s.datagramsFailed)),
            ("errors", .object(s.errors.sorted { $0.key < $1.key }.map { (SystemError.describe($0.key), .uint($0.value)) })),
            ("stop_reason", .string(r.stopReason.rawValue)),
            ("source", .string((r.content?.source ?? .pattern).description)),
            ("sndbuf", .int(Int64(r.sendBufferBytes))),
            ("pool_slots", .int(Int64(c.poolSlots))),
            ("sqpoll", c.submissionPolling.map { p in .object([("cpu", p.cpu.map { .int(Int64($0)) } ?? .null)]) } ?? .null),
        ]
        if c.engine.usesZeroCopy {
            var zc: [(String, JSONValue)] = [
                ("sends", .uint(s.sends)),
                ("notifications", .uint(s.notifications)),
                ("copied", .uint(s.copied)),
                ("zero_copied", .uint(s.notifications - s.copied)),
                ("recycled_early", .uint(s.recycledEarly)),
            ]
            if c.engine == .auto {
                zc.append(("switched_to_copy", s.switchedToCopy.map { w in
                    .object([("after_seconds", .double(w.afterSeconds)), ("notifications", .uint(w.notifications)),
                             ("copied", .uint(w.copied)), ("reason", .string(w.reason))])
                } ?? .null))
            }
            fields.append(("zc", .object(zc)))
        }
        if let p = r.packetRing {
            fields.append(("udp_checksum", .string(p.udpChecksum)))
            fields.append(("packet_ring", .object([
                ("interface", .string(p.interface)),
                ("ifindex", .int(Int64(p.interfaceIndex))),
                ("mtu", .int(Int64(p.mtu))),
                ("src_mac", .string(p.sourceMAC.description)),
                ("dst_mac", .string(p.destinationMAC.description)),
                ("dst_mac_from", .string(p.destinationMACSource)),
                ("next_hop", .string(p.nextHop)),
                ("vlan", p.vlan.map { .string($0) } ?? .null),
                ("gso", .string(p.gso)),
                ("gso_segments", .int(Int64(p.segmentsPerFrame))),
                ("src", .string(p.source)),
                ("ipv4_df", .bool(p.dontFragment)),
                ("udp_checksum", .string(p.udpChecksum)),
                ("qdisc_bypass", .bool(p.qdiscBypass)),
                ("transfer", .string(p.transfer.rawValue)),
                ("transfer_from", .string(p.transferChoice)),
                ("frame_bytes", .int(Int64(p.maxFrameLength))),
                ("ring_frame_size", .int(Int64(p.frameSize))),
                ("ring_frames", .int(Int64(p.frames))),
                ("ring_block_size", .int(Int64(p.blockSize))),
                ("frames", .uint(s.sends)),
                ("kicks", .uint(p.kicks)),
                ("kicks_retried", .uint(p.kicksRetried)),
                ("wrong_format", .uint(p.wrongFormat)),
                ("rings_reopened", .int(Int64(p.ringsReopened))),
                ("frames_in_flight_at_exit", .int(Int64(p.framesInFlightAtExit))),
            ])))
        }
        switch r.receiver {
        case .notAwaited: break
        case .report(let report, let after):
            fields.append(("receiver", receiverJSON(report, afterNanoseconds: after)))
            if let coverage = r.receiverCoverage {
                fields.append(("receiver_coverage", .object([
                    ("covers_stream", .bool(coverage.coversStream)),
                    ("lost", .uint(coverage.lost)),
                    ("loss_percent", .double(coverage.lossPercent)),
                    ("shortfall", coverage.shortfall.map { .string($0) } ?? .null),
                ])))
            }
        case .none(let why):
            fields.append(("receiver", .null))
            fields.append(("receiver_missing", .string(why)))
        }
        if let rate = c.rate { fields.append(("rate", .string(rate.description))) }
        if let rel = r.reliability { fields.append(("reliability", reliabilityJSON(rel, r))) }
        if !(r.content?.faults.isEmpty ?? true) || c.recycleOnSendCompletion {
            fields.append(("injected", .object([
                ("corrupt", .uint(r.injected.corrupted)),
                ("skip", .uint(r.injected.skipped)),
                ("reorder", .uint(r.injected.reordered)),
                ("duplicate", .uint(r.injected.duplicated)),
                ("recycle_on_send", .bool(c.recycleOnSendCompletion)),
            ])))
        }
        return .object(fields)
    }

    static func text(_ r: SenderReport, title: String? = nil) -> String {
        let s = r.statistics
        let c = r.configuration
        let gbps = r.seconds > 0 ? Double(s.bytes) * 8 / r.seconds : 0
        let pps = r.seconds > 0 ? Double(s.datagrams) / r.seconds : 0
        var lines = [
            "zc-send \(c.engine.rawValue) -> \(c.destination)  \(title ?? "stream \(hex(c.streamID))")  \(c.datagramSize) B x \(c.segmentsPerSend)/send",
            "  sent     \(s.datagrams) datagrams, \(Units.bytes(s.bytes)) in \(Units.fixed(r.seconds, 3)) s: \(Units.bitRate(gbps)), \(Units.count(pps, unit: "pps"))",
        ]
        if let key = c.key {
            lines.append("  keyed    key id \(Units.hex32(key.keyID)), every datagram tagged (AES-256-GCM)\(c.encrypt ? ", payloads encrypted" : ""); only a REPORT sealed under the key counts")
        }
        if c.engine.usesZeroCopy {
            var zc = "  zerocopy \(s.sends) sends, \(s.notifications) notifications, \(s.notifications - s.copied) zero-copied, \(s.copied) copied by the kernel"
            if s.notifications > 0 && s.copied == s.notifications {
                zc += " (the destination is local: the kernel copies pages delivered to a local socket)"
            }
            lines.append(zc)
            if c.engine == .auto {
                if let w = s.switchedToCopy {
                    lines.append("  auto     switched to copying sends after \(Units.fixed(w.afterSeconds, 3)) s: \(w.reason)")
                } else {
                    lines.append("  auto     stayed zero-copy (notifications did not report copies)")
                }
            }
        }
        if let p = c.submissionPolling {
            lines.append("  sqpoll   a kernel thread (IORING_SETUP_SQPOLL\(p.cpu.map { ", CPU \($0)" } ?? "")) took the sends; this thread only filled")
        }
        if let p = r.packetRing {
            lines.append("  raw      \(p.interface) \(p.sourceMAC) -> \(p.destinationMAC) (\(p.destinationMACSource)), next hop \(p.nextHop), "
                         + (p.vlan.map { "VLAN \($0), " } ?? "") + "from \(p.source); GSO \(p.gso); "
                         + "\(p.maxFrameLength) B frames, ring \(p.frames) x \(p.frameSize) B, \(p.kicks) kicks; "
                         + "UDP checksum \(p.udpChecksum); transfer \(p.transfer.rawValue); qdisc bypass \(p.qdiscBypass ? "on" : "off")"
                         + (p.wrongFormat > 0 ? "; \(p.wrongFormat) frames WRONG_FORMAT" : ""))
        }
        if s.errorCount > 0 || s.retries > 0 {
            let list = s.errors.sorted { $0.key < $1.key }.map { "\(SystemError.describe($0.key)) x\($0.value)" }.joined(separator: ", ")
            lines.append("  errors   \(s.errorCount) failed sends: \(s.datagramsFailed) datagrams NOT sent (not in 'sent' above)\(list.isEmpty ? "" : "; " + list); \(s.retries) retried")
            if s.errors[ECONNREFUSED] != nil {
                lines.append("           ECONNREFUSED: ICMP port unreachable came back, nobody listens at \(c.destination); the datagrams the kernel accepted were refused there")
            }
        }
        lines.append("  end      \(s.endsSent) END datagrams; stopped by \(r.stopReason.rawValue)")
        if let rel = r.reliability { lines += reliabilityText(rel, r) }
        if title == nil {
            lines += receiverText(r.receiver)
            if let coverage = r.receiverCoverage, let why = coverage.shortfall {
                lines.append("           the REPORT does not cover the stream: \(why); lost \(coverage.lost) of \(r.sequences) sent (\(Units.fixed(coverage.lossPercent, 4))%)")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Goodput of a reliable stream: the distinct datagrams' bytes over the run (repairs are
    /// not in `bytes`), once delivered.
    static func goodput(_ rel: ReliabilityReport, _ r: SenderReport) -> Double {
        rel.delivered && r.seconds > 0 ? Double(r.statistics.bytes) * 8 / r.seconds : 0
    }

    static func reliabilityJSON(_ rel: ReliabilityReport, _ r: SenderReport) -> JSONValue {
        func us(_ ns: UInt64?) -> JSONValue { ns.map { .double(Double($0) / 1e3) } ?? .null }
        let x = rel.controlRejected
        return .object([
            ("delivered", .bool(rel.delivered)),
            ("gave_up", .bool(rel.gaveUp)),
            ("no_feedback", .bool(rel.noFeedback)),
            ("acknowledged", .uint(rel.acknowledged)),
            ("retransmitted_datagrams", .uint(rel.retransmittedDatagrams)),
            ("retransmitted_bytes", .uint(rel.retransmittedBytes)),
            ("naks_received", .uint(rel.naksReceived)),
            ("status_received", .uint(rel.statusReceived)),
            ("repair_rounds", .uint(rel.repairRounds)),
            ("repairs_deferred", .uint(rel.repairsDeferred)),
            ("repairs_held_off", .uint(rel.repairsHeldOff)),
            ("repair_errors", .uint(r.statistics.repairErrors)),
            ("naked_outside", .uint(rel.nakedOutside)),
            ("tail_probes", .uint(rel.tailProbes)),
            ("loss_backoffs", .uint(rel.lossBackoffs)),
            ("lowest_cap_gbps", rel.lowestCapBitsPerSecond.map { .double($0 / 1e9) } ?? .null),
            ("control_rejected", .object([
                ("foreign", .uint(x.foreign)), ("malformed", .uint(x.malformed)), ("unknown_stream", .uint(x.unknownStream)),
                ("other_receiver", .uint(x.otherReceiver)), ("rate_limited", .uint(x.rateLimited)), ("impossible", .uint(x.impossible)),
                // Keyed (SPEC §14.4): feedback whose tag, key, origin or packet number failed.
                ("unauthenticated", .uint(x.unauthenticatedTotal)),
                ("unauthenticated_by_reason", .object(KeyedDatagram.Rejection.allCases.map { ($0.rawValue, .uint(x.unauthenticated[$0.index])) })),
            ])),
            ("rtt_min_us", us(rel.rttMinNanoseconds)),
            ("rtt_avg_us", us(rel.rttAverageNanoseconds)),
            ("window_blocked_seconds", .double(Double(rel.windowBlockedNanoseconds) / 1e9)),
            ("goodput_gbps", .double(goodput(rel, r) / 1e9)),
            ("unacknowledged_ranges", .array(rel.unacknowledged.map { .array([.uint($0.lowerBound), .uint($0.upperBound)]) })),
        ] + groupJSON(rel))
    }

    /// A multicast stream's `group` and `receivers` (nothing for unicast).
    static func groupJSON(_ rel: ReliabilityReport) -> [(String, JSONValue)] {
        guard let receivers = rel.receivers else { return [] }
        func count(_ s: ReceiverOutcome.State) -> UInt64 { UInt64(receivers.count(where: { $0.state == s })) }
        return [
            ("group", .object([
                ("min_receivers", .uint(UInt64(rel.minReceivers))),
                ("heard", .uint(UInt64(receivers.count(where: { $0.address != nil })))),
                ("delivered", .uint(count(.delivered))),
                ("dropped", .uint(count(.dropped))),
                ("reason", rel.groupReason.map { .string($0) } ?? .null),
            ])),
            ("receivers", .array(receivers.map { o in
                .object([
                    ("address", o.address.map { .string($0.description) } ?? o.namedAddress.map { .string($0.description) } ?? .null),
                    ("receiver_id", o.receiverID == 0 ? .null : .string(hex(o.receiverID))),
                    ("state", .string(o.state.rawValue)),
                    ("reason", o.reason.map { .string($0) } ?? .null),
                    ("acknowledged", .uint(o.acknowledged)),
                    ("naks_received", .uint(o.naksReceived)),
                    ("status_received", .uint(o.statusReceived)),
                    ("rtt_min_ms", o.rttMinNanoseconds.map { .double(Double($0) / 1e6) } ?? .null),
                    ("unacknowledged_ranges", .array(o.unacknowledged.map { .array([.uint($0.lowerBound), .uint($0.upperBound)]) })),
                    ("report", o.report.map { receiverJSON($0, afterNanoseconds: 0) } ?? .null),
                ])
            })),
        ]
    }

    /// Sequence ranges for a summary line: `a-b, c, ...` (the first `limit`).
    static func rangeList(_ ranges: [ClosedRange<UInt64>], limit: Int) -> String {
        ranges.prefix(limit).map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
            .joined(separator: ", ") + (ranges.count > limit ? ", ..." : "")
    }

    /// Sequence ranges for stderr: `[a, b] [c, c] ...` (the first 8), as the JSON writes them.
    static func bracketedRanges(_ ranges: [ClosedRange<UInt64>]) -> String {
        ranges.prefix(8).map { "[\($0.lowerBound), \($0.upperBound)]" }.joined(separator: " ") + (ranges.count > 8 ? " ..." : "")
    }

    /// One line per receiver of a multicast stream.
    static func groupText(_ rel: ReliabilityReport) -> [String] {
        guard let receivers = rel.receivers else { return [] }
        var lines = ["  group: \(receivers.count(where: { $0.state == .delivered })) of \(receivers.count) receivers delivered"
                     + " (--min-receivers \(rel.minReceivers))" + (rel.groupReason.map { "; \($0)" } ?? "")]
        for o in receivers {
            var line = "    \(o.addressText): \(o.state.rawValue)"
            if let reason = o.reason, o.state != .delivered { line += " (\(reason))" }
            if o.state != .delivered {
                line += "; lacks " + rangeList(o.unacknowledged, limit: 4)
            }
            if let r = o.report { line += "; its REPORT: lost \(r.lost), \(r.pass ? "ok" : "FAIL")" }
            lines.append(line)
        }
        return lines
    }

    static func reliabilityText(_ rel: ReliabilityReport, _ r: SenderReport) -> [String] {
        func ms(_ ns: UInt64?) -> String { ns.map { Units.fixed(Double($0) / 1e6, 3) + " ms" } ?? "-" }
        var lines: [String] = []
        if rel.delivered {
            lines.append("  reliable delivered: every datagram acknowledged; goodput \(Units.bitRate(goodput(rel, r)))")
        } else if let receivers = rel.receivers, rel.groupReason == nil {
            lines.append("  reliable INCOMPLETE: \(receivers.count(where: { $0.state != .delivered })) of \(receivers.count) receivers lack datagrams (below)")
        } else {
            let why = rel.noFeedback ? "no STATUS from the receiver (\(noStatusHint(r)))"
                : rel.receivers != nil ? (rel.groupReason ?? "not every receiver of the group holds every datagram")
                : "no progress for the deadline (the receiver stopped acknowledging)"
            lines.append("  reliable GAVE UP: \(why); acknowledged \(rel.acknowledged) of \(r.sequences); unacknowledged "
                         + rangeList(rel.unacknowledged, limit: 8))
        }
        lines.append("           \(rel.retransmittedDatagrams) datagrams repaired from their slots (\(Units.bytes(rel.retransmittedBytes))), "
                     + "\(rel.naksReceived) NAKs, \(rel.statusReceived) STATUS; RTT min \(ms(rel.rttMinNanoseconds)) avg \(ms(rel.rttAverageNanoseconds)); "
                     + "waited on the window \(Units.fixed(Double(rel.windowBlockedNanoseconds) / 1e9, 3)) s"
                     + (rel.controlRejected.total > 0 ? "; \(rel.controlRejected.total) control datagrams rejected" : "")
                     + unauthenticatedText(rel.controlRejected)
                     + (rel.lossBackoffs > 0 ? "; congestion: rate cut \(rel.lossBackoffs) times, to \(Units.bitRate(rel.lowestCapBitsPerSecond ?? 0)) at least" : ""))
        return lines + groupText(rel)
    }

    /// What a reliable stream that never heard a STATUS asks about its receiver.
    static func noStatusHint(_ r: SenderReport) -> String {
        r.configuration.key != nil ? "does it have the same --key? a receiver without one rejects a keyed stream"
            : "is it zc-recv with reliable streams, version 3?"
    }

    /// Keyed feedback dropped unauthenticated, by reason ("" when none).
    static func unauthenticatedText(_ x: ControlRejections) -> String {
        guard x.unauthenticatedTotal > 0 else { return "" }
        let reasons = KeyedDatagram.Rejection.allCases.filter { x.unauthenticated[$0.index] > 0 }
        return " (\(x.unauthenticatedTotal) unauthenticated: " + reasons.map { "\($0.rawValue) \(x.unauthenticated[$0.index])" }.joined(separator: ", ") + ")"
    }

    /// The receiver's REPORT with the keys of zc-recv's stream record.
    static func receiverJSON(_ r: StreamReport, afterNanoseconds: UInt64) -> JSONValue {
        func us(_ ns: Int64) -> JSONValue { .double(Double(ns) / 1e3) }
        var fields: [(String, JSONValue)] = [
            ("stream_id", .string(hex(r.streamID))),
            ("received", .uint(r.received)),
            ("unique", .uint(r.unique)),
            ("unique_payload_bytes", .uint(r.uniquePayloadBytes)),
            ("end_seen", .bool(r.endSeen)),
            ("expected_datagrams", .uint(r.expectedDatagrams)),
            ("expected_payload_bytes", .uint(r.expectedPayloadBytes)),
            ("lost", .uint(r.lost)),
            ("lost_ranges", .array(r.lostRanges.map { .array([.uint($0.lowerBound), .uint($0.upperBound)]) })),
            ("lost_range_count", .uint(r.lostRangeCount)),
            ("reordered", .uint(r.reordered)),
            ("max_reorder_distance", .uint(r.maxReorderDistance)),
            ("duplicates", .uint(r.duplicates)),
            ("corrupt", .uint(r.corrupt)),
            ("late", .uint(r.late)),
            ("beyond_end", .uint(r.beyondEnd)),
            ("after_end", .uint(r.afterEnd)),
            ("exact", .bool(r.exact)),
            ("complete", .bool(r.complete)),
            ("joined_late", .bool(r.joinedLate)),
            ("gaps", .uint(r.gaps)),
            ("longest_gap_datagrams", .uint(r.longestGapDatagrams)),
            ("longest_gap_ms", .double(Double(r.longestGapNanoseconds) / 1e6)),
            ("first_to_last_ms", .double(Double(r.firstToLastNanoseconds) / 1e6)),
            ("kernel_drops", .uint(r.kernelDrops)),
            ("output_incomplete", .bool(r.outputIncomplete)),
        ]
        if r.latencySamples > 0 {
            fields.append(("latency_us", .object([
                ("samples", .uint(r.latencySamples)), ("min", us(r.latencyMinNanoseconds)), ("p50", us(r.latencyP50Nanoseconds)),
                ("p99", us(r.latencyP99Nanoseconds)), ("p99_9", us(r.latencyP999Nanoseconds)), ("max", us(r.latencyMaxNanoseconds)),
            ])))
        }
        if let c = r.reliable {
            fields += [("reliable", .bool(true)), ("repaired", .uint(c.repaired)), ("repair_duplicates", .uint(c.repairDuplicates)),
                       ("naks_sent", .uint(c.naksSent)), ("status_sent", .uint(c.statusSent))]
        }
        fields.append(("ok", .bool(r.pass)))
        fields.append(("report_after_ms", .double(Double(afterNanoseconds) / 1e6)))
        return .object(fields)
    }

    /// The receiver's REPORT in a line or two, beside the sender's own summary.
    static func receiverText(_ answer: ReceiverAnswer) -> [String] {
        switch answer {
        case .notAwaited: return []
        case .none(let why): return ["  receiver NO REPORT: \(why); the receiver's verdict is unknown"]
        case .report(let r, let after):
            let loss = r.expectedDatagrams == 0 ? 0 : Double(r.lost) / Double(r.expectedDatagrams) * 100
            var line = "  receiver \(r.unique)/\(r.expectedDatagrams)\(r.endSeen ? "" : "+?") unique, lost \(r.lost) (\(Units.fixed(loss, 4))%)"
            if !r.lostRanges.isEmpty {
                let shown = r.lostRanges.prefix(5).map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
                line += " [\(shown.joined(separator: ", "))\(r.lostRangeCount > 5 ? ", ..." : "")]"
            }
            line += ", reordered \(r.reordered), duplicates \(r.duplicates), corrupt \(r.corrupt), kernel drops \(r.kernelDrops)"
            line += r.complete ? ", complete" : r.endSeen ? "" : ", no END seen"
            if r.outputIncomplete { line += ", OUTPUT INCOMPLETE (its --output file lacks bytes of the stream)" }
            var lines = [line]
            var detail = "           verdict \(r.pass ? "ok" : "FAIL") (receiver's limits); REPORT after \(Units.fixed(Double(after) / 1e6, 1)) ms"
            if r.latencySamples > 0 {
                detail += "; latency p50 \(Units.fixed(Double(r.latencyP50Nanoseconds) / 1e3, 1)) µs p99 \(Units.fixed(Double(r.latencyP99Nanoseconds) / 1e3, 1)) µs"
            }
            if r.gaps > 0 { detail += "; \(r.gaps) gap(s), longest \(r.longestGapDatagrams) datagrams / \(Units.fixed(Double(r.longestGapNanoseconds) / 1e6, 3)) ms" }
            lines.append(detail)
            return lines
        }
    }

    /// A stream id as both tools print it: 0x and 16 hex digits.
    static func hex(_ v: UInt64) -> String {
        let digits = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 16 - digits.count) + digits
    }
}

