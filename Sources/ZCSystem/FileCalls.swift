#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// File-descriptor system calls (open, read, write, poll, sync, size) as thin wrappers
/// under the one EINTR policy (``Interruption``): each throws ``SystemError`` named after
/// the call (or `call`, when given) and is retried on EINTR unless a stop was requested.
///
/// A short read or write is returned as is: the caller loops over the rest.
package enum FileCalls {
    /// `open(2)`; `mode` applies with `O_CREAT`.
    @inline(__always)
    package static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644,
                            call: @autoclosure () -> String = "open") throws(SystemError) -> Int32 {
        try systemCall(call()) { Glibc.open(path, flags, mode) }
    }

    /// `close(2)`, once and never retried: Linux releases the descriptor even when
    /// close reports EINTR, so a retry could close a descriptor another thread just got.
    /// Returns 0 or the errno (a close error loses nothing the caller can still act on).
    @discardableResult @inline(__always)
    package static func close(_ fd: Int32) -> Int32 {
        Glibc.close(fd) == 0 ? 0 : Glibc.errno
    }

    /// `read(2)` into `buffer`: the bytes read, 0 at end of file.
    @inline(__always)
    package static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer,
                            call: @autoclosure () -> String = "read") throws(SystemError) -> Int {
        try systemCall(call()) { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// `pread(2)` into `buffer` from `offset`.
    @inline(__always)
    package static func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int64,
                             call: @autoclosure () -> String = "pread") throws(SystemError) -> Int {
        try systemCall(call()) { Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    /// `write(2)` of `count` bytes at `bytes`: the bytes written (maybe fewer).
    @inline(__always)
    package static func write(_ fd: Int32, _ bytes: UnsafeRawPointer, count: Int,
                             call: @autoclosure () -> String = "write") throws(SystemError) -> Int {
        try systemCall(call()) { Glibc.write(fd, bytes, count) }
    }

    /// `pwrite(2)` of `count` bytes at `bytes` to `offset`.
    @inline(__always)
    package static func pwrite(_ fd: Int32, _ bytes: UnsafeRawPointer, count: Int, offset: Int64,
                              call: @autoclosure () -> String = "pwrite") throws(SystemError) -> Int {
        try systemCall(call()) { Glibc.pwrite(fd, bytes, count, off_t(offset)) }
    }

    /// `writev(2)` of `count` pieces.
    @inline(__always)
    package static func writev(_ fd: Int32, _ pieces: UnsafePointer<iovec>, count: Int,
                              call: @autoclosure () -> String = "writev") throws(SystemError) -> Int {
        try systemCall(call()) { Glibc.writev(fd, pieces, Int32(count)) }
    }

    /// `pwritev(2)` of `count` pieces to `offset`.
    @inline(__always)
    package static func pwritev(_ fd: Int32, _ pieces: UnsafePointer<iovec>, count: Int, offset: Int64,
                               call: @autoclosure () -> String = "pwritev") throws(SystemError) -> Int {
        try systemCall(call()) { Glibc.pwritev(fd, pieces, Int32(count), off_t(offset)) }
    }

    /// `poll(2)` on one descriptor for `events`: the returned events, 0 when the time
    /// passed with nothing ready. A negative timeout waits without limit.
    ///
    /// EINTR without a stop request is retried with what is left of the timeout (so a
    /// stray signal neither ends the wait early nor stretches it); with a stop request
    /// it throws the stop interruption (``SystemError/isStopInterruption``).
    @inline(__always)
    package static func poll(_ fd: Int32, events: Int16, timeoutMilliseconds: Int32,
                            call: @autoclosure () -> String = "poll") throws(SystemError) -> Int16 {
        var p = pollfd(fd: fd, events: events, revents: 0)
        let deadline = timeoutMilliseconds < 0
            ? UInt64.max : MonotonicClock.nanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        let ready = try systemCall(call()) { () -> Int32 in
            guard deadline != .max else { return Glibc.poll(&p, 1, -1) }
            let now = MonotonicClock.nanoseconds()
            // Round up: a wait cut to 0 ms would return at once and report "nothing ready" early.
            let left = deadline > now ? Int32(min((deadline - now + 999_999) / 1_000_000, UInt64(Int32.max))) : 0
            return Glibc.poll(&p, 1, left)
        }
        return ready == 0 ? 0 : p.revents
    }

    /// `poll(2)` for input on two descriptors at once (a negative one is left out): true when
    /// either is readable before `timeoutMilliseconds`. A stop request ends the wait early
    /// (false); other interruptions are retried by the one EINTR policy.
    package static func pollEither(_ a: Int32, _ b: Int32, timeoutMilliseconds: Int32,
                                   call: @autoclosure () -> String = "poll") throws(SystemError) -> Bool {
        var fds = (pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0))
        let ready: Int32
        do {
            ready = try withUnsafeMutableBytes(of: &fds) { (raw) throws(SystemError) in
                let p = raw.baseAddress!.assumingMemoryBound(to: pollfd.self)
                return try systemCall(call()) { Glibc.poll(p, 2, timeoutMilliseconds) }
            }
        } catch where error.isStopInterruption {
            return false
        }
        return ready > 0
    }

    /// `ioctl(2)` with a pointer to `value` (an `ifreq`, say).
    @inline(__always)
    package static func ioctl<Value>(_ fd: Int32, _ request: UInt, _ value: inout Value,
                                                     call: @autoclosure () -> String = "ioctl") throws(SystemError) {
        _ = try withUnsafeMutablePointer(to: &value) { (p) throws(SystemError) in
            try systemCall(call()) { Glibc.ioctl(fd, request, UnsafeMutableRawPointer(p)) }
        }
    }

    /// `fsync(2)`.
    @inline(__always)
    package static func fsync(_ fd: Int32, call: @autoclosure () -> String = "fsync") throws(SystemError) {
        _ = try systemCall(call()) { Glibc.fsync(fd) }
    }

    /// `fdatasync(2)`.
    @inline(__always)
    package static func fdatasync(_ fd: Int32, call: @autoclosure () -> String = "fdatasync") throws(SystemError) {
        _ = try systemCall(call()) { Glibc.fdatasync(fd) }
    }

    /// `ftruncate(2)`: sets the file's length to `length` bytes.
    @inline(__always)
    package static func ftruncate(_ fd: Int32, length: Int64,
                                 call: @autoclosure () -> String = "ftruncate") throws(SystemError) {
        _ = try systemCall(call()) { Glibc.ftruncate(fd, off_t(length)) }
    }

    /// `fstat(2)`.
    @inline(__always)
    package static func fstat(_ fd: Int32, call: @autoclosure () -> String = "fstat") throws(SystemError) -> stat {
        var st = stat()
        _ = try systemCall(call()) { Glibc.fstat(fd, &st) }
        return st
    }
}
