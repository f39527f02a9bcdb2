// Indexes of the per-CPU counter array xvs_counters (XVS_CNT_* in
// bpf/include/xvs_abi.h): what happened to each packet the dataplane saw.
export const COUNTERS = {
  rx: 0,
  pass_not_ip: 1,
  pass_no_svc: 2,
  malformed: 3,
  pass_fragment: 4,
  drop_no_conn: 5,
  no_real: 6,
  no_neigh: 7,
  fib_fail: 8,
  frag_needed: 9,
  pass_too_big: 10,
  tx: 11,
  redirect: 12,
  error: 13,
  bad_mode: 14,
  nh_miss: 15,
  sloppy: 16,
  promoted: 17,
  redirect_unmapped: 18,
  nat_reply: 19,
  nat_refused: 20,
  ttl_exceeded: 21,
  fnat_no_laddr: 22,
  fnat_no_port: 23,
  toa_added: 24,
  toa_no_room: 25,
  icmp_xlat: 26,
  icmp_malformed: 27,
  icmp_drop: 28,
  reply_too_big: 29,
  drop_too_big: 30,
  flow_cached: 31,
} as const;

export type CounterName = keyof typeof COUNTERS;

/** Entries in xvs_counters; indexes past the named ones are spare. */
export const XVS_CNT_MAX = 32;
