/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pins flows to real servers. A packet first meets xvs_conns (confirmed
 * flows): an established flow costs that one lookup and no service lookup.
 * Otherwise the service, then xvs_syn_conns (new flows until the client
 * confirms them), then the service's scheduler for a new flow.
 */
#ifndef XVS_FLOW_H
#define XVS_FLOW_H

#include "common.h"
#include "maps.h"
#include "icmp.h"

static __always_inline __u32 xvs_hash32(__be32 addr)
{
	/* Knuth's multiplicative hash, as IPVS sh/dh use: deterministic, so two
	 * directors with the same table agree. */
	return bpf_ntohl(addr) * 2654435761U;
}

/* IPVS's fold of an address into 32 bits (ip_vs_sh_hashkey); an IPv4
 * address has zeros in words 1..3, so it folds to itself. */
static __always_inline __be32 xvs_addr_fold(const __be32 *a)
{
	return a[0] ^ a[1] ^ a[2] ^ a[3];
}

/* The state an input-only observer (IPVS on DR/TUN) can infer. */
static __always_inline __u8 xvs_tcp_next_state(__u8 state, __u8 flags)
{
	if (flags & XVS_TCP_RST)
		return XVS_CS_CLOSE;
	if (flags & XVS_TCP_FIN)
		return XVS_CS_FIN_WAIT;
	if ((flags & XVS_TCP_ACK) && state == XVS_CS_SYN_RECV)
		return XVS_CS_ESTABLISHED;
	return state;
}

/* Seconds after the last packet, from the config the control plane wrote. */
static __always_inline __u32 xvs_timeout_s(const struct xvs_config *cfg, __u8 state)
{
	switch (state) {
	case XVS_CS_ESTABLISHED:
		return cfg->timeout_tcp;
	case XVS_CS_FIN_WAIT:
		return cfg->timeout_tcpfin;
	case XVS_CS_UDP:
		return cfg->timeout_udp;
	case XVS_CS_SYN_RECV:
		return cfg->timeout_synrecv;
	default:
		return cfg->timeout_close;
	}
}

static __always_inline int xvs_fresh(const struct xvs_config *cfg, __u64 last_seen, __u64 now, __u8 state)
{
	return now - last_seen <= (__u64)xvs_timeout_s(cfg, state) * cfg->hz;
}

static __always_inline void xvs_conn_key(struct xvs_conn_key *k, const struct xvs_pkt *p)
{
	__builtin_memcpy(k->saddr, p->saddr, 16);
	__builtin_memcpy(k->daddr, p->daddr, 16);
	k->sport = p->sport;
	k->dport = p->dport;
	k->proto = p->proto;
	k->family = p->family;
	k->pad0[0] = 0;
	k->pad0[1] = 0;
}

static __always_inline struct xvs_svc *xvs_service(const struct xvs_pkt *p)
{
	struct xvs_svc_key sk;

	__builtin_memcpy(sk.addr, p->daddr, 16);
	sk.port = p->dport;
	sk.proto = p->proto;
	sk.family = p->family;
	return bpf_map_lookup_elem(&xvs_services, &sk);
}

/* A real server that may take new connections of this service. */
static __always_inline int xvs_real_takes_new(const struct xvs_real *r, __u32 gen, __u32 svc_id)
{
	return r && r->gen == gen && r->svc_id == svc_id && r->weight != 0 && !(r->flags & XVS_REAL_F_REMOVED);
}

static __always_inline int xvs_schedule(const struct xvs_pkt *p, const struct xvs_svc *svc, __u32 *real_id)
{
	__u32 id = svc->id, slot, size = svc->tbl_size;
	void *tbl;
	__u32 *rid;

	if (size == 0)
		return -1;
	tbl = bpf_map_lookup_elem(&xvs_sched_tables, &id);
	if (!tbl)
		return -1;
	if (svc->lookup == XVS_LOOKUP_SEQ) {
		__u64 *pos = bpf_map_lookup_elem(&xvs_sched_pos, &id);

		if (!pos)
			return -1;
		slot = __sync_fetch_and_add(pos, 1) % size;
	} else if (svc->lookup == XVS_LOOKUP_HASH_SRC) {
		slot = xvs_hash32(xvs_addr_fold(p->saddr)) % size;
	} else {
		slot = xvs_hash32(xvs_addr_fold(p->daddr)) % size;
	}
	rid = bpf_map_lookup_elem(tbl, &slot);
	if (!rid)
		return -1;
	*real_id = *rid;
	return 0;
}

static __always_inline void xvs_persist_key(struct xvs_persist_key *pk, const struct xvs_pkt *p, const struct xvs_svc *svc)
{
#pragma unroll
	for (int i = 0; i < 4; i++)
		pk->caddr[i] = p->saddr[i] & svc->persist_mask[i];
	pk->svc_id = svc->id;
	pk->family = p->family;
	pk->pad0[0] = 0;
	pk->pad0[1] = 0;
	pk->pad0[2] = 0;
}

