import ArgumentParser
import CLISupport
import Receiver
import StreamProtocol
import ZCSystem
#if canImport(Glibc)
import Glibc
#endif

@main
struct ZCRecv: ParsableCommand, CommonOptionsCommand {
    static let configuration = CommandConfiguration(
        commandName: "zc-recv",
        abstract: "Receive zcstream datagrams and validate every one: sequence, checksum and payload, per stream.",
        discussion: """
        Listens on [HOST:]PORT (default host 0.0.0.0; use [::]:PORT for IPv6) and accounts for every \
        stream exactly: received, lost (with the ranges), reordered, duplicates, corrupt (checksum or \
        payload pattern), invalid datagrams by reason, and datagrams the kernel dropped because the \
        socket buffer was full.

        A stream is a stream id from one source address: two senders that pick the same id are two \
        streams. Engines: uring (io_uring multishot RECVMSG into a provided buffer ring) and recvmmsg; \
        both split UDP GRO buffers. --threads N opens N SO_REUSEPORT sockets, one receive thread each \
        (a flow hashes to one socket); the totals are merged at the end.

        --output FILE writes each stream's payload at its stream offset, so the file is the stream \
        byte for byte; lost ranges stay holes (zeros) and are listed in the report. With --streams 1 \
        (or unset) the first stream writes FILE itself and any further stream FILE.<16 hex digit \
        stream id>; with --streams N > 1 every stream gets that suffix (a second stream with the same \
        id from another source adds .2, .3, ...). --output - writes the first stream in order to \
        stdout (out-of-order datagrams wait in a --output-window buffer; gaps that never fill are \
        skipped and reported, nothing is invented); the report then goes to stderr.

        The output is part of the verdict: a byte that arrived but is not in the file — a failed \
        write (disk full, file too large, I/O error), a file that could not be opened or was \
        deleted, a failed fsync, or a byte at or beyond --output-max-bytes (default 1T) or the \
        END's total — fails the run (exit 3), and the report lists those byte ranges per stream. \
        Reception and validation go on while the disk fails. When the run ends every file and \
        its directory are fsynced before the verdict is printed; --fsync-interval T also syncs \
        during the run (off by default), bounding what a crash can lose.

        Kernel drops (SO_RXQ_OVFL) are datagrams this receiver's socket buffer had no room for: the \
        receiver did not keep up. They are reported apart from path loss, with what to change \
        (--rcvbuf, net.core.rmem_max, --threads). With GRO the kernel counts dropped buffers \
        (up to 44 datagrams each); the report estimates the datagrams.

        Ends after --streams N streams sent their END (and are complete or --linger passed), after \
        --idle-timeout without traffic, after --timeout, or on SIGINT/SIGTERM; then prints the report.
        Exit status: 0 ok, 1 loss or corruption beyond --max-loss/--max-corrupt, or datagrams not \
        accounted (streams beyond --max-streams, truncated datagrams), 2 runtime error, 3 output \
        incomplete (within those limits): a hole, a stream without END, a byte not written, or no \
        stream at all, 64 bad usage, 73 --output cannot be created or written (checked at start), \
        130/143 stopped by a signal.

        Sequence numbers at or above a stream's END total are not stream data: counted as \
        beyond_end (never unique or lost); stream data that arrives after the END (overtaken by it) \
        counts as usual and also as after_end. Stream ids are printed as 0x + 16 hex digits, also in \
        the JSON (a string).

        Server (--server): runs until SIGINT/SIGTERM (or --timeout), taking any number of streams \
        at once and one after another. A stream is finished --linger after its END, or after \
        --idle-timeout without a datagram of its own; it is then reported on stdout (a text block, \
        or with --json one JSON object per line, NDJSON, with the stream's full record) and its \
        state is freed, so memory stays flat however many streams come and go. --streams does not \
        apply; a stop by signal exits 0. --output FILE writes each stream to FILE.<16 hex digit stream \
        id> (never overwriting: an existing name gets .2, .3, ...), finalized, fsynced and closed \
        as the stream finishes; its record says where. Late copies of a finished stream's datagrams (END repeats) \
        are counted apart (retired_stream_datagrams), never opened as a new stream.

        REPORT: when a stream finishes (a server) or the run ends, its verdict goes back to its \
        source address and port as one REPORT datagram (Protocol/SPEC.md §12), from the receiving \
        socket; zc-send waits for it and prints it. Only a source whose stream delivered valid \
        datagrams gets one, never larger than what that stream delivered, at most \
        --report-rate per second per source host (burst twice that). --no-report: never send. \
        Not for a multicast group.

        JSON: --json (-J) prints one JSON document on stdout when the run ends, whatever \
        --interval says. --json-stream prints JSON lines (NDJSON): one {"event": "interval", \
        "timestamp", "role", "interval": {start_seconds, end_seconds, seconds, gbps, pps, \
        datagrams, bytes, kernel_drops}, "so_far": {datagrams, bytes, lost, corrupt, invalid, \
        kernel_drops, streams}} per --interval, then the final report as the last line with \
        "event": "final". With --output - these go to stderr. A server's run has no end: with \
        --json each finished stream is its own one-line document ("event": "stream_finished"), \
        as iperf3 -s -J prints one document per test; --json-stream adds the interval lines.

        Short options are iperf3's where the meaning is the same: -s (server), -p PORT, -B HOST, \
        -u (ignored: always UDP), -w RCVBUF, -F FILE, -i TIME, -J. Times take units (5s, 300ms, 2m); \
        a plain number is seconds.

        Examples:
          zc-recv 9000 --server --json
          zc-recv -s -p 9000 -J
          zc-recv 9000 --streams 1
          zc-recv [::]:9000 --json --interval 0
          zc-recv 9000 --engine uring --threads 2 --cpu 0,1 --streams 2
          zc-recv 9000 --streams 1 --output received.bin
          zc-recv 239.255.13.13:9500 --interface eth1 --streams 1
          zc-recv [ff15::13]:9500 --interface eth1 --source-filter 2001:db8::7

        Multicast: listening on a group address (224.0.0.0/4, ff00::/8) joins the group \
        (--interface picks where; --source-filter makes it source-specific) and leaves it at \
        the end. Several receivers of one group may run on one host (SO_REUSEADDR: each gets \
        every datagram); one thread per group. A receiver that joins after a stream began \
        accounts it from the first sequence number it received and says so (joined_late, \
        first_sequence, head_not_counted) instead of calling the missed head path loss, unless \
        --count-head-loss; the report gives the time from the join to the first datagram.
        """,
        version: ZCStreamVersion.string
    )

