#if canImport(Glibc)
import Glibc
#endif
import CLinux
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
///
/// Every byte of the stream that arrived intact is in exactly one place: written
/// (``coverage``), not written because a write failed (``failed``), or not written
/// because it lies beyond ``maxBytes`` or the END's total (``beyondLimit``). What
/// never arrived is a hole (``holes``). ``ok`` is false as soon as anything that
/// arrived is not safely in the file.
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
    /// Write calls made (`pwritev` for a file, `write`/`writev` for stdout): contiguous
    /// payloads go out together, so this is far below the datagrams written.
    public var writeCalls: UInt64 = 0
    /// The errno of the first failed write (or of opening or sizing the file at the end); 0 if none.
    public var firstWriteError: Int32 = 0

    /// File: byte ranges that arrived intact but are not in the file because a write failed,
    /// the file could not be opened, or it was deleted during the run (filled in at the end:
    /// the first 32, with the count and bytes of all).
    public var failedRanges = RangeList()
    /// False when ``failedRanges`` could not keep every range (its count is then a lower
    /// bound; its bytes stay exact).
    public var failedRangesComplete = true
    /// Byte ranges that arrived intact but were not written because they lie at or beyond
    /// ``maxBytes`` or the END's total bytes (first 32, with count and bytes of all).
    public var beyondLimit = RangeList()
    /// The output limit in force (``ReceiverConfiguration/outputMaxBytes``); nil: none.
    public var maxBytes: UInt64?
    /// The file could not be opened: its errno (every payload of the stream is then in ``failedRanges``).
    public var openError: Int32 = 0
    /// The file was unlinked while it was written (its directory removed, say): nothing
    /// written is reachable, so everything is in ``failedRanges``.
    public var fileDeleted = false
    /// The file (and, for a new file, its directory) was fsynced after the last write.
    public var synced = false
    /// Seconds the final fsync of the file and its directory took.
    public var fsyncSeconds: Double = 0
    /// fdatasync calls made during the run (``ReceiverConfiguration/fsyncIntervalNanoseconds``).
    public var intervalSyncs: UInt64 = 0
    /// Monotonic time (`MonotonicClock.nanoseconds()`) of the last successful sync, final or interval; 0 if none.
    public var lastSyncNanoseconds: UInt64 = 0
    /// The errno of the first failed fsync/fdatasync (file or directory); 0 if none. The bytes
    /// written since the previous successful sync may then not be on disk.
    public var syncError: Int32 = 0

    // Collected while running, per thread; turned into the lists above at the end.
    var failedSet = ByteRanges()
    var failedBytes: UInt64 = 0
    var beyondSet = ByteRanges()
    var beyondBytes: UInt64 = 0

    /// An empty report for output to `destination` (a path, or "-").
    public init(destination: String) { self.destination = destination }

    /// True when every byte that arrived intact is in the output: nothing failed, nothing
    /// beyond the limit, no open, write, sizing or sync error. Holes (loss) do not count:
    /// they are the stream's loss, reported by the sequence accounting.
    public var ok: Bool {
        failedRanges.bytes == 0 && beyondLimit.bytes == 0 && failedBytes == 0 && beyondBytes == 0
            && writeErrors == 0 && firstWriteError == 0 && openError == 0 && !fileDeleted && syncError == 0
    }

    /// The stream's END arrived, so its length is known (set when the output is finalized).
    public var endSeen = false

    /// True when the output is the whole stream: ``ok`` (everything that arrived is in it and
    /// on disk), the END arrived (the length is known, no tail can be missing) and no byte
    /// below the END's total is a hole. A file with holes of zeros is not the stream.
    public var complete: Bool { ok && endSeen && holes.bytes == 0 && holes.count == 0 }

    /// Why the output is not the whole stream, one line each ("PATH: what"): ``problems``,
    /// then the holes and a missing END. Empty when ``complete``.
    public var incompleteness: [String] {
        var out = problems
        if holes.bytes > 0 || holes.count > 0 {
            let what = destination == "-" ? "skipped (never arrived in time)" : "holes of zeros (never arrived)"
            out.append("\(destination): \(holes.bytes) bytes in \(holes.count) range(s) \(what)")
        }
        if !endSeen { out.append("\(destination): no END arrived, so the stream's length is unknown (its tail may be missing)") }
        return out
    }

    /// One line per problem, "PATH: what", empty when ``ok``.
    public var problems: [String] {
        var out: [String] = []
        if openError != 0 { out.append("\(destination): cannot open (\(SystemError.describe(openError)))") }
        if fileDeleted { out.append("\(destination): the file was deleted during the run") }
        if failedRanges.bytes > 0 {
            let why = firstWriteError != 0 ? " (\(SystemError.describe(firstWriteError)))" : ""
            out.append("\(destination): \(failedRanges.bytes) bytes in \(failedRanges.count) range(s) not written\(why)")
        } else if writeErrors > 0 || (firstWriteError != 0 && openError == 0) {
            out.append("\(destination): \(writeErrors) write errors (\(SystemError.describe(firstWriteError)))")
        }
        if beyondLimit.bytes > 0 {
            out.append("\(destination): \(beyondLimit.bytes) bytes in \(beyondLimit.count) range(s) beyond the output limit (\(maxBytes.map { "\($0) bytes" } ?? "none") or the END total), not written")
        }
        if syncError != 0 { out.append("\(destination): fsync failed (\(SystemError.describe(syncError)))") }
        return out
    }

    @inline(__always) mutating func noteFailed(_ lower: UInt64, _ upper: UInt64, errno e: Int32) {
        failedSet.insert(lower, upper)
        failedBytes &+= upper &- lower
        writeErrors &+= 1
        if firstWriteError == 0 { firstWriteError = e }
    }

    @inline(__always) mutating func noteBeyond(_ lower: UInt64, _ upper: UInt64) {
        beyondSet.insert(lower, upper)
        beyondBytes &+= upper &- lower
    }

    mutating func merge(_ other: StreamOutputReport) {
        bytesWritten += other.bytesWritten
        coverage.formUnion(other.coverage)
        lateDatagrams += other.lateDatagrams
        lateBytes += other.lateBytes
        writeErrors += other.writeErrors
        writeCalls += other.writeCalls
        if firstWriteError == 0 { firstWriteError = other.firstWriteError }
        if other.holes.count > 0 && holes.count == 0 { holes = other.holes }
        length = max(length, other.length)
        failedSet.formUnion(other.failedSet)
        failedBytes &+= other.failedBytes
        beyondSet.formUnion(other.beyondSet)
        beyondBytes &+= other.beyondBytes
        if openError == 0 { openError = other.openError }
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
package final class OutputTarget: Sendable {
    /// Where the payloads go.
    package let destination: OutputDestination
    let suffixEveryStream: Bool
    /// No byte at or beyond this stream offset is written (nil: no limit).
    package let maxBytes: UInt64?

    struct Assigned {
        var fd: Int32
        var path: String
        var intervalSyncs: UInt64 = 0
        var lastSync: UInt64 = 0
        var syncError: Int32 = 0
    }
    struct State {
        var files: [StreamKey: Assigned] = [:]
        var failedOpens: [StreamKey: (path: String, errno: Int32)] = [:]
        var usedPaths: Set<String> = []
        var inOrderOwner: StreamKey?
        var openErrors: [String] = []
        var directoryErrors: [String] = []
    }
    private let state = Mutex(State())

    /// A target for `destination`. `expectedStreams` (``ReceiverConfiguration/streams``) picks
    /// the file naming: more than 1 suffixes every stream's file with its id. Files are opened
    /// when their stream's first datagram arrives. `maxBytes` (``ReceiverConfiguration/outputMaxBytes``)
    /// bounds every stream's output: bytes at or beyond it are counted, not written.
    package init(_ destination: OutputDestination, expectedStreams: Int?,
                maxBytes: UInt64? = ReceiverConfiguration.defaultOutputMaxBytes, server: Bool = false) {
        self.destination = destination
        self.suffixEveryStream = (expectedStreams ?? 1) > 1 || server
        self.maxBytes = maxBytes
        self.server = server
    }

    /// A server's target (``ReceiverConfiguration/server``): every stream gets
    /// `FILE.<16 hex digit stream id>`, and an existing file is never overwritten (the next
    /// free `.2`, `.3`, ... is taken, found with O_EXCL: no name table that grows with
    /// every stream); a stream's file is finalized and closed as soon as it finishes.
    let server: Bool

    enum Claim { case file(Int32, String), unopened(String, Int32), inOrder, none }

    func claim(_ key: StreamKey) -> Claim {
        state.withLock { s -> Claim in
            switch destination {
            case .inOrder:
                if s.inOrderOwner == nil { s.inOrderOwner = key }
                return s.inOrderOwner == key ? .inOrder : .none
            case .file(let base):
                if let a = s.files[key] { return .file(a.fd, a.path) }
                if let f = s.failedOpens[key] { return .unopened(f.path, f.errno) }
                if server { return claimExclusive(base + "." + hex16(key.streamID), key: key, state: &s) }
                var path = suffixEveryStream || !s.usedPaths.isEmpty ? base + "." + hex16(key.streamID) : base
                if s.usedPaths.contains(path) {
                    var n = 2
                    while s.usedPaths.contains("\(path).\(n)") { n += 1 }
                    path = "\(path).\(n)"
                }
                s.usedPaths.insert(path)
                let fd: Int32
                do throws(SystemError) { fd = try FileCalls.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o644) } catch {
                    let e = error.errno
                    s.openErrors.append("\(path): \(SystemError.describe(e))")
                    s.failedOpens[key] = (path, e)
                    return .unopened(path, e)
                }
                s.files[key] = Assigned(fd: fd, path: path)
                return .file(fd, path)
            }
        }
    }

    /// Opens `path` (or `path.2`, `path.3`, ...: the first that does not exist) for `key`.
    private func claimExclusive(_ path: String, key: StreamKey, state s: inout State) -> Claim {
        var candidate = path
        var n = 1
        while true {
            let e: Int32
            do throws(SystemError) {
                let fd = try FileCalls.open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o644)
                s.files[key] = Assigned(fd: fd, path: candidate)
                return .file(fd, candidate)
            } catch {
                e = error.errno
            }
            if e == EEXIST && n < 1000 { n += 1; candidate = "\(path).\(n)"; continue }
            s.openErrors.append("\(candidate): \(SystemError.describe(e))")
            s.failedOpens[key] = (candidate, e)
            return .unopened(candidate, e)
        }
    }

    /// Files that could not be opened ("path: reason").
    package var openErrors: [String] { state.withLock { $0.openErrors } }

    /// Every output problem of a finished run, one line each: the streams' ``StreamOutputReport/problems``
    /// and directories that could not be synced. Empty when all output is complete and on disk.
    package func problems(_ streams: [StreamState]) -> [String] {
        streams.flatMap { $0.output?.problems ?? [] } + state.withLock { $0.directoryErrors }
    }

    /// Why the output of a finished run is not every stream whole, one line each: each
    /// stream's ``StreamOutputReport/incompleteness``, directories that could not be synced,
    /// and no stream at all (nothing was written). Empty when the output is complete.
    package func incompleteness(_ streams: [StreamState]) -> [String] {
        var out = streams.flatMap { $0.output?.incompleteness ?? [] } + state.withLock { $0.directoryErrors }
        if streams.isEmpty {
            let name: String
            switch destination { case .file(let path): name = path; case .inOrder: name = "-" }
            out.append("\(name): no stream arrived, nothing was written")
        }
        return out
    }

    /// fdatasync of every open file, from the coordinating thread (never a receive thread):
    /// bounds what a crash can lose to what was written since. Returns the files synced.
    @discardableResult
    package func syncNow() -> Int {
        let fds = state.withLock { s in s.files.map { ($0.key, $0.value.fd) } }
        var results: [(StreamKey, Int32, UInt64)] = []
        for (key, fd) in fds {
            let e = SystemError.code { () throws(SystemError) in try FileCalls.fdatasync(fd) }
            results.append((key, e, MonotonicClock.nanoseconds()))
        }
        state.withLock { s in
            for (key, e, at) in results {
                s.files[key]?.intervalSyncs += 1
                if e == 0 { s.files[key]?.lastSync = at } else if s.files[key]?.syncError == 0 { s.files[key]?.syncError = e }
            }
        }
        return fds.count
    }

    /// After all threads stopped and their cores merged: moves what lies beyond the limit
    /// (``maxBytes``, the END total) out of the file, sizes each file to its stream's length
    /// (so a lost tail is a hole of zeros), computes every stream's holes, failed and
    /// beyond-limit ranges, fsyncs each file and its directory, and closes the files.
    func finalize(_ streams: inout [StreamState]) {
        state.withLock { s in
            var directories: [String: [Int]] = [:]
            for i in streams.indices {
                guard var out = streams[i].output else { continue }
                out.maxBytes = maxBytes
                out.endSeen = streams[i].expected != nil
                if case .file = destination {
                    let limit = min(maxBytes ?? .max, streams[i].expected?.bytes ?? .max)
                    // Written before the END total was known (or by another thread): not the
                    // stream's; the file is cut back below.
                    let above = out.coverage.removeAll(atOrAbove: limit)
                    for r in above.spans { out.noteBeyond(r.lower, r.upper) }
                    let failedAbove = out.failedSet.removeAll(atOrAbove: limit)
                    for r in failedAbove.spans { out.beyondSet.insert(r.lower, r.upper) }
                }
                if let f = s.failedOpens[streams[i].key] { out.openError = f.errno }
                let kept = max(out.coverage.upperBound, out.failedSet.upperBound)
                // An END total within the limit sizes the file (a lost tail is a hole);
                // one beyond it does not stretch the file to the limit.
                let end = streams[i].expected.map { $0.bytes <= (maxBytes ?? .max) ? max($0.bytes, kept) : kept } ?? kept
                if case .file = destination, let a = s.files[streams[i].key] {
                    if let st = try? FileCalls.fstat(a.fd), st.st_nlink == 0 {
                        // Unlinked (its directory removed, say): nothing written can be found.
                        out.fileDeleted = true
                        for r in out.coverage.spans { out.failedSet.insert(r.lower, r.upper) }
                        out.coverage = ByteRanges()
                        out.length = 0
                        out.holes = Self.holes(out, below: end)
                    } else {
                        if let st = try? FileCalls.fstat(a.fd), UInt64(st.st_size) != end, end <= UInt64(Int64.max) {
                            let e = SystemError.code { () throws(SystemError) in try FileCalls.ftruncate(a.fd, length: Int64(end)) }
                            if e != 0 && out.firstWriteError == 0 { out.firstWriteError = e }
                        }
                        out.length = (try? FileCalls.fstat(a.fd)).map { UInt64($0.st_size) } ?? end
                        out.holes = Self.holes(out, below: end)
                        out.holesComplete = !out.coverage.overflowed && !out.failedSet.overflowed
                        let t0 = MonotonicClock.nanoseconds()
                        let e = SystemError.code { () throws(SystemError) in try FileCalls.fsync(a.fd) }
                        if e == 0 {
                            out.synced = true
                            out.lastSyncNanoseconds = MonotonicClock.nanoseconds()
                        } else if out.syncError == 0 {
                            out.syncError = e
                        }
                        out.fsyncSeconds = Double(MonotonicClock.nanoseconds() - t0) / 1e9
                        directories[Self.directory(of: a.path), default: []].append(i)
                    }
                    out.intervalSyncs = a.intervalSyncs
                    if a.syncError != 0 && out.syncError == 0 { out.syncError = a.syncError }
                    if out.lastSyncNanoseconds == 0 { out.lastSyncNanoseconds = a.lastSync }
                } else if case .inOrder(let fd, _) = destination, out.destination == "-" {
                    let t0 = MonotonicClock.nanoseconds()
                    let e = SystemError.code { () throws(SystemError) in try FileCalls.fsync(fd) }
                    out.fsyncSeconds = Double(MonotonicClock.nanoseconds() - t0) / 1e9
                    // A pipe or terminal cannot be synced: not an error, just not synced.
                    if e == 0 { out.synced = true; out.lastSyncNanoseconds = MonotonicClock.nanoseconds() }
                    else if e != EINVAL && e != EROFS && e != ENOTSUP && out.syncError == 0 { out.syncError = e }
                } else if case .file = destination, out.openError != 0 {
                    out.holes = Self.holes(out, below: end)
                }
                // What failed and was later written by another thread is in the file.
                let failed = out.failedSet.subtracting(out.coverage)
                out.failedRanges = RangeList(failed)
                if failed.overflowed { out.failedRangesComplete = false; out.failedRanges.setTotals(count: out.failedRanges.count, bytes: out.failedBytes) }
                out.beyondLimit = RangeList(out.beyondSet)
                if out.beyondSet.overflowed { out.beyondLimit.setTotals(count: out.beyondLimit.count, bytes: out.beyondBytes) }
                streams[i].output = out
            }
            // A new file's name is durable only once its directory is synced.
            for (directory, members) in directories {
                let t0 = MonotonicClock.nanoseconds()
                let e = SystemError.code { () throws(SystemError) in
                    let dfd = try FileCalls.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                    defer { FileCalls.close(dfd) }
                    try FileCalls.fsync(dfd)
                }
                let seconds = Double(MonotonicClock.nanoseconds() - t0) / 1e9
                for i in members {
                    streams[i].output!.fsyncSeconds += seconds
                    if e != 0 {
                        streams[i].output!.synced = false
                        if streams[i].output!.syncError == 0 { streams[i].output!.syncError = e }
                    }
                }
                if e != 0 { s.directoryErrors.append("\(directory): directory fsync failed (\(SystemError.describe(e)))") }
            }
            if server {
                // Only these streams are done: close their files, forget them.
                for st in streams {
                    if let a = s.files.removeValue(forKey: st.key) { FileCalls.close(a.fd) }
                    s.failedOpens.removeValue(forKey: st.key)
                }
                if s.openErrors.count > 64 { s.openErrors.removeFirst(s.openErrors.count - 64) }
                if s.directoryErrors.count > 64 { s.directoryErrors.removeFirst(s.directoryErrors.count - 64) }
            } else {
                for a in s.files.values { FileCalls.close(a.fd) }
                s.files.removeAll()
            }
        }
    }

    /// A server's finished streams (each with the output report its thread handed over):
    /// finalized like a whole run's (sized, holes, fsynced with the directory) and closed.
    /// Called by the coordinating thread, never a receive thread.
    package func finalizeFinished(_ streams: inout [StreamState]) {
        finalize(&streams)
    }

    /// Gaps of the stream below `end` that neither were written nor failed: never arrived.
    static func holes(_ out: StreamOutputReport, below end: UInt64) -> RangeList {
        var accounted = out.coverage
        accounted.formUnion(out.failedSet)
        let g = accounted.gaps(below: end)
        var holes = RangeList()
        for r in g.ranges { holes.add(r.lower, r.upper) }
        // Beyond the first 32 ranges the totals still count every hole.
        holes.setTotals(count: g.count, bytes: g.bytes)
        return holes
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

@inline(__always) func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 16 - s.count)) + s
}

