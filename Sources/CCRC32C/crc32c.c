// CRC32C kernels and the payload pattern fused into them. See CCRC32C.h.
//
// Only the parts that need instructions Swift cannot name are here: the crc32
// instruction, carry-less multiplication (PCLMULQDQ / VPCLMULQDQ) and the vector
// pattern generator that feeds them from registers. Each function carries its
// own __attribute__((target(...))); the package sets no compiler flags.
#include "CCRC32C.h"
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#define POLY 0x82F63B78u            // reflected Castagnoli polynomial
#define PATTERN_M 0x9E3779B97F4A7C15ull // PayloadPattern.multiplier (SPEC §7)

// ---- the payload pattern, scalar (PayloadPattern.swift is the reference) ----
static inline uint64_t pat_word(uint64_t id, uint64_t k) { return (k + 1) * PATTERN_M ^ id; }

static void pattern_fill_scalar(uint8_t *p, size_t n, uint64_t id, uint64_t b) {
    size_t i = 0;
    for (; i < n && (b & 7); i++, b++) p[i] = (uint8_t)(pat_word(id, b >> 3) >> ((b & 7) * 8));
    uint64_t k = b >> 3;
    for (; i + 8 <= n; i += 8, k++) { uint64_t w = pat_word(id, k); memcpy(p + i, &w, 8); }
    b = k << 3;
    for (; i < n; i++, b++) p[i] = (uint8_t)(pat_word(id, b >> 3) >> ((b & 7) * 8));
}

// ---- portable: slicing-by-8 ---------------------------------------------------
static uint32_t table[8][256];
static int table_ready;

static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (POLY & (0u - (c & 1)));
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

static uint32_t crc_portable(uint32_t crc, const void *data, size_t len) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_table();
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (len >= 8) {
        uint64_t w; memcpy(&w, p, 8);
        w ^= c;
        c = table[7][w & 0xFF] ^ table[6][(w >> 8) & 0xFF] ^ table[5][(w >> 16) & 0xFF] ^
            table[4][(w >> 24) & 0xFF] ^ table[3][(w >> 32) & 0xFF] ^ table[2][(w >> 40) & 0xFF] ^
            table[1][(w >> 48) & 0xFF] ^ table[0][w >> 56];
        p += 8; len -= 8;
    }
    while (len--) c = (c >> 8) ^ table[0][(c ^ *p++) & 0xFF];
    return ~c;
}

// ---- combine / zeros operator (zlib's method, reflected polynomials) -------------
static uint32_t multmodp(uint32_t a, uint32_t b) {
    uint32_t m = 1u << 31, p = 0;
    for (;;) {
        if (a & m) { p ^= b; if ((a & (m - 1)) == 0) break; }
        m >>= 1;
        b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
    }
    return p;
}

// x^(8 len) mod P, reflected.
static uint32_t x8nmodp(uint64_t len) {
    uint32_t sq = 1u << 30;          // x^1
    for (int i = 0; i < 3; i++) sq = multmodp(sq, sq); // x^8
    uint32_t p = 1u << 31;           // x^0
    while (len) { if (len & 1) p = multmodp(sq, p); len >>= 1; sq = multmodp(sq, sq); }
    return p;
}

uint32_t zc_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
    return multmodp(x8nmodp(len_b), crc_a) ^ crc_b;
}

void zc_crc32c_shift_table(uint32_t *t, uint64_t len) {
    uint32_t op = x8nmodp(len);
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++) t[256 * k + b] = b ? multmodp(op, b << (8 * k)) : 0;
}

// ---- fused fallbacks: generate (or check) a chunk that stays in L1, then CRC it ----
typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);
enum { CHUNK = 1344 }; // 3 x 448: one pass of the three-lane kernel

static uint32_t fill_chunked(crc_fn f, uint32_t crc, uint8_t *dst, size_t n, uint64_t id, uint64_t off) {
    while (n) {
        size_t c = n < CHUNK ? n : CHUNK;
        pattern_fill_scalar(dst, c, id, off);
        crc = f(crc, dst, c);
        dst += c; off += c; n -= c;
    }
    return crc;
}

