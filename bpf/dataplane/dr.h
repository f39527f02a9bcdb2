/* SPDX-License-Identifier: GPL-2.0 */
/* LVS-DR: only the MACs change; the real server holds the VIP on lo and
 * answers the client itself. */
#ifndef XVS_DR_H
#define XVS_DR_H

#include "fib.h"

static __always_inline int xvs_fwd_dr(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_real *r)
{
	struct bpf_fib_lookup fib;
	int rc = xvs_fib_v4(ctx, &fib, r->addr[0], 0, 0);

	if (rc != XVS_CONTINUE)
		return rc == BPF_FIB_LKUP_RET_FRAG_NEEDED ? XDP_DROP : rc;
	return xvs_egress(ctx, &fib, p);
}

#endif
