// SPDX-License-Identifier: GPL-2.0
/*
 * Real-server helper for LVS-TUN on kernels without the tunnel modules
 * (ipip, sit, ip6_tunnel, fou, ip_gre): strips the outer IPv4 or IPv6 header
 * of a packet that carries an IPv4 or IPv6 packet whose destination is a VIP
 * of that family in xvs_decap_vips, and passes the inner packet to the
 * kernel, which delivers it to the VIP on lo. The inner packet comes right
 * after the outer header (protocol 4 or 41: IPIP, 6 in 4 (SIT), 4 in 6 and
 * 6 in 6), after UDP to one of the ports in xvs_decap_ports and a GUE
 * header, or after a GRE header; encap.h says what the director writes.
 * Everything else passes untouched: other traffic (UDP to other ports, GRE
 * carrying anything but IP) uncounted, tunnelled packets to other addresses
 * and malformed ones counted. A malformed tunnel is one whose headers do not
 * nest or check: a bad outer IPv4 checksum, a fragment, lengths that do not
 * fit, a UDP or GRE checksum that fails, a GUE header with a version,
 * control bit, optional fields or flags, a GRE header with a flag other than
 * the checksum's (key, sequence, routing) or a version. Only the outer
 * header is read: an IPv6 outer header with extension headers is not one the
 * director writes, and goes to the kernel as it is. A UDP checksum of 0 is
 * taken over IPv6 too, as RFC 6935 lets a tunnel endpoint, since IPVS sends
 * GUE without a checksum that way.
 *
 * Includes dataplane/common.h (and the headers' definitions) only: the
 * director's maps (parse.h, maps.h) would otherwise be created, connection
 * tables and all, on every real server that loads this object.
 */
#include "dataplane/common.h"
#include "dataplane/encap.h"
#include "dataplane/pktsum.h"

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

/* The ports GUE arrives on, a bitmap (see XVS_DECAP_GUE_WORDS). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_DECAP_GUE_WORDS);
	__type(key, __u32);
	__type(value, __u32);
} xvs_decap_ports SEC(".maps");

#define IPV4_HLEN_MAX 60
#define ETH_P_IP_BE bpf_htons(ETH_P_IP)
#define ETH_P_IPV6_BE bpf_htons(ETH_P_IPV6)

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
	return xvs_csum_finish((__wsum)s) == 0;
}

static __always_inline int is_gue_port(__be16 port)
{
	__u32 p = bpf_ntohs(port), key = p / 32;
	__u32 *w = bpf_map_lookup_elem(&xvs_decap_ports, &key);

	return w && (*w & (1U << (p % 32)));
}

/*
 * Whether the packet after the outer header (at `at`) is a tunnel of ours at
 * all: IPIP and IPv6 in IP always, UDP to a GUE port, GRE carrying IPv4 or
 * IPv6. What is not goes to the kernel uncounted, whatever else is wrong.
 */
static __always_inline int ours(void *data, void *data_end, __u32 at, __u8 proto)
{
	if (proto == IPPROTO_IPIP || proto == XVS_IPPROTO_IPV6)
		return 1;
	if (at > XVS_L2_MAX + IPV4_HLEN_MAX)
		return 0;
	if (proto == IPPROTO_UDP) {
		struct udphdr *uh = data + at;

		return (void *)(uh + 1) <= data_end && is_gue_port(uh->dest);
	}
	if (proto == XVS_IPPROTO_GRE) {
		struct xvs_grehdr *gh = data + at;

		return (void *)(gh + 1) <= data_end && (gh->proto == ETH_P_IP_BE || gh->proto == ETH_P_IPV6_BE);
	}
	return 0;
}

/* Checks the checksum a GUE or GRE header carries; 0 when it verifies (or there is none). */
XVS_SUBPROG int tunnel_csum_bad(struct xdp_md *ctx, __u32 at, __u32 len, __u32 pseudo, __u8 proto)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (at > XVS_L2_MAX + IPV4_HLEN_MAX)
		return 1;
	if (proto == IPPROTO_UDP) {
		struct udphdr *uh = data + at;

		if ((void *)(uh + 1) > data_end)
			return 1;
		if (!uh->check)
			return 0;
		return xvs_pkt_sum(ctx, at, len, pseudo + bpf_htons(len) + bpf_htons(IPPROTO_UDP)) != 0xffff;
	}
	{
		struct xvs_grehdr *gh = data + at;

		if ((void *)(gh + 1) > data_end)
			return 1;
		if (!(gh->flags & bpf_htons(XVS_GRE_F_CSUM)))
			return 0;
		return xvs_pkt_sum(ctx, at, len, 0) != 0xffff;
	}
}

