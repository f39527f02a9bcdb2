/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMP and ICMPv6 errors about translated flows, translated in their turn
 * (as IPVS's ip_vs_in_icmp/ip_vs_out_icmp do), so that PMTUD, unreachables
 * and time exceeded work through NAT:
 *
 * - from the server side, about a packet the director sent to a real server
 *   (it quotes client:cport -> RIP:rport): to the client, quoting
 *   client:cport -> VIP:vport, its outer source the VIP where it was the
 *   real server itself (a router keeps its own address);
 * - from the client side, about a reply the director sent (it quotes
 *   VIP:vport -> client:cport, to the VIP): to the real server, quoting
 *   RIP:rport -> client:cport (FULLNAT: -> LIP:lport), its outer
 *   destination the RIP;
 * - NAT64 (FULLNAT from an IPv6 VIP to IPv4 real servers): either is
 *   rebuilt in the other family, as RFC 7915 translates ICMP errors.
 *
 * The flow is found by the quoted packet's tuple reversed: it is the reply
 * key of xvs_nats/xvs_new_replies in the first case, the flow key of
 * xvs_conns/xvs_new_flows in the second. The rewrite itself
 * (xvs_icmperr_rewrite) takes both addresses of the outer header and both
 * (address, port) pairs of the quoted packet, so FULLNAT, which changes the
 * client's side too, uses the same function with its local address.
 *
 * Checksums, all incremental (csum.h): the outer IPv4 header's (addresses,
 * TTL); the quoted IPv4 header's; the quoted TCP/UDP checksum when its field
 * lies inside the quote (UDP's always, at byte 6; TCP's at byte 16 only
 * when the sender quoted 18 bytes of it or more, which Linux does and an
 * 8-byte quote per RFC 792 does not), so the quote reads as the packet the
 * other end really sent; and the ICMP checksum by the difference of every
 * word changed inside the message (for ICMPv6 the outer addresses too,
 * through its pseudo-header). The ICMP checksum is not verified first: that
 * is a loop over the whole message, and an error that arrived wrong leaves
 * wrong by the same amount, so its receiver still drops it.
 *
 * What cannot be found or does not parse goes to the kernel untouched and
 * counted (icmp_malformed; errors about no flow of ours count as before,
 * pass_no_svc); an error about a flow that cannot be translated is dropped
 * and counted (icmp_drop, ttl_exceeded), never sent on half translated.
 */
#ifndef XVS_ICMPERR_H
#define XVS_ICMPERR_H

#include "icmp.h"
#include "nat.h"
#include "nat64.h"

enum {
	ICMP_SOURCE_QUENCH = 4,
	ICMP_TIME_EXCEEDED = 11,
	ICMP_PARAMETERPROB = 12,
	ICMPV6_TIME_EXCEED = 3,
	ICMPV6_PARAMPROB = 4,
	XVS_ICMP_HLEN = 8,
	/* The quoted transport header: ports, and UDP's checksum, in its first 8 bytes. */
	XVS_ICMPERR_L4_MIN = 8,
	XVS_TCP_CHECK_OFF = 16,
	XVS_UDP_CHECK_OFF = 6,
};

/* The deepest the quoted packet's headers can start: the outer transport
 * offset parse.h accepts, the ICMP header, a quoted IPv4 header with options. */
#define XVS_ICMPERR_IN_L3_MAX (XVS_L4_OFF_MAX + XVS_ICMP_HLEN)
#define XVS_ICMPERR_IN_L4_MAX (XVS_ICMPERR_IN_L3_MAX + 60)

/* An ICMP error located: where its parts are and the tuple it quotes. */
struct xvs_icmperr {
	__u32 in_l3;       /* the quoted IP header */
	__u32 in_l4;       /* the quoted transport header */
	__be32 in_saddr[4];
	__be32 in_daddr[4];
	__be16 in_sport;
	__be16 in_dport;
	__u8 in_proto;
	__u8 pad0[3];
};

/* What a translated error carries: its outer addresses and the quoted
 * packet's (address, port) pairs, each the new value (the old one to keep
 * it). The addresses point at where they already are (a flow's entry, the
 * packet record): copies would cost the stack the program has little of. */
struct xvs_icmperr_xlat {
	const __be32 *out_saddr;
	const __be32 *out_daddr;
	const __be32 *in_saddr;
	const __be32 *in_daddr;
	__be16 in_sport;
	__be16 in_dport;
};

enum {
	XVS_ICMPERR_FOUND = 0,
	XVS_ICMPERR_OTHER = 1, /* not an error, or about no packet of ours */
	XVS_ICMPERR_BAD = 2,   /* cut short or inconsistent */
};

static __always_inline int xvs_addr_eq(const __be32 *a, const __be32 *b)
{
	return !((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]));
}

static __always_inline void xvs_addr_cp(__be32 *to, const __be32 *from)
{
	__builtin_memcpy(to, from, 16);
}

