// A DAQ-style producer on zcstream's fill-in-place API.
//
// A simulated 16-bit ADC produces samples at a fixed rate. Each datagram carries
// a block of samples, written by the "sensor" straight into registered memory
// that the kernel sends with SEND_ZC: no user-space copy between the sensor and
// the wire. With --copy the same samples go through the copying `send(copying:)`
// path instead, for comparison.
//
// With --engine packet-ring --interface IF the sensor writes straight into the
// frames of an AF_PACKET TX ring instead (raw Ethernet/IPv4/UDP frames, needs
// CAP_NET_RAW); the destination MAC comes from --dst-mac or the neighbour table.
//
//   daq-producer HOST:PORT [--seconds 5] [--sample-rate 10000000] [--block 704] [--copy]
//                [--engine uring-zc|uring|sendmmsg|packet-ring] [--interface IF] [--dst-mac MAC] [--pool SLOTS]
//
// The receiving side (zc-recv, or the validated-sink example) checks every
// datagram's sequence number and checksum.
#if canImport(Glibc)
import Glibc
#endif
import ZCStream

struct Options {
    var destination = ""
    var seconds = 5.0
    var sampleRate = 10_000_000.0   // samples per second; 0 = as fast as possible
    var samplesPerDatagram = 704     // 1408 payload bytes + 48 header = 1456 B datagrams
    var copy = false
    var json = false
    var engine = SendEngineKind.uringZC
    var interface: String?
    var destinationMAC: MACAddress?
    var badMAC = false
    var badEngine = false
    var poolSlots = 256               // registered slots, or TX ring frames
    var gso = true                    // many datagrams per send (or per TX ring frame)
}

func parse() -> Options? {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    while let a = args.popFirst() {
        switch a {
        case "--seconds": o.seconds = Double(args.popFirst() ?? "") ?? -1
        case "--sample-rate": o.sampleRate = Double(args.popFirst() ?? "") ?? -1
        case "--block": o.samplesPerDatagram = Int(args.popFirst() ?? "") ?? -1
        case "--copy": o.copy = true
        case "--no-gso": o.gso = false
        case "--json": o.json = true
        case "--engine":
            o.engine = SendEngineKind(rawValue: args.popFirst() ?? "") ?? .auto
            o.badEngine = o.engine == .auto
        case "--interface": o.interface = args.popFirst()
        case "--pool": o.poolSlots = Int(args.popFirst() ?? "") ?? -1
        case "--dst-mac":
            o.destinationMAC = MACAddress(args.popFirst() ?? "")
            o.badMAC = o.destinationMAC == nil
        case "-h", "--help": return nil
        default: o.destination = a
        }
    }
    guard !o.destination.isEmpty, o.seconds > 0, o.sampleRate >= 0,
          (1...32_000).contains(o.samplesPerDatagram), !o.badEngine, !o.badMAC, (2...65536).contains(o.poolSlots),
          (o.engine == .packetRing) == (o.interface != nil) else { return nil }
    return o
}

/// The simulated sensor: a sampled sine plus a counter in the low bits, 16-bit
/// samples. Cheap on purpose (a table lookup per sample) so the benchmark measures
/// the send path, not the simulation. It writes its samples wherever it is told
/// to: here, straight into a registered slot.
struct SimulatedADC {
    private var n: UInt64 = 0
    private let wave: [Int16] = (0..<4096).map { Int16(20_000 * sin(Double($0) * 2 * Double.pi / 4096)) }

    mutating func read(into buffer: UnsafeMutableRawBufferPointer, samples: Int) -> Int {
        wave.withUnsafeBufferPointer { table in
            for i in 0..<samples {
                let k = n &+ UInt64(i)
                let value = table[Int(k & 4095)] &+ Int16(truncatingIfNeeded: k & 0xFF)
                buffer.storeBytes(of: value.littleEndian, toByteOffset: 2 * i, as: Int16.self)
            }
        }
        n &+= UInt64(samples)
        return 2 * samples
    }
}

guard let options = parse() else {
    print("usage: daq-producer HOST:PORT [--seconds S] [--sample-rate SPS (0: max)] [--block SAMPLES] [--copy] [--json]\n"
          + "                    [--engine uring-zc|uring|sendmmsg|packet-ring] [--interface IF (packet-ring)] [--dst-mac MAC] [--pool SLOTS]\n"
          + "                    [--no-gso (one datagram per send or ring frame)]")
    exit(64)
}

do {
    let destination = try SocketAddress.parse(options.destination)
    let payload = 2 * options.samplesPerDatagram
    let rate: Rate? = options.sampleRate > 0
        ? .packetsPerSecond(options.sampleRate / Double(options.samplesPerDatagram)) : nil
    var configuration = try SenderConfiguration(destination: destination, datagramSize: payload + 48,
                                                gso: options.gso ? .auto : .off, rate: rate,
                                                poolSlots: options.poolSlots)
    configuration.endRepeats = 3
    configuration.engine = options.engine
    if let interface = options.interface {
        configuration.packetRing = PacketRingOptions(interface: interface, destinationMAC: options.destinationMAC)
    }
    let stream = try OutboundStream(configuration)
    var adc = SimulatedADC()
    var scratch = [UInt8](repeating: 0, count: payload)   // only the --copy path uses it
    let deadline = MonotonicClock.nanoseconds() + UInt64(options.seconds * 1e9)
    StopFlag.install()
    while MonotonicClock.nanoseconds() < deadline && !StopFlag.isSet {
        if options.copy {
            scratch.withUnsafeMutableBytes { _ = adc.read(into: $0, samples: options.samplesPerDatagram) }
            try stream.send(copying: scratch)
        } else {
            try stream.send { slot in adc.read(into: slot, samples: options.samplesPerDatagram) }
        }
    }
    let report = try stream.finish()
    let s = report.statistics
    let gbps = Double(s.bytes) * 8 / report.seconds / 1e9
    let samples = Double(report.sequences) * Double(options.samplesPerDatagram)
    if options.json {
        print("{\"api\":\"\(options.copy ? "copy" : "in-place")\",\"engine\":\"\(options.engine.rawValue)\",\"datagrams\":\(s.datagrams),\"bytes\":\(s.bytes),\"seconds\":\(report.seconds),\"gbps\":\(gbps),\"msamples_per_s\":\(samples / report.seconds / 1e6),\"notifications\":\(s.notifications),\"sends\":\(s.sends),\"copied\":\(s.copied),\"kicks\":\(report.packetRing?.kicks ?? 0),\"stream_id\":\"0x\(String(configuration.streamID, radix: 16))\"}")
    } else {
        print("daq-producer (\(options.copy ? "send(copying:)" : "fill in place"), \(options.engine.rawValue)): \(s.datagrams) datagrams, \(Int(samples)) samples in \(report.seconds) s: \(gbps) Gbit/s; \(s.sends) sends, \(s.notifications) notifications (\(s.copied) copied by the kernel)")
    }
} catch {
    let line = "daq-producer: \(error)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    // packet-ring set-up: bad interface/addresses 64, no CAP_NET_RAW 77.
    if case .packetRingSetup(let e)? = error as? OutboundStreamError {
        exit(e.kind == .badInput ? 64 : e.kind == .noPermission ? 77 : 2)
    }
    exit(2)
}
