import ArgumentParser
import CLISupport
import Sender
import StreamProtocol
import ZCSystem
#if canImport(Glibc)
import Glibc
#endif

@main
struct ZCSend: ParsableCommand, CommonOptionsCommand {
    static let configuration = CommandConfiguration(
        commandName: "zc-send",
        abstract: "Stream UDP datagrams with io_uring zero-copy sends; every datagram is sequenced and checksummed.",
        discussion: """
        Sends one stream of zcstream datagrams (Protocol/SPEC.md) to HOST:PORT until --count, --bytes \
        or --duration is reached (default: 10 s), then an END datagram carrying the totals. \
        Run zc-recv on the far side to validate every datagram.

        Engines: uring-zc (io_uring SEND_ZC from registered buffers; a buffer is reused only after the \
        kernel's notification), uring (io_uring SEND, copying), sendmmsg (copying baseline), \
        packet-ring (raw mode, root: whole Ethernet (802.1Q with --vlan) + IPv4 or IPv6 + UDP frames written \
        into an AF_PACKET TX ring on --interface, to the next hop the kernel's route and neighbour table give; \
        one datagram per frame, or with --gso up to 64 KiB of datagrams the kernel segments after the ring; UDP checksums offloaded).
        On loopback and veth the kernel must copy zero-copy pages delivered to a local socket; the \
        summary reports how many sends it copied.

        After END, zc-send waits up to --report-timeout for the receiver's REPORT (Protocol/SPEC.md \
        §12) on the socket it sent from (packet-ring: a UDP socket bound to --src-port) and prints \
        it beside its own summary, in JSON as "receiver" (the keys of zc-recv's stream record). \
        --max-loss PCT / --max-corrupt N judge the receiver's numbers as zc-recv does. No REPORT \
        in time: said plainly, JSON "receiver": null and "receiver_missing" (why). --no-report: \
        do not wait (never for a multicast group). zc-recv sends a REPORT when a stream finishes \
        (--server) or when its run ends.
        Exit status: 0 ok, 1 the receiver's loss or corruption beyond --max-loss/--max-corrupt \
        (or the receiver's accounting not exact, or its --output incomplete; loss is judged against \
        what was sent, so a REPORT without the END counts the unseen tail as lost), or datagrams \
        that failed to send (beyond --max-loss when given), 2 runtime error, 4 no REPORT in \
        time while --max-loss or --max-corrupt was asked for (no verdict), 64 bad usage, 77 not \
        permitted, 130/143 stopped by a signal.

        JSON: --json (-J) prints one JSON document on stdout when the run ends, whatever \
        --interval says (json.load and jq read it as one object). --json-stream prints JSON lines \
        (NDJSON): one {"event": "interval", "timestamp", "role", "interval": {start_seconds, \
        end_seconds, seconds, gbps, pps, datagrams, bytes}, "so_far": {datagrams, bytes, \
        notifications, copied, slots_in_flight, errors}} per --interval, then the final report as \
        the last line with "event": "final" and "timestamp" (the document's keys otherwise).

        Short options are iperf3's where the meaning is the same: -c HOST -p PORT, -u (ignored: \
        always UDP), -b RATE, -t TIME, -n BYTES, -k COUNT, -l SIZE, -P STREAMS, -B ADDR, -S TOS, \
        -w SNDBUF, -F FILE, -i TIME, -J. Times take units (10s, 500ms, 2m); a plain number is seconds.

        Examples:
          zc-send 127.0.0.1:9000 --duration 5 --max-loss 0.1
          zc-send -c 198.18.0.2 -p 9000 -u -b 2G -t 10 -J
          zc-send [::1]:9000 --count 1000000 --rate 2G --json
          zc-send 198.18.0.2:9000 --engine packet-ring --interface veth0 --count 1000000
        """,
        version: ZCStreamVersion.string
    )

    @Argument(help: "Destination HOST:PORT or [IPV6]:PORT (or -c HOST -p PORT).")
    var destination: String?

    @Option(name: [.customShort("c"), .customLong("client")], help: ArgumentHelp("Destination host, as iperf3's -c (with -p PORT, or HOST:PORT); instead of the DESTINATION argument.", valueName: "HOST"))
    var client: String?

    @Option(name: .shortAndLong, help: "Destination port, as iperf3's -p (for a DESTINATION or -c HOST given without one).")
    var port: UInt16?

    @Flag(name: [.customShort("u"), .customLong("udp")], help: "Accepted for iperf3's habit and ignored: zcstream is always UDP.")
    var udp = false

    @Option(name: [.customShort("l"), .customLong("size")], help: "Datagram size in bytes (iperf3's -l), header (48) included: the UDP payload size (default: 1472 to an IPv4 destination, 1452 to IPv6 — one datagram per 1500-byte frame).")
    var size: Int?

    @Option(name: [.customShort("k"), .customLong("count")], help: "Send this many datagrams (iperf3's -k, --blockcount).")
    var count: UInt64?

    @Option(name: [.customShort("n"), .customLong("bytes")], help: "Send this many payload bytes (K/M/G suffixes, powers of 1024; iperf3's -n).")
    var bytes: String?

    @Option(name: [.customShort("t"), .customLong("duration")], help: "Send for this long (10s, 500ms, 2m; a plain number is seconds, as iperf3's -t). Default 10s when no --count or --bytes.")
    var duration: String?

