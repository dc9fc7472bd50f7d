#if canImport(Glibc)
import Glibc
#endif
import ZCSystem

/// How much memory the io_uring engines may pin: registered buffers are charged to
/// RLIMIT_MEMLOCK (`ulimit -l`, 8 MiB by default for a user) unless the process holds
/// CAP_IPC_LOCK. A default pool that does not fit would fail at
/// `io_uring_register_buffers` with ENOMEM before a single datagram went out, so the
/// default shrinks to what the limit holds and a failure says exactly what to change.
package enum MemoryLockBudget {
    /// Bytes one registered slot takes at most (a 64 KiB GSO send, page-rounded, plus the
    /// payload line lead rounded up to a page).
    package static let slotBytes = 64 * 1024 + 4096
    /// The pool a stream gets when `--pool` is not given.
    package static let defaultSlots = 256
    /// A reliable stream's default: 1024 slots (64 MiB, 45056 datagrams of 1472 B).
    package static let reliableSlots = 1024
    /// Fewer slots than this cannot keep a ring busy; below it the limit is reported instead.
    package static let minimumSlots = 8

    /// RLIMIT_MEMLOCK's soft limit in bytes; nil when unlimited or when the process may
    /// lock memory without limit (CAP_IPC_LOCK, checked in the effective capability set).
    package static var lockableBytes: UInt64? {
        if hasIPCLockCapability { return nil }
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        return UInt64(limit.rlim_cur)
    }

    /// The default pool per stream for `engine` with `streams` streams: ``defaultSlots``,
    /// or as many as RLIMIT_MEMLOCK holds for every stream's pool (at least ``minimumSlots``;
    /// registration then fails with the message of ``registrationHint(poolBytes:)``).
    /// A reliable stream (`reliable`) wants ``reliableSlots``: its slots stay held until
    /// acknowledged, and a loss holds everything sent after it until the repair arrives.
    package static func defaultPoolSlots(engine: SendEngineKind, streams: Int, reliable: Bool = false) -> Int {
        let wanted = reliable ? reliableSlots : defaultSlots
        guard engine == .uringZC || engine == .uring || engine == .auto, let bytes = lockableBytes else { return wanted }
        let perStream = bytes / UInt64(max(1, streams))
        // Leave a page per stream for whatever else the process pins.
        let fit = perStream > 4096 ? Int((perStream - 4096) / UInt64(slotBytes)) : 0
        return max(minimumSlots, min(wanted, fit))
    }

    /// What to do when registering `poolBytes` failed with ENOMEM.
    package static func registrationHint(poolBytes: Int) -> String {
        let limit = lockableBytes.map { "\($0 / 1024) KiB" } ?? "unlimited"
        return "registering \(poolBytes / 1024) KiB of send buffers needs that much lockable memory "
            + "(RLIMIT_MEMLOCK: \(limit)): use a smaller --pool, raise the limit (ulimit -l, or LimitMEMLOCK= in a systemd unit), "
            + "or --engine sendmmsg, which registers nothing"
    }

    /// CAP_IPC_LOCK (bit 14) in /proc/self/status's CapEff.
    static var hasIPCLockCapability: Bool {
        guard let fd = try? FileCalls.open("/proc/self/status", O_RDONLY | O_CLOEXEC) else { return geteuid() == 0 }
        defer { FileCalls.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        guard let n = buffer.withUnsafeMutableBytes({ try? FileCalls.read(fd, into: $0) }), n > 0 else { return geteuid() == 0 }
        let status = String(decoding: buffer[0..<n], as: UTF8.self)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let caps = UInt64(line.dropFirst("CapEff:".count).filter { !$0.isWhitespace }, radix: 16) else { return false }
        return caps & (1 << 14) != 0
    }
}
