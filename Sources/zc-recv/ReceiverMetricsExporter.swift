import MetricsExport
import Prometheus
import Receiver
import StreamProtocol
import Synchronization

/// zc-recv's Prometheus families (README "Operate" lists them), fed from the snapshots
/// the receive threads publish (``ReceiverMetricsPublisher``): per stream — the first
/// ``labelLimit`` streams by `stream` and `source`, every later one in the
/// `stream="other", source="other"` series — and totals, invalid datagrams by reason,
/// kernel drops, stream gauges, receive rate and the one-way latency histogram.
final class ReceiverMetricsExporter: @unchecked Sendable {
    static let labelLimit = 64
    let metrics = MetricsRegistry(program: "zc-recv")

    /// One counter per stream field, in `PerStream.fields` order.
    struct PerStream {
        static let fields: [(name: String, help: String, value: @Sendable (StreamMetrics) -> UInt64)] = [
            ("datagrams_total", "Intact data datagrams received, duplicates included.", { $0.datagrams }),
            ("bytes_total", "UDP payload bytes (headers included) of the intact data datagrams.", { $0.bytes }),
            ("unique_datagrams_total", "Distinct sequence numbers received.", { $0.unique }),
            ("lost_datagrams_total", "Sequence numbers lost: final losses while a stream is busy, the full count (tail included) once it is quiet.", { $0.lost }),
            ("reordered_datagrams_total", "New sequence numbers that arrived below the highest seen.", { $0.reordered }),
            ("duplicate_datagrams_total", "Arrivals of a sequence number already received.", { $0.duplicates }),
            ("late_datagrams_total", "Arrivals too old to classify (beyond the tracking window).", { $0.late }),
            ("corrupt_datagrams_total", "Datagrams with a bad checksum or payload pattern, charged to the stream.", { $0.corrupt }),
            ("beyond_end_datagrams_total", "Intact data datagrams at or above the END's total (sender bug or foreign sender).", { $0.beyondEnd }),
            ("repaired_datagrams_total", "Reliable streams: distinct sequence numbers whose first intact arrival was a repair (lost, then recovered).", { $0.repaired }),
            ("repair_duplicate_datagrams_total", "Reliable streams: repairs of sequence numbers already received (never a second byte).", { $0.repairDuplicates }),
            ("naks_sent_total", "Reliable streams: NAK datagrams sent to the sender.", { $0.naksSent }),
            ("status_sent_total", "Reliable streams: STATUS datagrams sent to the sender.", { $0.statusSent }),
        ]
        let counters: [MonotoneCounter]
    }

    private let state = Mutex(State())
    struct State {
        var streams: [StreamKey: PerStream] = [:]
        /// What each named series was last set to: a server retires streams, and the fold
        /// is everything else (total minus these), so it never goes down.
        var named: [StreamKey: StreamMetrics] = [:]
        var lastNanoseconds: UInt64 = 0
        var lastBytes: UInt64 = 0
        var lastDatagrams: UInt64 = 0
    }
    private var other: PerStream!
    private var totals: PerStream!
    private let invalid: [MonotoneCounter]
    private let unauthenticated: [MonotoneCounter]
    private let corruptUnattributed, kernelDrops, kernelDroppedEstimate, refused, truncated, streamsEnded: MonotoneCounter
    private let streamsTracked, activeStreams, rateBytes, rateDatagrams: Gauge
    private let latency: SnapshotHistogram
    private let outputsComplete, outputsIncomplete: MonotoneCounter

