/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pins flows to real servers. Confirmed flows live in xvs_conns, new ones in
 * xvs_new_flows (sets.h) until the client confirms them (its ACK, a second datagram),
 * so a flood of new flows cannot evict a confirmed one. An established
 * packet costs one lookup and no service lookup. NAT and FULLNAT flows have
 * a reply side too (nat.h), opened, confirmed and kept in step here.
 */
#ifndef XVS_FLOW_H
#define XVS_FLOW_H

#include "common.h"
#include "maps.h"
#include "icmp.h"
#include "sched.h"
#include "tcpstate.h"
#include "natconn.h"
#include "sets.h"

/* Called where a packet is handed to its real server, and nowhere else: an
 * answer the director makes itself (ICMP) is not traffic to the real. */
static __always_inline void xvs_account(const struct xvs_pkt *p)
{
	__u32 id = p->svc_id;
	struct xvs_stats *s = bpf_map_lookup_elem(&xvs_svc_stats, &id);

	if (s) {
		s->conns += p->is_new;
		s->inpkts += 1;
		s->inbytes += p->ip_len;
	}
	id = p->real_id;
	s = bpf_map_lookup_elem(&xvs_real_stats, &id);
	if (s) {
		s->conns += p->is_new;
		s->inpkts += 1;
		s->inbytes += p->ip_len;
	}
}

/* A closing state: a SYN there starts a new connection on the old tuple. */
static __always_inline int xvs_closing(__u8 state)
{
	return state == XVS_CS_CLOSE || state == XVS_CS_FIN_WAIT || state == XVS_CS_TIME_WAIT ||
	       state == XVS_CS_CLOSE_WAIT || state == XVS_CS_LAST_ACK;
}

enum {
	XVS_HIT = 0,        /* forward on the entry's real server */
	XVS_MISS = 1,       /* no usable entry: look further */
	XVS_RESCHEDULE = 2, /* a new connection on a reused tuple: drop the entry, schedule afresh */
};

/*
 * A SYN on an entry starts a new connection when the old one is closing
 * (the client reuses its port) or its real server can take no new one
 * (deleted or quiesced): IPVS's conn_reuse_mode. Any other packet stays
 * with its real server, deleted or not, until the entry expires.
 */
static __always_inline int xvs_entry(const struct xvs_conn *c, const struct xvs_config *cfg, __u64 now, int syn,
				     struct xvs_real **rp)
{
	__u32 id = c->real_id;
	struct xvs_real *r;

	if (!xvs_fresh(cfg, c->last_seen, now, c->state))
		return XVS_MISS;
	r = bpf_map_lookup_elem(&xvs_reals, &id);
	if (!r || r->gen != c->real_gen)
		return XVS_MISS; /* the slot went to another real server */
	if (syn && (xvs_closing(c->state) || !xvs_real_takes_new(r, c->real_gen, c->svc_id)))
		return XVS_RESCHEDULE;
	*rp = r;
	return XVS_HIT;
}

/* This packet belongs to the entry's flow: whose it is, and (FULLNAT)
 * whether it is to carry the client's address to the real server. */
static __always_inline void xvs_follow(struct xvs_conn *c, struct xvs_pkt *p, const struct xvs_real *r)
{
	p->svc_id = c->svc_id;
	p->real_id = c->real_id;
	p->laddr_id = c->laddr_id;
	p->lport = c->lport;
	if (r->fwd == XVS_FWD_FULLNAT && p->proto == IPPROTO_TCP && (p->tcp_flags & XVS_TCP_ACK) &&
	    !(p->tcp_flags & (XVS_TCP_SYN | XVS_TCP_RST)) && !(c->flags & XVS_CONN_F_TOA_DONE)) {
		p->toa = 1;
		if (p->payload)
			c->flags |= XVS_CONN_F_TOA_DONE;
	}
}

/* The table a client's segment follows: the input table when the director
 * sees the replies too, the input-only one otherwise. */
static __always_inline int xvs_in_dir(const struct xvs_real *r)
{
	return r->fwd == XVS_FWD_NAT || r->fwd == XVS_FWD_FULLNAT ? XVS_DIR_IN : XVS_DIR_IN_ONLY;
}

