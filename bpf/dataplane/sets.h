/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flow tables of our own, in place of the kernel's LRU hash where a
 * flood makes every insert evict: xvs_new_flows (new flows until the client
 * confirms them) and xvs_new_replies (their NAT and FULLNAT reply sides).
 * A table is an array of sets and an array of their heads, by the same
 * index; a tuple's hash picks it. A head is one cache line: each way's tag
 * (the hash | 1; 0 a free way, XVS_SET_CLAIMED one being taken) and when
 * it was taken, so a tuple that is not there costs that line, from an
 * array a tenth of the sets' size. A set is its XVS_SET_WAYS ways, each a
 * key, a value and a fold of the two (check): a new flow only stores
 * there. The functions are generic over a way's size, a constant wherever
 * they are inlined.
 *
 * Every CPU reads and writes the sets without a lock: a way whose check
 * fails is no flow, so two CPUs writing one way at once, or a read while
 * it is written, lose a flow (as an eviction would) but never mix two. A
 * FULLNAT local port is claimed (xvs_nr_put): the way is taken with a
 * compare-and-swap of its tag, and a claim that sees another claim under
 * way in its set, or a live holder of its tuple, gives up, so two CPUs
 * never both hold one tuple.
 */
#ifndef XVS_SETS_H
#define XVS_SETS_H

#include "common.h"
#include "maps.h"

/* The tuple's hash, for the sets: tuples that differ in one byte (the
 * clients of one /24, the ports of one client) spread over every set, and
 * the tags of one set differ in their low bits. src/maps/set-table.ts
 * computes it too (a test holds them together). */
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

/* Way i of a set whose ways are `size` bytes (its key first, its check last). */
static __always_inline void *xvs_way(void *set, __u32 i, __u32 size)
{
	return set + (i & (XVS_SET_WAYS - 1)) * size;
}

/* The fold a way's check holds: a multiply chain over its key and value,
 * so a way mixed from two flows matches neither's, and never 0. */
static __always_inline __u64 xvs_way_fold(const void *w, __u32 size)
{
	const __u64 *x = w;
	__u64 f = 0;

#pragma unroll
	for (__u32 i = 0; i < size / 8 - 1; i++)
		f = (f ^ x[i]) * 0x9E3779B97F4A7C15ULL;
	return f | 1;
}

static __always_inline __u64 *xvs_way_check(void *w, __u32 size)
{
	return w + size - 8;
}

/* The head in `heads` of the set a tuple picks (NULL if the table is not
 * set up), its index in *idx, the tuple's hash in *h; `reply` picks the
 * mask. The hash is taken after the first lookup and one key variable
 * serves both, so nothing is spilled across a call: the ICMP error program
 * has 32 bytes of stack left for a callee. */
static __always_inline struct xvs_set_head *xvs_head_of(void *heads, int reply, const struct xvs_conn_key *k,
							 __u32 *idx, __u32 *h)
{
	struct xvs_flow_ctl *ctl;

	*idx = 0;
	ctl = bpf_map_lookup_elem(&xvs_flow_cache_ctl, idx);
	if (!ctl)
		return NULL;
	*h = xvs_tuple_hash(k);
	/* The hash's high bits pick the set, so a set's tags still differ in
	 * their low bits. */
	*idx = (*h >> 13 | *h << 19) & (reply ? ctl->new_reply_mask : ctl->new_flow_mask);
	return bpf_map_lookup_elem(heads, idx);
}

/* The way of the set with head hd and ways s that holds k or, with take,
 * the way a new k takes (its own, else a free one, else the oldest not
 * being claimed); -1 for none. Only a way whose tag is k's is read. */
static __always_inline int xvs_set_scan(struct xvs_set_head *hd, void *s, __u32 size, const struct xvs_conn_key *k,
					__u32 tag, __u32 now, int take)
{
	__u32 *tags = hd->tag, *born = hd->born, oldest = 0, age;
	int v = -1;

#pragma nounroll
	for (int i = 0; i < XVS_SET_WAYS; i++) {
		void *w = xvs_way(s, i, size);

		if (tags[i] != tag || !xvs_key_eq(w, k))
			continue;
		/* The fold reads the way again rather than keep the key's words
		 * from the compare, which would spill them: the stack is short. */
		asm volatile("" ::: "memory");
		if (*xvs_way_check(w, size) == xvs_way_fold(w, size))
			return i;
	}
	if (!take)
		return -1;
#pragma nounroll
	for (int i = 0; i < XVS_SET_WAYS; i++) {
		if (!tags[i])
			return i;
		if (tags[i] == XVS_SET_CLAIMED)
			continue; /* another CPU's claim is writing it */
		age = now - born[i];
		if (age >= oldest) {
			oldest = age;
			v = i;
		}
	}
	return v;
}