/* The real server of a live persistence template (the template refreshed),
 * or NULL when there is none. */
static __always_inline struct xvs_real *
xvs_persist_pick(const struct xvs_pkt *p, const struct xvs_svc *svc, const struct xvs_config *cfg, __u64 now, __u32 *rid)
{
	struct xvs_persist_key pk;
	struct xvs_persist *t;
	struct xvs_real *r;
	__u32 id;

	xvs_persist_key(&pk, p, svc);
	t = bpf_map_lookup_elem(&xvs_persist, &pk);
	if (!t || now - t->last_seen > (__u64)svc->persist_timeout * cfg->hz)
		return NULL;
	id = t->real_id;
	r = bpf_map_lookup_elem(&xvs_reals, &id);
	if (!xvs_real_takes_new(r, t->real_gen, svc->id))
		return NULL;
	t->last_seen = now;
	*rid = id;
	return r;
}

static __always_inline void xvs_persist_save(const struct xvs_pkt *p, const struct xvs_svc *svc, __u64 now,
					     __u32 rid, __u32 gen)
{
	struct xvs_persist_key pk;
	struct xvs_persist t = { .last_seen = now, .real_id = rid, .real_gen = gen };

	xvs_persist_key(&pk, p, svc);
	bpf_map_update_elem(&xvs_persist, &pk, &t, BPF_ANY);
}

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
	if (syn && (c->state == XVS_CS_CLOSE || c->state == XVS_CS_FIN_WAIT ||
		    !xvs_real_takes_new(r, c->real_gen, c->svc_id)))
		return XVS_RESCHEDULE;
	*rp = r;
	return XVS_HIT;
}

/* Refreshes a confirmed flow: its state when it changes, its clock (and its
 * persistence template) at most once a second, so a steady flow dirties its
 * entry's cache line rarely. */
static __always_inline void xvs_touch(struct xvs_conn *c, const struct xvs_pkt *p, const struct xvs_config *cfg, __u64 now)
{
	if (p->proto == IPPROTO_TCP) {
		__u8 ns = xvs_tcp_next_state(c->state, p->tcp_flags);

		if (ns != c->state)
			c->state = ns;
	}
	if (now - c->last_seen >= cfg->hz) {
		c->last_seen = now;
		if (c->flags & XVS_CONN_F_PERSIST) {
			struct xvs_svc *svc = xvs_service(p);
			__u32 rid;

			if (svc)
				xvs_persist_pick(p, svc, cfg, now, &rid);
		}
	}
}

/* A TCP segment of no known flow. For hash schedulers the table names the
 * real server that owns it (IPVS's sloppy_tcp, Katran's way): forward it
 * there without an entry. For the others there is no telling: drop it, so
 * the director's own stack, which owns the VIP, never answers it with RST. */
static __always_inline int xvs_stray(struct xvs_pkt *p, const struct xvs_svc *svc, struct xvs_real **rp)
{
	struct xvs_real *r;
	__u32 rid;

	if (svc->lookup != XVS_LOOKUP_SEQ && xvs_schedule(p, svc, &rid) == 0) {
		r = bpf_map_lookup_elem(&xvs_reals, &rid);
		if (r && r->svc_id == svc->id && !(r->flags & XVS_REAL_F_REMOVED)) {
			xvs_count(XVS_CNT_SLOPPY);
			p->real_id = rid;
			*rp = r;
			return XVS_CONTINUE;
		}
	}
	xvs_count(XVS_CNT_DROP_NO_CONN);
	return XDP_DROP;
}

/* The real server for a new flow: a live persistence template's, or the
 * scheduler's pick (which then starts a template). */
static __always_inline struct xvs_real *xvs_pick(const struct xvs_pkt *p, const struct xvs_svc *svc,
						 const struct xvs_config *cfg, __u64 now, __u32 *rid)
{
	struct xvs_real *r = NULL;

	if (svc->flags & XVS_SVC_F_PERSISTENT)
		r = xvs_persist_pick(p, svc, cfg, now, rid);
	if (r)
		return r;
	if (xvs_schedule(p, svc, rid) < 0)
		return NULL;
	r = bpf_map_lookup_elem(&xvs_reals, rid);
	if (!r || r->svc_id != svc->id || (r->flags & XVS_REAL_F_REMOVED))
		return NULL;
	if (svc->flags & XVS_SVC_F_PERSISTENT)
		xvs_persist_save(p, svc, now, *rid, r->gen);
	return r;
}

/* A packet of a new flow: entry in xvs_syn_conns. */
static __always_inline void xvs_new_entry(struct xvs_conn *nc, const struct xvs_pkt *p, const struct xvs_svc *svc,
					  const struct xvs_real *r, __u32 rid, __u64 now)
{
	nc->last_seen = now;
	nc->real_id = rid;
	nc->real_gen = r->gen;
	nc->svc_id = svc->id;
	nc->state = p->proto == IPPROTO_TCP ? XVS_CS_SYN_RECV : XVS_CS_UDP;
	nc->flags = svc->flags & XVS_SVC_F_PERSISTENT ? XVS_CONN_F_PERSIST : 0;
	nc->pad0[0] = 0;
	nc->pad0[1] = 0;
}

