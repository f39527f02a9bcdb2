/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The reply side of NAT and FULLNAT flows (struct xvs_nat): opened with the
 * flow, confirmed with it, and kept in the same TCP state, so either side's
 * timeout follows the connection as IPVS's one entry does. The key is the
 * reply's 5-tuple: real server to client (NAT) or to the flow's local
 * address and port (FULLNAT: xvs_fnat_open below picks the address from
 * the service's pool and the port with lport.h).
 */
#ifndef XVS_NATCONN_H
#define XVS_NATCONN_H

#include "common.h"
#include "maps.h"
#include "sched.h"
#include "lport.h"

/* The reply's tuple: real server to client (NAT), or to the flow's local
 * address and port (FULLNAT). -1 when that address is gone. */
static __always_inline int xvs_reply_key(struct xvs_conn_key *k, const struct xvs_pkt *p, const struct xvs_real *r)
{
	__builtin_memcpy(k->saddr, r->addr, 16);
	k->sport = xvs_rport(r, p->dport);
	k->proto = p->proto;
	k->family = r->family;
	k->pad0[0] = 0;
	k->pad0[1] = 0;
	if (r->fwd == XVS_FWD_FULLNAT) {
		__u32 id = p->laddr_id;
		struct xvs_laddr *la = bpf_map_lookup_elem(&xvs_laddrs, &id);

		if (!la)
			return -1;
		__builtin_memcpy(k->daddr, la->addr, 16);
		k->dport = p->lport;
		return 0;
	}
	__builtin_memcpy(k->daddr, p->saddr, 16);
	k->dport = p->sport;
	return 0;
}

/* A new flow's reply side: what its replies become (VIP:vport to CIP:cport)
 * and where they go, which is back the way the client's packets came (their
 * interface and MACs), so a reply needs no route lookup. */
static __always_inline void xvs_nat_fill(struct xvs_nat *n, const struct xdp_md *ctx, const struct xvs_pkt *p,
					 const struct ethhdr *eth, __u8 state, __u64 now)
{
	__builtin_memset(n, 0, sizeof(*n));
	n->last_seen = now;
	__builtin_memcpy(n->vaddr, p->daddr, 16);
	__builtin_memcpy(n->caddr, p->saddr, 16);
	n->vport = p->dport;
	n->cport = p->sport;
	n->real_id = p->real_id;
	n->svc_id = p->svc_id;
	n->ifindex = ctx->ingress_ifindex;
	__builtin_memcpy(n->cmac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(n->smac, eth->h_dest, ETH_ALEN);
	n->family = p->family;
	n->state = state;
}

/* Opens the reply side of a new NAT flow. New flows only: a subprogram. */
XVS_SUBPROG int xvs_nat_open(struct xdp_md *ctx, const struct xvs_pkt *p, __u8 state)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct xvs_scratch *s = xvs_scratch_get();
	struct xvs_conn_key rk;
	struct xvs_real *r;
	struct xvs_nat *n;
	__u32 id;

	if (!p || !s)
		return 0;
	id = p->real_id;
	r = bpf_map_lookup_elem(&xvs_reals, &id);
	if (!r || (void *)(eth + 1) > data_end || xvs_reply_key(&rk, p, r))
		return 0;
	n = &s->nat;
	xvs_nat_fill(n, ctx, p, eth, state, bpf_jiffies64());
	xvs_nr_put(&rk, n, NULL);
	return 0;
}

/* The reply side's key of the flow the packet belongs to. */
static __always_inline int xvs_flow_reply_key(struct xvs_conn_key *k, const struct xvs_pkt *p)
{
	__u32 id = p->real_id;
	struct xvs_real *r = bpf_map_lookup_elem(&xvs_reals, &id);

	return r ? xvs_reply_key(k, p, r) : -1;
}

/* The flow was confirmed: its reply side moves to xvs_nats too. A
 * subprogram (see XVS_SUBPROG): once per flow. */
XVS_SUBPROG int xvs_nat_promote(const struct xvs_pkt *p, __u8 state)
{
	struct xvs_new_reply *w;
	struct xvs_conn_key rk;
	struct xvs_nat copy;

	if (!p || xvs_flow_reply_key(&rk, p))
		return 0;
	w = xvs_nr_find(&rk);
	if (!w)
		return 0;
	copy = w->nat;
	copy.state = state;
	copy.last_seen = bpf_jiffies64();
	bpf_map_update_elem(&xvs_nats, &rk, &copy, BPF_ANY);
	xvs_nr_put(&rk, NULL, NULL);
	return 0;
}

/* The client's segment changed the connection's state: the reply side's
 * copy follows (a subprogram: on state changes only). */
XVS_SUBPROG int xvs_nat_sync(const struct xvs_pkt *p, __u8 state)
{
	struct xvs_new_reply *w;
	struct xvs_conn_key rk;
	struct xvs_nat *n;

	if (!p || xvs_flow_reply_key(&rk, p))
		return 0;
	n = bpf_map_lookup_elem(&xvs_nats, &rk);
	if (n) {
		if (n->real_id == p->real_id)
			n->state = state;
		return 0;
	}
	w = xvs_nr_find(&rk);
	if (w && w->nat.real_id == p->real_id) {
		w->nat.state = state;
		xvs_way_seal(w, sizeof(*w));
	}
	return 0;
}

/* Spreads a client (address and port) over a service's local addresses:
 * the bits of the multiplicative hash that a remainder reads depend only on
 * the input's low bits, so mix first (murmur3's finaliser). */
static __always_inline __u32 xvs_client_hash(const struct xvs_pkt *p)
{
	return xvs_fmix32(xvs_addr_fold(p->saddr) ^ ((__u32)p->sport << 16));
}

/*
 * Gives a new FULLNAT flow a local address of its service and a local port
 * no live flow to the same RIP:rport from that address has, and opens its
 * reply side there (p->laddr_id, p->lport): a random first port from the
 * client's first address of the real server's family, then up to
 * XVS_LPORT_TRIES - 1 more, each from the next such address (lport.h).
 * Returns 0, or a verdict (counted) when the service has no local address
 * or no port was free. A subprogram, as xvs_nat_open.
 */
XVS_SUBPROG int xvs_fnat_open(struct xdp_md *ctx, struct xvs_pkt *p, __u8 state)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u64 now = bpf_jiffies64();
	__u32 zero = 0, sid, h, id, idx, first = 0;
	struct xvs_config *cfg = bpf_map_lookup_elem(&xvs_config, &zero);
	struct xvs_svc_laddrs *sl;
	struct xvs_laddr *la;
	struct xvs_real *r;
	struct xvs_scratch *s = xvs_scratch_get();
	struct xvs_lport_search *ls;
	struct xvs_lport_ctx lc;
	__u32 *dry;
	struct xvs_nat *n;

	if (!p || !cfg || !s)
		return XDP_DROP;
	id = p->real_id;
	r = bpf_map_lookup_elem(&xvs_reals, &id);
	if (!r)
		return XDP_DROP;
	sid = p->svc_id;
	h = xvs_client_hash(p);
	sl = bpf_map_lookup_elem(&xvs_svc_laddrs, &sid);
	if (!sl || sl->count == 0 || sl->count > XVS_SVC_LADDRS_MAX)
		goto no_laddr;
	/* From the client's place in the pool on, the first local address of
	 * the real server's family: an IPv6 service's pool may hold IPv4 ones
	 * for its IPv4 real servers (NAT64). */
	la = NULL;
	for (int k = 0; k < XVS_SVC_LADDRS_MAX; k++) {
		if (k >= sl->count)
			break;
		first = k;
		idx = (h + k) % sl->count;
		/* The verifier cannot see that a remainder is below its divisor. */
		asm volatile("" : "+r"(idx));
		if (idx >= XVS_SVC_LADDRS_MAX)
			goto no_laddr;
		id = sl->ids[idx];
		la = bpf_map_lookup_elem(&xvs_laddrs, &id);
		if (la && la->family == r->family)
			break;
		la = NULL;
	}
	if (!la)
		goto no_laddr;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;

	n = &s->nat;
	xvs_nat_fill(n, ctx, p, eth, state, now);
	n->flags = XVS_NAT_F_FULLNAT;
	ls = &s->lport;
	ls->now = now;
	ls->start = h + first;
	ls->id = id;
	ls->found = 0;
	__builtin_memcpy(ls->rk.saddr, r->addr, 16);
	__builtin_memcpy(ls->rk.daddr, la->addr, 16);
	ls->rk.sport = xvs_rport(r, p->dport);
	ls->rk.proto = p->proto;
	ls->rk.family = r->family;
	ls->rk.pad0[0] = 0;
	ls->rk.pad0[1] = 0;
	/* A random first port, as Linux picks ephemeral ports: a client cannot
	 * aim its flows at one probe sequence and use it up. One call per new
	 * FULLNAT flow, never per packet. */
	ls->offset = bpf_get_prandom_u32();
	ls->rk.dport = xvs_lport_nth(ls->offset, 0);
	/* An inlined per-CPU read, and a write only when a dry spell ends. */
	dry = bpf_map_lookup_elem(&xvs_lport_dry, &p->real_id);
	if (!xvs_lport_claim(&ls->rk, n, cfg, now)) {
		int full = !dry || *dry < XVS_LPORT_DRY_AFTER, claimed = 0;

		lc.s = ls;
		lc.sl = sl;
		ls->next = 1;
		ls->tries = full ? XVS_LPORT_TRIES : XVS_LPORT_DRY_TRIES;
		/* A port that looked free is claimed here; a claim lost to
		 * another CPU's goes on with the search, a bounded number of
		 * times (each loss needs a race in the port's set). */
		for (int round = 0; round < 3 && !claimed; round++) {
			ls->found = 0;
			bpf_loop(XVS_LPORT_TRIES, xvs_lport_retry, &lc, 0);
			if (!ls->found)
				break;
			claimed = xvs_lport_claim(&ls->rk, n, cfg, now);
		}
		if (!claimed) {
			if (dry && full)
				*dry += 1;
			goto no_port;
		}
	}
	if (dry && *dry)
		*dry = 0;
	p->laddr_id = ls->id;
	p->lport = ls->rk.dport;
	return 0;

no_port:
	xvs_count(XVS_CNT_FNAT_NO_PORT);
	return XDP_DROP;

no_laddr:
	xvs_count(XVS_CNT_FNAT_NO_LADDR);
	return XDP_DROP;
}

#endif