/* The way at n (set * XVS_SET_WAYS + way, as xvs_set_index gives it) of
 * `map`, or NULL for n < 0. */
static __always_inline void *xvs_way_at(void *map, int n, __u32 size)
{
	__u32 idx;
	void *s;

	if (n < 0)
		return NULL;
	idx = (__u32)n / XVS_SET_WAYS;
	s = bpf_map_lookup_elem(map, &idx);
	return s ? xvs_way(s, n, size) : NULL;
}

/* After a way's value was written in place. */
static __always_inline void xvs_way_seal(void *w, __u32 size)
{
	*xvs_way_check(w, size) = xvs_way_fold(w, size);
}

/* Copies 8-byte words: a memcpy through void * would go byte by byte. */
static __always_inline void xvs_copy64(void *dst, const void *src, __u32 bytes)
{
	const __u64 *s = src;
	__u64 *d = dst;

#pragma unroll
	for (__u32 i = 0; i < bytes / 8; i++)
		d[i] = s[i];
}

/* Writes way v of the set with head hd and ways s for k (the tag last)
 * or, value NULL, frees it. */
static __always_inline void xvs_way_write(struct xvs_set_head *hd, void *s, __u32 size, int v,
					  const struct xvs_conn_key *k, const void *value, __u32 tag, __u32 now)
{
	__u32 *tags = hd->tag, *born = hd->born;
	void *w;

	v &= XVS_SET_WAYS - 1;
	if (!value) {
		tags[v] = 0;
		return;
	}
	w = xvs_way(s, v, size);
	xvs_copy64(w, k, sizeof(*k));
	xvs_copy64(w + sizeof(*k), value, size - sizeof(*k) - 8);
	*xvs_way_check(w, size) = xvs_way_fold(w, size);
	born[v] = now;
	asm volatile("" ::: "memory"); /* the tag after the way */
	tags[v] = tag;
}

/* The way of `map` (heads in `heads`) a k taken at `now` takes (take) or
 * holds, set * XVS_SET_WAYS + way, -1 for none; the tuple's hash | 1 in
 * *tag. The caller looks its set and head up again from the index: a
 * pointer passed back would take a stack slot the FULLNAT claim's chain
 * of frames has not got. */
static __always_inline int xvs_set_pick(void *map, void *heads, int reply, __u32 size, const struct xvs_conn_key *k,
					__u32 now, int take, __u32 *tag)
{
	struct xvs_set_head *hd;
	void *s;
	__u32 h, idx;
	int i;

	if (!k)
		return -1;
	hd = xvs_head_of(heads, reply, k, &idx, &h);
	if (!hd)
		return -1;
	s = bpf_map_lookup_elem(map, &idx);
	if (!s)
		return -1;
	*tag = h | 1;
	i = xvs_set_scan(hd, s, size, k, *tag, now, take);
	return i < 0 ? -1 : (int)(idx * XVS_SET_WAYS) + i;
}

/* Where k is in `map` (heads in `heads`), set * XVS_SET_WAYS + way, or -1. */
static __always_inline int xvs_set_index(void *map, void *heads, int reply, __u32 size, const struct xvs_conn_key *k)
{
	__u32 tag;

	return xvs_set_pick(map, heads, reply, size, k, 0, 0, &tag);
}

/* The head and the ways of the set that index n (as xvs_set_pick gives it)
 * is in: 1, or 0 for none. */
static __always_inline int xvs_set_at(void *map, void *heads, int n, struct xvs_set_head **hd, void **s)
{
	__u32 idx = (__u32)n / XVS_SET_WAYS;

	*hd = bpf_map_lookup_elem(heads, &idx);
	*s = bpf_map_lookup_elem(map, &idx);
	return n >= 0 && *hd && *s;
}

/* Where k's new flow is in xvs_new_flows, set * XVS_SET_WAYS + way, or -1.
 * A subprogram: eight ways inlined would multiply the verifier's states of
 * every caller, and its temporaries stay off their stacks. */