static uint32_t check_chunked(crc_fn f, uint32_t crc, const uint8_t *src, size_t n, uint64_t id, uint64_t off, int *bad) {
    uint8_t want[CHUNK];
    int differs = 0;
    while (n) {
        size_t c = n < CHUNK ? n : CHUNK;
        crc = f(crc, src, c);
        pattern_fill_scalar(want, c, id, off);
        differs |= memcmp(src, want, c) != 0;
        src += c; off += c; n -= c;
    }
    *bad = differs;
    return crc;
}

#if defined(__x86_64__)
// ---- sse42-3lane: the crc32 instruction ------------------------------------------
// One crc32 instruction retires a word per cycle but has a 3-cycle latency, so a
// single chain runs at a third of the possible speed. Three chains over three
// adjacent blocks run in parallel; their CRCs are then joined with "zeros
// operators" (four table lookups each).
enum { ZC_LONG = 448, ZC_SHORT = 64 };
static uint32_t zeros_long[4][256], zeros_short[4][256];
static int zeros_ready;

static inline uint32_t shift(uint32_t t[4][256], uint32_t c) {
    return t[0][c & 0xFF] ^ t[1][(c >> 8) & 0xFF] ^ t[2][(c >> 16) & 0xFF] ^ t[3][c >> 24];
}

__attribute__((target("sse4.2"), always_inline))
static inline uint64_t crc32c_lanes(uint64_t c0, const uint8_t **pp, size_t *lenp, size_t block, uint32_t zeros[4][256]) {
    const uint8_t *p = *pp;
    size_t len = *lenp;
    while (len >= 3 * block) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *end = p + block;
        do {
            uint64_t w0, w1, w2;
            memcpy(&w0, p, 8); memcpy(&w1, p + block, 8); memcpy(&w2, p + 2 * block, 8);
            c0 = __builtin_ia32_crc32di(c0, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
            p += 8;
        } while (p < end);
        c0 = shift(zeros, (uint32_t)c0) ^ (uint32_t)c1;
        c0 = shift(zeros, (uint32_t)c0) ^ (uint32_t)c2;
        p += 2 * block;
        len -= 3 * block;
    }
    *pp = p;
    *lenp = len;
    return c0;
}

// The raw register (no inversions) over `len` bytes: words, then bytes.
__attribute__((target("sse4.2"), always_inline))
static inline uint64_t crc32_tail(uint64_t c, const uint8_t *p, size_t len) {
    while (len >= 8) { uint64_t w; memcpy(&w, p, 8); c = __builtin_ia32_crc32di(c, w); p += 8; len -= 8; }
    while (len--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return c;
}

static void init_zeros(void) {
    if (__atomic_load_n(&zeros_ready, __ATOMIC_ACQUIRE)) return;
    // Racing threads compute identical tables; the flag only publishes them.
    zc_crc32c_shift_table(&zeros_long[0][0], ZC_LONG);
    zc_crc32c_shift_table(&zeros_short[0][0], ZC_SHORT);
    __atomic_store_n(&zeros_ready, 1, __ATOMIC_RELEASE);
}

__attribute__((target("sse4.2")))
static uint32_t crc_sse42(uint32_t crc, const void *data, size_t len) {
    const uint8_t *p = data;
    uint64_t c0 = (uint32_t)~crc;
    while (len && ((uintptr_t)p & 7)) { c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++); len--; }
    c0 = crc32c_lanes(c0, &p, &len, ZC_LONG, zeros_long);
    c0 = crc32c_lanes(c0, &p, &len, ZC_SHORT, zeros_short);
    return ~(uint32_t)crc32_tail(c0, p, len);
}

// ---- carry-less multiply folding --------------------------------------------------
// A 16-byte block loaded little-endian has bit m <-> x^(127-m) (reflected CRC). Moving
// it D bytes later multiplies it by x^(8D). With lo/hi its 8-byte halves,
//   X * x^(8D) = lo * x^(64+8D) + hi * x^(8D)  (mod P),
// and pclmulqdq of two reflected 64-bit operands yields x * a * b in the same
// convention, so the constants are K_lo = x^(8D+63) mod P and K_hi = x^(8D-1) mod P,
// bit-reflected into 64 bits (coefficient x^i at bit 63 - i). Products stay below
// degree 96, so folds never overflow 128 bits and no Barrett step is needed: once one
// 16-byte block is left, the crc32 instruction over its 16 bytes (register 0) reduces it.
static uint64_t fold_const(unsigned n) { // reflect64(x^n mod P)
    uint32_t r = 1; // x^0, non-reflected: bit i <-> x^i
    for (unsigned i = 0; i < n; i++) r = (r & 0x80000000u) ? (r << 1) ^ 0x1EDC6F41u : r << 1;
    uint64_t out = 0;
    for (int i = 0; i < 32; i++) if ((r >> i) & 1) out |= 1ull << (63 - i);
    return out;
}

