#if canImport(Glibc)
import Glibc
#endif
import ZCSystem

/// Reads payload bytes from a `--source` file, pipe or standard input for the send
/// engines, with one policy for the two things a live source does that a file does not:
///
/// - **It is interrupted.** A signal (Ctrl-C) interrupts a blocked `read` or `poll`
///   with EINTR. Without a stop request that is retried; with one, the reader answers
///   ``DatagramWriter/noMoreForNow`` so the bytes already read are sealed and sent and
///   the engine winds down with its END — never a "read(source): EINTR" failure.
/// - **It is slow.** `(echo hello; sleep 30) | zc-send` must not hold "hello" until a
///   full datagram's worth arrives. A pipe is read without blocking and polled when
///   empty (a terminal is polled before each read); when nothing arrives within the
///   flush interval, the reader answers
///   ``DatagramWriter/noMoreForNow`` and the partial datagram goes out as it is
///   (a shorter payload at the running stream offset: SPEC §6).
///
/// Regular files are read with `pread` at the stream offset and never wait.
struct SourceReader {
    let input: PayloadInput
    /// `poll` timeout for a pipe: the flush interval, in whole milliseconds (at least 1).
    let flushMilliseconds: Int32

    init(_ input: PayloadInput, flushIntervalNanoseconds: UInt64) {
        self.input = input
        self.flushMilliseconds = Int32(clamping: max(1, (flushIntervalNanoseconds + 999_999) / 1_000_000))
    }

    /// Bytes read into `destination` (at most `count`), 0 at end of input,
    /// ``DatagramWriter/noMoreForNow`` when the caller should send what it has, or
    /// `-errno` on a failure. The contract of ``DatagramWriter/fill(_:maxSegments:reading:)``.
    func read(into destination: UnsafeMutableRawPointer, count: Int, streamOffset: UInt64) -> Int {
        if input.seekable {
            while true {
                let n = pread(input.fd, destination, count, off_t(streamOffset))
                if n >= 0 { return n }
                if errno != EINTR { return -Int(errno) }
            }
        }
        while true {
            if input.nonBlocking {
                // A pipe: read first (one syscall per read while bytes flow), wait only when empty.
                let n = Glibc.read(input.fd, destination, count)
                if n >= 0 { return n }
                if errno == EINTR { continue }
                if errno != EAGAIN { return -Int(errno) }
            }
            // Once a stop is requested, take only what is already there.
            var descriptor = pollfd(fd: input.fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, StopFlag.isSet ? 0 : flushMilliseconds)
            if ready == 0 { return DatagramWriter.noMoreForNow }
            if ready < 0 {
                if errno == EINTR { continue }  // the next poll sees the stop request, if any
                return -Int(errno)
            }
            if input.nonBlocking { continue }
            // A terminal or device: readable, hung up (end of input follows) or an error the read reports.
            let n = Glibc.read(input.fd, destination, count)
            if n >= 0 { return n }
            if errno == EINTR || errno == EAGAIN { continue }
            return -Int(errno)
        }
    }
}
