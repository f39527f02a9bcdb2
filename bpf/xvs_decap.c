// SPDX-License-Identifier: GPL-2.0
/*
 * Real-server helper for LVS-TUN on kernels without the tunnel modules
 * (ipip, sit, ip6_tunnel): strips the outer IPv4 or IPv6 header of a packet
 * that carries an IPv4 (protocol / next header 4) or IPv6 (41) packet whose
 * destination is a VIP of that family in xvs_decap_vips, and passes the
 * inner packet to the kernel, which delivers it to the VIP on lo. So IPIP,
 * 6 in 4 (SIT), 4 in 6 and 6 in 6 all work, as the director sends them.
 * Everything else passes untouched: other traffic uncounted, tunnelled
 * packets to other addresses and malformed ones counted. Only the outer
 * header is read: an IPv6 outer header with extension headers is not one
 * the director writes, and goes to the kernel as it is.
 *
 * Includes dataplane/common.h only: the director's maps (parse.h, maps.h)
 * would otherwise be created, connection tables and all, on every real
 * server that loads this object.
 */
#include "dataplane/common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __be32[4]);
	__type(value, enum xvs_decap_af);
} xvs_decap_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_DECAP_CNT_MAX);
	__type(key, __u32); /* enum xvs_decap_counter; an array map's key must be an integer in BTF */
	__type(value, __u64);
} xvs_decap_counters SEC(".maps");

#define IPV4_HLEN_MAX 60

static __always_inline int count(enum xvs_decap_counter idx, int verdict)
{
	__u32 key = idx;
	__u64 *c = bpf_map_lookup_elem(&xvs_decap_counters, &key);

	if (c)
		*c += 1;
	return verdict;
}

/* The kernel would drop an outer IPv4 header whose checksum fails; so does
 * the decap's "malformed" (it passes it on as it is, for the kernel to drop). */
static __always_inline int ipv4_csum_ok(struct iphdr *ip, void *data_end, __u32 hlen)
{
	__u16 *w = (__u16 *)ip;
	__u32 s = 0;

#pragma unroll
	for (int i = 0; i < IPV4_HLEN_MAX / 2; i++) {
		if (i < hlen / 2) {
			if ((void *)(w + i + 1) > data_end)
				return 0;
			s += w[i];
		}
	}
	return xvs_csum_fold(s) == 0;
}

SEC("xdp")
int xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 frame = (__u32)(data_end - data);
	__u32 l2, hlen, outer_len, inner_len;
	__be16 ethertype, inner_type;
	__be32 vip[4] = {};
	enum xvs_decap_af af, *fams;
	__be16 *et;
	__u8 proto;

	if (xvs_parse_l2(data, data_end, &l2, &ethertype) < 0 || l2 > XVS_L2_MAX)
		return XDP_PASS;
	if (ethertype == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + l2;

		if ((void *)(ip + 1) > data_end)
			return XDP_PASS;
		proto = ip->protocol;
		if (proto != IPPROTO_IPIP && proto != IPPROTO_IPV6)
			return XDP_PASS;
		hlen = ip->ihl * 4;
		if (ip->version != 4 || hlen < sizeof(*ip) || (ip->frag_off & bpf_htons(0x3fff)) || !ipv4_csum_ok(ip, data_end, hlen))
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		outer_len = bpf_ntohs(ip->tot_len);
	} else if (ethertype == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + l2;

		if ((void *)(ip6 + 1) > data_end)
			return XDP_PASS;
		proto = ip6->nexthdr;
		if (proto != IPPROTO_IPIP && proto != IPPROTO_IPV6)
			return XDP_PASS;
		if (ip6->version != 6)
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		hlen = XVS_IPV6_HLEN;
		outer_len = XVS_IPV6_HLEN + bpf_ntohs(ip6->payload_len);
	} else {
		return XDP_PASS;
	}
	/* The outer packet inside the frame, the inner one inside the outer. */
	if (outer_len < hlen || l2 + outer_len > frame)
		return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
	inner_len = outer_len - hlen;
	if (proto == IPPROTO_IPIP) {
		struct iphdr *in = data + l2 + hlen;
		__u32 tot;

		if ((void *)(in + 1) > data_end)
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		tot = bpf_ntohs(in->tot_len);
		if (in->version != 4 || in->ihl < 5 || tot < in->ihl * 4U || tot > inner_len)
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		vip[0] = in->daddr;
		af = XVS_DECAP_AF_INET;
		inner_type = bpf_htons(ETH_P_IP);
	} else {
		struct ipv6hdr *in6 = data + l2 + hlen;

		if ((void *)(in6 + 1) > data_end)
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		if (in6->version != 6 || XVS_IPV6_HLEN + bpf_ntohs(in6->payload_len) > inner_len)
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		__builtin_memcpy(vip, &in6->daddr, sizeof(vip));
		af = XVS_DECAP_AF_INET6;
		inner_type = bpf_htons(ETH_P_IPV6);
	}
	fams = bpf_map_lookup_elem(&xvs_decap_vips, vip);
	if (!fams || !(*fams & af))
		return count(XVS_DECAP_CNT_NOT_VIP, XDP_PASS);

	if (xvs_move_l2(ctx, l2, 0, hlen))
		return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
	/* From here the frame is half moved: it cannot go on as it was. */
	if (bpf_xdp_adjust_head(ctx, (int)hlen))
		return count(XVS_DECAP_CNT_MALFORMED, XDP_DROP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/* The last ethertype (after any tags) now names the inner family. */
	et = data + l2 - sizeof(*et);
	if ((void *)(et + 1) > data_end)
		return count(XVS_DECAP_CNT_MALFORMED, XDP_DROP);
	*et = inner_type;
	return count(XVS_DECAP_CNT_DECAPPED, XDP_PASS);
}

/* Never called: its signature puts the counter enum, which no map type or
 * struct member carries, into the object's BTF for test/abi.test.ts. */
__attribute__((used)) int xvs_decap_abi_enums(enum xvs_decap_counter counter)
{
	return counter;
}

char LICENSE[] SEC("license") = "GPL";