/// The per-thread writer the validating core calls for every new intact payload.
///
/// File output is gathered per stream into runs: each stream keeps one open run (its file
/// offset, and the payloads that continue each other, as pointers into the receive
/// buffers), and a run goes out as one `pwritev` when the next payload of its stream does
/// not continue it (a gap, a reordered datagram), when it holds ``maxPieces`` (IOV_MAX)
/// payloads, or at `flush`, which the engines call at the end of every receive batch,
/// before they reuse (or hand back) the buffers the runs point into. Streams interleaved in
/// one batch therefore still write one call per run each, not one per datagram; payloads
/// are written in place, never copied (a staging copy measured no faster: the page-cache
/// copy costs the same per byte from 1424-byte pieces as from 64 KiB).
final class CoreOutput: @unchecked Sendable {
    let target: OutputTarget
    /// IOV_MAX: the most pieces one `pwritev` takes.
    static let maxPieces = 1024
    /// A run's first piece array holds this many; it doubles up to ``maxPieces`` as needed.
    private static let initialPieces = 64

    /// One stream's open run: `pieces` payloads written back to back make [start, end).
    struct Run {
        var iov: UnsafeMutablePointer<iovec>?
        var capacity = 0
        var pieces = 0
        var start: UInt64 = 0
        var end: UInt64 = 0
        /// In `pending`.
        var listed = false
    }
    /// Per stream (same index as the core's streams), `streamCount` of `runCapacity`: raw
    /// storage, so the per-datagram path pays no copy-on-write or exclusivity checks.
    private var runs: UnsafeMutablePointer<Run>
    private var runCapacity = 16
    private var streamCount = 0
    /// Streams whose run may hold pieces: flushed by `flush`, cleared after.
    private var pending: [Int] = []