/* A client's segment moves the connection's state; a NAT flow's reply side
 * follows (its own lookup, paid on state changes only). */
static __always_inline void xvs_conn_state(struct xvs_conn *c, const struct xvs_pkt *p, const struct xvs_real *r)
{
	__u8 ns;

	if (p->proto != IPPROTO_TCP)
		return;
	ns = xvs_tcp_state(c->state, p->tcp_flags, xvs_in_dir(r));
	if (ns == c->state)
		return;
	c->state = ns;
	if (xvs_in_dir(r) == XVS_DIR_IN)
		xvs_nat_sync(p, ns);
}

/* Refreshes a confirmed flow: its clock (and its persistence template) at
 * most once a second, so a steady flow dirties its entry's cache line rarely. */
static __always_inline void xvs_touch(struct xvs_conn *c, const struct xvs_pkt *p, const struct xvs_config *cfg, __u64 now)
{
	if (now - c->last_seen >= cfg->hz) {
		c->last_seen = now;
		if (c->flags & XVS_CONN_F_PERSIST) {
			struct xvs_svc *svc = xvs_service(p, cfg);
			__u32 rid;

			if (svc)
				xvs_persist_pick(p, svc, cfg, now, &rid);
		}
	}
}

/* A TCP segment of no known flow. For hash schedulers the table names the
 * real server that owns it (IPVS's sloppy_tcp, Katran's way): forward it
 * there without an entry. For the others there is no telling: drop it, so
 * the director's own stack, which owns the VIP, never answers it with RST.
 * A NAT real server without its reply side is no use either: drop. */
static __always_inline int xvs_stray(struct xvs_pkt *p, const struct xvs_svc *svc, struct xvs_real **rp)
{
	struct xvs_real *r;
	__u32 rid;

	if (svc->lookup != XVS_LOOKUP_SEQ && xvs_schedule(p, svc, &rid) == 0) {
		r = bpf_map_lookup_elem(&xvs_reals, &rid);
		if (r && r->svc_id == svc->id && !(r->flags & XVS_REAL_F_REMOVED) && xvs_in_dir(r) == XVS_DIR_IN_ONLY) {
			xvs_count(XVS_CNT_SLOPPY);
			p->real_id = rid;
			*rp = r;
			return XVS_CONTINUE;
		}
	}
	xvs_count(XVS_CNT_DROP_NO_CONN);
	return XDP_DROP;
}

/* A packet of a new flow: its entry for xvs_new_flows. */
static __always_inline void xvs_new_entry(struct xvs_conn *nc, const struct xvs_pkt *p, const struct xvs_svc *svc,
					  const struct xvs_real *r, __u32 rid, __u64 now)
{
	__builtin_memset(nc, 0, sizeof(*nc));
	nc->last_seen = now;
	nc->real_id = rid;
	nc->real_gen = r->gen;
	nc->svc_id = svc->id;
	nc->state = p->proto == IPPROTO_TCP ? xvs_tcp_state(XVS_CS_NONE, p->tcp_flags, xvs_in_dir(r)) : XVS_CS_UDP;
	nc->flags = svc->flags & XVS_SVC_F_PERSISTENT ? XVS_CONN_F_PERSIST : 0;
}

/* Moves a new flow the client has confirmed (its ACK, or a second datagram)
 * to xvs_conns, where a flood of new flows cannot reach it; its reply side
 * goes along. */
static __always_inline void xvs_promote(struct xvs_conn *c, const struct xvs_pkt *p, const struct xvs_real *r, __u64 now)
{
	struct xvs_conn nc = *c;

	nc.state = p->proto == IPPROTO_TCP ? xvs_tcp_state(c->state, p->tcp_flags, xvs_in_dir(r)) : XVS_CS_UDP;
	nc.last_seen = now;
	bpf_map_update_elem(&xvs_conns, &p->key, &nc, BPF_ANY);
	xvs_nf_put(&p->key, NULL);
	if (xvs_in_dir(r) == XVS_DIR_IN)
		xvs_nat_promote(p, nc.state);
	xvs_count(XVS_CNT_PROMOTED);
}