    @Option(name: [.customShort("b"), .customLong("rate")], help: "Pace to a rate: bit/s (10G, 800M; iperf3's -b, --bitrate) or packets/s (500kpps). Default, or 0: as fast as possible.")
    var rate: String?

    @Option(name: .shortAndLong, help: "Send engine: \(SendEngineKind.allCases.map(\.rawValue).joined(separator: ", ")). auto (the default): SEND_ZC while the kernel's notifications say zero-copied, copying sends from the same pool once they say copied (e.g. to a local socket).", completion: .list(SendEngineKind.allCases.map(\.rawValue)))
    var engine: String = SendEngineKind.auto.rawValue

    @Option(help: "UDP GSO: auto (most whole datagrams under 64 KiB per send), off, or a segment count. With packet-ring: datagrams per ring frame, segmented by the kernel after the ring (Linux 6.2+; else one per frame, and the report says so).", completion: .list(["auto", "off", "8", "16", "32", "44", "64"]))
    var gso: String = "auto"

    @Option(name: [.customShort("F"), .customLong("source")], help: "Payload: 'pattern' (synthetic, verified byte for byte by zc-recv), 'fixed' (one payload written into every slot once; per datagram only the header and its checksum change), a FILE (./fixed for a file named fixed), or - for stdin (iperf3's -F, --file).", completion: .file())
    var source: String = "pattern"

    @Option(help: "A live --source (pipe, terminal): how long a partly filled datagram waits for more bytes before it is sent as it is (e.g. 5ms, 100ms).")
    var flushInterval: String = "5ms"

    @Option(help: "Registered buffer slots (each holds one send; default 256, 1024 with --reliable, which holds every slot until it is acknowledged; fewer when RLIMIT_MEMLOCK (ulimit -l) cannot hold them without privilege).")
    var pool: Int?

    @Option(help: "io_uring submission queue depth.")
    var depth: Int = 256

    @Option(help: "Stream id (decimal or 0x hex); with --streams, stream i gets ID+i. Default: random.")
    var streamID: String?

    @Flag(help: "io_uring engines (auto, uring, uring-zc): a kernel thread (IORING_SETUP_SQPOLL) takes the sends off the ring and runs the network stack on its own core, so this thread only fills. Faster when a core is free (the sink: --source fixed ~1.3x); it costs that core, which spins while sends keep coming (on loopback it competes with the receiver).")
    var sqpoll = false

    @Option(help: "With --sqpoll: pin the kernel's submission thread to this CPU.")
    var sqpollCpu: Int?

    @Option(name: [.customShort("P"), .customLong("streams")], help: "Independent streams (iperf3's -P, --parallel), each with its own socket, ring, pool and thread. --rate is shared out evenly.")
    var streams: Int = 1

    @Option(name: [.customShort("w"), .customLong("sndbuf")], help: "Socket send buffer (K/M/G; iperf3's -w, --window).")
    var sndbuf: String = "8M"

    @Option(help: "END datagrams sent at the end (UDP may drop one).")
    var endRepeat: Int = 3

    @Option(help: "When a send fails for good (e.g. ECONNREFUSED, the receiver is gone): continue or stop. Failures are counted either way.", completion: .list(["continue", "stop"]))
    var onError: String = ErrorPolicy.continue.rawValue

    @Option(help: "Multicast: hops the datagrams may take (IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS, 0-255; kernel default 1); with packet-ring the frames' IPv4 TTL (default 64).")
    var ttl: Int?

    @Option(help: "Multicast: on or off, whether this host's own sockets get a copy (kernel default on).", completion: .list(["on", "off"]))
    var multicastLoop: String?

    @Option(help: "packet-ring: source IPv4 address. Default: the source the kernel's route to the destination prefers (IPv6: always that).")
    var src: String?

    @Option(help: "packet-ring: UDP source port (default \(PacketRingOptions.defaultSourcePort)).")
    var srcPort: UInt16?

    @Option(help: "packet-ring: destination MAC (aa:bb:cc:dd:ee:ff). Default: the next hop's (the gateway's, or the destination's when on-link) from the kernel's route and neighbour table, resolved by ARP/NDP (up to 1 s) when the kernel has no entry.")
    var dstMac: String?

    @Option(help: "packet-ring: an 802.1Q tag in every frame, VLAN ID (0-4094) and optional priority (0-7), e.g. 100 or 100:5.")
    var vlan: String?

    @Flag(help: "packet-ring: PACKET_QDISC_BYPASS, frames go straight to the driver (no qdisc, no tc shaping).")
    var qdiscBypass = false

    @Option(help: "packet-ring: how frames become skbs: zerocopy (the skb points at the ring pages; a NIC reads them in place), copy (the kernel copies each frame at the kick; faster into veth, which copies ring pages anyway), or auto: copy on a virtual device, zerocopy on hardware.", completion: .list(["auto", "copy", "zerocopy"]))
    var ringTransfer: String?

    @Option(name: [.customShort("B"), .customLong("bind")], help: ArgumentHelp("Source address (and port) to send from: ADDR, ADDR:PORT or [IPV6]:PORT (iperf3's -B). With --streams N and a port, stream i uses PORT+i. packet-ring: sets --src and --src-port.", valueName: "ADDR[:PORT]"))
    var bind: String?

