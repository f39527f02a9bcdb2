/* SPDX-License-Identifier: MIT */
/*
 * The ABI between the XDP dataplane and the TypeScript control plane.
 *
 * Every struct here is mirrored by a codec in src/maps/codecs.ts, and
 * test/abi.test.ts checks those codecs against the BTF of the compiled
 * object, so a field added here without its codec fails the tests.
 *
 * Rules: fixed-width fields, network byte order spelled in the type
 * (__be16/__be32), explicit padding, no bitfields, a size assertion per
 * struct. Addresses are 16 bytes plus a family so IPv6 needs no layout
 * change: an IPv4 address lives in addr[0], addr[1..3] are zero.
 */
#ifndef XVS_ABI_H
#define XVS_ABI_H

#include <linux/types.h>

/*
 * Constants the control plane mirrors are enums, not #defines: an enum that
 * types a struct member (or, for xvs_counter and xvs_tun_sport, an argument
 * of xvs_abi_enums() in xvs.c) reaches the object's BTF, where
 * test/abi.test.ts compares it with src/maps/abi.ts. A fixed underlying type
 * (clang's extension, C23's syntax) keeps each member its ABI width.
 */

/* Map capacities; the control plane reads each map's max_entries from the
 * object and sets the connection and persistence tables' sizes at load. */
enum {
	XVS_MAX_SERVICES = 1024,
	XVS_MAX_REALS = 16384,
	XVS_CONN_TABLE_DEFAULT = 1048576,
	XVS_PERSIST_TABLE_DEFAULT = 262144,
	XVS_NEW_FLOW_SETS_DEFAULT = 8192, /* xvs_new_flows and xvs_new_replies: sets of XVS_SET_WAYS (a power of two) */
	XVS_MAX_PORTS = 64,
	XVS_MAX_LADDRS = 1024,      /* local addresses of FULLNAT services, all together */
	XVS_SVC_LADDRS_MAX = 16,    /* local addresses of one service */
	XVS_LPORT_MIN = 1024,       /* FULLNAT's local ports: 1024..65535 */
	XVS_LPORT_TRIES = 64,       /* ports tried for one new flow before it counts as exhausted (docs/architecture.md) */
	XVS_LPORT_DRY_AFTER = 4,    /* searches in a row that found no port for a real server (on one CPU): then ... */
	XVS_LPORT_DRY_TRIES = 8,    /* ... each search tries this many, until one finds a port */
	XVS_MAX_FWMARK_PREFIXES = 1024, /* destination prefixes of fwmark rules, both families */
	XVS_FWMARK_RULES_MAX = 16,  /* rules one destination can be tried against (its prefix's and the shorter ones') */
	XVS_NAT_REAL_SLOTS = 16384, /* xvs_nat_real_slots: NAT and FULLNAT real servers' addresses by hash */
	XVS_MAX_IFINDEX = 65536,    /* xvs_if_mtus: interfaces by ifindex; a larger one's MTU is unknown */
	XVS_FLOW_CACHE_SLOTS = 4096, /* xvs_flow_cache: slots per CPU */
};

/* The ways of a set of xvs_new_flows and xvs_new_replies; a constant the
 * control plane mirrors, so an enum of its own (xvs_abi_enums()). */
enum xvs_set_geometry : __u32 {
	XVS_SET_WAYS = 8,
	XVS_SET_CLAIMED = 0xfffffffe, /* a way's tag while a claim takes it: even, so no tuple's (hash | 1) */
};

enum xvs_family : __u8 {
	XVS_AF_INET = 2,
	XVS_AF_INET6 = 10,
};

/* Forwarding methods, per real server as in ipvsadm (-g -i -m). */
enum xvs_fwd : __u8 {
	XVS_FWD_DR = 1,
	XVS_FWD_TUN = 2,
	XVS_FWD_NAT = 3,
	XVS_FWD_FULLNAT = 4,
};

