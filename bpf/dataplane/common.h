/* SPDX-License-Identifier: GPL-2.0 */
#ifndef XVS_COMMON_H
#define XVS_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xvs_abi.h"
#include "csum.h"

/* A stage's "not decided yet, go on" (Katran's FURTHER_PROCESSING); every
 * other value a stage returns is the packet's XDP verdict. */
#define XVS_CONTINUE -1

/*
 * A global BPF subprogram: the verifier checks it once, on its own, instead
 * of at every place it would be inlined, and it has a stack frame of its
 * own. For the rarely taken paths (ICMP answers, opening NAT and FULLNAT
 * flows, TOA), whose size would otherwise multiply the packet path's
 * verification and crowd its 512 bytes of stack. Its pointer arguments may
 * be NULL as far as the verifier knows; it checks them.
 */
#define XVS_SUBPROG __attribute__((noinline))

/* murmur3's finaliser: every bit in reaches every bit out (the tuple hash,
 * GUE's source port, a FULLNAT client's local address). */
static __always_inline __u32 xvs_fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* The port a NAT or FULLNAT real server is reached on: its own, or 0 for
 * the packet's, as IPVS's dest->port ? dest->port : vport (the control plane
 * stores 0 only for a real server of a port-zero or fwmark service given no
 * port). */
static __always_inline __be16 xvs_rport(const struct xvs_real *r, __be16 vport)
{
	return r->port ? r->port : vport;
}

#define XVS_VLAN_MAX 2
#define XVS_L2_MAX (ETH_HLEN + 4 * XVS_VLAN_MAX)
#define XVS_IPV6_HLEN 40

/*
 * One parsed packet, whatever its family: offsets from ctx->data, addresses
 * as 16 bytes (IPv4 in word 0, the rest zero, as in the ABI), ports in
 * network order. Its first 40 bytes are its 5-tuple as the connection tables
 * key it (`key`), so a lookup needs no copy. The flow stage adds whose
 * packet it is. It lives in a per-CPU map (xvs_scratch), not on the stack,
 * which the packet path's subprograms need.
 */
struct xvs_pkt {
	union {
		struct xvs_conn_key key;
		struct {
			__be32 saddr[4];
			__be32 daddr[4];
			__be16 sport;
			__be16 dport;
			__u8 proto;        /* L4: IPPROTO_TCP or IPPROTO_UDP */
			__u8 family;       /* XVS_AF_* */
			__u8 key_pad[2];
		};
	};
	__u32 l3_off;      /* = the L2 header's length */
	__u32 l4_off;      /* after the IPv4 header with options, or IPv6 with extension headers */
	__u16 ip_len;      /* the whole IP packet: IPv4 total length, or 40 + IPv6 payload length */
	__u8 tcp_flags;
	__u8 df;           /* IPv4 DF; always 1 for IPv6, which routers never fragment */
	__u8 tos;          /* IPv4 TOS or IPv6 traffic class */
	__u8 ttl;          /* IPv4 TTL or IPv6 hop limit */
	__u16 payload;     /* TCP: bytes of data after the header */
	__u8 is_new;       /* this packet created its flow */
	__u8 toa;          /* FULLNAT: this segment is to carry the client's address */
	__u32 svc_id;
	__u32 real_id;
	__u32 laddr_id;    /* FULLNAT: the flow's local address (xvs_laddrs) ... */
	__be16 lport;      /* ... and port */
	__u8 pad0[2];
};

#define XVS_TCP_FIN 0x01
#define XVS_TCP_SYN 0x02
#define XVS_TCP_RST 0x04
#define XVS_TCP_ACK 0x10

/* Two bytes as a 16-bit word holds them in memory, in either byte order. */
static __always_inline __u16 xvs_bytes16(__u8 first, __u8 second)
{
	union {
		__u8 b[2];
		__u16 w;
	} u = { .b = { first, second } };

	return u.w;
}

/* A fresh option-less IPv4 header, checksum included. The checksum is
 * summed from the values, never read back from the header: the header is
 * a fresh line (an encapsulation's, in the frame's headroom), and reading
 * two bytes as one word where they were stored one by one waits for the
 * line (in TUN's new flow a quarter of the program's time). Byte 0 is
 * stored whole for the same reason: a bitfield store reads the byte first. */
