// How closely the tick-and-table path follows IPVS. A synthetic workload
// (Poisson arrivals, exponential lifetimes, from a seeded PRNG) is replayed
// through (a) IPVS itself, modelled one connection at a time on exact counts
// (bench/fidelity-ipvs.ts), and (b) what xvs does: every tick the control
// plane snapshots the counts and builds the table with the registry, and the
// arrivals of the tick read consecutive slots (seq) or hash into it.
// Variants ' (new=active)' / ' (new=inactive)' plan lc/wlc/sed/nq with a
// fixed convention instead of the reals' arrivals, for comparison.

import { SLOT } from '../src/maps/abi.js';
import { hash32 } from '../src/schedulers/hash.js';
import { buildMh } from '../src/schedulers/mh.js';
import { SCHEDULERS, schedulerByName, type NewConnAs, type RealState, type SchedulerName } from '../src/schedulers/registry.js';
import { buildDh, buildSh } from '../src/schedulers/sh-dh.js';
import { ipvsReference, type Counts, type Pick } from './fidelity-ipvs.js';
import { runBurstScenarios } from './fidelity-burst.js';
import { runSlowScenario } from './fidelity-slow.js';

export const FIDELITY_PARAMS = {
  seed: 0x5eed,
  /** Hash placements (sh, dh, lblc) are luck of the draw for a few hot keys: average over seeds. */
  seeds: [0x5eed, 2, 3],
  ratePerS: 2000,
  seconds: 20,
  tickMs: 100,
  rttMs: [0.2, 3],
  meanLifeS: 1,
  /** FIN_WAIT/TIME_WAIT, counted inactive (IPVS: 2 min; shortened to keep runs short). */
  lingerS: 5,
  clients: 20000,
  /** dh hashes the destination: a uniform pool. lblc/lblcr: a Zipf(1) pool, where locality matters. */
  uniformDests: 5000,
  zipfDests: 500,
  windowS: 1,
  minPicks: 64,
  goalPP: 5,
} as const;

export type FidelityParams = Omit<typeof FIDELITY_PARAMS, 'seed'> & { seed: number };