    @Option(name: [.customShort("S"), .customLong("tos")], help: "IP TOS byte (0-255; iperf3's -S) on every datagram, END included (IP_TOS / IPV6_TCLASS; packet-ring writes it into every frame's IP header).")
    var tos: Int?

    @Option(help: "DSCP (0-63) on every datagram: the TOS byte's upper six bits (e.g. 46 for EF).")
    var dscp: Int?

    @Option(help: "After END, wait this long for the receiver's REPORT (e.g. 8s, 500ms). The default outlasts zc-recv's default --idle-timeout (5s), after which a receiver that missed every END still reports.")
    var reportTimeout: String = "8s"

    @Flag(help: "Do not wait for the receiver's REPORT.")
    var noReport = false

    @Flag(help: "A reliable stream (SPEC §13): the receiver acknowledges and NAKs, the sender repairs lost datagrams from their registered slots and never has more in flight than the receiver's window. Exit 1 when it gives up. Socket engines (auto, uring-zc, uring, sendmmsg). To a multicast group: every receiver that answers is tracked, a repair goes once to the group, the window is the slowest receiver's.")
    var reliable = false

    @Option(help: ArgumentHelp("With --reliable to a group: send only the first slot until N receivers answered (default 1).", valueName: "N"))
    var minReceivers: Int?

    @Option(help: ArgumentHelp("With --reliable to a group: how long to wait for --min-receivers (or every --receivers address) before giving up.", valueName: "DURATION"))
    var joinTimeout: String = "10s"

    @Option(help: ArgumentHelp("With --reliable to a group: a closed group, these receivers only (IP addresses, comma-separated, or @FILE with one per line); feedback from others is ignored. Waits for all of them.", valueName: "LIST|@FILE"))
    var receivers: String?

    @Option(help: ArgumentHelp("With --reliable to a group: a receiver silent for --receiver-timeout, or alone holding the others back that long, is dropped (named in the report with the ranges it lacks; the others go on), or waited for.", valueName: "drop|wait"), completion: .list(["drop", "wait"]))
    var onSlowReceiver: String = "drop"

    @Option(help: ArgumentHelp("With --reliable to a group: see --on-slow-receiver.", valueName: "DURATION"))
    var receiverTimeout: String = "2s"

    @Option(help: ArgumentHelp("With --reliable: give up when the receiver's acknowledgement has not moved for this long (e.g. 10s).", valueName: "DURATION"))
    var giveUp: String = "10s"

    @Option(help: ArgumentHelp("Largest acceptable loss at the receiver, percent (from its REPORT); beyond it exit 1, no REPORT exit 4.", valueName: "PCT"))
    var maxLoss: Double?

    @Option(help: "Largest acceptable number of corrupt datagrams at the receiver (from its REPORT); beyond it exit 1, no REPORT exit 4.")
    var maxCorrupt: UInt64?

    @Option(help: ArgumentHelp("Testing: corrupt N datagrams after checksumming.", visibility: .hidden))
    var injectCorrupt: Int = 0
    @Option(help: ArgumentHelp("Testing: skip N sequence numbers.", visibility: .hidden))
    var injectSkip: Int = 0
    @Option(help: ArgumentHelp("Testing: swap N adjacent pairs.", visibility: .hidden))
    var injectReorder: Int = 0
    @Option(help: ArgumentHelp("Testing: send N datagrams twice.", visibility: .hidden))
    var injectDuplicate: Int = 0
    @Flag(help: ArgumentHelp("Testing: reuse a slot at the send CQE instead of the notification (the zero-copy hazard).", visibility: .hidden))
    var unsafeRecycleOnSend = false

    @OptionGroup(title: "Keyed streams")
    var keying: KeyOptions

    @Flag(help: "With --key: encrypt DATA payloads too (AES-256-GCM), not only authenticate them. Headers (stream id, sequence, sizes, timing) stay visible.")
    var encrypt = false

    @OptionGroup(title: "Placement")
    var placement: PlacementOptions

    @OptionGroup(title: "Reporting")
    var reporting: ReportingOptions

