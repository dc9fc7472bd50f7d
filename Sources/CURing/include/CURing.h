// CURing: the thin C layer over liburing.
//
// liburing's header (its static inline helpers import into Swift as-is), accessors for
// the kernel ABI's anonymous unions, and the parse of a multishot RECVMSG buffer.
// Everything else Linux-specific is in CLinux; CRC32C is in CCRC32C.
#ifndef ZC_CURING_H
#define ZC_CURING_H

// glibc headers first: liburing.h defines _XOPEN_SOURCE 500, which otherwise makes
// Swift's Glibc module and this one disagree about fd_set.
#include <sys/types.h>
#include <sys/select.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <CLinux.h>   // UDP_GRO, SO_RXQ_OVFL, ENOBUFS for the receive helpers
#include <liburing.h>

// liburing 2.3 predates these; the kernel (6.0+) has them.
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

// Constants re-exported as values: Swift does not import function-like or
// shifted macros reliably.
static const uint32_t zc_send_zc_report_usage = IORING_SEND_ZC_REPORT_USAGE;
static const uint32_t zc_notif_usage_zc_copied = IORING_NOTIF_USAGE_ZC_COPIED;
static const uint32_t zc_cqe_f_more = IORING_CQE_F_MORE;
static const uint32_t zc_cqe_f_notif = IORING_CQE_F_NOTIF;
static const uint32_t zc_cqe_f_buffer = IORING_CQE_F_BUFFER;
static const uint32_t zc_cqe_buffer_shift = IORING_CQE_BUFFER_SHIFT;
static const uint32_t zc_recvsend_fixed_buf = IORING_RECVSEND_FIXED_BUF;
static const uint32_t zc_setup_single_issuer = IORING_SETUP_SINGLE_ISSUER;
static const uint32_t zc_setup_defer_taskrun = IORING_SETUP_DEFER_TASKRUN;
static const uint32_t zc_setup_coop_taskrun = IORING_SETUP_COOP_TASKRUN;
static const uint32_t zc_setup_submit_all = IORING_SETUP_SUBMIT_ALL;
static const uint32_t zc_setup_cqsize = IORING_SETUP_CQSIZE;
static const uint32_t zc_setup_sqpoll = IORING_SETUP_SQPOLL;
static const uint32_t zc_setup_sq_aff = IORING_SETUP_SQ_AFF;
static const uint32_t zc_sqe_fixed_file = IOSQE_FIXED_FILE;
static const uint32_t zc_sqe_buffer_select = IOSQE_BUFFER_SELECT;

// --- sqe / cqe helpers -------------------------------------------------------

/// A spin-wait hint (PAUSE on x86): lets the sibling thread run and saves power while
/// a loop polls memory another core writes.
static inline void zc_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// SEND_ZC from a registered buffer, with the kernel asked to report whether it
/// had to copy after all (IORING_SEND_ZC_REPORT_USAGE, carried in sqe->ioprio).
static inline void zc_prep_send_zc_fixed(struct io_uring_sqe *sqe, int fd,
                                         const void *buf, size_t len,
                                         unsigned buf_index, int fixed_file,
                                         uint64_t user_data) {
    io_uring_prep_send_zc_fixed(sqe, fd, buf, len, 0, IORING_SEND_ZC_REPORT_USAGE, buf_index);
    if (fixed_file) sqe->flags |= IOSQE_FIXED_FILE;
    sqe->user_data = user_data;
}

/// Plain IORING_OP_SEND (the kernel copies), for the copy engine.
static inline void zc_prep_send(struct io_uring_sqe *sqe, int fd, const void *buf,
                                size_t len, int fixed_file, uint64_t user_data) {
    io_uring_prep_send(sqe, fd, buf, len, 0);
    if (fixed_file) sqe->flags |= IOSQE_FIXED_FILE;
    sqe->user_data = user_data;
}

/// One vectored read (IORING_OP_READV) of a slot's payload positions: a file's
/// consecutive bytes land between the datagram headers in one request, not one per datagram.
static inline void zc_prep_readv(struct io_uring_sqe *sqe, int fd, const struct iovec *iovecs,
                                 unsigned count, uint64_t offset, uint64_t user_data) {
    io_uring_prep_readv(sqe, fd, iovecs, count, offset);
    sqe->user_data = user_data;
}