export const WEIGHT_MIXES: Record<string, readonly number[]> = {
  '1,1,1': [1, 1, 1],
  '5,3,1': [5, 3, 1],
  '10,1': [10, 1],
  '1..10': [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
};

/**
 * ovf reads weights as connection capacities (a real takes new connections
 * until its active count passes its weight), so it runs on mixes of the
 * size of the workload's open connections (~2000 at 2000/s and 1 s lives):
 * room for all, room for all but a few, and one where IPVS refuses some.
 */
export const OVF_MIXES: Record<string, readonly number[]> = {
  '1200,800,400': [1200, 800, 400],
  '700,700,700': [700, 700, 700],
  '2000,1000,500,100': [2000, 1000, 500, 100],
  '1500,300': [1500, 300],
};

const EV = { arrive: 0, establish: 1, close: 2, expire: 3 } as const;

interface Workload {
  conns: number;
  client: Uint32Array;
  destU: Uint32Array;
  destZ: Uint32Array;
  destZi: Uint32Array;
  evTime: Float64Array;
  evKind: Uint8Array;
  evConn: Uint32Array;
}

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export function makeWorkload(p: FidelityParams = FIDELITY_PARAMS): Workload {
  const rand = prng(p.seed);
  const pool = (k: number): Uint32Array => Uint32Array.from({ length: k }, () => Math.floor(rand() * 2 ** 32));
  const clients = pool(p.clients);
  const uniform = pool(p.uniformDests);
  const zipf = pool(p.zipfDests);
  const zcdf = new Float64Array(p.zipfDests);
  let acc = 0;
  for (let k = 0; k < p.zipfDests; k++) zcdf[k] = acc += 1 / (k + 1);
  const zipfIndex = (): number => {
    const u = rand() * acc;
    let lo = 0;
    let hi = p.zipfDests - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (zcdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  const times: number[] = [];
  for (let t = -Math.log(1 - rand()) / p.ratePerS; t < p.seconds; t += -Math.log(1 - rand()) / p.ratePerS) times.push(t);
  const conns = times.length;
  const w: Workload = {
    conns,
    client: new Uint32Array(conns),
    destU: new Uint32Array(conns),
    destZ: new Uint32Array(conns),
    destZi: new Uint32Array(conns),
    evTime: new Float64Array(conns * 4),
    evKind: new Uint8Array(conns * 4),
    evConn: new Uint32Array(conns * 4),
  };
  const raw = new Float64Array(conns * 4);
  for (let c = 0; c < conns; c++) {
    w.client[c] = clients[Math.floor(rand() * clients.length)]!;
    w.destU[c] = uniform[Math.floor(rand() * uniform.length)]!;
    w.destZi[c] = zipfIndex();
    w.destZ[c] = zipf[w.destZi[c]!]!;
    const t0 = times[c]!;
    const est = t0 + (p.rttMs[0] + rand() * (p.rttMs[1] - p.rttMs[0])) / 1000;
    const close = est - Math.log(1 - rand()) * p.meanLifeS;
    raw.set([t0, est, close, close + p.lingerS], c * 4);
  }
  const order = Uint32Array.from({ length: conns * 4 }, (_, i) => i).sort((a, b) => raw[a]! - raw[b]! || a - b);
  order.forEach((e, k) => {
    w.evTime[k] = raw[e]!;
    w.evKind[k] = e % 4;
    w.evConn[k] = Math.floor(e / 4);
  });
  return w;
}

/** Whose share each scheduler aims at: rr, lc and dh ignore weights (beyond 0); fo sends all to the heaviest (ovf has no share target: its weight column means nothing). */
function targetShares(name: SchedulerName, weights: readonly number[]): number[] {
  if (name === 'fo') return weights.map((w, i) => (i === weights.indexOf(Math.max(...weights)) ? 1 : 0));
  const equal = name === 'rr' || name === 'lc' || name === 'dh';
  const total = equal ? weights.length : weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => (equal ? 1 : w) / total);
}

export interface FidelityRow {
  scheduler: SchedulerName;
  variant: string;
  mix: string;
  seed: number;
  arrivals: number;
  /** max over reals of |xvs share - IPVS share| over the whole run, in percentage points. */
  sharePP: number | null;
  /** the same per 1 s window, averaged over windows. */
  windowPP: number | null;
  xvsTargetPP: number;
  ipvsTargetPP: number | null;
  /** time-averaged max |active share - target share|, sampled every tick from 1 s on. */
  xvsImbalancePP: number;
  ipvsImbalancePP: number | null;
  xvsLocality?: number;
  ipvsLocality?: number;
  noReal: number;
  /** New connections IPVS itself refused (no destination). */
  ipvsNoReal: number;
}

const REAL_ID0 = 1000;

export function simulate(w: Workload, name: SchedulerName, weights: readonly number[], newConnAs: NewConnAs | undefined, p: FidelityParams = FIDELITY_PARAMS): Omit<FidelityRow, 'variant' | 'mix' | 'seed'> {
  const n = weights.length;
  const counts = (): Counts => ({ active: new Float64Array(n), inactive: new Float64Array(n) });
  const paths = { ipvs: counts(), xvs: counts() };
  const ref: Pick | undefined = name === 'mh' ? undefined : ipvsReference(name, weights, paths.ipvs, p.seed);
  const of = { ipvs: new Int32Array(w.conns).fill(-1), xvs: new Int32Array(w.conns).fill(-1) };
  const sched = schedulerByName(name);
  // New connections per real during the tick, as the daemon reads them from xvs_real_stats.
  const arrivals = new Float64Array(n);
  const reals = (): RealState[] =>
    weights.map((weight, i) => ({
      id: REAL_ID0 + i, weight, addr: `192.0.2.${10 + i}`, port: 80,
      active: paths.xvs.active[i]!, inactive: paths.xvs.inactive[i]!, overloaded: false, arrivals: arrivals[i]!,
    }));
  const daddrOf = name === 'dh' ? w.destU : w.destZ;

  let table = sched.kind === 'static' ? sched.build({ reals: reals() }) : new Uint32Array(0);
  // lblc/lblcr: live flows per slot, as the daemon reads them from the conn table.
  const locality = name === 'lblc' || name === 'lblcr';
  let flows = new Uint32Array(0);
  const flowSlot = new Int32Array(w.conns).fill(-1);
  let pos = 0;
  let tickArrivals = 0;
  let nextTick = 0;
  const windows = Math.ceil(p.seconds / p.windowS);
  const tally = { ipvs: new Float64Array(windows * n), xvs: new Float64Array(windows * n) };
  const target = targetShares(name, weights);
  const imbalance = { ipvs: 0, xvs: 0, samples: 0 };
  const lastReal = { ipvs: new Int32Array(p.zipfDests).fill(-1), xvs: new Int32Array(p.zipfDests).fill(-1) };
  const hits = { ipvs: 0, xvs: 0, repeats: 0 };
  let noReal = 0;
  let ipvsNoReal = 0;

  const skew = (c: Counts): number => {
    const sum = c.active.reduce((a, b) => a + b, 0);
    return sum === 0 ? 0 : Math.max(...target.map((t, i) => Math.abs(c.active[i]! / sum - t)));
  };
  const tick = (): void => {
    if (sched.kind === 'dynamic') {
      const picks = Math.max(p.minPicks, 2 * tickArrivals);
      // As the daemon: the plan starts at the sequence counter, which runs on.
      table = sched.build({ reals: reals(), picks, previous: table, newConnAs, cursor: pos, ...(locality && flows.length === table.length ? { flows } : {}) });
      if (locality && flows.length !== table.length) {
        flows = new Uint32Array(table.length);
        flowSlot.fill(-1);
      }
    }
    tickArrivals = 0;
    arrivals.fill(0);
    // Past the first second, once the counts are more than a handful.
    if (nextTick < 1) return;
    imbalance.ipvs += skew(paths.ipvs);
    imbalance.xvs += skew(paths.xvs);
    imbalance.samples++;
  };
  const xvsPick = (c: number): number => {
    if (table.length === 0) return -1;
    const lookup = SCHEDULERS[name].lookup;
    const slot = lookup === 'seq' ? pos++ % table.length : hash32(lookup === 'hash_src' ? w.client[c]! : daddrOf[c]!) % table.length;
    if (locality) {
      flows[slot]!++;
      flowSlot[c] = slot;
    }
    // A refused slot (sh/mh without fallback, ovf when every real is full): no real, as IPVS.
    return table[slot] === SLOT.none ? -1 : table[slot]! - REAL_ID0;
  };

  for (let e = 0; e < w.evTime.length; e++) {
    const t = w.evTime[e]!;
    if (t >= p.seconds) break; // only departures are left
    while (t >= nextTick) {
      tick();
      nextTick += p.tickMs / 1000;
    }
    const c = w.evConn[e]!;
    const kind = w.evKind[e]!;
    if (kind === EV.arrive) {
      tickArrivals++;
      const win = Math.min(windows - 1, Math.floor(t / p.windowS));
      const picked = { ipvs: ref ? ref(w.client[c]!, daddrOf[c]!) : -1, xvs: xvsPick(c) };
      if (picked.xvs < 0) noReal++;
      if (ref && picked.ipvs < 0) ipvsNoReal++;
      const zi = w.destZi[c]!;
      if (lastReal.xvs[zi]! >= 0) hits.repeats++;
      for (const path of ['ipvs', 'xvs'] as const) {
        const r = picked[path];
        if (r < 0) continue;
        of[path][c] = r;
        if (path === 'xvs') arrivals[r]!++;
        paths[path].inactive[r]!++; // SYN_RECV
        tally[path][win * n + r]!++;
        if (lastReal[path][zi] === r) hits[path]++;
        lastReal[path][zi] = r;
      }
      continue;
    }
    for (const path of ['ipvs', 'xvs'] as const) {
      const r = of[path][c]!;
      if (r < 0) continue;
      const k = paths[path];
      if (kind === EV.establish) {
        k.inactive[r]!--;
        k.active[r]!++;
      } else if (kind === EV.close) {
        k.active[r]!--;
        k.inactive[r]!++;
      } else {
        k.inactive[r]!--;
        if (path === 'xvs' && flowSlot[c]! >= 0) flows[flowSlot[c]!]!--;
      }
    }
  }

  const shares = (tl: Float64Array, from: number, to: number): number[] => {
    const s = new Array<number>(n).fill(0);
    for (let wi = from; wi < to; wi++) for (let i = 0; i < n; i++) s[i]! += tl[wi * n + i]!;
    const sum = s.reduce((a, b) => a + b, 0);
    return s.map((x) => (sum === 0 ? 0 : x / sum));
  };
  const dev = (a: readonly number[], b: readonly number[]): number => 100 * Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
  const xvsAll = shares(tally.xvs, 0, windows);
  const ipvsAll = ref ? shares(tally.ipvs, 0, windows) : undefined;
  let windowPP = 0;
  for (let wi = 0; wi < windows; wi++) windowPP += ref ? dev(shares(tally.xvs, wi, wi + 1), shares(tally.ipvs, wi, wi + 1)) : 0;
  const measured = locality || name === 'dh';
  return {
    scheduler: name,
    arrivals: w.conns,
    sharePP: ipvsAll ? dev(xvsAll, ipvsAll) : null,
    windowPP: ref ? windowPP / windows : null,
    xvsTargetPP: dev(xvsAll, target),
    ipvsTargetPP: ipvsAll ? dev(ipvsAll, target) : null,
    xvsImbalancePP: (100 * imbalance.xvs) / imbalance.samples,
    ipvsImbalancePP: ref ? (100 * imbalance.ipvs) / imbalance.samples : null,
    ...(measured ? { xvsLocality: hits.xvs / hits.repeats, ipvsLocality: hits.ipvs / hits.repeats } : {}),
    noReal,
    ipvsNoReal,
  };
}

export interface DisruptionRow {
  scheduler: 'mh' | 'sh' | 'dh';
  reals: number;
  tableSize: number;
  /** fraction of slots that change owner, worst case over the reals tried. */
  removeOne: number;
  addOne: number;
  ideal: number;
}

export function measureDisruption(): DisruptionRow[] {
  const rows: DisruptionRow[] = [];
  const builders = { mh: buildMh, sh: buildSh, dh: buildDh } as const;
  for (const [scheduler, build] of Object.entries(builders) as [DisruptionRow['scheduler'], typeof buildMh][]) {
    for (const n of scheduler === 'mh' ? [5, 10, 50, 100, 1000] : [10, 100]) {
      const reals = Array.from({ length: n }, (_, i) => ({ id: i + 1, weight: 1, addr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 80 }));
      const base = build(reals);
      const moved = (t: Uint32Array): number => base.reduce((m, id, i) => m + (t[i] === id ? 0 : 1), 0) / base.length;
      const tries = Math.min(n, 8);
      let removeOne = 0;
      for (let k = 0; k < tries; k++) {
        const drop = Math.floor((k * n) / tries);
        removeOne = Math.max(removeOne, moved(build(reals.filter((_, i) => i !== drop))));
      }
      let addOne = 0;
      for (let k = 0; k < 4; k++) addOne = Math.max(addOne, moved(build([...reals, { id: n + 1, weight: 1, addr: `10.200.0.${k}`, port: 80 }])));
      rows.push({ scheduler, reals: n, tableSize: base.length, removeOne, addOne, ideal: 1 / n });
    }
  }
  return rows;
}

const f1 = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : x.toFixed(2));
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

export interface FidelitySummary {
  scheduler: SchedulerName;
  variant: string;
  mix: string;
  /** xvs vs IPVS (mh: vs the weight shares), mean over seeds and worst seed. */
  sharePP: number;
  worstSharePP: number;
  windowPP: number | null;
  xvsTargetPP: number;
  ipvsTargetPP: number | null;
  xvsImbalancePP: number;
  ipvsImbalancePP: number | null;
  xvsLocality?: number;
  ipvsLocality?: number;
  /** New connections refused, as a fraction of arrivals: xvs | IPVS. */
  refused: number;
  ipvsRefused: number;
}

function summarize(rows: readonly FidelityRow[]): FidelitySummary[] {
  const out: FidelitySummary[] = [];
  const keys = [...new Set(rows.map((r) => `${r.scheduler}|${r.variant}|${r.mix}`))];
  for (const key of keys) {
    const rs = rows.filter((r) => `${r.scheduler}|${r.variant}|${r.mix}` === key);
    const r0 = rs[0]!;
    const share = rs.map((r) => r.sharePP ?? r.xvsTargetPP);
    const opt = (f: (r: FidelityRow) => number | null | undefined): number | null => (f(r0) === null || f(r0) === undefined ? null : mean(rs.map((r) => f(r)!)));
    out.push({
      scheduler: r0.scheduler, variant: r0.variant, mix: r0.mix,
      sharePP: mean(share), worstSharePP: Math.max(...share),
      windowPP: opt((r) => r.windowPP),
      xvsTargetPP: mean(rs.map((r) => r.xvsTargetPP)),
      ipvsTargetPP: opt((r) => r.ipvsTargetPP),
      xvsImbalancePP: mean(rs.map((r) => r.xvsImbalancePP)),
      ipvsImbalancePP: opt((r) => r.ipvsImbalancePP),
      ...(r0.xvsLocality === undefined ? {} : { xvsLocality: opt((r) => r.xvsLocality)!, ipvsLocality: opt((r) => r.ipvsLocality)! }),
      refused: mean(rs.map((r) => r.noReal / r.arrivals)),
      ipvsRefused: mean(rs.map((r) => r.ipvsNoReal / r.arrivals)),
    });
  }
  return out;
}

function printShares(all: readonly FidelitySummary[], seeds: number): void {
  const mixes = Object.keys(WEIGHT_MIXES);
  const sums = all.filter((s) => s.scheduler !== 'ovf');
  const table = (title: string, cell: (s: FidelitySummary) => string): void => {
    console.log(`\n${title}`);
    console.log(['weights'.padEnd(20), ...mixes.map((m) => m.padStart(14))].join(' '));
    for (const key of [...new Set(sums.map((s) => `${s.scheduler}${s.variant}`))]) {
      const cells = mixes.map((m) => cell(sums.find((s) => `${s.scheduler}${s.variant}` === key && s.mix === m)!).padStart(14));
      console.log([key.padEnd(20), ...cells].join(' '));
    }
  };
  table(`per-real share deviation, xvs vs IPVS, pp: mean over ${seeds} seeds (worst seed); * mh: vs weight shares`, (s) =>
    `${f1(s.sharePP)} (${f1(s.worstSharePP)})${s.scheduler === 'mh' ? '*' : ''}`);
  table('the same over 1 s windows, mean of windows, pp', (s) => f1(s.windowPP));
  table('share deviation from the scheduler\'s target (weights; rr, lc, dh: equal), pp: xvs | IPVS', (s) =>
    `${f1(s.xvsTargetPP)} | ${f1(s.ipvsTargetPP)}`);
  table('active-connection imbalance vs target, time-averaged max, pp: xvs | IPVS', (s) =>
    `${f1(s.xvsImbalancePP)} | ${f1(s.ipvsImbalancePP)}`);
  console.log(`\novf on capacity weights: share deviation xvs vs IPVS, pp, mean over ${seeds} seeds (worst) | new connections refused xvs | IPVS`);
  for (const s of all.filter((x) => x.scheduler === 'ovf')) {
    console.log(`${`ovf${s.variant}`.padEnd(20)} ${s.mix.padEnd(18)} ${f1(s.sharePP)} (${f1(s.worstSharePP)}) | ${pct(s.refused)} | ${pct(s.ipvsRefused)}`);
  }
  const loc = sums.filter((s) => s.xvsLocality !== undefined);
  console.log('\nlocality: a destination\'s connection goes where its previous one went: xvs | IPVS');
  for (const s of loc) console.log(`${s.scheduler.padEnd(6)} ${s.mix.padEnd(6)} ${pct(s.xvsLocality!).padStart(7)} | ${pct(s.ipvsLocality!)}`);
}

function printDisruption(rows: readonly DisruptionRow[]): void {
  console.log('\nslots moved when one real is removed / added (worst case over the reals tried)');
  for (const r of rows) {
    console.log(`${r.scheduler.padEnd(3)} N=${String(r.reals).padEnd(5)} M=${String(r.tableSize).padEnd(6)} remove ${pct(r.removeOne).padStart(7)}  add ${pct(r.addOne).padStart(7)}  ideal ${pct(r.ideal)}`);
  }
}

export async function runFidelityBench(): Promise<object> {
  const started = performance.now();
  const rows: FidelityRow[] = [];
  const names = Object.keys(SCHEDULERS) as SchedulerName[];
  let arrivals = 0;
  for (const seed of FIDELITY_PARAMS.seeds) {
    const p: FidelityParams = { ...FIDELITY_PARAMS, seed };
    const w = makeWorkload(p);
    arrivals += w.conns;
    for (const name of names) {
      const variants: [string, NewConnAs | undefined][] = [['', undefined]];
      if (SCHEDULERS[name].lookup === 'seq' && SCHEDULERS[name].kind === 'dynamic') variants.push([' (new=active)', 'active'], [' (new=inactive)', 'inactive']);
      for (const [variant, as] of variants) {
        for (const [mix, weights] of Object.entries(name === 'ovf' ? OVF_MIXES : WEIGHT_MIXES)) {
          rows.push({ ...simulate(w, name, weights, as, p), variant, mix, seed });
        }
      }
      await new Promise((r) => setImmediate(r)); // stay responsive to signals
    }
  }
  const summary = summarize(rows);
  const disruption = measureDisruption();
  printShares(summary, FIDELITY_PARAMS.seeds.length);
  const slowReal = runSlowScenario();
  const bursts = runBurstScenarios();
  printDisruption(disruption);
  const main = summary.filter((s) => s.variant === '');
  const over = main.filter((s) => s.sharePP > FIDELITY_PARAMS.goalPP);
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `\n${main.length - over.length} of ${main.length} scheduler x weights within ${FIDELITY_PARAMS.goalPP} pp of IPVS (mean over seeds)` +
      over.map((s) => `; over: ${s.scheduler} ${s.mix} ${f1(s.sharePP)} pp, where IPVS itself is ${f1(s.ipvsTargetPP)} pp and xvs ${f1(s.xvsTargetPP)} pp off the weight shares`).join('') +
      `\n${Math.round(arrivals / FIDELITY_PARAMS.seeds.length)} arrivals per run, ${FIDELITY_PARAMS.seeds.length} seeds, ${seconds.toFixed(1)} s`,
  );
  return {
    params: FIDELITY_PARAMS, mixes: WEIGHT_MIXES, ovfMixes: OVF_MIXES, summary, rows, slowReal, bursts, disruption,
    goalPP: FIDELITY_PARAMS.goalPP, over: over.map((s) => `${s.scheduler} ${s.mix}`), seconds,
  };
}