    init() {
        let m = metrics
        invalid = Datagram.Rejection.allCases.map {
            m.counter("zcstream_receiver_invalid_datagrams_total", [("reason", $0.rawValue)],
                      help: "Datagrams rejected as not zcstream (SPEC §8), by reason.")
        }
        unauthenticated = KeyedDatagram.Rejection.allCases.map {
            m.counter("zcstream_receiver_unauthenticated_datagrams_total", [("reason", $0.rawValue)],
                      help: "A keyed receiver (--key): datagrams dropped before any stream saw them (SPEC §14.4), by reason.")
        }
        corruptUnattributed = m.counter("zcstream_receiver_corrupt_unattributed_datagrams_total",
                                        help: "Datagrams with a bad checksum whose stream id matches no known stream.")
        kernelDrops = m.counter("zcstream_receiver_kernel_drops_total",
                                help: "Socket buffers the kernel dropped because the receive buffer was full (SO_RXQ_OVFL; with GRO one buffer holds several datagrams).")
        kernelDroppedEstimate = m.counter("zcstream_receiver_kernel_dropped_datagrams_total",
                                          help: "Datagrams dropped by the kernel at the socket: exact without GRO, estimated from datagrams per buffer with it.")
        refused = m.counter("zcstream_receiver_refused_datagrams_total",
                            help: "Valid datagrams of streams beyond --max-streams, not accounted.")
        truncated = m.counter("zcstream_receiver_truncated_datagrams_total",
                              help: "Datagrams cut by the receive buffer.")
        streamsEnded = m.counter("zcstream_receiver_streams_ended_total", help: "Streams whose END arrived.")
        streamsTracked = m.gauge("zcstream_receiver_streams", help: "Streams tracked (seen) so far.")
        activeStreams = m.gauge("zcstream_receiver_active_streams", help: "Streams seen whose END has not arrived yet.")
        rateBytes = m.gauge("zcstream_receiver_rate_bytes_per_second", help: "Receive rate over the last snapshot interval (UDP payload bytes).")
        rateDatagrams = m.gauge("zcstream_receiver_rate_datagrams_per_second", help: "Receive rate over the last snapshot interval (intact data datagrams).")
        latency = m.snapshotHistogram("zcstream_receiver_latency_seconds",
                                      bounds: LatencyHistogram.exportBoundsNanoseconds.map { Double($0) / 1e9 },
                                      help: "One-way latency (receive wall clock minus the header timestamp), all streams; meaningful with synchronised clocks.")
        outputsComplete = m.counter("zcstream_receiver_outputs_total", [("state", "complete")],
                                    help: "--output: streams whose output was finalized, by state (complete: END seen, no hole, everything on disk).")
        outputsIncomplete = m.counter("zcstream_receiver_outputs_total", [("state", "incomplete")],
                                      help: "--output: streams whose output was finalized, by state (complete: END seen, no hole, everything on disk).")
        other = makeStream(labels: [("stream", "other"), ("source", "other")])
        totals = PerStream(counters: PerStream.fields.map {
            m.counter("zcstream_receiver_\($0.name)", help: $0.help + " All streams.")
        })
    }

    private func makeStream(labels: [(String, String)]) -> PerStream {
        PerStream(counters: PerStream.fields.map {
            metrics.counter("zcstream_receiver_stream_\($0.name)", labels, help: $0.help + " Per stream.")
        })
    }

    private static func feed(_ p: PerStream, _ s: StreamMetrics) {
        for (i, f) in PerStream.fields.enumerated() { p.counters[i].set(f.value(s)) }
    }

    /// Called by the coordinating thread with each merged snapshot.
    func update(_ snap: ReceiverMetricsSnapshot) {
        state.withLock { st in
            for s in snap.streams {
                guard let key = s.key else { continue }
                let series: PerStream
                if let known = st.streams[key] { series = known }
                else if st.streams.count < Self.labelLimit {
                    series = makeStream(labels: [("stream", ReceiverReportFormatter.hexID(key.streamID)), ("source", key.source.description)])
                    st.streams[key] = series
                } else {
                    continue  // folded below
                }
                Self.feed(series, s)
                st.named[key] = s
            }
            // Streams without a series of their own: everything (retired streams included)
            // less the named series' last values, which stay at a retired stream's final count.
            let total = snap.total
            var namedSum = StreamMetrics(key: nil)
            for s in st.named.values { namedSum.add(s) }
            Self.feed(other, total.subtracting(namedSum))
            Self.feed(totals, total)
            let stats = snap.statistics
            for (i, c) in invalid.enumerated() { c.set(stats.invalid[i]) }
            for (i, c) in unauthenticated.enumerated() { c.set(stats.unauthenticated[i]) }
            corruptUnattributed.set(stats.corruptUnattributed)
            kernelDrops.set(stats.kernelDrops)
            kernelDroppedEstimate.set(stats.kernelDroppedDatagramsEstimate)
            refused.set(stats.streamsRefusedDatagrams)
            truncated.set(stats.truncated)
            outputsComplete.set(snap.outputsComplete)
            outputsIncomplete.set(snap.outputsIncomplete)
            streamsEnded.set(UInt64(snap.streamsEnded) + snap.retired.ended)
            streamsTracked.set(to: Double(UInt64(snap.streamsTracked) + snap.retired.streams))
            activeStreams.set(to: Double(max(0, snap.streamsTracked - snap.streamsEnded)))
            if st.lastNanoseconds != 0 && snap.nanoseconds > st.lastNanoseconds {
                let dt = Double(snap.nanoseconds - st.lastNanoseconds) / 1e9
                rateBytes.set(to: Double(total.bytes &- st.lastBytes) / dt)
                rateDatagrams.set(to: Double(total.datagrams &- st.lastDatagrams) / dt)
            }
            if snap.finished { rateBytes.set(to: 0); rateDatagrams.set(to: 0) }
            st.lastNanoseconds = snap.nanoseconds; st.lastBytes = total.bytes; st.lastDatagrams = total.datagrams
            latency.set(counts: snap.latency.counts, sum: Double(snap.latency.sumNanoseconds) / 1e9)
        }
    }
}