    @Argument(help: "Address to listen on: PORT, HOST:PORT or [IPV6]:PORT (port 0: any free port); or -p PORT [-B HOST].")
    var listen: String?

    @Option(name: .shortAndLong, help: "Port to listen on, as iperf3's -p (instead of the LISTEN argument).")
    var port: UInt16?

    @Option(name: [.customShort("B"), .customLong("bind")], help: ArgumentHelp("With -p: the local address to listen on, as iperf3's -B (default 0.0.0.0; [::] for IPv6).", valueName: "HOST"))
    var bind: String?

    @Flag(name: [.customShort("u"), .customLong("udp")], help: "Accepted for iperf3's habit and ignored: zcstream is always UDP.")
    var udp = false

    @Option(name: .shortAndLong, help: "Receive engine: \(ReceiveEngineKind.allCases.map(\.rawValue).joined(separator: ", ")).", completion: .list(ReceiveEngineKind.allCases.map(\.rawValue)))
    var engine: String = ReceiverConfiguration.defaultEngine.rawValue

    @Option(help: "Receive threads, each with its own SO_REUSEPORT socket (1...64).")
    var threads: Int = 1

    @Option(name: [.customShort("F"), .customLong("output")], help: "Write the payload (iperf3's -F, --file): FILE (at stream offsets; more streams: FILE.<id>) or - (first stream, in order, to stdout).", completion: .file())
    var output: String?

    @Option(help: "With --output -: bytes of out-of-order data held back while waiting for a gap to fill (K/M).")
    var outputWindow: String = "16M"

    @Option(help: "With --output: write no stream byte at or beyond this offset (K/M/G/T; none: no limit); such bytes are reported and fail the run.")
    var outputMaxBytes: String = "1T"

    @Option(help: "With --output: fdatasync the files at most this often during the run (e.g. 1s; default: only at the end).")
    var fsyncInterval: String?