static uint64_t k16[2], k64[2], k256[2];
static void init_fold(void) {
    k16[0] = fold_const(8 * 16 + 63);  k16[1] = fold_const(8 * 16 - 1);
    k64[0] = fold_const(8 * 64 + 63);  k64[1] = fold_const(8 * 64 - 1);
    k256[0] = fold_const(8 * 256 + 63); k256[1] = fold_const(8 * 256 - 1);
}

enum { MODE_CRC, MODE_FILL, MODE_CHECK };

#define TARGET_PCLMUL "sse4.2,pclmul,avx2"
#define TARGET_AVX512 "sse4.2,pclmul,avx2,avx512f,avx512bw,avx512vl,avx512dq,vpclmulqdq"

__attribute__((target(TARGET_PCLMUL), always_inline))
static inline __m128i fold128(__m128i x, __m128i k, __m128i next) {
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next);
}

// The end of every folding kernel: one 16-byte accumulator `t` (if `folded`), then
// fewer than 64 bytes at `p`, plain CRC (the pattern modes have already produced
// or checked them).
__attribute__((target(TARGET_PCLMUL), always_inline))
static inline uint32_t fold_finish(int folded, __m128i t, uint64_t state, const uint8_t *p, size_t n) {
    if (folded) {
        __m128i k = _mm_loadu_si128((const __m128i *)k16);
        while (n >= 16) { t = fold128(t, k, _mm_loadu_si128((const __m128i *)p)); p += 16; n -= 16; }
        state = __builtin_ia32_crc32di(0, (uint64_t)_mm_cvtsi128_si64(t));
        state = __builtin_ia32_crc32di(state, (uint64_t)_mm_extract_epi64(t, 1));
    }
    return ~(uint32_t)crc32_tail(state, p, n);
}

// Pattern generator, 32 bytes per step: lanes hold (k+1+i)*M; a stream offset that is
// not a multiple of 8 takes bytes r..r+7 of two neighbouring words (r = offset mod 8;
// variable shifts by 64 give 0). A branch skips the shifts when r = 0 (it never changes
// within a call, so it predicts perfectly).
typedef struct { __m256i a, id, m1, step, shr, shl; int unaligned; } gen256;

__attribute__((target(TARGET_PCLMUL), always_inline))
static inline void gen256_init(gen256 *g, uint64_t id, uint64_t off) {
    uint64_t k = off >> 3, a0 = (k + 1) * PATTERN_M;
    g->a = _mm256_set_epi64x((long long)(a0 + 3 * PATTERN_M), (long long)(a0 + 2 * PATTERN_M),
                             (long long)(a0 + PATTERN_M), (long long)a0);
    g->id = _mm256_set1_epi64x((long long)id);
    g->m1 = _mm256_set1_epi64x((long long)PATTERN_M);
    g->step = _mm256_set1_epi64x((long long)(4 * PATTERN_M));
    g->shr = _mm256_set1_epi64x((long long)((off & 7) * 8));
    g->shl = _mm256_set1_epi64x((long long)(64 - (off & 7) * 8));
    g->unaligned = (off & 7) != 0;
}

__attribute__((target(TARGET_PCLMUL), always_inline))
static inline __m256i gen256_next(gen256 *g) {
    __m256i cur = _mm256_xor_si256(g->a, g->id);
    if (!g->unaligned) { g->a = _mm256_add_epi64(g->a, g->step); return cur; }
    __m256i nxt = _mm256_xor_si256(_mm256_add_epi64(g->a, g->m1), g->id);
    g->a = _mm256_add_epi64(g->a, g->step);
    return _mm256_or_si256(_mm256_srlv_epi64(cur, g->shr), _mm256_sllv_epi64(nxt, g->shl));
}

