// CURing: the thin C layer under zcstream.
//
// Only what Swift cannot reach lives here: liburing's header (its static inline
// helpers import into Swift as-is), accessors for the kernel ABI's anonymous unions,
// and an async-signal-safe stop flag. (CRC32C lives in CCRC32C.)
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
#include <liburing.h>

// liburing 2.3 predates these; the kernel (6.0+) has them.
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
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
static const uint32_t zc_sqe_fixed_file = IOSQE_FIXED_FILE;
static const uint32_t zc_sqe_buffer_select = IOSQE_BUFFER_SELECT;
static const int zc_udp_segment = UDP_SEGMENT;
static const int zc_udp_gro = UDP_GRO;
static const int zc_so_rxq_ovfl = SO_RXQ_OVFL;

// --- sqe / cqe helpers -------------------------------------------------------

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

/// READ_FIXED into a registered buffer.
static inline void zc_prep_read_fixed(struct io_uring_sqe *sqe, int fd, void *buf,
                                      unsigned len, uint64_t offset, int buf_index,
                                      uint64_t user_data) {
    io_uring_prep_read_fixed(sqe, fd, buf, len, offset, buf_index);
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

// --- cmsg walking (CMSG_* are macros) ----------------------------------------
/// The UDP_GRO segment size in a received control buffer, or 0 if absent.
int zc_cmsg_gro_segment(const struct msghdr *msg);
/// The SO_RXQ_OVFL drop counter in a received control buffer, or -1 if absent.
int64_t zc_cmsg_rxq_ovfl(const struct msghdr *msg);

// --- sendmmsg / recvmmsg -----------------------------------------------------
// glibc declares these only under _GNU_SOURCE, which Swift's Glibc module is not
// built with; the layout below is the kernel's struct mmsghdr.
struct zc_mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
int zc_sendmmsg(int fd, struct zc_mmsghdr *msgs, unsigned int count, int flags);
/// recvmmsg without a timeout.
int zc_recvmmsg(int fd, struct zc_mmsghdr *msgs, unsigned int count, int flags);

// --- threads -------------------------------------------------------------------
/// Pins the calling thread to one CPU (CPU_SET is a macro). Returns 0 or an errno.
int zc_pin_current_thread(int cpu);
/// Number of CPUs this process may run on.
int zc_available_cpus(void);

// --- stop flag -----------------------------------------------------------------
/// Installs SIGINT/SIGTERM handlers that only record the signal (no SA_RESTART,
/// so blocking calls return EINTR and loops notice at once).
void zc_install_stop_handlers(void);
/// 0, or the number of the signal that asked us to stop.
int zc_stop_signal(void);
/// Lets a program (or test) request a stop without a signal.
void zc_request_stop(int signo);

// ==== Receiver helpers (zc-recv's io_uring engine) ===========================
// Added for the multishot RECVMSG engine: liburing's io_uring_recvmsg_* helpers
// and the CMSG_* walk are macros/static inlines over the kernel ABI, so the whole
// parse of one provided buffer happens here, in one call per completion.
#include <errno.h>
static const int zc_enobufs = ENOBUFS;
static const int zc_msg_trunc = MSG_TRUNC;

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
};

/// Parses the buffer a multishot RECVMSG completion filled (`len` = cqe->res):
/// io_uring_recvmsg_out header, name, control messages, payload. `msg` is the
/// msghdr the request was armed with (its namelen/controllen fix the layout).
/// Returns 0, or -1 when the buffer is too short to hold the header.
int zc_recvmsg_parse(void *buf, int len, struct msghdr *msg, struct zc_recvmsg_info *out);

// --- AF_PACKET TX ring ---------------------------------------------------------
// The packet-ring send engine (Sources/Sender/PacketRingEngine.swift). The frame
// status word is shared with the kernel: it must be read with acquire and written
// with release ordering, which Swift cannot express on mmapped memory; everything
// else about the ring is plain memory and stays in Swift.
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <poll.h>

static const int zc_sol_packet = SOL_PACKET;
static const int zc_packet_version = PACKET_VERSION;
static const int zc_packet_tx_ring = PACKET_TX_RING;
static const int zc_packet_qdisc_bypass = PACKET_QDISC_BYPASS;
static const int zc_packet_loss = PACKET_LOSS;
static const int zc_packet_vnet_hdr = PACKET_VNET_HDR;
/// sizeof(struct virtio_net_hdr): flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
static const int zc_virtio_net_hdr_size = 10;
static const int zc_tpacket_v2 = TPACKET_V2;
static const uint32_t zc_tp_status_available = TP_STATUS_AVAILABLE;
static const uint32_t zc_tp_status_send_request = TP_STATUS_SEND_REQUEST;
static const uint32_t zc_tp_status_sending = TP_STATUS_SENDING;
static const uint32_t zc_tp_status_wrong_format = TP_STATUS_WRONG_FORMAT;
static const uint16_t zc_eth_p_ip = ETH_P_IP;
/// Where a TPACKET_V2 TX frame's data starts (without PACKET_TX_HAS_OFF):
/// TPACKET2_HDRLEN - sizeof(struct sockaddr_ll), i.e. the aligned tpacket2_hdr.
static const int zc_tpacket2_data_offset = (int)(TPACKET2_HDRLEN - sizeof(struct sockaddr_ll));

/// tp_status of the frame at `frame`, read with acquire ordering (the kernel's
/// writes to the frame before it published the status are visible after).
static inline uint32_t zc_tp_status_load(const void *frame) {
    return __atomic_load_n(&((const struct tpacket2_hdr *)frame)->tp_status, __ATOMIC_ACQUIRE);
}
/// Publishes tp_status with release ordering: every byte written to the frame
/// (data, tp_len) is visible to the kernel before it sees the new status.
static inline void zc_tp_status_store(void *frame, uint32_t status) {
    __atomic_store_n(&((struct tpacket2_hdr *)frame)->tp_status, status, __ATOMIC_RELEASE);
}
/// tp_len of the frame (plain store; published by zc_tp_status_store).
static inline void zc_tp_set_len(void *frame, uint32_t len) {
    ((struct tpacket2_hdr *)frame)->tp_len = len;
}
/// Binds an AF_PACKET socket to one interface (protocol in network order, 0 = send only).
static inline int zc_packet_bind(int fd, int ifindex, uint16_t protocol_be) {
    struct sockaddr_ll sll = {0};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = ifindex;
    sll.sll_protocol = protocol_be;
    return bind(fd, (struct sockaddr *)&sll, sizeof sll);
}
/// Configures the TX ring (struct tpacket_req).
static inline int zc_packet_set_tx_ring(int fd, unsigned block_size, unsigned block_nr,
                                        unsigned frame_size, unsigned frame_nr) {
    struct tpacket_req req = { block_size, block_nr, frame_size, frame_nr };
    return setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req);
}
/// The kick: the kernel sends every frame marked SEND_REQUEST, from its own head on.
static inline long zc_packet_kick(int fd) {
    return (long)sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
}
/// Waits up to `timeout_ms` for the socket to become writable (a frame was freed).
static inline int zc_poll_out(int fd, int timeout_ms) {
    struct pollfd p = { fd, POLLOUT, 0 };
    return poll(&p, 1, timeout_ms);
}

#endif
