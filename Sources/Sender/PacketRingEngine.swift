#if canImport(Glibc)
import Glibc
#endif
import CLinux
import StreamProtocol
import ZCSystem

/// Raw mode: whole Ethernet/IP/UDP frames written in place into an AF_PACKET
/// TPACKET_V2 TX ring, kicked with one `sendto` per batch. One datagram per frame, or
/// several (GSO after the ring) when ``PacketRingTarget/segmentation`` says so.
///
/// Frame lifecycle: AVAILABLE (ours) -> lent (always the head frame, in ring order) ->
/// filled, headers and checksums written, tp_len, SEND_REQUEST published with release
/// ordering (``commit(_:length:datagrams:isEnd:stats:)``) -> the kick: the kernel walks
/// SEND_REQUEST frames from its own head in ring order, attaching each frame's pages to
/// an skb (SENDING) -> the skb is freed -> AVAILABLE. A frame is lent only when it is
/// AVAILABLE again and has been accounted, so the kernel never sees a half-written
/// frame and no frame is counted twice. On ENOBUFS (a queue or the device dropped the
/// frame) the kernel leaves the frame at SEND_REQUEST: it is kicked again, never dropped.
final class PacketRingEngine: SendEngine {
    private var socket: PacketRingSocket
    let geometry: PacketRingGeometry
    let requestedSendBuffer: Int32
    let frameSize: Int
    let frameCount: Int
    let builder: FrameBuilder
    let target: PacketRingTarget
    /// The kernel reads from here in each frame: a virtio_net_hdr in copy mode,
    /// else the Ethernet header.
    let dataOffset = Int(zc_tpacket2_data_offset)
    /// The Ethernet header starts here; the UDP payload (our datagram) `builder.headerLength` bytes on.
    let ethernetOffset: Int
    /// Bytes in front of the Ethernet header that tp_len counts (the virtio_net_hdr).
    let vnetBytes: Int
    /// The UDP payload (our datagram) starts here in each frame: after the
    /// Ethernet (+ VLAN) + IP + UDP headers.
    let payloadOffset: Int
    /// Per frame: the UDP payload length, its datagrams, and whether it is an END datagram.
    private let frameUDPLength: UnsafeMutablePointer<Int32>
    private let frameDatagrams: UnsafeMutablePointer<Int32>
    private let frameIsEnd: UnsafeMutablePointer<Bool>
    /// Datagrams a frame carries at most (more than 1: GSO after the ring).
    let segmentsPerSlot: Int
    /// The segment size the kernel cuts GSO frames at: one whole datagram.
    let datagramSize: Int
    /// Copy mode: the kernel copies the whole frame into the skb; else only the headers.
    let copiesWholeFrame: Bool
    private(set) var report: PacketRingReport

    /// Most frames published before a kick.
    static let batch = 256
    /// How long the ring may make no progress (every kick refused) before the run fails.
    static let stallNanoseconds: UInt64 = 2_000_000_000
    /// How long the end of the run waits for the kernel to release every frame.
    static let releaseNanoseconds: UInt64 = 5_000_000_000

    private var head = 0        // next frame to fill
    private var tail = 0        // oldest submitted frame not yet accounted
    private var submitted = 0   // frames between tail and head
    private var unkicked = 0    // frames published that the kernel has not taken yet
    private var ipID: UInt16 = 0
    private var lastKickError: Int32 = 0
    /// ENDs a rejected ring took down, for the driver to send again.
    private var endsLost = 0
    /// Set when the kernel rejected a frame (TP_STATUS_WRONG_FORMAT): data stops.
    private(set) var halted = false
    /// When a frame last moved (or the queue last started from empty): a stall is
    /// measured from here.
    private var lastProgress: UInt64 = 0
    /// A pushed stream kicks every this many published frames (a quarter of the ring,
    /// at most `batch`), so the producer fills while the kernel sends.
    let kickBatch: Int

