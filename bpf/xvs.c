// SPDX-License-Identifier: GPL-2.0
/*
 * The director: a chain of stages, each returning a verdict or XVS_CONTINUE
 * and counting where it decides: parse (parse.h), NAT replies (nat.h), flow
 * (flow.h: connection tables, service, scheduler), forward by the real
 * server's method (one header per method).
 */
#include "dataplane/parse.h"
#include "dataplane/flow.h"
#include "dataplane/dr.h"
#include "dataplane/tun.h"
#include "dataplane/nat.h"

SEC("xdp")
int xvs_xdp(struct xdp_md *ctx)
{
	struct xvs_pkt p = {};
	struct xvs_real *r = NULL;
	struct xvs_config *cfg;
	__u32 zero = 0;
	int rc;

	xvs_count(XVS_CNT_RX);
	rc = xvs_parse(ctx, &p);
	if (rc != XVS_CONTINUE)
		return rc;
	cfg = bpf_map_lookup_elem(&xvs_config, &zero);
	if (!cfg)
		return XDP_PASS;
	rc = xvs_nat_reply(ctx, &p, cfg);
	if (rc != XVS_CONTINUE)
		return rc;
	rc = xvs_flow(ctx, &p, cfg, &r);
	if (rc != XVS_CONTINUE)
		return rc;
	if (!r)
		return XDP_DROP;
	switch (r->fwd) {
	case XVS_FWD_DR:
		return xvs_fwd_dr(ctx, &p, r);
	case XVS_FWD_TUN:
		return xvs_fwd_tun(ctx, &p, r);
	case XVS_FWD_NAT:
		return xvs_fwd_nat(ctx, &p, r);
	default:
		xvs_count(XVS_CNT_BAD_MODE);
		return XDP_DROP;
	}
}

/* The dataplane's clock, for the control plane: BPF_PROG_TEST_RUN of this
 * program returns bpf_jiffies64() in the first 8 bytes of the frame, which
 * is how the control plane learns HZ and reads connection ages. */
SEC("xdp")
int xvs_clock(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 *out = data;

	if ((void *)(out + 1) > data_end)
		return XDP_ABORTED;
	*out = bpf_jiffies64();
	return XDP_PASS;
}

/* Never called: its signature names the ABI enums no struct member carries
 * (an array map's key must be a plain integer), so they reach the object's
 * BTF, where test/abi.test.ts reads them. */
__attribute__((used)) int xvs_abi_enums(enum xvs_counter counter)
{
	return counter;
}

char LICENSE[] SEC("license") = "GPL";
