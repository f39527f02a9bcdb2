/* SPDX-License-Identifier: GPL-2.0 */
/* Ethernet (up to two VLAN tags), IPv4 and the TCP/UDP ports. Anything that
 * does not parse cleanly is reported, never guessed at. */
#ifndef XVS_PARSE_H
#define XVS_PARSE_H

#include <linux/tcp.h>
#include <linux/udp.h>
#include "common.h"

#define XVS_PARSE_OK 0
#define XVS_PARSE_NOT_IP 1
#define XVS_PARSE_MALFORMED 2
#define XVS_PARSE_FRAGMENT 3
#define XVS_PARSE_OTHER_L4 4

struct xvs_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline int xvs_parse_l2(void *data, void *data_end, __u32 *l2_len)
{
	struct ethhdr *eth = data;
	__u32 off = ETH_HLEN;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return XVS_PARSE_MALFORMED;
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < XVS_VLAN_MAX; i++) {
		struct xvs_vlan_hdr *vh = data + off;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end)
			return XVS_PARSE_MALFORMED;
		proto = vh->proto;
		off += sizeof(*vh);
	}
	if (proto != bpf_htons(ETH_P_IP))
		return XVS_PARSE_NOT_IP;
	*l2_len = off;
	return XVS_PARSE_OK;
}

static __always_inline int xvs_parse(struct xdp_md *ctx, struct xvs_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *iph;
	__u32 hlen, tot;
	void *l4;
	int rc;

	rc = xvs_parse_l2(data, data_end, &p->l2_len);
	if (rc != XVS_PARSE_OK)
		return rc;
	if (p->l2_len > XVS_L2_MAX)
		return XVS_PARSE_MALFORMED;
	iph = data + p->l2_len;
	if ((void *)(iph + 1) > data_end)
		return XVS_PARSE_MALFORMED;
	if (iph->version != 4 || iph->ihl < 5)
		return XVS_PARSE_MALFORMED;
	hlen = iph->ihl * 4;
	tot = bpf_ntohs(iph->tot_len);
	if (tot < hlen || (void *)iph + tot > data_end)
		return XVS_PARSE_MALFORMED;
	if (iph->frag_off & bpf_htons(0x3fff)) /* MF or an offset */
		return XVS_PARSE_FRAGMENT;
	p->ip_hlen = hlen;
	p->tot_len = tot;
	p->proto = iph->protocol;
	p->df = !!(iph->frag_off & bpf_htons(0x4000));
	p->tos = iph->tos;
	p->saddr = iph->saddr;
	p->daddr = iph->daddr;

	l4 = (void *)iph + hlen;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end || hlen + sizeof(*th) > tot)
			return XVS_PARSE_MALFORMED;
		if (th->doff < 5 || hlen + th->doff * 4 > tot)
			return XVS_PARSE_MALFORMED;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
	} else if (p->proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end || hlen + sizeof(*uh) > tot)
			return XVS_PARSE_MALFORMED;
		p->sport = uh->source;
		p->dport = uh->dest;
	} else {
		return XVS_PARSE_OTHER_L4;
	}
	return XVS_PARSE_OK;
}

#endif
