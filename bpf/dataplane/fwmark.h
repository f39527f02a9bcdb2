/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fwmark rules: the mark a packet of no address/port service gets from its
 * destination prefix, protocol and port (xvsadm --fwmark-rule), in place of
 * the netfilter mark IPVS reads, which does not exist yet when XDP runs.
 */
#ifndef XVS_FWMARK_H
#define XVS_FWMARK_H

#include "common.h"
#include "maps.h"

/*
 * The packet's mark, 0 for none: the first rule of its longest prefix's
 * list that the packet matches (the list holds the shorter prefixes' rules
 * after the prefix's own). A subprogram (see XVS_SUBPROG): reached only on
 * a service miss while a rule exists, so its loop stays off the paths that
 * never need it.
 */
XVS_SUBPROG int xvs_fwmark_of(const struct xvs_pkt *p)
{
	struct xvs_fwmark_key k = {};
	struct xvs_fwmark_rules *v;
	__u16 dport;

	if (!p)
		return 0;
	k.prefixlen = 32 + 128;
	k.family = p->family;
	__builtin_memcpy(k.addr, p->daddr, 16);
	v = bpf_map_lookup_elem(&xvs_fwmark_rules, &k);
	if (!v)
		return 0;
	dport = bpf_ntohs(p->dport);
	for (__u32 i = 0; i < XVS_FWMARK_RULES_MAX; i++) {
		const struct xvs_fwmark_rule *r = &v->rules[i];

		if (i >= v->count)
			break;
		if ((r->proto == 0 || r->proto == p->proto) && dport >= r->dport_min && dport <= r->dport_max)
			return (int)r->mark;
	}
	return 0;
}

#endif
