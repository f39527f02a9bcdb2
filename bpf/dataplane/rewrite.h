/* SPDX-License-Identifier: GPL-2.0 */
/* In-place rewrites of a TCP/UDP packet's addresses and ports, and the
 * router's TTL / hop-limit decrement, with every checksum kept exact by
 * incremental update (csum.h). NAT rewrites the destination on the way in
 * and the source on the way out; FULLNAT both.
 *
 * Each primitive takes the frame and where L3 starts (the L2 length the
 * caller's parser found) and checks for itself everything it reads or
 * writes, so it depends on no parser's struct. Every check comes before the
 * first write: a refusal (a negative XVS_PRIM_* status) leaves the frame
 * untouched. */
#ifndef XVS_REWRITE_H
#define XVS_REWRITE_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include "csum.h"

/* Ethernet with two VLAN tags: the deepest L3 start a caller can hand in. */
#define XVS_PRIM_L2_MAX (14 + 2 * 4)
/* IPv4 with 40 bytes of options; IPv6 without extension headers. */
#define XVS_PRIM_L3_MAX 60
#define XVS_PRIM_L4_OFF_MAX (XVS_PRIM_L2_MAX + XVS_PRIM_L3_MAX)

#define XVS_REWRITE_SRC 0
#define XVS_REWRITE_DST 1

/* Where the transport header is, as the IP header tells it. Offsets are from
 * ctx->data; l4_len is the length the pseudo-header carries. */
struct xvs_l4_at {
	__u32 l3_off;
	__u32 l4_off;
	__u32 l4_len;
	__u8 family;
	__u8 proto;
	__u8 frag;      /* IPv4 MF or a fragment offset */
	__u8 pad;
};

/* The IP header at l3_off: version matches `family`, the header and the
 * length it declares lie inside the frame (Ethernet padding after it is
 * allowed). IPv6 jumbograms (payload length 0 with a hop-by-hop option)
 * are refused; extension headers are reported through `proto`. */
static __always_inline int xvs_locate_l3(struct xdp_md *ctx, __u32 l3_off, __u8 family, struct xvs_l4_at *at)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (l3_off > XVS_PRIM_L2_MAX)
		return XVS_PRIM_EARG;
	if (family == XVS_PRIM_INET) {
		struct iphdr *iph = data + l3_off;
		__u32 hlen, tot;

		if ((void *)(iph + 1) > data_end)
			return XVS_PRIM_EBOUNDS;
		if (iph->version != 4)
			return XVS_PRIM_EPROTO;
		hlen = iph->ihl * 4;
		tot = bpf_ntohs(iph->tot_len);
		if (hlen < sizeof(*iph) || tot < hlen || (void *)iph + tot > data_end)
			return XVS_PRIM_EBOUNDS;
		at->l4_off = l3_off + hlen;
		at->l4_len = tot - hlen;
		at->proto = iph->protocol;
		at->frag = (iph->frag_off & bpf_htons(0x3fff)) != 0;
	} else if (family == XVS_PRIM_INET6) {
		struct ipv6hdr *ip6 = data + l3_off;
		__u32 plen;

		if ((void *)(ip6 + 1) > data_end)
			return XVS_PRIM_EBOUNDS;
		if (ip6->version != 6)
			return XVS_PRIM_EPROTO;
		plen = bpf_ntohs(ip6->payload_len);
		if (plen == 0 || (void *)(ip6 + 1) + plen > data_end)
			return XVS_PRIM_EBOUNDS;
		at->l4_off = l3_off + sizeof(*ip6);
		at->l4_len = plen;
		at->proto = ip6->nexthdr;
		at->frag = 0;
	} else {
		return XVS_PRIM_EARG;
	}
	at->l3_off = l3_off;
	at->family = family;
	return XVS_PRIM_OK;
}

/* As xvs_locate_l3, and the packet is an unfragmented TCP or UDP one whose
 * whole transport header (TCP options included) is inside the IP length
 * and the frame. A fragment is refused: later ones carry no ports, and
 * changing one fragment's addresses or length without the others' breaks
 * reassembly. */
