// One codec per struct in bpf/include/xvs_abi.h, members in C order and named
// as in C (test/abi.test.ts holds them to the BTF). Ports are host-order
// numbers, addresses are strings whose family is the struct's `family`.
import { CONN_STATE, SET } from './abi.js';

/** XVS_SVC_LADDRS_MAX: the ids array's length, checked against BTF with the struct. */
export const SVC_LADDRS_MAX = 16;
/** XVS_FWMARK_RULES_MAX: rules one destination is tried against, checked against BTF with xvs_fwmark_rules. */
export const FWMARK_RULES_MAX = 16;
import { nested, structs } from './codec-array.js';
import { addr16, be16, bytes, mac, pad, scalar, struct, u8, u16, u32, u32s, u64, type Codec, type ValueOf } from './codec.js';

export const svcKey = struct('xvs_svc_key', [
  addr16('addr', 'family'),
  be16('port'),
  u8('proto'),
  u8('family'),
] as const);

export const svc = struct('xvs_svc', [
  u32('id'),
  u32('flags'),
  u8('sched'),
  u8('lookup'),
  pad('pad0', 2),
  u32('tbl_size'),
  u32('persist_timeout'),
  // 16 bytes whose family is the service key's: see netmask.ts.
  bytes('persist_mask', 16, 4),
] as const);

export const nexthop = struct('xvs_nexthop', [
  u32('ifindex'),
  u16('mtu'),
  mac('dmac'),
  mac('smac'),
  pad('pad0', 2),
  addr16('saddr'),
] as const);

export const real = struct('xvs_real', [
  addr16('addr', 'family'),
  be16('port'),
  u8('family'),
  u8('fwd'),
  u32('weight'),
  u32('flags'),
  u32('svc_id'),
  u32('gen'),
  u32('u_threshold'),
  u32('l_threshold'),
  u32('last_weight'),
  be16('tun_port'),
  u8('tun_type'),
  u8('tun_flags'),
] as const);

export const connKey = struct('xvs_conn_key', [
  addr16('saddr', 'family'),
  addr16('daddr', 'family'),
  be16('sport'),
  be16('dport'),
  u8('proto'),
  u8('family'),
  pad('pad0', 2),
] as const);

export const conn = struct('xvs_conn', [
  u64('last_seen'),
  u32('real_id'),
  u32('real_gen'),
  u32('svc_id'),
  u8('state'),
  u8('flags'),
  be16('lport'),
  u32('laddr_id'),
  pad('pad0', 4),
] as const);

/** A way of xvs_new_flows: check is a fold of key and conn (src/maps/set-table.ts). */
export const newFlow = struct('xvs_new_flow', [
  nested('key', connKey),
  nested('conn', conn, 8),
  bytes('check', 8, 8),
] as const);

/**
 * The head of a set of a table in sets (bpf/dataplane/sets.h), in an array
 * of its own: tag, the tuple's hash | 1 of each way, 0 for a free one;
 * born, low 32 bits of jiffies when taken.
 */
export const setHead = struct('xvs_set_head', [
  u32s('tag', SET.ways),
  u32s('born', SET.ways),
] as const);

/** The ways of a set of a table in sets whose ways are `way`'s (its head: setHead). */
function setOf<V>(name: string, way: Codec<V>) {
  return struct(name, [structs('way', way, SET.ways, 8)] as const);
}

export const newFlowSet = setOf('xvs_new_flow_set', newFlow);

export const flowCtl = struct('xvs_flow_ctl', [
  u32('cache_gen'),
  u32('new_flow_mask'),
  u32('new_reply_mask'),
  pad('pad0', 4),
] as const);

export const nat = struct('xvs_nat', [
  u64('last_seen'),
  addr16('vaddr', 'family'),
  addr16('caddr', 'family'),
  be16('vport'),
  be16('cport'),
  u32('real_id'),
  u32('svc_id'),
  u32('ifindex'),
  mac('cmac'),
  mac('smac'),
  u8('family'),
  u8('state'),
  u8('flags'),
  pad('pad0', 5),
] as const);

/** A way of xvs_new_replies: a new flow's reply side by its reply's tuple (src/maps/set-table.ts). */
export const newReply = struct('xvs_new_reply', [
  nested('key', connKey),
  nested('nat', nat, 8),
  bytes('check', 8, 8),
] as const);

export const newReplySet = setOf('xvs_new_reply_set', newReply);

export const laddr = struct('xvs_laddr', [
  addr16('addr', 'family'),
  u8('family'),
  pad('pad0', 3),
] as const);

export const svcLaddrs = struct('xvs_svc_laddrs', [
  u32('count'),
  u32s('ids', SVC_LADDRS_MAX),
] as const);

