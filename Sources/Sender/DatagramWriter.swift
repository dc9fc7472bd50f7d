import StreamProtocol
import ZCSystem

/// Writes a stream's datagrams, whole and sealed, into slot memory in place.
///
/// Sequence numbers start at 0; datagram `s` carries stream bytes
/// `[s * payloadSize, (s + 1) * payloadSize)`, the last one possibly shorter, so
/// every datagram's offset follows from its sequence number alone. That keeps
/// injected faults (skips, swaps) from disturbing any other datagram. A live source
/// (a pipe) is the exception: a datagram flushed short after the flush interval moves
/// the offsets after it (``fill(_:maxSegments:reading:)``).
package struct DatagramWriter {
    /// The stream id written into every header.
    package let streamID: UInt64
    /// Bytes per full datagram, header included (the UDP payload size).
    package let datagramSize: Int
    /// Payload bytes per full datagram: ``datagramSize`` less the 48-byte header (and, keyed,
    /// the 40-byte trailer).
    package let payloadSize: Int
    /// A keyed stream's sealing (SPEC §14); nil for a plain stream (CRC32C).
    package let keying: StreamKeying?
    /// The next packet number (the nonce) a keyed stream seals with: +1 per datagram sealed
    /// (the counter is the keying's, shared with the reliable sender's repairs).
    package var nextPacketNumber: UInt64 { keying?.nextPacketNumber ?? 0 }
    /// Sequence numbers in the stream, when known up front (count or byte limit).
    package private(set) var totalDatagrams: UInt64?
    /// Payload bytes in the stream, when a byte limit bounds it.
    package private(set) var totalBytes: UInt64?
    /// Flags of data datagrams: PATTERN only when the writer makes the payload.
    package let dataFlags: DatagramFlags
    /// Flags of the END: with ``dataFlags``'s RELIABLE (a reliable stream's datagrams are
    /// all version 3, SPEC §13.2).
    package let endFlags: DatagramFlags

    /// The next sequence number to write in order.
    package private(set) var nextSequence: UInt64 = 0
    /// Data datagrams written (duplicates included, skipped ones not).
    package private(set) var datagramsWritten: UInt64 = 0
    /// Bytes of those datagrams (headers included): what goes on the wire as UDP payload.
    package private(set) var bytesWritten: UInt64 = 0
    /// Payload bytes of the stream covered so far (for the END totals).
    package private(set) var payloadBytesCovered: UInt64 = 0
    /// Faults actually applied (they need a long enough stream).
    package private(set) var injected = InjectedFaults()

    private var faults: FaultSchedule
    /// The count limit alone (`--count`), apart from what a byte limit implies.
    private let datagramLimit: UInt64?
    /// `--source fixed`: the CRC32C of the one payload every slot holds, and the zeros
    /// operator that shifts a header's CRC past it.
    private let fixed: (crc: UInt32, combiner: CRC32C.Combiner)?
    /// True when every data datagram carries the same payload, placed by ``prepareSlot(_:maxSegments:)``.
    package var isFixedPayload: Bool { fixed != nil }

    /// `patternPayload: false` when the payload comes from elsewhere (a file, stdin,
    /// the application) and is placed by the caller before `seal(...)`.
    /// `fixedPayload: true` (`--source fixed`): one payload, written into each slot once by
    /// ``prepareSlot(_:maxSegments:)``; `fill` then writes headers only.
    package init(streamID: UInt64, datagramSize: Int, limit: StreamLimit, faults: FaultInjection,
                patternPayload: Bool = true, fixedPayload: Bool = false, reliable: Bool = false,
                keying: StreamKeying? = nil) {
        let mode: DatagramFlags = reliable ? [.reliable] : []
        self.keying = keying
        let overhead = DatagramHeader.size + (keying == nil ? 0 : AuthTrailer.size)
        self.dataFlags = mode.union(patternPayload && !fixedPayload ? [.data, .pattern] : [.data])
        self.endFlags = mode.union(.end)
        if fixedPayload {
            let payload = datagramSize - overhead
            let crc = withUnsafeTemporaryAllocation(byteCount: max(payload, 1), alignment: 64) { b in
                PayloadPattern.fillChecksummed(b.baseAddress!, count: payload, streamID: streamID, offset: 0)
            }
            self.fixed = (crc, CRC32C.Combiner(lengthB: payload))
        } else {
            self.fixed = nil
        }
        self.streamID = streamID
        self.datagramSize = datagramSize
        self.payloadSize = datagramSize - overhead
        self.datagramLimit = limit.datagrams
        var total: UInt64? = limit.datagrams
        if let bytes = limit.payloadBytes, payloadSize > 0 {
            let fromBytes = (bytes + UInt64(payloadSize) - 1) / UInt64(payloadSize)
            total = min(total ?? .max, fromBytes)
        }
        self.totalDatagrams = total
        self.totalBytes = limit.payloadBytes
        self.faults = FaultSchedule(faults)
    }

    /// True once every sequence number of a bounded stream was written.
    @inline(__always) package var isExhausted: Bool {
        guard let totalDatagrams else { return false }
        return nextSequence >= totalDatagrams
    }

    /// Payload length of datagram `s`.
    @inline(__always) func payloadLength(of s: UInt64) -> Int {
        guard let totalBytes else { return payloadSize }
        let offset = s &* UInt64(payloadSize)
        return Int(min(UInt64(payloadSize), totalBytes &- offset))
    }

    /// Fills up to `maxSegments` datagrams at `slot`, back to back. All but the
    /// last are exactly `datagramSize` (GSO requires it). Returns bytes and datagrams
    /// written; (0, 0) once the stream is exhausted.
    @inline(__always)
    package mutating func fill(_ slot: UnsafeMutableRawPointer, maxSegments: Int) -> (bytes: Int, datagrams: Int) {
        let now = MonotonicClock.wallNanoseconds()
        var position = 0
        var written = 0
        if fixed != nil { PayloadPattern.prefetchForWrite(slot, stride: datagramSize, count: maxSegments) }
        while written < maxSegments && !isExhausted {
            let s = nextSequence
            if s == faults.nextFaultSequence {
                // Rare: a scheduled fault. Needs room for two datagrams for swap/duplicate.
                let room = maxSegments - written
                switch faults.kind(at: s) {
                case .skip:
                    nextSequence += 1
                    injected.skipped += 1
                    faults.consume(at: s)
                    continue
                case .corrupt:
                    let len = writeDatagram(s, at: slot + position, timestamp: now)
                    // Flip one payload byte after sealing: the checksum no longer matches.
                    let victim = slot + position + DatagramHeader.size + (len - DatagramHeader.size) / 2
                    victim.storeBytes(of: victim.load(as: UInt8.self) ^ 0x5A, as: UInt8.self)
                    position += len; written += 1; nextSequence += 1
                    injected.corrupted += 1
                    faults.consume(at: s)
                    continue
                case .reorder:
                    guard s + 1 < (totalDatagrams ?? .max) else {
                        faults.consume(at: s); continue
                    }
                    if room < 2 || payloadLength(of: s + 1) != payloadSize { return (position, written) }
                    position += writeDatagram(s + 1, at: slot + position, timestamp: now)
                    position += writeDatagram(s, at: slot + position, timestamp: now)
                    written += 2; nextSequence += 2
                    injected.reordered += 1
                    faults.consume(at: s)
                    continue
                case .duplicate:
                    if room < 2 || payloadLength(of: s) != payloadSize { return (position, written) }
                    position += writeDatagram(s, at: slot + position, timestamp: now)
                    position += writeDatagram(s, at: slot + position, timestamp: now)
                    written += 2; nextSequence += 1
                    injected.duplicated += 1
                    faults.consume(at: s)
                    continue
                case .none:
                    faults.consume(at: s)
                }
            }
            let len = writeDatagram(s, at: slot + position, timestamp: now)
            position += len
            written += 1
            nextSequence += 1
            if len != datagramSize { break } // a short datagram must end a GSO send
        }
        return (position, written)
    }

    /// `--source fixed`: writes the one payload at every datagram position of a slot of
    /// `maxSegments` datagrams. Call once per slot when the pool is set up.
    package func prepareSlot(_ slot: UnsafeMutableRawPointer, maxSegments: Int) {
        for k in 0..<maxSegments {
            PayloadPattern.fill(slot + k * datagramSize + DatagramHeader.size, count: payloadSize, streamID: streamID, offset: 0)
        }
    }

    /// One sealed datagram for sequence `s`; returns its length.
    @inline(__always)
    mutating func writeDatagram(_ s: UInt64, at p: UnsafeMutableRawPointer, timestamp: UInt64) -> Int {
        let payload = payloadLength(of: s)
        let offset = s &* UInt64(payloadSize)
        if keying != nil {
            writeHeader(s, payload: payload, at: p, timestamp: timestamp, offset: offset)
            if isFixedPayload {
                // Encryption overwrote the slot's payload with its ciphertext: put it back.
                if keying?.suite == .encrypted || payload != payloadSize { fillPayload(p, payload: payload, offset: 0) }
            } else {
                fillPayload(p, payload: payload, offset: offset)
            }
            sealKeyed(p, payload: payload, isData: true)
            return account(payload: payload, offset: offset)
        }
        if let fixed {
            // The payload is already in the slot: only the header is new, and
            // crc(header ‖ payload) = shift(crc(header), payload) ^ crc(payload).
            writeHeader(s, payload: payload, at: p, timestamp: timestamp, offset: offset)
            if payload == payloadSize {
                fixed.combiner.seal(p, payloadCRC: fixed.crc)
            } else { // a short last one
                let head = CRC32C.checksum(UnsafeRawPointer(p), count: DatagramHeader.size)
                let crc = CRC32C.checksum(UnsafeRawPointer(p + DatagramHeader.size), count: payload, continuing: head)
                p.storeBytes(of: crc.bigEndian, toByteOffset: DatagramHeader.checksumOffset, as: UInt32.self)
            }
            return account(payload: payload, offset: offset)
        }
        // One pass: the header's CRC continues through the payload as it is generated.
        writeHeader(s, payload: payload, at: p, timestamp: timestamp, offset: offset)
        Datagram.sealPattern(p, payloadLength: payload, streamID: streamID, offset: offset)
        return account(payload: payload, offset: offset)
    }

    /// The header for sequence `s` (checksum field 0) at `p`: version 4 when keyed.
    @inline(__always)
    func writeHeader(_ s: UInt64, payload: Int, at p: UnsafeMutableRawPointer, timestamp: UInt64, offset: UInt64) {
        let header = DatagramHeader(flags: dataFlags, streamID: streamID, sequence: s, offset: offset,
                                    timestampNanoseconds: timestamp, payloadLength: UInt32(payload))
        if keying != nil { header.write(to: p, version: KeyedDatagram.version) } else { header.write(to: p) }
    }

    /// The pattern payload (no CRC: a keyed datagram's tag replaces it).
    @inline(__always)
    func fillPayload(_ p: UnsafeMutableRawPointer, payload: Int, offset: UInt64) {
        PayloadPattern.fill(p + DatagramHeader.size, count: payload, streamID: streamID, offset: offset)
    }

    /// Appends the trailer to the keyed datagram at `p` and seals it with the next packet
    /// number. Only DATA is ever encrypted (SPEC §14.3).
    @inline(__always)
    mutating func sealKeyed(_ p: UnsafeMutableRawPointer, payload: Int, isData: Bool) {
        guard let keying else { return }
        keying.authenticator.seal(p, payloadLength: payload,
                                  trailer: AuthTrailer(keyID: keying.keyID, suite: isData ? keying.suite : .authenticated,
                                                       origin: 0, packetNumber: keying.takePacketNumber()))
    }

    /// Counts a datagram written; returns its length.
    @inline(__always)
    mutating func account(payload: Int, offset: UInt64) -> Int {
        let length = DatagramHeader.size + payload + (keying == nil ? 0 : AuthTrailer.size)
        datagramsWritten &+= 1
        bytesWritten &+= UInt64(length)
        payloadBytesCovered = max(payloadBytesCovered, offset + UInt64(payload))
        return length
    }

    /// Writes the header for sequence `s` in front of a payload already at
    /// `p + 48` and seals the datagram; returns its length.
    @inline(__always)
    mutating func sealDatagram(_ s: UInt64, payload: Int, at p: UnsafeMutableRawPointer, timestamp: UInt64,
                               offset: UInt64? = nil) -> Int {
        let offset = offset ?? s &* UInt64(payloadSize)
        writeHeader(s, payload: payload, at: p, timestamp: timestamp, offset: offset)
        if keying != nil { sealKeyed(p, payload: payload, isData: true) } else { Datagram.seal(p, length: DatagramHeader.size + payload) }
        return account(payload: payload, offset: offset)
    }

    // MARK: External payloads (files, stdin, the application)

    /// Reserves up to `maxSegments` sequence numbers for a slot whose payloads the
    /// caller will place (e.g. by one vectored file read into the slot's payload positions).
    /// Returns the first sequence number and the count; 0 once exhausted.
    package mutating func reserve(maxSegments: Int) -> (first: UInt64, count: Int) {
        let first = nextSequence
        var count = 0
        while count < maxSegments && !isExhausted {
            let len = payloadLength(of: nextSequence)
            nextSequence += 1
            count += 1
            if len != payloadSize { break }
        }
        return (first, count)
    }

    /// Where datagram `k` of a slot starts, and its payload length.
    @inline(__always)
    package func layout(first: UInt64, index k: Int) -> (datagramOffset: Int, payloadLength: Int, streamOffset: UInt64) {
        let s = first + UInt64(k)
        return (k * datagramSize, payloadLength(of: s), s &* UInt64(payloadSize))
    }

    /// Seals `count` datagrams reserved by `reserve` whose payloads are in place.
    /// Returns the slot's byte length.
    package mutating func seal(_ slot: UnsafeMutableRawPointer, first: UInt64, count: Int) -> Int {
        let now = MonotonicClock.wallNanoseconds()
        var position = 0
        for k in 0..<count {
            let (at, payload, _) = layout(first: first, index: k)
            position = at + sealDatagram(first + UInt64(k), payload: payload, at: slot + at, timestamp: now)
        }
        return position
    }

    /// What a reader passed to ``fill(_:maxSegments:reading:)`` returns when no more bytes
    /// are to be had for now (a pipe quiet for the flush interval, or a stop requested):
    /// the datagram read so far is sealed as it is and the slot ends there.
    package static let noMoreForNow = Int.min

    /// Fills a slot from a reader that may end or pause at any time (stdin, a pipe, a
    /// file): each payload is read straight into place, then sealed. `read(destination,
    /// count, streamOffset)` returns bytes read, 0 at end of input, ``noMoreForNow``, or
    /// -errno. Offsets run with the bytes actually read, so a datagram flushed short in
    /// the middle of the stream shifts the ones after it, and the receiver places every
    /// byte where the source had it. At end of input the stream's totals become known and
    /// the writer is exhausted. Returns 0 datagrams, not exhausted, when nothing arrived.
    package mutating func fill(_ slot: UnsafeMutableRawPointer, maxSegments: Int,
                              reading read: (UnsafeMutableRawPointer, Int, UInt64) -> Int) -> (bytes: Int, datagrams: Int, error: Int32) {
        var position = 0
        var written = 0
        while written < maxSegments && !isExhausted {
            let s = nextSequence
            let streamOffset = payloadBytesCovered
            let want = totalBytes.map { Int(min(UInt64(payloadSize), $0 &- streamOffset)) } ?? payloadSize
            var got = 0
            var paused = false
            while got < want {
                let n = read(slot + position + DatagramHeader.size + got, want - got, streamOffset + UInt64(got))
                if n == Self.noMoreForNow { paused = true; break }
                if n < 0 { return (position, written, Int32(-n)) }
                if n == 0 { break }
                got += n
            }
            if got == 0 && want > 0 {
                if !paused { endOfInput() }
                break
            }
            position += sealDatagram(s, payload: got, at: slot + position, timestamp: MonotonicClock.wallNanoseconds(),
                                     offset: streamOffset)
            written += 1
            nextSequence += 1
            if got < want {
                // A short datagram must end a GSO send; at end of input it ends the stream.
                if paused { recountAfterShortDatagram() } else { endOfInput() }
                break
            }
        }
        return (position, written, 0)
    }

    /// Seals the next datagram of a stream whose payloads vary in size (the
    /// application's): the payload of `payload` bytes is already at `p + 48`, its
    /// offset is the running total of payload bytes. Returns the datagram length.
    package mutating func append(at p: UnsafeMutableRawPointer, payload: Int, timestamp: UInt64) -> Int {
        let length = sealDatagram(nextSequence, payload: payload, at: p, timestamp: timestamp, offset: payloadBytesCovered)
        nextSequence += 1
        return length
    }

    /// A datagram flushed short in mid-stream: a byte limit now needs more datagrams
    /// than it did when every datagram was full.
    private mutating func recountAfterShortDatagram() {
        guard let totalBytes, payloadSize > 0 else { return }
        let remaining = totalBytes &- payloadBytesCovered
        let needed = nextSequence + (remaining + UInt64(payloadSize) - 1) / UInt64(payloadSize)
        totalDatagrams = min(datagramLimit ?? .max, needed)
    }

    /// The input ended: what was written is the whole stream.
    private mutating func endOfInput() {
        totalDatagrams = nextSequence
        totalBytes = payloadBytesCovered
    }

    /// Writes the END datagram (totals so far) at `p`; returns its length. Keyed, each copy
    /// takes its own packet number.
    package mutating func writeEnd(at p: UnsafeMutableRawPointer) -> Int {
        let totals = EndOfStream(datagrams: nextSequence, bytes: payloadBytesCovered)
        let header = DatagramHeader(flags: endFlags, streamID: streamID, sequence: nextSequence,
                                    offset: payloadBytesCovered, timestampNanoseconds: MonotonicClock.wallNanoseconds(),
                                    payloadLength: UInt32(EndOfStream.payloadSize))
        totals.write(to: p + DatagramHeader.size)
        if keying != nil {
            header.write(to: p, version: KeyedDatagram.version)
            sealKeyed(p, payload: EndOfStream.payloadSize, isData: false)
            return DatagramHeader.size + EndOfStream.payloadSize + AuthTrailer.size
        }
        return Datagram.encode(header, at: p)
    }
}

