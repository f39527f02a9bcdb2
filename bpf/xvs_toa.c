// SPDX-License-Identifier: GPL-2.0
/*
 * The real server's TOA reader, in place of the out-of-tree TOA kernel
 * module: a sock_ops program on a cgroup (v2) that records, for each
 * connection of its network namespace, the client a FULLNAT director named
 * in a TOA option (kind 254), in xvs_toa_conns keyed by the connection's
 * addresses and ports, for user space to read (src/realserver/toa.ts).
 *
 * Which segments are read: the director puts the TOA in the client's
 * segment that completes the handshake, in its first data segment, or in
 * both. The kernel hands the completing segment to
 * BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB (a header-option callback never sees
 * it: bpf_skops_parse_hdr skips TCP_SYN_RECV), whether it is the ACK or,
 * when that ACK was lost, the first data segment in its place. Only when
 * that segment had no TOA and no data does the reader ask for
 * BPF_SOCK_OPS_PARSE_HDR_OPT_CB on every segment (PARSE_ALL, not
 * PARSE_UNKNOWN: the kernel reads a kind 254 whose first two bytes are
 * 0xf989 as Fast Open, so a client port of 63881 would not be "unknown"),
 * and stops at the TOA, at the first data taken in order, or at FIN/RST.
 * Established traffic then costs nothing. A TOA that arrives after data
 * was taken is never read: no director puts one there, so only a client
 * could have.
 *
 * An entry goes when its connection reaches TCP_CLOSE (STATE_CB, asked
 * for only by connections that have one), and the map is an LRU, so
 * connections that vanish unseen cannot fill it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "realserver/toa.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XVS_TOA_TABLE_DEFAULT);
	__type(key, struct xvs_toa_key);
	__type(value, struct xvs_toa_client);
} xvs_toa_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_toa_config);
} xvs_toa_config SEC(".maps");

/* The flags byte of a TCP header (skb_tcp_flags). */
#define TOA_TCP_FIN 0x01
#define TOA_TCP_RST 0x04

/* Every connection of the cgroup comes here, from any namespace; only this
 * reader's namespace is its business. */
static __always_inline int ours(struct bpf_sock_ops *skops)
{
	__u32 zero = 0;
	struct xvs_toa_config *c = bpf_map_lookup_elem(&xvs_toa_config, &zero);

	return c && c->netns_cookie != 0 && c->netns_cookie == bpf_get_netns_cookie(skops);
}

/* The connection's key from the socket; -1 for a family that is not IP.
 * (Linux's AF_INET and AF_INET6 are xvs_family's values.) */
static __always_inline int key_of(struct bpf_sock_ops *skops, struct xvs_toa_key *k)
{
	__u32 family = skops->family;

	if (family == XVS_AF_INET) {
		k->family = XVS_AF_INET;
		k->laddr[0] = skops->local_ip4;
		k->raddr[0] = skops->remote_ip4;
	} else if (family == XVS_AF_INET6) {
		__u32 r0 = skops->remote_ip6[0], r1 = skops->remote_ip6[1], r2 = skops->remote_ip6[2];

		if (r0 == 0 && r1 == 0 && r2 == bpf_htonl(0xffff)) {
			/* An IPv4 peer of an IPv6 socket: keyed as IPv4. */
			k->family = XVS_AF_INET;
			k->laddr[0] = skops->local_ip6[3];
			k->raddr[0] = skops->remote_ip6[3];
		} else {
			k->family = XVS_AF_INET6;
			k->laddr[0] = skops->local_ip6[0];
			k->laddr[1] = skops->local_ip6[1];
			k->laddr[2] = skops->local_ip6[2];
			k->laddr[3] = skops->local_ip6[3];
			k->raddr[0] = r0;
			k->raddr[1] = r1;
			k->raddr[2] = r2;
			k->raddr[3] = skops->remote_ip6[3];
		}
	} else {
		return -1;
	}
	/* local_port is host order; remote_port holds the network-order port
	 * in its upper half, which bpf_ntohl brings down. */
	k->lport = bpf_htons((__u16)skops->local_port);
	k->rport = bpf_htons((__u16)bpf_ntohl(skops->remote_port));
	return 0;
}

/* Sets and clears callback flags, keeping the ones other programs of the
 * cgroup asked for. */
static __always_inline void set_flags(struct bpf_sock_ops *skops, __u32 set, __u32 clear)
{
	__u32 cur = skops->bpf_sock_ops_cb_flags;
	__u32 want = (cur & ~clear) | set;

	if (want != cur)
		bpf_sock_ops_cb_flags_set(skops, want);
}

/* Past this segment no TOA can come from a director: it carries data that
 * is taken in order (the first data segment), or ends the connection. */
static __always_inline int ends_search(struct bpf_sock_ops *skops, const struct tcphdr *th)
{
	if (skops->skb_tcp_flags & (TOA_TCP_FIN | TOA_TCP_RST))
		return 1;
	return skops->skb_len > th->doff * 4 && bpf_ntohl(th->seq) == skops->rcv_nxt;
}

static __always_inline void on_established(struct bpf_sock_ops *skops)
{
	const void *end = (const void *)(long)skops->skb_data_end;
	const struct tcphdr *th = (const void *)(long)skops->skb_data;
	struct xvs_toa_client client = {};
	struct xvs_toa_key key = {};

	if (!ours(skops) || key_of(skops, &key))
		return;
	/* No segment: a socket repaired into being (TCP_REPAIR). */
	if ((const void *)(th + 1) > end)
		return;
	if (xvs_toa_find(th, end, &client) == XVS_TOA_FOUND) {
		client.seg = XVS_TOA_SEG_HANDSHAKE;
		bpf_map_update_elem(&xvs_toa_conns, &key, &client, BPF_ANY);
		set_flags(skops, BPF_SOCK_OPS_STATE_CB_FLAG, 0);
		return;
	}
	/* An entry under this key can only be an earlier connection's whose
	 * close went unseen (the cb flag refused, say): it must not name this
	 * one's client. */
	bpf_map_delete_elem(&xvs_toa_conns, &key);
	if (!ends_search(skops, th))
		set_flags(skops, BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG, 0);
}

static __always_inline void on_segment(struct bpf_sock_ops *skops)
{
	const void *end = (const void *)(long)skops->skb_data_end;
	const struct tcphdr *th = (const void *)(long)skops->skb_data;
	struct xvs_toa_client client = {};
	struct xvs_toa_key key = {};

	if (!ours(skops) || key_of(skops, &key))
		return;
	/* Data was taken already: the first data segment went by (without a
	 * TOA, or this callback is another program's flag). */
	if (skops->bytes_received > 0 || (const void *)(th + 1) > end) {
		set_flags(skops, 0, BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG);
		return;
	}
	if (xvs_toa_find(th, end, &client) == XVS_TOA_FOUND) {
		client.seg = XVS_TOA_SEG_LATER;
		/* One recorded at the handshake stays. */
		bpf_map_update_elem(&xvs_toa_conns, &key, &client, BPF_NOEXIST);
		set_flags(skops, BPF_SOCK_OPS_STATE_CB_FLAG, BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG);
		return;
	}
	if (ends_search(skops, th))
		set_flags(skops, 0, BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG);
}

static __always_inline void on_close(struct bpf_sock_ops *skops)
{
	struct xvs_toa_key key = {};

	if (ours(skops) && !key_of(skops, &key))
		bpf_map_delete_elem(&xvs_toa_conns, &key);
}

SEC("sockops")
int xvs_toa_reader(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_established(skops);
		break;
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
		on_segment(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			on_close(skops);
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
