/* SPDX-License-Identifier: GPL-2.0 */
/* Incremental Internet checksums (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
 *
 * A rewrite changes a few words of a packet, so the checksum is corrected by
 * the difference of those words instead of being summed again over the
 * header or the whole segment: the cost does not grow with the payload, and
 * no loop over packet bytes has to satisfy the verifier on the fast path.
 *
 * A change is first collected as a partial sum (a __wsum "delta" of ~old +
 * new words, xvs_csum_diff*), then applied once to each checksum it touches
 * (xvs_csum_apply). One delta serves both checksums of an IPv4 address
 * rewrite, since the address sits in the header and in the pseudo-header.
 * The IPv4 header checksum is a plain xvs_csum_apply(iph->check, delta);
 * TCP and UDP go through xvs_l4_csum_* for their zero rules.
 *
 * Sums are byte-order independent (RFC 1071 §2(B)), so words are taken as
 * they lie in the packet (__be16/__be32) and never swapped. Folding a 32-bit
 * end-around-carry sum yields 0 only when every term was 0, the same
 * representation a full recomputation gives: an incremental result equals
 * the full one bit for bit when the input checksum was itself computed.
 *
 * Standalone: kernel UAPI and libbpf headers only. */
#ifndef XVS_CSUM_H
#define XVS_CSUM_H

#include <linux/types.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* What every packet primitive (rewrite.h, hdrmove.h) returns. A refusal
 * (any negative value) leaves the packet exactly as it was. */
enum xvs_prim_status {
	XVS_PRIM_OK = 0,
	XVS_PRIM_EBOUNDS = -1, /* a header is cut short or inconsistent (lengths, data offset, options) */
	XVS_PRIM_EPROTO = -2,  /* not a packet this primitive handles: family mismatch, fragment,
				* not TCP/UDP, an IPv6 extension header */
	XVS_PRIM_ENOSPC = -3,  /* the TCP option space (40 bytes) cannot take the option */
	XVS_PRIM_EADJUST = -4, /* bpf_xdp_adjust_head refused (no headroom) */
	XVS_PRIM_ETTL = -5,    /* TTL / hop limit would reach 0: the caller drops or answers ICMP */
	XVS_PRIM_ENOCSUM = -6, /* UDP over IPv6 without a checksum, which RFC 8200 forbids */
	XVS_PRIM_EEXIST = -7,  /* a TOA option is already there (a client could forge one) */
	XVS_PRIM_EARG = -8,    /* an argument outside what the primitive accepts */
};

/* The Linux AF_* values, which xvs_abi.h's enum xvs_family uses too: a
 * caller passes a real server's or flow's family unchanged. */
#define XVS_PRIM_INET 2
#define XVS_PRIM_INET6 10

/* Ones' complement addition: the carry out of bit 31 wraps to bit 0. */
static __always_inline __wsum xvs_csum_add(__wsum a, __wsum b)
{
	__u32 s = (__u32)a + (__u32)b;

	return (__wsum)(s + (s < (__u32)b));
}

/* Folds a partial sum to 16 bits and complements it: the checksum field. */
static __always_inline __sum16 xvs_csum_finish(__wsum sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__sum16)(__u16)~s;
}

/* Delta of a 16-bit word changing from `from` to `to`. */
static __always_inline __wsum xvs_csum_diff2(__wsum d, __be16 from, __be16 to)
{
	return xvs_csum_add(xvs_csum_add(d, (__wsum)(__u16)~(__u16)from), (__wsum)(__u16)to);
}

/* Delta of a 32-bit word (two 16-bit words; the 32-bit sum folds to theirs). */
static __always_inline __wsum xvs_csum_diff4(__wsum d, __be32 from, __be32 to)
{
	return xvs_csum_add(xvs_csum_add(d, (__wsum)~(__u32)from), (__wsum)to);
}

/* Delta of a 16-byte IPv6 address. */
static __always_inline __wsum xvs_csum_diff16(__wsum d, const __be32 *from, const __be32 *to)
{
#pragma unroll
	for (int i = 0; i < 4; i++)
		d = xvs_csum_diff4(d, from[i], to[i]);
	return d;
}

/* RFC 1624 eqn. 3 over a whole delta. RFC 1141's HC + m + ~m' (eqn. 2) can
 * give 0xffff where a recomputation gives 0x0000 (RFC 1624 §4); eqn. 3 agrees
 * with the recomputation. */
static __always_inline __sum16 xvs_csum_apply(__sum16 check, __wsum delta)
{
	return xvs_csum_finish(xvs_csum_add((__wsum)(__u16)~(__u16)check, delta));
}

static __always_inline __sum16 xvs_csum_replace2(__sum16 check, __be16 from, __be16 to)
{
	return xvs_csum_apply(check, xvs_csum_diff2(0, from, to));
}

static __always_inline __sum16 xvs_csum_replace4(__sum16 check, __be32 from, __be32 to)
{
	return xvs_csum_apply(check, xvs_csum_diff4(0, from, to));
}

static __always_inline __sum16 xvs_csum_replace16(__sum16 check, const __be32 *from, const __be32 *to)
{
	return xvs_csum_apply(check, xvs_csum_diff16(0, from, to));
}

/* An address change as the TCP/UDP pseudo-header sees it: 4 bytes for IPv4
 * (addr[0]), 16 for IPv6. A family that is neither adds nothing; callers
 * have checked it. */
static __always_inline __wsum xvs_csum_diff_addr(__wsum d, __u8 family, const __be32 *from, const __be32 *to)
{
	if (family == XVS_PRIM_INET6)
		return xvs_csum_diff16(d, from, to);
	if (family == XVS_PRIM_INET)
		return xvs_csum_diff4(d, from[0], to[0]);
	return d;
}

/* A change of the upper-layer length in the pseudo-header (host order in).
 * IPv6 carries it as 32 bits (RFC 8200 §8.1), but below 64 KiB the high
 * word is zero before and after, so one 16-bit word covers both families. */
static __always_inline __wsum xvs_csum_diff_len(__wsum d, __u16 from, __u16 to)
{
	return xvs_csum_diff2(d, bpf_htons(from), bpf_htons(to));
}

/* Whether a TCP/UDP checksum field can be updated: UDP over IPv4 with 0
 * carries no checksum (RFC 768) and is left alone by xvs_l4_csum_apply;
 * UDP over IPv6 must carry one (RFC 8200 §8.1), so a 0 there is refused
 * rather than made to look valid. */
static __always_inline int xvs_l4_csum_usable(__sum16 check, __u8 proto, __u8 family)
{
	if (proto == IPPROTO_UDP && family == XVS_PRIM_INET6 && check == 0)
		return XVS_PRIM_ENOCSUM;
	return XVS_PRIM_OK;
}

/* The new TCP/UDP checksum after `delta`. UDP sends a computed 0 as 0xffff,
 * since 0 would mean "none" (RFC 768; RFC 8200 §8.1); TCP keeps it. */
static __always_inline __sum16 xvs_l4_csum_apply(__sum16 check, __u8 proto, __wsum delta)
{
	__sum16 r;

	if (proto != IPPROTO_UDP)
		return xvs_csum_apply(check, delta);
	if (check == 0)
		return 0;
	r = xvs_csum_apply(check, delta);
	return r ? r : (__sum16)0xffff;
}

#endif