    @Option(help: "UDP GRO: on (coalesce in the kernel, split here) or off.", completion: .list(["on", "off"]))
    var gro: String = "on"

    @Option(name: [.customShort("w"), .customLong("rcvbuf")], help: "Socket receive buffer (K/M/G; iperf3's -w, --window).")
    var rcvbuf: String = "256M"

    @Flag(name: .shortAndLong, help: "Serve (iperf3's -s): run until stopped, report (and free) each stream as it finishes; see Server above.")
    var server = false

    @Option(help: ArgumentHelp("Accept datagrams only from this source network (CIDR or address, IPv4 or IPv6; repeatable). Others are dropped before validation, counted by source, never answered.", valueName: "CIDR"))
    var allow: [String] = []

    @Flag(help: "Send no REPORT datagram back to the senders.")
    var noReport = false

    @Option(help: ArgumentHelp("REPORTs per second one source host may get (twice that in a burst).", valueName: "PER-SECOND"))
    var reportRate: Double = 20

    @Option(help: "Stop after this many streams have ended.")
    var streams: Int?

    @Option(help: "Streams tracked at most (1...65536); valid datagrams of further streams are counted apart, not accounted, and fail the verdict.")
    var maxStreams: Int = ValidatingCore.defaultMaxStreams

    @Option(help: "Multicast: source-specific join (IGMPv3/MLDv2), only datagrams from this sender's address.")
    var sourceFilter: String?

    @Flag(help: "Multicast: count a late-joined stream's head (sequence numbers before the first one received) as lost.")
    var countHeadLoss = false

    @Option(help: "Stop after this long without a datagram, once traffic started (e.g. 5s).")
    var idleTimeout: String = "5s"

    @Option(help: "Stop after this long in any case (e.g. 60s).")
    var timeout: String?

    @Option(help: "After the last expected END, wait this long for late datagrams.")
    var linger: String = "300ms"

    @Option(help: "Largest acceptable loss in percent before exiting with status 1.")
    var maxLoss: Double = 100

    @Option(help: "Largest acceptable number of corrupt datagrams before exiting with status 1.")
    var maxCorrupt: UInt64 = 0

    @OptionGroup(title: "Keyed streams")
    var keying: KeyOptions

    @OptionGroup(title: "Placement")
    var placement: PlacementOptions

    @OptionGroup(title: "Reporting")
    var reporting: ReportingOptions

    func validate() throws {
        if ReceiveEngineKind(rawValue: engine) == nil { throw ValidationError("--engine '\(engine)' is unknown: use \(ReceiveEngineKind.allCases.map(\.rawValue).joined(separator: ", "))") }
        if !["on", "off"].contains(gro) { throw ValidationError("--gro must be on or off") }
        if Units.parseBytes(rcvbuf).map({ $0 > 0 && $0 <= UInt64(Int32.max) }) != true { throw ValidationError("--rcvbuf '\(rcvbuf)' must be a size from 1 byte to 2G") }
        if let streams, streams < 1 || streams > 65536 { throw ValidationError("--streams must be 1...65536") }
        if !(1...65536).contains(maxStreams) { throw ValidationError("--max-streams must be 1...65536") }
        if (Units.parseDuration(idleTimeout) ?? 0) == 0 { throw ValidationError("--idle-timeout '\(idleTimeout)' must be a positive duration (e.g. 5s)") }
        if let timeout, (Units.parseDuration(timeout) ?? 0) == 0 { throw ValidationError("--timeout '\(timeout)' must be a positive duration (e.g. 60s)") }
        if Units.parseDuration(linger) == nil { throw ValidationError("--linger '\(linger)' must be a duration (e.g. 300ms)") }
        if !(0...100).contains(maxLoss) { throw ValidationError("--max-loss must be a percentage from 0 to 100") }
        if Units.parseDuration(interval) == nil { throw ValidationError("--interval '\(interval)' must be a duration (1s, 500ms, 0.5; 0: none)") }
        if server && streams != nil { throw ValidationError("--streams does not apply to --server (a server takes any number of streams)") }
        if server && output == "-" { throw ValidationError("--output - (one stream, in order, to stdout) does not apply to --server: give a FILE (each stream writes FILE.<id>)") }
        if !(reportRate > 0 && reportRate.isFinite) { throw ValidationError("--report-rate must be a positive number of REPORTs per second") }
        if !(1...64).contains(threads) { throw ValidationError("--threads must be 1...64") }
        if let cpu {
            guard let list = Units.parseCPUList(cpu), !list.isEmpty else { throw ValidationError("--cpu '\(cpu)' must be a CPU list like 0,1 or 0-3") }
            let available = WorkerThread.availableCPUs
            if let bad = list.first(where: { $0 >= available }) { throw ValidationError("--cpu \(bad) is out of range: this machine has CPUs 0...\(available - 1)") }
        }
        if let output, output.isEmpty { throw ValidationError("--output needs a file name or -") }
        if outputMaxBytes != "none" && (Units.parseBytes(outputMaxBytes) ?? 0) == 0 { throw ValidationError("--output-max-bytes '\(outputMaxBytes)' must be a positive size (e.g. 1T) or none") }
        if let fsyncInterval, (Units.parseDuration(fsyncInterval) ?? 0) == 0 { throw ValidationError("--fsync-interval '\(fsyncInterval)' must be a positive duration (e.g. 1s)") }
        if Units.parseBytes(outputWindow).map({ $0 >= 65_536 && $0 <= 1 << 30 }) != true { throw ValidationError("--output-window '\(outputWindow)' must be a size from 64K to 1G") }
    }


