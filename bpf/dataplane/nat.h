/* SPDX-License-Identifier: GPL-2.0 */
/*
 * LVS-NAT (masquerading): the client's packet goes to the real server with
 * its destination rewritten to RIP:rport; the real server answers through
 * the director (its gateway), which rewrites the reply's source back to
 * VIP:vport and sends it the way the client's packets came. FULLNAT's
 * replies come here too: their destination goes back to CIP:cport. A reply that
 * matches no flow is not touched: it goes to the kernel, never rewritten by
 * guess. Checksums follow incrementally (rewrite.h).
 */
#ifndef XVS_NAT_H
#define XVS_NAT_H

#include "nexthop.h"
#include "rewrite.h"
#include "tcpstate.h"
#include "fullnat.h"
#include "icmp.h"
#include "sets.h"

/* Inlined: every established NAT packet comes here, and a subprogram's call
 * cost it 0.05x of the floor; its frame fits beside the others'. */
static __always_inline int xvs_fwd_nat(struct xdp_md *ctx, struct xvs_pkt *p, const struct xvs_real *r)
{
	const struct xvs_nexthop *nh;
	int verdict;

	if (r->family != p->family) {
		xvs_count(XVS_CNT_BAD_MODE);
		return XDP_DROP;
	}
	nh = xvs_nexthop(ctx, p, r, 0, &verdict);
	if (!nh)
		return verdict;
	if (xvs_rewrite_addr_port(ctx, p->l3_off, p->family, XVS_REWRITE_DST, r->addr, xvs_rport(r, p->dport))) {
		xvs_count(XVS_CNT_NAT_REFUSED);
		return XDP_DROP;
	}
	return xvs_egress(ctx, nh, p);
}

static __always_inline void xvs_account_out(__u32 svc_id, __u32 real_id, __u32 bytes)
{
	struct xvs_stats *s = bpf_map_lookup_elem(&xvs_svc_stats, &svc_id);

	if (s) {
		s->outpkts += 1;
		s->outbytes += bytes;
	}
	s = bpf_map_lookup_elem(&xvs_real_stats, &real_id);
	if (s) {
		s->outpkts += 1;
		s->outbytes += bytes;
	}
}

/* The connection's state after a reply moved it: the client's side (the
 * flow's entry) follows, found by the tuple the reply side keeps. */
static __always_inline void xvs_nat_reply_state(struct xvs_nat *n, const struct xvs_pkt *p)
{
	struct xvs_conn_key fk = {};
	struct xvs_new_flow *w;
	struct xvs_conn *c;
	__u8 ns = xvs_tcp_state(n->state, p->tcp_flags, XVS_DIR_OUT);

	if (ns == n->state)
		return;
	n->state = ns;
	__builtin_memcpy(fk.saddr, n->caddr, 16);
	__builtin_memcpy(fk.daddr, n->vaddr, 16);
	fk.sport = n->cport;
	fk.dport = n->vport;
	fk.proto = p->proto;
	fk.family = n->family;
	c = bpf_map_lookup_elem(&xvs_conns, &fk);
	if (c) {
		if (c->real_id == n->real_id)
			c->state = ns;
		return;
	}
	w = xvs_nf_find(&fk);
	if (w && w->conn.real_id == n->real_id) {
		w->conn.state = ns;
		xvs_way_seal(w, sizeof(*w));
	}
}

/* Whether the packet's source may be a NAT or FULLNAT real server: its
 * slot of xvs_nat_real_slots holds one. Inlined, on every packet of a
 * two-way director, in place of a hash lookup of the address. */
static __always_inline int xvs_maybe_reply(const struct xvs_pkt *p)
{
	__u32 slot = xvs_hash32(xvs_addr_fold(p->saddr)) % XVS_NAT_REAL_SLOTS;
	__u32 *n = bpf_map_lookup_elem(&xvs_nat_real_slots, &slot);

	return n && *n;
}

/*
 * Whether the reply, once translated (NAT64: 20 bytes longer), fits the MTU
 * of the interface it would leave by towards the client; XVS_CONTINUE if it
 * does, or if that MTU is unknown (no entry: forwarded as before). A veth
 * or a driver drops an XDP frame past its MTU and says nothing, so the
 * director answers as a router would, before anything is written and so
 * quoting the reply as it arrived: ICMP fragmentation-needed (IPv4 with DF;
 * NAT64's real servers are IPv4, told the MTU less the 20 bytes) or ICMPv6
 * packet-too-big to the real server, out of the interface the reply came
 * in on. IPv4 without DF is dropped: XDP does not fragment, and the kernel
 * would forward it untranslated. A reply whose TTL runs out here is left to
 * the caller's TTL check, as a router checks the TTL first.
 */
