/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The way to a real server: the control plane's cached next hop
 * (xvs_nexthops, filled from the kernel's route and neighbour tables and
 * refreshed when they change), or, while it has none, the kernel's FIB. The
 * operator never types a MAC.
 */
#ifndef XVS_NEXTHOP_H
#define XVS_NEXTHOP_H

#include "common.h"
#include "flow.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/*
 * Fills nh from bpf_fib_lookup (tunnel source too when src is set, unless
 * the control plane already chose one). Returns XVS_CONTINUE or a verdict:
 * an unresolved neighbour or a missing route is dropped and counted, never
 * silently. A subprogram (see XVS_SUBPROG): only while the cache has no
 * entry, and the lookup's 64 bytes stay off the packet path's stack.
 */
XVS_SUBPROG int xvs_fib_nexthop(struct xdp_md *ctx, __u32 real_id, struct xvs_nexthop *nh, int src)
{
	struct bpf_fib_lookup fib = {};
	struct xvs_real *r = bpf_map_lookup_elem(&xvs_reals, &real_id);
	int rc;

	xvs_count(XVS_CNT_NH_MISS);
	if (!r || !nh)
		return XDP_DROP;
	fib.ifindex = ctx->ingress_ifindex;
	if (r->family == XVS_AF_INET6) {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_dst, r->addr, 16);
	} else {
		fib.family = AF_INET;
		fib.ipv4_dst = r->addr[0];
	}
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), src ? BPF_FIB_LOOKUP_SRC : 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		xvs_count(XVS_CNT_NO_NEIGH);
		return XDP_DROP;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		xvs_count(XVS_CNT_FIB_FAIL);
		return XDP_DROP;
	}
	nh->ifindex = fib.ifindex;
	nh->mtu = fib.mtu_result;
	__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
	if (src && !(nh->saddr[0] | nh->saddr[1] | nh->saddr[2] | nh->saddr[3])) {
		if (r->family == XVS_AF_INET6)
			__builtin_memcpy(nh->saddr, fib.ipv6_src, 16);
		else
			nh->saddr[0] = fib.ipv4_src;
	}
	return XVS_CONTINUE;
}

/* The real server's cached next hop, or one from the FIB written into this
 * CPU's scratch (not the stack, where its 36 bytes would count against the
 * forwarding stages' frames on every packet); NULL with *verdict set when
 * there is none. */
static __always_inline const struct xvs_nexthop *
xvs_nexthop(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_real *r, int src, int *verdict)
{
	__u32 id = p->real_id;
	struct xvs_nexthop *c = bpf_map_lookup_elem(&xvs_nexthops, &id);
	struct xvs_scratch *s;
	struct xvs_nexthop *fallback;

	if (c && c->ifindex)
		return c;
	s = xvs_scratch_get();
	if (!s) {
		*verdict = XDP_DROP;
		return NULL;
	}
	fallback = &s->nh;
	__builtin_memset(fallback, 0, sizeof(*fallback));
	if (c)
		__builtin_memcpy(fallback->saddr, c->saddr, 16);
	*verdict = xvs_fib_nexthop(ctx, p->real_id, fallback, src);
	return *verdict == XVS_CONTINUE ? fallback : NULL;
}

/* Sends the frame to the next hop (ifindex, dmac) as smac: XDP_TX out of the
 * interface it came in on, XDP_REDIRECT out of another. Tagged frames go
 * back out tagged on the ingress port (one-armed VLAN director). */
static __always_inline int xvs_send(struct xdp_md *ctx, __u32 ifindex, const __u8 *dmac, const __u8 *smac, __u32 l3_off)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	long rc;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	if (ifindex == ctx->ingress_ifindex || l3_off != ETH_HLEN) {
		xvs_count(XVS_CNT_TX);
		return XDP_TX;
	}
	xvs_count(XVS_CNT_REDIRECT);
	/* The devmap is the fast way out; an interface the control plane did not
	 * enter there still works through the plain redirect. */
	rc = bpf_redirect_map(&xvs_tx_ports, ifindex, 0);
	if (rc == XDP_REDIRECT)
		return XDP_REDIRECT;
	xvs_count(XVS_CNT_REDIRECT_UNMAPPED);
	return bpf_redirect(ifindex, 0);
}

/* Hands the packet to its real server: accounts it and sends it to the next hop. */
static __always_inline int xvs_egress(struct xdp_md *ctx, const struct xvs_nexthop *nh, const struct xvs_pkt *p)
{
	xvs_account(p);
	return xvs_send(ctx, nh->ifindex, nh->dmac, nh->smac, p->l3_off);
}

#endif
