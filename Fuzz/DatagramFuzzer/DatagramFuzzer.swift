// libFuzzer target over the receive path's pure parts: the datagram validator, the
// payload pattern, CRC32C, the END totals, the sequence tracker and the validating core.
// Built and run by Tools/fuzz (never by `swift build` at the repo root).
//
// One input is read three ways:
//   1. as one datagram: Datagram.validate, cross-checked against an independent
//      re-implementation of Protocol/SPEC.md §8 (same verdict, same reason), CRC32C
//      hardware vs table vs bitwise, re-encoding a valid datagram reproduces it,
//      PayloadPattern.firstMismatch vs a byte-at-a-time reference, fill → no mismatch;
//   2. the same bytes through a ValidatingCore, and if valid, a few derived datagrams
//      (duplicate, next sequence, corrupted copy, END with the header's totals);
//      a datagram that fails only its checksum goes through 1 and 2 again sealed;
//   2b. as a STATUS and as a NAK (SPEC §13.4-13.6): StatusMessage.decode and
//      NakMessage.decode against a re-implementation of the tables, re-encoding a valid
//      one reproduces it, the writer accepts exactly what the reader does; and as a
//      version 3 stream datagram (Datagram.validateReliable, repair marking);
//      a version 3 input is also tried sealed so the body checks are reached;
//   2c. through a keyed ValidatingCore (SPEC §14): as received, nothing without a valid
//      tag may open a stream, and every datagram is counted once (unauthenticated or
//      invalid or taken); a structurally sound keyed input is also tried sealed under
//      the key (any header values reach the accounting), then replayed (counted replayed);
//   3. as a list of sequence numbers for a SequenceTracker with a small window and
//      an END total arriving at a point the input picks, checked against an exact
//      model of SPEC §9 (a set of unique numbers): every outcome, every counter,
//      the identities, beyond-END numbers taken back, and finish()'s loss and ranges.
// Any failed check calls fatalError, which libFuzzer reports as a crash.

#if canImport(Glibc)
import Glibc
#endif
import StreamProtocol
import Receiver

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let p = UnsafeRawPointer(data)
    checkChecksum(p, size)
    checkDatagram(p, size)
    var core = ValidatingCore(maxStreams: 4)
    feedCore(&core, p, size)
    // Mutations almost always break the CRC, which would keep the fuzzer out of
    // everything behind it: a structurally sound datagram is also tried sealed,
    // so any header field value reaches the valid path and the core.
    if case .badChecksum = Datagram.validate(p, length: size) {
        let sealed = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { sealed.deallocate() }
        sealed.copyMemory(from: p, byteCount: size)
        sealed.storeBytes(of: UInt32(0), toByteOffset: DatagramHeader.checksumOffset, as: UInt32.self)
        Datagram.seal(sealed, length: size)
        checkDatagram(sealed, size)
        feedCore(&core, sealed, size)
    }
    checkControl(p, size)
    checkKeyed(p, size)
    checkTracker(p, size)
    return 0
}

// MARK: - Keyed streams

// Not the golden vectors' secret (bytes 0...31): their sealed datagrams seed the corpus, and
// the first check is that nothing this key did not seal opens a stream.
let fuzzSecret = try! StreamSecret(bytes: (32..<64).map { UInt8($0) })

func checkKeyed(_ p: UnsafeRawPointer, _ n: Int) {
    var core = ValidatingCore(maxStreams: 4)
    core.keyring = ReceiverKeyring(secret: fuzzSecret, receiverID: 7)
    let copy = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: 16)
    defer { copy.deallocate() }
    copy.copyMemory(from: p, byteCount: n)
    core.process(copy, length: n, now: 1, wallNow: wallNow)
    require(core.streams.isEmpty, "a keyed core opened a stream from an unsealed input")
    require(core.statistics.unauthenticatedTotal + core.statistics.invalidTotal == 1, "a keyed datagram counted other than once")
    guard case .success(let d) = KeyedDatagram.parse(p, length: n), d.kind == .stream, d.trailer.origin == 0 else { return }
    // Sealed under the key, with the key's id: the accounting sees these header values.
    copy.copyMemory(from: p, byteCount: n)
    copy.storeBytes(of: fuzzSecret.keyID.bigEndian, toByteOffset: d.trailerOffset, as: UInt32.self)
    let sealer = DatagramAuthenticator(key: fuzzSecret.sourceKey(streamID: d.header.streamID), sealing: true)
    var trailer = d.trailer
    trailer.keyID = fuzzSecret.keyID
    sealer.seal(copy, headerLength: Int(d.header.headerLength), payloadLength: Int(d.header.payloadLength), trailer: trailer)
    let sealed = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: 16)
    defer { sealed.deallocate() }
    sealed.copyMemory(from: copy, byteCount: n)
    let before = core.statistics.unauthenticatedTotal
    core.process(copy, length: n, now: 2, wallNow: wallNow)
    require(core.statistics.unauthenticatedTotal == before, "a sealed datagram was unauthenticated")
    // The same bytes again: a replay, whatever they were.
    copy.copyMemory(from: sealed, byteCount: n)
    core.process(copy, length: n, now: 3, wallNow: wallNow)
    let replayed = core.statistics.unauthenticated[KeyedDatagram.Rejection.replayed.index]
    require(replayed == 1 || core.streams.isEmpty, "a replayed datagram of an open stream was not counted replayed")
}

