// CLinux: what Swift cannot reach of Linux's socket, thread and signal APIs.
//
// Macros (CMSG_*, CPU_SET), declarations glibc hides behind _GNU_SOURCE (sendmmsg,
// recvmmsg), an async-signal-safe stop flag, and the AF_PACKET ring's status word,
// which needs acquire/release ordering Swift cannot express on mmapped memory.
// Nothing here needs liburing: the wire-format and socket modules build without it.
#ifndef ZC_CLINUX_H
#define ZC_CLINUX_H

#include <sys/types.h>
#include <sys/select.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/udp.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif

// Socket options re-exported as values.
static const int zc_udp_segment = UDP_SEGMENT;
static const int zc_udp_gro = UDP_GRO;
static const int zc_so_rxq_ovfl = SO_RXQ_OVFL;
static const int zc_enobufs = ENOBUFS;
static const int zc_msg_trunc = MSG_TRUNC;

// --- cmsg walking (CMSG_* are macros) ----------------------------------------
/// The local address a datagram was sent to (IP_PKTINFO / IPV6_PKTINFO): family 0 when
/// the control buffer had none. IPv4 is stored IPv4-mapped (::ffff:a.b.c.d), as SourceAddress does.
struct zc_local_address { uint16_t family; uint8_t addr[16]; };
/// Every control message of a received datagram in one walk: the UDP_GRO segment size (0 if
/// absent), the SO_RXQ_OVFL counter (-1 if absent) and the IP_PKTINFO / IPV6_PKTINFO
/// destination (`local->family` 0 if absent).
void zc_cmsg_parse(const struct msghdr *msg, int32_t *segment, int64_t *drops, struct zc_local_address *local);
/// Fills `local` from one control message when it is IP_PKTINFO or IPV6_PKTINFO (else leaves it).
struct cmsghdr;
void zc_cmsg_local_address(const struct cmsghdr *c, struct zc_local_address *local);
/// Sends one datagram to `to` from the local address `from` (IP_PKTINFO's ipi_spec_dst for
/// IPv4 and IPv4-mapped, IPV6_PKTINFO for IPv6): a wildcard socket answers from the address
/// it was sent to. Returns sendmsg's result (-1 with errno set).
long zc_send_from(int fd, const void *buf, size_t len, const struct sockaddr *to, socklen_t tolen,
                  const struct zc_local_address *from, int flags);
/// Linux's IP_PKTINFO (8) and IPV6_RECVPKTINFO (49): glibc hides them behind _GNU_SOURCE.
static const int zc_ip_pktinfo = 8;
static const int zc_ipv6_recvpktinfo = 49;

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

/// The filesystem type (statfs f_type, a *_MAGIC number) of `path`; -1 with errno set.
/// statfs lives in <sys/vfs.h>, which Swift's Glibc module does not export.
#include <sys/vfs.h>
static inline long zc_filesystem_type(const char *path) {
    struct statfs fs;
    if (statfs(path, &fs) != 0) return -1;
    return (long)fs.f_type;
}

/// A server's streams come and go, each with ~170 KB of latency histogram. glibc raises
/// its mmap threshold after the first such block is freed, so later ones come from the
/// heap arenas, which fragment and never shrink: memory grows with every round of streams.
/// A fixed threshold keeps blocks this large in their own mappings, unmapped on free.
#include <malloc.h>
static inline void zc_malloc_map_large_blocks(int threshold_bytes) {
    mallopt(M_MMAP_THRESHOLD, threshold_bytes);
}
/// Returns free heap memory of every arena to the kernel (not per datagram: after a
/// batch of streams was freed).
static inline void zc_malloc_release_free(void) {
    malloc_trim(0);
}

/// preadv2(..., RWF_NOWAIT): reads only what the page cache holds now, on this thread; -1
/// with errno EAGAIN when it would block (a miss), EOPNOTSUPP where the file cannot.
long zc_preadv_nowait(int fd, const struct iovec *iov, int count, int64_t offset);

#endif
