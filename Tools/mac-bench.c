// The MACs keyed streams could use, hot cache, one 1472-byte datagram per call, done the
// way a sender does it per datagram (SPEC §14.3): OpenSSL's EVP with one context set up
// once per key, then per datagram a new nonce, the update(s), the tag. Beside them the
// CRC32C a plain datagram costs (our kernel). One JSON line per row. Tools/bench --only keyed.
//   cc -O2 -I Sources/CCRC32C/include Tools/mac-bench.c Sources/CCRC32C/crc32c.c -lcrypto
#include "CCRC32C.h"
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static volatile uint32_t sink;
enum { N = 1472, AAD = 48 + 24 };

// One datagram: suite 1 = everything is associated data (GMAC), suite 2 = header and
// trailer associated, the payload encrypted in place.
static void one(EVP_CIPHER_CTX *x, uint8_t *buf, uint64_t pn, int encrypt) {
    uint8_t iv[12] = {0}, tag[16];
    int n;
    memcpy(iv + 4, &pn, 8);
    EVP_CipherInit_ex(x, NULL, NULL, NULL, iv, -1);
    if (encrypt) {
        EVP_CipherUpdate(x, NULL, &n, buf, AAD);
        EVP_CipherUpdate(x, buf + AAD, &n, buf + AAD, N - AAD);
    } else {
        EVP_CipherUpdate(x, NULL, &n, buf, N);
    }
    EVP_CipherFinal_ex(x, tag, &n);
    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, tag);
    sink ^= tag[0];
}

static void row(const char *what, double seconds, size_t calls) {
    printf("{\"what\": \"%s\", \"size\": %d, \"ns_per_datagram\": %.1f, \"gbytes_per_s\": %.3f}\n",
           what, N, seconds / calls * 1e9, calls * (double)N / seconds / 1e9);
    fflush(stdout);
}

int main(void) {
    static uint8_t buf[2048];
    uint8_t key[32];
    for (int i = 0; i < 2048; i++) buf[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 32; i++) key[i] = (uint8_t)(i * 13 + 1);
    const char *ciphers[] = {"AES-256-GCM", "AES-128-GCM", "ChaCha20-Poly1305"};
    for (int c = 0; c < 3; c++) {
        EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, ciphers[c], NULL);
        EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
        EVP_CipherInit_ex(x, cipher, NULL, NULL, NULL, 1);
        EVP_CIPHER_CTX_set_key_length(x, c == 1 ? 16 : 32);
        EVP_CipherInit_ex(x, NULL, NULL, key, NULL, -1);
        for (int encrypt = 0; encrypt < 2; encrypt++) {
            for (int i = 0; i < 20000; i++) one(x, buf, i, encrypt); // warm
            size_t calls = 0;
            double t0 = now(), t;
            do { for (int i = 0; i < 2000; i++) one(x, buf, calls + i, encrypt); calls += 2000; t = now() - t0; } while (t < 1.0);
            char what[96];
            snprintf(what, sizeof what, "OpenSSL %s %s", ciphers[c], encrypt ? "encrypt 1400 + 72 associated" : "tag only (all associated)");
            row(what, t, calls);
        }
        EVP_CIPHER_CTX_free(x);
        EVP_CIPHER_free(cipher);
    }
    size_t calls = 0;
    double t0 = now(), t;
    do { for (int i = 0; i < 20000; i++) sink ^= zc_crc32c(0, buf, N); calls += 20000; t = now() - t0; } while (t < 1.0);
    row("CRC32C (zcstream's kernel)", t, calls);
    return 0;
}
