#if canImport(Glibc)
import Glibc
#endif
import ZCSystem

/// Where payload bytes come from.
public enum PayloadSource: Sendable, Equatable, CustomStringConvertible {
    /// The synthetic, verifiable pattern (PATTERN flag set).
    case pattern
    /// A file: regular files are read straight into the registered slots (one vectored read
    /// per slot: page-cache hits with preadv2(RWF_NOWAIT), misses by io_uring READV); pipes and devices are read in order.
    case file(String)
    /// Standard input, read in order until end of input.
    case standardInput
    /// One payload (the pattern's first datagram) written into every slot once, when the
    /// pool is set up; per datagram only the 48-byte header is written, and its checksum
    /// is the header's CRC combined with the payload's precomputed one. Sent as opaque
    /// DATA (no PATTERN flag): the receiver verifies the checksum of every datagram.
    case fixed

    /// `pattern`, the file's path, or `-` for standard input, as `--source` takes it.
    public var description: String {
        switch self {
        case .pattern: return "pattern"
        case .file(let path): return path
        case .standardInput: return "-"
        case .fixed: return "fixed"
        }
    }
}

/// An opened payload source: its descriptor and, for a regular file, its size.
package struct PayloadInput: Sendable {
    /// The descriptor to read from (0 for standard input); valid until ``close()``.
    package let fd: Int32
    /// Regular file: positional reads are possible and the size is known.
    package let seekable: Bool
    /// The file's size in bytes for a regular file, nil otherwise.
    package let size: UInt64?
    /// A pipe or socket switched to O_NONBLOCK while zcstream reads it: a read that finds
    /// it empty returns at once (EAGAIN) instead of holding a partly filled datagram.
    /// Terminals and devices stay blocking (their descriptor is shared with the shell)
    /// and are polled before each read instead.
    package let nonBlocking: Bool
    let ownsDescriptor: Bool
    /// The file status flags to put back on ``close()`` (nil: unchanged).
    let originalFlags: Int32?

    package typealias OpenError = SourceOpenError

    /// Opens `source` (nil for the pattern).
    package static func open(_ source: PayloadSource) throws(OpenError) -> PayloadInput? {
        switch source {
        case .pattern, .fixed:
            return nil
        case .standardInput:
            return describe(fd: 0, owns: false)
        case .file(let path):
            let fd: Int32
            do { fd = try FileCalls.open(path, O_RDONLY | O_CLOEXEC) } catch { throw .cannotOpen(path, error) }
            let st: stat
            do { st = try FileCalls.fstat(fd) } catch { _ = FileCalls.close(fd); throw .cannotOpen(path, error) }
            if st.st_mode & S_IFMT == S_IFDIR { _ = FileCalls.close(fd); throw .cannotOpen(path, SystemError(call: "open", errno: EISDIR)) }
            return describe(fd: fd, owns: true)
        }
    }

    private static func describe(fd: Int32, owns: Bool) -> PayloadInput {
        let status = try? FileCalls.fstat(fd)
        let known = status != nil
        let st = status ?? stat()
        let kind = st.st_mode & S_IFMT
        let regular = known && kind == S_IFREG
        var original: Int32?
        if known && (kind == S_IFIFO || kind == S_IFSOCK) {
            let flags = fcntl(fd, F_GETFL)
            if flags >= 0 && flags & O_NONBLOCK == 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 { original = flags }
        }
        return PayloadInput(fd: fd, seekable: regular, size: regular ? UInt64(st.st_size) : nil,
                            nonBlocking: original != nil, ownsDescriptor: owns, originalFlags: original)
    }

    /// Puts back the descriptor's blocking mode and closes it if this input opened it
    /// (standard input stays open).
    package func close() {
        if let originalFlags { _ = fcntl(fd, F_SETFL, originalFlags) }
        if ownsDescriptor { _ = FileCalls.close(fd) }
    }
}

/// Why a stream's payload source (``PayloadSource/file(_:)``) cannot be read.
public enum SourceOpenError: ConfigurationError {
    /// The path cannot be opened or is a directory: the path and the failed call.
    case cannotOpen(String, SystemError)
    /// One line naming the source (through `name`), its path and the reason.
    public func describe(naming name: (String) -> String) -> String {
        switch self {
        case .cannotOpen(let path, let e): return "\(name("source")) '\(path)' cannot be read: \(SystemError.describe(e.errno))"
        }
    }
}
