/* SPDX-License-Identifier: GPL-2.0 */
/* Pins flows to real servers: the connection table first, the service's
 * scheduler table for a new flow. */
#ifndef XVS_FLOW_H
#define XVS_FLOW_H

#include "common.h"
#include "maps.h"

/* Only rewrite last_seen when it moved this much: fewer dirty cache lines. */
#define XVS_TOUCH_NS 1000000000ULL

static __always_inline __u32 xvs_hash32(__be32 addr)
{
	/* Knuth's multiplicative hash, as IPVS sh/dh use: deterministic, so two
	 * directors with the same table agree. */
	return bpf_ntohl(addr) * 2654435761U;
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
		slot = xvs_hash32(p->saddr) % size;
	} else {
		slot = xvs_hash32(p->daddr) % size;
	}
	rid = bpf_map_lookup_elem(tbl, &slot);
	if (!rid)
		return -1;
	*real_id = *rid;
	return 0;
}

/* The control plane writes every timeout when it loads the dataplane. */
static __always_inline __u64 xvs_timeout_ns(const struct xvs_config *cfg, __u8 state)
{
	__u32 s;

	if (!cfg)
		return 0;
	switch (state) {
	case XVS_CS_ESTABLISHED:
		s = cfg->timeout_tcp;
		break;
	case XVS_CS_FIN_WAIT:
		s = cfg->timeout_tcpfin;
		break;
	case XVS_CS_UDP:
		s = cfg->timeout_udp;
		break;
	case XVS_CS_SYN_RECV:
		s = cfg->timeout_synrecv;
		break;
	default:
		s = cfg->timeout_close;
	}
	return (__u64)s * 1000000000ULL;
}

static __always_inline int xvs_real_usable(const struct xvs_real *r, __u32 gen, __u32 svc_id)
{
	return r && r->gen == gen && r->svc_id == svc_id && !(r->flags & XVS_REAL_F_REMOVED);
}

static __always_inline void xvs_persist_key(struct xvs_persist_key *pk, const struct xvs_pkt *p, const struct xvs_svc *svc)
{
	__builtin_memset(pk, 0, sizeof(*pk));
	pk->caddr[0] = p->saddr & svc->persist_mask;
	pk->svc_id = svc->id;
	pk->family = XVS_AF_INET;
}

/* The real server of a live persistence template (the template refreshed),
 * or NULL when there is none. */
static __always_inline struct xvs_real *
xvs_persist_pick(const struct xvs_pkt *p, const struct xvs_svc *svc, __u64 now, __u32 *rid)
{
	struct xvs_persist_key pk;
	struct xvs_persist *t;
	struct xvs_real *r;
	__u32 id;

	xvs_persist_key(&pk, p, svc);
	t = bpf_map_lookup_elem(&xvs_persist, &pk);
	if (!t || now - t->last_seen_ns > (__u64)svc->persist_timeout * 1000000000ULL)
		return NULL;
	id = t->real_id;
	r = bpf_map_lookup_elem(&xvs_reals, &id);
	if (!xvs_real_usable(r, t->real_gen, svc->id))
		return NULL;
	t->last_seen_ns = now;
	*rid = id;
	return r;
}

static __always_inline void xvs_persist_save(const struct xvs_pkt *p, const struct xvs_svc *svc, __u64 now,
					     __u32 rid, __u32 gen)
{
	struct xvs_persist_key pk;
	struct xvs_persist t = { .last_seen_ns = now, .real_id = rid, .real_gen = gen };

	xvs_persist_key(&pk, p, svc);
	bpf_map_update_elem(&xvs_persist, &pk, &t, BPF_ANY);
}

/* Finds or creates the flow and records it in p (service, real server, new
 * or not); returns the real server, or NULL with *verdict set (pass a stray
 * TCP segment to the kernel, or no real server). */
static __always_inline struct xvs_real *
xvs_flow(struct xvs_pkt *p, const struct xvs_svc *svc, int *verdict)
{
	struct xvs_conn_key key = {
		.saddr = { p->saddr },
		.daddr = { p->daddr },
		.sport = p->sport,
		.dport = p->dport,
		.proto = p->proto,
		.family = XVS_AF_INET,
	};
	__u32 zero = 0;
	const struct xvs_config *cfg = bpf_map_lookup_elem(&xvs_config, &zero);
	__u64 now = bpf_ktime_get_ns();
	struct xvs_conn *c = bpf_map_lookup_elem(&xvs_conns, &key);
	int syn = p->proto == IPPROTO_TCP &&
		  (p->tcp_flags & (XVS_TCP_SYN | XVS_TCP_ACK | XVS_TCP_RST)) == XVS_TCP_SYN;
	int persistent = svc->flags & XVS_SVC_F_PERSISTENT;
	struct xvs_real *r;
	struct xvs_conn nc = {};
	__u32 rid;

	p->svc_id = svc->id;
	p->is_new = 0;
	if (c && now - c->last_seen_ns <= xvs_timeout_ns(cfg, c->state)) {
		__u32 cid = c->real_id;

		r = bpf_map_lookup_elem(&xvs_reals, &cid);
		/* A SYN on a closing flow is a new connection on a reused port. */
		if (r && r->gen == c->real_gen && c->svc_id == svc->id &&
		    !(syn && (c->state == XVS_CS_CLOSE || c->state == XVS_CS_FIN_WAIT))) {
			if (p->proto == IPPROTO_TCP)
				c->state = xvs_tcp_next_state(c->state, p->tcp_flags);
			if (now - c->last_seen_ns > XVS_TOUCH_NS) {
				c->last_seen_ns = now;
				if (c->flags & XVS_CONN_F_PERSIST)
					xvs_persist_pick(p, svc, now, &rid);
			}
			p->real_id = cid;
			return r;
		}
	}
	if (p->proto == IPPROTO_TCP && !syn) {
		xvs_count(XVS_CNT_PASS_NO_CONN);
		*verdict = XDP_PASS;
		return NULL;
	}
	r = persistent ? xvs_persist_pick(p, svc, now, &rid) : NULL;
	if (!r) {
		if (xvs_schedule(p, svc, &rid) < 0)
			goto no_real;
		r = bpf_map_lookup_elem(&xvs_reals, &rid);
		if (!r || r->svc_id != svc->id || (r->flags & XVS_REAL_F_REMOVED))
			goto no_real;
		if (persistent)
			xvs_persist_save(p, svc, now, rid, r->gen);
	}
	nc.last_seen_ns = now;
	nc.real_id = rid;
	nc.real_gen = r->gen;
	nc.svc_id = svc->id;
	nc.state = p->proto == IPPROTO_TCP ? XVS_CS_SYN_RECV : XVS_CS_UDP;
	nc.flags = persistent ? XVS_CONN_F_PERSIST : 0;
	bpf_map_update_elem(&xvs_conns, &key, &nc, BPF_ANY);
	p->is_new = 1;
	p->real_id = rid;
	return r;

no_real:
	xvs_count(XVS_CNT_NO_REAL);
	*verdict = XVS_CONTINUE; /* caller answers with ICMP port unreachable */
	return NULL;
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
		s->inbytes += p->tot_len;
	}
	id = p->real_id;
	s = bpf_map_lookup_elem(&xvs_real_stats, &id);
	if (s) {
		s->conns += p->is_new;
		s->inpkts += 1;
		s->inbytes += p->tot_len;
	}
}

#endif