// pclmulqdq-avx2: four 16-byte accumulators, 64 bytes a step.
__attribute__((target(TARGET_PCLMUL), always_inline))
static inline uint32_t k128(int mode, uint32_t crc, const uint8_t *src, uint8_t *dst, size_t n,
                            uint64_t id, uint64_t off, int *bad) {
    uint64_t state = (uint32_t)~crc;
    gen256 g;
    if (mode != MODE_CRC) gen256_init(&g, id, off);
    __m256i diff = _mm256_setzero_si256();
    __m128i t = _mm_setzero_si128();
    int folded = 0;
#define NEXT64(x0, x1, x2, x3) do { \
        if (mode == MODE_FILL) { \
            __m256i a = gen256_next(&g), b = gen256_next(&g); \
            _mm256_storeu_si256((__m256i *)dst, a); _mm256_storeu_si256((__m256i *)(dst + 32), b); dst += 64; \
            x0 = _mm256_castsi256_si128(a); x1 = _mm256_extracti128_si256(a, 1); \
            x2 = _mm256_castsi256_si128(b); x3 = _mm256_extracti128_si256(b, 1); \
        } else { \
            x0 = _mm_loadu_si128((const __m128i *)src); x1 = _mm_loadu_si128((const __m128i *)(src + 16)); \
            x2 = _mm_loadu_si128((const __m128i *)(src + 32)); x3 = _mm_loadu_si128((const __m128i *)(src + 48)); \
            if (mode == MODE_CHECK) { \
                __m256i a = gen256_next(&g), b = gen256_next(&g); \
                diff = _mm256_or_si256(diff, _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)src))); \
                diff = _mm256_or_si256(diff, _mm256_xor_si256(b, _mm256_loadu_si256((const __m256i *)(src + 32)))); \
            } \
            src += 64; \
        } \
    } while (0)
    if (n >= 64) {
        __m128i x0, x1, x2, x3, y0, y1, y2, y3;
        NEXT64(x0, x1, x2, x3);
        x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)state));
        n -= 64;
        __m128i k = _mm_loadu_si128((const __m128i *)k64);
        while (n >= 64) {
            NEXT64(y0, y1, y2, y3);
            x0 = fold128(x0, k, y0); x1 = fold128(x1, k, y1); x2 = fold128(x2, k, y2); x3 = fold128(x3, k, y3);
            n -= 64;
        }
        __m128i kk = _mm_loadu_si128((const __m128i *)k16);
        t = fold128(fold128(fold128(x0, kk, x1), kk, x2), kk, x3);
        folded = 1;
    }
#undef NEXT64
    // Fewer than 64 bytes left: the pattern modes make them in a local block first.
    const uint8_t *rest = src;
    uint8_t local[64];
    if (mode != MODE_CRC && n) {
        _mm256_storeu_si256((__m256i *)local, gen256_next(&g));
        _mm256_storeu_si256((__m256i *)(local + 32), gen256_next(&g));
        if (mode == MODE_FILL) { memcpy(dst, local, n); rest = local; }
        else if (memcmp(src, local, n) != 0) diff = _mm256_set1_epi8(1);
    }
    if (mode == MODE_CHECK) *bad = !_mm256_testz_si256(diff, diff);
    return fold_finish(folded, t, state, rest, n);
}

__attribute__((target(TARGET_PCLMUL)))
static uint32_t crc_pclmul(uint32_t crc, const void *data, size_t len) {
    return k128(MODE_CRC, crc, data, NULL, len, 0, 0, NULL);
}
__attribute__((target(TARGET_PCLMUL)))
static uint32_t fill_pclmul(uint32_t crc, void *dst, size_t len, uint64_t id, uint64_t off) {
    return k128(MODE_FILL, crc, NULL, dst, len, id, off, NULL);
}
__attribute__((target(TARGET_PCLMUL)))
static uint32_t check_pclmul(uint32_t crc, const void *src, size_t len, uint64_t id, uint64_t off, int *bad) {
    return k128(MODE_CHECK, crc, src, NULL, len, id, off, bad);
}

// vpclmulqdq-avx512: four 64-byte accumulators (each four 16-byte lanes), 256 bytes a
// step, then one accumulator 64 bytes a step; the generator makes 64 bytes a step.
typedef struct { __m512i a, id, m1, step, shr, shl; int unaligned; } gen512;

