#define _GNU_SOURCE
#include "CLinux.h"
#include <string.h>
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

