/* SPDX-License-Identifier: GPL-2.0 */
/* Finding the TOA (TCP option kind 254) in a TCP header, for the real
 * server's reader (bpf/xvs_toa.c) and its packet tests
 * (test/fixtures/toa_parse_test.c), which run this same code.
 *
 * The walk is the Linux TOA module's (get_toa_data): options in order, NOP
 * skipped, EOL ends the list, and the first kind 254 whose length is 8
 * (port, IPv4 address) or 20 (port, IPv6 address, as DPVS writes it) is
 * the TOA. An option of length 0 or 1, or one that runs past the header,
 * ends the walk with nothing taken, as the kernel's tcp_parse_options
 * stops there too: what follows cannot be told apart from garbage.
 *
 * bpf_load_hdr_opt() cannot do this search: for the experimental kinds
 * (253, 254) it matches a 2- or 4-byte magic after the length, and a TOA
 * has a port there. */
#ifndef XVS_RS_TOA_H
#define XVS_RS_TOA_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xvs_abi.h"

#define XVS_TOA_KIND 254
#define XVS_TOA_LEN4 8
#define XVS_TOA_LEN6 20
#define XVS_TOA_OPT_EOL 0
#define XVS_TOA_OPT_NOP 1
/* The options a TCP header can hold (data offset 15). */
#define XVS_TOA_OPT_SPACE 40
/* A stack copy of them; every index the walk's mask lets through, plus the
 * longest option's reach, stays inside it. */
#define XVS_TOA_OPT_BUF 64

enum xvs_toa_status {
	XVS_TOA_NONE = 0,       /* no TOA among the options */
	XVS_TOA_FOUND = 1,      /* *out holds the client */
	XVS_TOA_MALFORMED = -1, /* an option of length 0 or 1, or past the header, came first */
	XVS_TOA_TRUNCATED = -2, /* the header the data offset declares is not all there */
};

/* The walk over a stack copy of the options (optlen bytes of them, zeros
 * after). `off` is masked after each step: a no-op (it is below 40 there),
 * kept by the barrier, that gives it one range on every path so the
 * verifier's states converge instead of multiplying with each layout.
 * Stack reads at a variable offset are single bytes: the verifier wants
 * stack accesses aligned to their size. */
static __always_inline int xvs_toa_walk(const __u8 *opts, __u32 optlen, struct xvs_toa_client *out)
{
	__u32 off = 0;

	for (int i = 0; i < XVS_TOA_OPT_SPACE; i++) {
		__u8 kind, len;

		if (off >= optlen || off >= XVS_TOA_OPT_SPACE)
			return XVS_TOA_NONE;
		kind = opts[off];
		if (kind == XVS_TOA_OPT_EOL)
			return XVS_TOA_NONE;
		if (kind == XVS_TOA_OPT_NOP) {
			len = 1;
		} else {
			if (off + 2 > optlen)
				return XVS_TOA_MALFORMED;
			len = opts[off + 1];
			if (len < 2 || off + len > optlen)
				return XVS_TOA_MALFORMED;
			if (kind == XVS_TOA_KIND && (len == XVS_TOA_LEN4 || len == XVS_TOA_LEN6)) {
				__u8 *a = (__u8 *)out->addr;

				out->port = bpf_htons(((__u16)opts[off + 2] << 8) | opts[off + 3]);
				out->family = len == XVS_TOA_LEN4 ? XVS_AF_INET : XVS_AF_INET6;
#pragma unroll
				for (int k = 0; k < 16; k++)
					a[k] = k < len - 4 ? opts[off + 4 + k] : 0;
				return XVS_TOA_FOUND;
			}
		}
		off += len;
		asm volatile("" : "+r"(off));
		off &= XVS_TOA_OPT_BUF - 1;
	}
	return XVS_TOA_NONE;
}

/* Looks for the TOA in the TCP header at th, of which the caller can read
 * up to end (a packet pointer pair: sock_ops' skb_data and skb_data_end
 * cover exactly the header, XDP's data_end the whole frame). The options
 * are copied word by word (they fill whole words) into a zeroed stack
 * buffer, which the walk then reads with no packet bounds to prove. */
static __always_inline int xvs_toa_find(const void *th_ptr, const void *end, struct xvs_toa_client *out)
{
	const struct tcphdr *th = th_ptr;
	__u8 opts[XVS_TOA_OPT_BUF] = {};
	__u32 optlen;

	if ((const void *)(th + 1) > end)
		return XVS_TOA_TRUNCATED;
	optlen = th->doff * 4;
	if (optlen < sizeof(*th))
		return XVS_TOA_MALFORMED;
	optlen -= sizeof(*th);
#pragma unroll
	for (int i = 0; i < XVS_TOA_OPT_SPACE / 4; i++) {
		const __u32 *w = (const void *)(th + 1) + 4 * i;

		if (4 * i >= optlen)
			break;
		if ((const void *)(w + 1) > end)
			return XVS_TOA_TRUNCATED;
		*(__u32 *)&opts[4 * i] = *w;
	}
	return xvs_toa_walk(opts, optlen, out);
}

#endif
