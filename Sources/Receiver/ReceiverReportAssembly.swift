import ZCSystem

extension ReceiverReport {
    /// The run's report, built once the workers were joined: their cores merged (streams
    /// with the same key combined), a non-server's outputs finalized and its REPORTs sent
    /// (the verdicts are known only now), the multicast timing.
    init(configuration c: ReceiverConfiguration, facts: ReceiveSocketFacts, conductor: inout ReceiverConductor,
         stopReason: ReceiverStopReason, start: UInt64) {
        let workers = conductor.workers
        var merged = workers[0].core!
        var summaries: [ThreadSummary] = []
        for (i, w) in workers.enumerated() {
            let core = w.core!
            summaries.append(.init(datagrams: core.streams.reduce(0) { $0 + $1.datagrams }, kernelDrops: core.statistics.kernelDrops,
                                   streams: core.streams.count, cpu: w.cpu))
            if i > 0 { merged.merge(core) }
        }
        if let output = conductor.output, !c.server {
            merged.finalizeOutput(output)
            // The outputs' verdicts are known only now: export them with the final counts.
            conductor.metrics?.noteOutputs(merged.streams)
            conductor.exportMetrics(now: MonotonicClock.nanoseconds(), finished: true)
        }
        let joinedAt = facts.joinedAt
        let multicast = facts.membership.map {
            MulticastReceiveReport(membership: $0, interface: c.multicast.interface, joinedAtNanoseconds: joinedAt,
                                   joinToFirstDatagramNanoseconds: merged.firstSeenNanoseconds > joinedAt ? merged.firstSeenNanoseconds - joinedAt : nil,
                                   countHeadLoss: c.multicast.countHeadLoss)
        }
        var outcomes: [ReportOutcome] = []
        if !c.server, conductor.reporter != nil {
            // Not a server: every stream's REPORT goes out once the run is over.
            let now = MonotonicClock.nanoseconds()
            let drops = merged.statistics.kernelDrops
            for s in merged.streams where c.reports(s) {
                outcomes.append(conductor.reporter!.send(s, kernelDrops: drops - min(drops, s.kernelDropsAtStart), socket: workers[0].socket, now: now))
            }
        }
        self.init(configuration: c, boundAddress: facts.bound, core: merged, stopReason: stopReason,
                  receiveBufferBytes: facts.granted, receiveBufferLimit: StreamReceiver.readRmemMax(), receiveBufferForced: facts.forced,
                  groEnabled: facts.groEnabled, wallSeconds: Double(MonotonicClock.nanoseconds() - start) / 1e9,
                  threads: summaries, outputErrors: conductor.output?.incompleteness(merged.streams) ?? [], multicast: multicast,
                  reportOutcomes: outcomes)
    }
}