static __always_inline void xvs_ipv4_hdr(struct iphdr *iph, __u8 tos, __u16 tot_len, __be16 id, __be16 frag_off,
					 __u8 ttl, __u8 proto, __be32 saddr, __be32 daddr)
{
	__be16 len = bpf_htons(tot_len);
	__u32 s = (__u32)xvs_bytes16(0x45, tos) + len + id + frag_off + xvs_bytes16(ttl, proto) + (saddr & 0xffff) +
		  (saddr >> 16) + (daddr & 0xffff) + (daddr >> 16);

	*(__u8 *)iph = 0x45; /* version 4, 5 words */
	iph->tos = tos;
	iph->tot_len = len;
	iph->id = id;
	iph->frag_off = frag_off;
	iph->ttl = ttl;
	iph->protocol = proto;
	iph->saddr = saddr;
	iph->daddr = daddr;
	iph->check = xvs_csum_finish((__wsum)s);
}

/* An IPv6 header's traffic class: what IPv4 calls TOS. */
static __always_inline __u8 xvs_ipv6_tclass(const struct ipv6hdr *ip6)
{
	return (bpf_ntohs(*(const __be16 *)ip6) >> 4) & 0xff;
}

/* A fresh IPv6 header without extension headers. */
static __always_inline void xvs_ipv6_hdr(struct ipv6hdr *ip6, __u8 tclass, __u16 payload_len, __u8 nexthdr,
					 __u8 hop_limit, const __be32 *saddr, const __be32 *daddr)
{
	*(__be32 *)ip6 = bpf_htonl(0x60000000 | ((__u32)tclass << 20));
	ip6->payload_len = bpf_htons(payload_len);
	ip6->nexthdr = nexthdr;
	ip6->hop_limit = hop_limit;
	__builtin_memcpy(&ip6->saddr, saddr, 16);
	__builtin_memcpy(&ip6->daddr, daddr, 16);
}

/* Moves the L2 header (l2_len of 14, 18 or 22 bytes) from data+from to
 * data+to after an adjust_head; a stack copy keeps overlapping moves right. */
static __always_inline int xvs_move_l2(struct xdp_md *ctx, __u32 l2_len, __u32 from, __u32 to)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 tmp[XVS_L2_MAX];

	if (from > 64 || to > 64)
		return -1;
	if (data + from + XVS_L2_MAX > data_end || data + to + XVS_L2_MAX > data_end)
		return -1;
	if (l2_len == ETH_HLEN) {
		__builtin_memcpy(tmp, data + from, ETH_HLEN);
		__builtin_memcpy(data + to, tmp, ETH_HLEN);
	} else if (l2_len == ETH_HLEN + 4) {
		__builtin_memcpy(tmp, data + from, ETH_HLEN + 4);
		__builtin_memcpy(data + to, tmp, ETH_HLEN + 4);
	} else if (l2_len == ETH_HLEN + 8) {
		__builtin_memcpy(tmp, data + from, ETH_HLEN + 8);
		__builtin_memcpy(data + to, tmp, ETH_HLEN + 8);
	} else {
		return -1;
	}
	return 0;
}

/* Opens `room` bytes between the L2 header and what followed it; the caller
 * reloads data/data_end and re-checks before writing there. */
static __always_inline int xvs_push_room(struct xdp_md *ctx, __u32 l2_len, __u32 room)
{
	if (bpf_xdp_adjust_head(ctx, -(int)room))
		return -1;
	return xvs_move_l2(ctx, l2_len, room, 0);
}

/* The last ethertype of the L2 header (after up to two VLAN tags) and its length. */
struct xvs_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* Returns 0 with the L2 length and the ethertype after the tags, or -1. */
static __always_inline int xvs_parse_l2(void *data, void *data_end, __u32 *l2_len, __be16 *ethertype)
{
	struct ethhdr *eth = data;
	__u32 off = ETH_HLEN;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return -1;
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < XVS_VLAN_MAX; i++) {
		struct xvs_vlan_hdr *vh = data + off;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end)
			return -1;
		proto = vh->proto;
		off += sizeof(*vh);
	}
	*l2_len = off;
	*ethertype = proto;
	return 0;
}

#endif
