/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where a new flow goes: the service, a live persistence template, or the
 * service's scheduler table (a shared sequence or an address hash).
 */
#ifndef XVS_SCHED_H
#define XVS_SCHED_H

#include "common.h"
#include "maps.h"
#include "fwmark.h"

static __always_inline __u32 xvs_hash32(__be32 addr)
{
	/* Knuth's multiplicative hash, as IPVS sh/dh use: deterministic, so two
	 * directors with the same table agree. */
	return bpf_ntohl(addr) * 2654435761U;
}

/* sh-port and mh-port: IPVS adds the client's source port to the folded
 * address before the multiply (ip_vs_sh_hashkey), so each connection of a
 * client may land on another real server. */
static __always_inline __u32 xvs_hash32_port(__be32 addr, __be16 port)
{
	return (bpf_ntohl(addr) + bpf_ntohs(port)) * 2654435761U;
}

/* IPVS's fold of an address into 32 bits (ip_vs_sh_hashkey); an IPv4
 * address has zeros in words 1..3, so it folds to itself. */
static __always_inline __be32 xvs_addr_fold(const __be32 *a)
{
	return a[0] ^ a[1] ^ a[2] ^ a[3];
}

/* Seconds after the last packet, by state, from the config the control plane wrote. */
static __always_inline int xvs_fresh(const struct xvs_config *cfg, __u64 last_seen, __u64 now, __u8 state)
{
	return now - last_seen <= (__u64)cfg->timeout[state & (XVS_CS_MAX - 1)] * cfg->hz;
}

/* The packet's service: its VIP and port, or its VIP's port-zero service
 * (every port, IPVS's `-t VIP:0 -p`), or the fwmark service of the mark its
 * fwmark rules give it (fwmark.h). Each further lookup only while such a
 * service or rule exists, so other traffic to the host pays one. */
static __always_inline struct xvs_svc *xvs_service(const struct xvs_pkt *p, const struct xvs_config *cfg)
{
	struct xvs_svc_key sk;
	struct xvs_svc *svc;
	__u32 mark;

	__builtin_memcpy(sk.addr, p->daddr, 16);
	sk.port = p->dport;
	sk.proto = p->proto;
	sk.family = p->family;
	svc = bpf_map_lookup_elem(&xvs_services, &sk);
	if (svc)
		return svc;
	if (cfg->flags & XVS_CFG_F_ANY_PORT) {
		sk.port = 0;
		svc = bpf_map_lookup_elem(&xvs_services, &sk);
		if (svc)
			return svc;
	}
	if (!(cfg->flags & XVS_CFG_F_FWMARK))
		return NULL;
	mark = (__u32)xvs_fwmark_of(p);
	if (mark == 0)
		return NULL;
	__builtin_memset(sk.addr, 0, 16);
	sk.addr[0] = bpf_htonl(mark);
	sk.port = 0;
	sk.proto = 0;
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
	} else if (svc->lookup == XVS_LOOKUP_HASH_SRC_PORT) {
		slot = xvs_hash32_port(xvs_addr_fold(p->saddr), p->sport) % size;
	} else {
		slot = xvs_hash32(xvs_addr_fold(p->daddr)) % size;
	}
	rid = bpf_map_lookup_elem(tbl, &slot);
	if (!rid || *rid == XVS_SLOT_NONE)
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

#endif
