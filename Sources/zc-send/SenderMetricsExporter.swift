import ArgumentParser
import CLISupport
import MetricsExport
import Prometheus
import Sender
import Synchronization

/// zc-send's Prometheus families (README "Operate"), fed from the progress snapshots
/// the send loop already hands out (every 200 ms with --metrics): totals over streams.
final class SenderMetricsExporter: @unchecked Sendable {
    /// Progress interval while --metrics is on.
    static let intervalNanoseconds: UInt64 = 200_000_000
    let metrics = MetricsRegistry(program: "zc-send")
    private let datagrams, bytes, sends, notifications, copied, failedDatagrams, retries, endsSent: MonotoneCounter
    private let errors = Mutex<[Int32: MonotoneCounter]>([:])
    private let inFlight, rateBytes, rateDatagrams: Gauge
    private let acknowledged, retransmitted, naks, statusReceived: MonotoneCounter
    private let receivers: [(state: String, gauge: Gauge)]
    private let last = Mutex<(ns: UInt64, bytes: UInt64, datagrams: UInt64)>((0, 0, 0))

    init() {
        let m = metrics
        datagrams = m.counter("zcstream_sender_datagrams_total", help: "Data datagrams the kernel accepted (failed sends excluded), all streams.")
        bytes = m.counter("zcstream_sender_bytes_total", help: "UDP payload bytes (headers included) of those datagrams.")
        sends = m.counter("zcstream_sender_sends_total", help: "Send operations submitted (one per GSO super-buffer), END and retries included.")
        notifications = m.counter("zcstream_sender_zerocopy_notifications_total", help: "SEND_ZC notifications received.")
        copied = m.counter("zcstream_sender_zerocopy_copied_total", help: "Zero-copy notifications saying the kernel copied the data anyway.")
        failedDatagrams = m.counter("zcstream_sender_failed_datagrams_total", help: "Datagrams lost to failed sends (the receiver counts them lost).")
        retries = m.counter("zcstream_sender_retries_total", help: "Sends retried after a transient error (ENOBUFS, EAGAIN, ENOMEM).")
        endsSent = m.counter("zcstream_sender_ends_total", help: "END datagrams sent.")
        inFlight = m.gauge("zcstream_sender_slots_in_flight", help: "Buffer slots (or frames) the kernel has not released yet.")
        rateBytes = m.gauge("zcstream_sender_rate_bytes_per_second", help: "Send rate over the last interval (UDP payload bytes).")
        rateDatagrams = m.gauge("zcstream_sender_rate_datagrams_per_second", help: "Send rate over the last interval (data datagrams).")
        acknowledged = m.counter("zcstream_sender_acknowledged_datagrams_total", help: "Reliable streams: sequence numbers acknowledged (by every receiver still in a group).")
        retransmitted = m.counter("zcstream_sender_retransmitted_datagrams_total", help: "Reliable streams: datagrams repaired from their slots.")
        naks = m.counter("zcstream_sender_naks_received_total", help: "Reliable streams: NAKs accepted.")
        statusReceived = m.counter("zcstream_sender_status_received_total", help: "Reliable streams: STATUS datagrams accepted.")
        receivers = ["live", "delivered", "dropped", "other"].map { state in
            (state, m.gauge("zcstream_sender_receivers", [("state", state)], help: "Reliable streams: receivers heard, by state (other: gave up or joined too late)."))
        }
    }

    func update(_ p: SendProgress) {
        let s = p.statistics
        datagrams.set(s.datagrams); bytes.set(s.bytes); sends.set(s.sends)
        notifications.set(s.notifications); copied.set(s.copied); failedDatagrams.set(s.datagramsFailed)
        retries.set(s.retries); endsSent.set(s.endsSent)
        for (errno, count) in s.errors {
            let c = errors.withLock { table in
                if let c = table[errno] { return c }
                let c = metrics.counter("zcstream_sender_send_errors_total", [("errno", String(errno))], help: "Failed sends by errno.")
                table[errno] = c
                return c
            }
            c.set(count)
        }
        inFlight.set(to: Double(p.slotsInFlight))
        if let r = p.reliable {
            acknowledged.set(r.acknowledged); retransmitted.set(r.retransmittedDatagrams)
            naks.set(r.naksReceived); statusReceived.set(r.statusReceived)
            for (state, gauge) in receivers {
                let n = state == "live" ? r.receiversLive : state == "delivered" ? r.receiversDelivered : state == "dropped" ? r.receiversDropped : r.receiversOther
                gauge.set(to: Double(n))
            }
        }
        last.withLock { l in
            if p.elapsedNanoseconds > l.ns {
                let dt = Double(p.elapsedNanoseconds - l.ns) / 1e9
                rateBytes.set(to: Double(s.bytes &- l.bytes) / dt)
                rateDatagrams.set(to: Double(s.datagrams &- l.datagrams) / dt)
            }
            l = (p.elapsedNanoseconds, s.bytes, s.datagrams)
        }
    }

    /// `--metrics HOST:PORT`: the exporter with its listener running, or nil.
    static func start(_ listen: String?) throws -> SenderMetricsExporter? {
        guard let listen else { return nil }
        let exporter = SenderMetricsExporter()
        guard MetricsServers.serveForRun(listen, registry: exporter.metrics, program: "zc-send") else {
            throw ExitCode(ExitStatus.failure)
        }
        return exporter
    }
}
