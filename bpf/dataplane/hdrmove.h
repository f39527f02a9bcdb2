/* SPDX-License-Identifier: GPL-2.0 */
/* Room inside the headers, and the TOA option built on it.
 *
 * XDP can grow a frame only at its head (bpf_xdp_adjust_head) or tail.
 * Bytes inserted `at` bytes into the frame are made by growing the head and
 * moving the `at` bytes in front of the insertion point forward: what
 * follows (the payload, usually the larger part) stays where it is. The
 * moved part is bounded (XVS_HDRMOVE_MAX) and goes through a stack copy with
 * bpf_xdp_load_bytes/bpf_xdp_store_bytes (Linux 5.18), which take a
 * variable, bounded length: no per-byte loop for the verifier to walk, and
 * the overlap of source and destination cannot corrupt the copy.
 *
 * TOA ("TCP option address", kind 254) hands the client's address to a real
 * server behind FULLNAT, which replaces it. */
#ifndef XVS_HDRMOVE_H
#define XVS_HDRMOVE_H

#include "rewrite.h"

/* Two VLAN tags, IPv4 with options, TCP with options: the longest prefix
 * an insertion inside the TCP header can have. */
#define XVS_HDRMOVE_MAX (XVS_PRIM_L2_MAX + XVS_PRIM_L3_MAX + 60)
/* More than any TCP option needs; far inside XDP's 256-byte headroom. */
#define XVS_ROOM_MAX 64

/* Opens `room` bytes at offset `at` of the frame: afterwards bytes
 * [0, at) are what they were, [at, at + room) are the caller's to fill
 * (their content is undefined), and the rest follows unchanged. Every
 * packet pointer the caller held is invalid afterwards: reload ctx->data
 * and ctx->data_end and check again before writing into the room. */
/* The moved headers' copy: a per-CPU map value rather than the stack, which
 * a caller's chain of subprograms shares (512 bytes in all). Never pinned. */
struct xvs_hdrmove_buf {
	__u8 b[XVS_HDRMOVE_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_hdrmove_buf);
} xvs_hdrmove_scratch SEC(".maps");

static __always_inline int xvs_open_room(struct xdp_md *ctx, __u32 at, __u32 room)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct xvs_hdrmove_buf *hb = bpf_map_lookup_elem(&xvs_hdrmove_scratch, &zero);
	__u8 *buf;

	if (!hb)
		return XVS_PRIM_EARG;
	buf = hb->b;
	if (at > XVS_HDRMOVE_MAX || room == 0 || room > XVS_ROOM_MAX)
		return XVS_PRIM_EARG;
	if (data + at > data_end)
		return XVS_PRIM_EBOUNDS;
	if (at > 0 && bpf_xdp_load_bytes(ctx, 0, buf, at))
		return XVS_PRIM_EBOUNDS;
	if (bpf_xdp_adjust_head(ctx, -(int)room))
		return XVS_PRIM_EADJUST;
	/* The frame moved: only offsets from the new ctx->data mean anything. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + at + room > data_end || (at > 0 && bpf_xdp_store_bytes(ctx, 0, buf, at))) {
		/* Gives the headroom back: the frame is as it came. */
		bpf_xdp_adjust_head(ctx, (int)room);
		return XVS_PRIM_EBOUNDS;
	}
	return XVS_PRIM_OK;
}

/* The inverse of xvs_open_room: removes bytes [at, at + room) of the frame
 * by moving the `at` bytes in front of them forward and giving the head
 * back. Packet pointers are invalid afterwards, as there. */
static __always_inline int xvs_close_room(struct xdp_md *ctx, __u32 at, __u32 room)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct xvs_hdrmove_buf *hb = bpf_map_lookup_elem(&xvs_hdrmove_scratch, &zero);
	__u8 *buf;

	if (!hb)
		return XVS_PRIM_EARG;
	buf = hb->b;
	if (at > XVS_HDRMOVE_MAX || room == 0 || room > XVS_ROOM_MAX)
		return XVS_PRIM_EARG;
	if (data + at + room > data_end)
		return XVS_PRIM_EBOUNDS;
	if (at > 0 && (bpf_xdp_load_bytes(ctx, 0, buf, at) || bpf_xdp_store_bytes(ctx, room, buf, at)))
		return XVS_PRIM_EBOUNDS;
	if (bpf_xdp_adjust_head(ctx, (int)room))
		return XVS_PRIM_EADJUST;
	return XVS_PRIM_OK;
}

#define XVS_TCPOPT_EOL 0
#define XVS_TCPOPT_NOP 1
#define XVS_TCPOPT_TOA 254
#define XVS_TCP_OPT_SPACE 40
/* Stack copy of the option area: 40 bytes, zeros after them for the walk
 * to stop on, and room for any index the walk's mask lets through. */
#define XVS_TCP_OPT_BUF 64
/* Linux TOA module (toa.h: struct toa_data; DPVS kmod/toa: struct
 * toa_ip4_data): kind, length 8, port, IPv4 address. */