SEC("xdp")
int xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 frame = (__u32)(data_end - data);
	__u32 l2, hlen, outer_len, inner_len, encap = 0, pseudo = 0;
	__be16 ethertype, inner_type;
	__be32 vip[4] = {};
	enum xvs_decap_af af, *fams;
	__u8 proto, inner_proto;
	__be16 *et;

	if (xvs_parse_l2(data, data_end, &l2, &ethertype) < 0 || l2 > XVS_L2_MAX)
		return XDP_PASS;
	if (ethertype == ETH_P_IP_BE) {
		struct iphdr *ip = data + l2;

		if ((void *)(ip + 1) > data_end)
			return XDP_PASS;
		proto = ip->protocol;
		hlen = ip->ihl * 4;
		/* A later fragment carries no UDP or GRE header to tell by. */
		if (proto != IPPROTO_IPIP && proto != XVS_IPPROTO_IPV6 &&
		    (hlen < sizeof(*ip) || (ip->frag_off & bpf_htons(0x1fff)) || !ours(data, data_end, l2 + hlen, proto)))
			return XDP_PASS;
		if (ip->version != 4 || hlen < sizeof(*ip) || (ip->frag_off & bpf_htons(0x3fff)) || !ipv4_csum_ok(ip, data_end, hlen))
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		outer_len = bpf_ntohs(ip->tot_len);
		pseudo = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) + (ip->daddr >> 16);
	} else if (ethertype == ETH_P_IPV6_BE) {
		struct ipv6hdr *ip6 = data + l2;

		if ((void *)(ip6 + 1) > data_end)
			return XDP_PASS;
		proto = ip6->nexthdr;
		hlen = XVS_IPV6_HLEN;
		if (!ours(data, data_end, l2 + hlen, proto))
			return XDP_PASS;
		if (ip6->version != 6)
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		outer_len = XVS_IPV6_HLEN + bpf_ntohs(ip6->payload_len);
#pragma unroll
		for (int i = 0; i < 4; i++) {
			__be32 s = ip6->saddr.in6_u.u6_addr32[i], d = ip6->daddr.in6_u.u6_addr32[i];

			pseudo += (s & 0xffff) + (s >> 16) + (d & 0xffff) + (d >> 16);
		}
	} else {
		return XDP_PASS;
	}
	/* The outer packet inside the frame, the inner one inside the outer. */
	if (outer_len < hlen || l2 + outer_len > frame || l2 + hlen > XVS_L2_MAX + IPV4_HLEN_MAX)
		return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
	inner_len = outer_len - hlen;
	inner_proto = proto;
	if (proto == IPPROTO_UDP) {
		struct udphdr *uh = data + l2 + hlen;
		struct xvs_guehdr *gh = (void *)(uh + 1);
		__u32 ulen;

		if ((void *)(gh + 1) > data_end)
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		ulen = bpf_ntohs(uh->len);
		if (ulen < XVS_GUE_LEN || ulen > inner_len || gh->ctl || gh->flags ||
		    (gh->proto != IPPROTO_IPIP && gh->proto != XVS_IPPROTO_IPV6))
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		inner_proto = gh->proto;
		encap = XVS_GUE_LEN;
		inner_len = ulen;
	} else if (proto == XVS_IPPROTO_GRE) {
		struct xvs_grehdr *gh = data + l2 + hlen;

		if ((void *)(gh + 1) > data_end || (gh->flags & ~bpf_htons(XVS_GRE_F_CSUM)))
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		inner_proto = gh->proto == ETH_P_IP_BE ? IPPROTO_IPIP : XVS_IPPROTO_IPV6;
		encap = gh->flags ? sizeof(struct xvs_grehdr_csum) : sizeof(struct xvs_grehdr);
		if (inner_len < encap)
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
	}
	if (encap) {
		if (tunnel_csum_bad(ctx, l2 + hlen, inner_len, pseudo, proto))
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		inner_len -= encap;
	}
	if (inner_proto == IPPROTO_IPIP) {
		struct iphdr *in = data + l2 + hlen + encap;
		__u32 tot;

		if ((void *)(in + 1) > data_end)
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		tot = bpf_ntohs(in->tot_len);
		if (in->version != 4 || in->ihl < 5 || tot < in->ihl * 4U || tot > inner_len)
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		vip[0] = in->daddr;
		af = XVS_DECAP_AF_INET;
		inner_type = ETH_P_IP_BE;
	} else {
		struct ipv6hdr *in6 = data + l2 + hlen + encap;

		if ((void *)(in6 + 1) > data_end)
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		if (in6->version != 6 || XVS_IPV6_HLEN + bpf_ntohs(in6->payload_len) > inner_len)
			return count(XVS_DECAP_CNT_MALFORMED, XDP_PASS);
		__builtin_memcpy(vip, &in6->daddr, sizeof(vip));
		af = XVS_DECAP_AF_INET6;
		inner_type = ETH_P_IPV6_BE;
	}
	fams = bpf_map_lookup_elem(&xvs_decap_vips, vip);
	if (!fams || !(*fams & af))
		return count(XVS_DECAP_CNT_NOT_VIP, XDP_PASS);

	/* Everything up to the inner packet goes: the outer header and the tunnel's. */
	hlen += encap;
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
