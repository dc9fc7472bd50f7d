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
        let buffer = UnsafeMutableRawBufferPointer(start: destination, count: count)
        /// One read of what is there now; nil when a non-blocking pipe is empty.
        func readAvailable() throws(SystemError) -> Int? {
            try nonBlockingSystemCall("read(source)") { Glibc.read(input.fd, destination, count) }
        }
        // The wrappers retry EINTR unless a stop was requested; a stop's interruption
        // means: send what is in hand (noMoreForNow), the driver winds down after it.
        do {
            if input.seekable {
                return try FileCalls.pread(input.fd, into: buffer, offset: Int64(streamOffset), call: "pread(source)")
            }
            while true {
                if input.nonBlocking {
                    // A pipe: read first (one syscall per read while bytes flow), wait only when empty.
                    if let n = try readAvailable() { return n }
                }
                // Once a stop is requested, take only what is already there.
                let ready: Int16
                do {
                    ready = try FileCalls.poll(input.fd, events: Int16(POLLIN), timeoutMilliseconds: StopFlag.isSet ? 0 : flushMilliseconds,
                                               call: "poll(source)")
                } catch where error.isStopInterruption {
                    continue  // the next poll takes only what is there
                }
                if ready == 0 { return DatagramWriter.noMoreForNow }
                if input.nonBlocking { continue }
                // A terminal or device: readable, hung up (end of input follows) or an error the read reports.
                if let n = try readAvailable() { return n }
            }
        } catch where error.isStopInterruption {
            return DatagramWriter.noMoreForNow
        } catch {
            return -Int(error.errno)
        }
    }
}
