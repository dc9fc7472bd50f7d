#if canImport(Glibc)
import Glibc
#endif
import CLinux
import StreamProtocol
import ZCSystem

/// Batched receive: one `recvmmsg` fills up to ``messagesPerCall`` buffers of 64 KiB. With
/// UDP GRO a buffer holds several datagrams of one flow back to back; the
/// UDP_GRO control message gives their size and the buffer is split here.
final class RecvmmsgEngine {
    static let bufferBytes = 65_536
    /// Buffers start this far into a cache line so every payload of a coalesced buffer is
    /// line-aligned and the fused check's 64-byte loads never straddle two lines.
    static let leadBytes = DatagramHeader.payloadLineLead
    /// Distance between buffers: whole lines, so every buffer has the same lead.
    static let bufferStride = (bufferBytes + leadBytes + 63) / 64 * 64
    /// GRO segment (24) + SO_RXQ_OVFL (24) + IPV6_PKTINFO (40), with room to spare.
    static let controlBytes = 128
    static let nameBytes = MemoryLayout<sockaddr_in6>.size
    /// Buffers one call may fill. The kernel copies into them and validation reads them
    /// right after, so what one call fills should stay in L2: with GRO each buffer may take
    /// 64 KiB (8 of them: 512 KiB; 64 were 4 MiB, and a receiver behind the sender got 64
    /// full ones per call and checked lines long evicted); without it each holds one datagram.
    let messagesPerCall: Int

    private let buffers: UnsafeMutableRawPointer
    private let controls: UnsafeMutableRawPointer
    private let names: UnsafeMutableRawPointer
    private let messages: UnsafeMutablePointer<zc_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>

    /// `coalescing`: UDP_GRO is on for the socket.
    init(coalescing: Bool) {
        messagesPerCall = coalescing ? 8 : 64
        buffers = .allocate(byteCount: messagesPerCall * Self.bufferStride, alignment: 4096)
        controls = .allocate(byteCount: messagesPerCall * Self.controlBytes, alignment: 8)
        names = .allocate(byteCount: messagesPerCall * Self.nameBytes, alignment: 8)
        messages = .allocate(capacity: messagesPerCall)
        iovecs = .allocate(capacity: messagesPerCall)
        for i in 0..<messagesPerCall {
            iovecs[i] = iovec(iov_base: buffer(i), iov_len: Self.bufferBytes)
            messages[i] = zc_mmsghdr()
            messages[i].msg_hdr.msg_iov = iovecs + i
            messages[i].msg_hdr.msg_iovlen = 1
        }
    }

    /// Where buffer `i`'s first byte goes.
    @inline(__always)
    private func buffer(_ i: Int) -> UnsafeMutableRawPointer { buffers + i * Self.bufferStride + Self.leadBytes }

    deinit {
        buffers.deallocate(); controls.deallocate(); names.deallocate(); messages.deallocate(); iovecs.deallocate()
    }

    /// Receives until `shouldStop` says so. `shouldStop` runs after every batch and
    /// after every empty wait (the socket has a short receive timeout).
    func run(socket: borrowing UDPSocket, core: inout ValidatingCore,
             shouldStop: (inout ValidatingCore, UInt64) -> Bool) throws(SystemError) {
        while true {
            for i in 0..<messagesPerCall {
                messages[i].msg_hdr.msg_control = controls + i * Self.controlBytes
                messages[i].msg_hdr.msg_controllen = Self.controlBytes
                messages[i].msg_hdr.msg_name = names + i * Self.nameBytes
                messages[i].msg_hdr.msg_namelen = socklen_t(Self.nameBytes)
            }
            // MSG_WAITFORONE: block for the first datagram only, then take what is queued.
            // Nothing within the receive timeout (nil), or a stop interrupted the wait: check.
            let received: Int?
            do { received = try SocketCalls.receiveMessages(socket.fd, messages, count: messagesPerCall, flags: Int32(MSG_WAITFORONE)) }
            catch where error.isStopInterruption { received = nil }
            let now = MonotonicClock.nanoseconds()
            guard let n = received else {
                if shouldStop(&core, now) { return }
                continue
            }
            let wallNow = MonotonicClock.wallNanoseconds()
            var coalesced: UInt64 = 0
            for i in 0..<Int(n) {
                let length = Int(messages[i].msg_len)
                let base = UnsafeRawPointer(buffer(i))
                // One walk over the control messages: GRO segment, drops, local address.
                var segment32: Int32 = 0, drops: Int64 = -1
                var local = zc_local_address()
                zc_cmsg_parse(&messages[i].msg_hdr, &segment32, &drops, &local)
                let segment = Int(segment32)
                if drops >= 0 { core.noteKernelDrops(UInt64(drops)) }
                if local.family != 0 { core.arrivalAddress = SourceAddress(local: local) }
                let source = SourceAddress(sockaddr: names + i * Self.nameBytes, length: Int(messages[i].msg_hdr.msg_namelen))
                if messages[i].msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0 {
                    // Longer than 64 KiB cannot be one of ours: count it, do not parse a cut copy.
                    core.noteTruncated()
                    continue
                }
                if core.processBuffer(base, length: length, segment: segment, now: now, wallNow: wallNow, source: source) {
                    coalesced &+= 1
                }
            }
            core.flushOutput()
            core.noteReceive(buffers: UInt64(n), coalesced: coalesced)
            if shouldStop(&core, now) { return }
        }
    }
}
