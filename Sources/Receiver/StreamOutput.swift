#if canImport(Glibc)
import Glibc
#endif
import CURing
import Synchronization
import ZCSystem

/// Where `--output` sends stream payloads.
public enum OutputDestination: Sendable, Equatable {
    /// Each stream's payload written at its stream offset (pwritev), so the file is
    /// the stream byte for byte; what never arrived stays a hole (zeros).
    case file(String)
    /// The first stream's payload, in order, to `fd` (stdout for `--output -`);
    /// out-of-order datagrams wait in a bounded window of `windowBytes`.
    case inOrder(fd: Int32, windowBytes: Int)

    /// In-order output to stdout (`--output -`) with a reorder window of `windowBytes`.
    public static func standardOutput(windowBytes: Int) -> OutputDestination { .inOrder(fd: 1, windowBytes: windowBytes) }
}

/// The report of one stream's output.
public struct StreamOutputReport: Sendable {
    /// The file path, or "-" for stdout.
    public var destination: String
    /// Payload bytes handed to the file/stdout (duplicates are never written twice).
    public var bytesWritten: UInt64 = 0
    /// File: the byte ranges written. Stdout: the ranges written in order.
    public var coverage = ByteRanges()
    /// Byte ranges of the stream missing from the output (filled in at the end):
    /// for a file the holes left as zeros, for stdout what was skipped.
    public var holes = RangeList()
    /// False when more distinct ranges arrived than `ByteRanges` keeps (the hole list is then a lower bound).
    public var holesComplete = true
    /// The output's length in bytes (file size / bytes written to stdout).
    public var length: UInt64 = 0
    /// Stdout: new datagrams that arrived after their place in the output had passed.
    public var lateDatagrams: UInt64 = 0
    /// Payload bytes of those late datagrams (not written).
    public var lateBytes: UInt64 = 0
    /// Failed writes (errno of the first).
    public var writeErrors: UInt64 = 0
    /// The errno of the first failed write (or of extending the file at the end); 0 if none.
    public var firstWriteError: Int32 = 0

    /// An empty report for output to `destination` (a path, or "-").
    public init(destination: String) { self.destination = destination }

    mutating func merge(_ other: StreamOutputReport) {
        bytesWritten += other.bytesWritten
        coverage.formUnion(other.coverage)
        lateDatagrams += other.lateDatagrams
        lateBytes += other.lateBytes
        writeErrors += other.writeErrors
        if firstWriteError == 0 { firstWriteError = other.firstWriteError }
        if other.holes.count > 0 && holes.count == 0 { holes = other.holes }
        length = max(length, other.length)
    }
}

/// Shared by all receive threads: decides which stream goes where (under a lock,
/// once per new stream, never per datagram) and owns the file descriptors.
///
/// File naming: with `--streams` 1 or unset, the first stream writes to PATH
/// itself and any later stream to `PATH.<stream id, 16 hex digits>`; with
/// `--streams N` > 1 every stream gets the suffix. A second stream with the same
/// id from another source adds `.2`, `.3`, ... In-order output (stdout) takes the
/// first stream only.
public final class OutputTarget: Sendable {
    /// Where the payloads go.
    public let destination: OutputDestination
    let suffixEveryStream: Bool

    struct Assigned { var fd: Int32; var path: String }
    struct State {
        var files: [StreamKey: Assigned] = [:]
        var usedPaths: Set<String> = []
        var inOrderOwner: StreamKey?
        var openErrors: [String] = []
    }
    private let state = Mutex(State())

    /// A target for `destination`. `expectedStreams` (``ReceiverConfiguration/streams``) picks
    /// the file naming: more than 1 suffixes every stream's file with its id. Files are opened
    /// when their stream's first datagram arrives.
    public init(_ destination: OutputDestination, expectedStreams: Int?) {
        self.destination = destination
        self.suffixEveryStream = (expectedStreams ?? 1) > 1
    }

    enum Claim { case file(Int32, String), inOrder, none }