    func validate() throws {
        if let count, count == 0 { throw ValidationError("--count must be at least 1") }
        if let bytes, (Units.parseBytes(bytes) ?? 0) == 0 { throw ValidationError("--bytes '\(bytes)' is not a positive size (e.g. 100M)") }
        if (Units.parseDuration(flushInterval) ?? 0) == 0 { throw ValidationError("--flush-interval '\(flushInterval)' is not a positive duration (e.g. 5ms)") }
        if let duration, (Units.parseDuration(duration) ?? 0) == 0 { throw ValidationError("--duration '\(duration)' is not a positive duration (e.g. 10s, 500ms)") }
        if let rate, rate != "0", Rate.parse(rate) == nil { throw ValidationError("--rate '\(rate)' is not a positive rate: bit/s like 10G, 800M, 1500k or packets/s like 500kpps") }
        if SendEngineKind(rawValue: engine) == nil { throw ValidationError("--engine '\(engine)' is unknown: use \(SendEngineKind.allCases.map(\.rawValue).joined(separator: ", "))") }
        if parsedGSO == nil { throw ValidationError("--gso '\(gso)' must be auto, off or a segment count from 1 to 64") }
        if Units.parseDuration(interval) == nil { throw ValidationError("--interval '\(interval)' must be a duration (1s, 500ms, 0.5; 0: none)") }
        if let tos, !(0...255).contains(tos) { throw ValidationError("--tos must be 0...255") }
        if let dscp, !(0...63).contains(dscp) { throw ValidationError("--dscp must be 0...63") }
        if tos != nil && dscp != nil { throw ValidationError("--tos and --dscp set the same byte: give one") }
        if bind != nil && engine == SendEngineKind.packetRing.rawValue && (src != nil || srcPort != nil) {
            throw ValidationError("--bind sets --src/--src-port for packet-ring: give one or the other")
        }
        if (Units.parseDuration(reportTimeout) ?? 0) == 0 { throw ValidationError("--report-timeout '\(reportTimeout)' must be a positive duration (e.g. 3s)") }
        if let maxLoss, !(0...100).contains(maxLoss) { throw ValidationError("--max-loss must be a percentage from 0 to 100") }
        if noReport && (maxLoss != nil || maxCorrupt != nil) { throw ValidationError("--max-loss/--max-corrupt need the receiver's REPORT: drop --no-report") }
        if (Units.parseDuration(giveUp) ?? 0) == 0 { throw ValidationError("--give-up '\(giveUp)' must be a positive duration (e.g. 10s)") }
        if !reliable && (minReceivers != nil || receivers != nil) {
            throw ValidationError("--min-receivers and --receivers need --reliable (a reliable stream to a multicast group)")
        }
        if reliable {
            if injectCorrupt + injectSkip + injectReorder + injectDuplicate > 0 {
                throw ValidationError("--inject-* with --reliable: an injected fault is never repaired; drop datagrams on the path instead (nftables)")
            }
            if let minReceivers, !(1...64).contains(minReceivers) { throw ValidationError("--min-receivers must be 1...64") }
            if (Units.parseDuration(joinTimeout) ?? 0) == 0 { throw ValidationError("--join-timeout '\(joinTimeout)' must be a positive duration (e.g. 10s)") }
            if (Units.parseDuration(receiverTimeout) ?? 0) == 0 { throw ValidationError("--receiver-timeout '\(receiverTimeout)' must be a positive duration (e.g. 2s)") }
            if GroupPolicy.SlowReceiver(rawValue: onSlowReceiver) == nil { throw ValidationError("--on-slow-receiver '\(onSlowReceiver)' must be drop or wait") }
            if engine == SendEngineKind.packetRing.rawValue {
                throw ValidationError("--reliable needs a socket engine (auto, uring-zc, uring, sendmmsg): --engine packet-ring cannot hold its ring frames until the receiver acknowledges them")
            }
        }
        if encrypt && keying.path == nil { throw ValidationError("--encrypt needs --key FILE (or ZC_KEY_FILE): the payload is encrypted under the shared secret") }
        if keying.path != nil {
            if let size, size < SenderConfiguration.minimumKeyedDatagram {
                throw ValidationError("--size \(size) is too small with --key: a keyed datagram needs at least \(SenderConfiguration.minimumKeyedDatagram) bytes (header, END totals, 40-byte trailer)")
            }
        }
        if endRepeat < 1 || endRepeat > 100 { throw ValidationError("--end-repeat must be 1...100") }
        if Units.parseBytes(sndbuf).map({ $0 > 0 && $0 <= UInt64(Int32.max) }) != true { throw ValidationError("--sndbuf '\(sndbuf)' must be a size from 1 byte to 2G") }
        if ErrorPolicy(rawValue: onError) == nil { throw ValidationError("--on-error '\(onError)' must be continue or stop") }
        if streams < 1 || streams > 1024 { throw ValidationError("--streams must be 1...1024") }
        if let cpu {
            guard let list = Units.parseCPUList(cpu), !list.isEmpty else { throw ValidationError("--cpu '\(cpu)' must be a CPU list like 0,1 or 0-3") }
            let available = WorkerThread.availableCPUs
            if let bad = list.first(where: { $0 >= available }) { throw ValidationError("--cpu \(bad) is out of range: this machine has CPUs 0...\(available - 1)") }
        }
        if let streamID, parseStreamID(streamID) == nil { throw ValidationError("--stream-id '\(streamID)' must be a non-zero 64-bit number (decimal or 0x hex)") }
        for (flag, v) in [("--inject-corrupt", injectCorrupt), ("--inject-skip", injectSkip), ("--inject-reorder", injectReorder), ("--inject-duplicate", injectDuplicate)] where v < 0 {
            throw ValidationError("\(flag) must be 0 or more")
        }
        if source != "pattern" && (injectCorrupt + injectSkip + injectReorder + injectDuplicate > 0) {
            throw ValidationError("--inject-* need --source pattern")
        }
        if source != "pattern" && source != "fixed" && streams > 1 { throw ValidationError("--streams > 1 needs --source pattern (one file is one stream)") }
        if sqpoll && ![SendEngineKind.auto, .uring, .uringZC].map(\.rawValue).contains(engine) {
            throw ValidationError("--sqpoll applies only to the io_uring engines (auto, uring, uring-zc), not --engine \(engine)")
        }
        if let sqpollCpu {
            if !sqpoll { throw ValidationError("--sqpoll-cpu needs --sqpoll") }
            let available = WorkerThread.availableCPUs
            if sqpollCpu < 0 || sqpollCpu >= available { throw ValidationError("--sqpoll-cpu \(sqpollCpu) is out of range: this machine has CPUs 0...\(available - 1)") }
        }
        if unsafeRecycleOnSend && engine != SendEngineKind.uringZC.rawValue {
            throw ValidationError("--unsafe-recycle-on-send applies only to --engine uring-zc")
        }
        if let ttl, !(0...255).contains(ttl) { throw ValidationError("--ttl must be 0...255") }
        if let multicastLoop, !["on", "off"].contains(multicastLoop) { throw ValidationError("--multicast-loop must be on or off") }
        if engine == SendEngineKind.packetRing.rawValue {
            if interface == nil { throw ValidationError("--engine packet-ring needs --interface IF (the interface the frames leave by)") }
            if multicastLoop != nil { throw ValidationError("--multicast-loop applies only to socket engines (packet-ring frames never loop back)") }
        } else {
            // --interface with a socket engine is for multicast; checked once the address is parsed.
            for (flag, given) in [("--src", src != nil), ("--src-port", srcPort != nil),
                                  ("--dst-mac", dstMac != nil), ("--qdisc-bypass", qdiscBypass),
                                  ("--ring-transfer", ringTransfer != nil), ("--vlan", vlan != nil)] where given {
                throw ValidationError("\(flag) applies only to --engine packet-ring")
            }
        }
        if let src, IPv4Address(src) == nil { throw ValidationError("--src '\(src)' is not an IPv4 address (an IPv6 source is the route's preferred source)") }
        if let vlan, VLANTag(vlan) == nil { throw ValidationError("--vlan '\(vlan)' is not ID[:PCP] with ID 0-4094 and PCP 0-7") }
        if let srcPort, srcPort == 0 { throw ValidationError("--src-port must be 1...65535") }
        if let ringTransfer, ringTransfer != "auto" && PacketRingTransfer(rawValue: ringTransfer) == nil {
            throw ValidationError("--ring-transfer '\(ringTransfer)' must be auto, zerocopy or copy")
        }
        if let dstMac, MACAddress(dstMac) == nil { throw ValidationError("--dst-mac '\(dstMac)' is not a MAC address like 02:00:00:00:00:02") }
    }