    enum Sink { case none, file(Int32), unopened(Int32), inOrder }
    /// Per stream (same index as the core's streams).
    private(set) var sinks: [Sink] = []
    private(set) var reports: [StreamOutputReport?] = []
    private var inOrder: InOrderWriter?

    init(target: OutputTarget) {
        self.target = target
        runs = .allocate(capacity: runCapacity)
        pending.reserveCapacity(16)
    }

    deinit {
        for i in 0..<streamCount { runs[i].iov?.deallocate() }
        runs.deinitialize(count: streamCount)
        runs.deallocate()
    }

    func streamCreated(_ key: StreamKey) {
        if streamCount == runCapacity {
            let more = UnsafeMutablePointer<Run>.allocate(capacity: runCapacity * 2)
            more.moveInitialize(from: runs, count: streamCount)
            runs.deallocate()
            runs = more
            runCapacity *= 2
        }
        (runs + streamCount).initialize(to: Run())
        streamCount += 1
        switch target.claim(key) {
        case .file(let fd, let path):
            sinks.append(.file(fd))
            reports.append(StreamOutputReport(destination: path))
        case .unopened(let path, let e):
            sinks.append(.unopened(e))
            var report = StreamOutputReport(destination: path)
            report.openError = e
            reports.append(report)
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

    /// A new (not duplicate) intact payload of stream `i` at stream `offset`. Bytes at or
    /// beyond the target's `maxBytes` or `endTotal` (the stream's END total, once known)
    /// are counted beyond the limit, not written. File payloads join the stream's run; `p`
    /// must stay valid until the next `flush`.
    @inline(__always)
    func write(stream i: Int, _ p: UnsafeRawPointer, count: Int, offset: UInt64, endTotal: UInt64? = nil) {
        if case .none = sinks[i] { return }
        var count = count
        let (sum, overflow) = offset.addingReportingOverflow(UInt64(count))
        var end = overflow ? UInt64.max : sum
        let limit = min(target.maxBytes ?? .max, endTotal ?? .max)
        if end > limit {
            reports[i]!.noteBeyond(max(offset, limit), end)
            if offset >= limit { return }
            count = Int(limit - offset)
            end = limit
        }
        switch sinks[i] {
        case .none:
            return
        case .unopened(let e):
            reports[i]!.noteFailed(offset, end, errno: e)
        case .file(let fd):
            guard end <= UInt64(Int64.max) else {
                reports[i]!.noteFailed(offset, end, errno: EFBIG)
                return
            }
            append(stream: i, fd: fd, p, count: count, offset: offset, end: end)
        case .inOrder:
            inOrder!.accept(p, count: count, offset: offset, report: &reports[i]!)
        }
    }

    /// Adds [offset, end) to stream `i`'s run; a payload that does not continue the run
    /// (or a full run) writes the run first and starts a new one.
    @inline(__always)
    private func append(stream i: Int, fd: Int32, _ p: UnsafeRawPointer, count: Int, offset: UInt64, end: UInt64) {
        let run = runs + i
        if run.pointee.pieces > 0 && (offset != run.pointee.end || run.pointee.pieces == Self.maxPieces) { writeRun(i, fd: fd) }
        if run.pointee.pieces == 0 {
            run.pointee.start = offset
            if !run.pointee.listed { run.pointee.listed = true; pending.append(i) }
        }
        if run.pointee.pieces == run.pointee.capacity { grow(i) }
        run.pointee.iov![run.pointee.pieces] = iovec(iov_base: UnsafeMutableRawPointer(mutating: p), iov_len: count)
        run.pointee.pieces += 1
        run.pointee.end = end
    }

    private func grow(_ i: Int) {
        let capacity = min(Self.maxPieces, max(Self.initialPieces, runs[i].capacity * 2))
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: capacity)
        if let old = runs[i].iov {
            iov.update(from: old, count: runs[i].pieces)
            old.deallocate()
        }
        runs[i].iov = iov
        runs[i].capacity = capacity
    }

    /// Writes stream `i`'s run with `pwritev` at its offset, resuming after a short write.
    /// What a failed call leaves out, [position, end), is recorded as a failed range (exactly
    /// the bytes not written); the next run is tried again (a disk that fills keeps failing
    /// cheaply, one call per run; the receive path goes on).
    private func writeRun(_ i: Int, fd: Int32) {
        let iov = runs[i].iov!
        let pieces = runs[i].pieces
        let end = runs[i].end
        var position = runs[i].start
        var first = 0
        runs[i].pieces = 0
        while position < end {
            let n: Int
            reports[i]!.writeCalls &+= 1
            do { n = try FileCalls.pwritev(fd, iov + first, count: pieces - first, offset: Int64(position)) } catch {
                reports[i]!.noteFailed(position, end, errno: error.errno)
                return
            }
            if n <= 0 { // cannot happen for a regular file; never loop on it
                reports[i]!.noteFailed(position, end, errno: EIO)
                return
            }
            reports[i]!.bytesWritten &+= UInt64(n)
            reports[i]!.coverage.insert(position, position + UInt64(n))
            position += UInt64(n)
            // Skip the pieces written in full, trim a partly written one.
            var left = n
            while first < pieces && left >= iov[first].iov_len { left -= iov[first].iov_len; first += 1 }
            if left > 0 {
                iov[first].iov_base += left
                iov[first].iov_len -= left
            }
        }
    }

    /// Writes every open run (and the in-order output's gathered pieces); the engines call it
    /// at the end of each receive batch, before the receive buffers are reused.
    func flush() {
        if !pending.isEmpty {
            for i in pending {
                if runs[i].pieces > 0, case .file(let fd) = sinks[i] { writeRun(i, fd: fd) }
                runs[i].listed = false
            }
            pending.removeAll(keepingCapacity: true)
        }
        inOrder?.flushPending()
    }

    /// A server retires streams (indices into the core's streams, increasing): writes what is
    /// gathered, and hands over and forgets their output reports (the remaining streams'
    /// entries shift down with the core's).
    func retire(_ indices: [Int]) -> [StreamOutputReport?] {
        flush()
        let out = indices.map { reports[$0] }
        for i in indices.reversed() {
            runs[i].iov?.deallocate()
            (runs + i).deinitialize(count: 1)
            if i + 1 < streamCount { (runs + i).moveInitialize(from: runs + i + 1, count: streamCount - i - 1) }
            streamCount -= 1
            sinks.remove(at: i)
            reports.remove(at: i)
        }
        return out
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
    private var calls: UInt64 = 0
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
            let n: Int
            calls &+= 1
            do { n = try FileCalls.write(fd, p + done, count: count - done) } catch { failed = error.errno; break }
            done += n
            written += UInt64(n)
        }
    }

