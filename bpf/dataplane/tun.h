/* SPDX-License-Identifier: GPL-2.0 */
/*
 * LVS-TUN: the packet travels to the real server inside an outer header of
 * the real server's family, which decapsulates and answers the client
 * itself. The inner packet is of the VIP's family, so all four mixes work:
 * IPIP (4 in 4), SIT (6 in 4), 4 in 6 and IPv6-in-IPv6. Between the two IP
 * headers, the real server's tunnel type puts nothing (IPIP), UDP and GUE,
 * or GRE (encap.h), as IPVS does. The outer header copies TOS/traffic class
 * and TTL/hop limit (and, IPv4 in IPv4, ID and DF) from the inner one, as
 * IPVS's tunnel transmitter does.
 */
#ifndef XVS_TUN_H
#define XVS_TUN_H

#include "nexthop.h"
#include "icmp.h"
#include "encap.h"
#include "pktsum.h"

/*
 * GUE's UDP source port: a hash of the inner 5-tuple (murmur3's finaliser
 * over the folded addresses, the ports and the protocol), scaled into
 * [XVS_TUN_SPORT_MIN, XVS_TUN_SPORT_MAX) as Linux's udp_flow_src_port
 * scales the flow hash IPVS gives it. Every packet of a flow takes the same
 * port, and different flows spread over ECMP paths.
 */
static __always_inline __be16 xvs_gue_sport(const struct xvs_pkt *p)
{
	__u32 s = p->saddr[0] ^ p->saddr[1] ^ p->saddr[2] ^ p->saddr[3];
	__u32 d = p->daddr[0] ^ p->daddr[1] ^ p->daddr[2] ^ p->daddr[3];
	__u32 ports = ((__u32)bpf_ntohs(p->sport) << 16) | bpf_ntohs(p->dport);
	__u32 h = xvs_fmix32(bpf_ntohl(s) ^ xvs_fmix32(bpf_ntohl(d) ^ xvs_fmix32(ports ^ p->proto)));

	h ^= h << 16;
	return bpf_htons(XVS_TUN_SPORT_MIN + (__u32)(((__u64)h * (XVS_TUN_SPORT_MAX - XVS_TUN_SPORT_MIN)) >> 32));
}

/*
 * Writes GUE's UDP and GUE headers, or GRE's, at `off` (right after the
 * outer IP header), and their checksum when the real server has one: the
 * outer UDP checksum over the pseudo-header, UDP, GUE and the packet
 * (--tun-csum, and --tun-remcsum, which IPVS writes as the same checksum for
 * a packet whose own checksum is complete), GRE's over GRE and the packet.
 * Returns 0, or -1 when the frame is not as expected.
 */
static __always_inline int xvs_tun_encap(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_real *r,
					 const struct xvs_nexthop *nh, __u32 off)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len;
	int sum;

	if (off > XVS_L2_MAX + XVS_IPV6_HLEN)
		return -1;
	if (r->tun_type == XVS_TUN_GUE) {
		struct udphdr *uh = data + off;
		struct xvs_guehdr *gh = (void *)(uh + 1);

		if ((void *)(gh + 1) > data_end)
			return -1;
		len = XVS_GUE_LEN + p->ip_len;
		uh->source = xvs_gue_sport(p);
		uh->dest = r->tun_port;
		uh->len = bpf_htons(len);
		uh->check = 0;
		gh->ctl = 0;
		gh->proto = p->family == XVS_AF_INET6 ? XVS_IPPROTO_IPV6 : IPPROTO_IPIP;
		gh->flags = 0;
		if (!(r->tun_flags & (XVS_TUN_F_CSUM | XVS_TUN_F_REMCSUM)))
			return 0; /* 0: no checksum, over IPv6 too, as IPVS sends it */
		sum = xvs_pkt_sum(ctx, off, len, xvs_udp_pseudo_sum(r->family == XVS_AF_INET6, nh->saddr, r->addr, len));
		if (sum < 0)
			return -1;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		uh = data + off;
		if ((void *)(uh + 1) > data_end)
			return -1;
		/* A computed 0 goes out as all ones: 0 means "none" (RFC 768). */
		uh->check = (__u16)~sum ? (__u16)~sum : 0xffff;
		return 0;
	}
	if (r->tun_type == XVS_TUN_GRE) {
		struct xvs_grehdr_csum *gre = data + off;

		if ((void *)(&gre->h + 1) > data_end)
			return -1;
		gre->h.proto = p->family == XVS_AF_INET6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
		if (!(r->tun_flags & XVS_TUN_F_CSUM)) {
			gre->h.flags = 0;
			return 0;
		}
		if ((void *)(gre + 1) > data_end)
			return -1;
		gre->h.flags = bpf_htons(XVS_GRE_F_CSUM);
		gre->csum = 0;
		gre->reserved1 = 0;
		sum = xvs_pkt_sum(ctx, off, sizeof(*gre) + p->ip_len, 0);
		if (sum < 0)
			return -1;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		gre = data + off;
		if ((void *)(gre + 1) > data_end)
			return -1;
		gre->csum = (__u16)~sum;
		return 0;
	}
	return -1;
}