XVS_SUBPROG int xvs_nf_index(const struct xvs_conn_key *k)
{
	return xvs_set_index(&xvs_new_flows, &xvs_new_flow_heads, 0, sizeof(struct xvs_new_flow), k);
}

/* The tuple's new flow, or NULL. */
static __always_inline struct xvs_new_flow *xvs_nf_find(const struct xvs_conn_key *k)
{
	return xvs_way_at(&xvs_new_flows, xvs_nf_index(k), sizeof(struct xvs_new_flow));
}

/* A new flow takes a way of its set (c, taken at c->last_seen), or the
 * flow confirmed or went and its way is free (c NULL). A subprogram, as
 * xvs_nf_index; few arguments, so that none is spilled across its lookups. */
XVS_SUBPROG int xvs_nf_put(const struct xvs_conn_key *k, const struct xvs_conn *c)
{
	__u32 tag, now = c ? c->last_seen : 0;
	struct xvs_set_head *hd;
	void *s;
	int v = xvs_set_pick(&xvs_new_flows, &xvs_new_flow_heads, 0, sizeof(struct xvs_new_flow), k, now, c != NULL, &tag);

	if (!xvs_set_at(&xvs_new_flows, &xvs_new_flow_heads, v, &hd, &s))
		return 0;
	xvs_way_write(hd, s, sizeof(struct xvs_new_flow), v, k, c, tag, now);
	return 1;
}

/* Where a reply side of a new NAT or FULLNAT flow is in xvs_new_replies,
 * set * XVS_SET_WAYS + way, or -1 (as xvs_nf_index). */
XVS_SUBPROG int xvs_nr_index(const struct xvs_conn_key *k)
{
	return xvs_set_index(&xvs_new_replies, &xvs_new_reply_heads, 1, sizeof(struct xvs_new_reply), k);
}

/* The reply side of a new flow by its reply's tuple, or NULL. */
static __always_inline struct xvs_new_reply *xvs_nr_find(const struct xvs_conn_key *k)
{
	return xvs_way_at(&xvs_new_replies, xvs_nr_index(k), sizeof(struct xvs_new_reply));
}

/*
 * A new flow's reply side n takes a way of its set (taken at
 * n->last_seen), 1 when it did. With cfg (a FULLNAT local port's claim),
 * only if no live reply side holds its tuple and no other claim is under
 * way in the set: the way is taken with a compare-and-swap of its tag, then
 * the set is looked at again, so of two CPUs claiming one tuple at most one
 * holds it (both may give up: each then tries another port). Without (NAT,
 * whose reply's tuple is the client's own), a live holder is the same
 * flow's: replaced. n NULL: frees k's way.
 */
XVS_SUBPROG int xvs_nr_put(const struct xvs_conn_key *k, const struct xvs_nat *n, const struct xvs_config *cfg)
{
	const __u32 size = sizeof(struct xvs_new_reply);
	struct xvs_set_head *hd;
	struct xvs_new_reply *w;
	__u32 tag, *tags, old;
	void *s;
	int v = xvs_set_pick(&xvs_new_replies, &xvs_new_reply_heads, 1, size, k, n ? n->last_seen : 0, n != NULL, &tag);

	if (!xvs_set_at(&xvs_new_replies, &xvs_new_reply_heads, v, &hd, &s))
		return 0;
	tags = hd->tag;
	v &= XVS_SET_WAYS - 1;
	if (n && cfg) {
		w = xvs_way(s, v, size);
		old = tags[v];
		/* The scan gives the tuple's own way first: held while live. */
		if (old == XVS_SET_CLAIMED ||
		    (old == tag && xvs_key_eq(&w->key, k) && xvs_fresh(cfg, w->nat.last_seen, n->last_seen, w->nat.state)))
			return 0;
		if (__sync_val_compare_and_swap(&tags[v], old, XVS_SET_CLAIMED) != old)
			return 0;
		/* Another claim under way in the set, or another way with the
		 * tuple's tag (the tag alone: a stranger sharing it costs a port
		 * try, no more): give the way back. */
#pragma nounroll
		for (int i = 0; i < XVS_SET_WAYS; i++) {
			if (i != v && (tags[i] == XVS_SET_CLAIMED || tags[i] == tag)) {
				tags[v] = 0;
				return 0;
			}
		}
	}
	xvs_way_write(hd, s, size, v, k, n, tag, n ? n->last_seen : 0);
	return 1;
}

#endif
