import Foundation
import TestSupport
import XCTest

/// Reliable streams (issue 25, Protocol/SPEC.md §13) end to end: the real zc-send and zc-recv
/// with the flags a user types (`--reliable` on the sender; the receiver needs none), on a
/// veth between two namespaces where nftables drops datagrams at random and counts what it
/// dropped, or on loopback. Each test asserts on the binaries' own output: the file that came
/// out byte for byte, both JSON reports and exit codes, and nftables' counters.
///
/// Where a test passes a knob that is not a default (`--rate`, `--give-up`, `--rcvbuf`) it
/// says why: the knob is what the test is about, or what puts the event mid-stream.
final class ReliablePairTests: XCTestCase {
    // MARK: - The machinery

    /// The loss the other tests repair is what nftables says it dropped: with the sender's
    /// veth segmenting before the wire (LossyPath), a plain stream through a 1 % drop rule
    /// loses exactly the datagrams the rule counted (less the ENDs it may have hit), one by
    /// one — not in runs of 44 as a GSO send would be dropped whole.
    func testNFTablesCountsEveryDatagramItDrops() throws {
        let path = try LossyPath(tag: "rnft", subnet: 110)
        let files = ScratchFiles("rnft")
        let source = try files.random("src", bytes: 16 << 20)
        try path.filter.drop("data", .input, path.toReceiver, perMille: 10)
        let receiver = try RunningReceiver.start(listen: path.destination, ["--streams", "1", "--output", files.path("out")],
                                                 namespace: path.net.b, progress: true)
        let sent = try Child(Binaries.send, [path.destination, "--source", source, "--json"], namespace: path.net.a).wait(timeout: 60)
        let received = receiver.child.wait(timeout: 30)
        let dropped = try path.filter.packets("data")
        let stream = try XCTUnwrap((received.json?["streams"] as? [[String: Any]])?.first, "no stream: \(received.stdout) \(received.stderr)")
        let lost = try XCTUnwrap(u64(stream, "lost"))
        print("ReliablePairTests: plain stream, 1 % drop: nftables dropped \(dropped), zc-recv lost \(lost) in \(u64(stream, "lost_range_count") ?? 0) range(s); zc-send exit \(sent.status)")
        XCTAssertGreaterThan(dropped, 30, "16 MiB is ~11800 datagrams: 1 % is ~118")
        XCTAssertLessThan(dropped, 400)
        XCTAssertLessThanOrEqual(lost, dropped)
        XCTAssertLessThanOrEqual(dropped, lost + 3, "only the 3 ENDs may be dropped without being lost")
        XCTAssertLessThanOrEqual(u64(stream, "longest_gap_datagrams") ?? 99, 3, "single datagrams dropped, not GSO sends: \(stream)")
        XCTAssertEqual(u64(received.json, "kernel_drops"), 0)
    }

    // MARK: - 1. Random drop on the path

    /// 0.1, 1, 5 and 20 % of the datagrams to the receiver dropped at random: the file comes
    /// out byte for byte, nothing lost, and the sender sent no more than 1.2 × what nftables
    /// dropped (+16 for small counts) again — at least once per datagram the receiver counts
    /// as repaired, and never more repaired than was dropped.
    func testRandomDropOnThePathIsRepairedByteForByte() throws {
        let path = try LossyPath(tag: "rdrop", subnet: 111)
        for (perMille, mib) in [(1, 32), (10, 64), (50, 64), (200, 16)] {
            let context = "\(Double(perMille) / 10) % drop, \(mib) MiB"
            let files = ScratchFiles("rdrop\(perMille)")
            let source = try files.random("src", bytes: mib << 20)
            let output = files.path("out")
            let rule = "data\(perMille)"
            try path.filter.drop(rule, .input, path.toReceiver, perMille: perMille)
            let t = try transfer(path, source: source, output: output)
            let dropped = try path.filter.packets(rule)
            try path.filter.delete(rule)
            print("ReliablePairTests: \(context): nftables dropped \(dropped) datagram(s); \(t.summary)")
            t.assertDelivered(context, source: source, output: output)
            XCTAssertGreaterThan(dropped, 0, context)
            let repaired = try XCTUnwrap(t.stream("repaired"), context)
            XCTAssertGreaterThan(repaired, 0, context)
            // A number is repaired when its original never arrived: dropped on the path, or
            // by the receiver's kernel (its socket buffer).
            let kernelDropped = u64(t.receiverReport, "kernel_dropped_datagrams") ?? 0
            XCTAssertLessThanOrEqual(repaired, dropped + kernelDropped, "\(context): more repaired than lost")
            // Retransmissions within 1.2x of what was lost: on the path, or (flow control should
            // leave none) in the receiver's socket buffer.
            let retransmitted = try XCTUnwrap(t.sent("retransmitted_datagrams"), context)
            XCTAssertLessThanOrEqual(Double(retransmitted), 1.2 * Double(dropped + kernelDropped) + 16,
                                     "\(context): \(retransmitted) retransmitted for \(dropped) dropped (\(kernelDropped) by the receiver's kernel)")
            XCTAssertGreaterThan(t.sent("naks_received") ?? 0, 0, context)
            XCTAssertGreaterThan(t.stream("naks_sent") ?? 0, 0, context)
        }
    }

