// One slow real server among fast ones: connections to it stay open far
// longer (the lab's "held" server). IPVS sees its active count pile up and
// sends new connections elsewhere; a plan that counted every pick as active
// for the whole tick would think the fast servers fill up just as much.
// Lifetimes depend on the real a connection went to, so each path keeps its
// own event queue (the main bench shares one precomputed timeline).

import { schedulerByName, type NewConnAs, type RealState } from '../src/schedulers/registry.js';
import { ipvsReference, type Counts } from './fidelity-ipvs.js';

export const SLOW_PARAMS = {
  seeds: [11, 12, 13],
  ratePerS: 500,
  seconds: 10,
  tickMs: 100,
  rttMs: 1,
  /** Mean time a connection stays established: fast reals, and the slow one (real 0). */
  fastLifeS: 0.02,
  slowLifeS: 2,
  lingerS: 5,
  weights: [1, 1, 1],
} as const;

const EV = { establish: 1, close: 2, expire: 3 } as const;

/** Min-heap of (time, connection * 4 + event kind). */
export class Events {
  #t: number[] = [];
  #v: number[] = [];

  get size(): number {
    return this.#t.length;
  }

  peek(): number {
    return this.#t[0]!;
  }

  push(t: number, v: number): void {
    const ts = this.#t;
    const vs = this.#v;
    let i = ts.length;
    ts.push(t);
    vs.push(v);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (ts[p]! <= t) break;
      ts[i] = ts[p]!;
      vs[i] = vs[p]!;
      i = p;
    }
    ts[i] = t;
    vs[i] = v;
  }

  pop(): number {
    const ts = this.#t;
    const vs = this.#v;
    const top = vs[0]!;
    const t = ts.pop()!;
    const v = vs.pop()!;
    const n = ts.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const c = l + 1 < n && ts[l + 1]! < ts[l]! ? l + 1 : l;
      if (ts[c]! >= t) break;
      ts[i] = ts[c]!;
      vs[i] = vs[c]!;
      i = c;
    }
    ts[i] = t;
    vs[i] = v;
    return top;
  }
}

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export interface SlowRow {
  scheduler: 'lc' | 'wlc' | 'sed' | 'nq';
  variant: string;
  seed: number;
  /** Share of new connections the slow real got: xvs, IPVS. */
  xvsSlowShare: number;
  ipvsSlowShare: number;
  sharePP: number;
}

export function simulateSlow(name: SlowRow['scheduler'], newConnAs: NewConnAs | undefined, seed: number, p = SLOW_PARAMS): Omit<SlowRow, 'variant'> {
  const rand = prng(seed);
  const n = p.weights.length;
  const counts = (): Counts => ({ active: new Float64Array(n), inactive: new Float64Array(n) });
  const paths = [counts(), counts()] as const; // 0: IPVS, 1: xvs
  const queues = [new Events(), new Events()] as const;
  const ref = ipvsReference(name, p.weights, paths[0]);
  const sched = schedulerByName(name);
  const arrivals = new Float64Array(n);
  const reals = (): RealState[] =>
    p.weights.map((weight, i) => ({
      id: i, weight, addr: `192.0.2.${10 + i}`, port: 80,
      active: paths[1].active[i]!, inactive: paths[1].inactive[i]!, arrivals: arrivals[i]!,
    }));
  const realOf = [new Int32Array(p.ratePerS * p.seconds * 2), new Int32Array(p.ratePerS * p.seconds * 2)] as const;
  const picked = [new Float64Array(n), new Float64Array(n)] as const;
  let table: Uint32Array = new Uint32Array(0);
  let pos = 0;
  let tickArrivals = 0;
  let nextTick = 0;
  let conn = 0;
  const drain = (until: number): void => {
    for (const k of [0, 1] as const) {
      const q = queues[k];
      const c = paths[k];
      while (q.size > 0 && q.peek() <= until) {
        const t = q.peek();
        const v = q.pop();
        const id = v >> 2;
        const r = realOf[k][id]!;
        const kind = v & 3;
        if (kind === EV.establish) {
          c.inactive[r]!--;
          c.active[r]!++;
          const life = -Math.log(1 - rand()) * (r === 0 ? p.slowLifeS : p.fastLifeS);
          q.push(t + life, id * 4 + EV.close);
        } else if (kind === EV.close) {
          c.active[r]!--;
          c.inactive[r]!++;
          q.push(t + p.lingerS, id * 4 + EV.expire);
        } else {
          c.inactive[r]!--;
        }
      }
    }
  };
  for (let t = -Math.log(1 - rand()) / p.ratePerS; t < p.seconds; t += -Math.log(1 - rand()) / p.ratePerS) {
    while (nextTick <= t) {
      drain(nextTick);
      const picks = Math.max(64, 2 * tickArrivals);
      table = sched.build({ reals: reals(), picks, newConnAs, cursor: pos });
      tickArrivals = 0;
      arrivals.fill(0);
      nextTick += p.tickMs / 1000;
    }
    drain(t);
    const id = conn++;
    const choice = [ref(0, 0), table.length ? table[pos++ % table.length]! : -1];
    tickArrivals++;
    for (const k of [0, 1] as const) {
      const r = choice[k]!;
      realOf[k][id] = r;
      paths[k].inactive[r]!++;
      picked[k][r]!++;
      if (k === 1) arrivals[r]!++;
      queues[k].push(t + p.rttMs / 1000, id * 4 + EV.establish);
    }
  }
  const share = (k: 0 | 1): number => picked[k][0]! / picked[k].reduce((a, b) => a + b, 0);
  const dev = Math.max(...Array.from({ length: n }, (_, i) => Math.abs(picked[1][i]! / conn - picked[0][i]! / conn))) * 100;
  return { scheduler: name, seed, xvsSlowShare: share(1), ipvsSlowShare: share(0), sharePP: dev };
}

export function runSlowScenario(): SlowRow[] {
  const rows: SlowRow[] = [];
  for (const name of ['lc', 'wlc', 'sed', 'nq'] as const) {
    for (const [variant, as] of [['', undefined], [' (new=active)', 'active'], [' (new=inactive)', 'inactive']] as const) {
      for (const seed of SLOW_PARAMS.seeds) rows.push({ ...simulateSlow(name, as, seed), variant });
    }
  }
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  console.log(`\none slow real (connections ${SLOW_PARAMS.slowLifeS} s vs ${SLOW_PARAMS.fastLifeS * 1000} ms), weights ${SLOW_PARAMS.weights.join(',')}: ` +
    `share of new connections sent to it, xvs | IPVS, and max share deviation (pp), mean over ${SLOW_PARAMS.seeds.length} seeds`);
  for (const key of [...new Set(rows.map((r) => `${r.scheduler}${r.variant}`))]) {
    const rs = rows.filter((r) => `${r.scheduler}${r.variant}` === key);
    const m = (f: (r: SlowRow) => number): number => rs.reduce((a, r) => a + f(r), 0) / rs.length;
    console.log(`${key.padEnd(20)} ${pct(m((r) => r.xvsSlowShare)).padStart(6)} | ${pct(m((r) => r.ipvsSlowShare)).padStart(6)}   ${m((r) => r.sharePP).toFixed(2).padStart(6)} pp`);
  }
  return rows;
}