export const addrKey = struct('xvs_addr_key', [
  addr16('addr', 'family'),
  u8('family'),
  pad('pad0', 3),
] as const);

export const persistKey = struct('xvs_persist_key', [
  addr16('caddr', 'family'),
  u32('svc_id'),
  u8('family'),
  pad('pad0', 3),
] as const);

export const persist = struct('xvs_persist', [
  u64('last_seen'),
  u32('real_id'),
  u32('real_gen'),
] as const);

export const stats = struct('xvs_stats', [
  u64('conns'),
  u64('inpkts'),
  u64('inbytes'),
  u64('outpkts'),
  u64('outbytes'),
] as const);

/** timeout: seconds by connection state (CONN_STATE's numbers). */
export const config = struct('xvs_config', [
  u32('hz'),
  u32('flags'),
  u32s('timeout', CONN_STATE.max),
] as const);

/** The LPM trie's key: prefixlen counts the family byte and its padding (32) before the address's bits. */
export const fwmarkKey = struct('xvs_fwmark_key', [
  u32('prefixlen'),
  u8('family'),
  pad('pad0', 3),
  addr16('addr', 'family'),
] as const);

/** proto 0: either; ports host order, inclusive. */
export const fwmarkRule = struct('xvs_fwmark_rule', [
  u32('mark'),
  u16('dport_min'),
  u16('dport_max'),
  u8('proto'),
  pad('pad0', 3),
] as const);

export const fwmarkRules = struct('xvs_fwmark_rules', [
  u32('count'),
  u32('own'),
  structs('rules', fwmarkRule, FWMARK_RULES_MAX),
] as const);

/**
 * The kernel's struct bpf_devmap_val (linux/bpf.h), the value of
 * xvs_tx_ports: the interface a redirect leaves by, and the fd of an egress
 * program (the union bpf_prog; 0 for none).
 */
export const devmapVal = struct('bpf_devmap_val', [
  u32('ifindex'),
  u32('bpf_prog'),
] as const);

/** __u32 keys of array maps and __u32 values (scheduler tables). */
export const u32Codec = scalar(u32('u32'));
/** __u64 values (plain per-CPU counters). */
export const u64Codec = scalar(u64('u64'));

export type SvcKey = ValueOf<typeof svcKey>;
export type Svc = ValueOf<typeof svc>;
export type Real = ValueOf<typeof real>;
export type ConnKey = ValueOf<typeof connKey>;
export type Conn = ValueOf<typeof conn>;
export type Stats = ValueOf<typeof stats>;
export type Config = ValueOf<typeof config>;
export type Nexthop = ValueOf<typeof nexthop>;
export type Nat = ValueOf<typeof nat>;
export type NewFlow = ValueOf<typeof newFlow>;
export type NewFlowSet = ValueOf<typeof newFlowSet>;
export type FlowCtl = ValueOf<typeof flowCtl>;
export type AddrKey = ValueOf<typeof addrKey>;
export type Laddr = ValueOf<typeof laddr>;
export type SvcLaddrs = ValueOf<typeof svcLaddrs>;
export type PersistKey = ValueOf<typeof persistKey>;
export type Persist = ValueOf<typeof persist>;
export type DevmapVal = ValueOf<typeof devmapVal>;
export type FwmarkKey = ValueOf<typeof fwmarkKey>;
export type FwmarkRule = ValueOf<typeof fwmarkRule>;
export type FwmarkRules = ValueOf<typeof fwmarkRules>;

/** The codecs checked against BTF, by C struct name. */
export const abiCodecs = { svcKey, svc, real, nexthop, connKey, conn, newFlow, setHead, newFlowSet, flowCtl, nat, newReply, newReplySet, addrKey, laddr, svcLaddrs, stats, config, persistKey, persist, devmapVal, fwmarkKey, fwmarkRule, fwmarkRules } as const;

// The real server's TOA reader (bpf/xvs_toa.c), a separate object: these
// are checked against its BTF, not the director's.
export const toaKey = struct('xvs_toa_key', [
  addr16('laddr', 'family'),
  addr16('raddr', 'family'),
  be16('lport'),
  be16('rport'),
  u8('family'),
  pad('pad0', 3),
] as const);

export const toaClient = struct('xvs_toa_client', [
  addr16('addr', 'family'),
  be16('port'),
  u8('family'),
  u8('seg'),
] as const);

export const toaConfig = struct('xvs_toa_config', [
  u64('netns_cookie'),
] as const);

export type ToaKey = ValueOf<typeof toaKey>;
export type ToaClientValue = ValueOf<typeof toaClient>;

/** The TOA reader's codecs checked against the BTF of xvs_toa.o, by C struct name. */
export const toaAbiCodecs = { toaKey, toaClient, toaConfig } as const;