__attribute__((target(TARGET_AVX512), always_inline))
static inline void gen512_init(gen512 *g, uint64_t id, uint64_t off) {
    uint64_t k = off >> 3, a0 = (k + 1) * PATTERN_M, M = PATTERN_M;
    g->a = _mm512_set_epi64((long long)(a0 + 7 * M), (long long)(a0 + 6 * M), (long long)(a0 + 5 * M),
                            (long long)(a0 + 4 * M), (long long)(a0 + 3 * M), (long long)(a0 + 2 * M),
                            (long long)(a0 + M), (long long)a0);
    g->id = _mm512_set1_epi64((long long)id);
    g->m1 = _mm512_set1_epi64((long long)M);
    g->step = _mm512_set1_epi64((long long)(8 * M));
    g->shr = _mm512_set1_epi64((long long)((off & 7) * 8));
    g->shl = _mm512_set1_epi64((long long)(64 - (off & 7) * 8));
    g->unaligned = (off & 7) != 0;
}

__attribute__((target(TARGET_AVX512), always_inline))
static inline __m512i gen512_next(gen512 *g) {
    __m512i cur = _mm512_xor_si512(g->a, g->id);
    if (!g->unaligned) { g->a = _mm512_add_epi64(g->a, g->step); return cur; }
    __m512i nxt = _mm512_xor_si512(_mm512_add_epi64(g->a, g->m1), g->id);
    g->a = _mm512_add_epi64(g->a, g->step);
    // per-lane variable shifts (a shift count in an xmm register is several times slower here)
    return _mm512_or_si512(_mm512_srlv_epi64(cur, g->shr), _mm512_sllv_epi64(nxt, g->shl));
}

__attribute__((target(TARGET_AVX512), always_inline))
static inline __m512i fold512(__m512i x, __m512i k, __m512i next) {
    // 0x96: a ^ b ^ c in one instruction
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11), next, 0x96);
}

// Stores for the fill: a datagram's payload starts 48 bytes into a 64-byte line (the
// header takes the first 48), so every 64-byte store of the generated pattern would
// straddle two cache lines; split stores cost the fill about 30 % (42 vs 29 GB/s hot).
// When the destination is 8-byte aligned, the filler keeps the previous vector and
// writes whole aligned lines made of its tail and the next vector's head (one VPERMT2Q
// each). Only the first and the last vector of a payload are stored unaligned, whole
// (the overlap rewrites identical bytes; masked stores are slower on some cores).
typedef struct {
    uint8_t *dst;      // where the next generated vector's first byte belongs
    __m512i prev;      // the last vector, whose tail (qwords [8-q, 8)) may not be stored yet
    __m512i idx;       // VPERMT2Q selector: prev's tail, then the next vector's head
    unsigned q;        // misalignment in qwords (1..7); 0: plain unaligned stores
    int started;
} filler512;

// Row q: result qword i = prev[(8 - q) + i] for i < q, else next[i - q] (index 8 + i - q).
static const long long filler512_selectors[8][8] __attribute__((aligned(64))) = {
    {8, 9, 10, 11, 12, 13, 14, 15}, {7, 8, 9, 10, 11, 12, 13, 14}, {6, 7, 8, 9, 10, 11, 12, 13},
    {5, 6, 7, 8, 9, 10, 11, 12},    {4, 5, 6, 7, 8, 9, 10, 11},    {3, 4, 5, 6, 7, 8, 9, 10},
    {2, 3, 4, 5, 6, 7, 8, 9},       {1, 2, 3, 4, 5, 6, 7, 8},
};

__attribute__((target(TARGET_AVX512), always_inline))
static inline void filler512_init(filler512 *f, uint8_t *dst) {
    uintptr_t a = (uintptr_t)dst & 63;
    f->dst = dst;
    f->q = (a != 0 && (a & 7) == 0) ? (unsigned)(a / 8) : 0;
    f->started = 0;
    f->prev = _mm512_setzero_si512();
    f->idx = _mm512_load_si512(filler512_selectors[f->q]);
}

