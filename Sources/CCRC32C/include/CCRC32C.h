// CRC32C (Castagnoli) kernels in C, chosen at run time by CPU features, and the
// zcstream payload pattern fused into them so that each payload byte is touched
// once: generate + checksum (sender), check + checksum (receiver). No liburing:
// the wire-format module (StreamProtocol) links only this.
#ifndef ZC_CCRC32C_H
#define ZC_CCRC32C_H
#include <stddef.h>
#include <stdint.h>

/// The kernels, slowest first. A variant is usable when zc_crc32c_supported says so.
enum {
    ZC_CRC32C_PORTABLE = 0,   ///< slicing-by-8 tables, any CPU
    ZC_CRC32C_SSE42 = 1,      ///< crc32 instruction, three interleaved lanes
    ZC_CRC32C_PCLMUL = 2,     ///< 128-bit carry-less multiply folding (PCLMULQDQ), AVX2 pattern
    ZC_CRC32C_AVX512 = 3,     ///< 512-bit carry-less multiply folding (VPCLMULQDQ + AVX-512)
    ZC_CRC32C_VARIANTS = 4
};

/// 1 when this CPU (and OS) can run `variant`.
int zc_crc32c_supported(int variant);
/// The variant every zc_crc32c* call without one uses: the fastest supported, or the
/// one named by the environment variable ZC_CRC32C (see zc_crc32c_name), or the last
/// zc_crc32c_select.
int zc_crc32c_active(void);
/// Forces a variant for the whole process. Returns 0, or -1 when unsupported (unchanged).
int zc_crc32c_select(int variant);
/// "portable", "sse42-3lane", "pclmulqdq-avx2", "vpclmulqdq-avx512"; NULL out of range.
const char *zc_crc32c_name(int variant);

/// Continues a CRC32C: pass 0 to start; the result is final (pre/post inverted),
/// so crc(a+b) == zc_crc32c(zc_crc32c(0, a), b).
uint32_t zc_crc32c(uint32_t crc, const void *data, size_t len);
/// The same with an explicit variant (tests, benchmarks). The variant must be supported.
uint32_t zc_crc32c_variant(int variant, uint32_t crc, const void *data, size_t len);

/// `variant` -1 means the active one (as for the next function).
/// Writes the payload pattern of stream `stream_id` for stream bytes
/// [offset, offset + len) at `dst` and returns the CRC32C of those bytes continuing
/// from `crc`, in one pass (the bytes are not read back from memory).
/// The range must not run past stream byte 2^64 (callers handle that case).
uint32_t zc_crc32c_pattern_fill(int variant, uint32_t crc, void *dst, size_t len,
                                uint64_t stream_id, uint64_t offset);
/// Returns the CRC32C of `len` bytes at `src` continuing from `crc`, and sets
/// *mismatch to 1 when they differ anywhere from the pattern (0 otherwise), in one pass.
/// The range must not run past stream byte 2^64.
uint32_t zc_crc32c_pattern_check(int variant, uint32_t crc, const void *src, size_t len,
                                 uint64_t stream_id, uint64_t offset, int *mismatch);

/// The sender's whole per-datagram checksum work in one call: the 48-byte header at
/// `datagram` (written, checksum field 0) is checksummed, the pattern for stream bytes
/// [offset, offset + payload_len) is written behind it and folded into the same CRC in
/// one pass, and the result is stored big-endian in the checksum field (bytes 44..47).
/// Returns the checksum. The range must not run past stream byte 2^64.
uint32_t zc_crc32c_seal_pattern(int variant, void *datagram, size_t payload_len, uint64_t stream_id, uint64_t offset);
/// The receiver's per-datagram work for a PATTERN datagram with a 48-byte header, in one
/// call: the header's CRC with its checksum field (bytes 44..47) taken as zero, continued
/// through the `payload_len` bytes behind it while they are compared with the pattern
/// for stream bytes [offset, offset + payload_len) (*mismatch: 1 when they differ). Returns
/// the CRC to compare with the checksum field. The range must not run past stream byte 2^64.
uint32_t zc_crc32c_check_pattern_datagram(int variant, const void *datagram, size_t payload_len,
                                          uint64_t stream_id, uint64_t offset, int *mismatch);
/// `--source fixed`: seals a datagram whose payload CRC is known. The 48-byte header's CRC
/// (checksum field zero) is shifted past the payload with `shift_table` (from
/// zc_crc32c_shift_table for the payload length) and combined with `payload_crc`; the
/// result is stored big-endian at byte 44 and returned. One call, no per-byte work.
uint32_t zc_crc32c_seal_fixed(void *datagram, uint32_t payload_crc, const uint32_t *shift_table);

/// crc(A || B) from crc(A), crc(B) and len(B): crc(A) times x^(8 len(B)) mod P, xor crc(B).
uint32_t zc_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);
/// The zeros operator as four byte tables in 1024 entries: table[256k + b] = shift of
/// (b << 8k) by len bytes, so shift(c) = t[c & 255] ^ t[256 + ((c >> 8) & 255)] ^
/// t[512 + ((c >> 16) & 255)] ^ t[768 + (c >> 24)].
void zc_crc32c_shift_table(uint32_t *table, uint64_t len);

/// Prefetches `count` cache lines `stride` bytes apart, starting at `p`, for writing
/// (`--source fixed` rewrites only the headers of a slot: 44 lines 1472 bytes apart,
/// cold after a trip round a pool larger than the cache; their misses then overlap).
void zc_prefetch_for_write(const void *p, size_t stride, size_t count);

#endif
