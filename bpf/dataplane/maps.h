/* SPDX-License-Identifier: GPL-2.0 */
/* The director's maps. Names are the ABI the control plane opens and pins. */
#ifndef XVS_MAPS_H
#define XVS_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xvs_abi.h"
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, struct xvs_svc_key);
	__type(value, struct xvs_svc);
} xvs_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_REALS);
	__type(key, __u32);
	__type(value, struct xvs_real);
} xvs_reals SEC(".maps");

/* Fwmark rules by destination prefix (see struct xvs_fwmark_key). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, XVS_MAX_FWMARK_PREFIXES);
	__type(key, struct xvs_fwmark_key);
	__type(value, struct xvs_fwmark_rules);
} xvs_fwmark_rules SEC(".maps");

/* One table of real ids per service, swapped whole by the control plane so
 * the dataplane never sees a half-written table; sizes differ per service
 * (BPF_F_INNER_MAP), e.g. one wrr cycle or a prime for Maglev. */
struct xvs_sched_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, __u32);
	__array(values, struct xvs_sched_inner);
} xvs_sched_tables SEC(".maps");

/* Shared (not per-CPU) so a sequence table is walked in one global order,
 * as IPVS does; it is touched once per new flow only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u64);
} xvs_sched_pos SEC(".maps");

/* How to reach each real server, by real id (see struct xvs_nexthop). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_REALS);
	__type(key, __u32);
	__type(value, struct xvs_nexthop);
} xvs_nexthops SEC(".maps");

/* Confirmed flows: a TCP connection after the client's ACK, a UDP flow after
 * its second datagram. Only confirmed flows live here, so a flood of spoofed
 * new flows, which never confirm, cannot evict them. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XVS_CONN_TABLE_DEFAULT);
	__type(key, struct xvs_conn_key);
	__type(value, struct xvs_conn);
} xvs_conns SEC(".maps");

/*
 * Each CPU's copies of the confirmed flows it forwarded last, in front of
 * xvs_conns (flow.h, xvs_cached): a slot is one inlined array index, where
 * the kernel's hash walks a bucket to an element, two dependent cache
 * misses. A slice of XVS_FLOW_CACHE_SLOTS per CPU (the control plane
 * multiplies max_entries by the possible CPUs; a plain array, so a slot's
 * address is computed, not read from a per-CPU pointer), written only by
 * its own CPU. A slot is a copy taken at most a second ago from an
 * established entry, so it forwards exactly as the entry would: whatever
 * would change the entry (a SYN, FIN or RST, a state other than
 * ESTABLISHED, the once-a-second refresh) goes to xvs_conns. A new flow
 * empties its tuple's slot. Never pinned: it refills from the tables.
 */
struct xvs_flow_cached {
	struct xvs_conn_key key;
	struct xvs_conn conn;
	__u32 gen;            /* xvs_flow_ctl.cache_gen when copied */
	__u32 pad0;
	__u64 copied;         /* jiffies when copied */
	__u8 pad[40];         /* 128 bytes: a slot never shares a cache line */
};
_Static_assert(sizeof(struct xvs_flow_cached) == 128, "xvs_flow_cached");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_FLOW_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct xvs_flow_cached);
} xvs_flow_cache SEC(".maps");

/* The same for replies to NAT and FULLNAT flows, in front of xvs_nats
 * (nat.h, xvs_nat_reply). */
struct xvs_reply_cached {
	struct xvs_conn_key key;
	struct xvs_nat nat;
	__u32 gen;            /* xvs_flow_ctl.cache_gen when copied */
	__u32 pad;
};
_Static_assert(sizeof(struct xvs_reply_cached) == 128, "xvs_reply_cached");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_FLOW_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct xvs_reply_cached);
} xvs_reply_cache SEC(".maps");

