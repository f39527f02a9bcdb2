/* SPDX-License-Identifier: GPL-2.0 */
/*
 * FULLNAT's local ports. The reply tables are the allocator: a port of a
 * (local address, RIP:rport) is in use while a reply side holds the reply's
 * tuple, in xvs_new_replies (a new flow) or xvs_nats (a confirmed one). A
 * new flow claims a tuple in xvs_new_replies (xvs_nr_put, which settles
 * races across CPUs), then looks in xvs_nats once: a flow is confirmed into
 * xvs_nats before it leaves xvs_new_replies, so no holder slips between
 * the two.
 *
 * The first try claims at once: while ports are plentiful it succeeds, and
 * a look before it would cost every new flow a lookup. The retries (a
 * bpf_loop callback, so the verifier checks one try, not XVS_LPORT_TRIES)
 * look for a live holder in both tables and stop at a port that looks
 * free, which the opener claims (xvs_fnat_open).
 */
#ifndef XVS_LPORT_H
#define XVS_LPORT_H

#include "common.h"
#include "maps.h"
#include "sched.h"
#include "sets.h"

/* Odd and prime, so coprime with 64512 = 2^10 * 3^2 * 7: the tries of one
 * flow are distinct ports. */
#define XVS_LPORT_STEP 7919U

/* Whether a live (unexpired) reply side in `map` holds `rk`. */
static __always_inline int xvs_lport_held(void *map, const struct xvs_conn_key *rk, const struct xvs_config *cfg, __u64 now)
{
	struct xvs_nat *e = bpf_map_lookup_elem(map, rk);

	return e && xvs_fresh(cfg, e->last_seen, now, e->state);
}

/* Whether a confirmed flow's reply side holds `rk` (its port is in use). An
 * expired one is removed: its port is free again. */
static __always_inline int xvs_lport_confirmed(const struct xvs_conn_key *rk, const struct xvs_config *cfg, __u64 now)
{
	struct xvs_nat *e = bpf_map_lookup_elem(&xvs_nats, rk);

	if (e) {
		if (xvs_fresh(cfg, e->last_seen, now, e->state))
			return 1;
		bpf_map_delete_elem(&xvs_nats, rk);
	}
	return 0;
}

/* Claims `rk` for the new flow's reply side `n`: 1 when the port is now
 * the flow's, 0 (nothing left behind) when a live flow holds it. */
static __always_inline int xvs_lport_claim(const struct xvs_conn_key *rk, struct xvs_nat *n,
					   const struct xvs_config *cfg, __u64 now)
{
	if (!xvs_nr_put(rk, n, cfg))
		return 0;
	if (xvs_lport_confirmed(rk, cfg, now)) {
		xvs_nr_put(rk, NULL, NULL);
		return 0;
	}
	return 1;
}

/* Try k's port (network order): from the flow's random offset, a step
 * further each try. */
static __always_inline __be16 xvs_lport_nth(__u32 offset, __u32 k)
{
	return bpf_htons(XVS_LPORT_MIN + (offset + k * XVS_LPORT_STEP) % (65536 - XVS_LPORT_MIN));
}

/* bpf_loop's context, on the opener's stack: the search and the pointers
 * it needs. */
struct xvs_lport_ctx {
	struct xvs_lport_search *s;
	const struct xvs_svc_laddrs *sl; /* the service's pool */
};

/* The next try (s->next): the next local address of the real server's
 * family (so that one address whose ports are taken does not refuse flows
 * another could carry) and the next port. Returns 1 (stop) at a port no
 * live flow holds, which the opener then claims (a claim from here would
 * put a fifth frame on a chain at 496 of the 512 bytes of stack), or once
 * the tries are spent. */
static long xvs_lport_retry(__u32 i, struct xvs_lport_ctx *c)
{
	struct xvs_lport_search *s = c->s;
	const struct xvs_svc_laddrs *sl = c->sl;
	__u32 k = s->next++, count = sl->count, idx = 0;
	const struct xvs_config *cfg = bpf_map_lookup_elem(&xvs_config, &idx);
	struct xvs_new_reply *w;

	if (k >= s->tries || !cfg)
		return 1;

	if (count > 1) {
		struct xvs_laddr *next;
		__u32 nid;

		idx = (s->start + k) % count;
		/* The verifier cannot see that a remainder is below its divisor. */
		asm volatile("" : "+r"(idx));
		if (idx < XVS_SVC_LADDRS_MAX) {
			nid = sl->ids[idx];
			next = bpf_map_lookup_elem(&xvs_laddrs, &nid);
			if (next && next->family == s->rk.family) {
				__builtin_memcpy(s->rk.daddr, next->addr, 16);
				s->id = nid;
			}
		}
	}
	s->rk.dport = xvs_lport_nth(s->offset, k);
	if (xvs_lport_held(&xvs_nats, &s->rk, cfg, s->now))
		return 0;
	w = xvs_nr_find(&s->rk);
	if (w && xvs_fresh(cfg, w->nat.last_seen, s->now, w->nat.state))
		return 0;
	s->found = 1;
	return 1;
}

#endif