@inline(never)
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("fuzz invariant: " + message()) }
}

@inline(__always)
func be<T: FixedWidthInteger>(_ p: UnsafeRawPointer, _ offset: Int, as: T.Type) -> T {
    T(bigEndian: p.loadUnaligned(fromByteOffset: offset, as: T.self))
}

// MARK: - CRC32C

/// The bitwise definition from SPEC.md §5.
func bitwiseCRC(_ p: UnsafeRawPointer, _ n: Int) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for i in 0..<n {
        crc ^= UInt32(p.load(fromByteOffset: i, as: UInt8.self))
        for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 0 ? 0 : 0x82F6_3B78) }
    }
    return ~crc
}

func checkChecksum(_ p: UnsafeRawPointer, _ n: Int) {
    let whole = UnsafeRawBufferPointer(start: p, count: n)
    let fast = CRC32C.checksum(p, count: n)
    let table = CRC32C.portableChecksum(whole)
    require(fast == table, "CRC32C hardware \(fast) != table \(table) over \(n) bytes")
    if n <= 256 {
        let bits = bitwiseCRC(p, n)
        require(fast == bits, "CRC32C \(fast) != bitwise \(bits) over \(n) bytes")
    }
    // Every CRC32C kernel this CPU runs computes the same function.
    let seed = n >= 4 ? p.loadUnaligned(as: UInt32.self) : 0
    let portableSeeded = CRC32C.checksum(whole, continuing: seed, variant: .portable)
    for v in CRC32C.Variant.supported {
        let got = CRC32C.checksum(whole, continuing: seed, variant: v)
        require(got == portableSeeded, "CRC32C \(v) \(got) != portable \(portableSeeded) over \(n) bytes")
    }
    // Continuation at a split point the input chooses.
    if n > 0 {
        let split = Int(p.load(as: UInt8.self)) % (n + 1)
        let a = CRC32C.checksum(p, count: split)
        let ab = CRC32C.checksum(p + split, count: n - split, continuing: a)
        require(ab == fast, "CRC32C continued at \(split) = \(ab) != \(fast)")
    }
}

// MARK: - One datagram

/// SPEC.md §8, written from the table, not from Datagram.swift.
enum Verdict: Equatable { case valid, badChecksum, rejected(String) }

func referenceVerdict(_ p: UnsafeRawPointer, _ n: Int) -> Verdict {
    if n < 48 { return .rejected("too_short") }
    if !(p.load(fromByteOffset: 0, as: UInt8.self) == 0x5A && p.load(fromByteOffset: 1, as: UInt8.self) == 0x43
         && p.load(fromByteOffset: 2, as: UInt8.self) == 0x53 && p.load(fromByteOffset: 3, as: UInt8.self) == 0x54) {
        return .rejected("bad_magic")
    }
    // Versions 1 and 3 (a reliable stream's DATA/END, §13.2): the receiver speaks both.
    let version = p.load(fromByteOffset: 4, as: UInt8.self)
    if version != 1 && version != 3 { return .rejected("unsupported_version") }
    let h = Int(be(p, 6, as: UInt16.self))
    if h < 48 || h % 8 != 0 || h > n { return .rejected("bad_header_length") }
    let flags = p.load(fromByteOffset: 5, as: UInt8.self)
    if (flags & 0x01 != 0) == (flags & 0x02 != 0) { return .rejected("bad_flags") }
    if version == 1 && flags & 0xF8 != 0 { return .rejected("bad_flags") }
    // §13.2 check 5: only 0x37, RELIABLE set, REPAIR not with END.
    if version == 3 && (flags & ~0x37 != 0 || flags & 0x10 == 0 || (flags & 0x20 != 0 && flags & 0x02 != 0)) {
        return .rejected("bad_flags")
    }
    let plen = Int(be(p, 40, as: UInt32.self))
    if h + plen != n { return .rejected("length_mismatch") }
    var crc: UInt32 = 0xFFFF_FFFF
    for i in 0..<n {
        let b: UInt8 = (44..<48).contains(i) ? 0 : p.load(fromByteOffset: i, as: UInt8.self)
        crc ^= UInt32(b)
        for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 0 ? 0 : 0x82F6_3B78) }
    }
    if ~crc != be(p, 44, as: UInt32.self) { return .badChecksum }
    if flags & 0x02 != 0 && plen != 16 { return .rejected("bad_end") }
    // §6: the END payload repeats the header's sequence and offset.
    if flags & 0x02 != 0 && (be(p, h, as: UInt64.self) != be(p, 16, as: UInt64.self) || be(p, h + 8, as: UInt64.self) != be(p, 24, as: UInt64.self)) {
        return .rejected("bad_end")
    }
    return .valid
}

