// SPDX-License-Identifier: GPL-2.0
/*
 * The director: a thin entry that parses, finds the virtual service and the
 * flow's real server, and hands the frame to the real server's forwarding
 * method (one file per method under dataplane/).
 */
#include "dataplane/parse.h"
#include "dataplane/flow.h"
#include "dataplane/dr.h"
#include "dataplane/tun.h"

static __always_inline int xvs_pass_unparsed(int rc)
{
	switch (rc) {
	case XVS_PARSE_NOT_IP:
		xvs_count(XVS_CNT_PASS_NOT_IP);
		break;
	case XVS_PARSE_FRAGMENT:
		xvs_count(XVS_CNT_PASS_FRAGMENT);
		break;
	case XVS_PARSE_OTHER_L4:
		xvs_count(XVS_CNT_PASS_NO_SVC);
		break;
	default:
		xvs_count(XVS_CNT_MALFORMED);
	}
	return XDP_PASS;
}

SEC("xdp")
int xvs_xdp(struct xdp_md *ctx)
{
	struct xvs_pkt p = {};
	struct xvs_svc_key sk = {};
	struct xvs_svc *svc;
	struct xvs_real *r;
	int rc, verdict = XDP_PASS;

	xvs_count(XVS_CNT_RX);
	rc = xvs_parse(ctx, &p);
	if (rc != XVS_PARSE_OK)
		return xvs_pass_unparsed(rc);

	sk.addr[0] = p.daddr;
	sk.port = p.dport;
	sk.proto = p.proto;
	sk.family = XVS_AF_INET;
	svc = bpf_map_lookup_elem(&xvs_services, &sk);
	if (!svc) {
		xvs_count(XVS_CNT_PASS_NO_SVC);
		return XDP_PASS;
	}

	r = xvs_flow(&p, svc, &verdict);
	if (!r) {
		if (verdict == XVS_CONTINUE)
			return xvs_icmp_unreach(ctx, &p, ICMP_PORT_UNREACH, 0);
		return verdict;
	}

	/* Each method accounts the packet where it hands it to the real server. */
	switch (r->fwd) {
	case XVS_FWD_DR:
		return xvs_fwd_dr(ctx, &p, r);
	case XVS_FWD_TUN:
		return xvs_fwd_tun(ctx, &p, r);
	default:
		xvs_count(XVS_CNT_BAD_MODE);
		return XDP_DROP;
	}
}

/* Never called: its signature names the ABI enums no struct member carries
 * (an array map's key must be a plain integer), so they reach the object's
 * BTF, where test/abi.test.ts reads them. */
__attribute__((used)) int xvs_abi_enums(enum xvs_counter counter)
{
	return counter;
}

char LICENSE[] SEC("license") = "GPL";
