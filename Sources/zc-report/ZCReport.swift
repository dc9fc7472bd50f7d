import ArgumentParser
import CLISupport
#if canImport(Glibc)
import Glibc
#endif

@main
struct ZCReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zc-report",
        abstract: "Render a zc-send or zc-recv JSON run as one self-contained HTML page with charts.",
        discussion: """
        Reads the stdout of `zc-send --json-stream` or `zc-recv --json-stream` (JSON lines: \
        "event": "interval" lines, then the "final" report), or a `-J` document (no intervals), \
        and writes one HTML file with everything inline (no script, no external file): the \
        verdict, a summary table, and SVG charts of throughput and of loss per interval.
        Exit status: 0 written, 2 cannot read RUN or write the page, 64 bad usage or RUN is not \
        a zcstream JSON run.

        Examples:
          zc-send 198.18.0.2:9000 -t 10 --json-stream > run.json && zc-report run.json -o report.html
          zc-recv 9000 --streams 1 --json-stream | zc-report - -o receiver.html
        """,
        version: ZCStreamVersion.string
    )

    @Argument(help: ArgumentHelp("The run: a file of --json-stream lines or a -J document; - for stdin.", valueName: "RUN.json"),
              completion: .file(extensions: ["json", "ndjson"]))
    var runFile: String

    @Option(name: .shortAndLong, help: "Where to write the page (- for stdout).", completion: .file(extensions: ["html"]))
    var output: String = "report.html"

    @Option(help: "The page's title (default: the run's role and peer).")
    var title: String?

    func run() throws {
        guard let text = FileIO.read(runFile) else {
            Output.standardError("zc-report: cannot read \(runFile): \(String(cString: strerror(errno)))")
            throw ExitCode(ExitStatus.failure)
        }
        let parsed: RunRecord
        do { parsed = try RunRecord(text) } catch {
            Output.standardError("zc-report: \(runFile): \(error)")
            throw ExitCode(ExitStatus.usage)
        }
        let html = ReportPage(parsed, title: title).html()
        guard FileIO.write(output, html) else {
            Output.standardError("zc-report: cannot write \(output): \(String(cString: strerror(errno)))")
            throw ExitCode(ExitStatus.failure)
        }
        if output != "-" {
            Output.standardError("zc-report: \(output): \(parsed.intervals.count) intervals, verdict \(parsed.verdict.word)")
        }
    }
}

/// Whole-file reads and writes on file descriptors (no Foundation).
enum FileIO {
    static func read(_ path: String) -> String? {
        let fd = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { if fd != 0 { close(fd) } }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func write(_ path: String, _ text: String) -> Bool {
        let fd = path == "-" ? 1 : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        defer { if fd != 1 { close(fd) } }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 { if errno == EINTR { continue }; return false }
            offset += n
        }
        return true
    }
}