func checkHeaderFields(_ h: DatagramHeader, _ p: UnsafeRawPointer) {
    require(h.flags.rawValue == p.load(fromByteOffset: 5, as: UInt8.self), "flags")
    require(h.headerLength == be(p, 6, as: UInt16.self), "header length")
    require(h.streamID == be(p, 8, as: UInt64.self), "stream id")
    require(h.sequence == be(p, 16, as: UInt64.self), "sequence")
    require(h.offset == be(p, 24, as: UInt64.self), "offset")
    require(h.timestampNanoseconds == be(p, 32, as: UInt64.self), "timestamp")
    require(h.payloadLength == be(p, 40, as: UInt32.self), "payload length")
    require(h.checksum == be(p, 44, as: UInt32.self), "checksum")
}

/// SPEC §7 byte by byte, plus §8: a byte at or beyond stream position 2^64 never matches.
func referenceMismatch(_ p: UnsafeRawPointer, count: Int, streamID: UInt64, offset: UInt64) -> Int? {
    for i in 0..<count {
        let (b, past) = offset.addingReportingOverflow(UInt64(i))
        if past { return i }
        let w = ((b / 8) &+ 1) &* 0x9E37_79B9_7F4A_7C15 ^ streamID
        if p.load(fromByteOffset: i, as: UInt8.self) != UInt8(truncatingIfNeeded: w >> (8 * (b % 8))) { return i }
    }
    return nil
}

/// What a sender writes (the Python reference's `pattern`): the concatenation of the
/// little-endian words W(k), k = offset / 8, offset / 8 + 1, ... (k runs past 2^61 when
/// the range runs past 2^64).
func referenceFill(count: Int, streamID: UInt64, offset: UInt64) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var k = offset / 8, j = offset % 8
    for i in 0..<count {
        out[i] = UInt8(truncatingIfNeeded: ((k &+ 1) &* 0x9E37_79B9_7F4A_7C15 ^ streamID) >> (8 * j))
        j += 1
        if j == 8 { j = 0; k &+= 1 }
    }
    return out
}

func checkDatagram(_ p: UnsafeRawPointer, _ n: Int) {
    let verdict = Datagram.validate(p, length: n)
    let expected = referenceVerdict(p, n)
    switch verdict {
    case .valid(let h):
        require(expected == .valid, "validate says valid, SPEC says \(expected)")
        checkHeaderFields(h, p)
        require(Datagram.computeChecksum(p, length: n) == h.checksum, "computeChecksum")
        // Re-encoding the parsed header over a copy reproduces the datagram exactly.
        let copy = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 16)
        defer { copy.deallocate() }
        copy.copyMemory(from: p, byteCount: n)
        copy.storeBytes(of: UInt32(0xDEAD_BEEF), toByteOffset: 44, as: UInt32.self)
        let length = Datagram.encode(h, at: copy)
        require(length == n, "encode length \(length) != \(n)")
        require(memcmp(copy, p, n) == 0, "re-encoded datagram differs")
        let payload = p + Int(h.headerLength)
        let count = Int(h.payloadLength)
        if h.flags.contains(.end) {
            let totals = EndOfStream(reading: payload)
            var out = (UInt64(0), UInt64(0))
            withUnsafeMutableBytes(of: &out) { totals.write(to: $0.baseAddress!) }
            require(withUnsafeBytes(of: &out) { memcmp($0.baseAddress!, payload, 16) } == 0, "END totals round trip")
        } else {
            checkPattern(payload, count: count, streamID: h.streamID, offset: h.offset)
        }
    case .badChecksum(let h, let computed):
        require(expected == .badChecksum, "validate says bad checksum, SPEC says \(expected)")
        checkHeaderFields(h, p)
        require(computed != h.checksum && computed == Datagram.computeChecksum(p, length: n), "computed checksum")
    case .rejected(let reason):
        require(expected == .rejected(reason.rawValue), "validate rejects \(reason.rawValue), SPEC says \(expected)")
    }
    // The buffer-pointer overload agrees.
    let again = Datagram.validate(UnsafeRawBufferPointer(start: p, count: n))
    switch (verdict, again) {
    case (.valid(let a), .valid(let b)): require(a == b, "overloads differ")
    case (.badChecksum(let a, let x), .badChecksum(let b, let y)): require(a == b && x == y, "overloads differ")
    case (.rejected(let a), .rejected(let b)): require(a == b, "overloads differ")
    default: require(n == 0, "overloads differ")  // an empty buffer may have no base address
    }
}