__attribute__((target(TARGET_AVX512), always_inline))
static inline void filler512_put(filler512 *f, __m512i x) {
    if (f->q == 0) { _mm512_storeu_si512(f->dst, x); f->dst += 64; return; }
    if (f->started) {
        // The aligned line that starts inside prev: its tail, then x's head.
        _mm512_store_si512(f->dst - 8 * f->q, _mm512_permutex2var_epi64(f->prev, f->idx, x));
    } else {
        _mm512_storeu_si512(f->dst, x); // the first vector, whole
        f->started = 1;
    }
    f->prev = x;
    f->dst += 64;
}

/// Stores the last vector whole: its tail is the one part not written yet.
__attribute__((target(TARGET_AVX512), always_inline))
static inline void filler512_flush(filler512 *f) {
    if (f->q != 0 && f->started) _mm512_storeu_si512(f->dst - 64, f->prev);
}

__attribute__((target(TARGET_AVX512), always_inline))
static inline uint32_t k512(int mode, uint32_t crc, const uint8_t *src, uint8_t *dst, size_t n,
                            uint64_t id, uint64_t off, int *bad) {
    uint64_t state = (uint32_t)~crc;
    gen512 g;
    if (mode != MODE_CRC) gen512_init(&g, id, off);
    __m512i diff = _mm512_setzero_si512();
    __m128i t = _mm_setzero_si128();
    int folded = 0;
    filler512 out;
    if (mode == MODE_FILL) filler512_init(&out, dst);
#define NEXT(x) do { \
        if (mode == MODE_FILL) { x = gen512_next(&g); filler512_put(&out, x); } \
        else { \
            x = _mm512_loadu_si512(src); src += 64; \
            if (mode == MODE_CHECK) diff = _mm512_or_si512(diff, _mm512_xor_si512(x, gen512_next(&g))); \
        } \
    } while (0)
    if (n >= 64) {
        __m512i x0, x1, x2, x3, y;
        NEXT(x0);
        x0 = _mm512_xor_si512(x0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)state)));
        n -= 64;
        __m512i k1 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)k64));
        if (n >= 192) {
            NEXT(x1); NEXT(x2); NEXT(x3);
            n -= 192;
            __m512i k4 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)k256));
            while (n >= 256) {
                __m512i y0, y1, y2, y3;
                NEXT(y0); NEXT(y1); NEXT(y2); NEXT(y3);
                x0 = fold512(x0, k4, y0); x1 = fold512(x1, k4, y1);
                x2 = fold512(x2, k4, y2); x3 = fold512(x3, k4, y3);
                n -= 256;
            }
            x0 = fold512(fold512(fold512(x0, k1, x1), k1, x2), k1, x3);
        }
        while (n >= 64) { NEXT(y); x0 = fold512(x0, k1, y); n -= 64; }
        __m128i kk = _mm_loadu_si128((const __m128i *)k16);
        t = fold128(_mm512_castsi512_si128(x0), kk, _mm512_extracti32x4_epi32(x0, 1));
        t = fold128(t, kk, _mm512_extracti32x4_epi32(x0, 2));
        t = fold128(t, kk, _mm512_extracti32x4_epi32(x0, 3));
        folded = 1;
    }
#undef NEXT
    const uint8_t *rest = src;
    uint8_t local[64];
    if (mode == MODE_FILL) { filler512_flush(&out); dst = out.dst; }
    if (mode != MODE_CRC && n) {
        _mm512_storeu_si512(local, gen512_next(&g));
        if (mode == MODE_FILL) { memcpy(dst, local, n); rest = local; }
        else if (memcmp(src, local, n) != 0) diff = _mm512_set1_epi64(1);
    }
    if (mode == MODE_CHECK) *bad = _mm512_test_epi64_mask(diff, diff) != 0;
    return fold_finish(folded, t, state, rest, n);
}

__attribute__((target(TARGET_AVX512)))
static uint32_t crc_avx512(uint32_t crc, const void *data, size_t len) {
    return k512(MODE_CRC, crc, data, NULL, len, 0, 0, NULL);
}
__attribute__((target(TARGET_AVX512)))
static uint32_t fill_avx512(uint32_t crc, void *dst, size_t len, uint64_t id, uint64_t off) {
    return k512(MODE_FILL, crc, NULL, dst, len, id, off, NULL);
}
__attribute__((target(TARGET_AVX512)))
static uint32_t check_avx512(uint32_t crc, const void *src, size_t len, uint64_t id, uint64_t off, int *bad) {
    return k512(MODE_CHECK, crc, src, NULL, len, id, off, bad);
}