/* How the dataplane indexes a service's scheduler table. */
enum xvs_lookup : __u8 {
	XVS_LOOKUP_SEQ = 0,      /* next slot of a shared sequence counter */
	XVS_LOOKUP_HASH_SRC = 1, /* hash of the client address */
	XVS_LOOKUP_HASH_DST = 2, /* hash of the destination (VIP) address */
	XVS_LOOKUP_HASH_SRC_PORT = 3, /* hash of the client address plus its source port (sh-port, mh-port) */
};

/* A scheduler-table slot that names no real server: a new flow that lands
 * there is refused (ICMP port unreachable, no_real), as IPVS refuses when
 * its scheduler finds no destination (sh/mh without their fallback flag
 * when the hashed real server is unavailable; ovf when every one is full). */
enum xvs_slot : __u32 {
	XVS_SLOT_NONE = 0xffffffffU,
};

enum xvs_svc_flags : __u32 {
	XVS_SVC_F_PERSISTENT = 1U << 0, /* -p: clients stick to a real server via xvs_persist */
	XVS_SVC_F_OPS = 1U << 1,        /* -o: every UDP datagram scheduled on its own, no flow entry */
	/* ipvsadm -b: IPVS's IP_VS_SVC_F_SCHED1..3, kept for -L/-S and a restart;
	 * sh and mh read 1 as *-fallback, 2 as *-port. The dataplane reads none
	 * of them: the port is in the lookup, the fallback in the table. */
	XVS_SVC_F_SCHED1 = 1U << 2,
	XVS_SVC_F_SCHED2 = 1U << 3,
	XVS_SVC_F_SCHED3 = 1U << 4,
};

/* A TUN real server's tunnel (ipvsadm --tun-type), numbered as IPVS numbers
 * them (IP_VS_CONN_F_TUNNEL_TYPE_*); tun.h writes each as IPVS does. */
enum xvs_tun_type : __u8 {
	XVS_TUN_IPIP = 0, /* IP in IP of the real server's family: IPIP, SIT, 4 in 6, 6 in 6 */
	XVS_TUN_GUE = 1,  /* UDP to the real server's tun_port, a 4-byte GUE header, the packet */
	XVS_TUN_GRE = 2,  /* GRE (RFC 2784), its protocol the inner packet's ethertype */
};

/* Its checksum (--tun-csum, --tun-remcsum; neither: --tun-nocsum), as IPVS's
 * IP_VS_TUNNEL_ENCAP_FLAG_*: GUE's outer UDP checksum, GRE's checksum field. */
enum xvs_tun_flags : __u8 {
	XVS_TUN_F_CSUM = 1U << 0,
	XVS_TUN_F_REMCSUM = 1U << 1,
};

/* GUE's UDP source port: a hash of the inner flow scaled into [min, max), as
 * Linux's udp_flow_src_port scales it into the default local port range, so
 * ECMP routers between director and real server spread the flows. */
enum xvs_tun_sport : __u16 {
	XVS_TUN_SPORT_MIN = 32768,
	XVS_TUN_SPORT_MAX = 60999,
};

enum xvs_real_flags : __u32 {
	XVS_REAL_F_REMOVED = 1U << 0,  /* deleted: existing flows go on, no new ones */
	XVS_REAL_F_OVERLOAD = 1U << 1, /* over its upper threshold: out of the tables */
};

enum xvs_conn_flags : __u8 {
	XVS_CONN_F_PERSIST = 1U << 0, /* refreshes its persistence template */
	XVS_CONN_F_TOA_DONE = 1U << 1, /* FULLNAT: a segment with data carried the client's address */
};

enum xvs_nat_flags : __u8 {
	XVS_NAT_F_FULLNAT = 1U << 0, /* the reply's destination (local address and port) goes back to the client too */
};

/*
 * Connection states, numbered as IPVS numbers its TCP states (so its state
 * tables index them as they are), and UDP. A DR/TUN director sees only the
 * client's half and follows IPVS's input-only table; NAT and FULLNAT see
 * both halves and follow its input and output tables (flow.h).
 */