    // MARK: - 2. A total outage mid-stream

    /// Everything between the two hosts dropped for 2 s while a paced stream runs (`--rate
    /// 120M`: 64 MiB take ~4.5 s, so the outage is in the middle): the stream resumes and
    /// repairs what the outage ate, well within the default 10 s give-up.
    func testTwoSecondOutageMidStreamIsRepaired() throws {
        let path = try LossyPath(tag: "rout", subnet: 112)
        let files = ScratchFiles("rout")
        let source = try files.random("src", bytes: 64 << 20)
        let output = files.path("out")
        var outageDropped: UInt64 = 0
        var runningThrough = false
        let t = try transfer(path, source: source, output: output, senderExtra: ["--rate", "120M"]) { sender in
            usleep(1_000_000)
            do {
                try path.filter.drop("outage-in", .input, path.toReceiver)
                try path.filter.drop("outage-out", .output, path.fromReceiver)
                usleep(2_000_000)
                runningThrough = sender.process.isRunning
                outageDropped = try path.filter.packets("outage-in") + path.filter.packets("outage-out")
                try path.filter.delete("outage-in")
                try path.filter.delete("outage-out")
            } catch {
                XCTFail("the outage rules: \(error)")
            }
        }
        print("ReliablePairTests: 2 s outage: nftables dropped \(outageDropped) datagram(s) both ways; \(t.summary)")
        XCTAssertTrue(runningThrough, "the stream ended before the outage did: \(t.sent.stderr)")
        XCTAssertGreaterThan(outageDropped, 100, "the outage did not hit the stream")
        t.assertDelivered("2 s outage", source: source, output: output)
        XCTAssertGreaterThan(t.stream("repaired") ?? 0, 0)
        XCTAssertGreaterThanOrEqual((t.sender?["seconds"] as? Double) ?? 0, 2.0, "the stream cannot have outrun a 2 s outage")
    }

    // MARK: - 3. Feedback lost too

    /// 5 % dropped both ways: DATA to the receiver and its STATUS/NAK back. A lost NAK is
    /// sent again, a lost STATUS is overtaken by the next: still byte for byte, nothing lost.
    func testFeedbackLossBothWaysStillDelivers() throws {
        let path = try LossyPath(tag: "rfb", subnet: 113)
        let files = ScratchFiles("rfb")
        let source = try files.random("src", bytes: 64 << 20)
        let output = files.path("out")
        try path.filter.drop("data", .input, path.toReceiver, perMille: 50)
        try path.filter.drop("feedback", .output, path.fromReceiver, perMille: 50)
        let t = try transfer(path, source: source, output: output)
        let data = try path.filter.packets("data"), feedback = try path.filter.packets("feedback")
        print("ReliablePairTests: 5 % both ways: nftables dropped \(data) to and \(feedback) from the receiver; \(t.summary)")
        t.assertDelivered("5 % both ways", source: source, output: output)
        XCTAssertGreaterThan(data, 0)
        XCTAssertGreaterThan(feedback, 0, "no STATUS or NAK was dropped: the test did not test feedback loss (naks_sent \(t.stream("naks_sent") ?? 0), status_sent \(t.stream("status_sent") ?? 0))")
    }

    // MARK: - 4. A receiver that reads slower than the sender sends

