/*
 * sendzc-gso: the bare io_uring SEND_ZC sender zcstream's sender is measured against.
 *
 * It sends 64768-byte GSO super-buffers (44 datagrams of 1472 bytes, UDP_SEGMENT)
 * from a pool of 64 registered 64 KiB slots that it fills once at start and never
 * writes again: no headers, no checksums, no sequence numbers, no pacing. A slot goes
 * back to the free stack only when the kernel's notification CQE (IORING_CQE_F_NOTIF)
 * says it is done with it, as in zc-send. Tools/bench (section sink) runs it into
 * the peer-down veth sink (Tools/netsink) right before each zc-send uring-zc run and
 * reports zc-send's Gbit/s as a fraction of it.
 *
 *   sendzc-gso DEST ZC SECONDS [PORT]
 *     DEST     IPv4 address (Tools/bench: the sink's 198.18.x.2)
 *     ZC       1: IORING_OP_SEND_ZC with IORING_RECVSEND_FIXED_BUF and
 *                 IORING_SEND_ZC_REPORT_USAGE; 0: plain IORING_OP_SEND (the kernel copies)
 *     PORT     UDP destination port, default 9100
 *   prints "DEST zc=Z: G Gbit/s, notifs N copied C errs E"
 *   (C: notifications whose IORING_NOTIF_USAGE_ZC_COPIED bit says the kernel copied)
 *
 * Build: cc -O2 -o sendzc-gso Tools/reference/sendzc-gso.c -luring   (liburing-dev)
 *
 * Checked on 2026-12-02 against the program it replaced (the design brief's
 * sendzc_gso.c, kept outside the repository), both built with cc -O2 -luring and run
 * `DEST 1 3` interleaved into the same peer-down sink (`Tools/netsink up`), on the
 * shared 2-core machine (kernel 6.18), Gbit/s (every notification: copied 0):
 *   3 rounds:            this 167.6 178.1 188.0   sendzc_gso.c 195.4 198.2 192.8
 *   8 rounds, medians:   this 248.5 (161-282)     sendzc_gso.c 240.2 (139-288)
 *                        a second copy of sendzc_gso.c 233.6 (157-280)
 * The same measurement: bytes from the send CQEs over the time to the last
 * notification. Run to run this machine swings more than the two differ.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Linux 6.2's SEND_ZC usage report, spelled out: liburing 2.3's headers predate it. */
static const unsigned report_usage = 1U << 3;    /* IORING_SEND_ZC_REPORT_USAGE, in the SQE */
static const unsigned usage_copied = 1U << 31;   /* IORING_NOTIF_USAGE_ZC_COPIED, in the notification's res */

enum {
    SLOTS = 64,
    SLOT_BYTES = 65536,
    SEGMENT = 1472,
    SEGMENTS = 44,
    SEND_BYTES = SEGMENT * SEGMENTS,   /* 64768: the most whole 1472s under 64 KiB */
    RING_ENTRIES = 512,
};

struct counts {
    unsigned long long bytes, notifications, copied, errors;
};

struct sender {
    struct io_uring ring;
    int fd;
    int zero_copy;
    char *pool;                 /* SLOTS x SLOT_BYTES, registered as buffer 0 */
    int free_slots[SLOTS];
    int free_count;
    int in_flight;
    struct counts counts;
};

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void fail(const char *what, int err) {
    fprintf(stderr, "sendzc-gso: %s: %s\n", what, strerror(err));
    exit(2);
}

static void release(struct sender *s, int slot) {
    s->free_slots[s->free_count++] = slot;
    s->in_flight--;
}

/* Queues a send for every free slot (as far as the submission queue has room). */
static void queue_sends(struct sender *s) {
    while (s->free_count > 0) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
        if (!sqe) return;
        int slot = s->free_slots[--s->free_count];
        char *data = s->pool + (size_t)slot * SLOT_BYTES;
        if (s->zero_copy)
            io_uring_prep_send_zc_fixed(sqe, s->fd, data, SEND_BYTES, 0, report_usage, 0);
        else
            io_uring_prep_send(sqe, s->fd, data, SEND_BYTES, 0);
        io_uring_sqe_set_data64(sqe, (uint64_t)slot);
        s->in_flight++;
    }
}