    func claim(_ key: StreamKey) -> Claim {
        state.withLock { s -> Claim in
            switch destination {
            case .inOrder:
                if s.inOrderOwner == nil { s.inOrderOwner = key }
                return s.inOrderOwner == key ? .inOrder : .none
            case .file(let base):
                if let a = s.files[key] { return .file(a.fd, a.path) }
                var path = suffixEveryStream || !s.usedPaths.isEmpty ? base + "." + hex16(key.streamID) : base
                if s.usedPaths.contains(path) {
                    var n = 2
                    while s.usedPaths.contains("\(path).\(n)") { n += 1 }
                    path = "\(path).\(n)"
                }
                s.usedPaths.insert(path)
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                if fd < 0 {
                    s.openErrors.append("\(path): \(SystemError.describe(errno))")
                    return .none
                }
                s.files[key] = Assigned(fd: fd, path: path)
                return .file(fd, path)
            }
        }
    }

    /// Files that could not be opened ("path: reason").
    public var openErrors: [String] { state.withLock { $0.openErrors } }

    /// After all threads stopped and their cores merged: extends each file to the
    /// stream's length (so a lost tail is a hole of zeros, and the size is right),
    /// computes every stream's holes, and closes the files.
    func finalize(_ streams: inout [StreamState]) {
        state.withLock { s in
            for i in streams.indices {
                guard var out = streams[i].output else { continue }
                if case .file = destination, let a = s.files[streams[i].key] {
                    let end = max(streams[i].expected?.bytes ?? 0, out.coverage.upperBound)
                    var st = stat()
                    if fstat(a.fd, &st) == 0, UInt64(st.st_size) < end, end <= UInt64(Int64.max) {
                        if ftruncate(a.fd, off_t(end)) != 0 && out.firstWriteError == 0 { out.firstWriteError = errno }
                    }
                    out.length = fstat(a.fd, &st) == 0 ? UInt64(st.st_size) : end
                    let g = out.coverage.gaps(below: end)
                    var holes = RangeList()
                    for r in g.ranges { holes.add(r.lower, r.upper) }
                    // Beyond the first 32 ranges the totals still count every hole.
                    holes.setTotals(count: g.count, bytes: g.bytes)
                    out.holes = holes
                    out.holesComplete = !out.coverage.overflowed
                }
                streams[i].output = out
            }
            for a in s.files.values { close(a.fd) }
            s.files.removeAll()
        }
    }
}

@inline(__always) func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 16 - s.count)) + s
}

/// The per-thread writer the validating core calls for every new intact payload.
/// File payloads that continue each other are gathered into one `pwritev` (up to
/// 1024 pieces); the engine calls `flush` before it reuses its receive buffers.
final class CoreOutput: @unchecked Sendable {
    let target: OutputTarget
    private static let maxPieces = 1024
    private let iov: UnsafeMutablePointer<iovec>
    private var pieces = 0
    private var batchFD: Int32 = -1
    private var batchStream = -1
    private var batchStart: UInt64 = 0
    private var batchEnd: UInt64 = 0

    enum Sink { case none, file(Int32), inOrder }
    /// Per stream (same index as the core's streams).
    private(set) var sinks: [Sink] = []
    private(set) var reports: [StreamOutputReport?] = []
    private var inOrder: InOrderWriter?

    init(target: OutputTarget) {
        self.target = target
        iov = .allocate(capacity: Self.maxPieces)
    }

    deinit { iov.deallocate() }

    func streamCreated(_ key: StreamKey) {
        switch target.claim(key) {
        case .file(let fd, let path):
            sinks.append(.file(fd))
            reports.append(StreamOutputReport(destination: path))
        case .inOrder:
            if inOrder == nil, case .inOrder(let fd, let window) = target.destination {
                inOrder = InOrderWriter(fd: fd, windowBytes: window)
            }
            sinks.append(.inOrder)
            reports.append(StreamOutputReport(destination: "-"))
        case .none:
            sinks.append(.none)
            reports.append(nil)
        }
    }

