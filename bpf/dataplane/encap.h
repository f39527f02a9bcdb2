/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The headers a TUN real server's packets travel in beyond IP-in-IP, as
 * Linux IPVS writes them (ip_vs_xmit.c: ipvs_gue_encap, ipvs_gre_encap):
 * what the director writes (tun.h) and the real server's decap helper
 * strips (xvs_decap.c), in one place.
 *
 * GUE (draft-ietf-intarea-gue, Linux's fou): UDP to the real server's port,
 * then a 4-byte header: version 0, control 0, no optional fields, no flags,
 * and the inner packet's IP protocol (4 or 41). IPVS adds the remote
 * checksum offload option only to a packet whose checksum is still to be
 * computed (CHECKSUM_PARTIAL, the director's own traffic); everything an
 * XDP program sees arrived whole, checksum included, so the header is
 * always these 4 bytes.
 *
 * GRE (RFC 2784): flags and version, then the inner packet's ethertype; with
 * the checksum flag, 16 bits of checksum over the GRE header and the packet
 * and 16 reserved ones.
 */
#ifndef XVS_ENCAP_H
#define XVS_ENCAP_H

#include <linux/udp.h>
#include "common.h"

#define XVS_IPPROTO_IPV6 41 /* IPv6 inside (RFC 2473, RFC 4213) */
#define XVS_IPPROTO_GRE 47

struct xvs_guehdr {
	__u8 ctl;    /* version (2 bits), control (1), optional fields' length in words (5) */
	__u8 proto;  /* the inner packet's IP protocol */
	__be16 flags;
};

struct xvs_grehdr {
	__be16 flags; /* C R K S s Recur(3) Flags(5) Ver(3) */
	__be16 proto; /* the inner packet's ethertype */
};

/* GRE with the checksum present: its checksum and the reserved word. */
struct xvs_grehdr_csum {
	struct xvs_grehdr h;
	__sum16 csum;
	__be16 reserved1;
};

#define XVS_GRE_F_CSUM 0x8000
#define XVS_GUE_LEN (sizeof(struct udphdr) + sizeof(struct xvs_guehdr))

/* Bytes between the outer IP header and the inner packet. */
static __always_inline __u32 xvs_encap_len(__u8 tun_type, __u8 tun_flags)
{
	if (tun_type == XVS_TUN_GUE)
		return XVS_GUE_LEN;
	if (tun_type == XVS_TUN_GRE)
		return tun_flags & XVS_TUN_F_CSUM ? sizeof(struct xvs_grehdr_csum) : sizeof(struct xvs_grehdr);
	return 0;
}

/* The pseudo-header of UDP over either family (RFC 768, RFC 8200 8.1), its
 * words summed in memory order; addresses as in the ABI (IPv4 in word 0). */
static __always_inline __u32 xvs_udp_pseudo_sum(int v6, const __be32 *saddr, const __be32 *daddr, __u32 len)
{
	__u32 sum = bpf_htons(len) + bpf_htons(IPPROTO_UDP);

	sum += (saddr[0] & 0xffff) + (saddr[0] >> 16) + (daddr[0] & 0xffff) + (daddr[0] >> 16);
	if (v6) {
#pragma unroll
		for (int i = 1; i < 4; i++)
			sum += (saddr[i] & 0xffff) + (saddr[i] >> 16) + (daddr[i] & 0xffff) + (daddr[i] >> 16);
	}
	return sum;
}

#endif