static uint32_t fill_sse42(uint32_t crc, void *dst, size_t len, uint64_t id, uint64_t off) {
    return fill_chunked(crc_sse42, crc, dst, len, id, off);
}
static uint32_t check_sse42(uint32_t crc, const void *src, size_t len, uint64_t id, uint64_t off, int *bad) {
    return check_chunked(crc_sse42, crc, src, len, id, off, bad);
}

// CPU (and OS: XSAVE state enabled) support, probed once.
static int probe(int variant) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int sse42 = (c & bit_SSE4_2) != 0, pclmul = (c & bit_PCLMUL) != 0, osxsave = (c & bit_OSXSAVE) != 0;
    if (variant == ZC_CRC32C_SSE42) return sse42;
    if (!sse42 || !pclmul || !osxsave) return 0;
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0x6) != 0x6) return 0; // XMM and YMM state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int avx2 = (b & bit_AVX2) != 0;
    if (variant == ZC_CRC32C_PCLMUL) return avx2;
    int avx512 = (b & bit_AVX512F) && (b & bit_AVX512BW) && (b & bit_AVX512VL) && (b & bit_AVX512DQ) &&
                 (c & bit_VPCLMULQDQ) && (lo & 0xE6) == 0xE6; // opmask, ZMM hi256, hi16 ZMM
    return variant == ZC_CRC32C_AVX512 && avx2 && avx512;
}
#endif // __x86_64__

void zc_prefetch_for_write(const void *p, size_t stride, size_t count) {
    const char *c = p;
    for (size_t i = 0; i < count; i++) __builtin_prefetch(c + i * stride, 1, 3);
}

// ---- dispatch ----------------------------------------------------------------------
static uint32_t fill_portable(uint32_t crc, void *dst, size_t len, uint64_t id, uint64_t off) {
    return fill_chunked(crc_portable, crc, dst, len, id, off);
}
static uint32_t check_portable(uint32_t crc, const void *src, size_t len, uint64_t id, uint64_t off, int *bad) {
    return check_chunked(crc_portable, crc, src, len, id, off, bad);
}

typedef struct {
    const char *name;
    crc_fn crc;
    uint32_t (*fill)(uint32_t, void *, size_t, uint64_t, uint64_t);
    uint32_t (*check)(uint32_t, const void *, size_t, uint64_t, uint64_t, int *);
} variant_t;

static const variant_t variants[ZC_CRC32C_VARIANTS] = {
    {"portable", crc_portable, fill_portable, check_portable},
#if defined(__x86_64__)
    {"sse42-3lane", crc_sse42, fill_sse42, check_sse42},
    {"pclmulqdq-avx2", crc_pclmul, fill_pclmul, check_pclmul},
    {"vpclmulqdq-avx512", crc_avx512, fill_avx512, check_avx512},
#else
    {"sse42-3lane", NULL, NULL, NULL}, {"pclmulqdq-avx2", NULL, NULL, NULL}, {"vpclmulqdq-avx512", NULL, NULL, NULL},
#endif
};

static int supported[ZC_CRC32C_VARIANTS];
static int active = -1;

// Probes once (racing threads store identical results), honours ZC_CRC32C.
static int init(void) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_table();
    supported[0] = 1;
#if defined(__x86_64__)
    init_zeros();
    init_fold();
    for (int v = 1; v < ZC_CRC32C_VARIANTS; v++) supported[v] = probe(v);
#endif
    int best = 0;
    for (int v = 0; v < ZC_CRC32C_VARIANTS; v++) if (supported[v]) best = v;
    const char *want = getenv("ZC_CRC32C");
    if (want && *want) {
        for (int v = 0; v < ZC_CRC32C_VARIANTS; v++)
            if (supported[v] && strcmp(want, variants[v].name) == 0) best = v;
    }
    int expected = -1;
    __atomic_compare_exchange_n(&active, &expected, best, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    return __atomic_load_n(&active, __ATOMIC_ACQUIRE);
}

static inline int current(void) {
    int v = __atomic_load_n(&active, __ATOMIC_ACQUIRE);
    return v >= 0 ? v : init();
}

