#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call: which call, and the errno it set (or returned, for
/// io_uring which reports `-errno`). Every syscall in zcstream turns its failure
/// into this type in one place: ``systemCall(_:stopRequested:_:)`` and the wrappers
/// built on it (``FileCalls``, ``SocketCalls``, ``MemoryMap``), under one EINTR policy (``Interruption``).
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The call that failed, with context where useful, e.g. `connect(198.18.0.2:9000)`.
    public let call: String
    /// The positive errno value.
    public let errno: Int32

    /// A failure of `call` with `errno` (positive; negate io_uring's `-errno` results first).
    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// Captures the calling thread's current `errno`.
    public init(call: String) {
        self.init(call: call, errno: Glibc.errno)
    }

    /// `call: strerror text (ENAME)`.
    public var description: String {
        "\(call): \(SystemError.describe(errno))"
    }

    /// Runs `body` and answers 0, or the errno of the ``SystemError`` it threw: for callers
    /// that record a failure's code rather than stop at it (output files, fsync).
    @inline(__always)
    public static func code(of body: () throws(SystemError) -> Void) -> Int32 {
        do { try body(); return 0 } catch { return error.errno }
    }

    /// `strerror`, and the symbolic name for the errors people see most.
    public static func describe(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        if let name = names[code] { return "\(text) (\(name))" }
        return "\(text) (errno \(code))"
    }

    private static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM",
        EACCES: "EACCES", EINVAL: "EINVAL", ENOBUFS: "ENOBUFS", ECONNREFUSED: "ECONNREFUSED",
        EMSGSIZE: "EMSGSIZE", ENETUNREACH: "ENETUNREACH", EHOSTUNREACH: "EHOSTUNREACH",
        EADDRINUSE: "EADDRINUSE", EADDRNOTAVAIL: "EADDRNOTAVAIL", EOPNOTSUPP: "EOPNOTSUPP",
        ENOSYS: "ENOSYS", EBADF: "EBADF", EFAULT: "EFAULT", ENODEV: "ENODEV", ENXIO: "ENXIO",
        ENETDOWN: "ENETDOWN",
    ]
}
