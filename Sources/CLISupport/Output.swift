#if canImport(Glibc)
import Glibc
#endif

/// Writing to stdout/stderr without buffering surprises: progress goes to stderr
/// line by line, reports to stdout, each flushed at once.
public enum Output {
    /// Writes `line` to stderr at once (unbuffered `write(2)`), adding a newline if it
    /// lacks one. A write error other than EINTR drops the rest silently.
    public static func standardError(_ line: String) {
        var l = line
        if !l.hasSuffix("\n") { l += "\n" }
        writeAll(2, l)
    }

    /// Writes `text` to stdout at once (unbuffered `write(2)`), adding a final newline if
    /// it lacks one. A write error other than EINTR drops the rest silently.
    public static func standardOutput(_ text: String) {
        var t = text
        if !t.hasSuffix("\n") { t += "\n" }
        writeAll(1, t)
    }
}

/// write(2) until done: no stdio buffer to flush, safe from any thread.
private func writeAll(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 { if errno == EINTR { continue }; return }
        offset += n
    }
}

/// Exit statuses shared by both tools (sysexits.h where one fits).
public enum ExitStatus {
    /// Success.
    public static let ok: Int32 = 0
    /// The run completed but the receiver found loss/corruption beyond the limits.
    public static let validationFailed: Int32 = 1
    /// A runtime failure (socket, ring, kernel refused).
    public static let failure: Int32 = 2
    /// The run completed within the limits, but the receiver's output is incomplete: bytes
    /// that arrived are not in the file (a failed write or sync, beyond the output limit).
    public static let outputIncomplete: Int32 = 3
    /// zc-send with --max-loss/--max-corrupt: no REPORT came back in time, so the receiver's
    /// numbers could not be checked (neither pass nor fail).
    public static let noVerdict: Int32 = 4
    /// An output file cannot be created or written (EX_CANTCREAT).
    public static let cannotCreate: Int32 = 73
    /// Bad command line (EX_USAGE).
    public static let usage: Int32 = 64
    /// Not permitted (EX_NOPERM).
    public static let noPermission: Int32 = 77
    /// Stopped by SIGINT / SIGTERM: 128 + signal.
    public static func signal(_ s: Int32) -> Int32 { 128 + s }
}