static __always_inline int xvs_icmp_is_error(__u8 family, __u8 type)
{
	if (family == XVS_AF_INET)
		return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH || type == ICMP_TIME_EXCEEDED ||
		       type == ICMP_PARAMETERPROB;
	return type == ICMPV6_DEST_UNREACH || type == ICMPV6_PKT_TOOBIG || type == ICMPV6_TIME_EXCEED ||
	       type == ICMPV6_PARAMPROB;
}

/*
 * Finds the quoted packet of an ICMP error: an IP header of the outer
 * family (IPv4 not a later fragment, IPv6 without extension headers, as
 * every packet NAT forwards is) and 8 bytes of TCP or UDP, all inside the
 * outer packet's length; and the error is addressed to the quoted packet's
 * source, as RFC 1122 3.2.2 and RFC 4443 2.4 send it.
 */
static __always_inline int xvs_icmperr_locate(struct xdp_md *ctx, const struct xvs_pkt *p, struct xvs_icmperr *e)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 off = p->l4_off, end = p->l3_off + p->ip_len, in_l3, in_l4;
	__be16 *ports;
	__u8 *ic;

	if (off > XVS_L4_OFF_MAX)
		return XVS_ICMPERR_BAD;
	ic = data + off;
	if ((void *)(ic + XVS_ICMP_HLEN) > data_end || off + XVS_ICMP_HLEN > end)
		return XVS_ICMPERR_BAD;
	if (!xvs_icmp_is_error(p->family, ic[0]))
		return XVS_ICMPERR_OTHER;
	in_l3 = off + XVS_ICMP_HLEN;
	if (p->family == XVS_AF_INET) {
		struct iphdr *iph = data + in_l3;

		if ((void *)(iph + 1) > data_end || in_l3 + sizeof(*iph) > end)
			return XVS_ICMPERR_BAD;
		if (iph->version != 4 || iph->ihl < 5)
			return XVS_ICMPERR_BAD;
		if (iph->frag_off & bpf_htons(0x3fff))
			return XVS_ICMPERR_OTHER; /* NAT never forwards fragments */
		in_l4 = in_l3 + iph->ihl * 4;
		e->in_proto = iph->protocol;
		e->in_saddr[0] = iph->saddr;
		e->in_daddr[0] = iph->daddr;
	} else {
		struct ipv6hdr *ip6 = data + in_l3;

		if ((void *)(ip6 + 1) > data_end || in_l3 + sizeof(*ip6) > end)
			return XVS_ICMPERR_BAD;
		if (ip6->version != 6)
			return XVS_ICMPERR_BAD;
		in_l4 = in_l3 + sizeof(*ip6);
		e->in_proto = ip6->nexthdr;
		xvs_addr_cp(e->in_saddr, (__be32 *)&ip6->saddr);
		xvs_addr_cp(e->in_daddr, (__be32 *)&ip6->daddr);
	}
	if (e->in_proto != IPPROTO_TCP && e->in_proto != IPPROTO_UDP)
		return XVS_ICMPERR_OTHER;
	if (in_l4 > XVS_ICMPERR_IN_L4_MAX)
		return XVS_ICMPERR_BAD;
	ports = data + in_l4;
	if ((void *)ports + XVS_ICMPERR_L4_MIN > data_end || in_l4 + XVS_ICMPERR_L4_MIN > end)
		return XVS_ICMPERR_BAD;
	if (!xvs_addr_eq(e->in_saddr, p->daddr))
		return XVS_ICMPERR_BAD;
	e->in_sport = ports[0];
	e->in_dport = ports[1];
	e->in_l3 = in_l3;
	e->in_l4 = in_l4;
	return XVS_ICMPERR_FOUND;
}

/*
 * The quoted transport checksum, where the quote holds all of it: UDP's
 * always (the 8 bytes xvs_icmperr_locate demands), TCP's when 18 bytes of
 * TCP are quoted (Linux quotes that much; RFC 792's 8 bytes do not). NULL:
 * nothing to update (half a checksum is left as it was). `ports` is the
 * quoted transport header, `end` where the outer packet ends.
 */
static __always_inline __sum16 *xvs_icmperr_l4check(void *data_end, __be16 *ports, __u32 in_l4, __u32 end, __u8 proto)
{
	__sum16 *c;

	if (proto == IPPROTO_UDP)
		c = (void *)ports + XVS_UDP_CHECK_OFF;
	else if (in_l4 + XVS_TCP_CHECK_OFF + 2 <= end)
		c = (void *)ports + XVS_TCP_CHECK_OFF;
	else
		return NULL;
	return (void *)(c + 1) <= data_end ? c : NULL;
}

/*
 * Rewrites the error located in *e as *x says, every checksum following,
 * and takes one from the outer TTL / hop limit (the director routes it).
 * Everything is checked before the first write: a refusal (XVS_PRIM_ETTL
 * when the TTL runs out, XVS_PRIM_EBOUNDS) leaves the frame as it was.
 */
