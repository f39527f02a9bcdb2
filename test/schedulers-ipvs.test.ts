import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XvsError } from '../src/errors.js';
import { hash32, slotOf } from '../src/schedulers/hash.js';
import { planLblc, planLblcState } from '../src/schedulers/lblc.js';
import { LBLCR_SET_SLOTS, planLblcr, planLblcrState } from '../src/schedulers/lblcr.js';
import { plan, type LeastConnName } from '../src/schedulers/least-conn.js';
import { buildMh, MH_HASH_SEEDS, MH_TABLE_SIZE } from '../src/schedulers/mh.js';
import { SCHEDULERS, schedulerByName, type NewConnAs, type RealState, type SchedMemory, type SchedulerName } from '../src/schedulers/registry.js';
import { activeSpans, addTick, closingPicks, type ConnHistory } from '../src/schedulers/conn-history.js';
import { buildDh, buildSh, HASH_TABLE_SIZE } from '../src/schedulers/sh-dh.js';
import { SLOT } from '../src/maps/abi.js';

// Reference models written plainly from the IPVS sources
// (net/netfilter/ipvs/ip_vs_{lc,wlc,sed,nq,lblc,lblcr}.c, include/net/ip_vs.h)
// and the Maglev paper. They step one connection at a time on their own
// counts and share no code with the planners.

interface Dest {
  id: number;
  weight: number;
  active: number;
  inactive: number;
  overloaded: boolean;
}

const overhead = (d: Dest): number => d.active * 256 + d.inactive; // ip_vs_dest_conn_overhead

function ipvsLc(ds: readonly Dest[]): Dest | null {
  let least: Dest | null = null;
  for (const d of ds) {
    if (d.overloaded || d.weight === 0) continue;
    if (!least || overhead(d) < overhead(least)) least = d;
  }
  return least;
}

// wlc and sed share a shape: first usable dest, then strict cross-multiplied
// comparisons (overloaded skipped; weight 0 can never win after the first).
function firstThenLeast(ds: readonly Dest[], cost: (d: Dest) => number): Dest | null {
  const start = ds.findIndex((d) => !d.overloaded && d.weight > 0);
  if (start < 0) return null;
  let least = ds[start]!;
  for (const d of ds.slice(start + 1)) {
    if (d.overloaded) continue;
    if (cost(least) * d.weight > cost(d) * least.weight) least = d;
  }
  return least;
}

const ipvsWlc = (ds: readonly Dest[]): Dest | null => firstThenLeast(ds, overhead);
const ipvsSed = (ds: readonly Dest[]): Dest | null => firstThenLeast(ds, (d) => d.active + 1);

function ipvsNq(ds: readonly Dest[]): Dest | null {
  let least: Dest | null = null;
  for (const d of ds) {
    if (d.overloaded || d.weight === 0) continue;
    if (d.active === 0) return d;
    if (!least || (least.active + 1) * d.weight > (d.active + 1) * least.weight) least = d;
  }
  return least;
}

const REFS: Record<LeastConnName, (ds: readonly Dest[]) => Dest | null> = { lc: ipvsLc, wlc: ipvsWlc, sed: ipvsSed, nq: ipvsNq };

function countNew(d: Dest, as: NewConnAs): void {
  if (as === 'active') d.active++;
  else d.inactive++;
}

function ipvsSequence(name: LeastConnName, dests: readonly Dest[], picks: number, as: NewConnAs): number[] {
  const ds = dests.map((d) => ({ ...d }));
  const out: number[] = [];
  for (let k = 0; k < picks; k++) {
    const d = REFS[name](ds);
    if (!d) break;
    out.push(d.id);
    countNew(d, as);
  }
  return out;
}

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
}

function randomDests(rand: (n: number) => number): Dest[] {
  const weights = [0, 1, 1, 2, 3, 5, 10, 100];
  const counts = [0, 0, 1, 2, 3, 10, 50];
  return Array.from({ length: 1 + rand(8) }, (_, i) => ({
    id: 500 + i,
    weight: weights[rand(weights.length)]!,
    active: counts[rand(counts.length)]!,
    inactive: counts[rand(counts.length)]!,
    overloaded: rand(7) === 0,
  }));
}

const LC_NAMES = ['lc', 'wlc', 'sed', 'nq'] as const;

test('lc, wlc, sed, nq: the plan is IPVS picking one connection at a time', () => {
  const rand = rng(7);
  for (let trial = 0; trial < 400; trial++) {
    const ds = randomDests(rand);
    const picks = rand(300);
    for (const name of LC_NAMES) {
      for (const as of ['active', 'inactive'] as const) {
        const want = ipvsSequence(name, ds, picks, as);
        assert.deepEqual([...plan(name, ds, picks, { newConnAs: as })], want, `${name} ${as} ${JSON.stringify(ds)}`);
      }
    }
  }
});

/**
 * As ipvsSequence, but a pick counts as active for the next span[real]
 * picks, then as inactive; and before pick k, each real listed in
 * closing[real] at k has one of its open connections turn inactive.
 */
function ipvsSequenceSpans(name: LeastConnName, dests: readonly Dest[], picks: number, span: readonly number[], closing: readonly (readonly number[] | undefined)[] = []): number[] {
  const ds = dests.map((d) => ({ ...d }));
  const open: { d: Dest; until: number }[] = [];
  ds.forEach((d, i) => {
    for (const k of (closing[i] ?? []).slice(0, d.active)) open.push({ d, until: k });
  });
  const out: number[] = [];
  for (let k = 0; k < picks; k++) {
    for (const o of open.filter((x) => x.until === k)) {
      o.d.active--;
      o.d.inactive++;
    }
    const d = REFS[name](ds);
    if (!d) break;
    out.push(d.id);
    const s = span[dests.findIndex((x) => x.id === d.id)]!;
    if (s === 0) d.inactive++;
    else {
      d.active++;
      open.push({ d, until: k + s + 1 });
    }
  }
  return out;
}

test('lc, wlc, sed, nq: picks that stay active for a while, then turn inactive', () => {
  const rand = rng(55);
  for (let trial = 0; trial < 300; trial++) {
    const ds = randomDests(rand);
    const span = ds.map(() => [0, 0, 1, 2, 5, 20, Infinity][rand(7)]!);
    const picks = rand(200);
    for (const name of LC_NAMES) {
      assert.deepEqual([...plan(name, ds, picks, { activeFor: span })], ipvsSequenceSpans(name, ds, picks, span), `${name} ${span}`);
    }
  }
});