enum xvs_conn_state : __u8 {
	XVS_CS_NONE = 0,
	XVS_CS_ESTABLISHED = 1,
	XVS_CS_SYN_SENT = 2,
	XVS_CS_SYN_RECV = 3,
	XVS_CS_FIN_WAIT = 4,
	XVS_CS_TIME_WAIT = 5,
	XVS_CS_CLOSE = 6,
	XVS_CS_CLOSE_WAIT = 7,
	XVS_CS_LAST_ACK = 8,
	XVS_CS_LISTEN = 9,
	XVS_CS_SYNACK = 10,
	XVS_CS_UDP = 11,
	XVS_CS_MAX = 16, /* slots of xvs_config.timeout */
};

/*
 * A service: its VIP, port and protocol; or a fwmark service (ipvsadm -f),
 * keyed by proto 0 (no address/port service has it), port 0 and the mark in
 * addr[0] (network order, addr[1..3] zero), of the family -6 chose. IPVS's
 * persistence templates of a fwmark service carry the mark in the address
 * the same way.
 */
struct xvs_svc_key {
	__be32 addr[4];
	__be16 port;
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP; 0: a fwmark service */
	enum xvs_family family;
};
_Static_assert(sizeof(struct xvs_svc_key) == 20, "xvs_svc_key");

struct xvs_svc {
	__u32 id;              /* index into the per-service arrays and tables */
	enum xvs_svc_flags flags;
	__u8 sched;            /* scheduler code (SCHEDULERS in src/schedulers) */
	enum xvs_lookup lookup;
	__u8 pad0[2];
	__u32 tbl_size;        /* slots in this service's scheduler table */
	__u32 persist_timeout; /* seconds a persistence template outlives its last packet */
	__be32 persist_mask[4]; /* groups clients into one template (-M): a netmask, or an IPv6 prefix */
};
_Static_assert(sizeof(struct xvs_svc) == 36, "xvs_svc");

/*
 * How to reach a real server, by real id: filled by the control plane from
 * the kernel's route and neighbour tables and refreshed when they change,
 * so the packet path needs no FIB lookup. ifindex 0: not known (yet), the
 * dataplane asks bpf_fib_lookup and counts nh_miss.
 */
struct xvs_nexthop {
	__u32 ifindex;      /* egress interface */
	__u16 mtu;          /* of the route to the real server */
	__u8 dmac[6];       /* next hop's MAC (the real server's, or its gateway's) */
	__u8 smac[6];       /* the egress interface's MAC */
	__u8 pad0[2];
	__be32 saddr[4];    /* tunnel source (TUN), of the real server's family */
};
_Static_assert(sizeof(struct xvs_nexthop) == 36, "xvs_nexthop");

struct xvs_real {
	__be32 addr[4];
	__be16 port;    /* equals the service port for DR and TUN */
	enum xvs_family family;
	enum xvs_fwd fwd;
	__u32 weight;
	enum xvs_real_flags flags;
	__u32 svc_id;
	__u32 gen;         /* bumped when the slot is reused; flows carry it */
	__u32 u_threshold; /* -x: the control plane stops new flows at this many */
	__u32 l_threshold; /* -y: ... and resumes them at this many */
	__u32 last_weight; /* the latest weight above 0 (IPVS's last_weight): mh keeps a quiesced real's slots by it */
	__be16 tun_port;   /* TUN, GUE: the real server's UDP port (--tun-port) */
	enum xvs_tun_type tun_type;   /* TUN: the encapsulation (IPIP for every other method) */
	enum xvs_tun_flags tun_flags; /* TUN, GUE and GRE: the checksum */
};
_Static_assert(sizeof(struct xvs_real) == 52, "xvs_real");

struct xvs_conn_key {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	enum xvs_family family;
	__u8 pad0[2];
};
_Static_assert(sizeof(struct xvs_conn_key) == 40, "xvs_conn_key");

/* Clocks are jiffies (bpf_jiffies64), not nanoseconds: timeouts are
 * seconds, and reading jiffies costs a load where ktime costs a clock read.
 * xvs_config.hz converts. */
