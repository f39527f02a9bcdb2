/* SPDX-License-Identifier: GPL-2.0 */
/* ICMP "destination unreachable" built in place and sent back where the
 * packet came from: fragmentation needed (PMTUD through the tunnel) and port
 * unreachable (a service with no real server, as IPVS answers). */
#ifndef XVS_ICMP_H
#define XVS_ICMP_H

#include "common.h"
#include "maps.h"

/* linux/icmp.h would pull in linux/if.h and, through it, the C library's
 * sys/socket.h; the dataplane needs only this much of ICMP (RFC 792/1191). */
struct xvs_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 unused;
	__be16 mtu; /* next-hop MTU of a fragmentation-needed message */
};

enum {
	ICMP_DEST_UNREACH = 3,
	ICMP_PORT_UNREACH = 3,
	ICMP_FRAG_NEEDED = 4,
};

#define XVS_ICMP_ROOM (sizeof(struct iphdr) + sizeof(struct xvs_icmphdr))
/* Quoted: the offending IP header (options included) and 8 bytes after it. */
#define XVS_ICMP_QUOTE_MAX (60 + 8)

static __always_inline int xvs_icmp_unreach(struct xdp_md *ctx, const struct xvs_pkt *p, __u8 code, __u16 mtu)
{
	__u32 l2 = p->l2_len, quote = p->ip_hlen + 8, frame_len;
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct xvs_icmphdr *ic;
	__u8 mac[ETH_ALEN];
	__u16 *w;
	__u32 sum = 0;

	if (quote > XVS_ICMP_QUOTE_MAX || l2 > XVS_L2_MAX)
		return XDP_DROP;
	if (xvs_push_room(ctx, l2, XVS_ICMP_ROOM))
		goto err;
	frame_len = l2 + XVS_ICMP_ROOM + quote;
	if (bpf_xdp_adjust_tail(ctx, (int)frame_len - (int)bpf_xdp_get_buff_len(ctx)))
		goto err;

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		goto err;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	iph = data + l2;
	ic = (void *)(iph + 1);
	if ((void *)(ic + 1) > data_end)
		goto err;
	/* TOS internetwork control, as the kernel's icmp_send. */
	xvs_ipv4_hdr(iph, 0xc0, XVS_ICMP_ROOM + quote, 0, 0, 64, IPPROTO_ICMP, p->daddr, p->saddr);

	ic->type = ICMP_DEST_UNREACH;
	ic->code = code;
	ic->checksum = 0;
	ic->unused = 0;
	ic->mtu = bpf_htons(mtu);

	w = (__u16 *)ic;
#pragma unroll
	for (int i = 0; i < (sizeof(struct xvs_icmphdr) + XVS_ICMP_QUOTE_MAX) / 2; i++) {
		if (i * 2 >= sizeof(struct xvs_icmphdr) + quote)
			break;
		if ((void *)(w + i + 1) > data_end)
			goto err;
		sum += w[i];
	}
	ic->checksum = xvs_csum_fold(sum);
	return XDP_TX;

err:
	xvs_count(XVS_CNT_ERROR);
	return XDP_DROP;
}

#endif