/// The fast pattern check against the byte reference, on the payload as it is and
/// (whatever the bytes) with the pattern written over it by `fill`.
func checkPattern(_ payload: UnsafeRawPointer, count: Int, streamID: UInt64, offset: UInt64) {
    let fast = PayloadPattern.firstMismatch(payload, count: count, streamID: streamID, offset: offset)
    let slow = referenceMismatch(payload, count: count, streamID: streamID, offset: offset)
    require(fast == slow, "firstMismatch \(String(describing: fast)) != reference \(String(describing: slow)) (offset \(offset), count \(count))")
    guard count > 0 else { return }
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 1)
    defer { buffer.deallocate() }
    PayloadPattern.fill(buffer, count: count, streamID: streamID, offset: offset)
    let expected = referenceFill(count: count, streamID: streamID, offset: offset)
    require(expected.withUnsafeBytes { memcmp($0.baseAddress!, buffer, count) } == 0,
            "fill differs from the reference (offset \(offset), count \(count))")
    // The fused kernels (pattern + CRC in one pass), every variant, against fill-then-CRC
    // and firstMismatch: the same bytes, the same CRC, the same verdict.
    let reference = CRC32C.checksum(UnsafeRawBufferPointer(start: buffer, count: count), variant: .portable)
    let asGiven = CRC32C.checksum(UnsafeRawBufferPointer(start: payload, count: count), variant: .portable)
    let scratch = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 1)
    defer { scratch.deallocate() }
    for v in CRC32C.Variant.supported {
        let crc = PayloadPattern.fillChecksummed(scratch, count: count, streamID: streamID, offset: offset, variant: v)
        require(memcmp(scratch, buffer, count) == 0 && crc == reference, "fused fill \(v) differs (offset \(offset), count \(count))")
        let r = PayloadPattern.checkChecksummed(payload, count: count, streamID: streamID, offset: offset, variant: v)
        require(r.crc == asGiven && r.matches == (slow == nil), "fused check \(v) differs (offset \(offset), count \(count))")
    }
    // Below 2^64 the filled range verifies; past it, the first byte beyond is the mismatch.
    let (_, crosses) = offset.addingReportingOverflow(UInt64(count - 1))
    let beyond: Int? = crosses ? Int(0 &- offset) : nil
    let clean = PayloadPattern.firstMismatch(buffer, count: count, streamID: streamID, offset: offset)
    require(clean == beyond, "filled range: firstMismatch \(String(describing: clean)), expected \(String(describing: beyond))")
    // One flipped byte is found exactly there (unless it is beyond 2^64 anyway).
    let at = Int(truncatingIfNeeded: streamID ^ offset) & Int.max % count
    buffer.storeBytes(of: buffer.load(fromByteOffset: at, as: UInt8.self) ^ 0x5A, toByteOffset: at, as: UInt8.self)
    let found = PayloadPattern.firstMismatch(buffer, count: count, streamID: streamID, offset: offset)
    require(found == min(at, beyond ?? at), "flipped byte \(at) reported at \(String(describing: found))")
}

// MARK: - Validating core

/// Wall clock the core sees: the vectors' timestamps are around 1.7e18 ns.
let wallNow: UInt64 = 1_700_000_000_500_000_000

