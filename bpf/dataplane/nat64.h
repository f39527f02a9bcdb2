/* SPDX-License-Identifier: GPL-2.0 */
/*
 * NAT64 through FULLNAT (as DPVS offers it): an IPv6 VIP in front of IPv4
 * real servers. The client's IPv6 packet leaves as IPv4 from a local
 * address and port to RIP:rport; the reply comes back as IPv6 from VIP:vport
 * to the client. The IP header is translated as RFC 7915 does (traffic
 * class and TOS, hop limit and TTL); the TCP/UDP checksum follows
 * incrementally, since the pseudo-header's length and protocol sum the same
 * in both families and only its addresses and the ports change.
 *
 * Refused (the caller drops and counts): IPv6 extension headers and IPv4
 * options (a TCP/UDP service's clients and servers send neither), fragments,
 * and UDP over IPv4 without a checksum, which IPv6 cannot carry without a
 * full recomputation. ICMP errors about these flows are rebuilt in the
 * other family (icmperr.h: xvs_icmperr_4to6, xvs_icmperr_6to4).
 */
#ifndef XVS_NAT64_H
#define XVS_NAT64_H

#include "hdrmove.h"

#define XVS_ETH_P_IP 0x0800
#define XVS_ETH_P_IPV6 0x86DD
/* How much larger the IPv6 header is. */
#define XVS_NAT64_GROWTH 20

/* The transport header's ports and checksum for the new addresses (the
 * pseudo-header's old ones out, new ones in: a missing word is zero). */
static __always_inline int xvs_nat64_l4(struct xdp_md *ctx, const struct xvs_l4_at *at, const __be32 *osrc,
					 const __be32 *odst, const __be32 *nsrc, const __be32 *ndst, __u8 to,
					 __be16 sport, __be16 dport)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 c_off = at->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check) : offsetof(struct udphdr, check);
	__be16 *ports;
	__sum16 *cp;
	__wsum d = 0;

	if (at->l4_off > XVS_PRIM_L4_OFF_MAX)
		return XVS_PRIM_EBOUNDS;
	ports = data + at->l4_off;
	cp = data + at->l4_off + c_off;
	if ((void *)(ports + 2) > data_end || (void *)(cp + 1) > data_end)
		return XVS_PRIM_EBOUNDS;
	/* UDP over IPv4 may carry none, IPv6 must: a 0 either way is refused. */
	if (at->proto == IPPROTO_UDP && *cp == 0)
		return XVS_PRIM_ENOCSUM;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__be32 os = at->family == XVS_PRIM_INET6 || i == 0 ? osrc[i] : 0;
		__be32 od = at->family == XVS_PRIM_INET6 || i == 0 ? odst[i] : 0;
		__be32 ns = to == XVS_PRIM_INET6 || i == 0 ? nsrc[i] : 0;
		__be32 nd = to == XVS_PRIM_INET6 || i == 0 ? ndst[i] : 0;

		d = xvs_csum_diff4(d, os, ns);
		d = xvs_csum_diff4(d, od, nd);
	}
	d = xvs_csum_diff2(d, ports[0], sport);
	d = xvs_csum_diff2(d, ports[1], dport);
	*cp = xvs_l4_csum_apply(*cp, at->proto, d);
	ports[0] = sport;
	ports[1] = dport;
	return XVS_PRIM_OK;
}

/* The EtherType in front of the IP header (the last one, after any VLAN tags). */
static __always_inline int xvs_set_ethertype(struct xdp_md *ctx, __u32 l3_off, __u16 type)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 at = l3_off - 2;
	__be16 *t;

	if (l3_off < 2 || at > XVS_PRIM_L2_MAX)
		return XVS_PRIM_EARG;
	t = data + at;
	if ((void *)(t + 1) > data_end)
		return XVS_PRIM_EBOUNDS;
	*t = bpf_htons(type);
	return XVS_PRIM_OK;
}

/* A global subprogram takes at most five arguments: both ports in one. */
static __always_inline __u32 xvs_nat64_ports(__be16 sport, __be16 dport)
{
	return (__u32)sport | ((__u32)dport << 16);
}

static __always_inline __be16 xvs_nat64_sport(__u32 ports)
{
	return (__be16)(ports & 0xffff);
}

static __always_inline __be16 xvs_nat64_dport(__u32 ports)
{
	return (__be16)(ports >> 16);
}

/* Both translations check everything before their first write, but the
 * header move comes after the transport rewrite: if it fails (it cannot for
 * a frame that passed the checks), the caller drops the frame. */

/*
 * A client's IPv6 TCP/UDP packet at l3_off becomes IPv4 from saddr:sport to
 * daddr:dport (addr[0] each); the L2 header in front moves with it and says
 * IPv4. DF is set (the IPv6 sender does path MTU discovery; RFC 6864 lets an
 * atomic datagram carry identification 0). A subprogram: NAT64 flows only.
 */
