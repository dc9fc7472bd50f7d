import ArgumentParser
import CLISupport
import MetricsExport

extension ZCRecv {
    /// `--metrics HOST:PORT`: the exporter and its listener (kept for the whole run), or nil.
    func startMetrics(_ listen: String?, program: String) throws -> ReceiverMetricsExporter? {
        guard let listen else { return nil }
        let exporter = ReceiverMetricsExporter()
        guard MetricsServers.serveForRun(listen, registry: exporter.metrics, program: program) else {
            throw ExitCode(ExitStatus.failure)
        }
        return exporter
    }
}