func feedCore(_ core: inout ValidatingCore, _ p: UnsafeRawPointer, _ n: Int) {
    core.process(p, length: n, now: 1, wallNow: wallNow)
    guard case .valid(let h) = Datagram.validate(p, length: n), n > 0 else { return }
    let copy = UnsafeMutableRawPointer.allocate(byteCount: max(n, 64), alignment: 16)
    defer { copy.deallocate() }
    copy.copyMemory(from: p, byteCount: n)
    // The same datagram again (a duplicate), then its successor, an older one.
    core.process(copy, length: n, now: 2, wallNow: wallNow)
    var next = h
    next.sequence = h.sequence &+ 1
    next.offset = h.offset &+ UInt64(h.payloadLength)
    core.process(copy, length: Datagram.encode(next, at: copy), now: 3, wallNow: wallNow &+ 1)
    next.sequence = h.sequence &- 3
    core.process(copy, length: Datagram.encode(next, at: copy), now: 4, wallNow: wallNow &+ 2)
    // A corrupted copy: last byte flipped, checksum left as it was.
    copy.storeBytes(of: copy.load(fromByteOffset: n - 1, as: UInt8.self) ^ 1, toByteOffset: n - 1, as: UInt8.self)
    core.process(copy, length: n, now: 5, wallNow: wallNow)
    // An END for the same stream with the header's fields as totals.
    let end = DatagramHeader(flags: .end, streamID: h.streamID, sequence: h.sequence, offset: h.offset,
                             timestampNanoseconds: h.timestampNanoseconds, payloadLength: 16)
    EndOfStream(datagrams: h.sequence, bytes: h.offset).write(to: copy + DatagramHeader.size)
    let endLength = Datagram.encode(end, at: copy)
    core.process(copy, length: endLength, now: 6, wallNow: wallNow)
    core.process(copy, length: endLength, now: 7, wallNow: wallNow)
}

// MARK: - Sequence tracker

/// Reads the input as sequence numbers. Byte 0 picks the window (64...512) and a
/// mode; the rest is decoded by the mode:
///   0: raw big-endian u64s (any value, 2^64 - 1 included)
///   1: u64s modulo 4 windows (dense: duplicates, reordering, bitmap wrap-around)
///   2: signed 8-bit steps from 0 (small reorderings and repeats)
///   3: a raw u64 base, then signed 8-bit steps (near 2^64 when the base is)
/// Byte 1 bits 0..1 pick the END total: none, highest + 1, or the last 8 bytes; bits
/// 2..7 where the END arrives among the sequence numbers (0: first, 63: after the last).
struct TrackerInput {
    var window: Int
    var sequences: [UInt64] = []
    var expected: UInt64?
    var endAt = 0

    init?(_ p: UnsafeRawPointer, _ n: Int) {
        guard n >= 2 else { return nil }
        let control = p.load(as: UInt8.self)
        let finishMode = p.load(fromByteOffset: 1, as: UInt8.self) & 3
        window = 64 << Int(control & 3)
        let mode = (control >> 2) & 3
        var i = 2
        let limit = 4096
        switch mode {
        case 0, 1:
            while i + 8 <= n && sequences.count < limit {
                let v: UInt64 = be(p, i, as: UInt64.self)
                sequences.append(mode == 0 ? v : v % UInt64(4 * window))
                i += 8
            }
        default:
            var s: UInt64 = 0
            if mode == 3 {
                guard n >= 10 else { return nil }
                s = be(p, 2, as: UInt64.self)
                i = 10
            }
            while i < n && sequences.count < limit {
                let step = Int8(bitPattern: p.load(fromByteOffset: i, as: UInt8.self))
                s = s &+ UInt64(bitPattern: Int64(step))
                sequences.append(s)
                i += 1
            }
        }
        switch finishMode {
        case 1: expected = nil  // resolved to highest + 1 by the caller's model
        case 2 where n >= 10: expected = be(p, n - 8, as: UInt64.self)
        default: expected = nil
        }
        if finishMode == 1, let top = sequences.max(), top < UInt64.max { expected = top + 1 }
        endAt = sequences.count * Int(p.load(fromByteOffset: 1, as: UInt8.self) >> 2) / 63
    }
}

/// SPEC §9 for one stream with unbounded memory: what the tracker must agree with.
struct TrackerModel {
    let window: UInt64
    var seen = Set<UInt64>()
    var highest: UInt64?
    var limit = UInt64.max
    var limitSet = false
    var unique: UInt64 { UInt64(seen.count) }
    var duplicates: UInt64 = 0, late: UInt64 = 0, reordered: UInt64 = 0, beyondEnd: UInt64 = 0, maxDistance: UInt64 = 0