int zc_crc32c_supported(int variant) {
    current();
    return variant >= 0 && variant < ZC_CRC32C_VARIANTS && supported[variant];
}
int zc_crc32c_active(void) { return current(); }
int zc_crc32c_select(int variant) {
    if (!zc_crc32c_supported(variant)) return -1;
    __atomic_store_n(&active, variant, __ATOMIC_RELEASE);
    return 0;
}
const char *zc_crc32c_name(int variant) {
    return variant >= 0 && variant < ZC_CRC32C_VARIANTS ? variants[variant].name : NULL;
}

uint32_t zc_crc32c(uint32_t crc, const void *data, size_t len) {
    return variants[current()].crc(crc, data, len);
}
uint32_t zc_crc32c_variant(int variant, uint32_t crc, const void *data, size_t len) {
    current();
    return variants[variant].crc(crc, data, len);
}
uint32_t zc_crc32c_pattern_fill(int variant, uint32_t crc, void *dst, size_t len, uint64_t id, uint64_t off) {
    int v = variant < 0 ? current() : (current(), variant);
    return variants[v].fill(crc, dst, len, id, off);
}
#if defined(__x86_64__)
// The header is six aligned qwords: six dependent crc32 instructions beat any folding setup.
// `zero_checksum` clears the upper half of the sixth (little-endian: bytes 40..43 low, the
// checksum field 44..47 high), so a receiver takes the checksum as zero without a copy.
__attribute__((target("sse4.2")))
static inline uint32_t crc_header48_sse42(const uint8_t *p, int zero_checksum) {
    uint64_t c = 0xFFFFFFFFu, q;
    for (int i = 0; i < 5; i++) { memcpy(&q, p + 8 * i, 8); c = __builtin_ia32_crc32di(c, q); }
    memcpy(&q, p + 40, 8);
    c = __builtin_ia32_crc32di(c, zero_checksum ? q & 0x00000000FFFFFFFFull : q);
    return ~(uint32_t)c;
}
#endif

// The CRC of the 48-byte header at `p` with variant `v`; `zero_checksum`: bytes 44..47
// taken as zero (a received datagram), else read as they are (a sender's, already 0).
static inline uint32_t crc_header48(int v, const uint8_t *p, int zero_checksum) {
#if defined(__x86_64__)
    if (v >= ZC_CRC32C_SSE42) return crc_header48_sse42(p, zero_checksum);
#endif
    if (!zero_checksum) return variants[v].crc(0, p, 48);
    uint8_t h[48];
    memcpy(h, p, 48);
    memset(h + 44, 0, 4);
    return variants[v].crc(0, h, 48);
}

uint32_t zc_crc32c_check_pattern_datagram(int variant, const void *datagram, size_t payload_len,
                                          uint64_t id, uint64_t off, int *mismatch) {
    int v = variant < 0 ? current() : (current(), variant);
    const uint8_t *p = datagram;
    return variants[v].check(crc_header48(v, p, 1), p + 48, payload_len, id, off, mismatch);
}

uint32_t zc_crc32c_seal_pattern(int variant, void *datagram, size_t payload_len, uint64_t id, uint64_t off) {
    int v = variant < 0 ? current() : (current(), variant);
    uint8_t *p = datagram;
    uint32_t crc = variants[v].fill(crc_header48(v, p, 0), p + 48, payload_len, id, off);
    uint32_t be = __builtin_bswap32(crc);
    memcpy(p + 44, &be, 4);
    return crc;
}

uint32_t zc_crc32c_seal_fixed(void *datagram, uint32_t payload_crc, const uint32_t *t) {
    uint8_t *p = datagram;
    uint32_t head = crc_header48(current(), p, 0);
    uint32_t crc = t[head & 0xFF] ^ t[256 + ((head >> 8) & 0xFF)] ^ t[512 + ((head >> 16) & 0xFF)] ^ t[768 + (head >> 24)]
                   ^ payload_crc;
    uint32_t be = __builtin_bswap32(crc);
    memcpy(p + 44, &be, 4);
    return crc;
}

uint32_t zc_crc32c_pattern_check(int variant, uint32_t crc, const void *src, size_t len, uint64_t id, uint64_t off,
                                 int *mismatch) {
    int v = variant < 0 ? current() : (current(), variant);
    return variants[v].check(crc, src, len, id, off, mismatch);
}
