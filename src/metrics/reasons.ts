import type { CounterName } from '../maps/counters.js';

// What each xvs_counters entry says about a packet. A verdict counter is
// the last word on the packets it counts: it ends them as a pass to the
// kernel, a drop, a forward, or an answer the director makes itself (ICMP).
// An event counter marks something on the way and the packet is counted
// again where it ends (a sloppy forward is also a tx or a redirect). `rx`
// counts every frame the program saw.

export const ACTION = { forward: 'forward', pass: 'pass', drop: 'drop', answer: 'answer', error: 'error' } as const;
export type Action = keyof typeof ACTION;

export type CounterKind = { kind: 'frames' } | { kind: 'verdict'; action: Action } | { kind: 'event' };

export const COUNTER_KINDS = {
  rx: { kind: 'frames' },
  pass_not_ip: { kind: 'verdict', action: 'pass' },
  pass_no_svc: { kind: 'verdict', action: 'pass' },
  malformed: { kind: 'verdict', action: 'pass' },
  pass_fragment: { kind: 'verdict', action: 'pass' },
  drop_no_conn: { kind: 'verdict', action: 'drop' },
  no_real: { kind: 'verdict', action: 'answer' },
  no_neigh: { kind: 'verdict', action: 'drop' },
  fib_fail: { kind: 'verdict', action: 'drop' },
  frag_needed: { kind: 'verdict', action: 'answer' },
  pass_too_big: { kind: 'verdict', action: 'pass' },
  tx: { kind: 'verdict', action: 'forward' },
  redirect: { kind: 'verdict', action: 'forward' },
  // A helper that failed: most such packets are dropped, a failed tail call passes.
  error: { kind: 'verdict', action: 'error' },
  bad_mode: { kind: 'verdict', action: 'drop' },
  nh_miss: { kind: 'event' },
  sloppy: { kind: 'event' },
  promoted: { kind: 'event' },
  redirect_unmapped: { kind: 'event' },
  nat_reply: { kind: 'event' },
  nat_refused: { kind: 'verdict', action: 'drop' },
  ttl_exceeded: { kind: 'verdict', action: 'drop' },
  fnat_no_laddr: { kind: 'verdict', action: 'drop' },
  fnat_no_port: { kind: 'verdict', action: 'drop' },
  toa_added: { kind: 'event' },
  toa_no_room: { kind: 'event' },
  icmp_xlat: { kind: 'event' },
  icmp_malformed: { kind: 'verdict', action: 'pass' },
  icmp_drop: { kind: 'verdict', action: 'drop' },
  // The reply's end is counted as frag_needed (the ICMP answer) or drop_too_big.
  reply_too_big: { kind: 'event' },
  drop_too_big: { kind: 'verdict', action: 'drop' },
  flow_cached: { kind: 'event' },
} as const satisfies Record<CounterName, CounterKind>;
