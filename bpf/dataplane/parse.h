/* SPDX-License-Identifier: GPL-2.0 */
/* Ethernet (up to two VLAN tags), IPv4 or IPv6 (extension headers walked,
 * bounded), and the TCP/UDP ports, into one family-neutral record. Anything
 * that does not parse cleanly goes to the kernel untouched and counted,
 * never guessed at. */
#ifndef XVS_PARSE_H
#define XVS_PARSE_H

#include <linux/tcp.h>
#include <linux/udp.h>
#include "common.h"
#include "maps.h"

/* Extension headers walked before giving up (hop-by-hop, routing, destination options). */
#define XVS_V6_EXT_MAX 4
/* No L4 header starts further in: 22 bytes of L2, 40 of IPv6 and four extension headers of at most 2 KiB would, so this refuses such packets. */
#define XVS_L4_OFF_MAX 512

enum {
	XVS_NEXTHDR_HOP = 0,
	XVS_NEXTHDR_ROUTING = 43,
	XVS_NEXTHDR_FRAGMENT = 44,
	XVS_NEXTHDR_DEST = 60,
	XVS_NEXTHDR_ICMPV6 = 58,
};

static __always_inline int xvs_unparsed(enum xvs_counter why)
{
	xvs_count(why);
	return XDP_PASS;
}

static __always_inline int xvs_parse_ipv4(void *data, void *data_end, struct xvs_pkt *p)
{
	struct iphdr *iph = data + p->l3_off;
	__u32 hlen, tot;

	if ((void *)(iph + 1) > data_end)
		return xvs_unparsed(XVS_CNT_MALFORMED);
	if (iph->version != 4 || iph->ihl < 5)
		return xvs_unparsed(XVS_CNT_MALFORMED);
	hlen = iph->ihl * 4;
	tot = bpf_ntohs(iph->tot_len);
	if (tot < hlen || (void *)iph + tot > data_end)
		return xvs_unparsed(XVS_CNT_MALFORMED);
	if (iph->frag_off & bpf_htons(0x3fff)) /* MF or an offset: only the first fragment has ports */
		return xvs_unparsed(XVS_CNT_PASS_FRAGMENT);
	p->family = XVS_AF_INET;
	p->l4_off = p->l3_off + hlen;
	p->ip_len = tot;
	p->proto = iph->protocol;
	p->df = !!(iph->frag_off & bpf_htons(0x4000));
	p->tos = iph->tos;
	p->ttl = iph->ttl;
	p->saddr[0] = iph->saddr;
	p->daddr[0] = iph->daddr;
	return XVS_CONTINUE;
}

static __always_inline int xvs_parse_ipv6(void *data, void *data_end, struct xvs_pkt *p)
{
	struct ipv6hdr *ip6 = data + p->l3_off;
	__u32 tot, off, end;
	__u8 nh;

	if ((void *)(ip6 + 1) > data_end)
		return xvs_unparsed(XVS_CNT_MALFORMED);
	if (ip6->version != 6)
		return xvs_unparsed(XVS_CNT_MALFORMED);
	/* 0 is a jumbogram (or nothing at all): not ours to forward. */
	tot = XVS_IPV6_HLEN + bpf_ntohs(ip6->payload_len);
	if (tot == XVS_IPV6_HLEN || (void *)ip6 + tot > data_end)
		return xvs_unparsed(XVS_CNT_MALFORMED);
	end = p->l3_off + tot;
	nh = ip6->nexthdr;
	off = p->l3_off + XVS_IPV6_HLEN;
#pragma unroll
	for (int i = 0; i < XVS_V6_EXT_MAX; i++) {
		__u8 *ext;

		if (nh == XVS_NEXTHDR_FRAGMENT)
			return xvs_unparsed(XVS_CNT_PASS_FRAGMENT);
		if (nh != XVS_NEXTHDR_HOP && nh != XVS_NEXTHDR_ROUTING && nh != XVS_NEXTHDR_DEST)
			break;
		if (off > XVS_L4_OFF_MAX)
			return xvs_unparsed(XVS_CNT_MALFORMED);
		ext = data + off;
		if ((void *)(ext + 2) > data_end)
			return xvs_unparsed(XVS_CNT_MALFORMED);
		nh = ext[0];
		off += ((__u32)ext[1] + 1) * 8;
		if (off > end)
			return xvs_unparsed(XVS_CNT_MALFORMED);
	}
	if (nh == XVS_NEXTHDR_HOP || nh == XVS_NEXTHDR_ROUTING || nh == XVS_NEXTHDR_DEST)
		return xvs_unparsed(XVS_CNT_MALFORMED); /* a longer chain than we walk */
	if (nh == XVS_NEXTHDR_FRAGMENT)
		return xvs_unparsed(XVS_CNT_PASS_FRAGMENT);
	p->family = XVS_AF_INET6;
	p->l4_off = off;
	p->ip_len = tot;
	p->proto = nh;
	p->df = 1;
	p->tos = xvs_ipv6_tclass(ip6);
	p->ttl = ip6->hop_limit;
	__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6->daddr, 16);
	return XVS_CONTINUE;
}

/* ICMP and ICMPv6 go on without ports: an error may be about a translated
 * flow, which icmperr.h decides (and counts what it passes). */
static __always_inline int xvs_parsed_icmp(const struct xvs_pkt *p)
{
	return (p->family == XVS_AF_INET && p->proto == IPPROTO_ICMP) ||
	       (p->family == XVS_AF_INET6 && p->proto == XVS_NEXTHDR_ICMPV6);
}

static __always_inline int xvs_parse_l4(void *data, void *data_end, struct xvs_pkt *p)
{
	__u32 off = p->l4_off, end = p->l3_off + p->ip_len;

	if (off > XVS_L4_OFF_MAX)
		return xvs_unparsed(XVS_CNT_MALFORMED);
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = data + off;

		if ((void *)(th + 1) > data_end || off + sizeof(*th) > end)
			return xvs_unparsed(XVS_CNT_MALFORMED);
		if (th->doff < 5 || off + th->doff * 4 > end)
			return xvs_unparsed(XVS_CNT_MALFORMED);
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		p->payload = end - off - th->doff * 4;
		return XVS_CONTINUE;
	}
	if (p->proto == IPPROTO_UDP) {
		struct udphdr *uh = data + off;

		if ((void *)(uh + 1) > data_end || off + sizeof(*uh) > end)
			return xvs_unparsed(XVS_CNT_MALFORMED);
		p->sport = uh->source;
		p->dport = uh->dest;
		return XVS_CONTINUE;
	}
	if (xvs_parsed_icmp(p))
		return XVS_CONTINUE;
	return xvs_unparsed(XVS_CNT_PASS_NO_SVC);
}

static __always_inline int xvs_parse(struct xdp_md *ctx, struct xvs_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__be16 ethertype;
	int rc;

	if (xvs_parse_l2(data, data_end, &p->l3_off, &ethertype) < 0)
		return xvs_unparsed(XVS_CNT_MALFORMED);
	if (p->l3_off > XVS_L2_MAX)
		return xvs_unparsed(XVS_CNT_MALFORMED);
	if (ethertype == bpf_htons(ETH_P_IP))
		rc = xvs_parse_ipv4(data, data_end, p);
	else if (ethertype == bpf_htons(ETH_P_IPV6))
		rc = xvs_parse_ipv6(data, data_end, p);
	else
		return xvs_unparsed(XVS_CNT_PASS_NOT_IP);
	if (rc != XVS_CONTINUE)
		return rc;
	return xvs_parse_l4(data, data_end, p);
}

#endif