    /// `--pool` slots become ring frames: power-of-two frames that hold the largest
    /// frame, in blocks of a page. The default 256 frames keep the ring in cache
    /// (1472-byte datagrams: 512 KiB); measured on the sink veth, 8192 frames (16 MiB)
    /// ran 15% slower than 256-512.
    init(configuration c: SenderConfiguration, target: PacketRingTarget) throws(SystemError) {
        self.target = target
        builder = FrameBuilder(target.addressing)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        segmentsPerSlot = target.segmentation.segments
        datagramSize = c.datagramSize
        copiesWholeFrame = target.transfer == .copy
        vnetBytes = target.usesVirtioNetHeader ? VirtioNetHeader.size : 0
        ethernetOffset = Int(zc_tpacket2_data_offset) + vnetBytes
        payloadOffset = ethernetOffset + builder.headerLength
        // A GSO frame holds up to 64 KiB: fewer frames hold as many datagrams (32 frames: 2 MiB).
        let slots = segmentsPerSlot > 1 ? max(32, c.poolSlots / segmentsPerSlot) : c.poolSlots
        let g = PacketRingGeometry(slots: slots, maxFrameLength: target.maxFrameLength + vnetBytes, pageSize: page)
        socket = try PacketRingSocket(target: target, geometry: g, sendBufferBytes: c.sendBufferBytes)
        geometry = g
        frameSize = g.frameSize
        frameCount = g.frames
        requestedSendBuffer = c.sendBufferBytes
        frameUDPLength = .allocate(capacity: g.frames); frameUDPLength.initialize(repeating: 0, count: g.frames)
        frameDatagrams = .allocate(capacity: g.frames); frameDatagrams.initialize(repeating: 0, count: g.frames)
        frameIsEnd = .allocate(capacity: g.frames); frameIsEnd.initialize(repeating: false, count: g.frames)
        kickBatch = max(1, min(Self.batch, g.frames / 4))
        ipID = UInt16(truncatingIfNeeded: c.streamID)
        let a = target.addressing
        report = PacketRingReport(interface: target.interface.name, interfaceIndex: target.interface.index,
                                  mtu: target.interface.mtu, sourceMAC: a.sourceMAC, destinationMAC: a.destinationMAC,
                                  destinationMACSource: target.destinationMACSource, nextHop: target.nextHop,
                                  source: a.isIPv6 ? "[\(a.source)]:\(a.sourcePort)" : "\(a.source):\(a.sourcePort)",
                                  dontFragment: a.dontFragment && !a.isIPv6, vlan: a.vlan?.description,
                                  segmentsPerFrame: target.segmentation.segments, gso: target.segmentation.note,
                                  udpChecksum: target.usesVirtioNetHeader ? "offloaded" : "software",
                                  qdiscBypass: target.qdiscBypass, transfer: target.transfer,
                                  transferChoice: target.transferChoice, maxFrameLength: target.maxFrameLength,
                                  frameSize: g.frameSize, frames: g.frames, blockSize: g.blockSize)
        lastProgress = MonotonicClock.nanoseconds()
    }

    deinit {
        frameUDPLength.deallocate(); frameDatagrams.deallocate(); frameIsEnd.deallocate()
    }

    /// The send buffer the kernel granted the ring's socket.
    var sendBufferBytes: Int32 { socket.sendBufferBytes }

    @inline(__always) private func frame(_ i: Int) -> UnsafeMutableRawPointer { socket.ring + i &* frameSize }
    @inline(__always) private func next(_ i: Int) -> Int { i + 1 == frameCount ? 0 : i + 1 }
    /// The next frame in ring order is ours to fill: handed back and accounted.
    @inline(__always) private var headAvailable: Bool {
        submitted < frameCount && zc_tp_status_load(frame(head)) == zc_tp_status_available
    }

    // MARK: SendEngine

    var slotCount: Int { frameCount }
    /// Where frame `i`'s UDP payload (our datagrams) goes.
    @inline(__always) func address(of i: Int) -> UnsafeMutableRawPointer { socket.ring + i &* frameSize + payloadOffset }
    @inline(__always) var hasFreeSlot: Bool { unkicked < Self.batch && headAvailable }
    /// Frames go out in ring order: the head frame, again until it is committed.
    @inline(__always) func lend() -> Int? { hasFreeSlot ? head : nil }
    /// The frame stays AVAILABLE: nothing to undo.
    func giveBack(_ slot: Int) {}
    var queued: Int { unkicked }
    var pushBatch: Int { kickBatch }
    /// Frames published and not yet taken by the kernel, or taken and not yet accounted.
    var inFlight: Int { submitted }
    var haltError: SendEngineError? { halted ? .frameRejected(interface: target.interface.name) : nil }

    func takeLostEnds() -> Int {
        defer { endsLost = 0 }
        return endsLost
    }