test('lc, wlc, sed, nq: connections open at the start of a plan close where they are told to', () => {
  const rand = rng(56);
  for (let trial = 0; trial < 300; trial++) {
    const ds = randomDests(rand);
    const span = ds.map(() => [0, 1, 5, Infinity][rand(4)]!);
    // Ascending pick indexes, sometimes more than the real has open (the extra ones do nothing).
    const closing = ds.map((d) => (rand(3) === 0 ? undefined : Array.from({ length: d.active + rand(2) }, () => rand(60)).sort((a, b) => a - b)));
    const picks = rand(120);
    for (const name of LC_NAMES) {
      assert.deepEqual([...plan(name, ds, picks, { activeFor: span, closing })], ipvsSequenceSpans(name, ds, picks, span, closing), `${name} ${span} ${JSON.stringify(closing)}`);
    }
  }
});

// --- what lc/wlc/sed/nq learn from ticks (conn-history.ts) --------------------

test('conn-history: Little\'s law from decayed sums gives each real how long it keeps a connection', () => {
  // Steady state: real 1 gets 10 new connections a tick and keeps each
  // active for exactly 3 ticks (30 seen active at every tick, 10 leaving);
  // real 2 gets 10 a tick and closes them between ticks. 20 new a tick in all.
  let h: ConnHistory | undefined;
  for (let t = 0; t < 200; t++) h = addTick(h, [{ id: 1, active: 30, arrivals: 10 }, { id: 2, active: 0, arrivals: 10 }]);
  // 3 ticks x 20 new connections per tick = 60 later picks, and none.
  assert.deepEqual(activeSpans(h, [{ id: 1 }, { id: 2 }]), [60, 0]);
  // A real with no record takes the service's mean (90 active / 20 new per tick = 1.5 ticks x 20).
  assert.deepEqual(activeSpans(h, [{ id: 3 }]), [30]);
  // Idle ticks change neither ratio: the rate is per tick that had new connections.
  for (let t = 0; t < 20; t++) h = addTick(h, [{ id: 1, active: 0, arrivals: 0 }, { id: 2, active: 0, arrivals: 0 }]);
  const [a, b] = activeSpans(h, [{ id: 1 }, { id: 2 }]);
  assert.ok(a! > 30 && b === 0, `${a} ${b}`);
  // Nothing known: every pick counts active for the whole plan.
  assert.deepEqual(activeSpans(undefined, [{ id: 1 }]), [Infinity]);
  assert.deepEqual(activeSpans(addTick(undefined, [{ id: 1, active: 0, arrivals: 0 }]), [{ id: 1 }]), [Infinity]);
  // Connections that opened and none has ended yet: busy, however long.
  let held = addTick(h, [{ id: 4, active: 3, arrivals: 3 }]);
  for (let t = 0; t < 5; t++) held = addTick(held, [{ id: 4, active: 3, arrivals: 0 }]);
  assert.deepEqual(activeSpans(held, [{ id: 4 }]), [Infinity]);
  assert.deepEqual(closingPicks([{ active: 3 }], activeSpans(held, [{ id: 4 }])), [undefined]);
  // Once they end, the time they lasted is known.
  held = addTick(held, [{ id: 4, active: 0, arrivals: 0 }]);
  assert.ok(Number.isFinite(activeSpans(held, [{ id: 4 }])[0]));
  // After a restart the open connections were not seen arriving: busy until departures show.
  assert.deepEqual(activeSpans(addTick(undefined, [{ id: 5, active: 40, arrivals: 10 }]), [{ id: 5 }]), [Infinity]);
});

test('conn-history: one tick that catches a fast server\'s connections open does not make it look busy', () => {
  // The lab's wlc case: while 10 clients connect, a tick sees two of rs2's
  // five answers still open; rs1 holds its five.
  let h = addTick(undefined, [{ id: 1, active: 5, arrivals: 5 }, { id: 2, active: 2, arrivals: 5 }]);
  for (let t = 0; t < 5; t++) h = addTick(h, [{ id: 1, active: 5, arrivals: 0 }, { id: 2, active: 0, arrivals: 0 }]);
  const [held, fast] = activeSpans(h, [{ id: 1 }, { id: 2 }]);
  assert.ok(held! > 40, `rs1's connections outlast the plan: ${held}`);
  // 2/5 of a tick x 10 new connections a busy tick = 4: as many later picks as rs2 needs to look as busy as rs1.
  assert.ok(fast! <= 4, `rs2: ${fast}`);
  // A few more connections to rs2 and the chance sample is diluted.
  h = addTick(h, [{ id: 1, active: 5, arrivals: 0 }, { id: 2, active: 0, arrivals: 10 }]);
  assert.ok(activeSpans(h, [{ id: 1 }, { id: 2 }])[1]! <= 1);
});

test('conn-history: open connections close along the plan, on the scale of their span', () => {
  assert.deepEqual(closingPicks([{ active: 2 }, { active: 1 }, { active: 0 }, { active: 3 }], [10, 0, 5, Infinity]), [
    [5, 15], // 10 x 1/2, 10 x (1/2 + 1) (+1/3, rounded down)
    [0], // closes before the next pick
    undefined,
    undefined, // held for the whole plan
  ]);
});

/** A plain IPVS service fed by sequential clients: each connection closes before the next one arrives. */
class SequentialIpvs {
  readonly ds: Dest[];
  constructor(readonly name: LeastConnName, dests: readonly Dest[]) {
    this.ds = dests.map((d) => ({ ...d }));
  }
  /** One new connection: IPVS picks on the counts, and it is over (inactive) before the next one. */
  pick(): number {
    const d = REFS[this.name](this.ds)!;
    d.inactive++;
    return d.id;
  }
}

const toReals = (ds: readonly Dest[], arrivals?: ReadonlyMap<number, number>): RealState[] =>
  ds.map((d) => ({ id: d.id, weight: d.weight, addr: `192.0.2.${d.id}`, port: 80, active: d.active, inactive: d.inactive, ...(arrivals ? { arrivals: arrivals.get(d.id) ?? 0 } : {}) }));

/** Ticks as the daemon has them before a burst: rs1 (id 1) holds `held` connections, rs2's close at once. */
function warmHistory(name: LeastConnName, held: number): { planner: ReturnType<typeof schedulerByName>; memory: SchedMemory | undefined } {
  const planner = schedulerByName(name);
  let memory: SchedMemory | undefined;
  const reals = (a: number, arr1: number, arr2: number): RealState[] => toReals([
    { id: 1, weight: 1, active: a, inactive: 0, overloaded: false },
    { id: 2, weight: 1, active: 0, inactive: 5, overloaded: false },
  ], new Map([[1, arr1], [2, arr2]]));
  memory = planner.plan({ reals: reals(held, held, 5), picks: 64 }, memory).memory;
  for (let t = 0; t < 5; t++) memory = planner.plan({ reals: reals(held, 0, 0), picks: 64 }, memory).memory;
  return { planner, memory };
}