static __always_inline int xvs_icmperr_rewrite(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_icmperr *e,
					       const struct xvs_icmperr_xlat *x)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 l3 = p->l3_off, icmp_off = p->l4_off, in_l3 = e->in_l3, in_l4 = e->in_l4;
	__u32 end = p->l3_off + p->ip_len;
	__u8 fam = p->family, proto = e->in_proto;
	__sum16 *icheck, *l4check, old_l4check = 0;
	__be16 *ports;
	__wsum d_in, d_icmp;

	if (l3 > XVS_L2_MAX || icmp_off > XVS_L4_OFF_MAX || in_l3 > XVS_ICMPERR_IN_L3_MAX ||
	    in_l4 > XVS_ICMPERR_IN_L4_MAX)
		return XVS_PRIM_EBOUNDS;
	icheck = data + icmp_off + 2;
	ports = data + in_l4;
	if ((void *)(icheck + 1) > data_end || (void *)ports + XVS_ICMPERR_L4_MIN > data_end)
		return XVS_PRIM_EBOUNDS;
	l4check = xvs_icmperr_l4check(data_end, ports, in_l4, end, proto);
	if (l4check) {
		old_l4check = *l4check;
		/* A quoted UDP checksum of 0 says "none": it stays so. */
		if (proto == IPPROTO_UDP && old_l4check == 0)
			l4check = NULL;
	}

	/* The quoted packet's addresses (its IP header and its pseudo-header)
	 * and ports; what they change in the ICMP checksum, to which the
	 * quoted checksums' own changes are added below. */
	d_in = xvs_csum_diff_addr(0, fam, e->in_saddr, x->in_saddr);
	d_in = xvs_csum_diff_addr(d_in, fam, e->in_daddr, x->in_daddr);
	d_icmp = xvs_csum_diff2(d_in, e->in_sport, x->in_sport);
	d_icmp = xvs_csum_diff2(d_icmp, e->in_dport, x->in_dport);

	if (fam == XVS_AF_INET) {
		struct iphdr *iph = data + l3, *in = data + in_l3;
		__be16 *ttlw = (void *)&iph->ttl, old_ttlw, old_incheck;
		__wsum d_out;

		if ((void *)(iph + 1) > data_end || (void *)(in + 1) > data_end)
			return XVS_PRIM_EBOUNDS;
		if (iph->ttl <= 1)
			return XVS_PRIM_ETTL;
		/* Outer: addresses and TTL, in the header checksum only (ICMP has no pseudo-header). */
		d_out = xvs_csum_diff4(0, iph->saddr, x->out_saddr[0]);
		d_out = xvs_csum_diff4(d_out, iph->daddr, x->out_daddr[0]);
		old_ttlw = *ttlw;
		iph->ttl--;
		d_out = xvs_csum_diff2(d_out, old_ttlw, *ttlw);
		iph->saddr = x->out_saddr[0];
		iph->daddr = x->out_daddr[0];
		iph->check = xvs_csum_apply(iph->check, d_out);
		/* Quoted IPv4 header. */
		old_incheck = in->check;
		in->saddr = x->in_saddr[0];
		in->daddr = x->in_daddr[0];
		in->check = xvs_csum_apply(in->check, d_in);
		d_icmp = xvs_csum_diff2(d_icmp, old_incheck, in->check);
	} else {
		struct ipv6hdr *ip6 = data + l3, *in = data + in_l3;

		if ((void *)(ip6 + 1) > data_end || (void *)(in + 1) > data_end)
			return XVS_PRIM_EBOUNDS;
		if (ip6->hop_limit <= 1)
			return XVS_PRIM_ETTL;
		/* ICMPv6's checksum covers the outer addresses (RFC 4443 2.3). */
		d_icmp = xvs_csum_diff16(d_icmp, (__be32 *)&ip6->saddr, x->out_saddr);
		d_icmp = xvs_csum_diff16(d_icmp, (__be32 *)&ip6->daddr, x->out_daddr);
		ip6->hop_limit--;
		xvs_addr_cp((__be32 *)&ip6->saddr, x->out_saddr);
		xvs_addr_cp((__be32 *)&ip6->daddr, x->out_daddr);
		xvs_addr_cp((__be32 *)&in->saddr, x->in_saddr);
		xvs_addr_cp((__be32 *)&in->daddr, x->in_daddr);
	}
	ports[0] = x->in_sport;
	ports[1] = x->in_dport;
	if (l4check) {
		__wsum d_l4 = xvs_csum_diff2(d_in, e->in_sport, x->in_sport);

		d_l4 = xvs_csum_diff2(d_l4, e->in_dport, x->in_dport);
		*l4check = xvs_l4_csum_apply(old_l4check, proto, d_l4);
		d_icmp = xvs_csum_diff2(d_icmp, old_l4check, *l4check);
	}
	*icheck = xvs_csum_apply(*icheck, d_icmp);
	return XVS_PRIM_OK;
}

/* Refused rewrites are counted and dropped: the error is about one of our
 * flows, so the kernel, which knows nothing of it, must not forward it. */
