/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMP and ICMPv6 errors built in place and sent back where the packet came
 * from: fragmentation needed / packet too big (PMTUD through the tunnel) and
 * port unreachable (a service with no real server, as IPVS answers). The
 * source is the address the client sent to (the VIP).
 */
#ifndef XVS_ICMP_H
#define XVS_ICMP_H

#include "common.h"
#include "maps.h"

/* linux/icmp.h would pull in linux/if.h and, through it, the C library's
 * sys/socket.h; the dataplane needs only this much of ICMP (RFC 792/1191,
 * RFC 4443). */
struct xvs_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 unused;
	__be16 mtu; /* next-hop MTU of a fragmentation-needed message */
};

struct xvs_icmp6hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 mtu; /* of a packet-too-big message; zero otherwise */
};

enum {
	ICMP_DEST_UNREACH = 3,
	ICMP_PORT_UNREACH = 3,
	ICMP_FRAG_NEEDED = 4,
	ICMPV6_DEST_UNREACH = 1,
	ICMPV6_PORT_UNREACH = 4,
	ICMPV6_PKT_TOOBIG = 2,
	XVS_IPPROTO_ICMPV6 = 58,
	XVS_IPV6_MIN_MTU = 1280,
};

#define XVS_ICMP_ROOM (sizeof(struct iphdr) + sizeof(struct xvs_icmphdr))
#define XVS_ICMP6_ROOM (XVS_IPV6_HLEN + sizeof(struct xvs_icmp6hdr))
/* IPv4 quotes the offending header (options included) and 8 bytes after it. */
#define XVS_ICMP_QUOTE_MAX (60 + 8)
/* IPv6 quotes the start of the offending packet: enough for its headers and ports. */
#define XVS_ICMP6_QUOTE_MAX 128

/* Turns the frame into its L2 header with the MACs swapped and `room` fresh
 * bytes, then `quote` bytes of the original IP packet. */
static __always_inline int xvs_icmp_frame(struct xdp_md *ctx, __u32 l2, __u32 room, __u32 quote)
{
	void *data, *data_end;
	struct ethhdr *eth;
	__u8 mac[ETH_ALEN];

	if (xvs_push_room(ctx, l2, room))
		return -1;
	if (bpf_xdp_adjust_tail(ctx, (int)(l2 + room + quote) - (int)bpf_xdp_get_buff_len(ctx)))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	return 0;
}

static __always_inline int xvs_icmp4_error(struct xdp_md *ctx, const struct xvs_pkt *p, __u8 code, __u16 mtu)
{
	__u32 l2 = p->l3_off, quote = p->l4_off - p->l3_off + 8;
	void *data, *data_end;
	struct iphdr *iph;
	struct xvs_icmphdr *ic;
	__u16 *w;
	__u32 sum = 0;

	if (quote > XVS_ICMP_QUOTE_MAX || l2 > XVS_L2_MAX)
		return XDP_DROP;
	if (xvs_icmp_frame(ctx, l2, XVS_ICMP_ROOM, quote))
		goto err;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	iph = data + l2;
	ic = (void *)(iph + 1);
	if ((void *)(ic + 1) > data_end)
		goto err;
	/* TOS internetwork control, as the kernel's icmp_send. */
	xvs_ipv4_hdr(iph, 0xc0, XVS_ICMP_ROOM + quote, 0, 0, 64, IPPROTO_ICMP, p->daddr[0], p->saddr[0]);
	ic->type = ICMP_DEST_UNREACH;
	ic->code = code;
	ic->checksum = 0;
	ic->unused = 0;
	ic->mtu = bpf_htons(mtu);

	w = (__u16 *)ic;
#pragma unroll
	for (int i = 0; i < (sizeof(struct xvs_icmphdr) + XVS_ICMP_QUOTE_MAX) / 2; i++) {
		if (i * 2 >= sizeof(struct xvs_icmphdr) + quote)
			break;
		if ((void *)(w + i + 1) > data_end)
			goto err;
		sum += w[i];
	}
	ic->checksum = xvs_csum_finish((__wsum)sum);
	return XDP_TX;

err:
	xvs_count(XVS_CNT_ERROR);
	return XDP_DROP;
}