/* Moves a new flow the client has confirmed (its ACK, or a second datagram)
 * to xvs_conns, where a flood of new flows cannot reach it. */
static __always_inline void xvs_promote(struct xvs_conn *c, const struct xvs_pkt *p, const struct xvs_conn_key *key, __u64 now)
{
	struct xvs_conn nc = *c;

	nc.state = p->proto == IPPROTO_TCP ? xvs_tcp_next_state(c->state, p->tcp_flags) : XVS_CS_UDP;
	nc.last_seen = now;
	bpf_map_update_elem(&xvs_conns, key, &nc, BPF_ANY);
	bpf_map_delete_elem(&xvs_syn_conns, key);
	xvs_count(XVS_CNT_PROMOTED);
}

/* An entry of xvs_conns that this packet may follow: its flow's real server
 * (XVS_HIT), or the entry went (a new connection on its tuple) or was not
 * usable (XVS_MISS). */
static __always_inline int xvs_confirmed(struct xvs_pkt *p, const struct xvs_config *cfg, const struct xvs_conn_key *key,
					 __u64 now, int syn, struct xvs_real **rp)
{
	struct xvs_conn *c = bpf_map_lookup_elem(&xvs_conns, key);
	int rc;

	if (!c)
		return XVS_MISS;
	rc = xvs_entry(c, cfg, now, syn, rp);
	if (rc == XVS_HIT) {
		p->svc_id = c->svc_id;
		p->real_id = c->real_id;
		xvs_touch(c, p, cfg, now);
		return XVS_HIT;
	}
	if (rc == XVS_RESCHEDULE)
		bpf_map_delete_elem(&xvs_conns, key);
	return XVS_MISS;
}

/*
 * Finds or creates the flow and records it in p (service, real server, new
 * or not). Returns XVS_CONTINUE with *rp set, or the packet's verdict.
 *
 * Each kind of packet looks first where it most likely is: a SYN in
 * xvs_syn_conns (a retransmission costs that one lookup), anything else in
 * xvs_conns (an established packet costs that one lookup). The service is
 * looked up only for a flow that is not in either table.
 */
static __always_inline int xvs_flow(struct xdp_md *ctx, struct xvs_pkt *p, const struct xvs_config *cfg,
				    struct xvs_real **rp)
{
	struct xvs_conn_key key;
	struct xvs_conn nc;
	struct xvs_conn *c;
	struct xvs_svc *svc;
	struct xvs_real *r;
	__u64 now = bpf_jiffies64();
	int tcp = p->proto == IPPROTO_TCP;
	int syn = tcp && (p->tcp_flags & (XVS_TCP_SYN | XVS_TCP_ACK | XVS_TCP_RST)) == XVS_TCP_SYN;
	__u32 rid;

	xvs_conn_key(&key, p);
	if (!syn && xvs_confirmed(p, cfg, &key, now, 0, rp) == XVS_HIT)
		return XVS_CONTINUE;

	c = bpf_map_lookup_elem(&xvs_syn_conns, &key);
	if (c && xvs_entry(c, cfg, now, syn, rp) == XVS_HIT) {
		p->svc_id = c->svc_id;
		p->real_id = c->real_id;
		/* The client's ACK (or a second datagram) confirms the flow. */
		if (!tcp || ((p->tcp_flags & XVS_TCP_ACK) && !(p->tcp_flags & (XVS_TCP_SYN | XVS_TCP_RST))))
			xvs_promote(c, p, &key, now);
		else if (!syn)
			c->state = xvs_tcp_next_state(c->state, p->tcp_flags);
		return XVS_CONTINUE;
	}

	/* A SYN on a confirmed flow: the same connection, or a new one on its tuple. */
	if (syn && xvs_confirmed(p, cfg, &key, now, 1, rp) == XVS_HIT)
		return XVS_CONTINUE;

	svc = xvs_service(p);
	if (!svc) {
		xvs_count(XVS_CNT_PASS_NO_SVC);
		return XDP_PASS;
	}
	p->svc_id = svc->id;
	if (tcp && !syn)
		return xvs_stray(p, svc, rp);

	r = xvs_pick(p, svc, cfg, now, &rid);
	if (!r) {
		xvs_count(XVS_CNT_NO_REAL);
		return xvs_icmp_port_unreach(ctx, p);
	}
	xvs_new_entry(&nc, p, svc, r, rid, now);
	bpf_map_update_elem(&xvs_syn_conns, &key, &nc, BPF_ANY);
	p->is_new = 1;
	p->real_id = rid;
	*rp = r;
	return XVS_CONTINUE;
}

#endif
