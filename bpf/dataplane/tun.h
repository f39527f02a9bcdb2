/* SPDX-License-Identifier: GPL-2.0 */
/*
 * LVS-TUN: IP-in-IP to the real server, which decapsulates and answers the
 * client itself. The outer header is of the real server's family, the inner
 * packet of the VIP's, so all four mixes work: IPIP (4 in 4), SIT (6 in 4),
 * 4 in 6 and IPv6-in-IPv6. The outer header copies TOS/traffic class and
 * TTL/hop limit (and, IPv4 in IPv4, ID and DF) from the inner one, as IPVS's
 * ipip transmitter does.
 */
#ifndef XVS_TUN_H
#define XVS_TUN_H

#include "nexthop.h"
#include "icmp.h"

#define XVS_IPPROTO_IPV6 41 /* IPv6 inside (RFC 2473, RFC 4213) */

static __always_inline int xvs_fwd_tun(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_real *r)
{
	__u32 hlen = r->family == XVS_AF_INET6 ? XVS_IPV6_HLEN : sizeof(struct iphdr);
	__u32 outer_len = p->ip_len + hlen, l2 = p->l3_off;
	__u8 inner_proto = p->family == XVS_AF_INET6 ? XVS_IPPROTO_IPV6 : IPPROTO_IPIP;
	struct xvs_nexthop fib = {};
	const struct xvs_nexthop *nh;
	void *data, *data_end;
	__be16 *ethertype;
	int verdict;

	if (outer_len > 0xffff) {
		xvs_count(XVS_CNT_PASS_TOO_BIG);
		return XDP_PASS;
	}
	nh = xvs_nexthop(ctx, p, r, &fib, 1, &verdict);
	if (!nh)
		return verdict;
	if (nh->mtu && outer_len > nh->mtu) {
		if (p->df)
			return xvs_icmp_too_big(ctx, p, nh->mtu > hlen ? nh->mtu - hlen : 0);
		xvs_count(XVS_CNT_PASS_TOO_BIG);
		return XDP_PASS;
	}

	if (l2 > XVS_L2_MAX || xvs_push_room(ctx, l2, hlen))
		goto err;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/* The L2 header now announces the outer family (its last two bytes are
	 * the ethertype, after any VLAN tags). */
	ethertype = data + l2 - sizeof(*ethertype);
	if ((void *)ethertype < data || (void *)(ethertype + 1) > data_end)
		goto err;
	*ethertype = r->family == XVS_AF_INET6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
	if (r->family == XVS_AF_INET6) {
		struct ipv6hdr *outer = data + l2;

		if ((void *)(outer + 1) > data_end)
			goto err;
		xvs_ipv6_hdr(outer, p->tos, p->ip_len, inner_proto, p->ttl, nh->saddr, r->addr);
	} else {
		struct iphdr *outer = data + l2;
		struct iphdr *inner = (void *)(outer + 1);
		__be16 id = 0;

		if ((void *)(inner + 1) > data_end)
			goto err;
		if (p->family == XVS_AF_INET)
			id = inner->id;
		xvs_ipv4_hdr(outer, p->tos, outer_len, id, p->df ? bpf_htons(0x4000) : 0, p->ttl, inner_proto,
			     nh->saddr[0], r->addr[0]);
	}
	return xvs_egress(ctx, nh, p);

err:
	xvs_count(XVS_CNT_ERROR);
	return XDP_DROP;
}

#endif
