/* SPDX-License-Identifier: GPL-2.0 */
/*
 * FULLNAT (the Alibaba LVS branch's and DPVS's mode): the client's packet
 * leaves from one of the service's local addresses and a local port
 * (LIP:lport) to RIP:rport, so real servers can sit in any routed subnet and
 * need no special gateway; the real server's reply (RIP:rport to LIP:lport)
 * goes back as VIP:vport to CIP:cport (nat.h). The client's address travels
 * in TCP option 254 (TOA), in the segment that completes the handshake and
 * in client segments until one carrying data had it; the real server's
 * SYN-ACK announces an MSS smaller by the option's size, so that segment
 * never outgrows the path.
 */
#ifndef XVS_FULLNAT_H
#define XVS_FULLNAT_H

#include "nexthop.h"
#include "rewrite.h"
#include "hdrmove.h"
#include "nat64.h"

/* The client's address into the segment, counted either way (a few
 * segments per flow: a subprogram). */
XVS_SUBPROG int xvs_toa_add(struct xdp_md *ctx, const struct xvs_pkt *p)
{
	int rc;

	if (!p)
		return 0;
	rc = xvs_toa_insert(ctx, p->l3_off, p->family, p->family, p->saddr, p->sport);
	xvs_count(rc ? XVS_CNT_TOA_NO_ROOM : XVS_CNT_TOA_ADDED);
	return 0;
}

/* FULLNAT: the flow's local address (of the real server's family: one
 * family, or an IPv6 client of IPv4 real servers, NAT64) and port as the
 * source, RIP:rport as the destination, both in one pass; NAT64 translates
 * the header (a subprogram). Inlined, as xvs_fwd_nat is: a subprogram's
 * call cost it 0.14x of the floor. */
static __always_inline int xvs_fwd_fullnat(struct xdp_md *ctx, struct xvs_pkt *p, const struct xvs_real *r)
{
	const struct xvs_nexthop *nh;
	struct xvs_laddr *la;
	__u32 id;
	int verdict;

	id = p->laddr_id;
	la = bpf_map_lookup_elem(&xvs_laddrs, &id);
	if (!la || la->family != r->family ||
	    (r->family != p->family && !(p->family == XVS_AF_INET6 && r->family == XVS_AF_INET))) {
		xvs_count(XVS_CNT_BAD_MODE);
		return XDP_DROP;
	}
	nh = xvs_nexthop(ctx, p, r, 0, &verdict);
	if (!nh)
		return verdict;
	if (r->family != p->family) {
		if (xvs_nat64_6to4(ctx, p->l3_off, (const void *)la->addr, (const void *)r->addr,
				   xvs_nat64_ports(p->lport, xvs_rport(r, p->dport)))) {
			xvs_count(XVS_CNT_NAT_REFUSED);
			return XDP_DROP;
		}
	} else if (xvs_rewrite_tuple(ctx, p->l3_off, p->family, la->addr, p->lport, r->addr, xvs_rport(r, p->dport), 0)) {
		xvs_count(XVS_CNT_NAT_REFUSED);
		return XDP_DROP;
	}
	return xvs_egress(ctx, nh, p);
}

/* The TOA option's size for a client of this family. */
static __always_inline __u16 xvs_toa_len(__u8 family)
{
	return family == XVS_AF_INET6 ? 20 : 8;
}

/*
 * The real server's SYN-ACK to a FULLNAT flow: its MSS option, if any, is
 * lowered by the size of the TOA option the client's segments will carry
 * (the checksum follows), so no segment with it outgrows the path.
 */
static __always_inline void xvs_mss_clamp(struct xdp_md *ctx, const struct xvs_pkt *p, __u16 by)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct tcphdr *th;
	__u32 off = p->l4_off, optlen, i = 0;
	__u8 *o;

	if (off > XVS_PRIM_L4_OFF_MAX)
		return;
	th = data + off;
	if ((void *)(th + 1) > data_end)
		return;
	optlen = th->doff * 4 - sizeof(*th);
	if (optlen > 40)
		return;
	/* Bounded walk over the options: kind, length, value. */
	for (int n = 0; n < 20; n++) {
		__u8 kind, len;

		if (i >= optlen)
			return;
		o = (void *)(th + 1) + (i & 63);
		asm volatile("" : "+r"(o));
		if ((void *)(o + 1) > data_end)
			return;
		kind = o[0];
		if (kind == 0)
			return;
		if (kind == 1) {
			i++;
			continue;
		}
		if ((void *)(o + 2) > data_end)
			return;
		len = o[1];
		if (len < 2 || i + len > optlen)
			return;
		if (kind == 2 && len == 4) {
			__be16 *mss = (void *)(o + 2);
			__be16 old, new;

			if ((void *)(mss + 1) > data_end)
				return;
			old = *mss;
			if (bpf_ntohs(old) <= by + 536)
				return;
			new = bpf_htons(bpf_ntohs(old) - by);
			*mss = new;
			/* At an odd offset the value's bytes sit in two checksum
			 * words: the sum sees it byte-swapped. */
			if (i & 1)
				th->check = xvs_csum_replace2(th->check, __builtin_bswap16(old), __builtin_bswap16(new));
			else
				th->check = xvs_csum_replace2(th->check, old, new);
			return;
		}
		i += len;
	}
}

#endif
