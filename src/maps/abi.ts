// The constants of bpf/include/xvs_abi.h that TypeScript needs, in one place.
// Each mirrors a C enum that types a struct member or a map key, so it is in
// the compiled object's BTF, and test/abi.test.ts compares the two: members
// named as in C without the prefix, lower-case.
import { COUNTERS, XVS_CNT_MAX } from './counters.js';

export const FAMILY = { inet: 2, inet6: 10 } as const;
export const FWD = { dr: 1, tun: 2, nat: 3, fullnat: 4 } as const;
export const LOOKUP = { seq: 0, hash_src: 1, hash_dst: 2, hash_src_port: 3 } as const;
/** A table slot that names no real server: the new flow is refused. */
export const SLOT = { none: 0xffffffff } as const;
export const SVC_F = { persistent: 1 << 0, ops: 1 << 1, sched1: 1 << 2, sched2: 1 << 3, sched3: 1 << 4 } as const;
export const REAL_F = { removed: 1 << 0, overload: 1 << 1 } as const;
/** A TUN real server's tunnel type and checksum flags, numbered as IPVS numbers them. */
export const TUN = { ipip: 0, gue: 1, gre: 2 } as const;
export const TUN_F = { csum: 1 << 0, remcsum: 1 << 1 } as const;
/** GUE's UDP source ports: [min, max). */
export const TUN_SPORT = { min: 32768, max: 60999 } as const;
export const CONN_F = { persist: 1 << 0, toa_done: 1 << 1 } as const;
export const NAT_F = { fullnat: 1 << 0 } as const;
export const CONN_STATE = {
  none: 0, established: 1, syn_sent: 2, syn_recv: 3, fin_wait: 4, time_wait: 5, close: 6,
  close_wait: 7, last_ack: 8, listen: 9, synack: 10, udp: 11, max: 16,
} as const;
export const CFG_F = { two_way: 1 << 0, any_port: 1 << 1, fwmark: 1 << 2 } as const;
/** The ways of a set of xvs_new_flows and xvs_new_replies (src/maps/set-table.ts). */
export const SET = { ways: 8, claimed: 0xfffffffe } as const;

/** Each mirrored enum: its BTF name, the prefix of its members in C, the TS object. */
export const ABI_ENUMS = [
  { btf: 'xvs_family', prefix: 'XVS_AF_', values: FAMILY },
  { btf: 'xvs_fwd', prefix: 'XVS_FWD_', values: FWD },
  { btf: 'xvs_lookup', prefix: 'XVS_LOOKUP_', values: LOOKUP },
  { btf: 'xvs_slot', prefix: 'XVS_SLOT_', values: SLOT },
  { btf: 'xvs_svc_flags', prefix: 'XVS_SVC_F_', values: SVC_F },
  { btf: 'xvs_real_flags', prefix: 'XVS_REAL_F_', values: REAL_F },
  { btf: 'xvs_tun_type', prefix: 'XVS_TUN_', values: TUN },
  { btf: 'xvs_tun_flags', prefix: 'XVS_TUN_F_', values: TUN_F },
  { btf: 'xvs_tun_sport', prefix: 'XVS_TUN_SPORT_', values: TUN_SPORT },
  { btf: 'xvs_conn_flags', prefix: 'XVS_CONN_F_', values: CONN_F },
  { btf: 'xvs_nat_flags', prefix: 'XVS_NAT_F_', values: NAT_F },
  { btf: 'xvs_conn_state', prefix: 'XVS_CS_', values: CONN_STATE },
  { btf: 'xvs_config_flags', prefix: 'XVS_CFG_F_', values: CFG_F },
  { btf: 'xvs_set_geometry', prefix: 'XVS_SET_', values: SET },
  { btf: 'xvs_counter', prefix: 'XVS_CNT_', values: { ...COUNTERS, max: XVS_CNT_MAX } },
] as const;

/** The decap helper's (bpf/xvs_decap.c): which families a VIP-map key is a VIP of, and its counter indexes. */
export const DECAP_AF = { inet: 1 << 0, inet6: 1 << 1 } as const;
export const DECAP_CNT = { decapped: 0, not_vip: 1, malformed: 2, max: 4 } as const;

/** As ABI_ENUMS, in the BTF of xvs_decap.o. */
export const DECAP_ABI_ENUMS = [
  { btf: 'xvs_decap_af', prefix: 'XVS_DECAP_AF_', values: DECAP_AF },
  { btf: 'xvs_decap_counter', prefix: 'XVS_DECAP_CNT_', values: DECAP_CNT },
] as const;

/** Which segment carried a recorded TOA (bpf/xvs_toa.c). */
export const TOA_SEG = { handshake: 1, later: 2 } as const;

/** As ABI_ENUMS, in the BTF of xvs_toa.o, the TOA reader's object. */
export const TOA_ABI_ENUMS = [
  { btf: 'xvs_family', prefix: 'XVS_AF_', values: FAMILY },
  { btf: 'xvs_toa_seg', prefix: 'XVS_TOA_SEG_', values: TOA_SEG },
] as const;