#define XVS_FLOW_CACHE_BITS 12
_Static_assert(1 << XVS_FLOW_CACHE_BITS == XVS_FLOW_CACHE_SLOTS, "XVS_FLOW_CACHE_BITS");

/* This CPU's slot for a tuple in xvs_flow_cache or xvs_reply_cache (an
 * index past the slices the control plane sized finds none): the top bits
 * of one 64-bit multiply (Fibonacci hashing) of the tuple folded to 64
 * bits, its halves mixed first so that the client's address reaches them.
 * The clients of one /24, the ports of one client, fall on the slots as at
 * random. One multiply where xvs_tuple_hash chains six, on every
 * established packet (0.1-0.2x of the floor): a slot needs spread, not the
 * sets' resistance, as two flows on one slot cost a copy, never a flow. */
static __always_inline __u32 xvs_cache_index(const struct xvs_conn_key *k)
{
	__u32 a = k->saddr[0] ^ k->saddr[1] ^ k->saddr[2] ^ k->saddr[3];
	__u32 d = k->daddr[0] ^ k->daddr[1] ^ k->daddr[2] ^ k->daddr[3] ^ k->proto;
	__u64 x = (__u64)(a ^ (d << 16 | d >> 16)) << 32 | ((__u32)k->sport << 16 | k->dport);

	x ^= x >> 32;
	return bpf_get_smp_processor_id() * XVS_FLOW_CACHE_SLOTS +
	       (__u32)((x * 0x9E3779B97F4A7C15ULL) >> (64 - XVS_FLOW_CACHE_BITS));
}

static __always_inline struct xvs_flow_ctl *xvs_flow_ctl(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&xvs_flow_cache_ctl, &zero);
}

/* The copies' generation now (xvs_flow_ctl.cache_gen). */
static __always_inline __u32 xvs_cache_gen(void)
{
	struct xvs_flow_ctl *ctl = xvs_flow_ctl();

	return ctl ? ctl->cache_gen : 0;
}

/* Retires every CPU's copies at once (a SYN dropped a confirmed entry). */
static __always_inline void xvs_cache_retire(void)
{
	struct xvs_flow_ctl *ctl = xvs_flow_ctl();

	if (ctl)
		__sync_fetch_and_add(&ctl->cache_gen, 1);
}

/* A state a copy of xvs_conns or xvs_nats may hold: one in which a packet
 * without SYN, FIN or RST changes nothing. */
static __always_inline int xvs_copyable_state(__u8 state)
{
	return state == XVS_CS_ESTABLISHED || state == XVS_CS_UDP;
}

/* A packet a copy may forward: one that cannot move an established
 * connection's state (no SYN, FIN or RST), or a datagram. */
static __always_inline int xvs_cacheable(const struct xvs_pkt *p)
{
	return p->proto != IPPROTO_TCP || !(p->tcp_flags & (XVS_TCP_SYN | XVS_TCP_FIN | XVS_TCP_RST));
}

/* The slot's copy, if it is this flow's, of this generation, taken less
 * than a second ago, of an entry ESTABLISHED (or UDP) and refreshed less
 * than a second ago, so the entry needs no refresh yet. Its real server,
 * checked as the entry's would be (XVS_HIT), else XVS_MISS. */
static __always_inline int xvs_cached(const struct xvs_flow_cached *fc, struct xvs_pkt *p, const struct xvs_config *cfg,
				      __u64 now, __u32 gen, struct xvs_real **rp)
{
	if (!xvs_key_eq(&p->key, &fc->key) || fc->gen != gen || now - fc->copied >= cfg->hz)
		return XVS_MISS;
	if (!xvs_copyable_state(fc->conn.state) || now - fc->conn.last_seen >= cfg->hz)
		return XVS_MISS;
	if (xvs_entry(&fc->conn, cfg, now, 0, rp) != XVS_HIT)
		return XVS_MISS;
	p->svc_id = fc->conn.svc_id;
	p->real_id = fc->conn.real_id;
	p->laddr_id = fc->conn.laddr_id;
	p->lport = fc->conn.lport;
	return XVS_HIT;
}

static __always_inline void xvs_cache_copy(struct xvs_flow_cached *fc, const struct xvs_pkt *p,
					   const struct xvs_conn *c, __u32 gen, __u64 now)
{
	fc->key = p->key;
	fc->conn = *c;
	fc->gen = gen;
	fc->copied = now;
}