test('planner: a burst within one tick is the exact IPVS choice (the lab\'s wlc case)', () => {
  // The captured failure: rs1 active 4, rs2 inactive 6, plan 333323232333.
  for (const name of LC_NAMES) {
    const { planner, memory } = warmHistory(name, 4);
    const ds: Dest[] = [{ id: 1, weight: 1, active: 4, inactive: 0, overloaded: false }, { id: 2, weight: 1, active: 0, inactive: 6, overloaded: false }];
    const table = planner.plan({ reals: toReals(ds, new Map()), picks: 64, cursor: 0 }, memory).table;
    const ipvs = new SequentialIpvs(name, ds);
    const want = Array.from({ length: 20 }, () => ipvs.pick());
    assert.deepEqual([...table.subarray(0, 20)], want, name);
    assert.ok(want.every((id) => id === 2), `${name}: IPVS sends all 20 to rs2`);
  }
});

test('planner: a burst across ticks goes on as IPVS, the plan starting where the cursor is', () => {
  for (const name of LC_NAMES) {
    for (const perTick of [3, 7, 10]) {
      const { planner, memory: m0 } = warmHistory(name, 4);
      let memory = m0;
      const ipvs = new SequentialIpvs(name, [{ id: 1, weight: 1, active: 4, inactive: 0, overloaded: false }, { id: 2, weight: 1, active: 0, inactive: 6, overloaded: false }]);
      let pos = 1000n + BigInt(perTick); // the dataplane's counter runs on from earlier traffic
      const got: number[] = [];
      const want: number[] = [];
      for (let tick = 0; tick < 4; tick++) {
        // The tick: counts as the census sees them, arrivals since the last tick.
        const arrivals = new Map<number, number>();
        for (const id of got.slice(-perTick)) arrivals.set(id, (arrivals.get(id) ?? 0) + 1);
        const planned = planner.plan({ reals: toReals(ipvs.ds, tick === 0 ? undefined : arrivals), picks: 64, cursor: pos }, memory);
        memory = planned.memory;
        for (let k = 0; k < perTick; k++) {
          got.push(planned.table[Number(pos % BigInt(planned.table.length))]!);
          pos++;
          want.push(ipvs.pick());
        }
      }
      assert.deepEqual(got, want, `${name}, ${perTick} a tick`);
    }
  }
});

test('planner: the next plan continues at the cursor instead of replaying its first slots', () => {
  const planner = schedulerByName('wlc');
  // Three reals, weights 3:2:1, connections that stay open: the plan spreads by weight.
  const ds: Dest[] = [1, 2, 3].map((id) => ({ id, weight: 4 - id, active: 0, inactive: 0, overloaded: false }));
  const first = planner.plan({ reals: toReals(ds), picks: 12, cursor: 0 }, undefined).table;
  // Five new connections read slots 0..4; the counts at the next tick include them.
  const seen = [...first.subarray(0, 5)];
  const after = ds.map((d) => ({ ...d, active: seen.filter((id) => id === d.id).length }));
  const next = planner.plan({ reals: toReals(after), picks: 12, cursor: 5 }, undefined).table;
  const fresh = planner.plan({ reals: toReals(after), picks: 12, cursor: 0 }, undefined).table;
  // The sixth connection reads slot 5 and takes the new plan's first pick...
  assert.equal(next[5], fresh[0]);
  assert.deepEqual([...next.subarray(5, 12), ...next.subarray(0, 5)], [...fresh]);
  // ...which is IPVS's sixth pick: the burst goes on as if one plan had served it.
  const whole = planner.plan({ reals: toReals(ds), picks: 12, cursor: 0 }, undefined).table;
  assert.deepEqual([...seen, ...next.subarray(5, 12)], [...whole.subarray(0, 12)]);
});

test('least-connection ties go to the first in list order', () => {
  const tie = (w: number[]): Dest[] => w.map((weight, i) => ({ id: i + 1, weight, active: 0, inactive: 0, overloaded: false }));
  assert.deepEqual([...plan('lc', tie([1, 1, 1]), 6)], [1, 2, 3, 1, 2, 3]);
  // wlc: all idle ties on 0, so the first real goes first even though it is the lightest.
  assert.deepEqual([...plan('wlc', tie([1, 3]), 4)], [1, 2, 2, 2]);
  // sed counts the incoming job, so the heavy real goes first: (0+1)/3 < (0+1)/1.
  assert.deepEqual([...plan('sed', tie([1, 3]), 4)], [2, 2, 1, 2]);
  // nq: every idle real once, in list order, then sed.
  assert.deepEqual([...plan('nq', tie([1, 3]), 4)], [1, 2, 2, 2]);
  assert.deepEqual([...plan('wlc', tie([2, 2]), 4)], [1, 2, 1, 2]);
});

test('least-connection weights: counts converge to the weight shares', () => {
  const ds: Dest[] = [5, 3, 1].map((weight, i) => ({ id: i, weight, active: 0, inactive: 0, overloaded: false }));
  for (const name of ['wlc', 'sed', 'nq'] as const) {
    const p = plan(name, ds, 900);
    const share = [0, 1, 2].map((id) => p.filter((x) => x === id).length);
    assert.deepEqual(share, [500, 300, 100], name);
  }
  assert.deepEqual([0, 1, 2].map((id) => plan('lc', ds, 900).filter((x) => x === id).length), [300, 300, 300]);
});

test('least-connection: inactive counts 1/256 of active; sed and nq ignore it', () => {
  const ds: Dest[] = [
    { id: 1, weight: 1, active: 1, inactive: 0, overloaded: false },
    { id: 2, weight: 1, active: 0, inactive: 255, overloaded: false },
  ];
  assert.equal(plan('lc', ds, 1)[0], 2); // 255 < 256
  ds[1]!.inactive = 256;
  assert.equal(plan('lc', ds, 1)[0], 1); // 256 == 256: list order
  assert.equal(plan('sed', ds, 1)[0], 2); // (0+1) < (1+1)
  assert.equal(plan('nq', ds, 1)[0], 2); // idle
});

test('least-connection: weight 0 and overloaded never picked; none usable is an empty plan', () => {
  const ds: Dest[] = [
    { id: 1, weight: 0, active: 0, inactive: 0, overloaded: false },
    { id: 2, weight: 5, active: 0, inactive: 0, overloaded: true },
    { id: 3, weight: 1, active: 900, inactive: 900, overloaded: false },
  ];
  for (const name of LC_NAMES) {
    assert.deepEqual([...new Set(plan(name, ds, 50))], [3], name);
    assert.equal(plan(name, ds.slice(0, 2), 50).length, 0, name);
    assert.equal(plan(name, [], 50).length, 0, name);
    assert.equal(plan(name, ds, 0).length, 0, name);
  }
  assert.throws(() => plan('wlc', ds, -1), (e: unknown) => e instanceof XvsError && e.code === 'BAD_ARGUMENT');
  assert.throws(() => plan('wlc', [{ id: 1, weight: 1, active: -1, inactive: 0 }], 1), (e: unknown) => e instanceof XvsError && e.code === 'BAD_ARGUMENT');
});

// --- static hash tables ------------------------------------------------------