    func flushPending() {
        guard pieces > 0 else { return }
        var first = 0
        var remaining = pendingBytes
        while remaining > 0 && failed == 0 {
            let n: Int
            calls &+= 1
            do { n = try FileCalls.writev(fd, iov + first, count: pieces - first) } catch { failed = error.errno; break }
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
        report.writeCalls = calls
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

extension ReceiverReport {
    /// True unless ``ReceiverConfiguration/output`` was set and the output is not every stream
    /// whole and on disk: a hole, a stream without END, a byte that arrived but is not in the
    /// file, no stream at all (see ``outputErrors``).
    public var outputOK: Bool { outputErrors.isEmpty }
    /// Bytes that arrived intact but are not in the output because a write failed (all streams).
    public var outputFailedBytes: UInt64 { core.streams.reduce(0) { $0.saturatingAdd($1.output?.failedRanges.bytes ?? 0) } }
    /// Bytes that arrived intact but lie beyond the output limit or the END total (all streams).
    public var outputBeyondLimitBytes: UInt64 { core.streams.reduce(0) { $0.saturatingAdd($1.output?.beyondLimit.bytes ?? 0) } }
    /// True when output was written and every file was fsynced at the end.
    public var outputSynced: Bool {
        let outs = core.streams.compactMap(\.output)
        return !outs.isEmpty && outs.allSatisfy(\.synced)
    }
}
