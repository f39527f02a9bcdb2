/* SPDX-License-Identifier: GPL-2.0 */
/* Next hop from the kernel's FIB and neighbour tables: the operator never
 * types a MAC. The control plane keeps neighbours of real servers resolved
 * (managed entries); what still misses is counted and dropped. */
#ifndef XVS_FIB_H
#define XVS_FIB_H

#include "common.h"
#include "flow.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* Returns XVS_CONTINUE with *fib filled, BPF_FIB_LKUP_RET_FRAG_NEEDED for
 * the caller to handle, or a verdict. tot_len 0 skips the MTU check. */
static __always_inline int xvs_fib_v4(struct xdp_md *ctx, struct bpf_fib_lookup *fib, __be32 dst,
				      __u16 tot_len, __u32 flags)
{
	int rc;

	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET;
	fib->ipv4_dst = dst;
	fib->tot_len = tot_len;
	fib->ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), flags);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		return XVS_CONTINUE;
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return rc;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		xvs_count(XVS_CNT_NO_NEIGH);
		return XDP_DROP;
	}
	xvs_count(XVS_CNT_FIB_FAIL);
	return XDP_DROP;
}

/* Hands the packet to its real server: accounts it, rewrites the MACs and
 * sends the frame out of the FIB's interface. Tagged frames go back out
 * tagged on the ingress port (one-armed VLAN director). */
static __always_inline int xvs_egress(struct xdp_md *ctx, const struct bpf_fib_lookup *fib, const struct xvs_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	xvs_account(p);
	__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	if (fib->ifindex == ctx->ingress_ifindex || p->l2_len != ETH_HLEN) {
		xvs_count(XVS_CNT_TX);
		return XDP_TX;
	}
	xvs_count(XVS_CNT_REDIRECT);
	return bpf_redirect(fib->ifindex, 0);
}

#endif