XVS_SUBPROG int xvs_nat64_6to4(struct xdp_md *ctx, __u32 l3_off, const struct in6_addr *saddr,
			       const struct in6_addr *daddr, __u32 ports)
{
	__be16 sport = xvs_nat64_sport(ports), dport = xvs_nat64_dport(ports);
	struct xvs_l4_at at = {};
	struct iphdr h = {};
	struct ipv6hdr *ip6;
	__be32 os[4], od[4];
	void *data, *data_end;
	int rc;

	if (!saddr || !daddr)
		return XVS_PRIM_EARG;
	rc = xvs_locate_l4(ctx, l3_off, XVS_PRIM_INET6, &at);
	if (rc)
		return rc;
	if (l3_off < 2 || l3_off > XVS_PRIM_L2_MAX)
		return XVS_PRIM_EARG;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip6 = data + l3_off;
	if ((void *)(ip6 + 1) > data_end)
		return XVS_PRIM_EBOUNDS;
	__builtin_memcpy(os, &ip6->saddr, 16);
	__builtin_memcpy(od, &ip6->daddr, 16);
	xvs_ipv4_hdr(&h, xvs_ipv6_tclass(ip6), at.l4_len + sizeof(h), 0, bpf_htons(0x4000), ip6->hop_limit, at.proto,
		     saddr->in6_u.u6_addr32[0], daddr->in6_u.u6_addr32[0]);
	rc = xvs_nat64_l4(ctx, &at, os, od, saddr->in6_u.u6_addr32, daddr->in6_u.u6_addr32, XVS_PRIM_INET, sport, dport);
	if (rc)
		return rc;
	/* The new header over the old one's last 20 bytes, the L2 header
	 * moved up to meet it, the head given back. */
	if (xvs_set_ethertype(ctx, l3_off, XVS_ETH_P_IP))
		return XVS_PRIM_EBOUNDS;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip6 = data + l3_off;
	if ((void *)(ip6 + 1) > data_end)
		return XVS_PRIM_EBOUNDS;
	__builtin_memcpy((void *)ip6 + XVS_NAT64_GROWTH, &h, sizeof(h));
	return xvs_close_room(ctx, l3_off, XVS_NAT64_GROWTH);
}

/*
 * A real server's IPv4 reply at l3_off becomes IPv6 from saddr:sport to
 * daddr:dport; hop limit = TTL (the caller decremented it), traffic class =
 * TOS, no flow label. A subprogram: NAT64 flows only.
 */
XVS_SUBPROG int xvs_nat64_4to6(struct xdp_md *ctx, __u32 l3_off, const struct in6_addr *saddr,
			       const struct in6_addr *daddr, __u32 ports)
{
	__be16 sport = xvs_nat64_sport(ports), dport = xvs_nat64_dport(ports);
	struct xvs_l4_at at = {};
	struct ipv6hdr h = {};
	struct iphdr *ip4;
	__be32 os[4] = {}, od[4] = {};
	void *data, *data_end;
	int rc;

	if (!saddr || !daddr)
		return XVS_PRIM_EARG;
	rc = xvs_locate_l4(ctx, l3_off, XVS_PRIM_INET, &at);
	if (rc)
		return rc;
	if (l3_off < 2 || l3_off > XVS_PRIM_L2_MAX || at.l4_off != l3_off + sizeof(struct iphdr))
		return XVS_PRIM_EPROTO;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip4 = data + l3_off;
	if ((void *)(ip4 + 1) > data_end)
		return XVS_PRIM_EBOUNDS;
	os[0] = ip4->saddr;
	od[0] = ip4->daddr;
	xvs_ipv6_hdr(&h, ip4->tos, at.l4_len, at.proto, ip4->ttl, saddr->in6_u.u6_addr32, daddr->in6_u.u6_addr32);
	rc = xvs_nat64_l4(ctx, &at, os, od, saddr->in6_u.u6_addr32, daddr->in6_u.u6_addr32, XVS_PRIM_INET6, sport, dport);
	if (rc)
		return rc;
	rc = xvs_open_room(ctx, l3_off, XVS_NAT64_GROWTH);
	if (rc)
		return rc;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (l3_off < 2 || l3_off > XVS_PRIM_L2_MAX)
		return XVS_PRIM_EARG;
	if (data + l3_off + sizeof(h) > data_end)
		return XVS_PRIM_EBOUNDS;
	__builtin_memcpy(data + l3_off, &h, sizeof(h));
	if (xvs_set_ethertype(ctx, l3_off, XVS_ETH_P_IPV6))
		return XVS_PRIM_EBOUNDS;
	return XVS_PRIM_OK;
}

#endif
