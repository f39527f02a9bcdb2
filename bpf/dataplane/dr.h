/* SPDX-License-Identifier: GPL-2.0 */
/* LVS-DR: only the MACs change; the real server holds the VIP on lo and
 * answers the client itself. The packet is unchanged, so the real server is
 * of the VIP's family (the control plane refuses anything else). */
#ifndef XVS_DR_H
#define XVS_DR_H

#include "nexthop.h"

static __always_inline int xvs_fwd_dr(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_real *r)
{
	const struct xvs_nexthop *nh;
	int verdict;

	if (r->family != p->family) {
		xvs_count(XVS_CNT_BAD_MODE);
		return XDP_DROP;
	}
	nh = xvs_nexthop(ctx, p, r, 0, &verdict);
	if (!nh)
		return verdict;
	return xvs_egress(ctx, nh, p);
}

#endif
