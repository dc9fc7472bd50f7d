-- zcstream.lua: Wireshark / tshark dissector for the zcstream UDP stream protocol.
--
-- Wire format: Protocol/SPEC.md. Usage:
--   tshark -X lua_script:Protocol/zcstream.lua -r capture.pcap
--   wireshark -X lua_script:Protocol/zcstream.lua   (or copy into the personal plugins dir)
--
-- Registered on UDP port 9000 (preference "zcstream.port", 0 disables; e.g.
-- `-o zcstream.port:5201`) and as a heuristic dissector on UDP: any UDP payload that
-- starts with "ZCST" and version 1, 3 or 4 is taken, whatever the port (and a REPORT:
-- version 2 with flags 0x08).
--
-- REPORT datagrams (SPEC §12, version 2, flags 0x08: a receiver's verdict sent back
-- to the sender) are checked in §12.3's order; zcstream.kind is "REPORT", zcstream.status
-- "valid" or the reason (too_short ... bad_checksum, bad_report), and the body's
-- fields are zcstream.report.* (verdict, received, unique, lost, lost_range, ...;
-- repaired, repair_duplicates, naks_sent, status_sent on a reliable stream's REPORT).
--
-- Reliable streams (SPEC §13, version 3): DATA/END with RELIABLE (0x10) and REPAIR
-- (0x20) are stream datagrams checked by §13.2 (zcstream.identity_checksum: a repair's
-- checksum with REPAIR clear, the original's); a version 3 datagram with 0x40 or 0x80
-- in its flags is a control candidate, checked in §13.4's order: zcstream.kind "STATUS"
-- or "NAK", zcstream.status "valid" or the reason (not_control ... bad_status, bad_nak),
-- the body in zcstream.ctl.* (ack, receiver_id, window_limit, highest, unique, echo,
-- range, ...).
--
-- Keyed streams (SPEC §14, version 4): every kind carries version 4, checksum field 0 and a
-- 40-byte trailer after the payload (key id, suite, origin, packet number, AES-256-GCM tag).
-- §14.4's checks 1-7 need no key and run here in order: zcstream.status is the reason
-- (too_short, bad_magic, bad_header_length, bad_flags, length_mismatch, bad_trailer) or,
-- when they pass, "tag_not_checked": Wireshark's Lua (4.0, Debian 12) has no AES-GCM, so
-- the tag (and key id) cannot be checked here; `zcstream.py describe HEX --key FILE` checks
-- it. The trailer is in zcstream.keyed.* (key_id, suite, origin, packet_number, tag,
-- tag.status); zcstream.kind is STREAM, REPORT, STATUS or NAK by the flag byte. A suite 1
-- payload is in clear (END totals and the pattern are shown); a suite 2 payload is encrypted.
--
-- Validation mirrors the reference implementation, in the same order and with the
-- same names (a version 3 receiver's view), shown in zcstream.status: valid, too_short, bad_magic,
-- unsupported_version, bad_header_length, bad_flags, length_mismatch, bad_checksum,
-- bad_end. zcstream.checksum.status is "good"/"bad" when the checksum was checked
-- (structure valid up to and including the length check) and "unverified" otherwise.
--
-- Captures on loopback see UDP GSO super-datagrams (several datagrams back to back
-- in one UDP payload, as the sender hands them to the kernel). With the preference
-- "zcstream.gso_split" (default on), when a datagram's declared length is shorter
-- than the UDP payload and the rest starts with "ZCST", the rest is dissected as
-- further datagrams.
--
-- Works with Lua 5.2 (bit32, Wireshark <= 4.2) and Lua 5.3/5.4 (native operators).

local zc = Proto("zcstream", "zcstream zero-copy UDP stream")

---------------------------------------------------------------------------
-- 32-bit bit operations for both Lua generations
---------------------------------------------------------------------------
local band, bxor, rshift
if bit32 then
    band, bxor, rshift = bit32.band, bit32.bxor, bit32.rshift
else
    -- Lua 5.3+: native integer operators, compiled at run time so that this file
    -- still parses under Lua 5.2.
    band, bxor, rshift = load([[
        return function(a, b) return a & b end,
               function(a, b) return a ~ b end,
               function(a, n) return (a & 0xFFFFFFFF) >> n end
    ]])()
end

---------------------------------------------------------------------------
-- Constants
---------------------------------------------------------------------------
local MAGIC = 0x5A435354 -- "ZCST"
local VERSION = 1
local HEADER_SIZE = 48
local CHECKSUM_OFFSET = 44
local END_PAYLOAD_SIZE = 16
local FLAG_DATA, FLAG_END, FLAG_PATTERN = 0x01, 0x02, 0x04
local FLAGS_KNOWN = 0x07
local REPORT_VERSION, FLAG_REPORT = 2, 0x08
local RELIABLE_VERSION, FLAG_RELIABLE, FLAG_REPAIR, FLAG_STATUS, FLAG_NAK = 3, 0x10, 0x20, 0x40, 0x80
local FLAGS_KNOWN_V3 = 0x37
local KEYED_VERSION, TRAILER_SIZE = 4, 40
local KEYED_MIN_LENGTH = HEADER_SIZE + TRAILER_SIZE
local TAG_NOT_CHECKED = "not checked (no AES-GCM in Wireshark Lua); zcstream.py describe --key checks it"
local STATUS_FIXED_BODY, NAK_FIXED_BODY, NAK_MAX_RANGES = 56, 24, 64
local REPORT_RELIABLE_FIXED_BODY = 240
local REPORT_RELIABLE = { "repaired", "repair_duplicates", "naks_sent", "status_sent" }
local REPORT_FIXED_BODY, REPORT_MAX_RANGES = 208, 32
-- The REPORT body after its 8-byte preamble, in wire order (SPEC §12.2).
local REPORT_COUNTERS = { "received", "unique", "unique_payload_bytes", "expected_datagrams",
    "expected_payload_bytes", "lost", "lost_range_count", "reordered", "max_reorder_distance",
    "duplicates", "late", "beyond_end", "after_end", "corrupt", "kernel_drops", "latency_samples" }
local REPORT_LATENCIES = { "latency_min_ns", "latency_p50_ns", "latency_p99_ns", "latency_p99_9_ns",
    "latency_max_ns" }
local REPORT_OUTAGES = { "gaps", "longest_gap_datagrams", "longest_gap_ns", "first_to_last_ns" }

---------------------------------------------------------------------------
-- CRC32C (Castagnoli): reflected polynomial 0x82F63B78, init/xorout 0xFFFFFFFF
---------------------------------------------------------------------------
local crc_table = {}
for i = 0, 255 do
    local c = i
    for _ = 1, 8 do
        if band(c, 1) ~= 0 then
            c = bxor(rshift(c, 1), 0x82F63B78)
        else
            c = rshift(c, 1)
        end
    end
    crc_table[i] = c
end

-- Continues a running (not yet final-inverted) CRC over bytes [i, j] of string s.
local function crc_update(c, s, i, j)
    local byte = string.byte
    for k = i, j do
        c = bxor(rshift(c, 8), crc_table[band(bxor(c, byte(s, k)), 0xFF)])
    end
    return c
end

local function crc32c(s)
    return bxor(crc_update(0xFFFFFFFF, s, 1, #s), 0xFFFFFFFF)
end

-- Datagram checksum: CRC32C over the whole datagram with bytes 44..47 taken as zero.
local function datagram_checksum(s)
    local c = crc_update(0xFFFFFFFF, s, 1, CHECKSUM_OFFSET)
    c = crc_update(c, "\0\0\0\0", 1, 4)
    c = crc_update(c, s, CHECKSUM_OFFSET + 5, #s)
    return bxor(c, 0xFFFFFFFF)
end

assert(crc32c("123456789") == 0xE3069283, "zcstream.lua: CRC32C self-test failed")

---------------------------------------------------------------------------
-- Payload pattern, with 64-bit values as four 16-bit limbs (least significant
-- first) so it runs the same on Lua 5.2 doubles and Lua 5.4 integers.
---------------------------------------------------------------------------
local MULT = { 0x7C15, 0x7F4A, 0x79B9, 0x9E37 } -- 0x9E3779B97F4A7C15

local function limbs_from_be(s, pos) -- 8 big-endian bytes at 1-based pos
    local b = { string.byte(s, pos, pos + 7) }
    return { b[7] * 256 + b[8], b[5] * 256 + b[6], b[3] * 256 + b[4], b[1] * 256 + b[2] }
end

local function mul64(a, m) -- (a * m) mod 2^64
    local r = { 0, 0, 0, 0 }
    local carry = 0
    for n = 1, 4 do
        local sum = carry
        for i = 1, n do
            sum = sum + a[i] * m[n - i + 1]
        end
        r[n] = sum % 65536
        carry = math.floor(sum / 65536)
    end
    return r
end

local function inc64(a) -- a + 1 mod 2^64, in place
    for n = 1, 4 do
        a[n] = a[n] + 1
        if a[n] < 65536 then return end
        a[n] = 0
    end
end

-- First index (0-based) where payload string p differs from the pattern of stream
-- `sid` (limbs) at stream offset `off` (limbs), or nil.
local function pattern_first_mismatch(p, sid, off)
    local n = #p
    if n == 0 then return nil end
    local within = off[1] % 8
    -- k = off >> 3
    local k = {
        math.floor(off[1] / 8) + (off[2] % 8) * 8192,
        math.floor(off[2] / 8) + (off[3] % 8) * 8192,
        math.floor(off[3] / 8) + (off[4] % 8) * 8192,
        math.floor(off[4] / 8),
    }
    local kp1 = { k[1], k[2], k[3], k[4] }
    inc64(kp1)
    local pos = 1
    local byte = string.byte
    while pos <= n do
        local w = mul64(kp1, MULT)
        local wb = {}
        for l = 1, 4 do
            local v = bxor(w[l], sid[l])
            wb[2 * l - 1] = v % 256
            wb[2 * l] = math.floor(v / 256)
        end
        for j = within + 1, 8 do
            if pos > n then return nil end
            if byte(p, pos) ~= wb[j] then return pos - 1 end
            pos = pos + 1
        end
        within = 0
        inc64(kp1)
    end
    return nil
end

-- Self-test on load (SPEC.md §7 worked example), so a Lua without working 64-bit
-- limb arithmetic or bit operations fails loudly instead of mislabelling packets.
do
    local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end
    local sid = limbs_from_be(unhex("0123456789abcdef"), 1)
    local at = function(o) return limbs_from_be(unhex(string.format("%016x", o)), 1) end
    assert(pattern_first_mismatch(unhex("fab1e1f6de3c149fc5353f7715b64d3d"), sid, at(0)) == nil
        and pattern_first_mismatch(unhex("b64d3dd0b974f44b"), sid, at(13)) == nil
        and pattern_first_mismatch(unhex("b64d3dd0b974f54b"), sid, at(13)) == 6,
        "zcstream.lua: pattern self-test failed")
end

---------------------------------------------------------------------------
-- Fields
---------------------------------------------------------------------------
local f = {
    status = ProtoField.string("zcstream.status", "Validation"),
    magic = ProtoField.uint32("zcstream.magic", "Magic", base.HEX),
    version = ProtoField.uint8("zcstream.version", "Version", base.DEC),
    flags = ProtoField.uint8("zcstream.flags", "Flags", base.HEX),
    flag_data = ProtoField.bool("zcstream.flags.data", "DATA", 8, nil, FLAG_DATA),
    flag_end = ProtoField.bool("zcstream.flags.end", "END", 8, nil, FLAG_END),
    flag_pattern = ProtoField.bool("zcstream.flags.pattern", "PATTERN", 8, nil, FLAG_PATTERN),
    flag_reliable = ProtoField.bool("zcstream.flags.reliable", "RELIABLE", 8, nil, FLAG_RELIABLE),
    flag_repair = ProtoField.bool("zcstream.flags.repair", "REPAIR", 8, nil, FLAG_REPAIR),
    flag_reserved = ProtoField.uint8("zcstream.flags.reserved", "Reserved bits", base.HEX),
    identity_checksum = ProtoField.uint32("zcstream.identity_checksum", "Identity checksum (REPAIR clear)", base.HEX),
    ctl_ack = ProtoField.uint64("zcstream.ctl.ack", "Cumulative ack (all below delivered)", base.DEC),
    ctl_delivered = ProtoField.uint64("zcstream.ctl.delivered_bytes", "Bytes below the ack", base.DEC),
    ctl_fixed = ProtoField.uint16("zcstream.ctl.fixed_length", "Fixed body length", base.DEC),
    ctl_state = ProtoField.uint8("zcstream.ctl.state", "State", base.HEX),
    ctl_end_seen = ProtoField.bool("zcstream.ctl.end_seen", "END seen", 8, nil, 0x01),
    ctl_complete = ProtoField.bool("zcstream.ctl.complete", "Complete", 8, nil, 0x02),
    ctl_gave_up = ProtoField.bool("zcstream.ctl.gave_up", "Gave up", 8, nil, 0x04),
    ctl_feedback_sequence = ProtoField.uint32("zcstream.ctl.feedback_sequence", "Feedback sequence", base.DEC),
    ctl_receiver_id = ProtoField.uint64("zcstream.ctl.receiver_id", "Receiver ID", base.HEX),
    ctl_window_limit = ProtoField.uint64("zcstream.ctl.window_limit", "Window limit (send below)", base.DEC),
    ctl_highest = ProtoField.uint64("zcstream.ctl.highest", "Highest received + 1", base.DEC),
    ctl_unique = ProtoField.uint64("zcstream.ctl.unique", "Distinct received", base.DEC),
    ctl_echo = ProtoField.uint64("zcstream.ctl.echo_timestamp_ns", "Echoed send timestamp (ns)", base.DEC),
    ctl_echo_delay = ProtoField.uint64("zcstream.ctl.echo_delay_ns", "Echo delay (ns)", base.DEC),
    ctl_range_count = ProtoField.uint16("zcstream.ctl.range_count", "Missing ranges", base.DEC),
    ctl_range = ProtoField.string("zcstream.ctl.range", "Missing range"),
    flag_names = ProtoField.string("zcstream.flags.names", "Flag names"),
    header_length = ProtoField.uint16("zcstream.header_length", "Header length", base.DEC),
    stream_id = ProtoField.uint64("zcstream.stream_id", "Stream ID", base.HEX),
    seq = ProtoField.uint64("zcstream.seq", "Sequence", base.DEC),
    offset = ProtoField.uint64("zcstream.offset", "Byte offset", base.DEC),
    timestamp_ns = ProtoField.uint64("zcstream.timestamp_ns", "Send timestamp (ns)", base.DEC),
    timestamp = ProtoField.absolute_time("zcstream.timestamp", "Send time", base.UTC),
    payload_length = ProtoField.uint32("zcstream.payload_length", "Payload length", base.DEC),
    checksum = ProtoField.uint32("zcstream.checksum", "Checksum (CRC32C)", base.HEX),
    checksum_computed = ProtoField.uint32("zcstream.checksum.computed", "Computed checksum", base.HEX),
    checksum_status = ProtoField.string("zcstream.checksum.status", "Checksum status"),
    extension = ProtoField.bytes("zcstream.extension", "Header extension"),
    payload = ProtoField.bytes("zcstream.payload", "Payload"),
    end_datagrams = ProtoField.uint64("zcstream.end.datagrams", "Total datagrams", base.DEC),
    end_bytes = ProtoField.uint64("zcstream.end.bytes", "Total payload bytes", base.DEC),
    pattern_status = ProtoField.string("zcstream.pattern.status", "Pattern"),
    pattern_mismatch = ProtoField.uint32("zcstream.pattern.first_mismatch", "First mismatching payload byte", base.DEC),
    kind = ProtoField.string("zcstream.kind", "Kind"),
    report = ProtoField.bytes("zcstream.report", "REPORT body"),
    report_fixed = ProtoField.uint16("zcstream.report.fixed_length", "Fixed body length", base.DEC),
    report_verdict = ProtoField.string("zcstream.report.verdict", "Verdict"),
    report_state = ProtoField.uint8("zcstream.report.state", "State", base.HEX),
    report_end_seen = ProtoField.bool("zcstream.report.end_seen", "END seen", 8, nil, 0x01),
    report_complete = ProtoField.bool("zcstream.report.complete", "Complete", 8, nil, 0x02),
    report_exact = ProtoField.bool("zcstream.report.exact", "Exact", 8, nil, 0x04),
    report_joined_late = ProtoField.bool("zcstream.report.joined_late", "Joined late", 8, nil, 0x08),
    report_output_incomplete = ProtoField.bool("zcstream.report.output_incomplete", "Output incomplete", 8, nil, 0x10),
    report_listed = ProtoField.uint16("zcstream.report.ranges_listed", "Lost ranges listed", base.DEC),
    report_range = ProtoField.string("zcstream.report.lost_range", "Lost range"),
    keyed_trailer = ProtoField.bytes("zcstream.keyed.trailer", "Keyed trailer"),
    keyed_key_id = ProtoField.uint32("zcstream.keyed.key_id", "Key ID", base.HEX),
    keyed_suite = ProtoField.uint8("zcstream.keyed.suite", "Suite", base.DEC,
        { [1] = "authenticated", [2] = "authenticated, payload encrypted" }),
    keyed_reserved = ProtoField.bytes("zcstream.keyed.reserved", "Reserved"),
    keyed_origin = ProtoField.uint64("zcstream.keyed.origin", "Origin (0: the source, else a receiver id)", base.HEX),
    keyed_packet_number = ProtoField.uint64("zcstream.keyed.packet_number", "Packet number (nonce)", base.DEC),
    keyed_tag = ProtoField.bytes("zcstream.keyed.tag", "Tag (AES-256-GCM)"),
    keyed_tag_status = ProtoField.string("zcstream.keyed.tag.status", "Tag"),
}
for _, name in ipairs(REPORT_COUNTERS) do
    f["report_" .. name] = ProtoField.uint64("zcstream.report." .. name, name, base.DEC)
end
for _, name in ipairs(REPORT_LATENCIES) do
    f["report_" .. name] = ProtoField.int64("zcstream.report." .. name, name, base.DEC)
end
for _, name in ipairs(REPORT_OUTAGES) do
    f["report_" .. name] = ProtoField.uint64("zcstream.report." .. name, name, base.DEC)
end
for _, name in ipairs(REPORT_RELIABLE) do
    f["report_" .. name] = ProtoField.uint64("zcstream.report." .. name, name, base.DEC)
end
zc.fields = {
    f.status, f.magic, f.version, f.flags, f.flag_data, f.flag_end, f.flag_pattern, f.flag_reserved,
    f.flag_names, f.header_length, f.stream_id, f.seq, f.offset, f.timestamp_ns, f.timestamp,
    f.payload_length, f.checksum, f.checksum_computed, f.checksum_status, f.extension, f.payload,
    f.end_datagrams, f.end_bytes, f.pattern_status, f.pattern_mismatch,
    f.kind, f.report, f.report_fixed, f.report_verdict, f.report_state, f.report_end_seen,
    f.report_complete, f.report_exact, f.report_joined_late, f.report_output_incomplete, f.report_listed, f.report_range,
}
for _, list in ipairs({ REPORT_COUNTERS, REPORT_LATENCIES, REPORT_OUTAGES, REPORT_RELIABLE }) do
    for _, name in ipairs(list) do zc.fields[#zc.fields + 1] = f["report_" .. name] end
end
for _, name in ipairs({ "flag_reliable", "flag_repair", "identity_checksum", "ctl_ack", "ctl_delivered", "ctl_fixed",
    "ctl_state", "ctl_end_seen", "ctl_complete", "ctl_gave_up", "ctl_feedback_sequence", "ctl_receiver_id",
    "ctl_window_limit", "ctl_highest", "ctl_unique", "ctl_echo", "ctl_echo_delay", "ctl_range_count", "ctl_range",
    "keyed_trailer", "keyed_key_id", "keyed_suite", "keyed_reserved", "keyed_origin", "keyed_packet_number",
    "keyed_tag", "keyed_tag_status" }) do
    zc.fields[#zc.fields + 1] = f[name]
end

local ex = {
    rejected = ProtoExpert.new("zcstream.rejected", "Invalid zcstream datagram",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_checksum = ProtoExpert.new("zcstream.bad_checksum", "Bad checksum",
        expert.group.CHECKSUM, expert.severity.ERROR),
    pattern = ProtoExpert.new("zcstream.pattern_mismatch", "Payload differs from the pattern",
        expert.group.PROTOCOL, expert.severity.WARN),
}
zc.experts = { ex.rejected, ex.bad_checksum, ex.pattern }

zc.prefs.port = Pref.uint("UDP port", 9000, "UDP port decoded as zcstream (0: heuristic only)")
zc.prefs.gso_split = Pref.bool("Split GSO super-datagrams", true,
    "Dissect back-to-back datagrams in one UDP payload (loopback captures of UDP GSO sends)")
zc.prefs.verify_pattern = Pref.bool("Verify PATTERN payloads", true,
    "Compare PATTERN payloads with the synthetic pattern")

---------------------------------------------------------------------------
-- Dissection
---------------------------------------------------------------------------
-- The bits a stream datagram of this version may carry (version 3: RELIABLE, REPAIR too).
local function known_flags(version)
    if version == RELIABLE_VERSION then return FLAGS_KNOWN_V3 end
    return FLAGS_KNOWN
end

local function flag_names(flags, version)
    local n = {}
    local known = known_flags(version)
    if band(flags, FLAG_DATA) ~= 0 then n[#n + 1] = "DATA" end
    if band(flags, FLAG_END) ~= 0 then n[#n + 1] = "END" end
    if band(flags, FLAG_PATTERN) ~= 0 then n[#n + 1] = "PATTERN" end
    if band(flags, band(known, FLAG_RELIABLE)) ~= 0 then n[#n + 1] = "RELIABLE" end
    if band(flags, band(known, FLAG_REPAIR)) ~= 0 then n[#n + 1] = "REPAIR" end
    local reserved = band(flags, 0xFF - known)
    if reserved ~= 0 then n[#n + 1] = string.format("RESERVED(0x%02x)", reserved) end
    return table.concat(n, "|")
end

-- Structural validation of the datagram in tvb[pos, pos+len), in the spec's order.
-- Returns the reason (nil if the structure is good).
local function check_structure(tvb, pos, len)
    if len < HEADER_SIZE then return "too_short" end
    if tvb(pos, 4):uint() ~= MAGIC then return "bad_magic" end
    local version = tvb(pos + 4, 1):uint()
    if version ~= VERSION and version ~= RELIABLE_VERSION then return "unsupported_version" end
    local hlen = tvb(pos + 6, 2):uint()
    if hlen < HEADER_SIZE or hlen % 8 ~= 0 or hlen > len then return "bad_header_length" end
    local flags = tvb(pos + 5, 1):uint()
    if band(flags, 0xFF - known_flags(version)) ~= 0
        or (band(flags, FLAG_DATA) ~= 0) == (band(flags, FLAG_END) ~= 0) then
        return "bad_flags"
    end
    -- Version 3 (§13.2): RELIABLE always, REPAIR only on DATA.
    if version == RELIABLE_VERSION and (band(flags, FLAG_RELIABLE) == 0
        or (band(flags, FLAG_REPAIR) ~= 0 and band(flags, FLAG_END) ~= 0)) then
        return "bad_flags"
    end
    if hlen + tvb(pos + 40, 4):uint() ~= len then return "length_mismatch" end
    return nil
end

-- The declared length (header + payload) of a datagram at pos, if the header
-- fields needed for it are present and plausible; else nil.
local function declared_length(tvb, pos, avail)
    if avail < HEADER_SIZE then return nil end
    if tvb(pos, 4):uint() ~= MAGIC then return nil end
    local hlen = tvb(pos + 6, 2):uint()
    if hlen < HEADER_SIZE or hlen % 8 ~= 0 then return nil end
    if tvb(pos + 4, 1):uint() == KEYED_VERSION then return hlen + tvb(pos + 40, 4):uint() + TRAILER_SIZE end
    return hlen + tvb(pos + 40, 4):uint()
end

-- A REPORT candidate: "ZCST", version 2, flags 0x08 (anything else is a stream datagram).
local function is_report(tvb, pos, len)
    return len >= 6 and tvb(pos, 4):uint() == MAGIC and tvb(pos + 4, 1):uint() == REPORT_VERSION
        and tvb(pos + 5, 1):uint() == FLAG_REPORT
end

-- A REPORT's outcome in SPEC §12.3's order (magic, version and flags already hold).
local function check_report(tvb, pos, len)
    if len < HEADER_SIZE then return "too_short" end
    local hlen = tvb(pos + 6, 2):uint()
    if hlen < HEADER_SIZE or hlen % 8 ~= 0 or hlen > len then return "bad_header_length" end
    if hlen + tvb(pos + 40, 4):uint() ~= len then return "length_mismatch" end
    if datagram_checksum(tvb:raw(pos, len)) ~= tvb(pos + CHECKSUM_OFFSET, 4):uint() then return "bad_checksum" end
    local b, blen = pos + hlen, len - hlen
    if blen < REPORT_FIXED_BODY then return "bad_report" end
    local fixed, verdict, listed = tvb(b, 2):uint(), tvb(b + 2, 1):uint(), tvb(b + 4, 2):uint()
    if fixed < REPORT_FIXED_BODY or fixed % 8 ~= 0 or verdict > 1 or listed > REPORT_MAX_RANGES
        or blen ~= fixed + 16 * listed then
        return "bad_report"
    end
    for i = 0, listed - 1 do
        if tvb(b + fixed + 16 * i, 8):uint64() > tvb(b + fixed + 16 * i + 8, 8):uint64() then return "bad_report" end
    end
    return nil
end

-- Dissects a REPORT candidate. Returns the Info summary.
local function dissect_report(tvb, pinfo, root, pos, len)
    local tree = root:add(zc, tvb(pos, len))
    local reason = check_report(tvb, pos, len)
    tree:add(f.kind, tvb(pos, len), "REPORT")
    tree:add(f.status, tvb(pos, len), reason or "valid")
    if reason then tree:add_proto_expert_info(ex.rejected, "Invalid zcstream REPORT: " .. reason) end
    if len < HEADER_SIZE then return "REPORT [" .. reason .. "]" end
    tree:add(f.magic, tvb(pos, 4))
    tree:add(f.version, tvb(pos + 4, 1))
    tree:add(f.flags, tvb(pos + 5, 1)):append_text(" (REPORT)")
    tree:add(f.header_length, tvb(pos + 6, 2))
    tree:add(f.stream_id, tvb(pos + 8, 8))
    tree:add(f.timestamp_ns, tvb(pos + 32, 8))
    tree:add(f.payload_length, tvb(pos + 40, 4))
    local ck = tree:add(f.checksum, tvb(pos + 44, 4))
    local good = reason ~= "bad_checksum" and reason ~= "length_mismatch" and reason ~= "bad_header_length"
    ck:add(f.checksum_status, tvb(pos + 44, 4), good and "good" or (reason == "bad_checksum" and "bad" or "unverified"))
    if reason and reason ~= "bad_report" then return "REPORT [" .. reason .. "]" end
    local hlen = tvb(pos + 6, 2):uint()
    local b = pos + hlen
    if len - hlen < REPORT_FIXED_BODY then return "REPORT [" .. reason .. "]" end
    local body = tree:add(f.report, tvb(b, len - hlen))
    local fixed = tvb(b, 2):uint()
    body:add(f.report_fixed, tvb(b, 2))
    body:add(f.report_verdict, tvb(b + 2, 1), tvb(b + 2, 1):uint() == 0 and "pass" or "fail")
    local st = body:add(f.report_state, tvb(b + 3, 1))
    st:add(f.report_end_seen, tvb(b + 3, 1))
    st:add(f.report_complete, tvb(b + 3, 1))
    st:add(f.report_exact, tvb(b + 3, 1))
    st:add(f.report_joined_late, tvb(b + 3, 1))
    st:add(f.report_output_incomplete, tvb(b + 3, 1))
    local listed = tvb(b + 4, 2):uint()
    body:add(f.report_listed, tvb(b + 4, 2))
    local at = b + 8
    for _, list in ipairs({ REPORT_COUNTERS, REPORT_LATENCIES, REPORT_OUTAGES }) do
        for _, name in ipairs(list) do
            body:add(f["report_" .. name], tvb(at, 8))
            at = at + 8
        end
    end
    if fixed >= REPORT_RELIABLE_FIXED_BODY then
        for _, name in ipairs(REPORT_RELIABLE) do
            body:add(f["report_" .. name], tvb(at, 8))
            at = at + 8
        end
    end
    if reason then return "REPORT [" .. reason .. "]" end
    for i = 0, listed - 1 do
        local r = b + fixed + 16 * i
        body:add(f.report_range, tvb(r, 16), tostring(tvb(r, 8):uint64()) .. "-" .. tostring(tvb(r + 8, 8):uint64()))
    end
    local summary = string.format("REPORT %s received=%s lost=%s corrupt=%s",
        tvb(b + 2, 1):uint() == 0 and "pass" or "fail", tostring(tvb(b + 8, 8):uint64()),
        tostring(tvb(b + 48, 8):uint64()), tostring(tvb(b + 112, 8):uint64()))
    tree:append_text(", " .. summary)
    return summary
end

-- A control candidate (SPEC §13.4): "ZCST", version 3, and 0x40 or 0x80 in the flags.
local function is_control(tvb, pos, len)
    return len >= 6 and tvb(pos, 4):uint() == MAGIC and tvb(pos + 4, 1):uint() == RELIABLE_VERSION
        and band(tvb(pos + 5, 1):uint(), FLAG_STATUS + FLAG_NAK) ~= 0
end

-- The kind a control candidate claims: NAK when 0x80 is set, else STATUS; either fails
-- its flag check unless the byte is exactly 0x80 or 0x40.
local function control_kind(tvb, pos)
    if band(tvb(pos + 5, 1):uint(), FLAG_NAK) ~= 0 then return "NAK" end
    return "STATUS"
end

-- A control datagram's outcome in §13.4's order (magic and version already hold).
local function check_control(tvb, pos, len, kind)
    if len < HEADER_SIZE then return "too_short" end
    local hlen = tvb(pos + 6, 2):uint()
    if hlen < HEADER_SIZE or hlen % 8 ~= 0 or hlen > len then return "bad_header_length" end
    local flag = kind == "NAK" and FLAG_NAK or FLAG_STATUS
    if tvb(pos + 5, 1):uint() ~= flag then return "bad_flags" end
    if hlen + tvb(pos + 40, 4):uint() ~= len then return "length_mismatch" end
    if datagram_checksum(tvb:raw(pos, len)) ~= tvb(pos + CHECKSUM_OFFSET, 4):uint() then return "bad_checksum" end
    local b, blen = pos + hlen, len - hlen
    local ack = tvb(pos + 16, 8):uint64()
    if kind == "STATUS" then
        if blen < STATUS_FIXED_BODY then return "bad_status" end
        local fixed = tvb(b, 2):uint()
        if fixed < STATUS_FIXED_BODY or fixed % 8 ~= 0 or blen ~= fixed or tvb(b + 8, 8):uint64() == UInt64(0) then
            return "bad_status"
        end
        local limit, highest, unique = tvb(b + 16, 8):uint64(), tvb(b + 24, 8):uint64(), tvb(b + 32, 8):uint64()
        local state = tvb(b + 2, 1):uint()
        if ack > unique or unique > highest or limit < ack
            or (band(state, 0x02) ~= 0 and band(state, 0x01) == 0) then
            return "bad_status"
        end
        return nil
    end
    if blen < NAK_FIXED_BODY then return "bad_nak" end
    local fixed, count = tvb(b, 2):uint(), tvb(b + 16, 2):uint()
    if fixed < NAK_FIXED_BODY or fixed % 8 ~= 0 or tvb(b + 8, 8):uint64() == UInt64(0) or count < 1
        or count > NAK_MAX_RANGES or blen ~= fixed + 16 * count then
        return "bad_nak"
    end
    local max = UInt64(0xFFFFFFFF, 0xFFFFFFFF)
    local prev = nil
    for i = 0, count - 1 do
        local first, last = tvb(b + fixed + 16 * i, 8):uint64(), tvb(b + fixed + 16 * i + 8, 8):uint64()
        if first > last or last == max then return "bad_nak" end
        if prev then
            if first <= prev or first - prev < UInt64(2) then return "bad_nak" end
        elseif first < ack then
            return "bad_nak"
        end
        prev = last
    end
    return nil
end

-- Dissects a STATUS or NAK candidate. Returns the Info summary.
local function dissect_control(tvb, pinfo, root, pos, len)
    local tree = root:add(zc, tvb(pos, len))
    local kind = control_kind(tvb, pos)
    local reason = check_control(tvb, pos, len, kind)
    tree:add(f.kind, tvb(pos, len), kind)
    tree:add(f.status, tvb(pos, len), reason or "valid")
    if reason then tree:add_proto_expert_info(ex.rejected, "Invalid zcstream " .. kind .. ": " .. reason) end
    if len < HEADER_SIZE then return kind .. " [" .. reason .. "]" end
    tree:add(f.magic, tvb(pos, 4))
    tree:add(f.version, tvb(pos + 4, 1))
    tree:add(f.flags, tvb(pos + 5, 1)):append_text(" (" .. kind .. ")")
    tree:add(f.header_length, tvb(pos + 6, 2))
    tree:add(f.stream_id, tvb(pos + 8, 8))
    tree:add(f.ctl_ack, tvb(pos + 16, 8))
    tree:add(f.ctl_delivered, tvb(pos + 24, 8))
    tree:add(f.timestamp_ns, tvb(pos + 32, 8))
    tree:add(f.payload_length, tvb(pos + 40, 4))
    local ck = tree:add(f.checksum, tvb(pos + 44, 4))
    local good = reason ~= "bad_checksum" and reason ~= "length_mismatch" and reason ~= "bad_header_length"
        and reason ~= "bad_flags"
    ck:add(f.checksum_status, tvb(pos + 44, 4), good and "good" or (reason == "bad_checksum" and "bad" or "unverified"))
    if reason and reason ~= "bad_status" and reason ~= "bad_nak" then return kind .. " [" .. reason .. "]" end
    local hlen = tvb(pos + 6, 2):uint()
    local b = pos + hlen
    local need = kind == "NAK" and NAK_FIXED_BODY or STATUS_FIXED_BODY
    if len - hlen < need then return kind .. " [" .. reason .. "]" end
    local fixed = tvb(b, 2):uint()
    tree:add(f.ctl_fixed, tvb(b, 2))
    tree:add(f.ctl_feedback_sequence, tvb(b + 4, 4))
    tree:add(f.ctl_receiver_id, tvb(b + 8, 8))
    local summary
    if kind == "STATUS" then
        local st = tree:add(f.ctl_state, tvb(b + 2, 1))
        st:add(f.ctl_end_seen, tvb(b + 2, 1))
        st:add(f.ctl_complete, tvb(b + 2, 1))
        st:add(f.ctl_gave_up, tvb(b + 2, 1))
        tree:add(f.ctl_window_limit, tvb(b + 16, 8))
        tree:add(f.ctl_highest, tvb(b + 24, 8))
        tree:add(f.ctl_unique, tvb(b + 32, 8))
        tree:add(f.ctl_echo, tvb(b + 40, 8))
        tree:add(f.ctl_echo_delay, tvb(b + 48, 8))
        summary = string.format("STATUS ack=%s window<%s highest=%s", tostring(tvb(pos + 16, 8):uint64()),
            tostring(tvb(b + 16, 8):uint64()), tostring(tvb(b + 24, 8):uint64()))
    else
        local count = tvb(b + 16, 2):uint()
        tree:add(f.ctl_range_count, tvb(b + 16, 2))
        if not reason then
            for i = 0, count - 1 do
                local r = b + fixed + 16 * i
                tree:add(f.ctl_range, tvb(r, 16), tostring(tvb(r, 8):uint64()) .. "-" .. tostring(tvb(r + 8, 8):uint64()))
            end
        end
        summary = string.format("NAK ack=%s ranges=%d", tostring(tvb(pos + 16, 8):uint64()), count)
    end
    if reason then return summary .. " [" .. reason .. "]" end
    tree:append_text(", " .. summary)
    return summary
end

-- A keyed datagram (SPEC §14): "ZCST", version 4.
local function is_keyed(tvb, pos, len)
    return len >= 5 and tvb(pos, 4):uint() == MAGIC and tvb(pos + 4, 1):uint() == KEYED_VERSION
end

-- The kind by a keyed datagram's flag byte.
local function keyed_kind(flags)
    if flags == FLAG_REPORT then return "REPORT" end
    if flags == FLAG_STATUS then return "STATUS" end
    if flags == FLAG_NAK then return "NAK" end
    return "STREAM"
end

-- §14.4 check 5: a DATA/END byte valid by §3 or §13.2, or exactly 0x08, 0x40, 0x80.
local function keyed_flags_ok(flags)
    if flags == FLAG_REPORT or flags == FLAG_STATUS or flags == FLAG_NAK then return true end
    if (band(flags, FLAG_DATA) ~= 0) == (band(flags, FLAG_END) ~= 0) then return false end
    if band(flags, 0xFF - FLAGS_KNOWN) == 0 then return true end
    return band(flags, 0xFF - FLAGS_KNOWN_V3) == 0 and band(flags, FLAG_RELIABLE) ~= 0
        and not (band(flags, FLAG_REPAIR) ~= 0 and band(flags, FLAG_END) ~= 0)
end

-- §14.4 checks 1-7 (those that need no key), in order: the reason, or nil.
local function check_keyed(tvb, pos, len)
    if len < KEYED_MIN_LENGTH then return "too_short" end
    local hlen = tvb(pos + 6, 2):uint()
    if hlen < HEADER_SIZE or hlen % 8 ~= 0 or hlen > len or hlen + TRAILER_SIZE > len then
        return "bad_header_length"
    end
    local flags = tvb(pos + 5, 1):uint()
    if not keyed_flags_ok(flags) then return "bad_flags" end
    if hlen + tvb(pos + 40, 4):uint() + TRAILER_SIZE ~= len then return "length_mismatch" end
    local t = pos + len - TRAILER_SIZE
    local suite, origin_zero = tvb(t + 4, 1):uint(), tvb(t + 8, 8):uint64() == UInt64(0)
    local stream = band(flags, FLAG_DATA + FLAG_END) ~= 0
    if (suite ~= 1 and suite ~= 2) or (suite == 2 and band(flags, FLAG_DATA) == 0) or origin_zero ~= stream then
        return "bad_trailer"
    end
    return nil
end

-- Dissects a keyed datagram: header, payload, trailer. Returns the Info summary.
local function dissect_keyed(tvb, pinfo, root, pos, len)
    local tree = root:add(zc, tvb(pos, len))
    local reason = check_keyed(tvb, pos, len)
    local flags = len >= 6 and tvb(pos + 5, 1):uint() or 0
    local kind = keyed_kind(flags)
    tree:add(f.kind, tvb(pos, math.min(len, 6)), kind)
    tree:add(f.status, tvb(pos, len), reason or "tag_not_checked")
    if reason then tree:add_proto_expert_info(ex.rejected, "Invalid keyed zcstream datagram: " .. reason) end
    if len < HEADER_SIZE then
        tree:append_text(string.format(", keyed, %d bytes: %s", len, reason))
        return "keyed [" .. reason .. "]"
    end
    tree:add(f.magic, tvb(pos, 4))
    tree:add(f.version, tvb(pos + 4, 1)):append_text(" (keyed)")
    local names = kind == "STREAM" and flag_names(flags, RELIABLE_VERSION) or kind
    local ft = tree:add(f.flags, tvb(pos + 5, 1))
    ft:append_text(" (" .. names .. ")")
    if kind == "STREAM" then
        ft:add(f.flag_data, tvb(pos + 5, 1))
        ft:add(f.flag_end, tvb(pos + 5, 1))
        ft:add(f.flag_pattern, tvb(pos + 5, 1))
        ft:add(f.flag_reliable, tvb(pos + 5, 1))
        ft:add(f.flag_repair, tvb(pos + 5, 1))
    end
    ft:add(f.flag_names, tvb(pos + 5, 1), names)
    local hlen = tvb(pos + 6, 2):uint()
    tree:add(f.header_length, tvb(pos + 6, 2))
    tree:add(f.stream_id, tvb(pos + 8, 8))
    local seq, offset = tvb(pos + 16, 8):uint64(), tvb(pos + 24, 8):uint64()
    if kind == "STATUS" or kind == "NAK" then
        tree:add(f.ctl_ack, tvb(pos + 16, 8))
        tree:add(f.ctl_delivered, tvb(pos + 24, 8))
    else
        tree:add(f.seq, tvb(pos + 16, 8))
        tree:add(f.offset, tvb(pos + 24, 8))
    end
    local ts = tvb(pos + 32, 8):uint64()
    tree:add(f.timestamp_ns, tvb(pos + 32, 8))
    local billion = UInt64(1000000000)
    tree:add(f.timestamp, tvb(pos + 32, 8), NSTime.new((ts / billion):tonumber(), (ts % billion):tonumber()))
    local plen = tvb(pos + 40, 4):uint()
    tree:add(f.payload_length, tvb(pos + 40, 4))
    local stored = tvb(pos + 44, 4):uint()
    local ck
    if stored == 0 then
        ck = tree:add(f.checksum, tvb(pos + 44, 4), stored, "Checksum: 0 (keyed: the tag replaces it)")
    else
        ck = tree:add(f.checksum, tvb(pos + 44, 4), stored,
            string.format("Checksum: 0x%08x (keyed: ignored, the tag replaces it and covers this field)", stored))
    end
    ck:add(f.checksum_status, tvb(pos + 44, 4), "keyed")
    if len < KEYED_MIN_LENGTH or reason == "bad_header_length" then
        tree:append_text(": keyed, " .. reason)
        return "keyed [" .. reason .. "]"
    end
    -- The trailer is the last 40 bytes whatever the lengths say.
    local t = pos + len - TRAILER_SIZE
    local tt = tree:add(f.keyed_trailer, tvb(t, TRAILER_SIZE))
    tt:add(f.keyed_key_id, tvb(t, 4))
    local suite = tvb(t + 4, 1):uint()
    tt:add(f.keyed_suite, tvb(t + 4, 1))
    tt:add(f.keyed_reserved, tvb(t + 5, 3))
    local origin = tvb(t + 8, 8):uint64()
    tt:add(f.keyed_origin, tvb(t + 8, 8)):append_text(origin == UInt64(0) and " (source)" or " (receiver)")
    tt:add(f.keyed_packet_number, tvb(t + 16, 8))
    local tag = tt:add(f.keyed_tag, tvb(t + 24, 16))
    tag:add(f.keyed_tag_status, tvb(t + 24, 16), TAG_NOT_CHECKED)
    tt:append_text(string.format(": key id 0x%08x, suite %d, origin 0x%s, packet %s", tvb(t, 4):uint(), suite,
        tvb(t + 8, 8):bytes():tohex():lower(), tostring(tvb(t + 16, 8):uint64())))
    if reason then
        tree:append_text(": keyed, " .. reason)
        return "keyed [" .. reason .. "]"
    end
    if hlen > HEADER_SIZE then
        tree:add(f.extension, tvb(pos + HEADER_SIZE, hlen - HEADER_SIZE))
    end
    if plen > 0 then
        local pt = tree:add(f.payload, tvb(pos + hlen, plen))
        if suite == 2 then
            pt:append_text(" (encrypted)")
        elseif kind == "STREAM" and band(flags, FLAG_END) ~= 0 and plen == END_PAYLOAD_SIZE then
            pt:add(f.end_datagrams, tvb(pos + hlen, 8))
            pt:add(f.end_bytes, tvb(pos + hlen + 8, 8))
        end
    end
    if suite == 1 and kind == "STREAM" and band(flags, FLAG_DATA) ~= 0 and band(flags, FLAG_PATTERN) ~= 0
        and zc.prefs.verify_pattern then
        local raw = tvb:raw(pos, len)
        local mm = pattern_first_mismatch(string.sub(raw, hlen + 1, hlen + plen),
            limbs_from_be(raw, 9), limbs_from_be(raw, 25))
        if mm then
            tree:add(f.pattern_status, tvb(pos + hlen, plen), "bad")
            tree:add(f.pattern_mismatch, tvb(pos + hlen + mm, 1), mm)
        else
            tree:add(f.pattern_status, tvb(pos, len), "good")
        end
    end
    local summary
    if kind == "STREAM" and band(flags, FLAG_END) ~= 0 then
        summary = string.format("keyed END seq=%s off=%s", tostring(seq), tostring(offset))
    elseif kind == "STREAM" then
        summary = string.format("keyed %s seq=%s off=%s len=%d", names, tostring(seq), tostring(offset), plen)
    elseif kind == "REPORT" then
        summary = "keyed REPORT"
    else
        summary = string.format("keyed %s ack=%s", kind, tostring(seq))
    end
    summary = summary .. string.format(" suite=%d pn=%s", suite, tostring(tvb(t + 16, 8):uint64()))
    tree:append_text(", " .. summary .. " (tag not checked)")
    return summary
end

-- Dissects one datagram tvb[pos, pos+len). Returns a short summary for the Info column.
local function dissect_one(tvb, pinfo, root, pos, len)
    if is_keyed(tvb, pos, len) then return dissect_keyed(tvb, pinfo, root, pos, len) end
    if is_report(tvb, pos, len) then return dissect_report(tvb, pinfo, root, pos, len) end
    if is_control(tvb, pos, len) then return dissect_control(tvb, pinfo, root, pos, len) end
    local tree = root:add(zc, tvb(pos, len))
    tree:add(f.kind, tvb(pos, math.min(len, 6)), "STREAM")

    -- The outcome first, in the spec's order: structure, checksum, END payload (size, totals).
    local reason = check_structure(tvb, pos, len)
    local checksum_status, computed = "unverified", nil
    if not reason then
        computed = datagram_checksum(tvb:raw(pos, len))
        if computed == tvb(pos + CHECKSUM_OFFSET, 4):uint() then
            checksum_status = "good"
            if band(tvb(pos + 5, 1):uint(), FLAG_END) ~= 0 then
                local hl = tvb(pos + 6, 2):uint()
                -- END: a 16-byte payload whose totals repeat the header's sequence and offset.
                if tvb(pos + 40, 4):uint() ~= END_PAYLOAD_SIZE
                    or tvb:raw(pos + hl, 8) ~= tvb:raw(pos + 16, 8)
                    or tvb:raw(pos + hl + 8, 8) ~= tvb:raw(pos + 24, 8) then
                    reason = "bad_end"
                end
            end
        else
            checksum_status = "bad"
            reason = "bad_checksum"
        end
    end
    tree:add(f.status, tvb(pos, len), reason or "valid")
    if reason and reason ~= "bad_checksum" then
        tree:add_proto_expert_info(ex.rejected, "Invalid zcstream datagram: " .. reason)
    end

    if len < HEADER_SIZE then
        tree:append_text(string.format(", %d bytes: %s", len, reason))
        return "[" .. reason .. "]"
    end

    -- The header fields, as read (untrusted when the outcome is not "valid").
    tree:add(f.magic, tvb(pos, 4))
    tree:add(f.version, tvb(pos + 4, 1))
    local flags = tvb(pos + 5, 1):uint()
    local version = tvb(pos + 4, 1):uint()
    local names = flag_names(flags, version)
    local ft = tree:add(f.flags, tvb(pos + 5, 1))
    ft:append_text(" (" .. names .. ")")
    ft:add(f.flag_data, tvb(pos + 5, 1))
    ft:add(f.flag_end, tvb(pos + 5, 1))
    ft:add(f.flag_pattern, tvb(pos + 5, 1))
    if version == RELIABLE_VERSION then
        ft:add(f.flag_reliable, tvb(pos + 5, 1))
        ft:add(f.flag_repair, tvb(pos + 5, 1))
    end
    ft:add(f.flag_reserved, tvb(pos + 5, 1), band(flags, 0xFF - known_flags(version)))
    ft:add(f.flag_names, tvb(pos + 5, 1), names)
    local hlen = tvb(pos + 6, 2):uint()
    tree:add(f.header_length, tvb(pos + 6, 2))
    tree:add(f.stream_id, tvb(pos + 8, 8))
    local seq = tvb(pos + 16, 8):uint64()
    tree:add(f.seq, tvb(pos + 16, 8))
    local offset = tvb(pos + 24, 8):uint64()
    tree:add(f.offset, tvb(pos + 24, 8))
    local ts = tvb(pos + 32, 8):uint64()
    tree:add(f.timestamp_ns, tvb(pos + 32, 8))
    local billion = UInt64(1000000000)
    tree:add(f.timestamp, tvb(pos + 32, 8),
        NSTime.new((ts / billion):tonumber(), (ts % billion):tonumber()))
    local plen = tvb(pos + 40, 4):uint()
    tree:add(f.payload_length, tvb(pos + 40, 4))
    local stored = tvb(pos + 44, 4):uint()
    local ck = tree:add(f.checksum, tvb(pos + 44, 4))
    ck:append_text(" [" .. checksum_status .. "]")
    if computed then
        ck:add(f.checksum_computed, tvb(pos + 44, 4), computed)
    end
    ck:add(f.checksum_status, tvb(pos + 44, 4), checksum_status)
    if checksum_status == "bad" then
        ck:add_proto_expert_info(ex.bad_checksum,
            string.format("Bad checksum: 0x%08x, computed 0x%08x", stored, computed))
    end

    if checksum_status == "unverified" then
        -- Structurally invalid: the lengths cannot be trusted to delimit anything.
        tree:append_text(": " .. reason)
        return "[" .. reason .. "]"
    end

    if hlen > HEADER_SIZE then
        tree:add(f.extension, tvb(pos + HEADER_SIZE, hlen - HEADER_SIZE))
    end
    if version == RELIABLE_VERSION and band(flags, FLAG_REPAIR) ~= 0 and checksum_status == "good" then
        -- §13.3: the checksum with REPAIR clear, which the repair shares with its original.
        local raw = tvb:raw(pos, len)
        local orig = string.sub(raw, 1, 5) .. string.char(flags - FLAG_REPAIR) .. string.sub(raw, 7)
        ck:add(f.identity_checksum, tvb(pos + 44, 4), datagram_checksum(orig))
    end
    if plen > 0 then
        local pt = tree:add(f.payload, tvb(pos + hlen, plen))
        if band(flags, FLAG_END) ~= 0 and plen == END_PAYLOAD_SIZE then
            pt:add(f.end_datagrams, tvb(pos + hlen, 8))
            pt:add(f.end_bytes, tvb(pos + hlen + 8, 8))
        end
    end
    if band(flags, FLAG_DATA) ~= 0 and band(flags, FLAG_PATTERN) ~= 0 and zc.prefs.verify_pattern then
        local raw = tvb:raw(pos, len)
        local mm = pattern_first_mismatch(string.sub(raw, hlen + 1),
            limbs_from_be(raw, 9), limbs_from_be(raw, 25))
        if mm then
            tree:add(f.pattern_status, tvb(pos + hlen, plen), "bad")
            local it = tree:add(f.pattern_mismatch, tvb(pos + hlen + mm, 1), mm)
            it:add_proto_expert_info(ex.pattern,
                string.format("Payload differs from the pattern at payload byte %d", mm))
        else
            tree:add(f.pattern_status, tvb(pos, len), "good")
        end
    end

    local summary
    if band(flags, FLAG_END) ~= 0 then
        if plen == END_PAYLOAD_SIZE then
            summary = string.format("END datagrams=%s bytes=%s",
                tostring(tvb(pos + hlen, 8):uint64()), tostring(tvb(pos + hlen + 8, 8):uint64()))
        else
            summary = "END"
        end
    else
        summary = string.format("%s seq=%s off=%s len=%d", names, tostring(seq), tostring(offset), plen)
    end
    if reason then summary = summary .. " [" .. reason .. "]" end
    tree:append_text(", " .. summary)
    return summary
end

function zc.dissector(tvb, pinfo, root)
    local total = tvb:len()
    if total == 0 then return 0 end
    pinfo.cols.protocol = "ZCSTREAM"
    local pos, infos = 0, {}
    while pos < total do
        local avail = total - pos
        local len = avail
        if zc.prefs.gso_split then
            local d = declared_length(tvb, pos, avail)
            if d and d < avail and avail - d >= 4 and tvb(pos + d, 4):uint() == MAGIC then
                len = d
            end
        end
        infos[#infos + 1] = dissect_one(tvb, pinfo, root, pos, len)
        pos = pos + len
    end
    if #infos > 3 then
        pinfo.cols.info = string.format("%d datagrams: %s ... %s", #infos, infos[1], infos[#infos])
    else
        pinfo.cols.info = table.concat(infos, "; ")
    end
    return total
end

local function heuristic(tvb, pinfo, root)
    if tvb:len() < 5 then return false end
    if tvb(0, 4):uint() ~= MAGIC then return false end
    local version = tvb(4, 1):uint()
    if version ~= VERSION and version ~= RELIABLE_VERSION and version ~= KEYED_VERSION
        and not is_report(tvb, 0, tvb:len()) then
        return false
    end
    zc.dissector(tvb, pinfo, root)
    return true
end
zc:register_heuristic("udp", heuristic)

local registered_port = 0
local function register_port()
    local udp = DissectorTable.get("udp.port")
    if registered_port ~= 0 then udp:remove(registered_port, zc) end
    registered_port = zc.prefs.port
    if registered_port ~= 0 then udp:add(registered_port, zc) end
end

function zc.prefs_changed()
    if zc.prefs.port ~= registered_port then register_port() end
end

register_port()
