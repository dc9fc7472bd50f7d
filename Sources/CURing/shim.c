#define _GNU_SOURCE
#include "CURing.h"
#include <string.h>

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
    out->local.family = 0;
    for (struct cmsghdr *c = io_uring_recvmsg_cmsg_firsthdr(o, msg); c; c = io_uring_recvmsg_cmsg_nexthdr(o, msg, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int v; memcpy(&v, CMSG_DATA(c), sizeof v); out->gro_segment = v;
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t v; memcpy(&v, CMSG_DATA(c), sizeof v); out->rxq_ovfl = v;
        } else {
            zc_cmsg_local_address(c, &out->local);
        }
    }
    return 0;
}
