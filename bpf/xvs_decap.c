// SPDX-License-Identifier: GPL-2.0
/*
 * Real-server helper for LVS-TUN on kernels without the ipip module: strips
 * the outer IPv4 header of IPIP packets whose inner destination is a VIP this
 * host serves, and passes the inner packet to the kernel, which delivers it
 * to the VIP on lo. Everything else passes untouched.
 */
#include "dataplane/parse.h"
#include "xvs_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __be32[4]);
	__type(value, __u32);
} xvs_decap_vips SEC(".maps");

#define DECAP_CNT_DECAPPED 0
#define DECAP_CNT_NOT_VIP 1
#define DECAP_CNT_MALFORMED 2
#define DECAP_CNT_MAX 4

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DECAP_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xvs_decap_counters SEC(".maps");

static __always_inline int count(__u32 idx, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&xvs_decap_counters, &idx);

	if (c)
		*c += 1;
	return verdict;
}

SEC("xdp")
int xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__be32 vip[4] = {};
	struct iphdr *outer, *inner;
	__u32 l2, hlen;
	__be16 ethertype;

	if (xvs_parse_l2(data, data_end, &l2, &ethertype) < 0 || ethertype != bpf_htons(ETH_P_IP) || l2 > XVS_L2_MAX)
		return XDP_PASS;
	outer = data + l2;
	if ((void *)(outer + 1) > data_end || outer->protocol != IPPROTO_IPIP)
		return XDP_PASS;
	if (outer->version != 4 || outer->ihl != 5 || (outer->frag_off & bpf_htons(0x3fff)))
		return count(DECAP_CNT_MALFORMED, XDP_PASS);
	hlen = sizeof(*outer);
	inner = (void *)(outer + 1);
	if ((void *)(inner + 1) > data_end || inner->version != 4)
		return count(DECAP_CNT_MALFORMED, XDP_PASS);
	vip[0] = inner->daddr;
	if (!bpf_map_lookup_elem(&xvs_decap_vips, vip))
		return count(DECAP_CNT_NOT_VIP, XDP_PASS);

	if (xvs_move_l2(ctx, l2, 0, hlen))
		return count(DECAP_CNT_MALFORMED, XDP_PASS);
	if (bpf_xdp_adjust_head(ctx, (int)hlen))
		return count(DECAP_CNT_MALFORMED, XDP_DROP);
	return count(DECAP_CNT_DECAPPED, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
