#define _GNU_SOURCE
#include "CLinux.h"
#include <string.h>
// ---- cmsg -----------------------------------------------------------------
void zc_cmsg_local_address(const struct cmsghdr *c, struct zc_local_address *local) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        struct in_pktinfo pi; memcpy(&pi, CMSG_DATA(c), sizeof pi);
        memset(local->addr, 0, 10);
        local->addr[10] = 0xff; local->addr[11] = 0xff;
        memcpy(local->addr + 12, &pi.ipi_addr, 4);
        local->family = AF_INET;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        struct in6_pktinfo pi; memcpy(&pi, CMSG_DATA(c), sizeof pi);
        memcpy(local->addr, &pi.ipi6_addr, 16);
        local->family = AF_INET6;
    }
}

void zc_cmsg_parse(const struct msghdr *msg, int32_t *segment, int64_t *drops, struct zc_local_address *local) {
    *segment = 0; *drops = -1; local->family = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int v; memcpy(&v, CMSG_DATA(c), sizeof v); *segment = v;
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t v; memcpy(&v, CMSG_DATA(c), sizeof v); *drops = v;
        } else {
            zc_cmsg_local_address(c, local);
        }
    }
}

long zc_send_from(int fd, const void *buf, size_t len, const struct sockaddr *to, socklen_t tolen,
                  const struct zc_local_address *from, int flags) {
    struct iovec iov = { (void *)buf, len };
    union { char bytes[CMSG_SPACE(sizeof(struct in6_pktinfo))]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = { 0 };
    msg.msg_name = (void *)to; msg.msg_namelen = tolen;
    msg.msg_iov = &iov; msg.msg_iovlen = 1;
    static const uint8_t mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };
    if (from && from->family != 0) {
        struct cmsghdr *c = (struct cmsghdr *)control.bytes;
        if (from->family == AF_INET || memcmp(from->addr, mapped, 12) == 0) {
            struct in_pktinfo pi; memset(&pi, 0, sizeof pi);
            memcpy(&pi.ipi_spec_dst, from->addr + 12, 4);
            c->cmsg_level = IPPROTO_IP; c->cmsg_type = IP_PKTINFO; c->cmsg_len = CMSG_LEN(sizeof pi);
            memcpy(CMSG_DATA(c), &pi, sizeof pi);
            msg.msg_controllen = CMSG_SPACE(sizeof pi);
        } else {
            struct in6_pktinfo pi; memset(&pi, 0, sizeof pi);
            memcpy(&pi.ipi6_addr, from->addr, 16);
            c->cmsg_level = IPPROTO_IPV6; c->cmsg_type = IPV6_PKTINFO; c->cmsg_len = CMSG_LEN(sizeof pi);
            memcpy(CMSG_DATA(c), &pi, sizeof pi);
            msg.msg_controllen = CMSG_SPACE(sizeof pi);
        }
        msg.msg_control = control.bytes;
    }
    return sendmsg(fd, &msg, flags);
}

long zc_preadv_nowait(int fd, const struct iovec *iov, int count, int64_t offset) {
    return preadv2(fd, iov, count, offset, RWF_NOWAIT);
}

// ---- mmsg -----------------------------------------------------------------
_Static_assert(sizeof(struct zc_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
int zc_sendmmsg(int fd, struct zc_mmsghdr *msgs, unsigned int count, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)msgs, count, flags);
}
int zc_recvmmsg(int fd, struct zc_mmsghdr *msgs, unsigned int count, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)msgs, count, flags, NULL);
}

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

