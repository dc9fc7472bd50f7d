#define _GNU_SOURCE
#include "CURing.h"
#include <string.h>
#include <cpuid.h>

// ---- cmsg -----------------------------------------------------------------
int zc_cmsg_gro_segment(const struct msghdr *msg) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int v; memcpy(&v, CMSG_DATA(c), sizeof v); return v;
        }
    }
    return 0;
}

int64_t zc_cmsg_rxq_ovfl(const struct msghdr *msg) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t v; memcpy(&v, CMSG_DATA(c), sizeof v); return v;
        }
    }
    return -1;
}

// ---- mmsg -----------------------------------------------------------------
_Static_assert(sizeof(struct zc_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
int zc_sendmmsg(int fd, struct zc_mmsghdr *msgs, unsigned int count, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)msgs, count, flags);
}
int zc_recvmmsg(int fd, struct zc_mmsghdr *msgs, unsigned int count, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)msgs, count, flags, NULL);
}

// ---- CRC32C ---------------------------------------------------------------
static uint32_t table[8][256];
static int table_ready;

static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t zc_crc32c_portable(uint32_t crc, const void *data, size_t len) {
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

#if defined(__x86_64__)
// One crc32 instruction retires a word per cycle but has a 3-cycle latency, so a
// single chain runs at a third of the possible speed. Three chains over three
// adjacent blocks run in parallel; their CRCs are then joined with "zeros
// operators": multiplying a CRC register by x^(8n) mod P (appending n zero
// bytes) is linear, so it is four table lookups per join.
// 448: three blocks cover a 1472-byte datagram with one pair of joins (38 GB/s here,
// vs 24 GB/s with 512-byte blocks, which a datagram is too short to use).
enum { ZC_LONG = 448, ZC_SHORT = 64 };
static uint32_t zeros_long[4][256], zeros_short[4][256];
static int zeros_ready;

__attribute__((target("sse4.2")))
static uint32_t shift_slow(uint32_t c, size_t bytes) {
    uint64_t r = c;
    for (size_t i = 0; i < bytes / 8; i++) r = __builtin_ia32_crc32di(r, 0);
    return (uint32_t)r;
}

static void build_zeros(uint32_t table[4][256], size_t bytes) {
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++)
            table[k][b] = shift_slow(b << (8 * k), bytes);
}

static inline uint32_t shift(uint32_t table[4][256], uint32_t c) {
    return table[0][c & 0xFF] ^ table[1][(c >> 8) & 0xFF] ^ table[2][(c >> 16) & 0xFF] ^ table[3][c >> 24];
}

// Runs of 3 x `block` bytes: three chains in parallel, joined by the zeros
// operator for `block` bytes. Advances *p and *len past what it consumed. Inlined
// with a constant block size at each call.
__attribute__((target("sse4.2"), always_inline))
static inline uint64_t crc32c_lanes(uint64_t c0, const uint8_t **pp, size_t *lenp, size_t block,
                                    uint32_t zeros[4][256]) {
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

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const void *data, size_t len) {
    if (!__atomic_load_n(&zeros_ready, __ATOMIC_ACQUIRE)) {
        // Racing threads compute identical tables; the flag only publishes them.
        build_zeros(zeros_long, ZC_LONG);
        build_zeros(zeros_short, ZC_SHORT);
        __atomic_store_n(&zeros_ready, 1, __ATOMIC_RELEASE);
    }
    const uint8_t *p = data;
    uint64_t c0 = (uint32_t)~crc;
    while (len && ((uintptr_t)p & 7)) { c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++); len--; }
    c0 = crc32c_lanes(c0, &p, &len, ZC_LONG, zeros_long);
    c0 = crc32c_lanes(c0, &p, &len, ZC_SHORT, zeros_short);
    while (len >= 8) {
        uint64_t w; memcpy(&w, p, 8);
        c0 = __builtin_ia32_crc32di(c0, w);
        p += 8; len -= 8;
    }
    while (len--) c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++);
    return ~(uint32_t)c0;
}

static int hw_state = -1;
int zc_crc32c_hardware(void) {
    int s = __atomic_load_n(&hw_state, __ATOMIC_RELAXED);
    if (s < 0) {
        unsigned a, b, c, d;
        s = (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2)) ? 1 : 0;
        __atomic_store_n(&hw_state, s, __ATOMIC_RELAXED);
    }
    return s;
}

uint32_t zc_crc32c(uint32_t crc, const void *data, size_t len) {
    if (zc_crc32c_hardware()) return crc32c_hw(crc, data, len);
    return zc_crc32c_portable(crc, data, len);
}
#else
int zc_crc32c_hardware(void) { return 0; }
uint32_t zc_crc32c(uint32_t crc, const void *data, size_t len) { return zc_crc32c_portable(crc, data, len); }
#endif

// ---- threads ----------------------------------------------------------------
#include <sched.h>
#include <pthread.h>
#include <errno.h>
int zc_pin_current_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}
int zc_available_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    return CPU_COUNT(&set);
}

// ---- stop flag ------------------------------------------------------------
static volatile sig_atomic_t stop_signal;

static void on_stop(int signo) { stop_signal = signo; }

void zc_install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: a blocked io_uring_enter returns EINTR
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int zc_stop_signal(void) { return stop_signal; }
void zc_request_stop(int signo) { stop_signal = signo; }

// ==== Receiver helpers (zc-recv's io_uring engine) ===========================
int zc_recvmsg_parse(void *buf, int len, struct msghdr *msg, struct zc_recvmsg_info *out) {
    struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(buf, len, msg);
    if (!o) return -1;
    out->payload = io_uring_recvmsg_payload(o, msg);
    out->payload_len = io_uring_recvmsg_payload_length(o, len, msg);
    out->full_len = o->payloadlen;
    out->flags = o->flags;
    out->namelen = o->namelen;
    out->name = io_uring_recvmsg_name(o);
    out->gro_segment = 0;
    out->rxq_ovfl = -1;
    for (struct cmsghdr *c = io_uring_recvmsg_cmsg_firsthdr(o, msg); c; c = io_uring_recvmsg_cmsg_nexthdr(o, msg, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int v; memcpy(&v, CMSG_DATA(c), sizeof v); out->gro_segment = v;
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t v; memcpy(&v, CMSG_DATA(c), sizeof v); out->rxq_ovfl = v;
        }
    }
    return 0;
}
