/*
 * gso-pair: the loopback ceiling zcstream is measured against.
 *
 * A UDP GSO sender and a UDP GRO receiver that move 1472-byte datagrams over
 * loopback and never look at them: no header, no checksum, no sequence numbers,
 * one static buffer. What its receiver counts is the most a validating receiver
 * could hope to take in on the same machine. Tools/bench (section loopback)
 * runs it right before each zc-send -> zc-recv pair and reports the ratio.
 *
 *   gso-pair rx SEGMENT SECONDS [PORT]   receive until 300 ms of silence after
 *                                        the first datagram; prints
 *                                        "rx G Gbit/s (N datagram-equivalents/s at 1472)"
 *   gso-pair tx SEGMENT SECONDS [PORT]   send for SECONDS; prints "tx G Gbit/s"
 *
 * SEGMENT is the datagram size (UDP_SEGMENT / UDP_GRO); 0 turns GSO and GRO off
 * and sends one 1472-byte datagram per call. Each send carries as many whole
 * segments as fit in one UDP datagram (44 x 1472 = 64768 bytes). The receiver
 * counts bytes from its first batch to its last, so start it first. The port
 * defaults to 9100 on 127.0.0.1. Tools/bench: `rx 1472 S` then `tx 1472 S`.
 *
 * Build: cc -O2 -o gso-pair Tools/reference/gso-pair.c
 *
 * Checked on 2026-12-02 against the program it replaced (the design brief's
 * gso_ceiling.c, kept outside the repository), both built with cc -O2 and run
 * `rx 1472 3` then `tx 1472 3`, interleaved, on the shared 2-core machine (kernel
 * 6.18, other builds running), receiver Gbit/s:
 *   3 rounds:            this 21.6 23.7 21.3   gso_ceiling.c 19.3 22.0 12.0
 *   6 rounds, medians:   this 16.2   gso_ceiling.c 14.2   a second copy of it 14.6
 *   6 rounds, medians:   this 15.0   gso_ceiling.c 14.1   it with the fix below 15.3
 * The one difference is deliberate: gso_ceiling.c's receiver stops its clock after
 * the 300 ms receive timeout that ends it, so a 3 s run is divided by ~3.3 s (~9 %
 * low). This one counts from the first batch to the last, as zc-recv's `gbps` does
 * (first to last intact datagram), so the two are compared like for like.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* UDP_SEGMENT and UDP_GRO come from glibc's <netinet/udp.h> (2.29 and later). */

enum {
    BATCH = 32,                 /* messages per recvmmsg */
    BUFFER = 65536,             /* one GRO buffer holds up to 64 KiB */
    MAX_UDP = 65507,            /* largest IPv4 UDP payload */
    PLAIN_SIZE = 1472,          /* datagram size when SEGMENT is 0 */
    IDLE_US = 300000,           /* receiver stops after this much silence */
    RCVBUF = 256 << 20,
};

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "gso-pair: %s: %s\n", what, strerror(errno));
    exit(2);
}

static int udp_socket(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    return fd;
}

static int receive(const struct sockaddr_in *at, int segment) {
    int fd = udp_socket();
    int size = RCVBUF, on = 1;
    /* FORCE: above net.core.rmem_max when root; a plain SO_RCVBUF otherwise. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (segment > 0 && setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof on) < 0) die("UDP_GRO");
    if (bind(fd, (const struct sockaddr *)at, sizeof *at) < 0) die("bind");
    struct timeval idle = {0, IDLE_US};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);

    static char data[BATCH][BUFFER];
    static char control[BATCH][64];   /* room for the GRO segment-size cmsg, unread */
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        iov[i] = (struct iovec){data[i], BUFFER};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    unsigned long long bytes = 0;
    double first = 0, last = 0;
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            msgs[i].msg_hdr.msg_control = control[i];
            msgs[i].msg_hdr.msg_controllen = sizeof control[i];
        }
        int n = recvmmsg(fd, msgs, BATCH, 0, NULL);
        double t = seconds_now();
        if (n < 0) {
            if (first > 0) break;                  /* silence after traffic: done */
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
            die("recvmmsg");
        }
        if (first == 0) first = t;
        last = t;
        for (int i = 0; i < n; i++) bytes += msgs[i].msg_len;
    }
    double span = last - first;
    if (span <= 0) span = 1e-9;
    printf("rx %.2f Gbit/s (%.0f datagram-equivalents/s at 1472)\n",
           (double)bytes * 8 / span / 1e9, (double)bytes / 1472.0 / span);
    close(fd);
    return 0;
}

static int transmit(const struct sockaddr_in *to, int segment, double duration) {
    int fd = udp_socket();
    if (connect(fd, (const struct sockaddr *)to, sizeof *to) < 0) die("connect");
    size_t per_send = PLAIN_SIZE;
    if (segment > 0) {
        if (setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &segment, sizeof segment) < 0) die("UDP_SEGMENT");
        per_send = (size_t)segment * (size_t)(MAX_UDP / segment);
    }
    static char payload[BUFFER];
    memset(payload, 7, sizeof payload);     /* never changes: nothing is generated per send */

    unsigned long long bytes = 0;
    double start = seconds_now(), now = start;
    while (now - start < duration) {
        ssize_t r = send(fd, payload, per_send, 0);
        if (r > 0) bytes += (unsigned long long)r;   /* ECONNREFUSED etc.: keep going */
        now = seconds_now();
    }
    printf("tx %.2f Gbit/s\n", (double)bytes * 8 / (now - start) / 1e9);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[1], "rx") != 0 && strcmp(argv[1], "tx") != 0)) {
        fprintf(stderr, "usage: gso-pair rx|tx SEGMENT SECONDS [PORT]\n");
        return 64;
    }
    int segment = atoi(argv[2]);
    double duration = atof(argv[3]);
    int port = argc > 4 ? atoi(argv[4]) : 9100;
    if (segment < 0 || segment > MAX_UDP || duration <= 0 || port <= 0 || port > 65535) {
        fprintf(stderr, "gso-pair: SEGMENT 0..%d, SECONDS > 0, PORT 1..65535\n", MAX_UDP);
        return 64;
    }
    struct sockaddr_in loopback = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return argv[1][0] == 'r' ? receive(&loopback, segment) : transmit(&loopback, segment, duration);
}
