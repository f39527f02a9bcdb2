import { XvsError } from '../errors.js';
import { checkReals, usable } from './common.js';
import type { LoadReal, NewConnAs } from './types.js';
import { MAX_SEQ_TABLE } from './wrr.js';

/**
 * The IPVS least-connection family, as cost = num / den per real (compared
 * by cross-multiplication, as the kernel does, so no rounding):
 *   lc  : active*256 + inactive           (weight only quiesces)
 *   wlc : (active*256 + inactive) / weight
 *   sed : (active + 1) / weight
 *   nq  : a real with no active connection first (the first such in list
 *         order), otherwise as sed
 * The least cost wins and ties go to the first in list order; weight 0 and
 * overloaded reals are never picked (ip_vs_{lc,wlc,sed,nq}.c).
 */
export const LEAST_CONN = {
  lc: { num: (a: number, i: number) => a * 256 + i, weighted: false, idleFirst: false },
  wlc: { num: (a: number, i: number) => a * 256 + i, weighted: true, idleFirst: false },
  sed: { num: (a: number) => a + 1, weighted: true, idleFirst: false },
  nq: { num: (a: number) => a + 1, weighted: true, idleFirst: true },
} as const;

export type LeastConnName = keyof typeof LEAST_CONN;

export interface PlanOptions {
  newConnAs?: NewConnAs;
}

/**
 * The reals IPVS would pick for the next `picks` new connections, one after
 * another, each pick counted on its real before the next is made.
 *
 * The control plane writes this sequence as the service's 'seq' table every
 * tick, from live counts, so the dataplane replays IPVS without running it.
 * A pick counts as a new active connection by default, although IPVS counts
 * a DR/TUN connection inactive (SYN_RECV) for its first round trip: a plan
 * covers a whole tick (~100 ms) and by the time IPVS would schedule the later
 * arrivals of a tick the earlier ones have long been established. Counting
 * them inactive would make sed and nq, which ignore inactive connections,
 * put a whole tick on one real. 'inactive' is there for the literal view.
 */
export function plan(name: LeastConnName, reals: readonly LoadReal[], picks: number, opts: PlanOptions = {}): Uint32Array {
  checkReals(reals);
  if (!Number.isInteger(picks) || picks < 0 || picks > MAX_SEQ_TABLE) {
    throw new XvsError('BAD_ARGUMENT', `picks ${picks} is not an integer in 0..${MAX_SEQ_TABLE}`);
  }
  const rule = LEAST_CONN[name];
  const live = reals.filter(usable);
  const n = live.length;
  if (n === 0 || picks === 0) return new Uint32Array(0);

  const active = Float64Array.from(live, (r) => r.active);
  const inactive = Float64Array.from(live, (r) => r.inactive);
  const den = Float64Array.from(live, (r) => (rule.weighted ? r.weight : 1));
  const num = new Float64Array(n);
  const idle = new Uint8Array(n);
  const refresh = (i: number): void => {
    num[i] = rule.num(active[i]!, inactive[i]!);
    idle[i] = rule.idleFirst && active[i] === 0 ? 1 : 0;
  };
  // a before b in IPVS's scan: idle first (nq), then lower cost, then list order.
  const before = (a: number, b: number): boolean => {
    if (idle[a] !== idle[b]) return idle[a] === 1;
    if (idle[a] === 1) return a < b;
    const l = num[a]! * den[b]!;
    const r = num[b]! * den[a]!;
    return l < r || (l === r && a < b);
  };

  for (let i = 0; i < n; i++) refresh(i);
  const heap = Int32Array.from({ length: n }, (_, i) => i);
  const down = (at: number): void => {
    for (;;) {
      const l = 2 * at + 1;
      if (l >= n) return;
      const c = l + 1 < n && before(heap[l + 1]!, heap[l]!) ? l + 1 : l;
      if (!before(heap[c]!, heap[at]!)) return;
      [heap[at], heap[c]] = [heap[c]!, heap[at]!];
      at = c;
    }
  };
  for (let i = (n >> 1) - 1; i >= 0; i--) down(i);

  const asActive = (opts.newConnAs ?? 'active') === 'active';
  const out = new Uint32Array(picks);
  for (let k = 0; k < picks; k++) {
    const top = heap[0]!;
    out[k] = live[top]!.id;
    // A pick only ever raises its real's cost, so only the root can sink.
    if (asActive) active[top]!++;
    else inactive[top]!++;
    refresh(top);
    down(0);
  }
  return out;
}