    func makeConfiguration() throws -> ReceiverConfiguration {
        let address: SocketAddress
        let listen = try listenText()
        do { address = try SocketAddress.parse(listen, defaultHost: "0.0.0.0", allowPortZero: true) }
        catch { throw ValidationError("listen address: \(error)") }
        var c = ReceiverConfiguration(listen: address)
        c.engine = ReceiveEngineKind(rawValue: engine)!
        c.gro = gro == "on"
        c.receiveBufferBytes = Int32(Units.parseBytes(rcvbuf)!)
        c.streams = streams
        c.maxStreams = maxStreams
        c.multicast.interface = interface
        c.multicast.countHeadLoss = countHeadLoss
        if let sourceFilter {
            do { c.multicast.source = try SocketAddress.resolve(host: sourceFilter, port: 0) }
            catch { throw ValidationError("--source-filter: \(error)") }
        }
        if countHeadLoss && !address.isMulticast { throw ValidationError("--count-head-loss applies only to a multicast group address") }
        if let interface, address.isMulticast, (try? interfaceIndex(named: interface)) == nil {
            throw ValidationError("--interface '\(interface)': no such interface")
        }
        c.idleTimeoutNanoseconds = Units.parseDuration(idleTimeout)!
        c.timeoutNanoseconds = timeout.flatMap(Units.parseDuration)
        c.lingerNanoseconds = Units.parseDuration(linger)!
        c.threads = threads
        c.cpus = cpu.flatMap(Units.parseCPUList)
        if let output {
            c.output = output == "-" ? .standardOutput(windowBytes: Int(Units.parseBytes(outputWindow)!)) : .file(output)
        }
        c.outputMaxBytes = outputMaxBytes == "none" ? nil : Units.parseBytes(outputMaxBytes)
        c.fsyncIntervalNanoseconds = fsyncInterval.flatMap(Units.parseDuration)
        c.server = server
        if !allow.isEmpty {
            switch AllowList.parse(allow) {
            case .success(let list): c.allowList = list
            case .failure(let bad): throw ValidationError("--allow \(bad)")
            }
        }
        c.reports = !noReport
        if let path = keying.path {
            do { c.key = try StreamSecret(contentsOf: path) } catch { throw ValidationError("--key: \(error)") }
        }
        c.verdictLimits = StreamVerdictLimits(maxLossPercent: maxLoss, maxCorrupt: maxCorrupt)
        c.reportRateLimiter = ReportRateLimiter(perSecond: reportRate, burst: reportRate * 2)
        // The library's own range checks, as the last word (the flags above are
        // checked first so each message names the flag as typed).
        do { return try c.validated() } catch { throw ValidationError(error.describe { Self.flags[$0] ?? $0 }) }
    }