    mutating func record(_ s: UInt64) -> SequenceTracker.Outcome {
        if s >= limit { beyondEnd += 1; return .beyondEnd }
        guard let top = highest else { seen.insert(s); highest = s; return s == 0 ? .inOrder : .gapAhead }
        if s > top { seen.insert(s); highest = s; return s == top + 1 ? .inOrder : .gapAhead }
        if top - s >= window { late += 1; return .late }
        if seen.contains(s) { duplicates += 1; return .duplicate }
        seen.insert(s); reordered += 1; maxDistance = max(maxDistance, top - s)
        return .reordered
    }

    mutating func setLimit(_ total: UInt64) {
        guard !limitSet else { return }
        limitSet = true
        limit = total
        let above = seen.filter { $0 >= total }
        beyondEnd += UInt64(above.count)
        seen.subtract(above)
    }

    /// Lost count, first ranges and range count, as `SequenceTracker.finish`.
    func finish() -> (lost: UInt64, ranges: [ClosedRange<UInt64>], rangeCount: UInt64) {
        let total = limitSet ? limit : highest.map { $0 + 1 } ?? 0
        var ranges: [ClosedRange<UInt64>] = []
        var count: UInt64 = 0
        var start: UInt64 = 0
        for q in seen.sorted() + [total] {
            if q > start {
                count += 1
                if ranges.count < SequenceTracker.maxRanges { ranges.append(start...(q - 1)) }
            }
            if q == total { break }
            start = q + 1
        }
        return (total - unique, ranges, count)
    }
}

func checkTracker(_ p: UnsafeRawPointer, _ n: Int) {
    guard let input = TrackerInput(p, n) else { return }
    var t = SequenceTracker(window: input.window)
    var m = TrackerModel(window: UInt64(input.window))
    func end() {
        guard let e = input.expected else { return }
        t.setLimit(e)
        m.setLimit(e)
    }
    for (k, s) in input.sequences.enumerated() {
        if k == input.endAt { end() }
        let outcome = t.record(s)
        let expected = m.record(s)
        require(outcome == expected, "arrival #\(k) seq \(s) (highest \(String(describing: m.highest)), window \(input.window)): \(outcome), model \(expected)")
        require(t.unique + t.duplicates + t.late + t.beyondEnd == UInt64(k + 1), "received != unique + duplicates + late + beyondEnd at #\(k) seq \(s) exact \(t.exact) u \(t.unique) d \(t.duplicates) l \(t.late) b \(t.beyondEnd) limit \(t.limit) highest \(t.highest) endAt \(input.endAt)")
        require(t.reordered <= t.unique + t.beyondEnd, "reordered > unique + beyondEnd")
        require(t.lostRanges.count <= SequenceTracker.maxRanges && UInt64(t.lostRanges.count) <= t.lostRangeCount, "ranges kept")
        guard t.exact else { continue }
        require(t.unique == m.unique && t.duplicates == m.duplicates && t.late == m.late && t.reordered == m.reordered && t.beyondEnd == m.beyondEnd,
                "counters after #\(k): unique \(t.unique)/\(m.unique) dup \(t.duplicates)/\(m.duplicates) late \(t.late)/\(m.late) reordered \(t.reordered)/\(m.reordered) beyond \(t.beyondEnd)/\(m.beyondEnd)")
        require(t.maxReorderDistance == m.maxDistance, "max reorder distance")
    }
    if input.endAt >= input.sequences.count { end() }
    let f = t.finish()
    require(t.unique + t.duplicates + t.late + t.beyondEnd == UInt64(input.sequences.count), "received identity after END")
    // The ranges are increasing, disjoint, not adjacent, and (untruncated) add up to lost.
    var previousEnd: UInt64?
    var sum: UInt64 = 0
    for r in f.ranges {
        if let e = previousEnd { require(r.lowerBound > e + 1, "ranges out of order or adjacent: \(f.ranges)") }
        previousEnd = r.upperBound
        sum = sum &+ (r.upperBound - r.lowerBound) &+ 1
    }
    if f.rangeCount == UInt64(f.ranges.count) { require(sum == f.lost, "ranges \(f.ranges) sum \(sum) != lost \(f.lost)") }
    guard t.exact else { return }
    let g = m.finish()
    require(f.lost == g.lost, "lost \(f.lost), model \(g.lost)")
    require(f.ranges == g.ranges, "ranges \(f.ranges), model \(g.ranges)")
    require(f.rangeCount == g.rangeCount, "range count \(f.rangeCount), model \(g.rangeCount)")
}