/// How a keyed stream's source seals (SPEC §14): its key's context, the secret's key id,
/// whether DATA payloads are encrypted, and the packet number counter. One per stream,
/// shared (a reference) by the writer (DATA, END) and a reliable stream's sender half
/// (repairs, which reseal with a new number): one key, one nonce space, one counter.
/// Used by the stream's thread only.
package final class StreamKeying: @unchecked Sendable {
    package let authenticator: DatagramAuthenticator
    package let keyID: UInt32
    package let suite: AuthTrailer.Suite
    /// The secret and stream: a reliable sender derives its receivers' keys from them.
    package let secret: StreamSecret
    package let streamID: UInt64
    /// The next packet number (the nonce) to seal with: +1 per datagram sealed.
    package private(set) var nextPacketNumber: UInt64 = 0

    /// The source's sealing for stream `streamID` under `secret`.
    package init(secret: StreamSecret, streamID: UInt64, encrypt: Bool) {
        authenticator = DatagramAuthenticator(key: secret.sourceKey(streamID: streamID), sealing: true)
        keyID = secret.keyID
        suite = encrypt ? .encrypted : .authenticated
        self.secret = secret
        self.streamID = streamID
    }

    /// The packet number for the next datagram sealed (never reused).
    @inline(__always)
    package func takePacketNumber() -> UInt64 {
        let n = nextPacketNumber
        nextPacketNumber &+= 1
        return n
    }
}