/* After the entry forwarded the packet: a copy of it while it is
 * established (and, FULLNAT, has carried the client's address), else the
 * slot no longer counts (a copy would miss what this packet changed). */
static __always_inline void xvs_cache_fill(struct xvs_flow_cached *fc, const struct xvs_pkt *p,
					   const struct xvs_conn *c, const struct xvs_real *r, __u32 gen, __u64 now)
{
	if (xvs_cacheable(p) && xvs_copyable_state(c->state) &&
	    (r->fwd != XVS_FWD_FULLNAT || (c->flags & XVS_CONN_F_TOA_DONE)))
		xvs_cache_copy(fc, p, c, gen, now);
	else
		fc->copied = 0;
}

/* A new flow: a copy of an older flow on its tuple (whose entry went
 * without a FIN or RST passing here) must not take its packets, so the
 * slot stops counting, whoever's copy it holds. A store and no load: a
 * new flow's slot is a cold line, and the program waits for a load of it
 * (to compare its key first), not for a store (DR new flow 9.1-9.7 ->
 * 7.5-7.7x of the floor when the load went). */
static __always_inline void xvs_cache_new(const struct xvs_pkt *p)
{
	__u32 idx = xvs_cache_index(&p->key);
	struct xvs_flow_cached *fc = bpf_map_lookup_elem(&xvs_flow_cache, &idx);

	if (fc)
		fc->copied = 0;
}

/* An entry of xvs_conns that this packet may follow: its flow's real server
 * (XVS_HIT), or the entry went (a new connection on its tuple) or was not
 * usable (XVS_MISS). A packet other than a SYN looks at this CPU's copy
 * first. */
static __always_inline int xvs_confirmed(struct xvs_pkt *p, const struct xvs_config *cfg, __u64 now, int syn,
					 struct xvs_real **rp)
{
	struct xvs_flow_cached *fc = NULL;
	struct xvs_conn *c;
	__u32 gen = 0, idx;
	int rc;

	if (!syn) {
		gen = xvs_cache_gen();
		idx = xvs_cache_index(&p->key);
		fc = bpf_map_lookup_elem(&xvs_flow_cache, &idx);
		if (fc && xvs_cacheable(p) && xvs_cached(fc, p, cfg, now, gen, rp) == XVS_HIT) {
			xvs_count(XVS_CNT_FLOW_CACHED);
			return XVS_HIT;
		}
	}
	c = bpf_map_lookup_elem(&xvs_conns, &p->key);
	if (!c)
		return XVS_MISS;
	rc = xvs_entry(c, cfg, now, syn, rp);
	if (rc == XVS_HIT) {
		xvs_follow(c, p, *rp);
		xvs_conn_state(c, p, *rp);
		xvs_touch(c, p, cfg, now);
		if (fc)
			xvs_cache_fill(fc, p, c, *rp, gen, now);
		return XVS_HIT;
	}
	if (rc == XVS_RESCHEDULE) {
		bpf_map_delete_elem(&xvs_conns, &p->key);
		xvs_cache_retire();
	}
	return XVS_MISS;
}

/*
 * Everything but an established packet's one lookup and a retransmitted
 * SYN's: a new flow waiting for its confirmation, a SYN on a confirmed
 * flow, a packet of no flow, and a new flow. A SYN's look in xvs_new_flows
 * was xvs_flow's, so only another packet looks there. Records the flow in p
 * (real server included) and returns XVS_CONTINUE, or the packet's
 * verdict. A subprogram (see XVS_SUBPROG): the new-flow path's temporaries
 * stay off the established path's stack.
 */
