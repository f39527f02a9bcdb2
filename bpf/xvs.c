// SPDX-License-Identifier: GPL-2.0
/*
 * The director: a chain of stages, each returning a verdict or XVS_CONTINUE
 * and counting where it decides: parse (parse.h), ICMP errors about NAT flows
 * (icmperr.h), NAT replies (nat.h), flow
 * (flow.h: connection tables, service, scheduler), forward by the real
 * server's method (one header per method).
 */
#include "dataplane/parse.h"
#include "dataplane/flow.h"
#include "dataplane/dr.h"
#include "dataplane/tun.h"
#include "dataplane/nat.h"
#include "dataplane/icmperr.h"

/* ICMP errors, parsed again from the frame (the same answer: a tail call
 * carries no state), then translated when they are about a NAT flow. */
SEC("xdp")
int xvs_icmperr(struct xdp_md *ctx)
{
	struct xvs_pkt p = {};
	struct xvs_config *cfg;
	__u32 zero = 0;
	int rc;

	rc = xvs_parse(ctx, &p);
	if (rc != XVS_CONTINUE)
		return rc;
	cfg = bpf_map_lookup_elem(&xvs_config, &zero);
	if (!cfg)
		return XDP_PASS;
	rc = xvs_icmp_err(ctx, &p, cfg);
	return rc == XVS_CONTINUE ? xvs_unparsed(XVS_CNT_PASS_NO_SVC) : rc;
}

/* Stages that run as programs of their own, filled by libbpf at load. */
enum { XVS_STAGE_ICMPERR = 0 };
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32)); /* sizes, not BTF types: the kernel takes none for a program array */
	__array(values, int(struct xdp_md *));
} xvs_stage_progs SEC(".maps") = {
	.values = { [XVS_STAGE_ICMPERR] = (void *)&xvs_icmperr },
};

SEC("xdp")
int xvs_xdp(struct xdp_md *ctx)
{
	struct xvs_scratch *s = xvs_scratch_get();
	struct xvs_real *r = NULL;
	struct xvs_config *cfg;
	struct xvs_pkt *p;
	__u32 zero = 0;
	int rc;

	xvs_count(XVS_CNT_RX);
	if (!s)
		return XDP_PASS;
	p = &s->pkt;
	__builtin_memset(p, 0, sizeof(*p));
	rc = xvs_parse(ctx, p);
	if (rc != XVS_CONTINUE)
		return rc;
	cfg = bpf_map_lookup_elem(&xvs_config, &zero);
	if (!cfg)
		return XDP_PASS;
	if (xvs_parsed_icmp(p)) {
		bpf_tail_call(ctx, &xvs_stage_progs, XVS_STAGE_ICMPERR);
		xvs_count(XVS_CNT_ERROR); /* no such program: the kernel has it, untouched */
		return XDP_PASS;
	}
	if ((cfg->flags & XVS_CFG_F_TWO_WAY) && xvs_maybe_reply(p)) {
		rc = xvs_nat_reply(ctx, p);
		if (rc != XVS_CONTINUE)
			return rc;
	}
	rc = xvs_flow(ctx, p, cfg, &r);
	if (rc != XVS_CONTINUE)
		return rc;
	if (!r)
		return XDP_DROP;
	switch (r->fwd) {
	case XVS_FWD_DR:
		return xvs_fwd_dr(ctx, p, r);
	case XVS_FWD_TUN:
		return xvs_fwd_tun(ctx, p, r);
	case XVS_FWD_NAT:
		return xvs_fwd_nat(ctx, p, r);
	case XVS_FWD_FULLNAT:
		/* Here, a subprogram called from xvs_xdp itself: nested in
		 * another's frame, its own would not fit the 512 bytes of stack. */
		if (p->toa)
			xvs_toa_add(ctx, p);
		return xvs_fwd_fullnat(ctx, p, r);
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
__attribute__((used)) int xvs_abi_enums(enum xvs_counter counter, enum xvs_slot slot, enum xvs_tun_sport sport,
					  enum xvs_set_geometry ways)
{
	return counter + slot + sport + ways;
}

char LICENSE[] SEC("license") = "GPL";