/*
 * The packet to its real server (next hop nh) inside an outer header of the
 * real server's family carrying `proto`, with `encap` bytes of tunnel header
 * between (xvs_tun_encap writes them): what IPIP and the other tunnels
 * share, so each is this function with its constants.
 */
static __always_inline int xvs_tun_send(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_real *r,
					const struct xvs_nexthop *nh, __u32 encap, __u8 proto)
{
	__u32 hlen = r->family == XVS_AF_INET6 ? XVS_IPV6_HLEN : sizeof(struct iphdr);
	/* What the tunnel adds: the MTU left for the client's packets is the route's less this. */
	__u32 over = hlen + encap;
	__u32 outer_len = p->ip_len + over, l2 = p->l3_off;
	void *data, *data_end;
	__be16 *ethertype;

	if (outer_len > 0xffff) {
		xvs_count(XVS_CNT_PASS_TOO_BIG);
		return XDP_PASS;
	}
	if (nh->mtu && outer_len > nh->mtu) {
		if (p->df)
			return xvs_icmp_too_big(ctx, p, nh->mtu > over ? nh->mtu - over : 0);
		xvs_count(XVS_CNT_PASS_TOO_BIG);
		return XDP_PASS;
	}

	/* An untagged frame's Ethernet header is written whole below (the
	 * ethertype) and in xvs_send (the MACs): there is nothing to move, and
	 * not moving it is 0.1x of the floor. VLAN tags must move with it. */
	if (l2 == ETH_HLEN) {
		if (bpf_xdp_adjust_head(ctx, -(int)over))
			goto err;
	} else if (l2 > XVS_L2_MAX || xvs_push_room(ctx, l2, over)) {
		goto err;
	}
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
		xvs_ipv6_hdr(outer, p->tos, p->ip_len + encap, proto, p->ttl, nh->saddr, r->addr);
	} else {
		struct iphdr *outer = data + l2;
		__be16 id = 0;

		if ((void *)(outer + 1) > data_end)
			goto err;
		if (p->family == XVS_AF_INET) {
			/* The inner IPv4 header, past whatever the tunnel put between. */
			struct iphdr *inner = (void *)(outer + 1) + encap;

			if ((void *)(inner + 1) > data_end)
				goto err;
			id = inner->id;
		}
		xvs_ipv4_hdr(outer, p->tos, outer_len, id, p->df ? bpf_htons(0x4000) : 0, p->ttl, proto,
			     nh->saddr[0], r->addr[0]);
	}
	if (encap && xvs_tun_encap(ctx, p, r, nh, l2 + hlen))
		goto err;
	return xvs_egress(ctx, nh, p);

err:
	xvs_count(XVS_CNT_ERROR);
	return XDP_DROP;
}

/* GUE and GRE, once the next hop is known: a subprogram, so that IPIP's
 * inlined path, the established TUN path, is what it was, and xvs_xdp's
 * frame holds no second copy. */
XVS_SUBPROG int xvs_tun_send_encap(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_real *r,
				   const struct xvs_nexthop *nh)
{
	if (!p || !r || !nh)
		return XDP_DROP;
	if (r->tun_type == XVS_TUN_GUE)
		return xvs_tun_send(ctx, p, r, nh, XVS_GUE_LEN, IPPROTO_UDP);
	return xvs_tun_send(ctx, p, r, nh, xvs_encap_len(XVS_TUN_GRE, r->tun_flags), XVS_IPPROTO_GRE);
}

static __always_inline int xvs_fwd_tun(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_real *r)
{
	const struct xvs_nexthop *nh;
	int verdict;

	nh = xvs_nexthop(ctx, p, r, 1, &verdict);
	if (!nh)
		return verdict;
	if (r->tun_type == XVS_TUN_IPIP)
		return xvs_tun_send(ctx, p, r, nh, 0, p->family == XVS_AF_INET6 ? XVS_IPPROTO_IPV6 : IPPROTO_IPIP);
	return xvs_tun_send_encap(ctx, p, r, nh);
}

#endif