/// Multishot RECVMSG that picks its buffers from provided-buffer group `bgid`.
static inline void zc_prep_recvmsg_multishot(struct io_uring_sqe *sqe, int fd,
                                             struct msghdr *msg, unsigned bgid,
                                             int fixed_file, uint64_t user_data) {
    io_uring_prep_recvmsg_multishot(sqe, fd, msg, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    if (fixed_file) sqe->flags |= IOSQE_FIXED_FILE;
    sqe->buf_group = (uint16_t)bgid;
    sqe->user_data = user_data;
}

static inline void zc_prep_nop(struct io_uring_sqe *sqe, uint64_t user_data) {
    io_uring_prep_nop(sqe);
    sqe->user_data = user_data;
}

/// Copies up to `max` ready CQEs (user_data, res, flags) out of the ring and
/// advances it. Returns the count. One call per reap keeps the ring's head
/// arithmetic in C, where liburing's macros are.
struct zc_completion { uint64_t user_data; int32_t res; uint32_t flags; };
static inline unsigned zc_reap(struct io_uring *ring, struct zc_completion *out, unsigned max) {
    unsigned head, n = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(ring, head, cqe) {
        if (n == max) break;
        out[n].user_data = cqe->user_data;
        out[n].res = cqe->res;
        out[n].flags = cqe->flags;
        n++;
    }
    io_uring_cq_advance(ring, n);
    return n;
}

/// Ready CQEs without entering the kernel.
static inline unsigned zc_cq_ready(const struct io_uring *ring) {
    return io_uring_cq_ready(ring);
}

// --- provided buffer ring (io_uring_setup_buf_ring is liburing 2.4+) ----------
static inline void zc_buf_ring_init(struct io_uring_buf_ring *br) { io_uring_buf_ring_init(br); }
static inline void zc_buf_ring_add(struct io_uring_buf_ring *br, void *addr, unsigned len,
                                   unsigned short bid, int mask, int offset) {
    io_uring_buf_ring_add(br, addr, len, bid, mask, offset);
}
static inline void zc_buf_ring_advance(struct io_uring_buf_ring *br, int count) {
    io_uring_buf_ring_advance(br, count);
}
static inline int zc_buf_ring_mask(unsigned entries) { return io_uring_buf_ring_mask(entries); }

// ==== Receiver helpers (zc-recv's io_uring engine) ===========================
// Added for the multishot RECVMSG engine: liburing's io_uring_recvmsg_* helpers
// and the CMSG_* walk are macros/static inlines over the kernel ABI, so the whole
// parse of one provided buffer happens here, in one call per completion.

/// One received datagram (or GRO-coalesced run) in a provided buffer.
struct zc_recvmsg_info {
    const void *payload;      ///< first payload byte, inside the buffer
    uint32_t payload_len;     ///< bytes of payload actually in the buffer
    uint32_t full_len;        ///< the datagram's length on the wire (> payload_len when truncated)
    uint32_t flags;           ///< recvmsg flags (MSG_TRUNC, MSG_CTRUNC)
    uint32_t namelen;         ///< source address length the kernel wrote
    const void *name;         ///< source address (struct sockaddr_in / _in6)
    int32_t gro_segment;      ///< UDP_GRO segment size, 0 if absent
    int64_t rxq_ovfl;         ///< SO_RXQ_OVFL drop counter, -1 if absent
    struct zc_local_address local; ///< IP_PKTINFO / IPV6_PKTINFO destination, family 0 if absent
};

/// Parses the buffer a multishot RECVMSG completion filled (`len` = cqe->res):
/// io_uring_recvmsg_out header, name, control messages, payload. `msg` is the
/// msghdr the request was armed with (its namelen/controllen fix the layout).
/// Returns 0, or -1 when the buffer is too short to hold the header.
int zc_recvmsg_parse(void *buf, int len, struct msghdr *msg, struct zc_recvmsg_info *out);

#endif