    var parsedGSO: GSOSetting? {
        switch gso.lowercased() {
        case "auto": return .auto
        case "off", "0", "1": return .off
        default:
            guard let n = Int(gso), n >= 1, n <= SenderConfiguration.maxGSOSegments else { return nil }
            return .segments(n)
        }
    }

    /// The group rules of a reliable multicast stream from --min-receivers, --join-timeout,
    /// --receivers, --on-slow-receiver and --receiver-timeout.
    func groupPolicy(family: Int32) throws -> GroupPolicy {
        var g = GroupPolicy()
        g.minReceivers = minReceivers ?? 1
        g.joinTimeoutNanoseconds = Units.parseDuration(joinTimeout)!
        g.slowReceiver = GroupPolicy.SlowReceiver(rawValue: onSlowReceiver)!
        g.receiverTimeoutNanoseconds = Units.parseDuration(receiverTimeout)!
        if let receivers {
            var text = receivers
            if receivers.hasPrefix("@") {
                let path = String(receivers.dropFirst())
                guard let file = fopen(path, "r") else {
                    throw ValidationError("--receivers \(receivers): cannot read \(path): \(String(cString: strerror(errno)))")
                }
                defer { fclose(file) }
                var bytes: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = fread(&chunk, 1, chunk.count, file)
                    if n == 0 { break }
                    bytes += chunk[0..<n]
                }
                text = String(decoding: bytes, as: UTF8.self)
            }
            // One address per line (# comments) or comma-separated.
            let lines = text.split(whereSeparator: \.isNewline).map { $0.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? "" }
            let items = lines.flatMap { $0.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) }.map(String.init)
            var named: [IPAddress] = []
            for item in items {
                let host = item.hasPrefix("[") && item.hasSuffix("]") ? String(item.dropFirst().dropLast()) : item
                guard let a = IPAddress(host) else { throw ValidationError("--receivers: '\(item)' is not an IP address") }
                guard a.family == family else { throw ValidationError("--receivers: \(item) is not of the destination's family") }
                if !named.contains(a) { named.append(a) }
            }
            guard !named.isEmpty, named.count <= g.maxReceivers else { throw ValidationError("--receivers names 1...\(g.maxReceivers) addresses") }
            g.named = named
        }
        return g
    }

    /// --bind ADDR, ADDR:PORT or [IPV6]:PORT (port 0 or none: any).
    func parsedBind() throws -> SocketAddress? {
        guard let bind else { return nil }
        let hasPort = bind.hasPrefix("[") ? bind.contains("]:") : bind.split(separator: ":").count == 2
        let text = hasPort ? bind : (bind.contains(":") && !bind.hasPrefix("[") ? "[\(bind)]:0" : "\(bind):0")
        do { return try SocketAddress.parse(text, allowPortZero: true) }
        catch { throw ValidationError("--bind '\(bind)': \(error)") }
    }

    /// The destination as HOST:PORT, from the argument or -c/--client, and -p/--port.
    func destinationText() throws -> String {
        let host: String
        switch (destination, client) {
        case (let d?, nil): host = d
        case (nil, let c?): host = c
        case (nil, nil): throw ValidationError("destination missing: give HOST:PORT, or -c HOST -p PORT")
        case (_?, _?): throw ValidationError("destination given twice: HOST:PORT or -c/--client HOST, not both")
        }
        switch Endpoint.join(host, port: port, hostFlag: client == nil ? "destination" : "--client") {
        case .success(let text): return text
        case .failure(let error): throw ValidationError(error.description)
        }
    }

    func parseStreamID(_ s: String) -> UInt64? {
        let v = s.lowercased().hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s)
        return v == 0 ? nil : v
    }


    /// One configuration per stream: own id, an even share of the rate.
    func makeConfigurations() throws -> [SenderConfiguration] {
        let base = try makeConfiguration()
        guard streams > 1 else { return [base] }
        return (0..<streams).map { i in
            var c = base
            c.streamID = streamID.flatMap(parseStreamID).map { $0 &+ UInt64(i) } ?? UInt64.random(in: 1...UInt64.max)
            c.packetRing?.sourcePort &+= UInt16(truncatingIfNeeded: i) // one UDP flow per stream
            if let b = c.bindAddress, b.port != 0 { c.bindAddress = b.withPort(b.port &+ UInt16(truncatingIfNeeded: i)) }
            switch base.rate {
            case .bitsPerSecond(let b)?: c.rate = .bitsPerSecond(b / Double(streams))
            case .packetsPerSecond(let p)?: c.rate = .packetsPerSecond(p / Double(streams))
            case nil: break
            }
            return c
        }
    }

    /// What the stream carries and when it ends (the same for every stream of a run).
    func makeContent() -> StreamContent {
        var limit = StreamLimit(datagrams: count, payloadBytes: bytes.flatMap(Units.parseBytes),
                                durationNanoseconds: duration.flatMap(Units.parseDuration))
        if (source == "pattern" || source == "fixed") && limit.datagrams == nil && limit.payloadBytes == nil && limit.durationNanoseconds == nil {
            limit.durationNanoseconds = 10_000_000_000
        }
        var faults = FaultInjection()
        faults.corrupt = injectCorrupt
        faults.skip = injectSkip
        faults.reorder = injectReorder
        faults.duplicate = injectDuplicate
        return StreamContent(source: source == "pattern" ? .pattern : source == "fixed" ? .fixed : source == "-" ? .standardInput : .file(source),
                             limit: limit, faults: faults, flushIntervalNanoseconds: Units.parseDuration(flushInterval)!)
    }

    func makeConfiguration() throws -> SenderConfiguration {
        let address: SocketAddress
        let destination = try destinationText()
        do { address = try SocketAddress.parse(destination) } catch { throw ValidationError("destination: \(error)") }
        if engine != SendEngineKind.packetRing.rawValue {
            if !address.isMulticast {
                let group = "a multicast destination (224.0.0.0/4, ff00::/8)"
                if interface != nil { throw ValidationError("--interface applies only to --engine packet-ring or \(group)") }
                if ttl != nil { throw ValidationError("--ttl applies only to \(group) or --engine packet-ring") }
                if multicastLoop != nil { throw ValidationError("--multicast-loop applies only to \(group)") }
            }
            if let interface, (try? interfaceIndex(named: interface)) == nil {
                throw ValidationError("--interface '\(interface)': no such interface")
            }
        }
        do {
            var c = try SenderConfiguration(
                destination: address, datagramSize: size ?? (address.family == AF_INET6 ? 1452 : 1472), gso: parsedGSO!,
                rate: rate.flatMap { $0 == "0" ? nil : Rate.parse($0) }, engine: SendEngineKind(rawValue: engine)!,
                poolSlots: pool ?? MemoryLockBudget.defaultPoolSlots(engine: SendEngineKind(rawValue: engine)!, streams: streams, reliable: reliable),
                ringDepth: depth,
                streamID: streamID.flatMap(parseStreamID) ?? UInt64.random(in: 1...UInt64.max),
                endRepeats: endRepeat,
                sendBufferBytes: Int32(Units.parseBytes(sndbuf)!))
            c.onError = ErrorPolicy(rawValue: onError)!
            if sqpoll { c.submissionPolling = SubmissionPolling(cpu: sqpollCpu) }
            c.recycleOnSendCompletion = unsafeRecycleOnSend
            c.reportTimeoutNanoseconds = noReport ? nil : Units.parseDuration(reportTimeout)
            c.trafficClass = tos.map { UInt8($0) } ?? dscp.map { UInt8($0 << 2) }
            if let path = keying.path {
                do { c.key = try StreamSecret(contentsOf: path) } catch { throw ValidationError("--key: \(error)") }
                c.encrypt = encrypt
            }
            if reliable {
                var r = Reliability()
                r.deadlineNanoseconds = Units.parseDuration(giveUp)!
                r.group = try groupPolicy(family: address.family)
                if !address.isMulticast && (minReceivers != nil || receivers != nil) {
                    throw ValidationError("--min-receivers and --receivers apply to --reliable to a multicast group destination")
                }
                c.reliability = r
            }
            if let bindAddress = try parsedBind(), c.engine != .packetRing {
                guard bindAddress.family == address.family else {
                    throw ValidationError("--bind \(bind!) and the destination must both be IPv4 or both IPv6")
                }
                c.bindAddress = bindAddress
            }
            if c.engine != .packetRing {
                c.multicast = MulticastSendOptions(interface: interface, hops: ttl.map(Int32.init), loop: multicastLoop.map { $0 == "on" })
            }
            if c.engine == .packetRing, let interface {
                let bound = try parsedBind()
                let bindHost = bound.flatMap { IPv4Address($0.host) }
                if bound != nil && bindHost == nil { throw ValidationError("--bind with packet-ring must be an IPv4 address") }
                c.packetRing = PacketRingOptions(interface: interface, sourceIP: bindHost ?? src.flatMap { IPv4Address($0) },
                                                 sourcePort: bound.flatMap { $0.port == 0 ? nil : $0.port } ?? srcPort ?? PacketRingOptions.defaultSourcePort,
                                                 destinationMAC: dstMac.flatMap { MACAddress($0) }, qdiscBypass: qdiscBypass,
                                                 transfer: ringTransfer.flatMap { PacketRingTransfer(rawValue: $0) })
                c.packetRing?.ttl = ttl.map { UInt8($0) }
                c.packetRing?.vlan = vlan.flatMap { VLANTag($0) }
                c.packetRing?.trafficClass = c.trafficClass
            }
            return c
        } catch let error as any ConfigurationError {
            throw ValidationError(error.describe(naming: Self.flag))
        } catch {
            if let usage = error as? ValidationError { throw usage }
            throw ValidationError("\(error)")
        }
    }

    /// The flag that sets a SenderConfiguration property, for the library's messages.
    static func flag(_ property: String) -> String {
        let flags = ["datagramSize": "--size", "gso": "--gso", "poolSlots": "--pool", "ringDepth": "--depth", "source": "--source",
                     "engine": "--engine", "packetRing.interface": "--interface", "packetRing.sourceIP": "--src",
                     "packetRing.destinationMAC": "--dst-mac"]
        return flags[property] ?? property
    }

    func run() throws {
        var configurations = try makeConfigurations()
        if let ring = configurations[0].packetRing {
            // Raw mode checks the interface, addresses and privilege before anything is
            // sent, and resolves the next hop's MAC once for every stream.
            do {
                let target = try PacketRingTarget.resolve(ring, destination: configurations[0].destination,
                                                          datagramSize: configurations[0].datagramSize, gso: configurations[0].gso)
                // Every stream uses this resolution (with its own source port): no second lookup.
                for i in configurations.indices { configurations[i].packetRing?.resolvedTarget = target }
            } catch {
                Output.standardError("zc-send: \(error.describe(naming: Self.flag))")
                switch error.kind {
                case .badInput: throw ExitCode(ExitStatus.usage)
                case .noPermission: throw ExitCode(ExitStatus.noPermission)
                case .system, .unreachable: throw ExitCode(ExitStatus.failure)
                }
            }
        }
        let exporter = try SenderMetricsExporter.start(metrics)
        StopFlag.install()
        var reporter = SendProgressPrinter(zeroCopy: configurations[0].engine.usesZeroCopy)
        let jsonMode = JSONMode(json: json, jsonStream: jsonStream)
        reporter.json = jsonMode.streamsIntervals
        // With --metrics the progress snapshots come every 200 ms; lines still print every --interval.
        let printEvery = Units.parseDuration(interval)!
        var nextPrint = printEvery
        let reports: [SenderReport]
        do {
            reports = try MultiStreamSender.run(configurations, content: makeContent(), cpus: cpu.flatMap(Units.parseCPUList),
                                                progressIntervalNanoseconds: exporter == nil ? printEvery : SenderMetricsExporter.intervalNanoseconds) {
                exporter?.update($0)
                if exporter == nil || (printEvery > 0 && $0.elapsedNanoseconds >= nextPrint) {
                    reporter.print($0)
                    nextPrint = $0.elapsedNanoseconds + printEvery
                }
            }
        } catch {
            Output.standardError("zc-send: \(error.describe(naming: Self.flag))")
            throw ExitCode(error.isUsageError ? ExitStatus.usage : ExitStatus.failure)
        }
        if jsonMode != .off {
            // -J: one pretty document; --json-stream: the stream's last line.
            Output.standardOutput(jsonMode.final(SenderReportFormatter.json(reports).withVersion()))
        } else {
            Output.standardOutput(SenderReportFormatter.text(reports))
        }
        // A stop request decides the exit status, also one that came while waiting for the REPORT.
        if StopFlag.isSet || reports.contains(where: { $0.stopReason == .signal }) { throw ExitCode(ExitStatus.signal(StopFlag.signal)) }
        if let ring = reports.first(where: { ($0.packetRing?.wrongFormat ?? 0) > 0 })?.packetRing {
            let why = ring.segmentsPerFrame > 1 ? "did it refuse UDP segmentation? try --gso off" : "did its MTU shrink?"
            Output.standardError("zc-send: stopped: the kernel rejected a frame of \(ring.maxFrameLength) bytes on \(ring.interface) "
                                 + "(TP_STATUS_WRONG_FORMAT; \(why)); END went out through a fresh ring")
            throw ExitCode(ExitStatus.failure)
        }
        let undelivered = reports.filter { $0.reliability.map { !$0.delivered } ?? false }
        if !undelivered.isEmpty {
            for r in undelivered {
                let rel = r.reliability!
                let stream = SenderReportFormatter.hex(r.configuration.streamID)
                if let receivers = rel.receivers {
                    // A group: every receiver that does not hold the whole stream, by address.
                    if let reason = rel.groupReason { Output.standardError("zc-send: FAIL: stream \(stream): \(reason)") }
                    for o in receivers where o.state != .delivered {
                        Output.standardError("zc-send: FAIL: stream \(stream) not delivered to \(o.addressText): \(o.state.rawValue)"
                                             + (o.reason.map { " (\($0))" } ?? "") + "; lacks " + SenderReportFormatter.bracketedRanges(o.unacknowledged))
                    }
                    if receivers.isEmpty { Output.standardError("zc-send: FAIL: stream \(stream): no receiver of the group answered (zc-recv with reliable streams, version 3?)") }
                    continue
                }
                let why = rel.noFeedback ? "no STATUS from the receiver: \(SenderReportFormatter.noStatusHint(r))"
                    : "the acknowledgement did not move for --give-up \(giveUp)"
                Output.standardError("zc-send: FAIL: stream \(stream) not delivered: \(why); "
                                     + "unacknowledged " + SenderReportFormatter.bracketedRanges(rel.unacknowledged))
            }
            throw ExitCode(ExitStatus.validationFailed)
        }
        if reports.contains(where: { $0.stopReason == .error }) {
            Output.standardError("zc-send: stopped after a failed send (--on-error stop)")
            throw ExitCode(ExitStatus.failure)
        }
        try judgeReceiver(reports, sendFailures: judgeSends(reports))
    }

    /// Datagrams the kernel refused to send never reach the receiver: a run with any is not
    /// ok (within --max-loss, when given, it passes: they are loss the sender already knows).
    func judgeSends(_ reports: [SenderReport]) -> [String] {
        let failed = reports.reduce(UInt64(0)) { $0 + $1.statistics.datagramsFailed }
        guard failed > 0 else { return [] }
        let sequences = max(1, reports.reduce(UInt64(0)) { $0 + $1.sequences })
        let percent = Double(failed) / Double(sequences) * 100
        if let maxLoss, percent <= maxLoss { return [] }
        return ["\(failed) of \(sequences) datagrams were not sent (failed sends, \(Units.fixed(percent, 4))%)"
                + (maxLoss.map { " > --max-loss \($0)%" } ?? "")]
    }

    /// --max-loss / --max-corrupt against the receiver's REPORTs (zc-recv's meaning).
    func judgeReceiver(_ reports: [SenderReport], sendFailures: [String] = []) throws {
        var failures = sendFailures
        guard maxLoss != nil || maxCorrupt != nil else {
            if !failures.isEmpty {
                Output.standardError("zc-send: FAIL: " + failures.joined(separator: "; "))
                throw ExitCode(ExitStatus.validationFailed)
            }
            return
        }
        var missing = 0
        for r in reports {
            if let receivers = r.reliability?.receivers {
                // A group: each receiver's REPORT is judged on its own.
                for o in receivers {
                    guard let report = o.report else { missing += 1; continue }
                    let who = "stream \(SenderReportFormatter.hex(report.streamID)) at \(o.addressText)"
                    let loss = Double(report.lost) / Double(max(r.sequences, 1)) * 100
                    if let maxLoss, loss > maxLoss { failures.append("\(who): receiver loss \(Units.fixed(loss, 4))% > --max-loss \(maxLoss)%") }
                    if report.outputIncomplete { failures.append("\(who): the receiver's output is incomplete") }
                    if let maxCorrupt, report.corrupt > maxCorrupt { failures.append("\(who): \(report.corrupt) corrupt at the receiver > --max-corrupt \(maxCorrupt)") }
                }
                continue
            }
            guard case .report(let report, _) = r.receiver, let coverage = r.receiverCoverage else { missing += 1; continue }
            let id = SenderReportFormatter.hex(report.streamID)
            // Judged against what was sent: a REPORT that saw no END (or fewer datagrams) is loss.
            let loss = coverage.lossPercent
            if let maxLoss, loss > maxLoss {
                failures.append("stream \(id): receiver loss \(Units.fixed(loss, 4))% > --max-loss \(maxLoss)%"
                                + (coverage.shortfall.map { " (\($0))" } ?? ""))
            }
            if report.outputIncomplete { failures.append("stream \(id): the receiver's output is incomplete") }
            if let maxCorrupt, report.corrupt > maxCorrupt { failures.append("stream \(id): \(report.corrupt) corrupt at the receiver > --max-corrupt \(maxCorrupt)") }
            if !report.exact { failures.append("stream \(id): the receiver's accounting is not exact") }
        }
        if !failures.isEmpty {
            Output.standardError("zc-send: FAIL: " + failures.joined(separator: "; "))
            throw ExitCode(ExitStatus.validationFailed)
        }
        if missing > 0 {
            Output.standardError("zc-send: no verdict: \(missing) stream(s) got no REPORT from the receiver in time (--report-timeout \(reportTimeout))")
            throw ExitCode(ExitStatus.noVerdict)
        }
    }
}