/// Faults the writer applied, reported so tests can compare with the receiver.
public struct InjectedFaults: Equatable, Sendable, Codable {
    /// Datagrams whose payload was altered after sealing.
    public var corrupted: UInt64 = 0
    /// Sequence numbers never sent.
    public var skipped: UInt64 = 0
    /// Adjacent pairs sent swapped.
    public var reordered: UInt64 = 0
    /// Datagrams sent twice.
    public var duplicated: UInt64 = 0
    /// No faults applied.
    public init() {}
}

/// Where faults land: the i-th fault of each kind at sequence `1000 * i + phase`,
/// phases far apart so faults never touch each other's datagrams.
struct FaultSchedule {
    enum Kind { case none, corrupt, skip, reorder, duplicate }
    static let stride: UInt64 = 1000
    static let phases: [(Kind, UInt64)] = [(.corrupt, 101), (.skip, 303), (.reorder, 505), (.duplicate, 707)]

    private var remaining: [Int]  // per kind, in `phases` order
    private var issued: [UInt64]
    /// Smallest sequence number that has a fault scheduled (UInt64.max if none).
    private(set) var nextFaultSequence: UInt64 = .max

    init(_ f: FaultInjection) {
        remaining = [f.corrupt, f.skip, f.reorder, f.duplicate]
        issued = [0, 0, 0, 0]
        recompute()
    }

    private func sequence(ofKind i: Int) -> UInt64? {
        remaining[i] > 0 ? issued[i] * FaultSchedule.stride + FaultSchedule.phases[i].1 : nil
    }

    private mutating func recompute() {
        nextFaultSequence = (0..<4).compactMap { sequence(ofKind: $0) }.min() ?? .max
    }

    func kind(at s: UInt64) -> Kind {
        for i in 0..<4 where sequence(ofKind: i) == s { return FaultSchedule.phases[i].0 }
        return .none
    }

    mutating func consume(at s: UInt64) {
        for i in 0..<4 where sequence(ofKind: i) == s {
            remaining[i] -= 1
            issued[i] += 1
        }
        recompute()
    }
}
