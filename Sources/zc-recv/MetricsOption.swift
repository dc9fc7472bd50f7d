import ArgumentParser
import CLISupport
import MetricsExport

extension ZCRecv {
    /// `--metrics HOST:PORT`: the exporter and its listener (kept for the whole run), or nil.
    func startMetrics(_ listen: String?, program: String) throws -> ReceiverMetricsExporter? {
        guard let listen else { return nil }
        let exporter = ReceiverMetricsExporter()
        do {
            let server = try MetricsServer.start(listen, registry: exporter.metrics)
            MetricsServers.keep(server)
            Output.standardError("\(program): metrics on http://\(server.boundAddress)/metrics")
        } catch {
            Output.standardError("\(program): \(error)")
            throw ExitCode(ExitStatus.failure)
        }
        return exporter
    }
}
