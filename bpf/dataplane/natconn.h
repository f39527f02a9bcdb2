/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The reply side of NAT and FULLNAT flows (struct xvs_nat): opened with the
 * flow, confirmed with it, and kept in the same TCP state, so either side's
 * timeout follows the connection as IPVS's one entry does. The key is the
 * reply's 5-tuple: real server to client (NAT).
 */
#ifndef XVS_NATCONN_H
#define XVS_NATCONN_H

#include "common.h"
#include "maps.h"

static __always_inline void xvs_reply_key(struct xvs_conn_key *k, const struct xvs_pkt *p, const struct xvs_real *r)
{
	__builtin_memcpy(k->saddr, r->addr, 16);
	__builtin_memcpy(k->daddr, p->saddr, 16);
	k->sport = r->port;
	k->dport = p->sport;
	k->proto = p->proto;
	k->family = r->family;
	k->pad0[0] = 0;
	k->pad0[1] = 0;
}

/* Opens the reply side of a new flow: what its replies become and where they
 * go, which is back the way the client's packets came (their interface and
 * MACs), so a reply needs no route lookup. */
static __always_inline void xvs_nat_open(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_real *r,
					 __u8 state, __u64 now)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct xvs_conn_key rk;
	struct xvs_nat n = {};

	if ((void *)(eth + 1) > data_end)
		return;
	xvs_reply_key(&rk, p, r);
	n.last_seen = now;
	__builtin_memcpy(n.vaddr, p->daddr, 16);
	__builtin_memcpy(n.caddr, p->saddr, 16);
	n.vport = p->dport;
	n.cport = p->sport;
	n.real_id = p->real_id;
	n.svc_id = p->svc_id;
	n.ifindex = ctx->ingress_ifindex;
	__builtin_memcpy(n.cmac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(n.smac, eth->h_dest, ETH_ALEN);
	n.family = p->family;
	n.state = state;
	bpf_map_update_elem(&xvs_nat_syn, &rk, &n, BPF_ANY);
}

/* The flow was confirmed: its reply side moves to xvs_nats too. */
static __always_inline void xvs_nat_promote(const struct xvs_pkt *p, const struct xvs_real *r, __u8 state, __u64 now)
{
	struct xvs_conn_key rk;
	struct xvs_nat *n, copy;

	xvs_reply_key(&rk, p, r);
	n = bpf_map_lookup_elem(&xvs_nat_syn, &rk);
	if (!n)
		return;
	copy = *n;
	copy.state = state;
	copy.last_seen = now;
	bpf_map_update_elem(&xvs_nats, &rk, &copy, BPF_ANY);
	bpf_map_delete_elem(&xvs_nat_syn, &rk);
}

/* The client's segment changed the connection's state: the reply side's copy follows. */
static __always_inline void xvs_nat_sync(const struct xvs_pkt *p, const struct xvs_real *r, const struct xvs_conn *c,
					 __u8 state)
{
	struct xvs_conn_key rk;
	struct xvs_nat *n;

	xvs_reply_key(&rk, p, r);
	n = bpf_map_lookup_elem(&xvs_nats, &rk);
	if (!n)
		n = bpf_map_lookup_elem(&xvs_nat_syn, &rk);
	if (n && n->real_id == c->real_id)
		n->state = state;
}

#endif