static __always_inline int xvs_icmperr_refused(int rc)
{
	xvs_count(rc == XVS_PRIM_ETTL ? XVS_CNT_TTL_EXCEEDED : XVS_CNT_ICMP_DROP);
	return XDP_DROP;
}

/*
 * What the rest of a message sums to: ~check is the whole message's sum
 * (its pseudo-header's too, for ICMPv6) with the checksum field as 0;
 * `covered` sums the words read before the rest, the field included, as it
 * stands (a 64-bit sum of 32-bit loads). The field's own word is taken out
 * again here.
 */
static __always_inline __wsum xvs_csum_rest(__sum16 check, __u64 covered)
{
	__wsum whole = (__wsum)(__u16)~(__u16)check;

	covered = (covered & 0xffffffff) + (covered >> 32);
	return xvs_csum_add(whole, (__wsum)(__u16)xvs_csum_finish(xvs_csum_add((__wsum)covered, whole)));
}

/*
 * RFC 7915 4.2: an ICMPv4 error's type and code as ICMPv6 has them, and the
 * MTU of fragmentation-needed as packet-too-big's, 20 bytes larger (no
 * smaller than IPv6's minimum, as icmp.h answers). 0: no counterpart
 * (source quench, parameter problem, a zero MTU, codes without one).
 */
static __always_inline int xvs_icmp_type_4to6(__u8 type, __u8 code, __u16 mtu4, __u8 *t6, __u8 *c6, __be32 *mtu6)
{
	*mtu6 = 0;
	if (type == ICMP_TIME_EXCEEDED) {
		*t6 = ICMPV6_TIME_EXCEED;
		*c6 = code;
		return code <= 1;
	}
	if (type != ICMP_DEST_UNREACH)
		return 0;
	*t6 = ICMPV6_DEST_UNREACH;
	switch (code) {
	case 0: case 1: case 5: case 6: case 7: case 8: case 11: case 12:
		*c6 = 0; /* no route to destination */
		return 1;
	case ICMP_PORT_UNREACH:
		*c6 = ICMPV6_PORT_UNREACH;
		return 1;
	case 9: case 10: case 13: case 15:
		*c6 = 1; /* administratively prohibited */
		return 1;
	case ICMP_FRAG_NEEDED:
		if (mtu4 == 0)
			return 0;
		*t6 = ICMPV6_PKT_TOOBIG;
		*c6 = 0;
		*mtu6 = bpf_htonl(mtu4 + XVS_NAT64_GROWTH < XVS_IPV6_MIN_MTU ? XVS_IPV6_MIN_MTU : mtu4 + XVS_NAT64_GROWTH);
		return 1;
	}
	return 0;
}

/* What the 4-to-6 translation writes in front of the quoted transport
 * header, where the outer IPv4 header, the ICMP header and the quoted IPv4
 * header were, 40 bytes earlier in the frame. */
struct xvs_icmperr6_hdrs {
	struct ipv6hdr ip6;
	struct xvs_icmp6hdr ic;
	struct ipv6hdr in6;
};

/* Ones' complement sum of n 16-bit words. */
static __always_inline __wsum xvs_sum16(__wsum s, const __u16 *w, int n)
{
#pragma unroll
	for (int i = 0; i < n; i++)
		s = xvs_csum_add(s, (__wsum)w[i]);
	return s;
}

/*
 * NAT64: the server side's ICMPv4 error about LIP:lport -> RIP:rport becomes
 * the ICMPv6 error the IPv6 client understands, from the VIP (the client
 * knows no IPv4 address) about client:cport -> VIP:vport, as RFC 7915
 * translates one: both IP headers rebuilt, the quoted transport header's
 * ports and checksum translated, the ICMPv6 checksum from the ICMP one (the
 * quoted transport bytes sum the same either side, less what changed in
 * them). Neither IPv4 header may carry options, and the result stays within
 * IPv6's minimum MTU (Linux quotes 576 bytes at most); else dropped, counted.
 */