static __always_inline int xvs_locate_l4(struct xdp_md *ctx, __u32 l3_off, __u8 family, struct xvs_l4_at *at)
{
	void *data, *data_end;
	__u32 hlen;
	int rc;

	rc = xvs_locate_l3(ctx, l3_off, family, at);
	if (rc)
		return rc;
	if (at->frag)
		return XVS_PRIM_EPROTO;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (at->l4_off > XVS_PRIM_L4_OFF_MAX)
		return XVS_PRIM_EBOUNDS;
	if (at->proto == IPPROTO_TCP) {
		struct tcphdr *th = data + at->l4_off;

		if ((void *)(th + 1) > data_end)
			return XVS_PRIM_EBOUNDS;
		hlen = th->doff * 4;
		if (hlen < sizeof(*th) || (void *)th + hlen > data_end)
			return XVS_PRIM_EBOUNDS;
	} else if (at->proto == IPPROTO_UDP) {
		struct udphdr *uh = data + at->l4_off;

		if ((void *)(uh + 1) > data_end)
			return XVS_PRIM_EBOUNDS;
		hlen = sizeof(*uh);
	} else {
		return XVS_PRIM_EPROTO;
	}
	if (hlen > at->l4_len)
		return XVS_PRIM_EBOUNDS;
	return XVS_PRIM_OK;
}

/* One off an IPv4 TTL the caller has checked is above 1; returns `d` with
 * the change of the 16-bit word the TTL shares with the protocol, for the
 * header checksum. */
static __always_inline __wsum xvs_ipv4_ttl_dec(struct iphdr *iph, __wsum d)
{
	__be16 *w = (void *)&iph->ttl, old = *w;

	iph->ttl--;
	return xvs_csum_diff2(d, old, *w);
}

/*
 * Rewrites the source and/or the destination (address and port; a NULL
 * address leaves that side as it is) of the TCP/UDP packet whose IP header
 * starts at l3_off and, with `ttl`, takes one off its TTL or hop limit as a
 * router does: one walk to the transport header and one update of each
 * checksum for all of it, since a second pass over a header just written
 * costs more than the arithmetic. `family` is the packet's and the new
 * addresses': addr[0] for IPv4, addr[0..3] for IPv6, network order; ports
 * in network order. The IPv4 header checksum and the TCP/UDP checksum
 * follow incrementally; a UDP/IPv4 checksum of 0 ("none") stays 0. Nothing
 * is written when it fails: XVS_PRIM_ETTL when the TTL would leave as 0
 * (dropping it, or answering ICMP time exceeded, is the caller's decision).
 */