/* One CQE. SEND_ZC gives two per send: the result (F_MORE when a notification
 * follows) and the notification (F_NOTIF); the slot is free only after the second. */
static void complete(struct sender *s, const struct io_uring_cqe *cqe) {
    int slot = (int)io_uring_cqe_get_data64(cqe);
    if (s->zero_copy && (cqe->flags & IORING_CQE_F_NOTIF)) {
        s->counts.notifications++;
        if ((uint32_t)cqe->res & usage_copied) s->counts.copied++;
        release(s, slot);
        return;
    }
    if (cqe->res > 0) s->counts.bytes += (unsigned long long)cqe->res;
    else s->counts.errors++;
    if (!s->zero_copy || !(cqe->flags & IORING_CQE_F_MORE)) release(s, slot);
}

static void setup(struct sender *s, const char *dest, int port) {
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int r = io_uring_queue_init_params(RING_ENTRIES, &s->ring, &params);
    if (r < 0) fail("io_uring_queue_init_params", -r);

    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, dest, &to.sin_addr) != 1) {
        fprintf(stderr, "sendzc-gso: not an IPv4 address: %s\n", dest);
        exit(64);
    }
    s->fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (s->fd < 0) fail("socket", errno);
    if (connect(s->fd, (struct sockaddr *)&to, sizeof to) < 0) fail("connect", errno);
    int segment = SEGMENT, on = 1;
    if (setsockopt(s->fd, IPPROTO_UDP, UDP_SEGMENT, &segment, sizeof segment) < 0) fail("UDP_SEGMENT", errno);
    setsockopt(s->fd, SOL_SOCKET, SO_ZEROCOPY, &on, sizeof on);   /* as a MSG_ZEROCOPY sender would */

    s->pool = aligned_alloc(4096, (size_t)SLOTS * SLOT_BYTES);
    if (!s->pool) fail("aligned_alloc", ENOMEM);
    memset(s->pool, 7, (size_t)SLOTS * SLOT_BYTES);
    struct iovec whole = {s->pool, (size_t)SLOTS * SLOT_BYTES};
    r = io_uring_register_buffers(&s->ring, &whole, 1);
    if (r < 0) fail("io_uring_register_buffers", -r);
    for (int i = 0; i < SLOTS; i++) s->free_slots[i] = i;
    s->free_count = SLOTS;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: sendzc-gso DEST ZC(0|1) SECONDS [PORT]\n");
        return 64;
    }
    static struct sender s;
    s.zero_copy = atoi(argv[2]) != 0;
    double duration = atof(argv[3]);
    int port = argc > 4 ? atoi(argv[4]) : 9100;
    if (duration <= 0 || port <= 0 || port > 65535) {
        fprintf(stderr, "sendzc-gso: SECONDS > 0, PORT 1..65535\n");
        return 64;
    }
    setup(&s, argv[1], port);

    double start = seconds_now();
    int sending = 1;
    while (sending || s.in_flight > 0) {
        if (sending && seconds_now() - start >= duration) sending = 0;
        if (sending) queue_sends(&s);
        io_uring_submit_and_wait(&s.ring, 1);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&s.ring, head, cqe) {
            complete(&s, cqe);
            seen++;
        }
        io_uring_cq_advance(&s.ring, seen);
    }
    double elapsed = seconds_now() - start;   /* includes draining the last notifications */
    printf("%s zc=%d: %.2f Gbit/s, notifs %llu copied %llu errs %llu\n", argv[1], s.zero_copy,
           (double)s.counts.bytes * 8 / elapsed / 1e9, s.counts.notifications, s.counts.copied, s.counts.errors);
    io_uring_queue_exit(&s.ring);
    return 0;
}
