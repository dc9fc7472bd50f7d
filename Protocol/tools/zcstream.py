#!/usr/bin/env python3
"""zcstream wire format: an independent reference implementation (stdlib only; keyed
streams, SPEC §14, also need the `cryptography` package for AES-256-GCM and HKDF).

Written from Protocol/SPEC.md, not from the Swift sources, so the two can check
each other through the golden vectors in Protocol/vectors/.

Commands:
  zcstream.py gen-vectors [--out DIR]     write the golden vectors (default Protocol/vectors)
  zcstream.py check-vectors [--dir DIR]   re-verify the vector files with this implementation
  zcstream.py decode HEX [--key FILE]     validate and print one datagram as JSON
                                          (REPORT, STATUS, NAK and reliable DATA/END too;
                                          a keyed datagram, version 4, with its trailer, and
                                          with --key its tag checked: "tag ok" / "tag BAD").
                                          `describe` is the same command.
  zcstream.py pattern STREAM_ID OFFSET COUNT   print pattern bytes as hex
  zcstream.py crc32c HEX                  print CRC32C of the bytes
"""

import argparse
import json
import os
import socket
import struct
import sys
import time

MAGIC = 0x5A435354  # "ZCST"
VERSION = 1
HEADER_SIZE = 48
CHECKSUM_OFFSET = 44
END_PAYLOAD_SIZE = 16
PATTERN_MULTIPLIER = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1

FLAG_DATA = 0x01
FLAG_END = 0x02
FLAG_PATTERN = 0x04
FLAGS_KNOWN = FLAG_DATA | FLAG_END | FLAG_PATTERN

# Version 3 (SPEC §13): reliable streams. DATA/END of a reliable stream carry version 3
# and RELIABLE; a retransmission carries REPAIR too. STATUS and NAK are receiver -> sender.
RELIABLE_VERSION = 3
FLAG_RELIABLE = 0x10
FLAG_REPAIR = 0x20
FLAG_STATUS = 0x40
FLAG_NAK = 0x80
FLAGS_KNOWN_V3 = FLAGS_KNOWN | FLAG_RELIABLE | FLAG_REPAIR   # a version 3 DATA/END

# Rejection reasons, in the order the checks run (bad_checksum is not a rejection
# in the Swift API but a separate outcome; it sits between length_mismatch and bad_end).
REASONS = ("too_short", "bad_magic", "unsupported_version", "bad_header_length",
           "bad_flags", "length_mismatch", "bad_checksum", "bad_end")

# Header layout: magic u32, version u8, flags u8, header length u16, stream id u64,
# sequence u64, offset u64, timestamp ns u64, payload length u32, checksum u32.
HEADER_STRUCT = struct.Struct(">IBBHQQQQII")
assert HEADER_STRUCT.size == HEADER_SIZE

FIELD_NAMES = ("flags", "header_length", "stream_id", "sequence", "offset",
               "timestamp_ns", "payload_length", "checksum")
U64_FIELDS = ("stream_id", "sequence", "offset", "timestamp_ns")


# ---- CRC32C -------------------------------------------------------------------

def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


CRC_TABLE = _crc_table()