    /// `zc-recv --output - | pv -qL 16m`: the receiver can hand on 16 MiB/s, the sender could
    /// send a hundred times that. Its socket buffer is `--rcvbuf 4M` so that 32 MiB outrun
    /// it (the default 256M would swallow any file a test can afford; the same holds with a
    /// file larger than the default). A plain stream loses most of the file in the kernel —
    /// the control that shows the setup overwhelms the receiver; a reliable one loses
    /// nothing and the kernel drops nothing: the window slowed the sender.
    func testSlowReaderSlowsTheSenderInsteadOfLosing() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/pv") else {
            print("ReliablePairTests: skipped the slow reader: pv is not installed; Tools/bootstrap installs it")
            throw XCTSkip("needs pv (the rate-limited reader); Tools/bootstrap installs it")
        }
        let files = ScratchFiles("rslow")
        let source = try files.random("src", bytes: 32 << 20)

        func run(_ senderFlags: [String], output: String) throws -> ReliableTransfer {
            let pipeline = "\(Binaries.recv) 127.0.0.1:0 --streams 1 --rcvbuf 4M --json --output - | pv -qL 16m > \(output)"
            let receiver = try Child("/bin/bash", ["-o", "pipefail", "-c", pipeline])
            let address = try RunningReceiver.listeningAddress(receiver)
            let sent = try Child(Binaries.send, [address] + senderFlags + ["--source", source, "--json"]).wait(timeout: 60)
            let received = receiver.waitForGroup(timeout: 20)
            // With --output - the report is on stderr, after the progress lines.
            return ReliableTransfer(sent: sent, received: received, receiverReport: jsonDocument(in: received.stderr))
        }

        let plainOutput = files.path("plain")
        let plain = try run([], output: plainOutput)
        print("ReliablePairTests: slow reader, plain stream: lost \(u64(plain.receiverReport, "lost") ?? 0), kernel drops \(u64(plain.receiverReport, "kernel_drops") ?? 0)")
        XCTAssertGreaterThan(u64(plain.receiverReport, "kernel_drops") ?? 0, 0,
                             "the control: a plain stream should overflow a slow receiver's 4M buffer: \(plain.received.stderr)")
        XCTAssertGreaterThan(u64(plain.receiverReport, "lost") ?? 0, 0)

        let output = files.path("out")
        let t = try run(["--reliable"], output: output)
        print("ReliablePairTests: slow reader, reliable: \(t.summary); seconds \(t.sender?["seconds"] ?? "-")")
        t.assertDelivered("slow reader", source: source, output: output)
        XCTAssertEqual(u64(t.receiverReport, "kernel_drops"), 0, "flow control, not repair, must carry a slow receiver")
        XCTAssertEqual(u64(t.receiverReport, "kernel_dropped_datagrams"), 0)
        // 32 MiB at 16 MiB/s: ~2 s, less what the pipe, the buffer and the window hold.
        XCTAssertGreaterThanOrEqual((t.sender?["seconds"] as? Double) ?? 0, 1.0, "the sender was not slowed by the reader")
    }

    // MARK: - 5. The receiver dies

    /// kill -9 of the receiver a second into a paced stream (`--rate 200M`: 64 MiB take
    /// ~2.7 s): with `--give-up 2` the sender stops within the give-up time and a few seconds,
    /// exits 1, and names the ranges never acknowledged.
    func testSenderGivesUpWhenTheReceiverDies() throws {
        let files = ScratchFiles("rdie")
        let source = try files.random("src", bytes: 64 << 20)
        let total: UInt64 = (64 << 20 + 1423) / 1424  // datagrams of 1424 payload bytes
        let receiver = try RunningReceiver.start(["--streams", "1", "--output", files.path("out")], progress: true)
        let sender = try Child(Binaries.send, [receiver.address, "--reliable", "--give-up", "2", "--rate", "200M", "--source", source, "--json"])
        usleep(1_000_000)
        XCTAssertTrue(sender.process.isRunning, "the stream ended before the receiver died")
        kill(receiver.child.process.processIdentifier, SIGKILL)
        let killed = Date()
        let sent = sender.wait(timeout: 30)
        let seconds = Date().timeIntervalSince(killed)
        _ = receiver.child.wait(timeout: 5)
        let reliability = try XCTUnwrap(sent.json?["reliability"] as? [String: Any], "no reliability in \(sent.stdout) \(sent.stderr)")
        print("ReliablePairTests: receiver killed: zc-send exit \(sent.status) \(String(format: "%.2f", seconds)) s later; \(reliability)")
        XCTAssertEqual(sent.status, 1, sent.stderr)
        XCTAssertGreaterThan(seconds, 1.5, "gave up before --give-up 2 passed")
        XCTAssertLessThan(seconds, 2 + 5, "took too long to give up after --give-up 2")
        XCTAssertEqual(reliability["gave_up"] as? Bool, true)
        XCTAssertEqual(reliability["delivered"] as? Bool, false)
        XCTAssertEqual(reliability["no_feedback"] as? Bool, false, "the receiver answered for a second before it died")
        let acknowledged = try XCTUnwrap(u64(reliability, "acknowledged"))
        XCTAssertLessThan(acknowledged, total)
        let ranges = try XCTUnwrap(reliability["unacknowledged_ranges"] as? [[Any]], "\(reliability)")
        XCTAssertFalse(ranges.isEmpty, "no unacknowledged ranges named")
        for range in ranges {
            let bounds = range.compactMap { ($0 as? NSNumber)?.uint64Value }
            XCTAssertEqual(bounds.count, 2, "\(range)")
            guard bounds.count == 2 else { continue }
            XCTAssertLessThanOrEqual(bounds[0], bounds[1], "\(range)")
            XCTAssertGreaterThanOrEqual(bounds[0], acknowledged, "an acknowledged number named unacknowledged: \(range)")
            XCTAssertLessThan(bounds[1], total, "beyond the file: \(range)")
        }
        XCTAssertTrue(sent.stderr.contains("unacknowledged"), sent.stderr)
    }

    // MARK: - 6. A forged STATUS and NAK from another address

    /// While a stream crosses a 1 % drop, a host in the receiver's namespace that sees the
    /// traffic (a raw socket) forges STATUS datagrams that acknowledge everything sent so far
    /// and NAKs that ask for all of it again, from a second address and from the receiver's
    /// address on another port, to the sender's source port. Accepted, the STATUS would skip
    /// the repairs (holes in the file) and the NAKs would multiply the retransmissions.
    /// The stream is unaffected, and the sender counts the forgeries in
    /// `control_rejected.foreign` — unless its socket is connected to the receiver: then the
    /// kernel never hands it a datagram from elsewhere and it cannot count them (§13.9 1.),
    /// which `ss` shows, and the test asserts that instead.
    func testForgedControlFromAnotherAddressIsIgnored() throws {
        let path = try LossyPath(tag: "rforge", subnet: 114)
        let forgerAddress = "198.18.114.3"
        path.net.run(path.net.b, "ip addr add \(forgerAddress)/24 dev \(path.net.interfaceB)")
        // What reaches the sender's host from the forger (counted, not dropped).
        let senderSide = try PathFilter(namespace: path.net.a)
        try senderSide.count("forged", .input, "ip saddr \(forgerAddress) meta l4proto udp")
        try senderSide.count("forged-port", .input, "ip saddr \(path.net.addressB) udp sport != \(path.port)")
        try path.filter.drop("data", .input, path.toReceiver, perMille: 10)
        let files = ScratchFiles("rforge")
        let source = try files.random("src", bytes: 48 << 20)
        let output = files.path("out")
        let forger = try Child("/usr/bin/python3", ["-c", Self.forger, forgerAddress, path.net.addressB, "\(path.port)"], namespace: path.net.b)
        var connected: Bool?
        var forged = Child.Result(status: -1, stdout: "", stderr: "")
        // --rate 200M: 48 MiB take ~2 s, time for the forger to see the stream and forge.
        let t = try transfer(path, source: source, output: output, senderExtra: ["--rate", "200M"]) { _ in
            usleep(500_000)
            connected = Self.isConnected(namespace: path.net.a, to: path.destination)
            forged = forger.wait(timeout: 20)
        }
        let counts = try XCTUnwrap(try? JSONSerialization.jsonObject(with: Data(forged.stdout.utf8)) as? [String: Any],
                                   "the forger: \(forged.status) \(forged.stdout) \(forged.stderr)")
        let forgedTotal = (u64(counts, "status") ?? 0) + (u64(counts, "nak") ?? 0)
        let arrived = try senderSide.packets("forged") + senderSide.packets("forged-port")
        let dropped = try path.filter.packets("data")
        let rejected = t.reliability?["control_rejected"] as? [String: Any]
        print("ReliablePairTests: forged \(counts), \(arrived) arrived at the sender's host, its socket connected: \(connected.map { "\($0)" } ?? "?"); control_rejected \(rejected ?? [:]); nftables dropped \(dropped); \(t.summary)")
        XCTAssertGreaterThan(u64(counts, "status") ?? 0, 10, "the forger did not get to forge: \(forged.stderr)")
        XCTAssertGreaterThan(u64(counts, "nak") ?? 0, 10)
        XCTAssertEqual(arrived, forgedTotal, "the forgeries did not all reach the sender's host")
        t.assertDelivered("forged control", source: source, output: output)
        // The forged NAKs asked for everything: none of it was sent again.
        let retransmitted = try XCTUnwrap(t.sent("retransmitted_datagrams"))
        XCTAssertLessThanOrEqual(Double(retransmitted), 1.2 * Double(dropped) + 16, "forged NAKs were answered")
        let foreign = try XCTUnwrap(u64(rejected, "foreign"), "no control_rejected.foreign: \(t.reliability ?? [:])")
        switch connected {
        case true?:
            // A connected UDP socket: the kernel matched none of the forgeries to it.
            XCTAssertEqual(foreign, 0)
        case false?:
            XCTAssertEqual(foreign, forgedTotal, "an unconnected socket sees every forgery and must count it")
        case nil:
            XCTFail("could not tell from ss whether zc-send's socket is connected")
        }
        for key in ["unknown_stream", "other_receiver", "impossible"] {
            XCTAssertEqual(u64(rejected, key), 0, "a forgery passed the address check: \(key)")
        }
    }

    /// Whether zc-send's UDP socket in `namespace` is connected to `peer` (ss names the peer),
    /// nil when ss shows no zc-send socket.
    static func isConnected(namespace: String, to peer: String) -> Bool? {
        let r = shell("ip netns exec \(namespace) ss -u -a -n -p")
        let lines = r.output.split(separator: "\n").filter { $0.contains("\"zc-send\"") }
        guard !lines.isEmpty else { return nil }
        return lines.contains { $0.split(separator: " ", omittingEmptySubsequences: true).contains(Substring(peer)) }
    }

    /// The forger (Python, the reference encoder in Protocol/tools): learns the stream id, the
    /// sender's address and port and the highest sequence number from a raw socket, then
    /// for up to 1.5 s (while DATA keeps coming) sends every 10 ms a STATUS acknowledging all
    /// seen so far and a NAK for all of it, from argv[1] and from argv[2] on another port.
    /// Prints {"status": N, "nak": N, "stream_id": ..., "sender": ...}.
    static let forger = """
        import json, random, socket, struct, sys, time
        sys.path.insert(0, \(String(reflecting: Repository.root.appendingPathComponent("Protocol/tools").path)))
        import zcstream as z
        forger_address, receiver_address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
        state = {"sid": None, "sender": None, "highest": 0, "seen": 0.0}

        def sniff(limit):
            for _ in range(limit):
                try:
                    packet = raw.recv(65535)
                except (BlockingIOError, socket.timeout):
                    return
                ihl = (packet[0] & 0x0F) * 4
                sport, dport = struct.unpack(">HH", packet[ihl:ihl + 4])
                d = packet[ihl + 8:]
                if dport != port or len(d) < z.HEADER_SIZE:
                    continue
                magic, version, flags = struct.unpack(">IBB", d[:6])
                if magic != z.MAGIC or not flags & z.FLAG_DATA:
                    continue
                sid, sequence = struct.unpack(">QQ", d[8:24])
                state["sid"], state["sender"] = sid, (socket.inet_ntoa(packet[12:16]), sport)
                state["highest"] = max(state["highest"], sequence + 1)
                state["seen"] = time.time()

        raw.settimeout(1)
        deadline = time.time() + 10
        while state["sid"] is None and time.time() < deadline:
            sniff(1)
        if state["sid"] is None:
            sys.exit("no DATA seen")
        raw.setblocking(False)
        senders = []
        for address in (forger_address, receiver_address):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((address, 0))
            senders.append(s)
        receiver_id = random.getrandbits(64) | 1
        counts = {"status": 0, "nak": 0}
        feedback = 0
        start = time.time()
        while time.time() - start < 1.5 and time.time() - state["seen"] < 0.3:
            sniff(5000)
            ack = state["highest"]
            common = {"stream_id": state["sid"], "timestamp_ns": time.time_ns(), "receiver_id": receiver_id}
            status = z.encode_status(dict(common, cumulative_ack=ack, feedback_sequence=feedback, window_limit=ack + 65536,
                                          highest=ack, unique=ack))
            nak = z.encode_nak(dict(common, cumulative_ack=0, feedback_sequence=feedback + 1, ranges=[[0, ack - 1]]))
            feedback += 2
            for s in senders:
                for kind, datagram in (("status", status), ("nak", nak)):
                    try:
                        s.sendto(datagram, state["sender"])
                        counts[kind] += 1
                    except OSError:
                        pass
            time.sleep(0.01)
        print(json.dumps(dict(counts, stream_id=hex(state["sid"]), sender="%s:%d" % state["sender"])))
        """

    // MARK: - 7. Loopback, no loss

    /// Default flags and `--reliable` on loopback, 128 MiB of pattern: delivered, nothing
    /// lost, nothing dropped by the receiver's kernel, (almost) nothing sent twice.
    func testLoopbackDeliversWithoutKernelDrops() throws {
        let receiver = try RunningReceiver.start(["--streams", "1"], progress: true)
        let sent = try Child(Binaries.send, [receiver.address, "--reliable", "--bytes", "128M", "--json"]).wait(timeout: 60)
        let received = receiver.child.wait(timeout: 30)
        let t = ReliableTransfer(sent: sent, received: received, receiverReport: received.json)
        print("ReliablePairTests: loopback: \(t.summary)")
        t.assertDelivered("loopback")
        XCTAssertEqual(u64(t.receiverReport, "kernel_drops"), 0)
        XCTAssertEqual(u64(t.receiverReport, "kernel_dropped_datagrams"), 0)
        XCTAssertLessThanOrEqual(t.sent("retransmitted_datagrams") ?? 99, 16)
        XCTAssertEqual(t.stream("repaired"), 0)
    }

    // MARK: - 8. Nobody answers

    /// `--reliable` to a port where nothing listens, `--give-up 1`: exit 1 within a few
    /// seconds, and the message says that no STATUS came (SPEC §13.7: is it version 3?).
    func testNoReceiverGivesUpSayingNoStatusCame() throws {
        let start = Date()
        let sent = try Child(Binaries.send, ["127.0.0.1:\(freePort())", "--reliable", "--give-up", "1", "--bytes", "16M", "--json"]).wait(timeout: 30)
        let seconds = Date().timeIntervalSince(start)
        print("ReliablePairTests: nobody listening: exit \(sent.status) after \(String(format: "%.2f", seconds)) s: \(sent.stderr.suffix(400))")
        XCTAssertEqual(sent.status, 1, sent.stderr)
        XCTAssertLessThan(seconds, 1 + 5)
        XCTAssertTrue(sent.stderr.contains("no STATUS"), sent.stderr)
        let reliability = try XCTUnwrap(sent.json?["reliability"] as? [String: Any], "no reliability in \(sent.stdout)")
        XCTAssertEqual(reliability["gave_up"] as? Bool, true)
        XCTAssertEqual(reliability["delivered"] as? Bool, false)
        XCTAssertEqual(reliability["no_feedback"] as? Bool, true)
        XCTAssertEqual(u64(reliability, "status_received"), 0)
        XCTAssertEqual(u64(reliability, "acknowledged"), 0)
        XCTAssertFalse((reliability["unacknowledged_ranges"] as? [Any] ?? []).isEmpty, "\(reliability)")
    }

    // MARK: - 9. What --reliable refuses

    /// The packet-ring engine and the fault-injection flags do not go with `--reliable`, nor
    /// the group flags with a unicast destination: exit 64 and a message that names it,
    /// before anything is sent.
    func testReliableRefusesWhatItCannotDo() throws {
        for (name, flags) in [("packet-ring", ["127.0.0.1:9", "--engine", "packet-ring"]),
                              ("--min-receivers to unicast", ["127.0.0.1:9", "--min-receivers", "2"]),
                              ("--inject-skip", ["127.0.0.1:9", "--inject-skip", "3"]),
                              ("--inject-duplicate", ["127.0.0.1:9", "--inject-duplicate", "3"])] {
            let r = try Child(Binaries.send, flags + ["--reliable", "--count", "10"]).wait(timeout: 10)
            XCTAssertEqual(r.status, 64, "\(name): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("--reliable"), "\(name): the message should name --reliable: \(r.stderr)")
        }
    }

    // MARK: - 10. Keyed

    /// `--reliable --key K` on the sender, `--key K` on the receiver (SPEC §14): every DATA,
    /// repair, END, STATUS, NAK and REPORT sealed. 16 MiB with 2 % dropped at random on the
    /// way to the receiver: repaired byte for byte, the sender's summary says delivered,
    /// nothing unauthenticated on the sender's side, the receiver's verdict ok.
    func testKeyedReliableStreamIsRepairedByteForByte() throws {
        let path = try LossyPath(tag: "rkey", subnet: 119)
        let files = ScratchFiles("rkey")
        let source = try files.random("src", bytes: 16 << 20)
        let key = try files.random("zc.key", bytes: 32)
        let output = files.path("out")
        try path.filter.drop("keyed", .input, path.toReceiver, perMille: 20)
        let receiver = try RunningReceiver.start(listen: path.destination, ["--streams", "1", "--output", output, "--key", key],
                                                 namespace: path.net.b, progress: true)
        let sent = try Child(Binaries.send, [path.destination, "--reliable", "--key", key, "--source", source], namespace: path.net.a)
            .wait(timeout: 30)
        let received = receiver.child.wait(timeout: 20)
        let dropped = try path.filter.packets("keyed")
        let stream = (received.json?["streams"] as? [[String: Any]])?.first
        print("ReliablePairTests: keyed, 2 % drop: nftables dropped \(dropped); zc-send: \(sent.stdout); zc-recv repaired \(u64(stream, "repaired") ?? 0), unauthenticated \(u64(received.json, "unauthenticated") ?? 0)")
        XCTAssertEqual(sent.status, 0, "zc-send: \(sent.stdout) \(sent.stderr)")
        XCTAssertTrue(sent.stdout.contains("reliable delivered"), sent.stdout)
        XCTAssertFalse(sent.stdout.contains("unauthenticated"), "the sender dropped feedback: \(sent.stdout)")
        XCTAssertEqual(received.status, 0, "zc-recv: \(received.stderr)")
        XCTAssertEqual(received.json?["ok"] as? Bool, true, "zc-recv's verdict: \(received.json?["failures"] ?? "-")")
        XCTAssertEqual(stream?["complete"] as? Bool, true)
        XCTAssertEqual(u64(stream, "lost"), 0)
        XCTAssertGreaterThan(dropped, 0)
        XCTAssertGreaterThan(u64(stream, "repaired") ?? 0, 0)
        let byReason = received.json?["unauthenticated_by_reason"] as? [String: Any]
        XCTAssertEqual(u64(byReason, "bad_tag"), 0, "every repair opens under the source key: \(byReason ?? [:])")
        assertSameBytes(source, output, "keyed, 2 % drop")
    }

    // MARK: -

    /// `zc-recv DEST --streams 1 --output OUTPUT --json` in the receiver's namespace, then
    /// `zc-send DEST --reliable --source SOURCE [senderExtra] --json` in the sender's, both to
    /// the end; `during` runs while the sender does.
    func transfer(_ path: LossyPath, source: String, output: String, senderExtra: [String] = [],
                  during: (Child) -> Void = { _ in }) throws -> ReliableTransfer {
        let receiver = try RunningReceiver.start(listen: path.destination, ["--streams", "1", "--output", output],
                                                 namespace: path.net.b, progress: true)
        let sender = try Child(Binaries.send, [path.destination, "--reliable", "--source", source] + senderExtra + ["--json"],
                               namespace: path.net.a)
        during(sender)
        let sent = sender.wait(timeout: 60)
        let received = receiver.child.wait(timeout: 20)
        return ReliableTransfer(sent: sent, received: received, receiverReport: received.json)
    }
}