    /// The address to listen on, from the argument or -p PORT [-B HOST].
    func listenText() throws -> String {
        switch (listen, port) {
        case (let l?, nil):
            if bind != nil { throw ValidationError("--bind goes with -p/--port; with a LISTEN argument write HOST:PORT") }
            return l
        case (nil, let p?):
            switch Endpoint.join(bind ?? "0.0.0.0", port: p, hostFlag: "--bind") {
            case .success(let text): return text
            case .failure(let error): throw ValidationError(error.description)
            }
        case (nil, nil): throw ValidationError("listen address missing: give PORT, HOST:PORT, or -p PORT")
        case (_?, _?): throw ValidationError("listen address given twice: a LISTEN argument or -p/--port, not both")
        }
    }

    /// The flag that sets each ReceiverConfiguration property, for the library's messages.
    static let flags = [
        "threads": "--threads", "streams": "--streams", "maxStreams": "--max-streams", "receiveBufferBytes": "--rcvbuf",
        "idleTimeoutNanoseconds": "--idle-timeout", "timeoutNanoseconds": "--timeout", "outputMaxBytes": "--output-max-bytes",
        "fsyncIntervalNanoseconds": "--fsync-interval", "cpus": "--cpu", "multicast.interface": "--interface",
        "multicast.source": "--source-filter",
    ]

    func run() throws {
        let configuration = try makeConfiguration()
        if let output = configuration.output {
            // A file that cannot be written is found now, not after the stream (exit 73, EX_CANTCREAT).
            do {
                try OutputTarget(output, expectedStreams: configuration.streams, server: configuration.server).checkWritable()
            } catch {
                Output.standardError("zc-recv: --output \(error)")
                throw ExitCode(ExitStatus.cannotCreate)
            }
        }
        let exporter = try startMetrics(metrics, program: "zc-recv")
        StopFlag.install()
        // Past RLIMIT_FSIZE a write must fail with EFBIG (reported), not kill the process.
        signal(SIGXFSZ, SIG_IGN)
        var printer = ReceiveProgressPrinter()
        let jsonMode = JSONMode(json: json, jsonStream: jsonStream)
        printer.json = jsonMode.streamsIntervals
        printer.jsonToStandardError = output == "-"
        let report: ReceiverReport
        do {
            report = try StreamReceiver.run(configuration, progressIntervalNanoseconds: Units.parseDuration(interval)!,
                ready: { address, rcvbuf, gro in
                    Output.standardError("zc-recv: listening on \(address) (\(configuration.engine.rawValue), GRO \(gro ? "on" : "off"), rcvbuf \(Units.bytes(UInt64(rcvbuf))), \(configuration.threads) thread(s))")
                },
                progress: { printer.print($0) },
                metrics: exporter.map { e in ReceiverMetricsPublisher(labelLimit: ReceiverMetricsExporter.labelLimit) { e.update($0) } },
                finished: { f in
                    // One line per stream with --json or --json-stream (NDJSON), else a text block.
                    Output.standardOutput(jsonMode != .off ? ReceiverReportFormatter.finishedJSON(f, limits: configuration.verdictLimits).rendered(pretty: false)
                                               : ReceiverReportFormatter.finishedText(f, limits: configuration.verdictLimits))
                })
        } catch {
            Output.standardError("zc-recv: \(error)")
            throw ExitCode(ExitStatus.failure)
        }
        if server {
            // Every stream was reported as it finished; the server itself stopped cleanly.
            let stats = report.core.statistics
            Output.standardError("zc-recv: server stopped (\(report.stopReason.rawValue)) after \(report.core.streamsRetired) stream(s); invalid \(stats.invalidTotal), corrupt unattributed \(stats.corruptUnattributed), retired-stream datagrams \(stats.retiredStreamDatagrams), not allowed \(report.core.refusedSources.total), streams refused \(stats.streamsRefusedDatagrams), kernel drops \(stats.kernelDrops)\(report.configuration.key == nil ? "" : ", unauthenticated \(stats.unauthenticatedTotal)")")
            return
        }
        let verdict = Verdict(report, maxLossPercent: maxLoss, maxCorrupt: maxCorrupt)
        // With --output -, stdout carries the stream: the report goes to stderr.
        let full = ReceiverReportFormatter.json(report, verdict: verdict).withVersion()
        // -J: one pretty document; --json-stream: the stream's last line.
        let text = jsonMode != .off ? jsonMode.final(full) : ReceiverReportFormatter.text(report, verdict: verdict)
        if output == "-" { Output.standardError(text) } else { Output.standardOutput(text) }
        if report.stopReason == .signal { throw ExitCode(ExitStatus.signal(StopFlag.signal)) }
        if !verdict.withinLimits { throw ExitCode(ExitStatus.validationFailed) }
        if !verdict.outputComplete { throw ExitCode(ExitStatus.outputIncomplete) }
    }
}