struct xvs_conn {
	__u64 last_seen;    /* jiffies of the latest packet */
	__u32 real_id;
	__u32 real_gen;     /* must equal xvs_real.gen, else the flow is stale */
	__u32 svc_id;
	enum xvs_conn_state state;
	enum xvs_conn_flags flags;
	__be16 lport;       /* FULLNAT: the local port the flow leaves with */
	__u32 laddr_id;     /* FULLNAT: its local address, an index of xvs_laddrs */
	__u32 pad0;
};
_Static_assert(sizeof(struct xvs_conn) == 32, "xvs_conn");

/* A new flow in xvs_new_flows: its tuple, the entry xvs_conns takes over
 * when the client confirms it, and a fold of both (sets.h, xvs_way_fold)
 * that a way written by two CPUs at once, or read while written, fails. */
struct xvs_new_flow {
	struct xvs_conn_key key;
	struct xvs_conn conn;
	__u64 check;
};
_Static_assert(sizeof(struct xvs_new_flow) == 80, "xvs_new_flow");

/* The head of a set of xvs_new_flows or xvs_new_replies, in an array of
 * its own (xvs_new_flow_heads, xvs_new_reply_heads): each way's tag (its
 * tuple's hash | 1; 0: free) and when it was taken, one cache line. A
 * flow that is not there costs that line, and 8,192 heads take 512 KiB
 * where their sets take 5.5 MiB, so the line is in the caches and its page
 * in the TLB more often (sets.h). */
struct xvs_set_head {
	__u32 tag[XVS_SET_WAYS];
	__u32 born[XVS_SET_WAYS]; /* low 32 bits of jiffies when taken: the oldest way goes first */
};
_Static_assert(sizeof(struct xvs_set_head) == 64, "xvs_set_head");

/* The ways of a set of xvs_new_flows, whose head is in xvs_new_flow_heads. */
struct xvs_new_flow_set {
	struct xvs_new_flow way[XVS_SET_WAYS];
};
_Static_assert(sizeof(struct xvs_new_flow_set) == 640, "xvs_new_flow_set");

/* What the dataplane's flow stage shares across CPUs, written by the
 * control plane at load (new_flow_mask) and by the dataplane (cache_gen). */
struct xvs_flow_ctl {
	__u32 cache_gen;      /* bumped to retire every CPU's flow copies (flow.h) */
	__u32 new_flow_mask;  /* xvs_new_flows' sets - 1 */
	__u32 new_reply_mask; /* xvs_new_replies' sets - 1 */
	__u32 pad0;
};
_Static_assert(sizeof(struct xvs_flow_ctl) == 16, "xvs_flow_ctl");

/*
 * NAT and FULLNAT: what turns a real server's reply back into the
 * service's. The key is the reply's 5-tuple as it reaches the director:
 * real server to client (NAT) or to the local address (FULLNAT).
 */
struct xvs_nat {
	__u64 last_seen;    /* jiffies of the latest reply */
	__be32 vaddr[4];    /* the VIP the client sent to: the reply's source */
	__be32 caddr[4];    /* the client: the reply's destination */
	__be16 vport;
	__be16 cport;
	__u32 real_id;
	__u32 svc_id;
	__u32 ifindex;      /* where the client's packets came in: replies leave there */
	__u8 cmac[6];       /* their source MAC: the next hop towards the client */
	__u8 smac[6];       /* their destination MAC: ours on that interface */
	enum xvs_family family; /* of the VIP and the client */
	enum xvs_conn_state state;
	enum xvs_nat_flags flags;
	__u8 pad0[5];
};
_Static_assert(sizeof(struct xvs_nat) == 80, "xvs_nat");

/* A new NAT or FULLNAT flow's reply side in xvs_new_replies, by its
 * reply's tuple, as xvs_new_flow holds the flow. */
struct xvs_new_reply {
	struct xvs_conn_key key;
	struct xvs_nat nat;
	__u64 check;
};
_Static_assert(sizeof(struct xvs_new_reply) == 128, "xvs_new_reply");

struct xvs_new_reply_set {
	struct xvs_new_reply way[XVS_SET_WAYS];
};
_Static_assert(sizeof(struct xvs_new_reply_set) == 1024, "xvs_new_reply_set");