// MARK: - STATUS, NAK and reliable DATA (SPEC §13)

func bitwiseDatagramCRC(_ p: UnsafeRawPointer, _ n: Int) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for i in 0..<n {
        let b: UInt8 = (44..<48).contains(i) ? 0 : p.load(fromByteOffset: i, as: UInt8.self)
        crc ^= UInt32(b)
        for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 0 ? 0 : 0x82F6_3B78) }
    }
    return ~crc
}

/// SPEC.md §13.4 checks 1-7, from the table: nil when they pass.
func referenceControlHeader(_ p: UnsafeRawPointer, _ n: Int, flag: UInt8) -> String? {
    if n < 48 { return "too_short" }
    if be(p, 0, as: UInt32.self) != 0x5A43_5354 { return "bad_magic" }
    if p.load(fromByteOffset: 4, as: UInt8.self) != 3 { return "not_control" }
    let h = Int(be(p, 6, as: UInt16.self))
    if h < 48 || h % 8 != 0 || h > n { return "bad_header_length" }
    if p.load(fromByteOffset: 5, as: UInt8.self) != flag { return "bad_flags" }
    if h + Int(be(p, 40, as: UInt32.self)) != n { return "length_mismatch" }
    if n <= 4096 && bitwiseDatagramCRC(p, n) != be(p, 44, as: UInt32.self) { return "bad_checksum" }
    if n > 4096 && Datagram.computeChecksum(p, length: n) != be(p, 44, as: UInt32.self) { return "bad_checksum" }
    return nil
}

/// §13.5: "valid" or the reason.
func referenceStatus(_ p: UnsafeRawPointer, _ n: Int) -> String {
    if let r = referenceControlHeader(p, n, flag: 0x40) { return r }
    let h = Int(be(p, 6, as: UInt16.self))
    let body = n - h
    if body < 56 { return "bad_status" }
    let fixed = Int(be(p, h, as: UInt16.self))
    if fixed < 56 || fixed % 8 != 0 || body != fixed || be(p, h + 8, as: UInt64.self) == 0 { return "bad_status" }
    let ack = be(p, 16, as: UInt64.self)
    let limit = be(p, h + 16, as: UInt64.self), highest = be(p, h + 24, as: UInt64.self), unique = be(p, h + 32, as: UInt64.self)
    let state = p.load(fromByteOffset: h + 2, as: UInt8.self)
    if ack > unique || unique > highest || limit < ack || (state & 0x02 != 0 && state & 0x01 == 0) { return "bad_status" }
    return "valid"
}

/// §13.6: "valid" or the reason (ranges compared in 128-bit-free form: each next first
/// must exceed the previous last by at least 2, computed without overflow).
func referenceNak(_ p: UnsafeRawPointer, _ n: Int) -> String {
    if let r = referenceControlHeader(p, n, flag: 0x80) { return r }
    let h = Int(be(p, 6, as: UInt16.self))
    let body = n - h
    if body < 24 { return "bad_nak" }
    let fixed = Int(be(p, h, as: UInt16.self))
    let count = Int(be(p, h + 16, as: UInt16.self))
    if fixed < 24 || fixed % 8 != 0 || be(p, h + 8, as: UInt64.self) == 0 || count < 1 || count > 64
        || body != fixed + 16 * count { return "bad_nak" }
    var previousLast: UInt64? = nil
    for i in 0..<count {
        let first = be(p, h + fixed + 16 * i, as: UInt64.self), last = be(p, h + fixed + 16 * i + 8, as: UInt64.self)
        if first > last || last == UInt64.max { return "bad_nak" }
        if let pl = previousLast {
            if first <= pl || first - pl < 2 { return "bad_nak" }
        } else if first < be(p, 16, as: UInt64.self) {
            return "bad_nak"
        }
        previousLast = last
    }
    return "valid"
}

func checkControl(_ p: UnsafeRawPointer, _ n: Int) {
    controlOnce(p, n)
    if n >= DatagramHeader.size, p.load(fromByteOffset: 4, as: UInt8.self) == DatagramHeader.reliableVersion {
        let sealed = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 16)
        defer { sealed.deallocate() }
        sealed.copyMemory(from: p, byteCount: n)
        sealed.storeBytes(of: UInt32(0), toByteOffset: DatagramHeader.checksumOffset, as: UInt32.self)
        Datagram.seal(sealed, length: n)
        controlOnce(sealed, n)
    }
}

