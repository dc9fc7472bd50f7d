// A receiver on zcstream's library API that writes validated data to a file.
//
// Every datagram is checked (structure, CRC32C, sequence, and the payload pattern
// for synthetic streams) before the delivery callback sees it; the callback writes
// each new payload at its stream offset, so the file is the stream, byte for byte,
// with zeros where datagrams were lost (the report lists them).
//
//   validated-sink [HOST:]PORT FILE [--streams 1] [--idle-timeout 5]
#if canImport(Glibc)
import Glibc
#endif
import ZCStream

/// Prints a line at once (stdout may be a pipe, where print() would buffer it).
func say(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(1, $0, strlen($0)) }
}

var args = Array(CommandLine.arguments.dropFirst())
guard args.count >= 2 else {
    say("usage: validated-sink [HOST:]PORT FILE [--streams N] [--idle-timeout SECONDS]")
    exit(64)
}
let listen = args.removeFirst()
let path = args.removeFirst()
var streams = 1
var idle = 5.0
while let flag = args.first {
    args.removeFirst()
    switch flag {
    case "--streams": streams = Int(args.first ?? "") ?? 0; args = Array(args.dropFirst())
    case "--idle-timeout": idle = Double(args.first ?? "") ?? 0; args = Array(args.dropFirst())
    default: say("validated-sink: unknown flag \(flag)"); exit(64)
    }
}
guard streams > 0, idle > 0 else { say("validated-sink: --streams and --idle-timeout must be positive"); exit(64) }

let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
guard fd >= 0 else { say("validated-sink: cannot open \(path): \(SystemError.describe(errno))"); exit(66) }
defer { close(fd) }

do {
    var configuration = ReceiverConfiguration(listen: try SocketAddress.parse(listen, defaultHost: "0.0.0.0", allowPortZero: true))
    configuration.streams = streams
    configuration.idleTimeoutNanoseconds = UInt64(idle * 1e9)
    // The payload pointer is valid only inside the callback: write it out there.
    configuration.delivery = { datagram in
        var done = 0
        while done < datagram.payload.count {
            let n = pwrite(fd, datagram.payload.baseAddress! + done, datagram.payload.count - done,
                           off_t(datagram.offset) + off_t(done))
            guard n > 0 else { break }
            done += n
        }
    }
    StopFlag.install()
    let report = try StreamReceiver.run(configuration, ready: { address, _, _ in
        say("validated-sink: listening on \(address), writing \(path)")
    })
    for stream in report.core.streams {
        let summary = stream.summary()
        say("stream 0x\(String(stream.key.streamID, radix: 16)): \(stream.tracker.unique) datagrams, lost \(summary.lost), corrupt \(stream.corrupt), complete \(stream.isComplete)")
    }
    if let expected = report.core.streams.first?.expected {
        // Lost tail data would leave the file short: make its length the stream's.
        _ = ftruncate(fd, off_t(expected.bytes))
    }
    exit(report.core.streams.allSatisfy { $0.isComplete && $0.corrupt == 0 } ? 0 : 1)
} catch {
    say("validated-sink: \(error)")
    exit(2)
}