#define XVS_TOA4_LEN 8
/* DPVS (include/ipvs/proto_tcp.h: struct tcpopt_ip6_addr,
 * TCP_OLEN_IP6_ADDR; kmod/toa/toa.h: struct toa_ip6_data): kind, length
 * 20, port, IPv6 address. */
#define XVS_TOA6_LEN 20

/* Where the option list ends in a stack copy of the options that is zero
 * past the header (the first EOL, or where the options stop), or why the
 * TOA cannot go in. Options are walked by kind and length, since an EOL
 * byte can sit inside another option's data.
 *
 * The zeros past the header read as an EOL, so the walk needs no length:
 * an end beyond the header means an option ran past it (the caller
 * checks). `off` is masked after each step, a no-op (it is at most 40
 * there) hidden from the compiler by a barrier so that it stays: the
 * verifier's AND forgets the lower bound, `off` then has one range on
 * every path, and the walk's states converge instead of multiplying with
 * each option layout. */
static __always_inline int xvs_tcp_opts_end(const __u8 *opts, __u32 *end)
{
	__u32 off = 0;

	for (int i = 0; i < XVS_TCP_OPT_SPACE; i++) {
		__u8 kind, len;

		if (off >= XVS_TCP_OPT_SPACE)
			break;
		kind = opts[off];
		if (kind == XVS_TCPOPT_EOL)
			break;
		len = 1;
		if (kind != XVS_TCPOPT_NOP) {
			len = opts[off + 1];
			if (len < 2 || off + len > XVS_TCP_OPT_SPACE)
				return XVS_PRIM_EBOUNDS;
			if (kind == XVS_TCPOPT_TOA)
				return XVS_PRIM_EEXIST;
		}
		off += len;
		asm volatile("" : "+r"(off));
		off &= XVS_TCP_OPT_BUF - 1;
	}
	*end = off;
	return XVS_PRIM_OK;
}

/* Inserts a TOA option carrying `port` and `addr` (the client's, network
 * order; `toa_family` picks the 8-byte IPv4 or the 20-byte IPv6 form, and
 * may differ from the packet's `family`) into the TCP packet whose IP
 * header starts at l3_off. The data offset, the IPv4 total length or IPv6
 * payload length, the IPv4 header checksum and the TCP checksum follow
 * incrementally.
 *
 * Placement: appended after the existing options, at the end of the TCP
 * header. Both lengths are multiples of 4, so the header and the option
 * stay 4-byte aligned with no padding. An EOL would hide the option from a
 * receiver's walk, so an EOL and the padding after it become NOPs: the
 * list means the same, and the TOA lands on the same aligned boundary.
 *
 * How: xvs_open_room moves L2, L3 and the TCP header forward by the
 * option's length, the option goes into the room, and the options change
 * only where an EOL was. The checksum follows from the words that changed
 * (the payload moved by a multiple of 4, so its words sum as before).
 *
 * Refused untouched: no room in the 40 bytes (XVS_PRIM_ENOSPC), a TOA
 * already present (XVS_PRIM_EEXIST, reported before ENOSPC: a TOA module
 * takes the first it finds, so a client's own must not be passed on by a
 * caller that forwards without TOA when there is no room), malformed
 * options, fragments, or anything xvs_locate_l4 refuses.
 *
 * A larger segment may exceed the path MTU; the caller sees to MSS. */
