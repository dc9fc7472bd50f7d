// CRC32C micro-benchmark, hot cache: every variant of Sources/CCRC32C this CPU runs,
// plain CRC, fused pattern+CRC (sender) and fused check+CRC (receiver) next to the
// two-pass equivalents, and ISA-L's crc32_iscsi when built with -DHAVE_ISAL -lisal.
// Tools/bench builds and runs it:
//   cc -O2 -I Sources/CCRC32C/include Tools/crc32c-bench.c Sources/CCRC32C/crc32c.c [-DHAVE_ISAL -lisal]
// Prints one JSON object per line: {"what":..., "variant":..., "size":..., "gbps":...} (GB/s).
#include "CCRC32C.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef HAVE_ISAL
#include <isa-l/crc.h>
#endif

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static volatile uint32_t sink;
static size_t BUF = 1 << 16; // ZC_BENCH_BUF overrides (bytes)
static uint8_t *buf;

// Best of 5 runs of ~40 ms each, GB/s over `size`-byte calls walking a 64 KiB buffer (L2-resident).
#define MEASURE(expr) ({ \
    double best = 0; size_t per = BUF / size ? BUF / size : 1; \
    for (int rep = 0; rep < 5; rep++) { \
        size_t calls = 0; double t0 = now(), t; \
        do { for (int it = 0; it < 64; it++) for (size_t j = 0; j < per; j++) { uint8_t *p = buf + j * size; (void)p; sink += (expr); } \
             calls += 64 * per; t = now() - t0; } while (t < 0.04); \
        double g = (double)calls * size / t / 1e9; if (g > best) best = g; } best; })

static void out(const char *what, const char *variant, size_t size, double gbps) {
    printf("{\"what\": \"%s\", \"variant\": \"%s\", \"size\": %zu, \"gbps\": %.2f}\n", what, variant, size, gbps);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (getenv("ZC_BENCH_BUF")) BUF = (size_t)atol(getenv("ZC_BENCH_BUF"));
    buf = aligned_alloc(64, BUF + 64 + 9000);
    for (int i = 0; i < BUF; i++) buf[i] = (uint8_t)(i * 131 + 7);
    size_t sizes[] = {1472, 8972};
    const char *only = argc > 1 ? argv[1] : NULL;
    for (int s = 0; s < 2; s++) {
        size_t size = sizes[s], payload = size - 48;
        for (int v = 0; v < ZC_CRC32C_VARIANTS; v++) {
            if (!zc_crc32c_supported(v) || (only && strcmp(only, zc_crc32c_name(v)))) continue;
            const char *n = zc_crc32c_name(v);
            out("crc", n, size, MEASURE(zc_crc32c_variant(v, 0, p, size)));
            out("fill+crc fused", n, payload, MEASURE(zc_crc32c_pattern_fill(v, 0, p, payload, 7, j * payload)));
            int bad;
            for (size_t j = 0; j < BUF / payload; j++) zc_crc32c_pattern_fill(v, 0, buf + j * payload, payload, 7, j * payload);
            out("check+crc fused", n, payload, MEASURE(zc_crc32c_pattern_check(v, 0, p, payload, 7, j * payload, &bad) + bad));
        }
#ifdef HAVE_ISAL
        if (!only || !strcmp(only, "isal")) {
            if (crc32_iscsi((unsigned char *)"123456789", 9, 0xFFFFFFFFu) != ~0xE3069283u && crc32_iscsi((unsigned char *)"123456789", 9, 0xFFFFFFFFu) != 0xE3069283u)
                fprintf(stderr, "ISA-L crc32_iscsi disagrees on the check value\n");
            out("crc", "isal crc32_iscsi", size, MEASURE(crc32_iscsi(p, (int)size, 0xFFFFFFFFu)));
        }
#endif
    }
    return 0;
}