/* A local address of FULLNAT, by id (xvs_laddrs). */
struct xvs_laddr {
	__be32 addr[4];
	enum xvs_family family;
	__u8 pad0[3];
};
_Static_assert(sizeof(struct xvs_laddr) == 20, "xvs_laddr");

/* A FULLNAT service's local addresses (ipvsadm -P/-Q), by service id. */
struct xvs_svc_laddrs {
	__u32 count;
	__u32 ids[XVS_SVC_LADDRS_MAX]; /* indexes of xvs_laddrs */
};
_Static_assert(sizeof(struct xvs_svc_laddrs) == 68, "xvs_svc_laddrs");

/* A real server's address, for the test "is this a reply of a NAT or
 * FULLNAT real server?" made before the reply tables are searched. */
struct xvs_addr_key {
	__be32 addr[4];
	enum xvs_family family;
	__u8 pad0[3];
};
_Static_assert(sizeof(struct xvs_addr_key) == 20, "xvs_addr_key");

/* Persistence template: one client (or client subnet) of one service. */
struct xvs_persist_key {
	__be32 caddr[4];    /* client address & the service's netmask */
	__u32 svc_id;
	enum xvs_family family;
	__u8 pad0[3];
};
_Static_assert(sizeof(struct xvs_persist_key) == 24, "xvs_persist_key");

struct xvs_persist {
	__u64 last_seen;    /* jiffies */
	__u32 real_id;
	__u32 real_gen;
};
_Static_assert(sizeof(struct xvs_persist) == 16, "xvs_persist");

/* Per-CPU, per service and per real server. */
struct xvs_stats {
	__u64 conns;
	__u64 inpkts;
	__u64 inbytes;
	__u64 outpkts;
	__u64 outbytes;
};
_Static_assert(sizeof(struct xvs_stats) == 40, "xvs_stats");

enum xvs_config_flags : __u32 {
	XVS_CFG_F_TWO_WAY = 1U << 0, /* some real server is NAT or FULLNAT: look for replies */
	XVS_CFG_F_ANY_PORT = 1U << 1, /* some service has port 0 (every port of its VIP): a miss looks again with 0 */
	XVS_CFG_F_FWMARK = 1U << 2, /* some fwmark rule exists: a miss classifies the packet and looks for its mark's service */
};

/*
 * Fwmark rules (xvsadm --fwmark-rule): XDP runs before netfilter, so the
 * director marks a packet itself, by its destination prefix, protocol and
 * destination port, and only when no address/port service took it. The
 * LPM trie xvs_fwmark_rules is keyed by the destination; the family byte
 * (and the zero padding after it) lead the key, so one trie holds both
 * families: prefixlen is 32 + the prefix's length.
 */
struct xvs_fwmark_key {
	__u32 prefixlen;
	enum xvs_family family;
	__u8 pad0[3];
	__be32 addr[4];
};
_Static_assert(sizeof(struct xvs_fwmark_key) == 24, "xvs_fwmark_key");

struct xvs_fwmark_rule {
	__u32 mark;
	__u16 dport_min;   /* host order (compared with the packet's port once swapped), inclusive */
	__u16 dport_max;   /* 0..65535: any port */
	__u8 proto;        /* IPPROTO_TCP / IPPROTO_UDP; 0: either */
	__u8 pad0[3];
};
_Static_assert(sizeof(struct xvs_fwmark_rule) == 12, "xvs_fwmark_rule");

/*
 * The rules a destination in this prefix is tried against, the first match
 * giving the mark: the prefix's own, in the order they were added, then
 * those of each shorter prefix that covers it, longest first. The control
 * plane lays the list out, so the dataplane needs one trie lookup and the
 * most specific prefix wins.
 */
struct xvs_fwmark_rules {
	__u32 count;       /* rules in use */
	__u32 own;         /* of those, the first `own` are this prefix's (the rest repeat shorter prefixes') */
	struct xvs_fwmark_rule rules[XVS_FWMARK_RULES_MAX];
};
_Static_assert(sizeof(struct xvs_fwmark_rules) == 200, "xvs_fwmark_rules");