/* The copies' generation, bumped (atomically, by any CPU) when a SYN drops
 * a confirmed entry to schedule its tuple afresh: every CPU's copies of
 * that flow, and of all others, stop counting at once. Rare: a reused tuple
 * whose connection was closing, or whose real server was deleted or
 * quiesced. And the geometry of xvs_new_flows. Never pinned: the control
 * plane writes it at each load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_flow_ctl);
} xvs_flow_cache_ctl SEC(".maps");

/*
 * New flows until they confirm (IPVS's SYN_RECV, a first datagram), apart
 * from xvs_conns so that a flood evicts only its own kind. Sets of
 * XVS_SET_WAYS by the tuple's hash, a way taken by a new flow when
 * free, else the set's oldest: under a flood, every SYN would make a hash
 * map with LRU eviction walk to an old element, unlink it and take its
 * bucket's lock, five or six lines cold at flood rates, where a set costs
 * its head's line and the way written (docs/architecture.md). Sized by
 * the control plane (xvs_flow_ctl.new_flow_mask), the heads (in
 * xvs_new_flow_heads, same index) as the sets.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_NEW_FLOW_SETS_DEFAULT);
	__type(key, __u32);
	__type(value, struct xvs_new_flow_set);
} xvs_new_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_NEW_FLOW_SETS_DEFAULT);
	__type(key, __u32);
	__type(value, struct xvs_set_head);
} xvs_new_flow_heads SEC(".maps");

/* NAT and FULLNAT replies, by their 5-tuple as they reach the director: the
 * reply side of confirmed flows, and of new ones (kept apart for the same
 * reason as xvs_conns and xvs_new_flows). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XVS_CONN_TABLE_DEFAULT);
	__type(key, struct xvs_conn_key);
	__type(value, struct xvs_nat);
} xvs_nats SEC(".maps");

/* The reply sides of new flows, in sets as xvs_new_flows (sets.h): a
 * FULLNAT flow's claims its local port there. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_NEW_FLOW_SETS_DEFAULT);
	__type(key, __u32);
	__type(value, struct xvs_new_reply_set);
} xvs_new_replies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_NEW_FLOW_SETS_DEFAULT);
	__type(key, __u32);
	__type(value, struct xvs_set_head);
} xvs_new_reply_heads SEC(".maps");

/* FULLNAT's local addresses, by id, and each service's set of them. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_LADDRS);
	__type(key, __u32);
	__type(value, struct xvs_laddr);
} xvs_laddrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct xvs_svc_laddrs);
} xvs_svc_laddrs SEC(".maps");

/* Addresses of NAT and FULLNAT real servers (value: how many such real
 * servers have it): the control plane's count, from which map-writer.ts
 * keeps xvs_nat_real_slots; the dataplane reads the slots. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_REALS);
	__type(key, struct xvs_addr_key);
	__type(value, __u32);
} xvs_nat_reals SEC(".maps");

/* The same addresses as the dataplane asks about them: how many of them fall
 * in each slot of xvs_hash32(xvs_addr_fold(address)) % XVS_NAT_REAL_SLOTS.
 * Every packet of a two-way director asks whether it may be a reply; an
 * array index is an inlined load where the hash lookup was a call, and a
 * client that shares a slot with a real server only pays the reply tables'
 * lookups, which decide exactly. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_NAT_REAL_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} xvs_nat_real_slots SEC(".maps");

/* The MTU of each interface the director uses (0: unknown), by ifindex,
 * written by the control plane from the kernel's link table and refreshed
 * with the next hops: a NAT reply must fit the interface it leaves by, and
 * an array index is an inlined load where asking the kernel per packet
 * (bpf_check_mtu) would be a helper call. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_IFINDEX);
	__type(key, __u32);
	__type(value, __u32);
} xvs_if_mtus SEC(".maps");

/* Interfaces the director forwards to with XDP_REDIRECT, by ifindex; filled
 * by xvsd at every start, never pinned (see BpfObject.pinnableMapNames). */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, XVS_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} xvs_tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XVS_PERSIST_TABLE_DEFAULT);
	__type(key, struct xvs_persist_key);
	__type(value, struct xvs_persist);
} xvs_persist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct xvs_stats);
} xvs_svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_MAX_REALS);
	__type(key, __u32);
	__type(value, struct xvs_stats);
} xvs_real_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_CNT_MAX);
	__type(key, __u32); /* enum xvs_counter; an array map's key must be an integer in BTF */
	__type(value, __u64);
} xvs_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_config);
} xvs_config SEC(".maps");

/* A new FULLNAT flow's search for a local port (lport.h): what its first
 * try and bpf_loop's retries share, but pointers (a map value does not keep
 * a pointer's type for the verifier: those stay on the stack). */
struct xvs_lport_search {
	struct xvs_conn_key rk;          /* the tuple tried: daddr and dport change per try */
	__u64 now;
	__u32 offset;                    /* the random first port's */
	__u32 start;                     /* the client's place in the pool */
	__u32 id;                        /* the local address tried (xvs_laddrs index) */
	__u32 found;                     /* a port that looked free (its claim may still lose a race) */
	__u32 next;                      /* the next try's number (0: the first, random, port) */
	__u32 tries;                     /* how many this search may make */
};

/* FULLNAT port searches in a row that found no port, per real server and
 * CPU (natconn.h). Past XVS_LPORT_DRY_AFTER a search tries only
 * XVS_LPORT_DRY_TRIES ports: a flood of SYNs at a port space that is full
 * then costs each what 8 tries did, not 64; one search that finds a port
 * restores the full search. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_MAX_REALS);
	__type(key, __u32);
	__type(value, __u32);
} xvs_lport_dry SEC(".maps");

/* One packet's working memory, per CPU (XDP runs one packet at a time on a
 * CPU), off the stack, whose 512 bytes the whole chain of subprograms
 * shares. Never pinned: nothing in it outlives the packet. */
struct xvs_scratch {
	struct xvs_pkt pkt;
	struct xvs_nexthop nh; /* from the FIB while the cache has none (nexthop.h) */
	struct xvs_nat nat; /* the reply side a new NAT/FULLNAT flow opens */
	struct xvs_lport_search lport; /* off the stack: bpf_loop's callback adds a frame */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_scratch);
} xvs_scratch SEC(".maps");

/* This CPU's scratch (never NULL in practice: a one-entry array). */
static __always_inline struct xvs_scratch *xvs_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&xvs_scratch, &zero);
}

static __always_inline void xvs_count(enum xvs_counter idx)
{
	__u64 *c = bpf_map_lookup_elem(&xvs_counters, &idx);

	if (c)
		*c += 1;
}

#endif