    /// A new (not duplicate) intact payload of stream `i` at stream `offset`.
    @inline(__always)
    func write(stream i: Int, _ p: UnsafeRawPointer, count: Int, offset: UInt64) {
        switch sinks[i] {
        case .none:
            return
        case .file(let fd):
            let end = offset &+ UInt64(count)
            guard end >= offset, end <= UInt64(Int64.max) else {
                reports[i]!.writeErrors &+= 1
                if reports[i]!.firstWriteError == 0 { reports[i]!.firstWriteError = EFBIG }
                return
            }
            if pieces > 0 && (fd != batchFD || offset != batchEnd || pieces == Self.maxPieces) { flush() }
            if pieces == 0 { batchFD = fd; batchStream = i; batchStart = offset; batchEnd = offset }
            iov[pieces] = iovec(iov_base: UnsafeMutableRawPointer(mutating: p), iov_len: count)
            pieces += 1
            batchEnd = end
            reports[i]!.coverage.insert(offset, end)
        case .inOrder:
            inOrder!.accept(p, count: count, offset: offset, report: &reports[i]!)
        }
    }

    /// Writes what is gathered; call before the receive buffers are reused.
    func flush() {
        if pieces > 0 {
            var position = off_t(batchStart)
            var remaining = Int(batchEnd - batchStart)
            var first = 0
            while remaining > 0 {
                let n = pwritev(batchFD, iov + first, Int32(pieces - first), position)
                if n < 0 {
                    if errno == EINTR { continue }
                    reports[batchStream]!.writeErrors &+= 1
                    if reports[batchStream]!.firstWriteError == 0 { reports[batchStream]!.firstWriteError = errno }
                    break
                }
                reports[batchStream]!.bytesWritten &+= UInt64(n)
                remaining -= n
                position += off_t(n)
                // Skip the pieces written in full, trim a partly written one.
                var left = n
                while first < pieces && left >= iov[first].iov_len { left -= iov[first].iov_len; first += 1 }
                if left > 0 {
                    iov[first].iov_base += left
                    iov[first].iov_len -= left
                }
            }
            pieces = 0
        }
        inOrder?.flushPending()
    }

    /// Ends the run for this thread: flushes, drains the in-order output (the
    /// stream's END total, when known, marks a lost tail), returns the reports.
    func finish(expectedBytes: (Int) -> UInt64?) -> [StreamOutputReport?] {
        flush()
        if let w = inOrder, let i = sinks.firstIndex(where: { if case .inOrder = $0 { return true } else { return false } }) {
            w.finish(expectedBytes: expectedBytes(i), report: &reports[i]!)
        }
        return reports
    }
}

/// In-order writer (stdout). A payload at the next expected offset is written
/// straight from the receive buffer (gathered like file writes); one ahead of it
/// is copied into a ring of `windowBytes` until the gap before it fills. When a
/// payload lands beyond the window, or at the end, the gap is given up: recorded
/// as a hole and skipped (nothing is invented). A payload whose place has passed
/// is counted late.
final class InOrderWriter {
    let fd: Int32
    let window: UInt64
    private let ring: UnsafeMutableRawPointer
    private var next: UInt64 = 0
    private var buffered = ByteRanges(capacity: 65_536)
    private static let maxPieces = 1024
    private let iov: UnsafeMutablePointer<iovec>
    private var pieces = 0
    private var pendingBytes = 0
    private var failed: Int32 = 0
    private var written: UInt64 = 0
    private var holes = RangeList()

    init(fd: Int32, windowBytes: Int) {
        self.fd = fd
        self.window = UInt64(windowBytes)
        ring = .allocate(byteCount: windowBytes, alignment: 4096)
        iov = .allocate(capacity: Self.maxPieces)
    }

    deinit { ring.deallocate(); iov.deallocate() }