    /// Headers, checksums, tp_len, then SEND_REQUEST with release ordering.
    @inline(__always)
    func commit(_ i: Int, length: Int, datagrams: Int, isEnd: Bool, stats: inout SenderStatistics) throws(SendEngineError) {
        precondition(i == head && headAvailable, "commit(\(i)): not the lent frame")
        if submitted == 0 { lastProgress = MonotonicClock.nanoseconds() }  // a stall counts from here
        publish(i, udpLength: length, datagrams: max(datagrams, 1), isEnd: isEnd)
        stats.sends &+= 1
    }

    /// Kicks what is published and accounts what the kernel took; then waits: after a
    /// refused kick 20 µs for the queue to drain, for a slot up to 1 ms for the kernel to
    /// hand the head frame back.
    func service(_ wait: ServiceWait, stats: inout SenderStatistics) throws(SendEngineError) {
        let refused = try kickAndAccount(now: MonotonicClock.nanoseconds(), stats: &stats)
        if refused {
            MonotonicClock.sleep(nanoseconds: 20_000)
            return
        }
        switch wait {
        case .none:
            return
        case .untilSlotFree:
            if submitted > 0 && !headAvailable { socket.waitForFrame(milliseconds: 1) }
        case .upTo(let ns):
            if submitted > 0 && !headAvailable { socket.waitForFrame(milliseconds: 1) }
            else { MonotonicClock.sleep(nanoseconds: min(ns, 1_000_000)) }
        }
    }

    /// Waits (bounded) until the kernel has released every frame, so the ring is
    /// unmapped only once nothing refers to it; reports the frames still held.
    func settle() {
        let deadline = MonotonicClock.nanoseconds() + Self.releaseNanoseconds
        while true {
            let held = framesHeld
            if held == 0 || MonotonicClock.nanoseconds() >= deadline {
                report.framesInFlightAtExit = held
                return
            }
            socket.waitForFrame(milliseconds: 1)
        }
    }

    func annotate(_ r: inout SenderReport) {
        r.packetRing = report
        r.sendBufferBytes = sendBufferBytes
    }

    /// Frames the kernel has not handed back (queued, being sent, or rejected).
    var framesHeld: Int {
        var held = 0
        for i in 0..<frameCount where zc_tp_status_load(frame(i)) != zc_tp_status_available { held += 1 }
        return held
    }

    // MARK: The ring

    /// Kicks what is published, accounts what the kernel took. Returns true when
    /// the kernel refused frames for now (they stay queued). Throws once it has
    /// refused them, with nothing moving, for `stallNanoseconds`.
    private func kickAndAccount(now: UInt64, stats: inout SenderStatistics) throws(SendEngineError) -> Bool {
        var refused = false
        if unkicked > 0 { refused = try kick(stats: &stats) }
        if try account(stats: &stats) { lastProgress = now }
        if refused && now > lastProgress && now - lastProgress > Self.stallNanoseconds {
            throw .system(SystemError(call: "packet ring: '\(target.interface.name)' refused every frame for \(Self.stallNanoseconds / 1_000_000_000) s "
                                      + "(\(submitted) queued; is its link or its peer down?)", errno: lastKickError))
        }
        return refused
    }

    /// A frame of several datagrams (`udpLength` bytes of back-to-back whole datagrams,
    /// all `datagramSize` but the last) asks the kernel to segment it.
    @inline(__always)
    private func publish(_ i: Int, udpLength: Int, datagrams: Int, isEnd: Bool) {
        let f = frame(i)
        let length: Int
        if datagrams > 1 {
            length = builder.finishForSegmentation(f + ethernetOffset, payloadLength: udpLength, ipID: ipID)
            ipID &+= UInt16(truncatingIfNeeded: datagrams) // the kernel numbers the segments from here
            VirtioNetHeader.writeSegmentation(at: f + dataOffset, linearBytes: linearBytes(length), segmentSize: datagramSize,
                                              udpOffset: builder.udpOffset)
        } else if vnetBytes > 0 {
            // The virtio_net_hdr is there anyway: let the kernel/NIC finish the UDP checksum.
            length = builder.finishForSegmentation(f + ethernetOffset, payloadLength: udpLength, ipID: ipID)
            ipID &+= 1
            VirtioNetHeader.writeChecksumOffload(at: f + dataOffset, linearBytes: linearBytes(length), udpOffset: builder.udpOffset)
        } else {
            length = builder.finish(f + ethernetOffset, payloadLength: udpLength, ipID: ipID)
            ipID &+= 1
        }
        zc_tp_set_len(f, UInt32(length + vnetBytes))
        frameUDPLength[i] = Int32(udpLength)
        frameDatagrams[i] = Int32(datagrams)
        frameIsEnd[i] = isEnd
        zc_tp_status_store(f, zc_tp_status_send_request)
        head = next(i)
        submitted += 1
        unkicked += 1
    }