const ipNum = (a: string): number => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);

/** The largest-remainder split the sh/dh tables promise, written out plainly. */
function hamilton(weights: readonly number[], slots: number): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  const base = weights.map((w) => Math.floor((slots * w) / total));
  const left = slots - base.reduce((a, b) => a + b, 0);
  const byRem = weights.map((w, i) => ({ i, r: (slots * w) % total })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (let k = 0; k < left; k++) base[byRem[k]!.i]!++;
  return base;
}

interface Real extends RealState {
  overloaded: boolean;
}

function hashReals(weights: readonly number[], opts: { overloaded?: number[] } = {}): Real[] {
  return weights.map((weight, i) => ({
    id: 100 + i,
    weight,
    addr: `10.1.${(i * 37) % 256}.${(i * 101) % 256}`,
    port: 80 + (i % 3),
    overloaded: opts.overloaded?.includes(i) ?? false,
  }));
}

const tally = (t: Uint32Array): Map<number, number> => {
  const m = new Map<number, number>();
  for (const id of t) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
};

function shuffled<T>(xs: readonly T[], rand: (n: number) => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rand(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

test('hash32 is the dataplane hash: (ntohl(fold(addr)) * 2654435761) mod 2^32', () => {
  for (const a of ['0.0.0.0', '10.0.0.1', '192.0.2.10', '203.0.113.7', '255.255.255.255']) {
    const want = Number((BigInt(ipNum(a)) * 2654435761n) % 2n ** 32n);
    assert.equal(hash32(a), want, a);
    assert.equal(hash32(ipNum(a)), want, a);
    assert.equal(slotOf(a, 4093), want % 4093);
  }
  // IPv6 folds its four words by XOR first (IPVS's ip_vs_sh_hashkey).
  const fold = (0x20010db8 ^ 0 ^ 0 ^ 0x00000001) >>> 0;
  assert.equal(hash32('2001:db8::1'), Number((BigInt(fold) * 2654435761n) % 2n ** 32n));
  assert.throws(() => hash32('2001:db8::zz'), (e: unknown) => e instanceof XvsError && e.code === 'BAD_ADDRESS');
});

test('sh: buckets in proportion to weight (0 counts as 1), laid out by address; weight 0 and overloaded refuse', () => {
  const weights = [5, 3, 1, 0, 10, 7];
  const reals = hashReals(weights, { overloaded: [5] });
  const t = buildSh(reals);
  assert.equal(t.length, HASH_TABLE_SIZE);
  // ip_vs_sh_reassign: every dest holds max(weight, 1) buckets per round.
  const all = [...reals].sort((a, b) => ipNum(a.addr) - ipNum(b.addr) || a.port - b.port);
  const want = hamilton(all.map((r) => Math.max(r.weight, 1)), t.length);
  // Runs in address order; an unavailable real's run is refused slots (SLOT.none).
  let at = 0;
  all.forEach((r, i) => {
    const owner = r.weight > 0 && !r.overloaded ? r.id : SLOT.none;
    assert.ok(t.subarray(at, at + want[i]!).every((id) => id === owner), `run of ${r.id}`);
    at += want[i]!;
  });
  assert.equal(tally(t).get(103), undefined);
  assert.equal(tally(t).get(105), undefined);
});

test('dh: every live real holds an equal share, weights ignored', () => {
  const t = buildDh(hashReals([5, 3, 1, 0]), 257);
  const counts = [...tally(t).values()].sort();
  assert.deepEqual(counts, [85, 86, 86]);
  assert.equal(tally(t).get(103), undefined);
});

test('sh, dh, mh: the same configuration gives the same table in any order', () => {
  const rand = rng(99);
  const reals = hashReals([4, 1, 1, 7, 3, 2, 9, 1, 5, 5]);
  for (const [name, build] of [['sh', buildSh], ['dh', buildDh], ['mh', buildMh]] as const) {
    const want = build(reals);
    for (let k = 0; k < 5; k++) {
      const other = shuffled(reals, rand);
      assert.deepEqual(build(other), want, name);
    }
  }
});

test('sh, dh, mh: a tiny weight keeps a bucket; none usable is an empty table', () => {
  const t = buildSh(hashReals([65535, 1, 65535]), 251);
  assert.equal(tally(t).get(101), 1);
  for (const build of [buildSh, buildDh, buildMh]) {
    assert.equal(build(hashReals([0, 0], { overloaded: [] })).length, 0);
    assert.equal(build(hashReals([1, 2], { overloaded: [0, 1] })).length, 0);
    assert.equal(build([]).length, 0);
  }
});

test('sh, dh, mh: table size must be a prime that fits the reals', () => {
  const bad = (f: () => unknown): void => assert.throws(f, (e: unknown) => e instanceof XvsError && e.code === 'BAD_ARGUMENT');
  for (const build of [buildSh, buildDh, buildMh]) {
    bad(() => build(hashReals([1, 1]), 1000));
    bad(() => build(hashReals([1, 1]), 1));
    bad(() => build(hashReals([1, 1, 1, 1]), 3));
    bad(() => build(hashReals([1]), 2 ** 20 + 7));
    assert.equal(build(hashReals([1, 1]), 3).length, 3);
  }
  assert.equal(buildMh(hashReals([1])).length, MH_TABLE_SIZE);
});

// --- Maglev ------------------------------------------------------------------

/** FNV-1a + fmix32 in BigInt, independent of the Math.imul implementation. */
function refStrHash(s: string, seed: number): number {
  const m = 0xffffffffn;
  let h = (0x811c9dc5n ^ BigInt(seed)) & m;
  for (const b of Buffer.from(s, 'utf8')) h = ((h ^ BigInt(b)) * 0x01000193n) & m;
  h ^= h >> 16n;
  h = (h * 0x85ebca6bn) & m;
  h ^= h >> 13n;
  h = (h * 0xc2b2ae35n) & m;
  h ^= h >> 16n;
  return Number(h);
}

/** Maglev's Pseudocode 1, with ip_vs_mh.c's turns per round. */
function refMaglev(reals: readonly Real[], size: number): number[] {
  const live = reals.filter((r) => r.weight > 0 && !r.overloaded).sort((a, b) => ipNum(a.addr) - ipNum(b.addr) || a.port - b.port);
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const g = live.reduce((a, r) => gcd(r.weight, a), 0);
  const bits = Math.floor(Math.round(Math.log2(size)) / 2);
  const fls = (x: number): number => Math.floor(Math.log2(x)) + 1;
  const shift = Math.max(0, fls(Math.max(...live.map((r) => r.weight)) / g) - bits);
  const perm = live.map((r) => ({
    id: r.id,
    offset: refStrHash(`${r.addr}:${r.port}`, MH_HASH_SEEDS.offset) % size,
    skip: (refStrHash(`${r.addr}:${r.port}`, MH_HASH_SEEDS.skip) % (size - 1)) + 1,
    turns: Math.max(1, Math.floor(r.weight / g / 2 ** shift)),
    next: 0,
  }));
  const entry = new Array<number>(size).fill(-1);
  let n = 0;
  for (;;) {
    for (const p of perm) {
      for (let t = 0; t < p.turns; t++) {
        let c = (p.offset + p.next * p.skip) % size;
        while (entry[c]! >= 0) {
          p.next++;
          c = (p.offset + p.next * p.skip) % size;
        }
        entry[c] = p.id;
        p.next++;
        if (++n === size) return entry;
      }
    }
  }
}

test('mh is Maglev with IPVS turns, on several sizes and weight sets', () => {
  const cases: [number[], number][] = [
    [[1, 1, 1], 251],
    [[5, 3, 1], 1021],
    [[1, 0, 2, 0, 4], 4093],
    [[100, 1], 4093],
    [[65535, 1, 300], 1021],
    [[3, 3, 3, 3, 3, 3], 65537],
  ];
  for (const [w, size] of cases) {
    assert.deepEqual([...buildMh(hashReals(w), size)], refMaglev(hashReals(w), size), `${w} @${size}`);
  }
});

test('mh weights: slots follow weight/gcd, flattened above 2^(bits/2) as IPVS does', () => {
  const t = buildMh(hashReals([6, 4, 2]));
  const c = tally(t);
  const share = [100, 101, 102].map((id) => c.get(id)! / t.length);
  for (const [got, want] of share.map((s, i) => [s, [3, 2, 1][i]! / 6] as const)) assert.ok(Math.abs(got - want) < 0.01, `${got} vs ${want}`);
  // 65535:1 on 65537 slots: turns 255:1 after the 8-bit shift.
  const f = tally(buildMh(hashReals([65535, 1])));
  assert.ok(Math.abs(f.get(101)! / MH_TABLE_SIZE - 1 / 256) < 0.002);
});

test('mh disruption: adding or removing one of N reals moves about 1/N of the slots', (t) => {
  const rows: string[] = [];
  for (const n of [5, 10, 50]) {
    const reals = hashReals(Array.from({ length: n }, () => 1));
    const base = buildMh(reals);
    const moved = (other: Uint32Array): number => base.reduce((m, id, i) => m + (other[i] === id ? 0 : 1), 0) / base.length;
    let worstRemove = 0;
    for (let k = 0; k < n; k++) worstRemove = Math.max(worstRemove, moved(buildMh(reals.filter((_, i) => i !== k))));
    let worstAdd = 0;
    for (let k = 0; k < 5; k++) {
      worstAdd = Math.max(worstAdd, moved(buildMh([...reals, { id: 999, weight: 1, addr: `10.9.0.${k}`, port: 80, overloaded: false }])));
    }
    const bound = (1 / n) * 1.2 + 0.005;
    rows.push(`N=${n}: remove worst ${(worstRemove * 100).toFixed(2)}%, add worst ${(worstAdd * 100).toFixed(2)}%, ideal ${(100 / n).toFixed(2)}%/${(100 / (n + 1)).toFixed(2)}%`);
    assert.ok(worstRemove <= bound, `N=${n} remove ${worstRemove}`);
    assert.ok(worstAdd <= bound, `N=${n} add ${worstAdd}`);
    // Removing a real moves at least all of its own slots.
    assert.ok(worstRemove >= 1 / n - 0.01);
  }
  for (const r of rows) t.diagnostic(r);
});

// --- lblc / lblcr --------------------------------------------------------------

const lblcOverloaded = (d: Dest, ds: readonly Dest[]): boolean => d.active > d.weight && ds.some((m) => m.active * 2 < m.weight);

/** ip_vs_lblc_schedule per bucket: keep the cached dest unless dead, quiesced or overloaded. */
function ipvsLblcTick(dests: readonly Dest[], previous: Uint32Array | undefined, size: number, as: NewConnAs): number[] {
  const ds = dests.map((d) => ({ ...d }));
  if (!ipvsWlc(ds)) return [];
  const out: number[] = [];
  for (let b = 0; b < size; b++) {
    const cached = previous?.length === size ? ds.find((d) => d.id === previous[b]) : undefined;
    if (cached && cached.weight > 0 && !lblcOverloaded(cached, ds)) {
      out.push(cached.id);
      continue;
    }
    const d = ipvsWlc(ds)!;
    out.push(d.id);
    countNew(d, as);
  }
  return out;
}

function evolve(ds: Dest[], rand: (n: number) => number): Dest[] {
  const next = ds
    .filter(() => rand(15) !== 0)
    .map((d) => ({
      ...d,
      active: Math.max(0, d.active + rand(9) - 4),
      inactive: Math.max(0, d.inactive + rand(9) - 4),
      weight: rand(10) === 0 ? [0, 1, 4, 8][rand(4)]! : d.weight,
      overloaded: rand(10) === 0 ? !d.overloaded : d.overloaded,
    }));
  if (rand(4) === 0) next.push({ id: 900 + rand(50), weight: 1 + rand(8), active: rand(6), inactive: rand(6), overloaded: false });
  return next.filter((d, i) => next.findIndex((x) => x.id === d.id) === i);
}

test('lblc: each tick is IPVS lblc over the buckets, from the previous table', () => {
  const rand = rng(2024);
  for (let run = 0; run < 30; run++) {
    let ds = randomDests(rand).map((d) => ({ ...d, weight: d.weight % 12 }));
    let prev: Uint32Array | undefined;
    const size = [1, 7, 61, 251][rand(4)]!;
    for (let tick = 0; tick < 15; tick++) {
      const as = rand(2) === 0 ? 'active' : 'inactive';
      const got = planLblc(ds, prev, size, { newConnAs: as });
      assert.deepEqual([...got], ipvsLblcTick(ds, prev, size, as), `run ${run} tick ${tick}`);
      if (got.length) prev = got;
      ds = evolve(ds, rand);
    }
  }
});

const dest = (id: number, weight: number, active = 0, inactive = 0, overloaded = false): Dest => ({ id, weight, active, inactive, overloaded });

test('lblc locality: buckets stay put while nobody is overloaded by IPVS rules', () => {
  const first = planLblc([dest(1, 4), dest(2, 4), dest(3, 2)], undefined, 1021);
  const c = tally(first);
  // A fresh table spreads by wlc, one simulated connection per bucket: 4:4:2.
  assert.deepEqual([c.get(1), c.get(2), c.get(3)].map((x) => Math.round((x! / 1021) * 10)), [4, 4, 2]);
  // Loads move, and wlc would now pick real 3, but real 1 is not over its weight.
  const again = planLblc([dest(1, 4, 4, 90), dest(2, 4, 1), dest(3, 2, 0)], first, 1021);
  assert.deepEqual(again, first);
  // Over its weight but no real below half of its own: still kept.
  const busy = planLblc([dest(1, 4, 9), dest(2, 4, 2), dest(3, 2, 1)], first, 1021);
  assert.deepEqual(busy, first);
});

test('lblc overload: an over-weight real loses its buckets while some real is under half', () => {
  const first = planLblc([dest(1, 4), dest(2, 4), dest(3, 2)], undefined, 1021);
  const ones = first.filter((id) => id === 1).length;
  const t = planLblc([dest(1, 4, 5), dest(2, 4, 3), dest(3, 20, 0)], first, 1021);
  // Real 3 takes buckets until it is no longer under half its weight (10
  // simulated connections), then real 1 is no longer "overloaded" and keeps the rest.
  const moved = [...first].filter((id, b) => id === 1 && t[b] !== 1).length;
  assert.equal(moved, 10);
  assert.ok([...first].every((id, b) => id === 1 || t[b] === id));
  assert.equal(t.filter((id) => id === 1).length, ones - 10);
});

test('lblc: quiesced or removed reals lose their buckets; a flagged overload keeps cached ones', () => {
  const first = planLblc([dest(1, 1), dest(2, 1), dest(3, 1)], undefined, 61);
  const quiesced = planLblc([dest(1, 0), dest(2, 1), dest(3, 1)], first, 61);
  assert.ok(!quiesced.includes(1));
  assert.ok([...first].every((id, b) => id === 1 || quiesced[b] === id));
  const removed = planLblc([dest(2, 1), dest(3, 1)], first, 61);
  assert.ok(!removed.includes(1));
  // IPVS lblc checks only weight and its own overload rule on a cached dest...
  const flagged = planLblc([dest(1, 1, 0, 0, true), dest(2, 1), dest(3, 1)], first, 61);
  assert.deepEqual(flagged, first);
  // ...but never gives a flagged real a new destination.
  assert.ok(!planLblc([dest(1, 1, 0, 0, true), dest(2, 1), dest(3, 1)], undefined, 61).includes(1));
  assert.equal(planLblc([dest(1, 0), dest(2, 1, 0, 0, true)], first, 61).length, 0);
});

/** lblcr sets: read back from the slots (first appearance), then ip_vs_lblcr_schedule. */
function ipvsLblcrSets(dests: readonly Dest[], previous: Uint32Array | undefined, size: number, as: NewConnAs): number[][] {
  const ds = dests.map((d) => ({ ...d }));
  if (!ipvsWlc(ds)) return [];
  const k = LBLCR_SET_SLOTS;
  const sets: number[][] = [];
  for (let at = 0; at < size; at += k) {
    const set: Dest[] = [];
    for (const id of previous?.length === size ? previous.subarray(at, at + k) : []) {
      const d = ds.find((x) => x.id === id);
      if (d && d.weight > 0 && !d.overloaded && !set.includes(d)) set.push(d);
    }
    const n = ipvsWlc(set); // ip_vs_dest_set_min
    if (!n || lblcOverloaded(n, ds)) {
      const m = ipvsWlc(ds)!;
      if (!set.includes(m)) {
        if (set.length === k) {
          let most = set[0]!; // ip_vs_dest_set_max
          for (const d of set.slice(1)) if (overhead(most) * d.weight < overhead(d) * most.weight) most = d;
          set.splice(set.indexOf(most), 1);
        }
        set.push(m);
      }
      countNew(m, as);
    }
    sets.push(set.map((d) => d.id));
  }
  return sets;
}

function setsOf(t: Uint32Array): number[][] {
  const out: number[][] = [];
  for (let at = 0; at < t.length; at += LBLCR_SET_SLOTS) out.push([...new Set(t.subarray(at, at + LBLCR_SET_SLOTS))]);
  return out;
}

test('lblcr: each bucket set follows IPVS lblcr, shared by weight over its slots', () => {
  const rand = rng(31337);
  for (let run = 0; run < 30; run++) {
    let ds = randomDests(rand).map((d) => ({ ...d, weight: d.weight % 12 }));
    let prev: Uint32Array | undefined;
    const size = LBLCR_SET_SLOTS * [1, 5, 31][rand(3)]!;
    for (let tick = 0; tick < 15; tick++) {
      const as = rand(2) === 0 ? 'active' : 'inactive';
      const got = planLblcr(ds, prev, size, { newConnAs: as });
      const want = ipvsLblcrSets(ds, prev, size, as);
      assert.deepEqual(setsOf(got).map((s) => [...s].sort()), want.map((s) => [...s].sort()), `run ${run} tick ${tick}`);
      for (let b = 0; b < want.length; b++) {
        const slots = got.subarray(b * LBLCR_SET_SLOTS, (b + 1) * LBLCR_SET_SLOTS);
        const weights = want[b]!.map((id) => ds.find((d) => d.id === id)!.weight);
        const split = hamilton(weights, LBLCR_SET_SLOTS);
        want[b]!.forEach((id, i) => {
          const have = slots.filter((x) => x === id).length;
          assert.ok(have >= 1 && Math.abs(have - split[i]!) <= 1, `member ${id}: ${have} slots vs ${split[i]}`);
        });
        // Members keep the slots they had, as far as their new split allows.
        if (prev) {
          const old = prev.subarray(b * LBLCR_SET_SLOTS, (b + 1) * LBLCR_SET_SLOTS);
          for (const id of want[b]!) {
            const kept = slots.filter((x, s) => x === id && old[s] === id).length;
            const had = old.filter((x) => x === id).length;
            assert.equal(kept, Math.min(had, slots.filter((x) => x === id).length));
          }
        }
      }
      if (got.length) prev = got;
      ds = evolve(ds, rand);
    }
  }
});

test('lblcr replication: an overloaded set gains the wlc real, keeps its old member', () => {
  const first = planLblcr([dest(1, 4), dest(2, 4)], undefined, 16);
  assert.deepEqual(setsOf(first), [[1], [2]]);
  const t = planLblcr([dest(1, 4, 6), dest(2, 4, 3), dest(3, 8, 0)], first, 16);
  assert.deepEqual(setsOf(t).map((s) => s.sort()), [[1, 3], [2]]);
  // 4:8 over 8 slots, and real 1 keeps the slots it held.
  assert.deepEqual([...t.subarray(0, 8)], [1, 1, 1, 3, 3, 3, 3, 3]);
  assert.throws(() => planLblcr([dest(1, 1)], undefined, 20), (e: unknown) => e instanceof XvsError && e.code === 'BAD_ARGUMENT');
});

test('lblcr: a full set makes room by dropping its most loaded member (ip_vs_dest_set_max)', () => {
  const prev = Uint32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const members = [1, 2, 3, 4, 5, 6, 7, 8].map((id) => dest(id, 1, id === 5 ? 50 : 2 + id));
  const t = planLblcr([...members, dest(9, 4)], prev, 8);
  // Real 1 is the set's least loaded but over its weight while real 9 is idle:
  // real 9 joins and real 5 (50 active per weight) leaves, the rest stay put.
  assert.deepEqual([...t], [1, 2, 3, 4, 9, 6, 7, 8]);
});

// --- lblc / lblcr with live flows per slot ---------------------------------------
//
// The spec, restated: a bucket is cached once a flow has used it. Buckets used
// for the first time since the last plan have their live flows taken off
// their reals and their connections replayed through IPVS (interleaved by
// flows: connection j of f at (j + 0.5) / f), then the other cached buckets
// follow the per-tick rule, then buckets never used are planned afresh, each
// counting min(1, max(1, 2 * newcomers) / fresh) of a connection.

interface Tracked {
  table: Uint32Array;
  pinned: Uint8Array;
}

function takeOff(d: Dest | undefined, f: number): void {
  if (!d) return;
  const a = Math.min(d.active, f);
  d.active -= a;
  d.inactive = Math.max(0, d.inactive - (f - a));
}

function interleaved(buckets: readonly { b: number; f: number }[]): number[] {
  const conns = buckets.flatMap(({ b, f }) => Array.from({ length: Math.max(1, f) }, (_, j) => ({ at: (j + 0.5) / Math.max(1, f), b })));
  return conns.sort((x, y) => x.at - y.at || x.b - y.b).map((c) => c.b);
}

function ipvsLblcTracked(dests: readonly Dest[], prev: Tracked | undefined, flows: Uint32Array, size: number): number[] {
  const ds = dests.map((d) => ({ ...d }));
  if (!ipvsWlc(ds)) return [];
  const find = (id: number | undefined): Dest | undefined => ds.find((d) => d.id === id);
  const cached = Array.from({ length: size }, (_, b) => (prev ? prev.pinned[b] === 1 || flows[b]! > 0 : false));
  const fresh = cached.filter((c) => !c).length;
  const arrived = prev ? [...cached.keys()].filter((b) => prev.pinned[b] !== 1 && flows[b]! > 0) : [];
  for (const b of arrived) takeOff(find(prev!.table[b]), flows[b]!);
  const out = new Array<number>(size).fill(-1);
  const cache = new Map<number, Dest>();
  for (const b of interleaved(arrived.map((b) => ({ b, f: flows[b]! })))) {
    const c = cache.get(b);
    if (c && c.weight > 0 && !lblcOverloaded(c, ds)) {
      c.active++;
      continue;
    }
    const m = ipvsWlc(ds)!;
    cache.set(b, m);
    m.active++;
  }
  for (const [b, d] of cache) out[b] = d.id;
  for (let b = 0; b < size; b++) {
    if (!cached[b] || cache.has(b)) continue;
    const n = find(prev!.table[b]);
    if (n && n.weight > 0 && !lblcOverloaded(n, ds)) {
      out[b] = n.id;
      continue;
    }
    const m = ipvsWlc(ds)!;
    out[b] = m.id;
    m.active++;
  }
  const share = Math.min(1, Math.max(1, 2 * arrived.length) / Math.max(1, fresh));
  for (let b = 0; b < size; b++) {
    if (cached[b]) continue;
    const m = ipvsWlc(ds)!;
    out[b] = m.id;
    m.active += prev ? share : 1;
  }
  return out;
}

function randomFlows(size: number, rand: (n: number) => number, busy: number): Uint32Array {
  return Uint32Array.from({ length: size }, () => (rand(busy) === 0 ? 1 + rand(30) : 0));
}

test('lblc with flows: newcomers replayed through IPVS, cached kept, the rest planned afresh', () => {
  const rand = rng(4242);
  for (let run = 0; run < 40; run++) {
    let ds = randomDests(rand).map((d) => ({ ...d, weight: d.weight % 12 }));
    let prev: Tracked | undefined;
    const size = [7, 61, 251][rand(3)]!;
    for (let tick = 0; tick < 12; tick++) {
      const flows = randomFlows(size, rand, 2 + rand(20));
      const got = planLblcState(ds, prev, size, { flows });
      assert.deepEqual([...got.table], ipvsLblcTracked(ds, prev, flows, size), `run ${run} tick ${tick}`);
      if (got.table.length) {
        for (let b = 0; b < size; b++) assert.equal(got.pinned[b] === 1, prev ? prev.pinned[b] === 1 || flows[b]! > 0 : false);
        prev = got;
      }
      ds = evolve(ds, rand);
    }
  }
});

test('lblc with flows: a hot newcomer on a light real is moved as IPVS would', () => {
  const reals = [dest(1, 1), dest(2, 10), dest(3, 10)];
  const t0 = planLblcState(reals, undefined, 61);
  assert.ok(t0.pinned.every((x) => x === 0));
  const hot = t0.table.indexOf(1);
  const flows = new Uint32Array(61);
  flows[hot] = 40;
  // Its 40 flows sit on real 1 (weight 1): IPVS would have moved the
  // destination at its second connection, while real 2 was under half.
  const t1 = planLblcState([dest(1, 1, 40), dest(2, 10), dest(3, 10)], t0, 61, { flows });
  assert.notEqual(t1.table[hot], 1);
  assert.equal(t1.pinned[hot], 1);
  assert.equal(t1.pinned.reduce((a, b) => a + b, 0), 1);
  // Cached from now on, even once its flows have ended (nobody is under half its weight).
  const t2 = planLblcState([dest(1, 1, 1), dest(2, 10, 8), dest(3, 10, 8)], t1, 61, { flows: new Uint32Array(61) });
  assert.equal(t2.table[hot], t1.table[hot]);
  assert.equal(t2.pinned[hot], 1);
});

test('lblc with flows: buckets no flow has used follow the current least-loaded real', () => {
  const t0 = planLblcState([dest(1, 1), dest(2, 1), dest(3, 1)], undefined, 61);
  const idle = new Uint32Array(61);
  // Real 3 is now the wlc choice by far; one fresh bucket counts 1/61 of a connection.
  const t1 = planLblcState([dest(1, 1, 9), dest(2, 1, 9), dest(3, 1, 0)], t0, 61, { flows: idle });
  assert.ok(t1.table.every((id) => id === 3));
  assert.ok(t1.pinned.every((x) => x === 0));
});

function ipvsLblcrTrackedSets(dests: readonly Dest[], prev: Tracked | undefined, flows: Uint32Array, size: number): number[][] {
  const ds = dests.map((d) => ({ ...d }));
  if (!ipvsWlc(ds)) return [];
  const k = LBLCR_SET_SLOTS;
  const groups = size / k;
  const find = (id: number | undefined): Dest | undefined => ds.find((d) => d.id === id);
  const flowOf = (g: number): number => flows.subarray(g * k, (g + 1) * k).reduce((a, b) => a + b, 0);
  const cached = Array.from({ length: groups }, (_, g) => (prev ? prev.pinned[g * k] === 1 || flowOf(g) > 0 : false));
  const fresh = cached.filter((c) => !c).length;
  const arrived = prev ? [...cached.keys()].filter((g) => prev.pinned[g * k] !== 1 && flowOf(g) > 0) : [];
  for (const g of arrived) for (let s = g * k; s < (g + 1) * k; s++) takeOff(find(prev!.table[s]), flows[s]!);
  const setMax = (set: Dest[]): Dest => set.slice(1).reduce((most, d) => (overhead(most) * d.weight < overhead(d) * most.weight ? d : most), set[0]!);
  const conn = (set: Dest[], count: boolean): void => {
    const n = ipvsWlc(set);
    if (n && !lblcOverloaded(n, ds)) {
      if (count) n.active++;
      return;
    }
    const m = ipvsWlc(ds)!;
    if (!set.includes(m)) {
      if (set.length === k) set.splice(set.indexOf(setMax(set)), 1);
      set.push(m);
    }
    m.active++;
  };
  const replayed = new Map<number, Dest[]>();
  for (const g of interleaved(arrived.map((g) => ({ b: g, f: flowOf(g) })))) {
    if (!replayed.has(g)) replayed.set(g, []);
    conn(replayed.get(g)!, true);
  }
  const sets: number[][] = [];
  for (let g = 0; g < groups; g++) {
    if (!cached[g]) continue;
    if (replayed.has(g)) {
      sets[g] = replayed.get(g)!.map((d) => d.id);
      continue;
    }
    const set: Dest[] = [];
    for (const id of prev!.table.subarray(g * k, (g + 1) * k)) {
      const d = find(id);
      if (d && d.weight > 0 && !d.overloaded && !set.includes(d)) set.push(d);
    }
    conn(set, false);
    sets[g] = set.map((d) => d.id);
  }
  const share = Math.min(1, Math.max(1, 2 * arrived.length) / Math.max(1, fresh));
  for (let g = 0; g < groups; g++) {
    if (cached[g]) continue;
    const m = ipvsWlc(ds)!;
    sets[g] = [m.id];
    m.active += prev ? share : 1;
  }
  return sets;
}

test('lblcr with flows: newcomer sets replayed through IPVS lblcr, the rest as without flows', () => {
  const rand = rng(777);
  for (let run = 0; run < 30; run++) {
    let ds = randomDests(rand).map((d) => ({ ...d, weight: d.weight % 12 }));
    let prev: Tracked | undefined;
    const size = LBLCR_SET_SLOTS * [1, 7, 31][rand(3)]!;
    for (let tick = 0; tick < 12; tick++) {
      const flows = randomFlows(size, rand, 4 + rand(30));
      const got = planLblcrState(ds, prev, size, { flows });
      const want = ipvsLblcrTrackedSets(ds, prev, flows, size);
      assert.deepEqual(setsOf(got.table).map((x) => [...x].sort()), want.map((x) => [...x].sort()), `run ${run} tick ${tick}`);
      if (got.table.length) prev = got;
      ds = evolve(ds, rand);
    }
  }
});

// --- registry ------------------------------------------------------------------

test('registry: every scheduler builds through one interface', () => {
  const reals: RealState[] = [
    { id: 1, weight: 3, addr: '192.0.2.11', port: 80, active: 2, inactive: 1, overloaded: false },
    { id: 2, weight: 1, addr: '192.0.2.12', port: 80, active: 0, inactive: 9, overloaded: false },
    { id: 3, weight: 2, addr: '192.0.2.13', port: 80, active: 5, inactive: 0, overloaded: true },
  ];
  const kinds: Record<string, string[]> = { static: [], dynamic: [] };
  for (const name of Object.keys(SCHEDULERS) as SchedulerName[]) {
    const s = schedulerByName(name);
    kinds[s.kind]!.push(name);
    const t = s.build({ reals, picks: 100 });
    assert.ok(t.length > 0, name);
    assert.ok(!t.includes(3), `${name} used an overloaded real`);
    if (s.lookup === 'seq' && s.kind === 'dynamic') assert.equal(t.length, 100, name);
  }
  assert.deepEqual(kinds, { static: ['rr', 'wrr', 'dh', 'sh', 'mh', 'fo'], dynamic: ['lc', 'wlc', 'sed', 'nq', 'lblc', 'lblcr', 'ovf', 'twos'] });
  assert.equal(schedulerByName('wlc').build({ reals }).length, 64);
  assert.deepEqual([...schedulerByName('wrr').build({ reals })], [1, 1, 1, 2]);
  assert.equal(schedulerByName('mh').build({ reals, tableSize: 251 }).length, 251);
  assert.equal(schedulerByName('lblc').build({ reals: [] }).length, 0);
});

test('registry: a dynamic plan starts at the cursor the dataplane will read next', () => {
  const reals: RealState[] = [1, 2, 3].map((id) => ({ id, weight: id, addr: `192.0.2.${id}`, port: 80, active: 0, inactive: 0 }));
  const wlc = schedulerByName('wlc');
  const p = wlc.build({ reals, picks: 10 });
  for (const cursor of [0, 3, 10, 13n, 2n ** 64n - 1n]) {
    const t = wlc.build({ reals, picks: 10, cursor });
    const start = Number(BigInt(cursor) % 10n);
    for (let k = 0; k < 10; k++) assert.equal(t[(start + k) % 10], p[k], `cursor ${cursor}`);
  }
});

test('registry: lblc objects carry their cache from build to build, one per service', () => {
  // Weights above the counts used, so lblc's overload rule never fires here.
  const reals: RealState[] = [1, 2, 3].map((id) => ({ id, weight: 10, addr: `192.0.2.${id}`, port: 80, active: 0, inactive: 0 }));
  const busy = (a: number[]): RealState[] => reals.map((r, i) => ({ ...r, active: a[i]! }));
  const a = schedulerByName('lblc');
  const t0 = a.build({ reals, tableSize: 61 });
  const flows = new Uint32Array(61).fill(1);
  // Every bucket now carries flows: a's next plan (previous = its last table) caches them all.
  const t1 = a.build({ reals: busy([0, 0, 0]), tableSize: 61, flows });
  assert.deepEqual(t1, t0);
  const t2 = a.build({ reals: busy([0, 0, 9]), tableSize: 61, flows: new Uint32Array(61) });
  assert.deepEqual(t2, t0);
  // Another object has no record of which buckets were used.
  const b = schedulerByName('lblc');
  const fresh = b.build({ reals: busy([9, 9, 0]), tableSize: 61, previous: t0 });
  assert.deepEqual(fresh, t0); // no flows: every bucket of previous counts as cached
  // With flows and no bucket used yet, every bucket follows the least-loaded real.
  const c = schedulerByName('lblc');
  c.build({ reals, tableSize: 61 });
  assert.ok(c.build({ reals: busy([9, 9, 0]), tableSize: 61, flows: new Uint32Array(61) }).every((id) => id === 3));
});