    func accept(_ p: UnsafeRawPointer, count: Int, offset: UInt64, report: inout StreamOutputReport) {
        var p = p, n = UInt64(count), o = offset
        if o &+ n <= next || o &+ n < o {
            report.lateDatagrams &+= 1
            report.lateBytes &+= n
            return
        }
        if o < next { let cut = next - o; p += Int(cut); n -= cut; o = next }
        if o == next {
            if pieces == Self.maxPieces { flushPending() }
            iov[pieces] = iovec(iov_base: UnsafeMutableRawPointer(mutating: p), iov_len: Int(n))
            pieces += 1
            pendingBytes += Int(n)
            next += n
            report.coverage.insert(o, o + n)
            if !buffered.isEmpty { flushPending(); drain(report: &report) }
            sync(&report)
            return
        }
        // Ahead of the next offset: the gathered direct pieces go out first, so the
        // ring never holds bytes a pending write still points at.
        flushPending()
        if o + n > next + window {
            skip(to: o + n - window, report: &report)
            if o <= next { // the skip reached it: write it directly
                sync(&report)
                accept(p, count: Int(n), offset: o, report: &report)
                return
            }
        }
        copyIn(p, count: Int(n), offset: o)
        buffered.insert(o, o + n)
        sync(&report)
    }

    private func copyIn(_ p: UnsafeRawPointer, count: Int, offset: UInt64) {
        let position = Int(offset % window)
        let first = min(count, Int(window) - position)
        (ring + position).copyMemory(from: p, byteCount: first)
        if first < count { ring.copyMemory(from: p + first, byteCount: count - first) }
    }

    /// Writes buffered data that now continues the output.
    private func drain(report: inout StreamOutputReport) {
        while let f = buffered.first, f.lower <= next {
            if f.upper > next {
                writeRing(from: next, to: f.upper)
                report.coverage.insert(next, f.upper)
                next = f.upper
            }
            buffered.removeFirst()
        }
    }

    /// Gives up on everything below `target`: buffered data goes out in order, gaps become holes.
    private func skip(to target: UInt64, report: inout StreamOutputReport) {
        while next < target {
            guard let f = buffered.first else { holes.add(next, target); next = target; break }
            if f.lower > next {
                let end = min(f.lower, target)
                holes.add(next, end)
                next = end
                continue
            }
            if f.upper > next {
                writeRing(from: next, to: f.upper)
                report.coverage.insert(next, f.upper)
                next = f.upper
            }
            buffered.removeFirst()
        }
        drain(report: &report)
    }

    private func writeRing(from: UInt64, to: UInt64) {
        var start = from
        while start < to {
            let position = Int(start % window)
            let n = min(Int(to - start), Int(window) - position)
            writeAll(ring + position, n)
            start += UInt64(n)
        }
    }

    private func writeAll(_ p: UnsafeRawPointer, _ count: Int) {
        var done = 0
        while done < count && failed == 0 {
            let n = Glibc.write(fd, p + done, count - done)
            if n < 0 { if errno == EINTR { continue }; failed = errno; break }
            done += n
            written += UInt64(n)
        }
    }

    func flushPending() {
        guard pieces > 0 else { return }
        var first = 0
        var remaining = pendingBytes
        while remaining > 0 && failed == 0 {
            let n = writev(fd, iov + first, Int32(pieces - first))
            if n < 0 { if errno == EINTR { continue }; failed = errno; break }
            written += UInt64(n)
            remaining -= n
            var left = n
            while first < pieces && left >= iov[first].iov_len { left -= iov[first].iov_len; first += 1 }
            if left > 0 { iov[first].iov_base += left; iov[first].iov_len -= left }
        }
        pieces = 0
        pendingBytes = 0
    }

    private func sync(_ report: inout StreamOutputReport) {
        report.bytesWritten = written
        if failed != 0 && report.firstWriteError == 0 { report.firstWriteError = failed; report.writeErrors &+= 1 }
    }

    func finish(expectedBytes: UInt64?, report: inout StreamOutputReport) {
        flushPending()
        skip(to: buffered.upperBound, report: &report)
        if let e = expectedBytes, e > next { holes.add(next, e); next = e }
        flushPending()
        sync(&report)
        report.holes = holes
        report.length = written
    }
}