static __always_inline int xvs_icmperr_4to6(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_icmperr *e,
					     const struct xvs_nat *n)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xvs_icmperr6_hdrs h = {};
	__u32 l3 = p->l3_off, end = p->l3_off + p->ip_len;
	__u16 tot, in_tot;
	__sum16 *l4check, old_l4check = 0, new_l4check = 0;
	__u8 proto = e->in_proto, t6, c6, *ic;
	struct iphdr *iph, *in;
	__be16 *ports;
	__be32 mtu6;
	__wsum d_l4 = 0, s;

	if (n->family != XVS_AF_INET6 || l3 > XVS_L2_MAX || p->l4_off != l3 + 20 || e->in_l3 != l3 + 28 ||
	    e->in_l4 != l3 + 48)
		return xvs_icmperr_refused(XVS_PRIM_EPROTO);
	iph = data + l3;
	ic = data + l3 + 20;
	in = data + l3 + 28;
	ports = data + l3 + 48;
	if ((void *)(ports + 4) > data_end)
		return xvs_icmperr_refused(XVS_PRIM_EBOUNDS);
	tot = bpf_ntohs(iph->tot_len);
	in_tot = bpf_ntohs(in->tot_len);
	if (tot + sizeof(struct ipv6hdr) > XVS_IPV6_MIN_MTU || in_tot < 28)
		return xvs_icmperr_refused(XVS_PRIM_EPROTO);
	if (iph->ttl <= 1)
		return xvs_icmperr_refused(XVS_PRIM_ETTL);
	if (!xvs_icmp_type_4to6(ic[0], ic[1], bpf_ntohs(*(__be16 *)(ic + 6)), &t6, &c6, &mtu6))
		return xvs_icmperr_refused(XVS_PRIM_EPROTO);
	l4check = xvs_icmperr_l4check(data_end, ports, l3 + 48, end, proto);
	if (l4check)
		old_l4check = *l4check;

	/* The ICMPv6 message is 8 + 40 + the quoted transport bytes: tot. */
	xvs_ipv6_hdr(&h.ip6, iph->tos, tot, XVS_IPPROTO_ICMPV6, iph->ttl - 1, n->vaddr, n->caddr);
	h.ic.type = t6;
	h.ic.code = c6;
	h.ic.mtu = mtu6;
	xvs_ipv6_hdr(&h.in6, in->tos, in_tot - 20, proto, in->ttl, n->caddr, n->vaddr);

	/* The quoted transport header: its pseudo-header's addresses (the
	 * length and protocol sum the same in both families) and ports. */
	d_l4 = xvs_csum_diff4(d_l4, in->saddr, n->caddr[0]);
	d_l4 = xvs_csum_diff4(d_l4, in->daddr, n->vaddr[0]);
#pragma unroll
	for (int i = 1; i < 4; i++) {
		d_l4 = xvs_csum_diff4(d_l4, 0, n->caddr[i]);
		d_l4 = xvs_csum_diff4(d_l4, 0, n->vaddr[i]);
	}
	d_l4 = xvs_csum_diff2(d_l4, ports[0], n->cport);
	d_l4 = xvs_csum_diff2(d_l4, ports[1], n->vport);
	if (l4check)
		new_l4check = xvs_l4_csum_apply(old_l4check, proto, d_l4);

	/* ICMPv6's checksum: the old message's sum (~its checksum), less the
	 * ICMP and quoted IPv4 headers (the checksum field counts as 0), plus
	 * what changed in the quoted transport bytes, the pseudo-header and
	 * the new ICMPv6 and quoted IPv6 headers. */
	{
		const __u32 *w = (const __u32 *)ic;

		s = xvs_csum_rest(*(__sum16 *)(ic + 2), (__u64)w[0] + w[1] + w[2] + w[3] + w[4] + w[5] + w[6]);
	}
	s = xvs_csum_diff2(s, ports[0], n->cport);
	s = xvs_csum_diff2(s, ports[1], n->vport);
	if (l4check)
		s = xvs_csum_diff2(s, old_l4check, new_l4check);
	s = xvs_sum16(s, (const __u16 *)&h.ip6.saddr, 16);
	s = xvs_csum_add(s, (__wsum)bpf_htons(tot));
	s = xvs_csum_add(s, (__wsum)bpf_htons(XVS_IPPROTO_ICMPV6));
	s = xvs_sum16(s, (const __u16 *)&h.ic, sizeof(h.ic) / 2);
	s = xvs_sum16(s, (const __u16 *)&h.in6, sizeof(h.in6) / 2);
	h.ic.checksum = xvs_csum_finish(s);

	ports[0] = n->cport;
	ports[1] = n->vport;
	if (l4check)
		*l4check = new_l4check;
	if (xvs_open_room(ctx, l3, sizeof(h) - (sizeof(struct iphdr) + XVS_ICMP_HLEN + sizeof(struct iphdr))))
		return xvs_icmperr_refused(XVS_PRIM_EBOUNDS);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (l3 > XVS_L2_MAX || data + l3 + sizeof(h) > data_end)
		return xvs_icmperr_refused(XVS_PRIM_EBOUNDS);
	__builtin_memcpy(data + l3, &h, sizeof(h));
	if (xvs_set_ethertype(ctx, l3, XVS_ETH_P_IPV6))
		return xvs_icmperr_refused(XVS_PRIM_EBOUNDS);
	xvs_account_out(n->svc_id, n->real_id, tot);
	xvs_count(XVS_CNT_ICMP_XLAT);
	return xvs_send(ctx, n->ifindex, n->cmac, n->smac, l3);
}

/*
 * RFC 7915 5.2: an ICMPv6 error's type and code as ICMPv4 has them, and the
 * MTU of packet too big as fragmentation-needed's, 20 bytes smaller. 0: no
 * counterpart (parameter problem, codes without one).
 */