XVS_SUBPROG int xvs_flow_more(struct xdp_md *ctx, struct xvs_pkt *p)
{
	struct xvs_conn nc;
	struct xvs_conn *c = NULL;
	struct xvs_new_flow *w = NULL;
	struct xvs_svc *svc;
	struct xvs_real *r = NULL;
	struct xvs_config *cfg;
	__u64 now = bpf_jiffies64();
	__u32 zero = 0, rid;
	int tcp, syn;

	cfg = bpf_map_lookup_elem(&xvs_config, &zero);
	if (!p || !cfg)
		return XDP_DROP;
	tcp = p->proto == IPPROTO_TCP;
	syn = tcp && (p->tcp_flags & (XVS_TCP_SYN | XVS_TCP_ACK | XVS_TCP_RST)) == XVS_TCP_SYN;

	if (!syn && (w = xvs_nf_find(&p->key)))
		c = &w->conn;
	if (c && xvs_entry(c, cfg, now, 0, &r) == XVS_HIT) {
		xvs_follow(c, p, r);
		if (!tcp || ((p->tcp_flags & XVS_TCP_ACK) && !(p->tcp_flags & (XVS_TCP_SYN | XVS_TCP_RST)))) {
			xvs_promote(c, p, r, now);
		} else {
			xvs_conn_state(c, p, r);
			xvs_way_seal(w, sizeof(*w));
		}
		return XVS_CONTINUE;
	}

	/* A SYN on a confirmed flow: the same connection, or a new one on its tuple. */
	if (syn && xvs_confirmed(p, cfg, now, 1, &r) == XVS_HIT)
		return XVS_CONTINUE;

	svc = xvs_service(p, cfg);
	if (!svc) {
		xvs_count(XVS_CNT_PASS_NO_SVC);
		return XDP_PASS;
	}
	p->svc_id = svc->id;
	if (tcp && !syn)
		return xvs_stray(p, svc, &r);

	r = xvs_pick(p, svc, cfg, now, &rid);
	if (!r) {
		xvs_count(XVS_CNT_NO_REAL);
		return xvs_icmp_port_unreach(ctx, p);
	}
	xvs_new_entry(&nc, p, svc, r, rid, now);
	p->real_id = rid;
	if (r->fwd == XVS_FWD_FULLNAT) {
		int verdict = xvs_fnat_open(ctx, p, nc.state);

		if (verdict)
			return verdict;
		nc.laddr_id = p->laddr_id;
		nc.lport = p->lport;
	} else if (r->fwd == XVS_FWD_NAT) {
		xvs_nat_open(ctx, p, nc.state);
	}
	/* One-packet scheduling: no entry, so the next datagram is scheduled
	 * afresh (a NAT reply side still opens, for the answer). */
	if (tcp || !(svc->flags & XVS_SVC_F_OPS))
		xvs_nf_put(&p->key, &nc);
	xvs_cache_new(p);
	p->is_new = 1;
	return XVS_CONTINUE;
}

/*
 * Finds or creates the flow and records it in p (service, real server, new
 * or not). Returns XVS_CONTINUE with *rp set, or the packet's verdict. A
 * packet other than a SYN looks at this CPU's copy, then in xvs_conns: an
 * established packet costs one of those and no service lookup, inline. A
 * SYN looks in xvs_new_flows, and a retransmission costs that look: not at
 * a copy first, whose slot a new flow would pay for as a cold load (see
 * xvs_cache_new).
 */
static __always_inline int xvs_flow(struct xdp_md *ctx, struct xvs_pkt *p, const struct xvs_config *cfg,
				    struct xvs_real **rp)
{
	int syn = p->proto == IPPROTO_TCP &&
		  (p->tcp_flags & (XVS_TCP_SYN | XVS_TCP_ACK | XVS_TCP_RST)) == XVS_TCP_SYN;
	__u64 now = bpf_jiffies64();
	struct xvs_new_flow *w;
	__u32 id;
	int rc;

	if (syn) {
		w = xvs_nf_find(&p->key);
		if (w && xvs_entry(&w->conn, cfg, now, 1, rp) == XVS_HIT) {
			xvs_follow(&w->conn, p, *rp);
			return XVS_CONTINUE;
		}
	} else if (xvs_confirmed(p, cfg, now, 0, rp) == XVS_HIT) {
		return XVS_CONTINUE;
	}
	rc = xvs_flow_more(ctx, p);
	if (rc != XVS_CONTINUE)
		return rc;
	id = p->real_id;
	*rp = bpf_map_lookup_elem(&xvs_reals, &id);
	return *rp ? XVS_CONTINUE : XDP_DROP;
}

#endif