static __always_inline int xvs_rewrite_tuple(struct xdp_md *ctx, __u32 l3_off, __u8 family, const __be32 *saddr,
					     __be16 sport, const __be32 *daddr, __be16 dport, int ttl)
{
	struct xvs_l4_at at = {};
	void *data, *data_end;
	__be16 *ports;
	__sum16 *cp;
	__wsum d = 0;
	int rc;

	rc = xvs_locate_l4(ctx, l3_off, family, &at);
	if (rc)
		return rc;
	/* Bounds xvs_locate_l4 checked, stated again where the verifier sees
	 * the offsets used. */
	if (at.l4_off > XVS_PRIM_L4_OFF_MAX || l3_off > XVS_PRIM_L2_MAX)
		return XVS_PRIM_EBOUNDS;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;

	/* TCP and UDP both lead with the source port, then the destination's. */
	ports = data + at.l4_off;
	cp = data + at.l4_off + (at.proto == IPPROTO_TCP ? offsetof(struct tcphdr, check) : offsetof(struct udphdr, check));
	if ((void *)(ports + 2) > data_end || (void *)(cp + 1) > data_end)
		return XVS_PRIM_EBOUNDS;
	rc = xvs_l4_csum_usable(*cp, at.proto, family);
	if (rc)
		return rc;

	if (family == XVS_PRIM_INET) {
		struct iphdr *iph = data + l3_off;
		__wsum dip;

		if ((void *)(iph + 1) > data_end)
			return XVS_PRIM_EBOUNDS;
		if (ttl && iph->ttl <= 1)
			return XVS_PRIM_ETTL;
		/* The addresses are in the header and in the pseudo-header: one
		 * delta for both checksums, the ports added for TCP/UDP only. */
		if (saddr) {
			d = xvs_csum_diff4(d, iph->saddr, saddr[0]);
			iph->saddr = saddr[0];
		}
		if (daddr) {
			d = xvs_csum_diff4(d, iph->daddr, daddr[0]);
			iph->daddr = daddr[0];
		}
		dip = ttl ? xvs_ipv4_ttl_dec(iph, d) : d;
		iph->check = xvs_csum_apply(iph->check, dip);
	} else {
		struct ipv6hdr *ip6 = data + l3_off;
		__be32 *ap;

		if ((void *)(ip6 + 1) > data_end)
			return XVS_PRIM_EBOUNDS;
		if (ttl && ip6->hop_limit <= 1)
			return XVS_PRIM_ETTL;
		if (saddr) {
			ap = (void *)ip6 + offsetof(struct ipv6hdr, saddr);
			d = xvs_csum_diff16(d, ap, saddr);
#pragma unroll
			for (int i = 0; i < 4; i++)
				ap[i] = saddr[i];
		}
		if (daddr) {
			ap = (void *)ip6 + offsetof(struct ipv6hdr, daddr);
			d = xvs_csum_diff16(d, ap, daddr);
#pragma unroll
			for (int i = 0; i < 4; i++)
				ap[i] = daddr[i];
		}
		if (ttl)
			ip6->hop_limit--;
	}
	if (saddr) {
		d = xvs_csum_diff2(d, ports[0], sport);
		ports[0] = sport;
	}
	if (daddr) {
		d = xvs_csum_diff2(d, ports[1], dport);
		ports[1] = dport;
	}
	*cp = xvs_l4_csum_apply(*cp, at.proto, d);
	return XVS_PRIM_OK;
}

/* One side of xvs_rewrite_tuple (`dir`: XVS_REWRITE_SRC/DST); `port` in
 * network order (pass the current one to keep it). */
static __always_inline int xvs_rewrite_addr_port(struct xdp_md *ctx, __u32 l3_off, __u8 family, int dir,
						 const __be32 *addr, __be16 port)
{
	if (dir == XVS_REWRITE_SRC)
		return xvs_rewrite_tuple(ctx, l3_off, family, addr, port, NULL, 0, 0);
	if (dir == XVS_REWRITE_DST)
		return xvs_rewrite_tuple(ctx, l3_off, family, NULL, 0, addr, port, 0);
	return XVS_PRIM_EARG;
}

/* What a router does to a packet it forwards: IPv4 TTL or IPv6 hop limit
 * minus one, the IPv4 header checksum following (the TTL shares its 16-bit
 * word with the protocol). A packet that would leave with 0 is refused
 * (XVS_PRIM_ETTL): dropping it, or answering ICMP time exceeded, is the
 * caller's decision. Fragments are fine here. */
static __always_inline int xvs_ttl_decrement(struct xdp_md *ctx, __u32 l3_off, __u8 family)
{
	struct xvs_l4_at at = {};
	void *data, *data_end;
	int rc;

	rc = xvs_locate_l3(ctx, l3_off, family, &at);
	if (rc)
		return rc;
	if (l3_off > XVS_PRIM_L2_MAX) /* checked; restated for the verifier */
		return XVS_PRIM_EARG;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (family == XVS_PRIM_INET) {
		struct iphdr *iph = data + l3_off;

		if ((void *)(iph + 1) > data_end)
			return XVS_PRIM_EBOUNDS;
		if (iph->ttl <= 1)
			return XVS_PRIM_ETTL;
		iph->check = xvs_csum_apply(iph->check, xvs_ipv4_ttl_dec(iph, 0));
	} else {
		struct ipv6hdr *ip6 = data + l3_off;

		if ((void *)(ip6 + 1) > data_end)
			return XVS_PRIM_EBOUNDS;
		if (ip6->hop_limit <= 1)
			return XVS_PRIM_ETTL;
		ip6->hop_limit--;
	}
	return XVS_PRIM_OK;
}

#endif
