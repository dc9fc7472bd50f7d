import Synchronization
import ZCSystem

/// Runs several independent streams at once: each has its own stream id, socket,
/// ring, pool and thread (optionally pinned), and nothing is shared on the hot path.
/// The calling thread only gathers progress snapshots and joins the workers.
public enum MultiStreamSender {
    /// Sends one stream per configuration, all with the same `content`, each on its own thread (pinned round robin to
    /// `cpus` when given), and returns their reports in the same order. A single stream
    /// without `cpus` runs on the calling thread.
    ///
    /// - Parameters:
    ///   - configurations: One per stream; must not be empty. Give each its own stream id.
    ///   - cpus: CPUs to pin the stream threads to, round robin; nil leaves them unpinned.
    ///   - progressIntervalNanoseconds: How often to call `progress`; 0 never.
    ///   - progress: Called on the calling thread with the counters summed over streams.
    /// - Throws: ``SenderError``: the first stream's failure, in configuration order, once all threads ended.
    public static func run(_ configurations: [SenderConfiguration], content: StreamContent, cpus: [Int]? = nil,
                           progressIntervalNanoseconds: UInt64 = 0,
                           progress: @escaping (SendProgress) -> Void = { _ in }) throws(SenderError) -> [SenderReport] {
        precondition(!configurations.isEmpty)
        if configurations.count == 1 && cpus == nil {
            return [try StreamSender.run(configurations[0], content: content, progressIntervalNanoseconds: progressIntervalNanoseconds,
                                         progress: progress)]
        }
        let board = Board(count: configurations.count)
        var workers: [WorkerThread] = []
        for (i, c) in configurations.enumerated() {
            let cpu = cpus.map { $0[i % $0.count] }
            do {
                workers.append(try WorkerThread(cpu: cpu) {
                    // Workers report to the board as often as the caller wants progress.
                    let result = Result { () throws(SenderError) -> SenderReport in
                        try StreamSender.run(c, content: content, progressIntervalNanoseconds: progressIntervalNanoseconds) { board.post(i, $0) }
                    }
                    board.finish(i, result)
                })
            } catch {
                StopFlag.request(signal: 0)
                workers.forEach { $0.join() }
                throw .system(error)
            }
        }
        // Gather: one aggregated progress line per interval until every worker is done.
        let start = MonotonicClock.nanoseconds()
        var nextReport = progressIntervalNanoseconds == 0 ? UInt64.max : start + progressIntervalNanoseconds
        while !board.allFinished {
            MonotonicClock.sleep(nanoseconds: 20_000_000)
            let now = MonotonicClock.nanoseconds()
            if now >= nextReport {
                nextReport = now + progressIntervalNanoseconds
                if let snapshot = board.aggregate(elapsed: now - start) { progress(snapshot) }
            }
        }
        workers.forEach { $0.join() }
        return try board.results()
    }

    /// The only shared state: written by workers once per interval, not per datagram.
    final class Board: Sendable {
        private let state: Mutex<State>
        struct State {
            var latest: [SendProgress?]
            var results: [Result<SenderReport, SenderError>?]
            var finished = 0
        }

        init(count: Int) {
            state = Mutex(State(latest: Array(repeating: nil, count: count), results: Array(repeating: nil, count: count)))
        }

        func post(_ i: Int, _ p: SendProgress) { state.withLock { $0.latest[i] = p } }

        func finish(_ i: Int, _ r: Result<SenderReport, SenderError>) {
            state.withLock { $0.results[i] = r; $0.finished += 1 }
        }

        var allFinished: Bool { state.withLock { $0.finished == $0.results.count } }

        func aggregate(elapsed: UInt64) -> SendProgress? {
            state.withLock { s in
                let present = s.latest.compactMap { $0 }
                guard !present.isEmpty else { return nil }
                var total = SendProgress(elapsedNanoseconds: elapsed, statistics: SenderStatistics(), slotsInFlight: 0)
                for p in present {
                    total.statistics.merge(p.statistics)
                    total.slotsInFlight += p.slotsInFlight
                    if let r = p.reliable {
                        var sum = total.reliable ?? ReliableProgress()
                        sum.merge(r)
                        total.reliable = sum
                    }
                }
                return total
            }
        }

        func results() throws(SenderError) -> [SenderReport] {
            let all = state.withLock { $0.results }
            var reports: [SenderReport] = []
            for r in all {
                switch r! {
                case .success(let report): reports.append(report)
                case .failure(let error): throw error
                }
            }
            return reports
        }
    }
}

extension SenderStatistics {
    /// Adds another stream's counters (for totals across streams).
    public mutating func merge(_ o: SenderStatistics) {
        datagrams &+= o.datagrams; bytes &+= o.bytes; sends &+= o.sends
        notifications &+= o.notifications; copied &+= o.copied
        datagramsFailed &+= o.datagramsFailed; retries &+= o.retries
        endsSent &+= o.endsSent; recycledEarly &+= o.recycledEarly
        for (code, n) in o.errors { errors[code, default: 0] += n }
        // Totals keep the earliest switch (each stream's own report has its own).
        if let w = o.switchedToCopy, switchedToCopy.map({ w.afterSeconds < $0.afterSeconds }) ?? true { switchedToCopy = w }
    }
}