/* One entry, written by the control plane when it loads the dataplane (the
 * IPVS defaults are its to know) and on ipvsadm --set. */
struct xvs_config {
	__u32 hz;               /* jiffies per second, measured by the control plane */
	enum xvs_config_flags flags;
	__u32 timeout[XVS_CS_MAX]; /* seconds after a connection's last packet, by state */
};
_Static_assert(sizeof(struct xvs_config) == 72, "xvs_config");

/* Indexes of the per-CPU counter array xvs_counters: what
 * happened to each packet that did not simply go out. */
enum xvs_counter : __u32 {
	XVS_CNT_RX = 0, /* every frame the program saw */
	XVS_CNT_PASS_NOT_IP = 1, /* neither IPv4 nor IPv6 */
	XVS_CNT_PASS_NO_SVC = 2, /* IP, but not a virtual service */
	XVS_CNT_MALFORMED = 3, /* truncated or invalid headers: passed to the kernel */
	XVS_CNT_PASS_FRAGMENT = 4, /* fragments go to the kernel */
	XVS_CNT_DROP_NO_CONN = 5, /* TCP non-SYN without a flow, not hash-scheduled: dropped, never RST by the director's stack */
	XVS_CNT_NO_REAL = 6, /* no real server available: ICMP port unreachable */
	XVS_CNT_NO_NEIGH = 7, /* next hop MAC unresolved: dropped */
	XVS_CNT_FIB_FAIL = 8, /* no route to the real server: dropped */
	XVS_CNT_FRAG_NEEDED = 9, /* ICMP fragmentation-needed or ICMPv6 packet-too-big sent */
	XVS_CNT_PASS_TOO_BIG = 10, /* IPv4 too big for the tunnel, no DF: kernel */
	XVS_CNT_TX = 11, /* forwarded on the ingress interface */
	XVS_CNT_REDIRECT = 12, /* forwarded on another interface (through xvs_tx_ports or not) */
	XVS_CNT_ERROR = 13, /* helper failure (adjust_head and friends) */
	XVS_CNT_BAD_MODE = 14, /* real server mode not handled by this dataplane */
	XVS_CNT_NH_MISS = 15, /* next hop not cached: asked bpf_fib_lookup */
	XVS_CNT_SLOPPY = 16, /* TCP non-SYN without a flow, forwarded by its hash (sh, dh, mh, lblc, lblcr) */
	XVS_CNT_PROMOTED = 17, /* a new flow confirmed (client ACK, second datagram): into xvs_conns */
	XVS_CNT_REDIRECT_UNMAPPED = 18, /* of those redirected, to an interface not in xvs_tx_ports: plain bpf_redirect */
	XVS_CNT_NAT_REPLY = 19, /* a NAT/FULLNAT reply translated back to the service */
	XVS_CNT_NAT_REFUSED = 20, /* a NAT/FULLNAT packet the rewrite refused (IPv6 extension headers, UDP/IPv6 without checksum; for NAT64 also IPv4 options, UDP/IPv4 without one): dropped */
	XVS_CNT_TTL_EXCEEDED = 21, /* a reply (or an ICMP error about a flow) whose TTL ran out at the director: dropped */
	XVS_CNT_FNAT_NO_LADDR = 22, /* a new FULLNAT flow of a service without a local address: dropped */
	XVS_CNT_FNAT_NO_PORT = 23, /* a new FULLNAT flow found no free local port: dropped */
	XVS_CNT_TOA_ADDED = 24, /* the client's address inserted (TCP option 254) */
	XVS_CNT_TOA_NO_ROOM = 25, /* no room for it in the TCP options: forwarded without */
	XVS_CNT_ICMP_XLAT = 26, /* an ICMP/ICMPv6 error about a NAT flow, translated and sent on */
	XVS_CNT_ICMP_MALFORMED = 27, /* an ICMP/ICMPv6 error cut short or inconsistent: kernel, untouched */
	XVS_CNT_ICMP_DROP = 28, /* an ICMP/ICMPv6 error about a NAT flow that could not be translated: dropped */
	XVS_CNT_REPLY_TOO_BIG = 29, /* a NAT/FULLNAT reply longer, translated, than the client side's MTU: ICMP to the real server (frag_needed) or dropped (drop_too_big) */
	XVS_CNT_DROP_TOO_BIG = 30, /* of those, IPv4 without DF: dropped (the director does not fragment, and the kernel would forward it untranslated) */
	XVS_CNT_FLOW_CACHED = 31, /* a confirmed flow's packet forwarded from this CPU's copy of its entry (xvs_flow_cache), not xvs_conns */
	XVS_CNT_MAX = 32,
};