static __always_inline int xvs_icmp_type_6to4(__u8 type, __u8 code, __u32 mtu6, __u8 *t4, __u8 *c4, __be16 *mtu4)
{
	*mtu4 = 0;
	if (type == ICMPV6_TIME_EXCEED) {
		*t4 = ICMP_TIME_EXCEEDED;
		*c4 = code;
		return code <= 1;
	}
	*t4 = ICMP_DEST_UNREACH;
	if (type == ICMPV6_PKT_TOOBIG) {
		if (mtu6 < XVS_IPV6_MIN_MTU)
			return 0;
		*c4 = ICMP_FRAG_NEEDED;
		*mtu4 = bpf_htons(mtu6 - XVS_NAT64_GROWTH > 0xffff ? 0xffff : mtu6 - XVS_NAT64_GROWTH);
		return 1;
	}
	if (type != ICMPV6_DEST_UNREACH)
		return 0;
	switch (code) {
	case 0: case 2: case 3:
		*c4 = 1; /* host unreachable */
		return 1;
	case 1:
		*c4 = 10; /* host administratively prohibited */
		return 1;
	case ICMPV6_PORT_UNREACH:
		*c4 = ICMP_PORT_UNREACH;
		return 1;
	}
	return 0;
}

/* What the 6-to-4 translation writes right in front of the quoted transport
 * header, before the 40 bytes in front of it go. */
struct xvs_icmperr4_hdrs {
	struct iphdr ip;
	struct xvs_icmphdr ic;
	struct iphdr in;
};

/*
 * NAT64: the client side's ICMPv6 error about a reply (VIP:vport -> client)
 * becomes the ICMPv4 error the real server understands, from the local
 * address (the only peer it knows) about RIP:rport -> LIP:lport, as RFC 7915
 * translates one; the quoted header is the IPv4 one the real server sent,
 * as far as the reply shows it (TTL from the hop limit, DF, identification
 * 0). The ICMP checksum comes from the ICMPv6 one as in xvs_icmperr_4to6.
 */
static __always_inline int xvs_icmperr_6to4(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_icmperr *e,
					     const struct xvs_conn *c, const struct xvs_real *r, const struct xvs_laddr *la,
					     const struct xvs_nexthop *nh)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xvs_icmperr4_hdrs h = {};
	__u32 l3 = p->l3_off, end = p->l3_off + p->ip_len;
	__sum16 *l4check, old_l4check = 0, new_l4check = 0;
	__be16 *ports, rport, mtu4;
	__u8 proto = e->in_proto, t4, c4, *ic;
	struct ipv6hdr *ip6, *in6;
	__u16 plen, in_plen;
	__wsum d_l4 = 0, s;

	if (l3 > XVS_L2_MAX || p->l4_off != l3 + 40 || e->in_l3 != l3 + 48 || e->in_l4 != l3 + 88)
		return xvs_icmperr_refused(XVS_PRIM_EPROTO);
	ip6 = data + l3;
	ic = data + l3 + 40;
	in6 = data + l3 + 48;
	ports = data + l3 + 88;
	if ((void *)(ports + 4) > data_end)
		return xvs_icmperr_refused(XVS_PRIM_EBOUNDS);
	plen = bpf_ntohs(ip6->payload_len);
	in_plen = bpf_ntohs(in6->payload_len);
	if (plen < 48 + XVS_ICMPERR_L4_MIN || in_plen > 0xffff - 20)
		return xvs_icmperr_refused(XVS_PRIM_EPROTO);
	if (ip6->hop_limit <= 1)
		return xvs_icmperr_refused(XVS_PRIM_ETTL);
	if (!xvs_icmp_type_6to4(ic[0], ic[1], bpf_ntohl(*(__be32 *)(ic + 4)), &t4, &c4, &mtu4))
		return xvs_icmperr_refused(XVS_PRIM_EPROTO);
	l4check = xvs_icmperr_l4check(data_end, ports, l3 + 88, end, proto);
	if (l4check)
		old_l4check = *l4check;

	/* RFC 7915 5.1: DF only on what is too large for IPv6's minimum less 20. */
	/* The IPv4 packet is 20 + 8 + 20 + the quoted transport bytes: plen. */
	xvs_ipv4_hdr(&h.ip, xvs_ipv6_tclass(ip6), plen, 0,
		     plen > XVS_IPV6_MIN_MTU - XVS_NAT64_GROWTH ? bpf_htons(0x4000) : 0, ip6->hop_limit - 1, IPPROTO_ICMP,
		     la->addr[0], r->addr[0]);
	h.ic.type = t4;
	h.ic.code = c4;
	h.ic.mtu = mtu4;
	xvs_ipv4_hdr(&h.in, xvs_ipv6_tclass(in6), in_plen + 20, 0, bpf_htons(0x4000), in6->hop_limit, proto, r->addr[0],
		     la->addr[0]);

	/* The quoted transport header: its pseudo-header's addresses, ports. */
	rport = xvs_rport(r, ports[0]);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		d_l4 = xvs_csum_diff4(d_l4, in6->saddr.in6_u.u6_addr32[i], i ? 0 : r->addr[0]);
		d_l4 = xvs_csum_diff4(d_l4, in6->daddr.in6_u.u6_addr32[i], i ? 0 : la->addr[0]);
	}
	d_l4 = xvs_csum_diff2(d_l4, ports[0], rport);
	d_l4 = xvs_csum_diff2(d_l4, ports[1], c->lport);
	if (l4check)
		new_l4check = xvs_l4_csum_apply(old_l4check, proto, d_l4);

	/* ICMP's checksum: the old message's sum with its pseudo-header
	 * (~its checksum), less that pseudo-header and the ICMPv6 and quoted
	 * IPv6 headers (the checksum field counts as 0), plus what changed in
	 * the quoted transport bytes and the new ICMP and quoted IPv4 headers. */
	{
		const __u32 *a = (const __u32 *)&ip6->saddr, *w = (const __u32 *)ic;
		__u64 o = (__u64)a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];

		o += (__u64)w[0] + w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7] + w[8] + w[9] + w[10] + w[11];
		o += bpf_htons(plen) + bpf_htons(XVS_IPPROTO_ICMPV6);
		s = xvs_csum_rest(*(__sum16 *)(ic + 2), o);
	}
	s = xvs_csum_diff2(s, ports[0], rport);
	s = xvs_csum_diff2(s, ports[1], c->lport);
	if (l4check)
		s = xvs_csum_diff2(s, old_l4check, new_l4check);
	s = xvs_sum16(s, (const __u16 *)&h.ic, sizeof(h.ic) / 2);
	s = xvs_sum16(s, (const __u16 *)&h.in, sizeof(h.in) / 2);
	h.ic.checksum = xvs_csum_finish(s);

	ports[0] = rport;
	ports[1] = c->lport;
	if (l4check)
		*l4check = new_l4check;
	/* The new headers end where the old ones did; the 40 bytes in front go. */
	__builtin_memcpy(data + l3 + 40, &h, sizeof(h));
	if (xvs_set_ethertype(ctx, l3, XVS_ETH_P_IP) ||
	    xvs_close_room(ctx, l3, sizeof(struct ipv6hdr) + sizeof(struct xvs_icmp6hdr) + sizeof(struct ipv6hdr) - sizeof(h)))
		return xvs_icmperr_refused(XVS_PRIM_EBOUNDS);
	xvs_account(p);
	xvs_count(XVS_CNT_ICMP_XLAT);
	return xvs_send(ctx, nh->ifindex, nh->dmac, nh->smac, l3);
}

