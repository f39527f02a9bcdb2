/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xvs_new_flows, the table of new flows until the client confirms them:
 * find a tuple's way, take one for a new flow, seal a way written in place,
 * free one. Every CPU reads and writes it, without locks: a way carries a
 * fold of its contents (check), and a way whose check fails is no flow, so
 * two CPUs writing one way at once, or a read while a way is written, can
 * lose a new flow (as an eviction would) but never mix two.
 */
#ifndef XVS_NEWFLOW_H
#define XVS_NEWFLOW_H

#include "common.h"
#include "maps.h"

/* The tuple's hash, for this CPU's flow copies and the new-flow sets alike:
 * tuples that differ in one byte (the clients of one /24, the ports of one
 * client) spread over every slot and set. src/maps/new-flows.ts computes it
 * too (a test holds them together). */
static __always_inline __u32 xvs_tuple_hash(const struct xvs_conn_key *k)
{
	__u32 h = xvs_fmix32(k->saddr[0] ^ k->saddr[1] ^ k->saddr[2] ^ k->saddr[3]);

	h = xvs_fmix32(h ^ ((__u32)k->sport << 16 | k->dport));
	return xvs_fmix32(h ^ k->daddr[0] ^ k->daddr[1] ^ k->daddr[2] ^ k->daddr[3] ^ k->proto);
}

static __always_inline int xvs_key_eq(const struct xvs_conn_key *x, const struct xvs_conn_key *y)
{
	const __u64 *a = (const __u64 *)x, *b = (const __u64 *)y;

	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4];
}

/* The fold a way's check holds: a multiply chain over its words, so a way
 * mixed from two flows matches neither's, and never 0. */
static __always_inline __u64 xvs_nf_fold(const struct xvs_new_flow *w)
{
	const __u64 *x = (const __u64 *)w;
	__u64 f = 0;

#pragma unroll
	for (int i = 0; i < 9; i++)
		f = (f ^ x[i]) * 0x9E3779B97F4A7C15ULL;
	return f | 1;
}

/* The set of xvs_new_flows a tuple picks, or NULL if the table is not set
 * up; its index in *idx, the tuple's hash in *h. The hash is taken after
 * the first lookup and one key variable serves both, so that nothing is
 * spilled across a call: the ICMP error program has 32 bytes of stack left
 * for a callee. */
static __always_inline struct xvs_new_flow_set *xvs_nf_set(const struct xvs_conn_key *k, __u32 *idx, __u32 *h)
{
	struct xvs_flow_ctl *ctl;

	*idx = 0;
	ctl = bpf_map_lookup_elem(&xvs_flow_cache_ctl, idx);
	if (!ctl)
		return NULL;
	*h = xvs_tuple_hash(k);
	/* The hash's high bits pick the set, so a set's tags still differ in
	 * their low bits, which also pick a CPU's copy slot. */
	*idx = (*h >> 13 | *h << 19) & ctl->new_flow_mask;
	return bpf_map_lookup_elem(&xvs_new_flows, idx);
}

/* The way of set s that holds k's flow or, with take, the way a new flow
 * of k takes (its own, else a free one, else the oldest); -1 for none. */
static __always_inline int xvs_nf_scan(const struct xvs_new_flow_set *s, const struct xvs_conn_key *k, __u32 tag,
				       __u32 now, int take)
{
	__u32 oldest = 0, age;
	int v = -1;

#pragma nounroll
	for (int i = 0; i < XVS_NEW_FLOW_WAYS; i++) {
		const struct xvs_new_flow *w = &s->way[i];

		if (s->tag[i] == tag && xvs_key_eq(&w->key, k) && w->check == xvs_nf_fold(w))
			return i;
	}
	if (!take)
		return -1;
#pragma nounroll
	for (int i = 0; i < XVS_NEW_FLOW_WAYS; i++) {
		if (!s->tag[i])
			return i;
		age = now - s->born[i];
		if (age >= oldest) {
			oldest = age;
			v = i;
		}
	}
	return v;
}

/* Where k's flow is in xvs_new_flows, set * XVS_NEW_FLOW_WAYS + way, or
 * -1. A subprogram: eight ways inlined would multiply the verifier's states
 * of every caller, and its temporaries stay off their stacks. */
XVS_SUBPROG int xvs_nf_index(const struct xvs_conn_key *k)
{
	struct xvs_new_flow_set *s;
	__u32 h, idx;
	int i;

	if (!k)
		return -1;
	s = xvs_nf_set(k, &idx, &h);
	if (!s)
		return -1;
	i = xvs_nf_scan(s, k, h | 1, 0, 0);
	return i < 0 ? -1 : (int)(idx * XVS_NEW_FLOW_WAYS) + i;
}

/* The tuple's new flow, or NULL. */
static __always_inline struct xvs_new_flow *xvs_nf_find(const struct xvs_conn_key *k)
{
	struct xvs_new_flow_set *s;
	int n = xvs_nf_index(k);
	__u32 idx;

	if (n < 0)
		return NULL;
	idx = (__u32)n / XVS_NEW_FLOW_WAYS;
	s = bpf_map_lookup_elem(&xvs_new_flows, &idx);
	return s ? &s->way[n & (XVS_NEW_FLOW_WAYS - 1)] : NULL;
}

/* After the flow's entry was written in place. */
static __always_inline void xvs_nf_seal(struct xvs_new_flow *w)
{
	w->check = xvs_nf_fold(w);
}

/*
 * A new flow takes a way of its set (c), or the flow confirmed or went and
 * its way is free (c NULL). The tag goes last: a way read while written
 * fails its check or its key, whichever CPU reads it. A subprogram, as
 * xvs_nf_index.
 */
XVS_SUBPROG int xvs_nf_put(const struct xvs_conn_key *k, const struct xvs_conn *c, __u64 now)
{
	struct xvs_new_flow_set *s;
	struct xvs_new_flow *w;
	__u32 h, idx;
	int v;

	if (!k)
		return 0;
	s = xvs_nf_set(k, &idx, &h);
	if (!s)
		return 0;
	v = xvs_nf_scan(s, k, h | 1, (__u32)now, c != NULL);
	if (v < 0)
		return 0;
	v &= XVS_NEW_FLOW_WAYS - 1;
	if (!c) {
		s->tag[v] = 0;
		return 0;
	}
	w = &s->way[v];
	w->key = *k;
	w->conn = *c;
	w->check = xvs_nf_fold(w);
	s->tag[v] = h | 1;
	s->born[v] = (__u32)now;
	return 1;
}

#endif