/*
 * The real server's decap helper (bpf/xvs_decap.c). Its VIP map is keyed by
 * the 16-byte address alone, which cannot tell an IPv4 VIP (addr[0], the
 * rest zero) from an IPv6 address ending in 12 zero bytes; the value says
 * which families the key is a VIP of, and a packet is stripped only when
 * its inner header's family is one of them.
 */
enum xvs_decap_af : __u32 {
	XVS_DECAP_AF_INET = 1U << 0,
	XVS_DECAP_AF_INET6 = 1U << 1,
};

/* The UDP ports the decap helper takes GUE on (xvs realserver setup --tun-type
 * gue --tun-port P): a bitmap in the array xvs_decap_ports, port P being
 * bit P % 32 of word P / 32, so that every UDP packet the real server
 * receives costs an index into an array, not a hash lookup. */
enum {
	XVS_DECAP_GUE_WORDS = 65536 / 32,
};

/* Indexes of the decap helper's per-CPU counters: what it did with a
 * tunnelled packet (anything else is not counted). */
enum xvs_decap_counter : __u32 {
	XVS_DECAP_CNT_DECAPPED = 0, /* outer header stripped, the inner packet passed on */
	XVS_DECAP_CNT_NOT_VIP = 1, /* inner destination not a VIP of its family: passed untouched */
	XVS_DECAP_CNT_MALFORMED = 2, /* bad or truncated outer or inner header: passed untouched */
	XVS_DECAP_CNT_MAX = 4,
};

/*
 * The real server's TOA reader (bpf/xvs_toa.c): under FULLNAT the director
 * replaces the client's address with one of its own and carries the
 * client's in a TCP option (kind 254, TOA); the reader records it per
 * connection for user space (src/realserver/toa.ts).
 */
enum {
	XVS_TOA_TABLE_DEFAULT = 65536,
};

/* Which segment carried the TOA the reader recorded. */
enum xvs_toa_seg : __u8 {
	XVS_TOA_SEG_HANDSHAKE = 1, /* the one that completed the handshake (the client's ACK, or data in its place) */
	XVS_TOA_SEG_LATER = 2,     /* a later one before any data was taken in order: the first data segment */
};

/* A connection as the real server's socket sees it: its own address and
 * port, and its peer's (under FULLNAT, the director's local address). An
 * IPv4 peer of an IPv6 socket (::ffff:a.b.c.d) is keyed as IPv4, so one key
 * names the connection whichever socket family accepted it. */
struct xvs_toa_key {
	__be32 laddr[4];
	__be32 raddr[4];
	__be16 lport;
	__be16 rport;
	enum xvs_family family;
	__u8 pad0[3];
};
_Static_assert(sizeof(struct xvs_toa_key) == 40, "xvs_toa_key");

/* The client a TOA named. Its family follows the option's length (8: IPv4,
 * 20: IPv6), not the connection's: a director that translates families
 * sends a 20-byte TOA over IPv4. */
struct xvs_toa_client {
	__be32 addr[4];
	__be16 port;
	enum xvs_family family;
	enum xvs_toa_seg seg;
};
_Static_assert(sizeof(struct xvs_toa_client) == 20, "xvs_toa_client");

/* One entry, written by the control plane before it attaches the reader. */
struct xvs_toa_config {
	/* The network namespace whose connections this reader records: the
	 * reader is attached to a cgroup, which spans namespaces, and every
	 * namespace set up as a real server runs its own. */
	__u64 netns_cookie;
};
_Static_assert(sizeof(struct xvs_toa_config) == 8, "xvs_toa_config");

#endif