/* From the server side, about what the director sent a real server: the
 * reply side's entry (key: the quoted tuple reversed) says where the client
 * is and what it sent to. For FULLNAT the quoted source is the local
 * address, put back to the client as NAT's is (the same values). */
static __always_inline int xvs_icmperr_to_client(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_config *cfg,
						 const struct xvs_icmperr *e, const struct xvs_conn_key *k,
						 struct xvs_icmperr_xlat *xp, __u64 now)
{
	struct xvs_new_reply *w;
	struct xvs_nat *n;
	int rc;

	n = bpf_map_lookup_elem(&xvs_nats, k);
	if (!n && (w = xvs_nr_find(k)))
		n = &w->nat;
	if (!n || !xvs_fresh(cfg, n->last_seen, now, n->state))
		return XVS_CONTINUE;
	if (n->family != p->family)
		return xvs_icmperr_4to6(ctx, p, e, n); /* NAT64: rebuilt in the client's family */
	xp->in_saddr = n->caddr;
	xp->in_sport = n->cport;
	xp->in_daddr = n->vaddr;
	xp->in_dport = n->vport;
	/* The real server's own error comes from the VIP, as the client knows
	 * no other address of the service; a router on the way keeps its own. */
	xp->out_saddr = xvs_addr_eq(p->saddr, e->in_daddr) ? n->vaddr : p->saddr;
	xp->out_daddr = n->caddr;
	rc = xvs_icmperr_rewrite(ctx, p, e, xp);
	if (rc)
		return xvs_icmperr_refused(rc);
	xvs_account_out(n->svc_id, n->real_id, p->ip_len);
	xvs_count(XVS_CNT_ICMP_XLAT);
	return xvs_send(ctx, n->ifindex, n->cmac, n->smac, p->l3_off);
}

/* From the client side, about a reply the director sent from the VIP: the
 * flow (key: the quoted tuple reversed) names the real server. For FULLNAT
 * the real server sent its reply to the local address and port, so the
 * quote names those in place of the client's, and the client's own error
 * comes from the local address, the only peer the real server knows (a
 * router on the way keeps its own, as to_client keeps it). */
