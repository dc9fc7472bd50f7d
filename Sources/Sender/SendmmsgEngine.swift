#if canImport(Glibc)
import Glibc
#endif
import CLinux
import StreamProtocol
import ZCSystem

/// The copying baseline: batches of `sendmmsg` on a blocking socket. Each message is
/// one slot (a GSO super-buffer when GSO is on). The kernel copies at the call, so a
/// slot is free again as soon as the call returns.
struct SendmmsgEngine: ~Copyable {
    static let batch = 64
    var pool: BufferPool
    let segmentsPerSend: Int
    private let messages: UnsafeMutablePointer<zc_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let datagrams: UnsafeMutablePointer<Int32>

    init(configuration c: SenderConfiguration) throws(SystemError) {
        segmentsPerSend = c.segmentsPerSend
        pool = try BufferPool(slots: Self.batch, slotBytes: segmentsPerSend * c.datagramSize)
        messages = .allocate(capacity: Self.batch)
        iovecs = .allocate(capacity: Self.batch)
        datagrams = .allocate(capacity: Self.batch)
        for i in 0..<Self.batch {
            iovecs[i] = iovec(iov_base: pool.address(of: i), iov_len: 0)
            messages[i] = zc_mmsghdr()
            messages[i].msg_hdr.msg_iov = iovecs + i
            messages[i].msg_hdr.msg_iovlen = 1
        }
    }

    deinit {
        messages.deallocate(); iovecs.deallocate(); datagrams.deallocate()
    }

    mutating func run(socket: borrowing UDPSocket, input: PayloadInput?, writer: inout DatagramWriter, configuration c: SenderConfiguration,
                      ticker: inout ProgressTicker, stats: inout SenderStatistics) throws(SystemError) -> StopReason {
        var pacer = Pacer(rate: c.rate)
        let start = MonotonicClock.nanoseconds()
        let limits = ProductionLimits(c, start: start)
        var reason = StopReason.limit
        if writer.isFixedPayload {
            for slot in 0..<pool.count { writer.prepareSlot(pool.address(of: slot), maxSegments: segmentsPerSend) }
        }
        while true {
            let now = MonotonicClock.nanoseconds()
            if let stop = limits.reasonToStop(now: now, writer: writer, stats: stats) { reason = stop; break }
            var count = 0
            while count < Self.batch {
                if pacer != nil {
                    let d = pacer!.delay(now: MonotonicClock.nanoseconds())
                    if d > 0 {
                        if count == 0 { MonotonicClock.sleep(nanoseconds: min(d, 1_000_000)) }
                        break
                    }
                }
                let bytes: Int, n: Int
                if let input {
                    // Payloads read straight into place (pread for files; pipes polled, flushed after the interval).
                    let reader = SourceReader(input, flushIntervalNanoseconds: c.flushIntervalNanoseconds)
                    let r = writer.fill(pool.address(of: count), maxSegments: segmentsPerSend) {
                        reader.read(into: $0, count: $1, streamOffset: $2)
                    }
                    if r.error != 0 { throw SystemError(call: "read(source)", errno: r.error) }
                    (bytes, n) = (r.bytes, r.datagrams)
                } else {
                    (bytes, n) = writer.fill(pool.address(of: count), maxSegments: segmentsPerSend)
                }
                if n == 0 { break }
                iovecs[count].iov_len = bytes
                datagrams[count] = Int32(n)
                pacer?.charge(datagrams: n, bytes: bytes)
                count += 1
                if writer.isExhausted { break }
            }
            try send(count: count, socket: socket, stats: &stats)
            ticker.tick(now: now, start: start, statistics: stats, inFlight: 0)
        }
        // END, a few times, 1 ms apart.
        for i in 0..<c.endRepeats {
            if i > 0 { MonotonicClock.sleep(nanoseconds: 1_000_000) }
            let len = writer.writeEnd(at: pool.address(of: 0))
            stats.sends &+= 1
            if Glibc.send(socket.fd, pool.address(of: 0), len, 0) == len { stats.endsSent += 1 }
        }
        return reason
    }

    /// Sends messages [0, count), retrying transient errors, skipping a message the
    /// kernel refused for good (and counting it).
    private func send(count: Int, socket: borrowing UDPSocket, stats: inout SenderStatistics) throws(SystemError) {
        var first = 0
        while first < count {
            let rc = zc_sendmmsg(socket.fd, messages + first, UInt32(count - first), 0)
            if rc > 0 {
                for i in first..<(first + Int(rc)) {
                    stats.datagrams &+= UInt64(datagrams[i])
                    stats.bytes &+= UInt64(iovecs[i].iov_len)
                }
                stats.sends &+= UInt64(rc)
                first += Int(rc)
                continue
            }
            let code = errno
            switch code {
            case EINTR:
                if StopFlag.isSet { stats.datagramsFailed &+= UInt64((first..<count).reduce(0) { $0 + Int(datagrams[$1]) }); return }
            case ENOBUFS, EAGAIN, ENOMEM:
                stats.retries &+= 1
                MonotonicClock.sleep(nanoseconds: 10_000)
            default:
                // This message failed (ECONNREFUSED, EMSGSIZE, ...): count it and move on.
                stats.errors[code, default: 0] += 1
                stats.datagramsFailed &+= UInt64(datagrams[first])
                stats.sends &+= 1
                first += 1
            }
        }
    }
}