static __always_inline int xvs_reply_fits(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_nat *n)
{
	__u32 growth = n->family != p->family ? XVS_NAT64_GROWTH : 0;
	__u32 ifindex = n->ifindex;
	__u32 *mtu;
	__u32 m;

	/* IPv6 runs on no link below 1,280 bytes: most replies to IPv6
	 * clients (all of NAT64's ACKs) are settled without the lookup. */
	if (n->family == XVS_AF_INET6 && p->ip_len + growth <= XVS_IPV6_MIN_MTU)
		return XVS_CONTINUE;
	mtu = bpf_map_lookup_elem(&xvs_if_mtus, &ifindex);
	if (!mtu)
		return XVS_CONTINUE;
	m = *mtu;
	if (!m || p->ip_len + growth <= m || p->ttl <= 1)
		return XVS_CONTINUE;
	xvs_count(XVS_CNT_REPLY_TOO_BIG);
	if (!p->df) {
		xvs_count(XVS_CNT_DROP_TOO_BIG);
		return XDP_DROP;
	}
	return xvs_icmp_too_big(ctx, p, m > growth ? m - growth : 0);
}

/*
 * A packet from a NAT real server that belongs to a flow: rewritten back to
 * the service and sent to the client; XVS_CONTINUE for anything else (the
 * rest of the chain decides: it may be a client of a VIP, or the real
 * server's own traffic for the kernel). A subprogram (see XVS_SUBPROG),
 * called only for a packet xvs_maybe_reply lets through: the reply tables,
 * keyed by the whole 5-tuple, decide.
 */
XVS_SUBPROG int xvs_nat_reply(struct xdp_md *ctx, struct xvs_pkt *p)
{
	struct xvs_reply_cached *rc_slot;
	struct xvs_config *cfg;
	struct xvs_new_reply *w;
	struct xvs_nat *n;
	__u32 zero = 0, bytes, gen, idx;
	__u64 now;
	int rc, cached;

	cfg = bpf_map_lookup_elem(&xvs_config, &zero);
	if (!p || !cfg)
		return XVS_CONTINUE;
	bytes = p->ip_len;
	now = bpf_jiffies64();
	gen = xvs_cache_gen();
	idx = xvs_cache_index(&p->key);
	rc_slot = bpf_map_lookup_elem(&xvs_reply_cache, &idx);
	/* This CPU's copy, if taken less than a second ago from an established
	 * entry: the packet cannot change its state, nor is it time to refresh it. */
	cached = rc_slot && xvs_cacheable(p) && xvs_key_eq(&p->key, &rc_slot->key) && rc_slot->gen == gen &&
		 now - rc_slot->nat.last_seen < cfg->hz && xvs_fresh(cfg, rc_slot->nat.last_seen, now, rc_slot->nat.state);
	if (cached) {
		n = &rc_slot->nat;
	} else {
		n = bpf_map_lookup_elem(&xvs_nats, &p->key);
		if (!n && (w = xvs_nr_find(&p->key)))
			n = &w->nat;
		if (!n || !xvs_fresh(cfg, n->last_seen, now, n->state))
			return XVS_CONTINUE;
	}
	rc = xvs_reply_fits(ctx, p, n);
	if (rc != XVS_CONTINUE)
		return rc;
	if (cached) {
		xvs_count(XVS_CNT_FLOW_CACHED);
	} else {
		if (p->proto == IPPROTO_TCP)
			xvs_nat_reply_state(n, p);
		if (now - n->last_seen >= cfg->hz)
			n->last_seen = now;
		if (rc_slot) {
			if (xvs_cacheable(p) && xvs_copyable_state(n->state)) {
				rc_slot->key = p->key;
				rc_slot->nat = *n;
				rc_slot->gen = gen;
			} else {
				rc_slot->nat.last_seen = 0;
			}
		}
	}
	if ((n->flags & XVS_NAT_F_FULLNAT) && p->proto == IPPROTO_TCP && (p->tcp_flags & XVS_TCP_SYN))
		xvs_mss_clamp(ctx, p, xvs_toa_len(n->family));
	/* The reply is routed through the director, which is a router for it:
	 * its TTL goes down by one, in the same pass as the rewrite. */
	if (n->family != p->family) {
		/* NAT64: an IPv4 real server's reply to an IPv6 client. */
		if (xvs_ttl_decrement(ctx, p->l3_off, p->family)) {
			xvs_count(XVS_CNT_TTL_EXCEEDED);
			return XDP_DROP;
		}
		if (!(n->flags & XVS_NAT_F_FULLNAT) ||
		    xvs_nat64_4to6(ctx, p->l3_off, (const void *)n->vaddr, (const void *)n->caddr,
				   xvs_nat64_ports(n->vport, n->cport))) {
			xvs_count(XVS_CNT_NAT_REFUSED);
			return XDP_DROP;
		}
	} else {
		rc = xvs_rewrite_tuple(ctx, p->l3_off, p->family, n->vaddr, n->vport,
				       n->flags & XVS_NAT_F_FULLNAT ? n->caddr : NULL, n->cport, 1);
		if (rc) {
			xvs_count(rc == XVS_PRIM_ETTL ? XVS_CNT_TTL_EXCEEDED : XVS_CNT_NAT_REFUSED);
			return XDP_DROP;
		}
	}
	xvs_account_out(n->svc_id, n->real_id, bytes);
	xvs_count(XVS_CNT_NAT_REPLY);
	return xvs_send(ctx, n->ifindex, n->cmac, n->smac, p->l3_off);
}

#endif
