// How long the control plane spends computing a table, per scheduler, for a
// large service: 1,000 real servers. Pushing the table into the map is
// measured elsewhere; this is the pure computation the daemon does per
// configuration change (static) or per tick (dynamic).

import { schedulerByName, type RealState, type SchedInput, type SchedulerName } from '../src/schedulers/registry.js';

export const SPEED_PARAMS = {
  reals: 1000,
  mhTableSize: 65537,
  picks: 4096,
  /** Runs per case after warm-up; the median is reported. */
  runs: 15,
  warmup: 3,
  budgetMs: 8000,
} as const;

interface Case {
  name: SchedulerName;
  label: string;
  input: SchedInput;
  /** Brings a fresh scheduler object to the state the timed build starts from. */
  setup?: (build: (i: SchedInput) => Uint32Array) => void;
}

function realsOf(n: number): RealState[] {
  // Fixed pseudo-random counts and weights: a busy service, ties rare.
  return Array.from({ length: n }, (_, i) => ({
    id: i + 1,
    weight: 1 + ((i * 7919) % 100),
    addr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    port: 80,
    active: (i * 104729) % 500,
    inactive: (i * 1299709) % 2000,
    overloaded: false,
  }));
}

export interface SpeedRow {
  scheduler: SchedulerName;
  case: string;
  tableLength: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  runs: number;
}

function time(c: Case, runs: number, warmup: number): SpeedRow {
  const sched = schedulerByName(c.name);
  let length = 0;
  for (let k = 0; k < warmup; k++) {
    c.setup?.(sched.build);
    length = sched.build(c.input).length;
  }
  const ms: number[] = [];
  for (let k = 0; k < runs; k++) {
    // A fresh scheduler object each run, so lblc/lblcr plan from c.input.previous, not from their last table.
    const s = schedulerByName(c.name);
    c.setup?.(s.build);
    const t0 = performance.now();
    s.build(c.input);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { scheduler: c.name, case: c.label, tableLength: length, medianMs: ms[ms.length >> 1]!, minMs: ms[0]!, maxMs: ms[ms.length - 1]!, runs };
}

export async function runSchedSpeedBench(): Promise<object> {
  const p = SPEED_PARAMS;
  const reals = realsOf(p.reals);
  const steady = (name: 'lblc' | 'lblcr'): Uint32Array => schedulerByName(name).build({ reals });
  const cases: Case[] = [
    { name: 'mh', label: `${p.reals} reals, M=${p.mhTableSize}`, input: { reals, tableSize: p.mhTableSize } },
    { name: 'wlc', label: `${p.reals} reals x ${p.picks} picks`, input: { reals, picks: p.picks } },
    { name: 'lc', label: `${p.reals} reals x ${p.picks} picks`, input: { reals, picks: p.picks } },
    { name: 'sed', label: `${p.reals} reals x ${p.picks} picks`, input: { reals, picks: p.picks } },
    { name: 'nq', label: `${p.reals} reals x ${p.picks} picks`, input: { reals, picks: p.picks } },
    { name: 'ovf', label: `${p.reals} reals x ${p.picks} picks`, input: { reals, picks: p.picks } },
    { name: 'twos', label: `${p.reals} reals x ${p.picks} picks`, input: { reals, picks: p.picks } },
    { name: 'sh', label: `${p.reals} reals, default size`, input: { reals } },
    { name: 'dh', label: `${p.reals} reals, default size`, input: { reals } },
    { name: 'rr', label: `${p.reals} reals`, input: { reals } },
    { name: 'wrr', label: `${p.reals} reals, weights 1..100`, input: { reals } },
    { name: 'lblc', label: `${p.reals} reals, fresh table`, input: { reals } },
    { name: 'lblc', label: `${p.reals} reals, from previous`, input: { reals, previous: steady('lblc') } },
    {
      name: 'lblc',
      label: `${p.reals} reals, 300 new dests`,
      // 300 buckets see their first flows (20 each): their 6000 connections are replayed.
      input: { reals, flows: Uint32Array.from({ length: 1021 }, (_, b) => (b % 3 === 0 && b < 900 ? 20 : 0)) },
      setup: (build) => void build({ reals }),
    },
    { name: 'lblcr', label: `${p.reals} reals, fresh table`, input: { reals } },
    { name: 'lblcr', label: `${p.reals} reals, from previous`, input: { reals, previous: steady('lblcr') } },
  ];
  const started = performance.now();
  const rows: SpeedRow[] = [];
  for (const c of cases) {
    const spent = performance.now() - started;
    const runs = spent > p.budgetMs ? 3 : p.runs;
    rows.push(time(c, runs, spent > p.budgetMs ? 1 : p.warmup));
    await new Promise((r) => setImmediate(r));
  }
  console.log('\ntable computation per scheduler (median over runs, ms; map push not included)');
  for (const r of rows) {
    console.log(`${r.scheduler.padEnd(6)} ${r.case.padEnd(30)} len ${String(r.tableLength).padStart(6)}  ${r.medianMs.toFixed(2).padStart(8)} ms  (min ${r.minMs.toFixed(2)}, max ${r.maxMs.toFixed(2)})`);
  }
  const pick = (s: SchedulerName): SpeedRow => rows.find((r) => r.scheduler === s)!;
  return {
    params: p,
    mhBuildMs: pick('mh').medianMs,
    wlcPlanMs: pick('wlc').medianMs,
    rows,
    seconds: (performance.now() - started) / 1000,
  };
}