func controlOnce(_ p: UnsafeRawPointer, _ n: Int) {
    let bytes = UnsafeRawBufferPointer(start: p, count: n)
    let status = StatusMessage.decode(bytes)
    let statusName: String
    switch status { case .success: statusName = "valid"; case .failure(let r): statusName = r.rawValue }
    let statusRef = referenceStatus(p, n)
    require(statusName == statusRef, "STATUS: decode \(statusName), reference \(statusRef)")
    if case .success(let m) = status {
        require(m.cumulativeAck <= m.unique && m.unique <= m.highest && m.windowLimit >= m.cumulativeAck, "STATUS invariants")
        // Readers ignore unknown state bits and the reserved byte; the writer writes 0 there.
        if n == StatusMessage.length && be(p, 6, as: UInt16.self) == 48
            && p.load(fromByteOffset: 50, as: UInt8.self) & 0xF8 == 0 && p.load(fromByteOffset: 51, as: UInt8.self) == 0 {
            let again = m.encoded()
            require(again.elementsEqual(bytes), "STATUS re-encoded differs")
        }
    }
    let nak = NakMessage.decode(bytes)
    let nakName: String
    switch nak { case .success: nakName = "valid"; case .failure(let r): nakName = r.rawValue }
    let nakRef = referenceNak(p, n)
    require(nakName == nakRef, "NAK: decode \(nakName), reference \(nakRef)")
    if case .success(let m) = nak {
        let ranges = m.ranges(in: bytes)
        require(ranges.count >= 1 && ranges.count <= NakMessage.maxRanges, "NAK range count")
        require(NakMessage.rangesValid(ranges, cumulativeAck: m.cumulativeAck), "NAK ranges valid to the writer")
        let h = Int(be(p, 6, as: UInt16.self))
        // Readers ignore the reserved bytes (body 2, 3, 18..23); the writer writes 0 there.
        let reservedZero = be(p, 50, as: UInt16.self) == 0 && be(p, 66, as: UInt16.self) == 0 && be(p, 68, as: UInt32.self) == 0
        if h == 48 && be(p, 48, as: UInt16.self) == UInt16(NakMessage.fixedBodyLength) && reservedZero {
            let again = m.encoded(ranges: Array(ranges))
            require(again.map { $0.elementsEqual(bytes) } ?? false, "NAK re-encoded differs")
        }
    }
    require(!(statusName == "valid" && nakName == "valid"), "both STATUS and NAK")

    // As a version 3 receiver's stream datagram (validateReliable is validate now): the same verdict.
    let v3 = Datagram.validateReliable(p, length: n)
    if n >= 48 {
        let v1 = Datagram.validate(p, length: n)
        switch (v1, v3) {
        case (.valid(let a), .valid(let b)): require(a == b, "validateReliable differs")
        case (.badChecksum(let a, let x), .badChecksum(let b, let y)): require(a == b && x == y, "validateReliable differs")
        case (.rejected(let a), .rejected(let b)): require(a == b, "validateReliable differs")
        default: require(false, "validateReliable differs: \(v1) vs \(v3)")
        }
    }
    if case .valid(let h) = v3, h.flags.contains(.reliable) {
        require(Datagram.reliableFlagsValid(h.flags), "valid version 3 with bad flags")
        require(statusName != "valid" && nakName != "valid", "a stream datagram that is also a control datagram")
        if h.flags.contains(.data) {
            // The repair of the original (REPAIR clear, resealed) is byte for byte this datagram
            // with REPAIR set; both have the same identity checksum.
            let copy = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 16)
            defer { copy.deallocate() }
            copy.copyMemory(from: p, byteCount: n)
            copy.storeBytes(of: h.flags.rawValue & ~DatagramFlags.repair.rawValue, toByteOffset: 5, as: UInt8.self)
            copy.storeBytes(of: UInt32(0), toByteOffset: DatagramHeader.checksumOffset, as: UInt32.self)
            Datagram.seal(copy, length: n)
            let originalCRC = be(UnsafeRawPointer(copy), 44, as: UInt32.self)
            require(Datagram.identityChecksum(p, length: n) == originalCRC, "identity checksum")
            Datagram.markRepair(copy, length: n)
            let repairCRC = be(UnsafeRawPointer(copy), 44, as: UInt32.self)
            require(Datagram.identityChecksum(copy, length: n) == originalCRC, "identity checksum of the repair")
            if h.flags.contains(.repair) {
                require(memcmp(copy, p, n) == 0, "markRepair does not reproduce the repair")
            } else {
                require(repairCRC != originalCRC || n == 0, "REPAIR changes the checksum")
            }
        }
    }
}