/// Pass/fail against the user's limits, with the reasons spelled out.
struct Verdict {
    var ok: Bool { failures.isEmpty }
    var failures: [String] = []
    /// Loss and corruption within --max-loss / --max-corrupt (exit 1 otherwise).
    var withinLimits = true
    /// Every byte that arrived is in the output and on disk (exit 3 otherwise).
    var outputComplete = true

    init(_ r: ReceiverReport, maxLossPercent: Double, maxCorrupt: UInt64) {
        defer {
            withinLimits = failures.isEmpty
            outputComplete = r.outputOK
            for e in r.outputErrors { failures.append("output incomplete: \(e)") }
        }
        let t = Totals(r)
        let expected = t.expected
        let stats = r.core.statistics
        if stats.streamsRefusedDatagrams > 0 {
            failures.append("\(stats.streamsRefusedDatagrams) datagrams of streams beyond --max-streams \(r.configuration.maxStreams) not accounted")
        }
        if stats.truncated > 0 {
            failures.append("\(stats.truncated) datagrams truncated by the receive buffer")
        }
        // Asked for N streams and got fewer: the run has not succeeded, whatever arrived.
        if let wanted = r.configuration.streams, r.core.streams.count < wanted {
            failures.append("\(r.core.streams.count) of the \(wanted) stream(s) asked for (--streams) arrived")
        }
        let conflicting = r.core.streams.reduce(UInt64(0)) { $0 &+ $1.conflictingDuplicates }
        if conflicting > 0 {
            failures.append("\(conflicting) conflicting duplicates (a second copy of a sequence number with other bytes)")
        }
        if !t.exact {
            failures.append("accounting not exact for \(r.core.streams.filter { !$0.exact }.count) stream(s)")
        }
        let lossPercent = expected == 0 ? 0 : Double(t.lost) / Double(expected) * 100
        if lossPercent > maxLossPercent {
            failures.append("loss \(Units.fixed(lossPercent, 4))% > --max-loss \(maxLossPercent)%")
        }
        if t.corrupt > maxCorrupt {
            failures.append("\(t.corrupt) corrupt datagrams > --max-corrupt \(maxCorrupt)")
        }
    }
}

/// Sums over streams.
struct Totals {
    var datagrams: UInt64 = 0, bytes: UInt64 = 0, unique: UInt64 = 0, lost: UInt64 = 0
    var reordered: UInt64 = 0, duplicates: UInt64 = 0, corrupt: UInt64 = 0, late: UInt64 = 0, afterEnd: UInt64 = 0
    var beyondEnd: UInt64 = 0, expected: UInt64 = 0, exact = true

    init(_ r: ReceiverReport) {
        for s in r.core.streams {
            let summary = s.summary()
            // Saturating: a hostile stream can claim up to 2^64 - 1 lost on its own.
            datagrams = datagrams.saturatingAdd(s.datagrams); bytes = bytes.saturatingAdd(s.bytes)
            unique = unique.saturatingAdd(s.tracker.unique); lost = lost.saturatingAdd(summary.lost)
            reordered = reordered.saturatingAdd(s.tracker.reordered); duplicates = duplicates.saturatingAdd(s.tracker.duplicates)
            corrupt = corrupt.saturatingAdd(s.corrupt); late = late.saturatingAdd(s.tracker.late)
            afterEnd = afterEnd.saturatingAdd(s.afterEnd)
            beyondEnd = beyondEnd.saturatingAdd(s.beyondEnd)
            expected = expected.saturatingAdd(s.expectedDatagrams)
            exact = exact && s.exact
        }
        corrupt = corrupt.saturatingAdd(r.core.statistics.corruptUnattributed)
    }
}
