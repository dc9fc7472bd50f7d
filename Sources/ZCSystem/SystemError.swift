#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call: which call, and the errno it set (or returned, for
/// io_uring which reports `-errno`). Every syscall in zcstream turns its failure
/// into this type in exactly one place: `retryingOnInterrupt` or `SystemError(call:)`.
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

/// Runs a libc call that returns -1 and sets errno on failure, retrying on EINTR
/// unless a stop was requested (then EINTR surfaces so the caller can wind down).
@inline(__always)
public func retryingOnInterrupt<T: BinaryInteger>(
    _ call: String, _ body: () -> T
) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR && !StopFlag.isSet { continue }
        throw SystemError(call: call, errno: code)
    }
}
