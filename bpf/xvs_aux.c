// SPDX-License-Identifier: GPL-2.0
/*
 * Small XDP programs around the director, not part of it:
 *  - xdp_pass: attached to the switch-side peer of a veth so that frames the
 *    director sends with XDP_TX are received (veth needs an XDP program on
 *    the peer for that).
 *  - xdp_macswap: the benchmark floor, the least an XDP_TX forwarder can do.
 *  - xdp_sink: counts the chain's frames and drops everything (bench receiver).
 *  - xdp_gen: live-frame generator: rewrites the whole frame from a template
 *    every run (live-frame pages come back with whatever was written), and
 *    for new-flow chains gives frame n its own 5-tuple: source port
 *    1024 + n % 64512 and n / 64512 in the last bytes of the source address.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GEN_MAX 128

#define GEN_PORTS 64512 /* source ports 1024..65535 */

struct gen_tmpl {
	__u32 len;        /* bytes of frame to write, <= GEN_MAX */
	__u32 vary;       /* when set, every frame gets the next 5-tuple */
	__u32 port_off;   /* the source port */
	__u32 addr_off;   /* the last byte(s) of the source address */
	__u32 addr_bytes; /* 1 or 2: how many of them the sequence may use */
	__u32 pad0;
	__u8 frame[GEN_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_tmpl);
} gen_tmpl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} aux_count SEC(".maps");

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int xdp_macswap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 tmp[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return XDP_TX;
}

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 k = 0;
	__u64 *c;

	/* Counts the chain's frames only: an IPv6 stack on the other end sends
	 * an MLD report (hop-by-hop, ICMPv6) now and then, which is not one. */
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		__u8 *nh = data + ETH_HLEN + 6;

		if ((void *)(nh + 1) > data_end || *nh == 0 || *nh == 58)
			return XDP_DROP;
	}
	c = bpf_map_lookup_elem(&aux_count, &k);
	if (c)
		*c += 1;
	return XDP_DROP;
}

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 k = 0, k1 = 1;
	struct gen_tmpl *t = bpf_map_lookup_elem(&gen_tmpl, &k);
	__u64 *seq = bpf_map_lookup_elem(&aux_count, &k1);

	if (!t || !seq)
		return XDP_ABORTED;
	if (data + GEN_MAX > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, t->frame, GEN_MAX);
	if (t->vary) {
		__u64 n = (*seq)++;
		__u16 port = 1024 + n % GEN_PORTS;
		__u32 hi = n / GEN_PORTS;
		__u8 *pp = data + (t->port_off & (GEN_MAX - 1));
		__u8 *ap = data + (t->addr_off & (GEN_MAX - 1));

		if ((void *)(pp + 2) > data_end || (void *)(ap + 2) > data_end)
			return XDP_ABORTED;
		pp[0] = port >> 8;
		pp[1] = port & 0xff;
		if (t->addr_bytes == 2) {
			ap[0] = hi >> 8;
			ap[1] = hi & 0xff;
		} else {
			ap[0] = hi & 0xff;
		}
	}
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