static __always_inline int xvs_icmp6_error(struct xdp_md *ctx, const struct xvs_pkt *p, __u8 type, __u8 code, __u32 mtu)
{
	__u32 l2 = p->l3_off, quote = p->ip_len, plen;
	void *data, *data_end;
	struct ipv6hdr *ip6;
	struct xvs_icmp6hdr *ic;
	__u32 sum = 0;

	if (quote > XVS_ICMP6_QUOTE_MAX)
		quote = XVS_ICMP6_QUOTE_MAX;
	quote &= ~1U; /* whole 16-bit words keep the checksum loop simple */
	if (l2 > XVS_L2_MAX)
		return XDP_DROP;
	if (xvs_icmp_frame(ctx, l2, XVS_ICMP6_ROOM, quote))
		goto err;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip6 = data + l2;
	ic = (void *)(ip6 + 1);
	if ((void *)(ic + 1) > data_end)
		goto err;
	plen = sizeof(*ic) + quote;
	xvs_ipv6_hdr(ip6, 0, plen, XVS_IPPROTO_ICMPV6, 255, p->daddr, p->saddr);
	ic->type = type;
	ic->code = code;
	ic->checksum = 0;
	ic->mtu = bpf_htonl(mtu);

	/* Pseudo-header: both addresses, the upper-layer length, next header. */
#pragma unroll
	for (int i = 0; i < 4; i++) {
		sum += (p->daddr[i] & 0xffff) + (p->daddr[i] >> 16);
		sum += (p->saddr[i] & 0xffff) + (p->saddr[i] >> 16);
	}
	sum += bpf_htons(plen) + bpf_htons(XVS_IPPROTO_ICMPV6);
	/* A bounded loop: the verifier walks it, no unrolling needed. The empty
	 * asm keeps clang from turning the bounds check into arithmetic on
	 * data_end, which the verifier refuses. */
	for (int i = 0; i < (sizeof(struct xvs_icmp6hdr) + XVS_ICMP6_QUOTE_MAX) / 2; i++) {
		void *q = (void *)ic + i * 2;

		if (i * 2 >= plen)
			break;
		asm volatile("" : "+r"(q));
		if (q + 2 > data_end)
			goto err;
		sum += *(__u16 *)q;
	}
	ic->checksum = xvs_csum_finish((__wsum)sum);
	return XDP_TX;

err:
	xvs_count(XVS_CNT_ERROR);
	return XDP_DROP;
}

XVS_SUBPROG int xvs_icmp_port_unreach(struct xdp_md *ctx, const struct xvs_pkt *p)
{
	if (!p)
		return XDP_DROP;
	if (p->family == XVS_AF_INET6)
		return xvs_icmp6_error(ctx, p, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, 0);
	return xvs_icmp4_error(ctx, p, ICMP_PORT_UNREACH, 0);
}

/* The packet does not fit the path once encapsulated: tell the client the
 * MTU it has (mtu, already less the encapsulation). */
XVS_SUBPROG int xvs_icmp_too_big(struct xdp_md *ctx, const struct xvs_pkt *p, __u32 mtu)
{
	if (!p)
		return XDP_DROP;
	xvs_count(XVS_CNT_FRAG_NEEDED);
	if (p->family == XVS_AF_INET6)
		return xvs_icmp6_error(ctx, p, ICMPV6_PKT_TOOBIG, 0, mtu < XVS_IPV6_MIN_MTU ? XVS_IPV6_MIN_MTU : mtu);
	return xvs_icmp4_error(ctx, p, ICMP_FRAG_NEEDED, mtu);
}

#endif
