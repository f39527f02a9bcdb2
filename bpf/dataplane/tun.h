/* SPDX-License-Identifier: GPL-2.0 */
/* LVS-TUN: IPIP to the real server, which decapsulates and answers the
 * client itself. The outer header copies TOS, TTL, ID and DF from the inner
 * one, as IPVS's ipip transmitter does. */
#ifndef XVS_TUN_H
#define XVS_TUN_H

#include "fib.h"
#include "icmp.h"

#define XVS_IPIP_HLEN sizeof(struct iphdr)

static __always_inline int xvs_fwd_tun(struct xdp_md *ctx, const struct xvs_pkt *p, const struct xvs_real *r)
{
	__u32 outer_len = p->tot_len + XVS_IPIP_HLEN, key = 0, l2 = p->l2_len;
	struct xvs_config *cfg = bpf_map_lookup_elem(&xvs_config, &key);
	void *data, *data_end;
	struct bpf_fib_lookup fib;
	struct iphdr *outer, *inner;
	__be32 saddr;
	int rc;

	if (outer_len > 0xffff) {
		xvs_count(XVS_CNT_PASS_TOO_BIG);
		return XDP_PASS;
	}
	rc = xvs_fib_v4(ctx, &fib, r->addr[0], outer_len, BPF_FIB_LOOKUP_SRC);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		if (p->df) {
			__u16 mtu = fib.mtu_result > XVS_IPIP_HLEN ? fib.mtu_result - XVS_IPIP_HLEN : 0;

			xvs_count(XVS_CNT_FRAG_NEEDED);
			return xvs_icmp_unreach(ctx, p, ICMP_FRAG_NEEDED, mtu);
		}
		xvs_count(XVS_CNT_PASS_TOO_BIG);
		return XDP_PASS;
	}
	if (rc != XVS_CONTINUE)
		return rc;
	saddr = cfg && cfg->tun_saddr[0] ? cfg->tun_saddr[0] : fib.ipv4_src;

	if (xvs_push_room(ctx, l2, XVS_IPIP_HLEN))
		goto err;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (l2 > XVS_L2_MAX)
		goto err;
	outer = data + l2;
	inner = (void *)(outer + 1);
	if ((void *)(inner + 1) > data_end)
		goto err;
	xvs_ipv4_hdr(outer, inner->tos, outer_len, inner->id, inner->frag_off & bpf_htons(0x4000), inner->ttl,
		     IPPROTO_IPIP, saddr, r->addr[0]);
	return xvs_egress(ctx, &fib, p);

err:
	xvs_count(XVS_CNT_ERROR);
	return XDP_DROP;
}

#endif
