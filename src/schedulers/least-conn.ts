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
  /** How every pick counts: 'active' for the rest of the plan, or 'inactive' from the start. */
  newConnAs?: NewConnAs;
  /**
   * Per real (input order): for how many of the following picks a pick of
   * this real still counts as an active connection before it counts as an
   * inactive one (Infinity: to the end of the plan; 0: inactive at once).
   * Takes precedence over newConnAs. The registry's wlc & co. derive it
   * from each real's arrivals (see conn-history.ts).
   */
  activeFor?: ArrayLike<number>;
  /**
   * Per real (input order): before which picks (ascending) one of the
   * connections already active when the plan starts turns inactive, as
   * IPVS would see them close while the plan is read. At most its active
   * count of them take effect.
   */
  closing?: ArrayLike<ArrayLike<number> | undefined>;
}

/**
 * The reals IPVS would pick for the next `picks` new connections, one after
 * another, each pick counted on its real before the next is made.
 *
 * The control plane writes this sequence as the service's 'seq' table every
 * tick, from live counts, so the dataplane replays IPVS without running it.
 * What a pick adds to its real's counts for the later picks is what IPVS
 * would see by then: a DR/TUN connection is inactive (SYN_RECV) for a round
 * trip, then active (ESTABLISHED) for its life, then inactive again
 * (FIN_WAIT, TIME_WAIT). A plan covers a whole tick (~100 ms), so a long
 * connection is active for the rest of it and a short one already inactive:
 * activeFor says which, per real. Without it every pick counts as active
 * (newConnAs 'active', the default): counting them inactive would make sed
 * and nq, which ignore inactive connections, put a whole tick on one real.
 */
export function plan(name: LeastConnName, reals: readonly LoadReal[], picks: number, opts: PlanOptions = {}): Uint32Array {
  checkReals(reals);
  if (!Number.isInteger(picks) || picks < 0 || picks > MAX_SEQ_TABLE) {
    throw new XvsError('BAD_ARGUMENT', `picks ${picks} is not an integer in 0..${MAX_SEQ_TABLE}`);
  }
  const rule = LEAST_CONN[name];
  const at = reals.flatMap((r, i) => (usable(r) ? [i] : []));
  const live = at.map((i) => reals[i]!);
  const n = live.length;
  if (n === 0 || picks === 0) return new Uint32Array(0);

  const whole = (opts.newConnAs ?? 'active') === 'active' ? Infinity : 0;
  const span = at.map((i) => Math.max(0, Math.round(opts.activeFor?.[i] ?? whole)));
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
  const heap = new IndexedHeap(n, before);

  // expiring[k]: reals whose earlier picks (or open connections) turn inactive before pick k.
  const expiring: number[][] = [];
  at.forEach((i, li) => {
    const ks = opts.closing?.[i];
    const n = Math.min(ks?.length ?? 0, live[li]!.active);
    for (let j = 0; j < n; j++) {
      const k = Math.max(0, Math.floor(ks![j]!));
      if (k < picks) (expiring[k] ??= []).push(li);
    }
  });
  const out = new Uint32Array(picks);
  for (let k = 0; k < picks; k++) {
    for (const i of expiring[k] ?? []) {
      active[i] = active[i]! - 1;
      inactive[i] = inactive[i]! + 1;
      refresh(i);
      heap.fix(i);
    }
    const top = heap.top();
    out[k] = live[top]!.id;
    const s = span[top]!;
    if (s > 0) active[top] = active[top]! + 1;
    else inactive[top] = inactive[top]! + 1;
    if (s > 0 && k + s + 1 < picks) (expiring[k + s + 1] ??= []).push(top);
    refresh(top);
    heap.fix(top);
  }
  return out;
}

/** A binary min-heap of 0..n-1 under `before`, which can re-place any member after its key changes. */
class IndexedHeap {
  readonly #heap: Int32Array;
  readonly #pos: Int32Array;

  constructor(readonly n: number, readonly before: (a: number, b: number) => boolean) {
    this.#heap = Int32Array.from({ length: n }, (_, i) => i);
    this.#pos = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = (n >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  top(): number {
    return this.#heap[0]!;
  }

  fix(i: number): void {
    this.#down(this.#up(this.#pos[i]!));
  }

  #swap(a: number, b: number): void {
    const h = this.#heap;
    const x = h[a]!;
    h[a] = h[b]!;
    h[b] = x;
    this.#pos[h[a]!] = a;
    this.#pos[h[b]!] = b;
  }

  #up(at: number): number {
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.before(this.#heap[at]!, this.#heap[parent]!)) break;
      this.#swap(at, parent);
      at = parent;
    }
    return at;
  }

  #down(at: number): void {
    const h = this.#heap;
    for (;;) {
      const l = 2 * at + 1;
      if (l >= this.n) return;
      const c = l + 1 < this.n && this.before(h[l + 1]!, h[l]!) ? l + 1 : l;
      if (!this.before(h[c]!, h[at]!)) return;
      this.#swap(at, c);
      at = c;
    }
  }
}