static __always_inline int xvs_toa_insert(struct xdp_md *ctx, __u32 l3_off, __u8 family, __u8 toa_family,
					  const __be32 *addr, __be16 port)
{
	__u8 old[XVS_TCP_OPT_BUF] = {};
	struct {
		__u8 kind;
		__u8 len;
		__be16 port;
		__be32 addr[4];
	} toa = {};
	struct xvs_l4_at at = {};
	void *data, *data_end, *l3;
	__u32 hlen, optlen, end, toalen, ip_len, eol;
	__be16 old_hw, new_hw, old_len, new_len;
	struct tcphdr *th;
	__wsum d = 0;
	int rc;

	if (toa_family != XVS_PRIM_INET && toa_family != XVS_PRIM_INET6)
		return XVS_PRIM_EARG;
	rc = xvs_locate_l4(ctx, l3_off, family, &at);
	if (rc)
		return rc;
	if (at.proto != IPPROTO_TCP)
		return XVS_PRIM_EPROTO;
	if (at.l4_off > XVS_PRIM_L4_OFF_MAX || l3_off > XVS_PRIM_L2_MAX)
		return XVS_PRIM_EBOUNDS;

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	th = data + at.l4_off;
	if ((void *)(th + 1) > data_end)
		return XVS_PRIM_EBOUNDS;
	hlen = th->doff * 4;
	if (hlen < sizeof(*th))
		return XVS_PRIM_EBOUNDS;
	optlen = hlen - sizeof(*th);
	if (optlen > 0 && bpf_xdp_load_bytes(ctx, at.l4_off + sizeof(*th), old, optlen))
		return XVS_PRIM_EBOUNDS;
	rc = xvs_tcp_opts_end(old, &end);
	if (rc)
		return rc;
	if (end > optlen)
		return XVS_PRIM_EBOUNDS;

	/* EOL and what follows it become NOPs in the stack copy; the words
	 * that changed go into the delta. */
	eol = end < optlen;
	if (eol) {
		__u8 orig[XVS_TCP_OPT_SPACE];

		__builtin_memcpy(orig, old, XVS_TCP_OPT_SPACE);
		for (__u32 n = 0; n < XVS_TCP_OPT_SPACE; n++) {
			__u32 k = end + n;

			if (k >= optlen)
				break;
			/* Kept from becoming a memset call, which BPF has not. */
			asm volatile("" : "+r"(k));
			old[k & (XVS_TCP_OPT_BUF - 1)] = XVS_TCPOPT_NOP;
		}
#pragma unroll
		for (int i = 0; i < XVS_TCP_OPT_SPACE; i += 4)
			d = xvs_csum_diff4(d, *(__be32 *)&orig[i], *(__be32 *)&old[i]);
	}

	/* The header length is read again rather than carried over, and the
	 * option length chosen only now: the rest then looks the same to the
	 * verifier whichever way the walk went, and its states merge instead
	 * of multiplying with every option layout. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	th = data + at.l4_off;
	if ((void *)(th + 1) > data_end)
		return XVS_PRIM_EBOUNDS;
	hlen = th->doff * 4;
	if (hlen < sizeof(*th))
		return XVS_PRIM_EBOUNDS;
	optlen = hlen - sizeof(*th);
	toalen = toa_family == XVS_PRIM_INET ? XVS_TOA4_LEN : XVS_TOA6_LEN;
	if (optlen + toalen > XVS_TCP_OPT_SPACE)
		return XVS_PRIM_ENOSPC;
	/* The IP length field must still hold the grown packet. */
	ip_len = at.l4_len + (family == XVS_PRIM_INET ? at.l4_off - l3_off : 0);
	if (ip_len + toalen > 0xffff)
		return XVS_PRIM_EBOUNDS;

	toa.kind = XVS_TCPOPT_TOA;
	toa.len = toalen;
	toa.port = port;
	toa.addr[0] = addr[0];
	if (toa_family == XVS_PRIM_INET6) {
		toa.addr[1] = addr[1];
		toa.addr[2] = addr[2];
		toa.addr[3] = addr[3];
	}
	/* New words add themselves; the unused ones of the IPv4 form are 0. */
	d = xvs_csum_add(d, (__wsum)bpf_htons((XVS_TCPOPT_TOA << 8) | toalen));
	d = xvs_csum_add(d, (__wsum)port);
#pragma unroll
	for (int i = 0; i < 4; i++)
		d = xvs_csum_add(d, (__wsum)toa.addr[i]);
	/* The data offset shares its word with the flags. */
	__builtin_memcpy(&old_hw, (void *)th + 12, 2);
	new_hw = bpf_htons(bpf_ntohs(old_hw) + ((toalen / 4) << 12));
	d = xvs_csum_diff2(d, old_hw, new_hw);
	d = xvs_csum_diff_len(d, at.l4_len, at.l4_len + toalen);

	rc = xvs_open_room(ctx, at.l4_off + hlen, toalen);
	if (rc)
		return rc;

	/* Only offsets survive the move; every pointer is derived again. The
	 * checks restate what held before it (the frame grew by toalen right
	 * after the TCP header), so none can fail, and all come before the
	 * first write. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	th = data + at.l4_off;
	l3 = data + l3_off;
	if ((void *)(th + 1) > data_end || l3 + sizeof(struct ipv6hdr) > data_end ||
	    data + at.l4_off + hlen + toalen > data_end)
		return XVS_PRIM_EBOUNDS;
	if (bpf_xdp_store_bytes(ctx, at.l4_off + hlen, &toa, toalen))
		return XVS_PRIM_EBOUNDS;
	if (eol && optlen > 0)
		bpf_xdp_store_bytes(ctx, at.l4_off + sizeof(*th), old, optlen);
	if (family == XVS_PRIM_INET) {
		struct iphdr *iph = l3;

		old_len = iph->tot_len;
		new_len = bpf_htons(bpf_ntohs(old_len) + toalen);
		iph->tot_len = new_len;
		iph->check = xvs_csum_replace2(iph->check, old_len, new_len);
	} else {
		struct ipv6hdr *ip6 = l3;

		ip6->payload_len = bpf_htons(bpf_ntohs(ip6->payload_len) + toalen);
	}
	__builtin_memcpy((void *)th + 12, &new_hw, 2);
	th->check = xvs_csum_apply(th->check, d);
	return XVS_PRIM_OK;
}

#endif