    /// How much of a frame the kernel copies into the skb's own buffer (hdr_len):
    /// all of it in copy mode; else the headers, the payload staying in the ring's pages.
    @inline(__always) private func linearBytes(_ frameLength: Int) -> Int { copiesWholeFrame ? frameLength : builder.headerLength }

    /// One sendto for every published frame. Returns true when the kernel refused
    /// to take frames for now (ENOBUFS/EAGAIN): they stay queued for the next kick.
    private func kick(stats: inout SenderStatistics) throws(SendEngineError) -> Bool {
        report.kicks &+= 1
        let e: Int32
        do {
            if try SocketCalls.kickPacketRing(socket.fd) != nil { unkicked = 0; return false }
            e = EAGAIN
        } catch {
            e = error.errno
        }
        lastKickError = e
        switch e {
        case ENOBUFS, EAGAIN, ENOMEM:
            report.kicksRetried &+= 1
            stats.retries &+= 1
            return true
        case EINTR:
            // A stop interrupted the kick: the frames stay queued for the next one.
            return false
        case EMSGSIZE, EINVAL:
            // A frame the kernel could not send: it is marked WRONG_FORMAT, and
            // `account` deals with it.
            return false
        default:
            throw .system(SystemError(call: "sendto(packet ring, \(target.interface.name))", errno: e))
        }
    }

    /// Accounts frames the kernel has taken (SENDING or already AVAILABLE), in ring
    /// order. Returns true when any frame moved.
    private func account(stats: inout SenderStatistics) throws(SendEngineError) -> Bool {
        var moved = false
        while submitted > 0 {
            let f = frame(tail)
            let status = zc_tp_status_load(f)
            if status == zc_tp_status_send_request { break }
            if status & zc_tp_status_wrong_format != 0 {
                try halt(stats: &stats)
                return true
            } else if frameIsEnd[tail] {
                stats.endsSent &+= 1
            } else {
                stats.datagrams &+= UInt64(frameDatagrams[tail])
                stats.bytes &+= UInt64(frameUDPLength[tail])
            }
            tail = next(tail)
            submitted -= 1
            moved = true
        }
        // Frames the kernel has not taken yet (a refused or partial kick) need
        // another kick, whether or not anything new was published.
        unkicked = submitted > 0 && zc_tp_status_load(frame(tail)) == zc_tp_status_send_request ? submitted : 0
        return moved
    }

    /// The kernel rejected the frame at `tail` (TP_STATUS_WRONG_FORMAT: too long for
    /// the device, which only happens if its MTU shrank during the run). It then
    /// stops at that frame for good: it never steps over a rejected frame unless
    /// PACKET_LOSS was set before the ring, and PACKET_LOSS would skip such frames
    /// silently. So: count the rejected frame and every frame queued behind it as
    /// failed, halt (the driver stops producing), and open a fresh ring for the END
    /// datagrams (small frames, which still fit), so the receiver learns the totals.
    private func halt(stats: inout SenderStatistics) throws(SendEngineError) {
        let code = lastKickError != 0 ? lastKickError : EMSGSIZE
        report.wrongFormat &+= 1
        var i = tail
        for _ in 0..<submitted {
            if frameIsEnd[i] {
                endsLost += 1  // never sent: the driver sends it again through the new ring
            } else {
                stats.errors[code, default: 0] += 1
                stats.datagramsFailed &+= UInt64(frameDatagrams[i])
            }
            i = next(i)
        }
        if halted {
            throw .frameRejected(interface: target.interface.name)
        }
        halted = true
        do { socket = try PacketRingSocket(target: target, geometry: geometry, sendBufferBytes: requestedSendBuffer) }
        catch { throw .system(error) }
        head = 0; tail = 0; submitted = 0; unkicked = 0
        report.ringsReopened += 1
    }
}
