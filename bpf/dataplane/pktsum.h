/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one's-complement sum of a stretch of the packet, for the checksums
 * that cover a whole payload: GUE's outer UDP checksum and GRE's, written by
 * the director (tun.h) and verified by the real server's decap helper. A
 * rewrite elsewhere corrects checksums incrementally (csum.h); a new
 * checksum over bytes nobody summed before has to read them all.
 *
 * bpf_csum_diff sums up to 512 bytes a call, in multiples of 4, at the
 * kernel's csum_partial speed; the rest is added by hand. Every chunk keeps
 * its offset from the start of the range even, so the 16-bit words line up
 * as the checksum's do. Sums are in memory order, as the other checksums of
 * the dataplane: a folded result stored as it is is the checksum field.
 */
#ifndef XVS_PKTSUM_H
#define XVS_PKTSUM_H

#include "common.h"

#define XVS_SUM_CHUNK 512
/* A packet pointer's offset stays under 64 KiB, or the verifier cannot keep
 * its range; nothing longer than an IP packet is ever summed. */
#define XVS_SUM_OFF_MAX 0xffff

static __always_inline __u32 xvs_sum_fold32(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	return (__u32)s;
}

/* One chunk of `size` (a constant multiple of 4, at most 512) at `off`. */
static __always_inline int xvs_sum_chunk(struct xdp_md *ctx, __u32 off, __u32 size, __u64 *sum)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *q;
	__s64 r;

	if (off > XVS_SUM_OFF_MAX - size)
		return -1;
	q = data + off;
	if (q + size > data_end)
		return -1;
	r = bpf_csum_diff(NULL, 0, q, size, xvs_sum_fold32(*sum));
	if (r < 0)
		return -1;
	*sum = (__u64)r;
	return 0;
}

/*
 * Adds the `len` bytes at `off` (from ctx->data) to `seed`; returns the sum
 * folded to 16 bits (not complemented), or -1 when the range is not wholly
 * inside the frame. Whole 512-byte chunks first, then one chunk for each
 * bit of the remainder (256 down to 4), then 0 to 3 bytes. Every chunk's
 * offset is computed from `off` and `len` alone, never carried from the
 * previous one, so all the ways through reach each step in the same state
 * and the verifier walks each step once; it is a subprogram (XVS_SUBPROG)
 * for the same reason: inlined, each caller's exact offsets would make the
 * verifier walk the remainder once per chunk count.
 */
XVS_SUBPROG int xvs_pkt_sum(struct xdp_md *ctx, __u32 off, __u32 len, __u32 seed)
{
	void *data, *data_end;
	__u64 sum = seed;
	__u32 n, at;
	__u8 *q;

	if (!ctx || off > XVS_SUM_OFF_MAX || len > XVS_SUM_OFF_MAX)
		return -1;
	n = len / XVS_SUM_CHUNK;
	/* Bounded: 128 chunks are 64 KiB, more than the offsets allow. */
	for (__u32 i = 0; i < (XVS_SUM_OFF_MAX + 1) / XVS_SUM_CHUNK; i++) {
		if (i >= n)
			break;
		if (xvs_sum_chunk(ctx, off + i * XVS_SUM_CHUNK, XVS_SUM_CHUNK, &sum))
			return -1;
	}
#pragma unroll
	for (__u32 size = XVS_SUM_CHUNK / 2; size >= 4; size >>= 1) {
		if ((len & size) && xvs_sum_chunk(ctx, off + (len & ~(2 * size - 1)), size, &sum))
			return -1;
	}
	/* The last 0 to 3 bytes: a word, then a byte padded with a zero, as the
	 * checksum pads an odd length. */
	if (len & 3) {
		at = off + (len & ~3U);
		if (at > XVS_SUM_OFF_MAX - 4)
			return -1;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		q = data + at;
		if (len & 2) {
			if ((void *)(q + 2) > data_end)
				return -1;
			sum += *(__u16 *)q;
			q += 2;
		}
		if (len & 1) {
			__u8 last[2] = { 0, 0 };

			if ((void *)(q + 1) > data_end)
				return -1;
			last[0] = *q;
			sum += *(__u16 *)last;
		}
	}
	sum = xvs_sum_fold32(sum);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (int)sum;
}

#endif