static __always_inline int xvs_icmperr_to_real(struct xdp_md *ctx, struct xvs_pkt *p, const struct xvs_config *cfg,
					       const struct xvs_icmperr *e, const struct xvs_conn_key *k,
					       struct xvs_icmperr_xlat *xp, __u64 now)
{
	const struct xvs_nexthop *nh;
	const struct xvs_laddr *la = NULL;
	struct xvs_new_flow *w;
	struct xvs_conn *c;
	struct xvs_real *r;
	__u32 id;
	int rc;

	c = bpf_map_lookup_elem(&xvs_conns, k);
	if (!c && (w = xvs_nf_find(k)))
		c = &w->conn;
	if (!c || !xvs_fresh(cfg, c->last_seen, now, c->state))
		return XVS_CONTINUE;
	id = c->real_id;
	r = bpf_map_lookup_elem(&xvs_reals, &id);
	if (!r || r->gen != c->real_gen || (r->fwd != XVS_FWD_NAT && r->fwd != XVS_FWD_FULLNAT))
		return XVS_CONTINUE; /* DR/TUN replies never pass the director: not ours */
	if (r->fwd == XVS_FWD_FULLNAT) {
		id = c->laddr_id;
		la = bpf_map_lookup_elem(&xvs_laddrs, &id);
		if (!la || la->family != r->family) {
			xvs_count(XVS_CNT_ICMP_DROP);
			return XDP_DROP;
		}
		id = c->real_id;
	}
	/* One family, or NAT64: FULLNAT from an IPv6 client to an IPv4 real server. */
	if (r->family != p->family && !(la && p->family == XVS_AF_INET6 && r->family == XVS_AF_INET)) {
		xvs_count(XVS_CNT_ICMP_DROP);
		return XDP_DROP;
	}
	/* The cached next hop only: the FIB fallback's lookup structures do
	 * not fit this program's stack, and a real server without one has its
	 * flows' own packets dropped until it has one. */
	nh = bpf_map_lookup_elem(&xvs_nexthops, &id);
	if (!nh || !nh->ifindex) {
		xvs_count(XVS_CNT_ICMP_DROP);
		return XDP_DROP;
	}
	p->real_id = id;
	p->svc_id = c->svc_id;
	p->is_new = 0;
	if (r->family != p->family)
		return la ? xvs_icmperr_6to4(ctx, p, e, c, r, la, nh) : XDP_DROP;
	xp->in_saddr = r->addr;
	xp->in_sport = xvs_rport(r, e->in_sport);
	xp->in_daddr = la ? la->addr : e->in_daddr;
	xp->in_dport = la ? c->lport : e->in_dport;
	xp->out_saddr = la && xvs_addr_eq(p->saddr, e->in_daddr) ? la->addr : p->saddr;
	xp->out_daddr = r->addr;
	rc = xvs_icmperr_rewrite(ctx, p, e, xp);
	if (rc)
		return xvs_icmperr_refused(rc);
	xvs_account(p);
	xvs_count(XVS_CNT_ICMP_XLAT);
	return xvs_send(ctx, nh->ifindex, nh->dmac, nh->smac, p->l3_off);
}

/*
 * The stage: every ICMP and ICMPv6 packet ends here (parse.h hands them on
 * without ports). Errors about a NAT flow are translated and sent on;
 * anything else goes to the kernel as before. It runs in its own program
 * (xvs_icmperr in xvs.c, reached by a tail call), whose stack is its own:
 * the director's chain leaves too little of the 512 bytes for it.
 */
static __always_inline int xvs_icmp_err(struct xdp_md *ctx, struct xvs_pkt *p, const struct xvs_config *cfg)
{
	struct xvs_icmperr e = {};
	struct xvs_icmperr_xlat x = {};
	struct xvs_conn_key k = {};
	__u64 now;
	int rc;

	if (!xvs_parsed_icmp(p))
		return XVS_CONTINUE;
	if (!(cfg->flags & XVS_CFG_F_TWO_WAY))
		return xvs_unparsed(XVS_CNT_PASS_NO_SVC);
	rc = xvs_icmperr_locate(ctx, p, &e);
	if (rc == XVS_ICMPERR_OTHER)
		return xvs_unparsed(XVS_CNT_PASS_NO_SVC);
	if (rc != XVS_ICMPERR_FOUND)
		return xvs_unparsed(XVS_CNT_ICMP_MALFORMED);
	/* The quoted tuple reversed: a reply's key (to the client) or a flow's (to the real server). */
	xvs_addr_cp(k.saddr, e.in_daddr);
	xvs_addr_cp(k.daddr, e.in_saddr);
	k.sport = e.in_dport;
	k.dport = e.in_sport;
	k.proto = e.in_proto;
	k.family = p->family;
	now = bpf_jiffies64();
	rc = xvs_icmperr_to_client(ctx, p, cfg, &e, &k, &x, now);
	if (rc != XVS_CONTINUE)
		return rc;
	rc = xvs_icmperr_to_real(ctx, p, cfg, &e, &k, &x, now);
	if (rc != XVS_CONTINUE)
		return rc;
	return xvs_unparsed(XVS_CNT_PASS_NO_SVC);
}

#endif