def crc32c(data, crc=0):
    """CRC32C (Castagnoli, reflected 0x82F63B78, init/xorout 0xFFFFFFFF).
    `crc` continues a previous final value: crc32c(a + b) == crc32c(b, crc32c(a))."""
    c = crc ^ 0xFFFFFFFF
    t = CRC_TABLE
    for b in data:
        c = (c >> 8) ^ t[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def datagram_checksum(data):
    """CRC32C over the whole datagram with the checksum field (bytes 44..47) as zero."""
    data = bytes(data)
    return crc32c(data[:CHECKSUM_OFFSET] + b"\0\0\0\0" + data[CHECKSUM_OFFSET + 4:])


# ---- payload pattern ------------------------------------------------------------

def pattern_word(stream_id, k):
    return (((k + 1) * PATTERN_MULTIPLIER) & MASK64) ^ stream_id


def pattern_byte(stream_id, b):
    return (pattern_word(stream_id, b >> 3) >> (8 * (b & 7))) & 0xFF


def pattern(stream_id, offset, count):
    """Stream bytes [offset, offset + count) of the synthetic payload."""
    if count <= 0:
        return b""
    first, last = offset >> 3, (offset + count - 1) >> 3
    words = b"".join(struct.pack("<Q", pattern_word(stream_id, k)) for k in range(first, last + 1))
    start = offset & 7
    return words[start:start + count]


def pattern_first_mismatch(payload, stream_id, offset):
    """Index of the first payload byte that differs from the pattern, or None."""
    expected = pattern(stream_id, offset, len(payload))
    for i, (a, b) in enumerate(zip(payload, expected)):
        if a != b:
            return i
    return None


# ---- encode / decode ------------------------------------------------------------

def encode(flags, stream_id, sequence, offset, timestamp_ns, payload,
           extension=b"", checksum=None, magic=MAGIC, version=VERSION,
           header_length=None, payload_length=None):
    """Builds a datagram. The keyword overrides exist to build invalid vectors;
    with their defaults the result is a valid, sealed datagram."""
    extension = bytes(extension)
    payload = bytes(payload)
    if header_length is None:
        header_length = HEADER_SIZE + len(extension)
    if payload_length is None:
        payload_length = len(payload)
    head = HEADER_STRUCT.pack(magic, version, flags, header_length, stream_id, sequence,
                              offset, timestamp_ns, payload_length, 0)
    data = bytearray(head + extension + payload)
    if checksum is None:
        checksum = crc32c(data)
    struct.pack_into(">I", data, CHECKSUM_OFFSET, checksum)
    return bytes(data)


def end_payload(datagrams, payload_bytes):
    return struct.pack(">QQ", datagrams, payload_bytes)


def parse_header(data):
    """The 48 fixed header bytes as a dict, unchecked (needs len(data) >= 48)."""
    (magic, version, flags, hlen, sid, seq, off, ts, plen, crc) = HEADER_STRUCT.unpack_from(data, 0)
    return {"magic": magic, "version": version, "flags": flags, "header_length": hlen,
            "stream_id": sid, "sequence": seq, "offset": off, "timestamp_ns": ts,
            "payload_length": plen, "checksum": crc}


def validate(data, reliable=False):
    """Returns (outcome, header, detail):
      ("valid", header, None)
      ("bad_checksum", header, computed_checksum)   -- header is untrusted
      ("rejected", None or header, reason)
    reliable=False is a version 1/2 receiver (§8 as in version 1: DATA/END version 1 only);
    reliable=True a version 3 receiver, which also takes reliable DATA/END (version 3, §13.2)."""
    data = bytes(data)
    n = len(data)
    if n < HEADER_SIZE:
        return ("rejected", None, "too_short")
    h = parse_header(data)
    if h["magic"] != MAGIC:
        return ("rejected", None, "bad_magic")
    v3 = reliable and h["version"] == RELIABLE_VERSION
    if h["version"] != VERSION and not v3:
        return ("rejected", None, "unsupported_version")
    hlen = h["header_length"]
    if hlen < HEADER_SIZE or hlen % 8 != 0 or hlen > n:
        return ("rejected", None, "bad_header_length")
    flags = h["flags"]
    if not stream_flags_ok(flags, h["version"]):
        return ("rejected", None, "bad_flags")
    if hlen + h["payload_length"] != n:
        return ("rejected", None, "length_mismatch")
    computed = datagram_checksum(data)
    if computed != h["checksum"]:
        return ("bad_checksum", h, computed)
    if flags & FLAG_END:
        if h["payload_length"] != END_PAYLOAD_SIZE:
            return ("rejected", None, "bad_end")
        datagrams, total_bytes = struct.unpack(">QQ", data[hlen:hlen + END_PAYLOAD_SIZE])
        if datagrams != h["sequence"] or total_bytes != h["offset"]:
            return ("rejected", None, "bad_end")
    return ("valid", h, None)


def stream_flags_ok(flags, version):
    """§8 check 5. Version 1: known bits only, exactly one of DATA and END. Version 3 (§13.2):
    also RELIABLE set, and REPAIR only on DATA."""
    if bool(flags & FLAG_DATA) == bool(flags & FLAG_END):
        return False
    if version == RELIABLE_VERSION:
        return (not flags & ~FLAGS_KNOWN_V3 and bool(flags & FLAG_RELIABLE)
                and not (flags & FLAG_REPAIR and flags & FLAG_END))
    return not flags & ~FLAGS_KNOWN


def identity_checksum(data):
    """§13.3: the checksum a DATA datagram has with REPAIR clear. A repair and its original
    share it, so a receiver compares it for conflicting duplicates (§9.2)."""
    data = bytearray(data)
    if len(data) < HEADER_SIZE or not data[5] & FLAG_REPAIR:
        return struct.unpack_from(">I", data, CHECKSUM_OFFSET)[0]
    data[5] &= ~FLAG_REPAIR & 0xFF
    return datagram_checksum(data)


def mark_repair(data):
    """§13.3: the repair of a sealed reliable DATA datagram: REPAIR set, resealed, every
    other byte (timestamp included) unchanged."""
    d = bytearray(data)
    d[5] |= FLAG_REPAIR
    struct.pack_into(">I", d, CHECKSUM_OFFSET, datagram_checksum(d))
    return bytes(d)


def reason_of(data, reliable=False):
    """The rejection reason name, "bad_checksum", or None when valid."""
    outcome, _, detail = validate(data, reliable)
    if outcome == "valid":
        return None
    if outcome == "bad_checksum":
        return "bad_checksum"
    return detail


def flag_names(flags, version=VERSION):
    """Names of a stream datagram's flag bits; version 3 also knows RELIABLE and REPAIR."""
    known = FLAGS_KNOWN_V3 if version == RELIABLE_VERSION else FLAGS_KNOWN
    bits = ((FLAG_DATA, "DATA"), (FLAG_END, "END"), (FLAG_PATTERN, "PATTERN"), (FLAG_RELIABLE, "RELIABLE"),
            (FLAG_REPAIR, "REPAIR"))
    names = [n for bit, n in bits if flags & bit & known]
    if flags & ~known:
        names.append("RESERVED(0x%02x)" % (flags & ~known))
    return names


def describe(data, reliable=True):
    """Everything a human wants to know about one datagram, JSON-ready
    (u64 values as decimal strings, as in the vector files)."""
    data = bytes(data)
    out = {"length": len(data)}
    outcome, h, detail = validate(data, reliable)
    out["outcome"] = outcome
    if outcome == "rejected":
        out["reason"] = detail
    if len(data) >= HEADER_SIZE:
        raw = parse_header(data)
        fields = json_fields(raw)
        fields["magic"] = "0x%08x" % raw["magic"]
        fields["version"] = raw["version"]
        fields["flag_names"] = flag_names(raw["flags"], raw["version"])
        fields["stream_id_hex"] = "0x%016x" % raw["stream_id"]
        fields["checksum_hex"] = "0x%08x" % raw["checksum"]
        out["fields"] = fields
        out["computed_checksum"] = datagram_checksum(data)
        out["checksum_ok"] = out["computed_checksum"] == raw["checksum"]
        if raw["flags"] & FLAG_REPAIR:
            out["identity_checksum"] = identity_checksum(data)
    if outcome == "valid":
        hlen = h["header_length"]
        payload = data[hlen:]
        if hlen > HEADER_SIZE:
            out["extension_hex"] = data[HEADER_SIZE:hlen].hex()
        if h["flags"] & FLAG_END:
            d, b = struct.unpack(">QQ", payload)
            out["end"] = {"datagrams": str(d), "bytes": str(b)}
        elif h["flags"] & FLAG_PATTERN:
            mm = pattern_first_mismatch(payload, h["stream_id"], h["offset"])
            out["pattern_ok"] = mm is None
            out["first_mismatch"] = mm
    return out


def json_fields(h):
    return {k: (str(h[k]) if k in U64_FIELDS else h[k]) for k in FIELD_NAMES}


def fields_from_json(f):
    return {k: (int(f[k]) if k in U64_FIELDS else f[k]) for k in FIELD_NAMES}


# ---- golden vectors ---------------------------------------------------------------

SID_A = 0x0123456789ABCDEF
SID_B = 0xFEDCBA9876543210  # above 2^63: catches signed/double handling of u64
TS = 1700000000123456789    # 2023-11-14T22:13:20.123456789Z


# ---- REPORT (SPEC §12, wire format version 2) ------------------------------------

REPORT_VERSION = 2
FLAG_REPORT = 0x08
REPORT_FIXED_BODY = 208
REPORT_MAX_RANGES = 32
REPORT_MIN_LENGTH = HEADER_SIZE + REPORT_FIXED_BODY
REPORT_MAX_LENGTH = REPORT_MIN_LENGTH + 16 * REPORT_MAX_RANGES
REPORT_REASONS = ("too_short", "bad_magic", "not_report", "bad_header_length", "bad_flags",
                  "length_mismatch", "bad_checksum", "bad_report")
# Body after its 8-byte preamble, in wire order: u64 counters, i64 latencies, u64 outages.
REPORT_COUNTERS = ("received", "unique", "unique_payload_bytes", "expected_datagrams",
                   "expected_payload_bytes", "lost", "lost_range_count", "reordered",
                   "max_reorder_distance", "duplicates", "late", "beyond_end", "after_end",
                   "corrupt", "kernel_drops", "latency_samples")
REPORT_LATENCIES = ("latency_min_ns", "latency_p50_ns", "latency_p99_ns", "latency_p99_9_ns",
                    "latency_max_ns")
REPORT_OUTAGES = ("gaps", "longest_gap_datagrams", "longest_gap_ns", "first_to_last_ns")
# Version 3 (§13.8): a REPORT on a reliable stream has fixed length 240 and these counters
# at body offsets 208..239; readers of an older REPORT (fixed length 208) skip nothing.
REPORT_RELIABLE_FIXED_BODY = 240
REPORT_RELIABLE = ("repaired", "repair_duplicates", "naks_sent", "status_sent")
REPORT_STATE_BITS = (("end_seen", 0x01), ("complete", 0x02), ("exact", 0x04), ("joined_late", 0x08),
                     ("output_incomplete", 0x10))


def encode_report(r, limit=REPORT_MAX_LENGTH, fixed_body=REPORT_FIXED_BODY, extra=b"",
                  version=REPORT_VERSION, flags=FLAG_REPORT, checksum=None, listed=None):
    """A sealed REPORT from a dict of the JSON form (u64 as ints or decimal strings).
    Lists as many lost ranges as `limit` bytes allow (the anti-amplification cap, §12.4);
    None when even no range fits. Keyword overrides build invalid vectors."""
    if limit < REPORT_MIN_LENGTH + len(extra):
        return None
    ranges = [(int(a), int(b)) for a, b in r.get("lost_ranges", [])]
    ranges = ranges[:min(REPORT_MAX_RANGES, (limit - REPORT_MIN_LENGTH - len(extra)) // 16)]
    state = 0
    for name, bit in REPORT_STATE_BITS:
        if r.get(name):
            state |= bit
    if r.get("reliable") and fixed_body == REPORT_FIXED_BODY:
        fixed_body = REPORT_RELIABLE_FIXED_BODY
        extra = b"".join(struct.pack(">Q", int(r.get(k, 0))) for k in REPORT_RELIABLE) + extra
        if limit < REPORT_MIN_LENGTH + len(extra):
            return None
        ranges = ranges[:min(REPORT_MAX_RANGES, (limit - REPORT_MIN_LENGTH - len(extra)) // 16)]
    body = struct.pack(">HBBHH", fixed_body, 0 if r.get("verdict", "pass") == "pass" else 1, state,
                       len(ranges) if listed is None else listed, 0)
    body += b"".join(struct.pack(">Q", int(r.get(k, 0))) for k in REPORT_COUNTERS)
    body += b"".join(struct.pack(">q", int(r.get(k, 0))) for k in REPORT_LATENCIES)
    body += b"".join(struct.pack(">Q", int(r.get(k, 0))) for k in REPORT_OUTAGES)
    body += extra
    body += b"".join(struct.pack(">QQ", a, b) for a, b in ranges)
    return encode(flags, int(r["stream_id"]), 0, 0, int(r.get("timestamp_ns", 0)), body,
                  version=version, checksum=checksum)


def decode_report(data):
    """Checks a REPORT in the order of §12.3. Returns ("valid", report dict in the JSON form
    of the vectors) or ("rejected", reason)."""
    data = bytes(data)
    n = len(data)
    if n < HEADER_SIZE:
        return ("rejected", "too_short")
    h = parse_header(data)
    if h["magic"] != MAGIC:
        return ("rejected", "bad_magic")
    if h["version"] != REPORT_VERSION:
        return ("rejected", "not_report")
    hlen = h["header_length"]
    if hlen < HEADER_SIZE or hlen % 8 != 0 or hlen > n:
        return ("rejected", "bad_header_length")
    if h["flags"] != FLAG_REPORT:
        return ("rejected", "bad_flags")
    if hlen + h["payload_length"] != n:
        return ("rejected", "length_mismatch")
    if datagram_checksum(data) != h["checksum"]:
        return ("rejected", "bad_checksum")
    body = data[hlen:]
    if len(body) < REPORT_FIXED_BODY:
        return ("rejected", "bad_report")
    fixed, verdict, state, listed, _ = struct.unpack_from(">HBBHH", body, 0)
    if (fixed < REPORT_FIXED_BODY or fixed % 8 or verdict > 1 or listed > REPORT_MAX_RANGES
            or len(body) != fixed + 16 * listed):
        return ("rejected", "bad_report")
    r = {"stream_id": str(h["stream_id"]), "timestamp_ns": str(h["timestamp_ns"]),
         "verdict": "pass" if verdict == 0 else "fail"}
    for name, bit in REPORT_STATE_BITS:
        r[name] = bool(state & bit)
    at = 8
    for k in REPORT_COUNTERS + REPORT_LATENCIES + REPORT_OUTAGES:
        (v,) = struct.unpack_from(">q" if k in REPORT_LATENCIES else ">Q", body, at)
        r[k] = str(v)
        at += 8
    if fixed >= REPORT_RELIABLE_FIXED_BODY:
        r["reliable"] = True
        for k in REPORT_RELIABLE:
            (v,) = struct.unpack_from(">Q", body, at)
            r[k] = str(v)
            at += 8
    ranges = []
    for i in range(listed):
        lo, hi = struct.unpack_from(">QQ", body, fixed + 16 * i)
        if lo > hi:
            return ("rejected", "bad_report")
        ranges.append([str(lo), str(hi)])
    r["lost_ranges"] = ranges
    return ("valid", r)


def report_scenarios():
    """(valid, invalid) REPORT vectors for reports.json."""
    sid = 0x0123456789ABCDEF
    clean = {"stream_id": sid, "timestamp_ns": 1700000001000000000, "verdict": "pass",
             "end_seen": True, "complete": True, "exact": True, "received": 8, "unique": 8,
             "unique_payload_bytes": 153, "expected_datagrams": 8, "expected_payload_bytes": 153,
             "latency_samples": 8, "latency_min_ns": 41000, "latency_p50_ns": 52000,
             "latency_p99_ns": 90000, "latency_p99_9_ns": 90000, "latency_max_ns": 90000,
             "first_to_last_ns": 7000000}
    lossy = dict(clean, verdict="fail", complete=False, received=1000, unique=990,
                 unique_payload_bytes=990 * 1424, expected_datagrams=1000,
                 expected_payload_bytes=1000 * 1424, lost=10, lost_range_count=2, reordered=3,
                 max_reorder_distance=2, duplicates=1, corrupt=1, kernel_drops=4, gaps=2,
                 longest_gap_datagrams=7, longest_gap_ns=2500000, first_to_last_ns=1000000000,
                 lost_ranges=[[100, 102], [500, 506]])
    skewed = dict(clean, latency_min_ns=-1500, latency_p50_ns=-200, joined_late=True,
                  stream_id=0xFFFFFFFFFFFFFFFE, received=2 ** 64 - 1)
    many = dict(lossy, lost=40, lost_range_count=40, gaps=40,
                lost_ranges=[[10 * i, 10 * i] for i in range(40)])
    valid = [
        ("report_complete", "a complete stream, verdict pass, no ranges: the smallest REPORT (256 bytes)",
         encode_report(clean)),
        ("report_loss", "loss in two ranges, a corrupt datagram, verdict fail", encode_report(lossy)),
        ("report_negative_latency", "clocks differ: negative one-way latency (i64), joined late, u64 extremes",
         encode_report(skewed)),
        ("report_ranges_capped", "40 loss ranges: only the first 32 are listed (768 bytes, the largest REPORT)",
         encode_report(many)),
        ("report_amplification_cap", "the same stream, capped to the 300 bytes it delivered: 2 ranges listed",
         encode_report(many, limit=300)),
        ("report_output_incomplete", "every datagram arrived, but the receiver's --output lacks bytes (a failed write): verdict fail, state bit 0x10",
         encode_report(dict(clean, verdict="fail", output_incomplete=True))),
        ("report_reliable", "a reliable stream (§13.8): fixed length 240 with repaired, repair_duplicates, naks_sent, "
         "status_sent; a version 2 reader skips them",
         encode_report(dict(clean, reliable=True, repaired=3, repair_duplicates=1, naks_sent=2, status_sent=40))),
        ("report_future_counters", "a later version's body: fixed length 216, one counter this version does not know (skipped)",
         encode_report(lossy, fixed_body=216, extra=struct.pack(">Q", 77))),
    ]
    good = encode_report(lossy)

    def resealed(data):
        return _with_checksum_recomputed(data)

    def poke(data, at, new):
        b = bytearray(data)
        b[at:at + len(new)] = new
        return resealed(bytes(b))

    invalid = [
        ("report_too_short", "fewer than 48 bytes", good[:40], "too_short"),
        ("report_bad_magic", "not ZCST", poke(good, 0, b"ZCSX"), "bad_magic"),
        ("report_version_1", "version 1: a stream datagram, not a REPORT", encode_report(lossy, version=1), "not_report"),
        ("report_bad_header_length", "header length 52", poke(good, 6, b"\x00\x34"), "bad_header_length"),
        ("report_bad_flags", "REPORT with DATA set", encode_report(lossy, flags=0x09), "bad_flags"),
        ("report_length_mismatch", "one byte more than the payload length says", resealed(good + b"\x00"), "length_mismatch"),
        ("report_bad_checksum", "a counter changed after sealing", bytes(good[:60]) + bytes([good[60] ^ 1]) + bytes(good[61:]), "bad_checksum"),
        ("report_body_short", "a body shorter than 208 bytes", encode(FLAG_REPORT, sid, 0, 0, 0, b"\x00\xd0" + bytes(100), version=2), "bad_report"),
        ("report_listed_mismatch", "lists 3 ranges, carries 2", encode_report(lossy, listed=3), "bad_report"),
        ("report_too_many_listed", "33 ranges listed", encode_report(dict(many, lost_ranges=[[i, i] for i in range(33)]), listed=33, limit=10 ** 6) or b"", "bad_report"),
        ("report_bad_verdict", "verdict byte 2", poke(good, HEADER_SIZE + 2, b"\x02"), "bad_report"),
        ("report_inverted_range", "a range whose first is above its last", poke(good, HEADER_SIZE + REPORT_FIXED_BODY, struct.pack(">Q", 103)), "bad_report"),
        ("report_fixed_not_multiple_of_8", "fixed body length 212", encode_report(clean, fixed_body=212, extra=bytes(4)), "bad_report"),
    ]
    return valid, invalid


def _with_checksum_recomputed(data):
    """Seals an arbitrary (possibly malformed) datagram: CRC32C with field 44..47 as 0."""
    data = bytearray(data)
    if len(data) >= HEADER_SIZE:
        struct.pack_into(">I", data, CHECKSUM_OFFSET, datagram_checksum(data))
    return bytes(data)



# ---- STATUS and NAK (SPEC §13, wire format version 3) ------------------------------

CONTROL_REASONS_STATUS = ("too_short", "bad_magic", "not_control", "bad_header_length", "bad_flags",
                          "length_mismatch", "bad_checksum", "bad_status")
CONTROL_REASONS_NAK = CONTROL_REASONS_STATUS[:-1] + ("bad_nak",)
STATUS_FIXED_BODY = 56
STATUS_LENGTH = HEADER_SIZE + STATUS_FIXED_BODY          # 104
NAK_FIXED_BODY = 24
NAK_MAX_RANGES = 64
NAK_MIN_LENGTH = HEADER_SIZE + NAK_FIXED_BODY + 16       # 88: one range
NAK_MAX_LENGTH = HEADER_SIZE + NAK_FIXED_BODY + 16 * NAK_MAX_RANGES   # 1096
NAK_REPAIR_LIMIT = 1024     # K: datagrams a sender retransmits for one NAK at most (§13.6)
STATUS_STATE_BITS = (("end_seen", 0x01), ("complete", 0x02), ("gave_up", 0x04))
# STATUS body after the common 16 bytes, in wire order (u64).
STATUS_U64 = ("window_limit", "highest", "unique", "echo_timestamp_ns", "echo_delay_ns")
CONTROL_COMMON_U64 = ("stream_id", "timestamp_ns", "cumulative_ack", "delivered_bytes", "receiver_id")


def _control_body_head(fixed, state, feedback_sequence, receiver_id):
    """The 16 bytes STATUS and NAK bodies start with: fixed length, state, 0, feedback
    sequence, receiver id."""
    return struct.pack(">HBBIQ", fixed, state, 0, feedback_sequence, receiver_id)


def encode_status(m, fixed_body=STATUS_FIXED_BODY, extra=b"", extension=b"", version=RELIABLE_VERSION,
                  flags=FLAG_STATUS, checksum=None):
    """A sealed STATUS from a dict of the JSON form (u64 as ints or decimal strings).
    Keyword overrides build invalid vectors."""
    state = 0
    for name, bit in STATUS_STATE_BITS:
        if m.get(name):
            state |= bit
    body = _control_body_head(fixed_body, state, int(m.get("feedback_sequence", 0)), int(m["receiver_id"]))
    body += b"".join(struct.pack(">Q", int(m.get(k, 0))) for k in STATUS_U64) + extra
    return encode(flags, int(m["stream_id"]), int(m.get("cumulative_ack", 0)), int(m.get("delivered_bytes", 0)),
                  int(m.get("timestamp_ns", 0)), body, extension=extension, version=version, checksum=checksum)


def encode_nak(m, fixed_body=NAK_FIXED_BODY, extra=b"", extension=b"", version=RELIABLE_VERSION, flags=FLAG_NAK,
               checksum=None, count=None):
    """A sealed NAK from a dict of the JSON form: ranges [[first, last], ...] inclusive, as given
    (no sorting or capping: that is the writer's duty, and invalid vectors need the raw form)."""
    ranges = [(int(a), int(b)) for a, b in m.get("ranges", [])]
    body = _control_body_head(fixed_body, 0, int(m.get("feedback_sequence", 0)), int(m["receiver_id"]))
    body += struct.pack(">HHI", len(ranges) if count is None else count, 0, 0) + extra
    body += b"".join(struct.pack(">QQ", a, b) for a, b in ranges)
    return encode(flags, int(m["stream_id"]), int(m.get("cumulative_ack", 0)), int(m.get("delivered_bytes", 0)),
                  int(m.get("timestamp_ns", 0)), body, extension=extension, version=version, checksum=checksum)


def _control_header(data, flag):
    """§13.4 checks 1-7 for a control datagram of kind `flag`. (reason, None) or (None, header)."""
    n = len(data)
    if n < HEADER_SIZE:
        return ("too_short", None)
    h = parse_header(data)
    if h["magic"] != MAGIC:
        return ("bad_magic", None)
    if h["version"] != RELIABLE_VERSION:
        return ("not_control", None)
    hlen = h["header_length"]
    if hlen < HEADER_SIZE or hlen % 8 != 0 or hlen > n:
        return ("bad_header_length", None)
    if h["flags"] != flag:
        return ("bad_flags", None)
    if hlen + h["payload_length"] != n:
        return ("length_mismatch", None)
    if datagram_checksum(data) != h["checksum"]:
        return ("bad_checksum", None)
    return (None, h)


def _control_common(h, body):
    fixed, state, _, fseq, rid = struct.unpack_from(">HBBIQ", body, 0)
    m = {"stream_id": str(h["stream_id"]), "timestamp_ns": str(h["timestamp_ns"]),
         "cumulative_ack": str(h["sequence"]), "delivered_bytes": str(h["offset"]),
         "feedback_sequence": fseq, "receiver_id": str(rid)}
    return fixed, state, rid, m


def decode_status(data):
    """Checks a STATUS in the order of §13.4. ("valid", dict) or ("rejected", reason)."""
    data = bytes(data)
    reason, h = _control_header(data, FLAG_STATUS)
    if reason:
        return ("rejected", reason)
    body = data[h["header_length"]:]
    if len(body) < STATUS_FIXED_BODY:
        return ("rejected", "bad_status")
    fixed, state, rid, m = _control_common(h, body)
    if fixed < STATUS_FIXED_BODY or fixed % 8 or len(body) != fixed or rid == 0:
        return ("rejected", "bad_status")
    for name, bit in STATUS_STATE_BITS:
        m[name] = bool(state & bit)
    vals = struct.unpack_from(">5Q", body, 16)
    for k, v in zip(STATUS_U64, vals):
        m[k] = str(v)
    ack, (limit, highest, unique) = h["sequence"], vals[:3]
    if not (ack <= unique <= highest) or limit < ack or (m["complete"] and not m["end_seen"]):
        return ("rejected", "bad_status")
    return ("valid", m)


def decode_nak(data):
    """Checks a NAK in the order of §13.4. ("valid", dict) or ("rejected", reason)."""
    data = bytes(data)
    reason, h = _control_header(data, FLAG_NAK)
    if reason:
        return ("rejected", reason)
    body = data[h["header_length"]:]
    if len(body) < NAK_FIXED_BODY:
        return ("rejected", "bad_nak")
    fixed, _, rid, m = _control_common(h, body)
    (count,) = struct.unpack_from(">H", body, 16)
    if (fixed < NAK_FIXED_BODY or fixed % 8 or rid == 0 or count < 1 or count > NAK_MAX_RANGES
            or len(body) != fixed + 16 * count):
        return ("rejected", "bad_nak")
    ranges, floor = [], h["sequence"]    # the next range starts at or above floor
    for i in range(count):
        lo, hi = struct.unpack_from(">QQ", body, fixed + 16 * i)
        if lo < floor or lo > hi or hi == MASK64:
            return ("rejected", "bad_nak")
        ranges.append([str(lo), str(hi)])
        floor = hi + 2     # disjoint and not adjacent: a gap of at least one number
    m["ranges"] = ranges
    return ("valid", m)


def decode_control(data):
    """A version 3 control datagram by its flags (NAK when 0x80 is set, else STATUS):
    ("STATUS"|"NAK", outcome, dict or reason)."""
    data = bytes(data)
    if len(data) >= 6 and data[5] & FLAG_NAK:
        return ("NAK",) + decode_nak(data)
    return ("STATUS",) + decode_status(data)


def is_control(data):
    """A control candidate: "ZCST", version 3, and a STATUS or NAK bit (0xC0) in the flags.
    Every other version 3 datagram is a stream datagram (§13.2)."""
    data = bytes(data)
    return (len(data) >= 6 and data[:4] == b"ZCST" and data[4] == RELIABLE_VERSION
            and data[5] & (FLAG_STATUS | FLAG_NAK) != 0)


# ---- Keyed streams (SPEC §14, wire format version 4) --------------------------------
#
# AES-256-GCM and HKDF-SHA256 come from the `cryptography` package (Debian:
# python3-cryptography), imported only when a keyed function runs: everything above
# stays stdlib only.

KEYED_VERSION = 4
TRAILER_SIZE = 40
KEYED_MIN_LENGTH = HEADER_SIZE + TRAILER_SIZE          # 88: a header and a trailer
KEYED_SALT = b"zcstream keyed v4"
KEYED_INFO_KEY_ID = b"zcstream key id"
KEYED_INFO_SOURCE = b"zcstream source"
KEYED_INFO_RECEIVER = b"zcstream receiver"
SECRET_SIZE = 32
SUITE_AUTH = 1          # authenticated (GMAC over the whole datagram)
SUITE_ENCRYPT = 2       # authenticated, payload encrypted (DATA only)
TAG_SIZE = 16
# §14.4, in the order the checks run (replayed needs the reader's window, §14.5; the
# kind's own rules follow as there: bad_end, bad_report, bad_status, bad_nak).
KEYED_REASONS = ("too_short", "bad_magic", "not_keyed", "bad_header_length", "bad_flags",
                 "length_mismatch", "bad_trailer", "wrong_key", "bad_tag", "replayed", "bad_end")
# Trailer: key id u32, suite u8, 3 zero bytes, origin u64, packet number u64 (then the tag).
TRAILER_STRUCT = struct.Struct(">IB3sQQ")
assert TRAILER_STRUCT.size + TAG_SIZE == TRAILER_SIZE


def _hkdf(secret, info, length):
    """HKDF-SHA256 (RFC 5869, extract then expand) with §14.2's salt."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=KEYED_SALT, info=info).derive(bytes(secret))


def keyed_key_id(secret):
    """§14.2: the u32 that names a secret without revealing it."""
    return struct.unpack(">I", _hkdf(secret, KEYED_INFO_KEY_ID, 4))[0]


def keyed_key(secret, stream_id, origin):
    """§14.2: the 32-byte AES-256 key of `origin` for stream `stream_id`: the stream's
    source key when origin is 0, else the key of receiver `origin`."""
    if origin == 0:
        info = KEYED_INFO_SOURCE + struct.pack(">Q", stream_id)
    else:
        info = KEYED_INFO_RECEIVER + struct.pack(">QQ", stream_id, origin)
    return _hkdf(secret, info, 32)


def keyed_keys(secret, stream_id, origin):
    """(key id, key of `origin` for stream `stream_id`), §14.2."""
    return keyed_key_id(secret), keyed_key(secret, stream_id, origin)


def read_key_file(path):
    """A secret file (§14.2): exactly 32 raw bytes, or 64 hex digits with optional
    surrounding white space. ValueError otherwise."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) == SECRET_SIZE:
        return raw
    text = raw.strip()
    if len(text) == 2 * SECRET_SIZE:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise ValueError("%s: a key file holds exactly 32 bytes or 64 hex digits (it has %d bytes)" % (path, len(raw)))


def _keyed_nonce(packet_number):
    """96 bits: 4 zero bytes, then the u64 packet number."""
    return b"\0\0\0\0" + struct.pack(">Q", packet_number & MASK64)


def parse_trailer(data):
    """The last 40 bytes of a keyed datagram as a dict, unchecked (needs len(data) >= 40)."""
    key_id, suite, reserved, origin, pn = TRAILER_STRUCT.unpack_from(data, len(data) - TRAILER_SIZE)
    return {"key_id": key_id, "suite": suite, "reserved": reserved.hex(), "origin": origin,
            "packet_number": pn, "tag": bytes(data[len(data) - TAG_SIZE:])}


def encode_keyed(flags, stream_id, sequence, offset, timestamp_ns, payload, secret, origin, packet_number,
                 suite=SUITE_AUTH, header_extension=b"", key_id=None, key_origin=None, version=KEYED_VERSION,
                 header_length=None, payload_length=None):
    """Seals a keyed datagram (§14.1, §14.3): the 48-byte header with version 4 and checksum
    field 0, the extension, the payload (its ciphertext under suite 2), the 40-byte trailer.
    `payload` is the plaintext. Any suite other than 2 is sealed as suite 1 (GMAC). The keyword
    overrides build invalid vectors: another key id in the trailer, the key of another origin
    than the trailer names, other version / header length / payload length fields."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    ext, payload = bytes(header_extension), bytes(payload)
    if header_length is None:
        header_length = HEADER_SIZE + len(ext)
    if payload_length is None:
        payload_length = len(payload)
    header = HEADER_STRUCT.pack(MAGIC, version, flags, header_length, stream_id, sequence, offset,
                                timestamp_ns, payload_length, 0) + ext
    if key_id is None:
        key_id = keyed_key_id(secret)
    head = TRAILER_STRUCT.pack(key_id, suite, b"\0\0\0", origin, packet_number)
    aead = AESGCM(keyed_key(secret, stream_id, origin if key_origin is None else key_origin))
    nonce = _keyed_nonce(packet_number)
    if suite == SUITE_ENCRYPT:
        sealed = aead.encrypt(nonce, payload, header + head)
        return header + sealed[:-TAG_SIZE] + head + sealed[-TAG_SIZE:]
    tag = aead.encrypt(nonce, b"", header + payload + head)
    return header + payload + head + tag


def keyed_flags_ok(flags):
    """§14.4 check 5: a DATA/END flag byte valid by §3 (version 1) or §13.2 (version 3),
    or exactly REPORT, STATUS or NAK."""
    return (flags in (FLAG_REPORT, FLAG_STATUS, FLAG_NAK) or stream_flags_ok(flags, VERSION)
            or stream_flags_ok(flags, RELIABLE_VERSION))


def keyed_kind(flags):
    """STREAM, REPORT, STATUS or NAK by a keyed datagram's flag byte."""
    return {FLAG_REPORT: "REPORT", FLAG_STATUS: "STATUS", FLAG_NAK: "NAK"}.get(flags, "STREAM")


def keyed_structure(data):
    """§14.4 checks 1-7, which need no key: the reason, or None when they pass."""
    data = bytes(data)
    n = len(data)
    if n < KEYED_MIN_LENGTH:
        return "too_short"
    h = parse_header(data)
    if h["magic"] != MAGIC:
        return "bad_magic"
    if h["version"] != KEYED_VERSION:
        return "not_keyed"
    hlen = h["header_length"]
    if hlen < HEADER_SIZE or hlen % 8 != 0 or hlen > n or hlen + TRAILER_SIZE > n:
        return "bad_header_length"
    flags = h["flags"]
    if not keyed_flags_ok(flags):
        return "bad_flags"
    if hlen + h["payload_length"] + TRAILER_SIZE != n:
        return "length_mismatch"
    t = parse_trailer(data)
    stream = bool(flags & (FLAG_DATA | FLAG_END))   # DATA or END: the source's kinds
    if (t["suite"] not in (SUITE_AUTH, SUITE_ENCRYPT) or (t["suite"] == SUITE_ENCRYPT and not flags & FLAG_DATA)
            or (t["origin"] == 0) != stream):
        return "bad_trailer"
    return None


def open_keyed(data, secret):
    """Reads a keyed datagram with the reader's secret, in §14.4's order: checks 1-9, then
    check 11's END rule (totals, §6). Check 10 (replays) needs the reader's window and is
    not done here. Returns (reason or None, header dict or None, trailer dict or None,
    plaintext payload or None); the payload is given only when the tag passed."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    data = bytes(data)
    reason = keyed_structure(data)
    h = parse_header(data) if len(data) >= HEADER_SIZE else None
    t = parse_trailer(data) if len(data) >= KEYED_MIN_LENGTH else None
    if reason:
        return (reason, h, t, None)
    if t["key_id"] != keyed_key_id(secret):
        return ("wrong_key", h, t, None)
    hlen, n = h["header_length"], len(data)
    header, body, head = data[:hlen], data[hlen:n - TRAILER_SIZE], data[n - TRAILER_SIZE:n - TAG_SIZE]
    aead = AESGCM(keyed_key(secret, h["stream_id"], t["origin"]))
    nonce = _keyed_nonce(t["packet_number"])
    try:
        if t["suite"] == SUITE_ENCRYPT:
            payload = aead.decrypt(nonce, body + t["tag"], header + head)
        else:
            aead.decrypt(nonce, t["tag"], header + body + head)
            payload = body
    except InvalidTag:
        return ("bad_tag", h, t, None)
    if h["flags"] & FLAG_END:
        if len(payload) != END_PAYLOAD_SIZE or struct.unpack(">QQ", payload) != (h["sequence"], h["offset"]):
            return ("bad_end", h, t, payload)
    return (None, h, t, payload)


def keyed_body_reason(h, payload):
    """§14.4 check 11 for every kind, on an opened datagram: the body rules of §6 (END),
    §12.3 (REPORT), §13.5 (STATUS), §13.6 (NAK), by the version 2/3 readers applied to the
    same header and plaintext rebuilt as a sealed version 2/3 datagram. None when they hold."""
    flags = h["flags"]
    kind = keyed_kind(flags)
    if kind == "STREAM":
        if flags & FLAG_END and (len(payload) != END_PAYLOAD_SIZE
                                 or struct.unpack(">QQ", payload) != (h["sequence"], h["offset"])):
            return "bad_end"
        return None
    version = REPORT_VERSION if kind == "REPORT" else RELIABLE_VERSION
    plain = encode(flags, h["stream_id"], h["sequence"], h["offset"], h["timestamp_ns"], payload,
                   extension=bytes(h.get("extension", b"")), version=version)
    outcome, detail = (decode_report(plain) if kind == "REPORT"
                       else decode_status(plain) if kind == "STATUS" else decode_nak(plain))
    return None if outcome == "valid" else detail


def describe_keyed(data, secret=None):
    """describe() for a version 4 datagram: header, trailer, outcome; with the secret the
    tag is checked ("tag ok" / "tag BAD") and the payload given in plain text."""
    data = bytes(data)
    out = {"length": len(data), "version": KEYED_VERSION}
    structural = keyed_structure(data)
    if len(data) >= HEADER_SIZE:
        raw = parse_header(data)
        fields = json_fields(raw)
        fields["magic"] = "0x%08x" % raw["magic"]
        fields["version"] = raw["version"]
        fields["kind"] = keyed_kind(raw["flags"])
        fields["flag_names"] = (flag_names(raw["flags"], RELIABLE_VERSION) if fields["kind"] == "STREAM"
                                else [fields["kind"]])
        fields["stream_id_hex"] = "0x%016x" % raw["stream_id"]
        fields["checksum"] = "%d (keyed: the tag replaces it)" % raw["checksum"]
        out["fields"] = fields
    if len(data) >= KEYED_MIN_LENGTH:
        t = parse_trailer(data)
        out["trailer"] = {"key_id": "0x%08x" % t["key_id"], "suite": t["suite"],
                          "suite_name": {1: "authenticated", 2: "authenticated, payload encrypted"}.get(
                              t["suite"], "unknown"),
                          "reserved": t["reserved"], "origin": str(t["origin"]),
                          "origin_hex": "0x%016x" % t["origin"],
                          "origin_role": "source" if t["origin"] == 0 else "receiver",
                          "packet_number": str(t["packet_number"]), "tag_hex": t["tag"].hex()}
    if structural:
        out["outcome"] = "rejected"
        out["reason"] = structural
        out["tag_check"] = "not checked (%s)" % structural
        return out
    if secret is None:
        out["outcome"] = "unverified"
        out["tag_check"] = "not checked (no --key)"
        return out
    reason, h, t, payload = open_keyed(data, secret)
    out["key_id_of_key"] = "0x%08x" % keyed_key_id(secret)
    if reason == "wrong_key":
        out["tag_check"] = "not checked (wrong_key: the key file's key id is %s)" % out["key_id_of_key"]
    elif reason == "bad_tag":
        out["tag_check"] = "tag BAD"
    else:
        out["tag_check"] = "tag ok"
    if reason in ("wrong_key", "bad_tag"):
        out["outcome"] = "rejected"
        out["reason"] = reason
        return out
    hlen = h["header_length"]
    if hlen > HEADER_SIZE:
        out["extension_hex"] = data[HEADER_SIZE:hlen].hex()
        h = dict(h, extension=data[HEADER_SIZE:hlen])
    body_reason = reason or keyed_body_reason(h, payload)
    out["outcome"] = "rejected" if body_reason else "valid"
    if body_reason:
        out["reason"] = body_reason
    out["payload_hex"] = payload.hex()
    flags = h["flags"]
    if flags & FLAG_END and len(payload) == END_PAYLOAD_SIZE:
        d, b = struct.unpack(">QQ", payload)
        out["end"] = {"datagrams": str(d), "bytes": str(b)}
    elif flags & FLAG_DATA and flags & FLAG_PATTERN:
        mm = pattern_first_mismatch(payload, h["stream_id"], h["offset"])
        out["pattern_ok"] = mm is None
        out["first_mismatch"] = mm
    return out


def reliable_scenarios():
    """(valid, invalid) version 3 stream datagrams for reliable.json. Each valid entry:
    (name, description, bytes); invalid: (name, description, bytes, reason under §13.2)."""
    dp = FLAG_DATA | FLAG_PATTERN | FLAG_RELIABLE
    first = encode(dp, SID_A, 0, 0, TS, pattern(SID_A, 0, 32), version=RELIABLE_VERSION)
    opaque = encode(FLAG_DATA | FLAG_RELIABLE, SID_B, 41, 41 * 1424, TS + 7000, b"reliable bytes\n",
                    version=RELIABLE_VERSION)
    end = encode(FLAG_END | FLAG_RELIABLE, SID_A, 8, 153, TS + 5000, end_payload(8, 153), version=RELIABLE_VERSION)
    valid = [
        ("reliable_data_first", "First DATA of a reliable stream: version 3, DATA|PATTERN|RELIABLE (0x15), seq 0.",
         first),
        ("reliable_data_opaque", "Reliable DATA with an opaque payload (0x11), stream id above 2^63.", opaque),
        ("reliable_repair", "The repair of reliable_data_first: REPAIR (0x20) set and resealed, every other byte "
         "(timestamp included) the same; identity_checksum is the original's checksum.", mark_repair(first)),
        ("reliable_repair_opaque", "The repair of reliable_data_opaque (0x31).", mark_repair(opaque)),
        ("reliable_end", "END of a reliable stream: END|RELIABLE (0x12), 8 datagrams, 153 bytes.", end),
        ("reliable_data_extended_header", "Reliable DATA with a 56-byte header (8 extension bytes, skipped).",
         encode(dp, SID_A, 6, 137, TS, pattern(SID_A, 137, 16), extension=b"EXT\x00\x01\x02\x03\x04",
                version=RELIABLE_VERSION)),
    ]

    def v3(flags, payload=None):
        return encode(flags, SID_A, 1, 16, TS, pattern(SID_A, 16, 16) if payload is None else payload,
                      version=RELIABLE_VERSION)

    invalid = [
        ("reliable_flag_missing", "Version 3 DATA|PATTERN without RELIABLE: unreliable DATA is version 1.",
         v3(FLAG_DATA | FLAG_PATTERN), "bad_flags"),
        ("reliable_repair_without_reliable", "Version 3 DATA|PATTERN|REPAIR (0x25).",
         v3(FLAG_DATA | FLAG_PATTERN | FLAG_REPAIR), "bad_flags"),
        ("reliable_repair_on_end", "END|RELIABLE|REPAIR (0x32): END copies are repeats, never repairs.",
         encode(0x32, SID_A, 1, 16, TS, end_payload(1, 16), version=RELIABLE_VERSION), "bad_flags"),
        ("reliable_reserved_0x08", "Version 3 DATA|PATTERN|RELIABLE plus 0x08 (the REPORT bit).",
         v3(dp | 0x08), "bad_flags"),
        ("reliable_data_and_end", "Version 3 DATA|END|RELIABLE.", v3(0x13), "bad_flags"),
        ("reliable_status_as_stream", "A STATUS (flags 0x40) seen by a stream receiver: never stream data.",
         encode_status(STATUS_SAMPLES["status_gap"]), "bad_flags"),
        ("reliable_nak_as_stream", "A NAK (flags 0x80) seen by a stream receiver.",
         encode_nak(NAK_SAMPLES["nak_two_ranges"]), "bad_flags"),
        ("reliable_bits_in_version_1", "Version 1 with RELIABLE set (0x15): reserved in version 1.",
         encode(dp, SID_A, 1, 16, TS, pattern(SID_A, 16, 16)), "bad_flags"),
        ("reliable_version_4", "Version 4 (not defined).",
         encode(dp, SID_A, 1, 16, TS, pattern(SID_A, 16, 16), version=4), "unsupported_version"),
        ("reliable_version_2_data", "Version 2 with reliable DATA flags: version 2 defines only the REPORT.",
         encode(dp, SID_A, 1, 16, TS, pattern(SID_A, 16, 16), version=2), "unsupported_version"),
        ("reliable_bad_checksum", "Reliable DATA with a payload bit flipped after sealing.",
         first[:60] + bytes([first[60] ^ 0x01]) + first[61:], "bad_checksum"),
        ("reliable_repair_bit_flipped_unsealed", "REPAIR set without resealing: the checksum covers the flags.",
         first[:5] + bytes([first[5] | FLAG_REPAIR]) + first[6:], "bad_checksum"),
        ("reliable_end_bad_totals", "Reliable END whose payload says 9 datagrams, header 8.",
         encode(FLAG_END | FLAG_RELIABLE, SID_A, 8, 153, TS, end_payload(9, 153), version=RELIABLE_VERSION), "bad_end"),
        ("reliable_truncated", "Reliable DATA cut by 8 bytes.", first[:-8], "length_mismatch"),
    ]
    return valid, invalid


STATUS_SAMPLES = {
    "status_first": {"stream_id": SID_A, "timestamp_ns": TS + 60000, "cumulative_ack": 1, "delivered_bytes": 32,
                     "feedback_sequence": 0, "receiver_id": 0x5EC0DE0123456789, "window_limit": 1 + 65536,
                     "highest": 1, "unique": 1, "echo_timestamp_ns": TS, "echo_delay_ns": 12000},
    "status_gap": {"stream_id": SID_A, "timestamp_ns": TS + 9000000, "cumulative_ack": 10, "delivered_bytes": 14240,
                   "feedback_sequence": 7, "receiver_id": 0x5EC0DE0123456789, "window_limit": 10 + 65536,
                   "highest": 20, "unique": 17, "echo_timestamp_ns": TS + 8900000, "echo_delay_ns": 3000},
    "status_complete": {"stream_id": SID_A, "timestamp_ns": TS + 20000000, "cumulative_ack": 8,
                        "delivered_bytes": 153, "feedback_sequence": 12, "receiver_id": 0x5EC0DE0123456789,
                        "window_limit": 8 + 65536, "highest": 8, "unique": 8, "echo_timestamp_ns": TS + 5000,
                        "echo_delay_ns": 800, "end_seen": True, "complete": True},
    "status_end_first": {"stream_id": SID_B, "timestamp_ns": TS, "cumulative_ack": 0, "delivered_bytes": 0,
                         "feedback_sequence": 0, "receiver_id": 0xFFFFFFFFFFFFFFFF, "window_limit": 1024,
                         "highest": 0, "unique": 0, "echo_timestamp_ns": 0, "echo_delay_ns": 0, "end_seen": True},
    "status_gave_up": {"stream_id": SID_B, "timestamp_ns": TS + 10 ** 10, "cumulative_ack": 500,
                       "delivered_bytes": 712000, "feedback_sequence": 0xFFFFFFFF, "receiver_id": 1,
                       "window_limit": 500, "highest": 2 ** 64 - 1, "unique": 2 ** 63, "echo_timestamp_ns": 2 ** 64 - 1,
                       "echo_delay_ns": 10 ** 10, "end_seen": True, "gave_up": True},
}

NAK_SAMPLES = {
    "nak_single": {"stream_id": SID_A, "timestamp_ns": TS + 9000000, "cumulative_ack": 10, "delivered_bytes": 14240,
                   "feedback_sequence": 8, "receiver_id": 0x5EC0DE0123456789, "ranges": [[10, 10]]},
    "nak_two_ranges": {"stream_id": SID_A, "timestamp_ns": TS + 9000000, "cumulative_ack": 10,
                       "delivered_bytes": 14240, "feedback_sequence": 9, "receiver_id": 0x5EC0DE0123456789,
                       "ranges": [[10, 11], [15, 15]]},
    "nak_max_ranges": {"stream_id": SID_B, "timestamp_ns": TS, "cumulative_ack": 100, "delivered_bytes": 142400,
                       "feedback_sequence": 1, "receiver_id": 0x0123456789ABCDEF,
                       "ranges": [[100 + 3 * i, 101 + 3 * i] for i in range(NAK_MAX_RANGES)]},
    "nak_u64_extremes": {"stream_id": 0xFFFFFFFFFFFFFFFF, "timestamp_ns": 2 ** 64 - 1, "cumulative_ack": 2 ** 63,
                         "delivered_bytes": 2 ** 64 - 1, "feedback_sequence": 0xFFFFFFFF,
                         "receiver_id": 0xFFFFFFFFFFFFFFFF, "ranges": [[2 ** 63, 2 ** 63 + 5], [2 ** 64 - 3, 2 ** 64 - 2]]},
}


def control_scenarios():
    """(status valid, status invalid, nak valid, nak invalid) for status.json and nak.json."""
    S, N = STATUS_SAMPLES, NAK_SAMPLES
    sv = [
        ("status_first", "The receiver's first STATUS: sequence 0 delivered, the window opened by 65536 datagrams, "
         "the echo of that datagram's send time.", encode_status(S["status_first"])),
        ("status_gap", "0..9 delivered, 10 of 11..19 held (17 distinct below 20): ack 10, highest 20.",
         encode_status(S["status_gap"])),
        ("status_complete", "Every datagram of an 8-datagram stream and its END: complete.",
         encode_status(S["status_complete"])),
        ("status_end_first", "Only the END has arrived: nothing delivered, no echo (0), receiver id all ones.",
         encode_status(S["status_end_first"])),
        ("status_gave_up", "The receiver gave up (its deadline passed): final STATUS, u64/u32 extremes; the window "
         "limit equal to the ack (closed).", encode_status(S["status_gave_up"])),
        ("status_future_fields", "A later revision's body: fixed length 64, one field this version does not know "
         "(skipped).", encode_status(S["status_gap"], fixed_body=64, extra=struct.pack(">Q", 77))),
        ("status_extended_header", "Header length 64: 16 extension bytes (e.g. a future tag), skipped.",
         encode_status(S["status_gap"], extension=bytes(range(16)))),
    ]
    good = encode_status(S["status_gap"])

    def poke(data, at, new):
        b = bytearray(data)
        b[at:at + len(new)] = new
        return _with_checksum_recomputed(bytes(b))

    B = HEADER_SIZE
    si = [
        ("status_too_short", "40 bytes.", good[:40], "too_short"),
        ("status_truncated", "A STATUS cut to 100 bytes: the payload length says 56.", good[:100], "length_mismatch"),
        ("status_bad_magic", "Not ZCST.", poke(good, 0, b"ZCSX"), "bad_magic"),
        ("status_version_1", "Version 1: a stream datagram, not a control datagram.",
         encode_status(S["status_gap"], version=1), "not_control"),
        ("status_version_2", "Version 2 (REPORT's version).", encode_status(S["status_gap"], version=2), "not_control"),
        ("status_bad_header_length", "Header length 44.", poke(good, 6, b"\x00\x2c"), "bad_header_length"),
        ("status_bad_flags", "STATUS with DATA set (0x41).", encode_status(S["status_gap"], flags=0x41), "bad_flags"),
        ("status_is_nak", "A NAK given to the STATUS reader.", encode_nak(N["nak_single"]), "bad_flags"),
        ("status_length_mismatch", "One trailing byte.", _with_checksum_recomputed(good + b"\x00"), "length_mismatch"),
        ("status_bad_checksum", "The window limit changed after sealing.",
         good[:B + 20] + bytes([good[B + 20] ^ 1]) + good[B + 21:], "bad_checksum"),
        ("status_body_short", "A 48-byte body.", encode(FLAG_STATUS, SID_A, 0, 0, 0, good[B:B + 48],
                                                        version=RELIABLE_VERSION), "bad_status"),
        ("status_body_longer_than_fixed", "Fixed length 56, body 64: no trailing bytes allowed.",
         encode_status(S["status_gap"], extra=bytes(8)), "bad_status"),
        ("status_fixed_not_multiple_of_8", "Fixed length 60.",
         encode_status(S["status_gap"], fixed_body=60, extra=bytes(4)), "bad_status"),
        ("status_receiver_id_zero", "Receiver id 0 (reserved for the sender, §13.9).",
         encode_status(dict(S["status_gap"], receiver_id=0)), "bad_status"),
        ("status_ack_above_unique", "Ack 18 but only 17 distinct held.",
         encode_status(dict(S["status_gap"], cumulative_ack=18)), "bad_status"),
        ("status_unique_above_highest", "21 distinct held below 20.",
         encode_status(dict(S["status_gap"], unique=21)), "bad_status"),
        ("status_window_below_ack", "Window limit 9 below the ack 10.",
         encode_status(dict(S["status_gap"], window_limit=9)), "bad_status"),
        ("status_complete_without_end", "complete set, end_seen clear.",
         encode_status(dict(S["status_complete"], end_seen=False)), "bad_status"),
    ]

    nv = [
        ("nak_single", "One missing datagram, 10 (the ack): the smallest NAK, 88 bytes.", encode_nak(N["nak_single"])),
        ("nak_two_ranges", "10..11 and 15 missing.", encode_nak(N["nak_two_ranges"])),
        ("nak_max_ranges", "64 ranges: the largest NAK (1096 bytes, fits the 1232 bytes of a 1280-byte IPv6 path).",
         encode_nak(N["nak_max_ranges"])),
        ("nak_u64_extremes", "Ranges high in the u64 space; the last ends at 2^64-2 (the last DATA number).",
         encode_nak(N["nak_u64_extremes"])),
        ("nak_future_fields", "A later revision's body: fixed length 32 (8 unknown bytes before the ranges, skipped).",
         encode_nak(N["nak_two_ranges"], fixed_body=32, extra=struct.pack(">Q", 77))),
        ("nak_extended_header", "Header length 64: 16 extension bytes, skipped.",
         encode_nak(N["nak_two_ranges"], extension=bytes(range(16)))),
    ]
    ng = encode_nak(N["nak_two_ranges"])
    two = N["nak_two_ranges"]
    ni = [
        ("nak_too_short", "47 bytes.", ng[:47], "too_short"),
        ("nak_truncated", "A NAK missing its last 8 bytes.", ng[:-8], "length_mismatch"),
        ("nak_bad_magic", "Not ZCST.", poke(ng, 1, b"X"), "bad_magic"),
        ("nak_version_1", "Version 1.", encode_nak(two, version=1), "not_control"),
        ("nak_version_4", "Version 4 (not defined).", encode_nak(two, version=4), "not_control"),
        ("nak_bad_header_length", "Header length 52.", poke(ng, 6, b"\x00\x34"), "bad_header_length"),
        ("nak_is_status", "A STATUS given to the NAK reader.", encode_status(S["status_gap"]), "bad_flags"),
        ("nak_announcement_flags", "Flags 0xA0 (NAK|REPAIR): reserved for the sender's repair announcement "
         "(issue 26), not a version 3 NAK.", encode_nak(two, flags=0xA0), "bad_flags"),
        ("nak_bad_checksum", "A range changed after sealing.", ng[:-1] + bytes([ng[-1] ^ 1]), "bad_checksum"),
        ("nak_body_short", "A 16-byte body.", encode(FLAG_NAK, SID_A, 0, 0, 0, ng[B:B + 16],
                                                     version=RELIABLE_VERSION), "bad_nak"),
        ("nak_no_ranges", "Count 0: a NAK names at least one range.", encode_nak(dict(two, ranges=[])), "bad_nak"),
        ("nak_too_many_ranges", "65 ranges.",
         encode_nak(dict(N["nak_max_ranges"], ranges=[[100 + 3 * i, 101 + 3 * i] for i in range(65)])), "bad_nak"),
        ("nak_count_mismatch", "Count says 3, two ranges carried.", encode_nak(two, count=3), "bad_nak"),
        ("nak_count_short", "Count says 1, two ranges carried.", encode_nak(two, count=1), "bad_nak"),
        ("nak_unsorted", "Ranges 15 then 10..11.", encode_nak(dict(two, ranges=[[15, 15], [10, 11]])), "bad_nak"),
        ("nak_overlapping", "Ranges 10..12 and 12..15.", encode_nak(dict(two, ranges=[[10, 12], [12, 15]])), "bad_nak"),
        ("nak_adjacent", "Ranges 10..11 and 12..13: one range written as two.",
         encode_nak(dict(two, ranges=[[10, 11], [12, 13]])), "bad_nak"),
        ("nak_duplicate_range", "The range 10..11 twice.", encode_nak(dict(two, ranges=[[10, 11], [10, 11]])), "bad_nak"),
        ("nak_inverted_range", "A range 15..12.", encode_nak(dict(two, ranges=[[10, 10], [15, 12]])), "bad_nak"),
        ("nak_zero_length_range", "A range 16..15 (inclusive: zero numbers).",
         encode_nak(dict(two, ranges=[[16, 15]])), "bad_nak"),
        ("nak_below_ack", "Range 9..9 below the NAK's own ack 10.", encode_nak(dict(two, ranges=[[9, 9]])), "bad_nak"),
        ("nak_range_to_u64_max", "A range ending at 2^64-1 (never a DATA number).",
         encode_nak(dict(two, ranges=[[20, 2 ** 64 - 1]])), "bad_nak"),
        ("nak_range_after_u64_end", "A range after one ending at 2^64-2: nothing can follow it.",
         encode_nak(dict(two, ranges=[[20, 2 ** 64 - 2], [3, 4]])), "bad_nak"),
        ("nak_receiver_id_zero", "Receiver id 0 (reserved for the sender, §13.9).",
         encode_nak(dict(two, receiver_id=0)), "bad_nak"),
        ("nak_fixed_short", "Fixed length 16 < 24.", poke(ng, B, b"\x00\x10"), "bad_nak"),
    ]
    return sv, si, nv, ni


# --- Receiver accounting (SPEC section 9), as an exact model ----------------------

REORDER_WINDOW = 65536   # W: how far below the highest an arrival can still be classified
MAX_RANGES = 32          # loss ranges listed in a report


class StreamAccount:
    """One stream's accounting by SPEC section 9, with unbounded memory (a reference
    model: a receiver keeps a bitmap of the last W numbers instead, and must agree)."""

    def __init__(self, window=REORDER_WINDOW):
        self.window = window
        self.seen = {}               # sequence -> payload length, stream data received intact
        self.highest = None          # highest stream-data sequence received intact
        self.limit = MASK64          # END total once known; 2^64-1 is beyond every stream
        self.end = None              # (datagrams, bytes) of the first valid END
        self.c = dict(received=0, duplicates=0, reordered=0, max_reorder_distance=0, late=0,
                      beyond_end=0, beyond_end_payload_bytes=0, after_end=0, corrupt=0,
                      ends_received=0, end_mismatches=0)
        self.highest_byte_end = 0

    def data(self, seq, offset, length):
        c = self.c
        c["received"] += 1
        if seq >= self.limit:
            c["beyond_end"] += 1
            c["beyond_end_payload_bytes"] += length
            return
        if self.end is not None:
            c["after_end"] += 1
        self.highest_byte_end = max(self.highest_byte_end, min(offset + length, MASK64))
        if self.highest is not None and seq < self.highest and self.highest - seq >= self.window:
            c["late"] += 1
            return
        if seq in self.seen:
            c["duplicates"] += 1
            return
        self.seen[seq] = length
        if self.highest is not None and seq < self.highest:
            c["reordered"] += 1
            c["max_reorder_distance"] = max(c["max_reorder_distance"], self.highest - seq)
        self.highest = seq if self.highest is None else max(self.highest, seq)

    def corrupt(self):
        self.c["corrupt"] += 1

    def end_of_stream(self, datagrams, nbytes):
        c = self.c
        c["ends_received"] += 1
        if self.end is not None:
            if self.end != (datagrams, nbytes):
                c["end_mismatches"] += 1
            return
        self.end = (datagrams, nbytes)
        self.limit = datagrams
        for q in [q for q in self.seen if q >= datagrams]:
            c["beyond_end"] += 1
            c["beyond_end_payload_bytes"] += self.seen.pop(q)

    def report(self):
        total = self.end[0] if self.end else (self.highest + 1 if self.highest is not None else 0)
        ranges, count, start = [], 0, 0
        for q in sorted(self.seen) + [total]:
            if q > start:
                count += 1
                if len(ranges) < MAX_RANGES:
                    ranges.append([str(start), str(q - 1)])
            start = q + 1
        r = {k: str(v) for k, v in self.c.items()}
        r.update({
            "unique": str(len(self.seen)),
            "unique_payload_bytes": str(sum(self.seen.values())),
            "end_seen": self.end is not None,
            "expected_datagrams": str(total),
            "expected_payload_bytes": str(self.end[1] if self.end else self.highest_byte_end),
            "lost": str(total - len(self.seen)),
            "lost_ranges": ranges,
            "lost_range_count": str(count),
            # Every sequence number and every byte (SPEC §9.4).
            "complete": (self.end is not None and len(self.seen) == total
                         and sum(self.seen.values()) == self.end[1]),
        })
        return r


def account(events, window=REORDER_WINDOW):
    """Runs accounting events ({"data": seq, "offset": o, "length": n} | {"corrupt": seq} |
    {"end": datagrams, "bytes": n}, u64 values as decimal strings) through the model."""
    a = StreamAccount(window)
    for e in events:
        if "data" in e:
            a.data(int(e["data"]), int(e["offset"]), int(e["length"]))
        elif "corrupt" in e:
            a.corrupt()
        else:
            a.end_of_stream(int(e["end"]), int(e["bytes"]))
    return a.report()


def accounting_scenarios():
    """Named event sequences for vectors/accounting.json: every rule of section 9."""
    def d(q, length=100):
        off = (q * 100) if q * 100 + length <= MASK64 else 0
        return {"data": str(q), "offset": str(off), "length": length}

    def end(t, nbytes=None):
        return {"end": str(t), "bytes": str(t * 100 if nbytes is None else nbytes)}

    def c(q):
        return {"corrupt": str(q)}

    no3 = [d(q) for q in range(20) if q != 3]
    return [
        ("in_order", "0..9 then END(10): complete.", [d(q) for q in range(10)] + [end(10)]),
        ("loss_ranges", "0..19 without 3, 7, 8 and the tail 18..19, then END(20).",
         [d(q) for q in range(18) if q not in (3, 7, 8)] + [end(20)]),
        ("beyond_end_after_end", "0..19 without 3, END(20), then seq 25: 25 is beyond END, 3 is lost.",
         no3 + [end(20), d(25)]),
        ("beyond_end_before_end", "0..19 without 3, seq 25, then END(20): 25 is taken back as beyond END.",
         no3 + [d(25), end(20)]),
        ("beyond_end_far_before_end", "0..9, seq 2^63, then END(10): one beyond END, nothing lost.",
         [d(q) for q in range(10)] + [d(1 << 63), end(10)]),
        ("beyond_end_far_with_loss", "0..9 without 4, seq 2^63, then END(10): 4 lost, one beyond END.",
         [d(q) for q in range(10) if q != 4] + [d(1 << 63), end(10)]),
        ("end_overtakes_data", "END(20) first, then 0..19: all stream data, after_end 20, nothing beyond.",
         [end(20)] + [d(q) for q in range(20)]),
        ("no_end", "0..49 without 10..12, no END: expected = highest + 1, tail unknown.",
         [d(q) for q in range(50) if q not in (10, 11, 12)]),
        ("duplicates_and_reorder", "0, 2, 1, 1, 3, 0, END(4): one reordered (distance 1), two duplicates.",
         [d(0), d(2), d(1), d(1), d(3), d(0), end(4)]),
        ("corrupt_does_not_count_as_seen", "0, corrupt 1, 2, END(3): 1 lost, one corrupt.",
         [d(0), c(1), d(2), end(3)]),
        ("end_mismatch", "0..4, END(5), END(6): the first END fixes the totals, one mismatch.",
         [d(q) for q in range(5)] + [end(5), end(6)]),
        ("empty_stream", "END(0) alone: complete and empty.", [end(0)]),
        ("late_end_mixed_sizes", "0..4 of 100 bytes, then 5 (37 bytes) and 6 (50 bytes), then END(5, 500): "
         "5 and 6 are taken back with their own sizes (87 bytes beyond END), complete.",
         [d(q) for q in range(5)] + [{"data": "5", "offset": "500", "length": 37},
                                     {"data": "6", "offset": "537", "length": 50}, end(5)]),
        ("zero_length_fill", "0..4 with seq 2 empty (0 bytes), END(5, 500 bytes): nothing lost, "
         "but 100 bytes never arrived: not complete.",
         [d(0), d(1), {"data": "2", "offset": "200", "length": 0}, d(3), d(4), end(5)]),
        ("end_zero_after_data", "0..2 then END(0): all three beyond END.", [d(0), d(1), d(2), end(0)]),
        ("seq_max_is_beyond", "0, 1, seq 2^64-1, no END: 2^64-1 can never be stream data.",
         [d(0), d(1), d(MASK64)]),
        ("late_beyond_window", "0, then 70000, then 1: 1 is more than W below the highest (late, stays lost).",
         [d(0), d(70000), d(1), end(70001)]),
        ("gap_fill_after_end", "0..9 without 5, END(10), then 5 and 5 again: filled after the END.",
         [d(q) for q in range(10) if q != 5] + [end(10), d(5), d(5)]),
        ("leading_loss", "5..9, END(10): 0..4 lost.", [d(q) for q in range(5, 10)] + [end(10)]),
    ]

def build_vectors():
    valid = []

    def add_valid(name, description, data):
        outcome, h, _ = validate(data)
        assert outcome == "valid", (name, outcome)
        entry = {"name": name, "description": description, "hex": data.hex(),
                 "fields": json_fields(h)}
        payload = data[h["header_length"]:]
        mm = None
        if h["flags"] & FLAG_PATTERN and h["flags"] & FLAG_DATA:
            mm = pattern_first_mismatch(payload, h["stream_id"], h["offset"])
        entry["pattern_ok"] = mm is None
        entry["first_mismatch"] = mm
        if h["flags"] & FLAG_END:
            d, b = struct.unpack(">QQ", payload)
            entry["end"] = {"datagrams": str(d), "bytes": str(b)}
        if h["header_length"] > HEADER_SIZE:
            entry["extension_hex"] = data[HEADER_SIZE:h["header_length"]].hex()
        valid.append(entry)

    dp = FLAG_DATA | FLAG_PATTERN
    add_valid("data_pattern_first", "First DATA datagram of a stream: seq 0, offset 0, 32 pattern bytes.",
              encode(dp, SID_A, 0, 0, TS, pattern(SID_A, 0, 32)))
    add_valid("data_pattern_second", "seq 1, offset 32, 32 pattern bytes.",
              encode(dp, SID_A, 1, 32, TS + 1000, pattern(SID_A, 32, 32)))
    add_valid("data_pattern_odd_offset", "Payload not aligned to 8: offset 13, 29 bytes (ends mid-word too).",
              encode(dp, SID_A, 7, 13, TS + 2000, pattern(SID_A, 13, 29)))
    add_valid("data_pattern_one_byte", "One payload byte at offset 7 (last byte of word 0).",
              encode(dp, SID_A, 2, 7, TS, pattern(SID_A, 7, 1)))
    add_valid("data_pattern_high_stream_id", "Stream id above 2^63 and a large offset (2^40 + 5).",
              encode(dp, SID_B, 0x123456789, (1 << 40) + 5, TS, pattern(SID_B, (1 << 40) + 5, 40)))
    add_valid("data_pattern_max_values", "All-ones sequence and stream id, offset 2^64 - 8 (last word of the u64 space).",
              encode(dp, MASK64, MASK64, MASK64 - 7, MASK64, pattern(MASK64, MASK64 - 7, 8)))
    add_valid("data_empty_payload", "DATA with PATTERN and no payload: header only, 48 bytes.",
              encode(dp, SID_A, 3, 96, TS, b""))
    add_valid("data_no_pattern", "DATA without PATTERN: opaque payload, not checked against the pattern.",
              encode(FLAG_DATA, SID_A, 4, 96, TS, b"hello, zcstream!\n"))
    add_valid("data_pattern_mismatch", "Structurally valid, checksum good, but payload byte 5 differs from the "
              "pattern: a receiver counts it corrupt.",
              encode(dp, SID_A, 5, 113, TS, bytes(b ^ (0x40 if i == 5 else 0)
                                                 for i, b in enumerate(pattern(SID_A, 113, 24)))))
    add_valid("data_extended_header", "Header length 56: 8 extension bytes a v1 receiver skips; "
              "the checksum covers them.",
              encode(dp, SID_A, 6, 137, TS, pattern(SID_A, 137, 16), extension=b"EXT\x00\x01\x02\x03\x04"))
    add_valid("end_totals", "END: sequence = total DATA datagrams (8), offset = total payload bytes (153); "
              "payload repeats both.",
              encode(FLAG_END, SID_A, 8, 153, TS + 5000, end_payload(8, 153)))
    add_valid("end_empty_stream", "END of a stream that carried nothing.",
              encode(FLAG_END, SID_B, 0, 0, TS, end_payload(0, 0)))
    add_valid("end_extended_header", "END with a 64-byte header (16 extension bytes of zero).",
              encode(FLAG_END, SID_B, 3, 4000, TS, end_payload(3, 4000), extension=bytes(16)))

    invalid = []

    def add_invalid(name, description, data, reason):
        got = reason_of(data)
        assert got == reason, (name, got, reason)
        entry = {"name": name, "description": description, "hex": data.hex(), "reason": reason}
        if reason == "bad_checksum":
            h = parse_header(data)
            entry["fields"] = json_fields(h)
            entry["computed_checksum"] = datagram_checksum(data)
        invalid.append(entry)

    good = encode(dp, SID_A, 0, 0, TS, pattern(SID_A, 0, 16))
    good_end = encode(FLAG_END, SID_A, 1, 16, TS, end_payload(1, 16))

    def mutate(data, at, new, reseal=True):
        d = bytearray(data)
        d[at:at + len(new)] = new
        return _with_checksum_recomputed(d) if reseal else bytes(d)

    add_invalid("empty", "Zero bytes.", b"", "too_short")
    add_invalid("short_47", "A valid header cut to 47 bytes.", good[:47], "too_short")
    add_invalid("bad_magic", "Magic \"ZCSU\".", mutate(good, 0, b"ZCSU"), "bad_magic")
    add_invalid("bad_magic_and_version", "Magic is checked before version.",
                mutate(mutate(good, 0, b"XCST"), 4, b"\x02"), "bad_magic")
    add_invalid("version_0", "Version 0.", mutate(good, 4, b"\x00"), "unsupported_version")
    add_invalid("version_2", "Version 2 (a future, incompatible version).", mutate(good, 4, b"\x02"),
                "unsupported_version")
    add_invalid("header_length_40", "Header length 40 < 48.", mutate(good, 6, struct.pack(">H", 40)),
                "bad_header_length")
    add_invalid("header_length_52", "Header length 52: not a multiple of 8 (payload length adjusted so "
                "lengths would add up).",
                mutate(mutate(good, 6, struct.pack(">H", 52)), 40, struct.pack(">I", 12)), "bad_header_length")
    add_invalid("header_length_beyond_datagram", "Header length 72 > datagram length 64.",
                mutate(mutate(good, 6, struct.pack(">H", 72)), 40, struct.pack(">I", 0)), "bad_header_length")
    add_invalid("header_length_and_flags_bad", "Header length is checked before flags.",
                mutate(mutate(good, 6, struct.pack(">H", 40)), 5, b"\x03"), "bad_header_length")
    add_invalid("reserved_flag_0x08", "DATA|PATTERN plus reserved bit 0x08.", mutate(good, 5, b"\x0d"), "bad_flags")
    add_invalid("reserved_flag_0x80", "DATA plus reserved bit 0x80.", mutate(good, 5, b"\x81"), "bad_flags")
    add_invalid("flags_data_and_end", "Both DATA and END.", mutate(good, 5, b"\x03"), "bad_flags")
    add_invalid("flags_none", "Neither DATA nor END (flags 0).", mutate(good, 5, b"\x00"), "bad_flags")
    add_invalid("flags_pattern_only", "PATTERN alone: neither DATA nor END.", mutate(good, 5, b"\x04"), "bad_flags")
    add_invalid("length_mismatch_short", "Payload length says 17, datagram carries 16.",
                mutate(good, 40, struct.pack(">I", 17)), "length_mismatch")
    add_invalid("length_mismatch_long", "Payload length says 16, one trailing byte follows.",
                _with_checksum_recomputed(good + b"\x00"), "length_mismatch")
    add_invalid("length_mismatch_and_bad_checksum", "Lengths are checked before the checksum.",
                mutate(good, 40, struct.pack(">I", 15), reseal=False), "length_mismatch")
    add_invalid("bad_checksum_payload", "One payload bit flipped after sealing.",
                mutate(good, 50, bytes([good[50] ^ 0x01]), reseal=False), "bad_checksum")
    add_invalid("bad_checksum_field", "Checksum field off by one.",
                mutate(good, 44, struct.pack(">I", (struct.unpack_from(">I", good, 44)[0] + 1) & 0xFFFFFFFF),
                       reseal=False), "bad_checksum")
    add_invalid("bad_checksum_header", "Sequence changed after sealing (the header is covered too).",
                mutate(good, 23, b"\x01", reseal=False), "bad_checksum")
    add_invalid("bad_checksum_extension", "Extension byte changed after sealing (extensions are covered).",
                mutate(encode(dp, SID_A, 6, 137, TS, pattern(SID_A, 137, 16), extension=b"EXT\x00\x01\x02\x03\x04"),
                       50, b"\xff", reseal=False), "bad_checksum")
    add_invalid("end_payload_8", "END with an 8-byte payload.",
                encode(FLAG_END, SID_A, 1, 16, TS, struct.pack(">Q", 1)), "bad_end")
    add_invalid("end_payload_24", "END with a 24-byte payload.",
                encode(FLAG_END, SID_A, 1, 16, TS, end_payload(1, 16) + bytes(8)), "bad_end")
    add_invalid("end_datagrams_differ", "END whose header sequence (5) differs from the payload's total datagrams (4).",
                encode(FLAG_END, SID_A, 5, 16, TS, end_payload(4, 16)), "bad_end")
    add_invalid("end_bytes_differ", "END whose header offset (16) differs from the payload's total bytes (17).",
                encode(FLAG_END, SID_A, 1, 16, TS, end_payload(1, 17)), "bad_end")
    add_invalid("end_payload_0", "END with no payload.", encode(FLAG_END, SID_A, 1, 16, TS, b""), "bad_end")
    add_invalid("bad_end_and_bad_checksum", "The checksum is checked before the END payload size.",
                mutate(encode(FLAG_END, SID_A, 1, 16, TS, struct.pack(">Q", 1)), 50, b"\x55", reseal=False),
                "bad_checksum")
    assert validate(good_end)[0] == "valid"

    crc = []
    for name, data in (("empty", b""), ("check_123456789", b"123456789"), ("one_zero_byte", b"\0"),
                       ("32_zero_bytes", bytes(32)), ("32_ff_bytes", b"\xff" * 32),
                       ("0_to_31", bytes(range(32))), ("31_to_0", bytes(range(31, -1, -1))),
                       ("zcst", b"ZCST"), ("0_to_255_x4", bytes(range(256)) * 4)):
        crc.append({"name": name, "hex": data.hex(), "crc32c": crc32c(data)})
    assert crc32c(b"123456789") == 0xE3069283

    accounting = [{"name": name, "description": description, "window": REORDER_WINDOW,
                   "events": events, "expected": account(events)}
                  for name, description, events in accounting_scenarios()]

    rvalid, rinvalid = report_scenarios()
    reports = {
        "valid": [{"name": n, "description": d, "hex": b.hex(), "report": decode_report(b)[1]} for n, d, b in rvalid],
        "invalid": [{"name": n, "description": d, "hex": b.hex(), "reason": r} for n, d, b, r in rinvalid],
    }
    for n, _, b, r in rinvalid:
        assert decode_report(b) == ("rejected", r), (n, decode_report(b))

    lvalid, linvalid = reliable_scenarios()
    reliable = {"valid": [], "invalid": []}
    for n, d, b in lvalid:
        outcome, h, _ = validate(b, reliable=True)
        assert outcome == "valid", (n, outcome)
        payload = b[h["header_length"]:]
        entry = {"name": n, "description": d, "hex": b.hex(), "version": RELIABLE_VERSION,
                 "fields": json_fields(h), "identity_checksum": identity_checksum(b),
                 "v1_reason": reason_of(b)}
        if h["flags"] & FLAG_DATA and h["flags"] & FLAG_PATTERN:
            mm = pattern_first_mismatch(payload, h["stream_id"], h["offset"])
            entry["pattern_ok"] = mm is None
        if h["flags"] & FLAG_END:
            t, nb = struct.unpack(">QQ", payload)
            entry["end"] = {"datagrams": str(t), "bytes": str(nb)}
        reliable["valid"].append(entry)
    for n, d, b, r in linvalid:
        assert reason_of(b, reliable=True) == r, (n, reason_of(b, reliable=True), r)
        reliable["invalid"].append({"name": n, "description": d, "hex": b.hex(), "reason": r,
                                    "v1_reason": reason_of(b)})

    sv, si, nv, ni = control_scenarios()
    status = {"valid": [], "invalid": []}
    for n, d, b in sv:
        outcome, m = decode_status(b)
        assert outcome == "valid", (n, m)
        status["valid"].append({"name": n, "description": d, "hex": b.hex(), "status": m})
    for n, d, b, r in si:
        assert decode_status(b) == ("rejected", r), (n, decode_status(b), r)
        status["invalid"].append({"name": n, "description": d, "hex": b.hex(), "reason": r})
    nak = {"valid": [], "invalid": []}
    for n, d, b in nv:
        outcome, m = decode_nak(b)
        assert outcome == "valid", (n, m)
        nak["valid"].append({"name": n, "description": d, "hex": b.hex(), "nak": m})
    for n, d, b, r in ni:
        assert decode_nak(b) == ("rejected", r), (n, decode_nak(b), r)
        nak["invalid"].append({"name": n, "description": d, "hex": b.hex(), "reason": r})
    assert len(encode_nak(NAK_SAMPLES["nak_max_ranges"])) == NAK_MAX_LENGTH
    assert len(encode_status(STATUS_SAMPLES["status_gap"])) == STATUS_LENGTH
    return {
        "valid.json": valid,
        "invalid.json": invalid,
        "crc32c.json": crc,
        "accounting.json": accounting,
        "reports.json": reports,
        "reliable.json": reliable,
        "status.json": status,
        "nak.json": nak,
    }


def dump_json(obj):
    return json.dumps(obj, indent=2) + "\n"


def default_vector_dir():
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vectors"))


def cmd_gen_vectors(args):
    out = args.out or default_vector_dir()
    os.makedirs(out, exist_ok=True)
    for fname, obj in build_vectors().items():
        with open(os.path.join(out, fname), "w") as f:
            f.write(dump_json(obj))
        print("wrote %s (%d entries)" % (os.path.join(out, fname), len(obj)))
    return 0


def check_vectors(directory, verbose=False):
    """Re-verifies every vector file independently of how it was generated.
    Returns (passed, failed, messages)."""
    passed, failed, msgs = 0, 0, []

    def ok(cond, what):
        nonlocal passed, failed
        if cond:
            passed += 1
            if verbose:
                msgs.append("ok   " + what)
        else:
            failed += 1
            msgs.append("FAIL " + what)

    def load(name):
        with open(os.path.join(directory, name)) as f:
            return json.load(f)

    for v in load("crc32c.json"):
        ok(crc32c(bytes.fromhex(v["hex"])) == v["crc32c"], "crc32c %s" % v["name"])
    ok(any(v["hex"] == b"123456789".hex() and v["crc32c"] == 0xE3069283 for v in load("crc32c.json")),
       "crc32c check value 0xE3069283 present")

    for v in load("valid.json"):
        data = bytes.fromhex(v["hex"])
        outcome, h, _ = validate(data)
        good = outcome == "valid" and json_fields(h) == v["fields"]
        if good and h["flags"] & FLAG_DATA and h["flags"] & FLAG_PATTERN:
            mm = pattern_first_mismatch(data[h["header_length"]:], h["stream_id"], h["offset"])
            good = (mm is None) == v["pattern_ok"] and mm == v.get("first_mismatch")
        elif good:
            good = v["pattern_ok"] is True
        if good and h["flags"] & FLAG_END:
            d, b = struct.unpack(">QQ", data[h["header_length"]:])
            good = v["end"] == {"datagrams": str(d), "bytes": str(b)}
        ok(good, "valid %s" % v["name"])

    for v in load("invalid.json"):
        data = bytes.fromhex(v["hex"])
        got = reason_of(data)
        good = got == v["reason"]
        if good and got == "bad_checksum":
            good = (datagram_checksum(data) == v["computed_checksum"]
                    and json_fields(parse_header(data)) == v["fields"])
        ok(good, "invalid %s: expected %s, got %s" % (v["name"], v["reason"], got))

    for v in load("accounting.json"):
        ok(account(v["events"], v["window"]) == v["expected"], "accounting %s" % v["name"])
        e = v["expected"]
        lost = int(e["lost"])
        listed = sum(int(hi) - int(lo) + 1 for lo, hi in e["lost_ranges"])
        ok(int(e["lost_range_count"]) > len(e["lost_ranges"]) or listed == lost,
           "accounting %s: the ranges add up to lost" % v["name"])
        ok(int(e["received"]) == int(e["unique"]) + int(e["duplicates"]) + int(e["late"]) + int(e["beyond_end"]),
           "accounting %s: received = unique + duplicates + late + beyond_end" % v["name"])

    reports = load("reports.json")
    for v in reports["valid"]:
        data = bytes.fromhex(v["hex"])
        outcome, r = decode_report(data)
        ok(outcome == "valid" and r == v["report"], "report %s" % v["name"])
        # A stream receiver (version 1, §8) rejects every REPORT: it never enters a stream.
        ok(reason_of(data) == "unsupported_version", "report %s: a stream receiver rejects it" % v["name"])
        # Re-encoding the decoded report gives the same bytes (unless it carries unknown counters).
        if int.from_bytes(data[HEADER_SIZE:HEADER_SIZE + 2], "big") in (REPORT_FIXED_BODY, REPORT_RELIABLE_FIXED_BODY):
            ok(encode_report(r, limit=len(data)) == data, "report %s: re-encodes byte for byte" % v["name"])
    for v in reports["invalid"]:
        got = decode_report(bytes.fromhex(v["hex"]))
        ok(got == ("rejected", v["reason"]), "report invalid %s: expected %s, got %s" % (v["name"], v["reason"], got))

    rel = load("reliable.json")
    for v in rel["valid"]:
        data = bytes.fromhex(v["hex"])
        outcome, h, _ = validate(data, reliable=True)
        good = outcome == "valid" and json_fields(h) == v["fields"] and h["version"] == v["version"]
        ok(good, "reliable %s" % v["name"])
        ok(identity_checksum(data) == v["identity_checksum"], "reliable %s: identity checksum" % v["name"])
        # A version 1/2 receiver (today's zc-recv) rejects every reliable datagram: no stream, no counter.
        ok(reason_of(data) == v["v1_reason"] == "unsupported_version", "reliable %s: a version 1 receiver rejects it"
           % v["name"])
        if h and h["flags"] & FLAG_REPAIR:
            orig = bytearray(data)
            orig[5] &= ~FLAG_REPAIR & 0xFF
            orig = _with_checksum_recomputed(orig)
            ok(mark_repair(orig) == data and struct.unpack_from(">I", orig, 44)[0] == v["identity_checksum"],
               "reliable %s: the repair is the original with REPAIR set, resealed" % v["name"])
    for v in rel["invalid"]:
        data = bytes.fromhex(v["hex"])
        got = reason_of(data, reliable=True)
        ok(got == v["reason"], "reliable invalid %s: expected %s, got %s" % (v["name"], v["reason"], got))
        ok(reason_of(data) == v["v1_reason"], "reliable invalid %s: version 1 view" % v["name"])
    for fname, key, decode in (("status.json", "status", decode_status), ("nak.json", "nak", decode_nak)):
        f = load(fname)
        for v in f["valid"]:
            data = bytes.fromhex(v["hex"])
            got = decode(data)
            ok(got == ("valid", v[key]), "%s %s" % (key, v["name"]))
            ok(reason_of(data, reliable=True) == "bad_flags" and reason_of(data) == "unsupported_version",
               "%s %s: never stream data" % (key, v["name"]))
            ok(decode_report(data) == ("rejected", "not_report"), "%s %s: never a REPORT" % (key, v["name"]))
            plain = data[6:8] == struct.pack(">H", HEADER_SIZE) and data[48:50] == struct.pack(">H", STATUS_FIXED_BODY if key == "status" else NAK_FIXED_BODY)
            if plain:
                enc = encode_status(v[key]) if key == "status" else encode_nak(v[key])
                ok(enc == data, "%s %s: re-encodes byte for byte" % (key, v["name"]))
        for v in f["invalid"]:
            got = decode(bytes.fromhex(v["hex"]))
            ok(got == ("rejected", v["reason"]), "%s invalid %s: expected %s, got %s" % (key, v["name"], v["reason"], got))

    # The files on disk must be exactly what this generator produces (no hand edits drift).
    for fname, obj in build_vectors().items():
        with open(os.path.join(directory, fname)) as f:
            ok(f.read() == dump_json(obj), "%s matches gen-vectors output" % fname)
    return passed, failed, msgs


def cmd_check_vectors(args):
    directory = args.dir or default_vector_dir()
    passed, failed, msgs = check_vectors(directory, args.verbose)
    for m in msgs:
        print(m)
    print("vectors: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def cmd_decode(args):
    h = "".join(args.hex.split()).lower()
    if h.startswith("0x"):
        h = h[2:]
    data = bytes.fromhex(h)
    if len(data) > 4 and data[:4] == b"ZCST" and data[4] == KEYED_VERSION:
        try:
            secret = read_key_file(args.key) if args.key else None
        except (OSError, ValueError) as e:
            print("zcstream.py: %s" % e, file=sys.stderr)
            return 2
        print(json.dumps(describe_keyed(data, secret), indent=2))
        return 0
    if is_control(data):
        kind, outcome, m = decode_control(data)
        print(json.dumps({"kind": kind, "length": len(data), "outcome": outcome,
                          (kind.lower() if outcome == "valid" else "reason"): m}, indent=2))
        return 0
    if len(data) > 4 and data[4] == REPORT_VERSION:
        outcome, r = decode_report(data)
        print(json.dumps({"kind": "REPORT", "length": len(data), "outcome": outcome,
                          ("report" if outcome == "valid" else "reason"): r}, indent=2))
        return 0
    print(json.dumps(describe(data), indent=2))
    return 0


def cmd_pattern(args):
    print(pattern(int(args.stream_id, 0), int(args.offset, 0), int(args.count, 0)).hex())
    return 0


def cmd_crc32c(args):
    print("0x%08x" % crc32c(bytes.fromhex("".join(args.hex.split()))))
    return 0


def accounting_datagrams(events, stream_id):
    """The datagrams of an accounting scenario: opaque DATA (0xA5 bytes), a corrupt
    DATA (sequence field changed after sealing), END with its totals. One timestamp for
    the whole scenario: a duplicate is the same bytes again (SPEC §9.2), not a conflict."""
    out = []
    now = time.time_ns()
    for e in events:
        if "end" in e:
            t, b = int(e["end"]), int(e["bytes"])
            out.append(encode(FLAG_END, stream_id, t, b, now, end_payload(t, b)))
            continue
        q = int(e.get("data", e.get("corrupt")))
        length = int(e.get("length", 100))
        offset = int(e.get("offset", 0))
        d = bytearray(encode(FLAG_DATA, stream_id, q, offset, now, b"\xa5" * length))
        if "corrupt" in e:
            d[20] ^= 0x40
        out.append(bytes(d))
    return out


def cmd_send_accounting(args):
    """Sends every scenario of vectors/accounting.json (or --only NAME) to HOST:PORT, one
    stream each (stream id = --base-id + index), paced; prints {name: stream id hex}."""
    with open(os.path.join(args.dir or default_vector_dir(), "accounting.json")) as f:
        vectors = json.load(f)
    host, port = args.destination.rsplit(":", 1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    ids = {}
    for i, v in enumerate(vectors):
        if args.only and v["name"] not in args.only:
            continue
        sid = (int(args.base_id, 0) + i) & MASK64
        ids[v["name"]] = "0x%016x" % sid
        for d in accounting_datagrams(v["events"], sid):
            sock.sendto(d, (host.strip("[]"), int(port)))
            time.sleep(args.gap_us / 1e6)
    print(json.dumps(ids))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description="zcstream wire format reference tool")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen-vectors", help="write Protocol/vectors/*.json")
    g.add_argument("--out")
    g.set_defaults(fn=cmd_gen_vectors)
    c = sub.add_parser("check-vectors", help="re-verify the vector files")
    c.add_argument("--dir")
    c.add_argument("-v", "--verbose", action="store_true")
    c.set_defaults(fn=cmd_check_vectors)
    d = sub.add_parser("decode", aliases=["describe"], help="validate and print one datagram (hex) as JSON")
    d.add_argument("hex")
    d.add_argument("--key", metavar="FILE", help="the secret of a keyed stream (SPEC §14.2: 32 bytes or 64 hex "
                   "digits): checks a version 4 datagram's tag and decrypts a suite 2 payload")
    d.set_defaults(fn=cmd_decode)
    t = sub.add_parser("pattern", help="pattern bytes as hex")
    t.add_argument("stream_id")
    t.add_argument("offset")
    t.add_argument("count")
    t.set_defaults(fn=cmd_pattern)
    r = sub.add_parser("crc32c", help="CRC32C of hex bytes")
    r.add_argument("hex")
    r.set_defaults(fn=cmd_crc32c)
    a = sub.add_parser("send-accounting", help="send the accounting scenarios to a receiver (loopback tests)")
    a.add_argument("destination", help="HOST:PORT")
    a.add_argument("--only", nargs="*", help="scenario names")
    a.add_argument("--base-id", default="0xacc0000000000000")
    a.add_argument("--gap-us", type=float, default=50)
    a.add_argument("--dir")
    a.set_defaults(fn=cmd_send_accounting)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
