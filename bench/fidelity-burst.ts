// Bursts shorter than a tick, the traffic of the lab's wlc test: a client
// that makes its connections one after another (each starts once the last
// one closed) and a handful of clients that connect at once, while one real
// server holds its connections for a long time. IPVS decides every new
// connection on the counts of that moment; xvs replays the plan the control
// plane made at its last tick. Each path keeps its own timeline, because a
// sequential client waits for whichever server it was sent to.
//
// Measured per scheduler: how often xvs's pick differs from the choice IPVS
// would make on xvs's own live counts at that moment (0 is exact), and the
// share of new connections the holding real server gets on each path.

import { schedulerByName, type RealState } from '../src/schedulers/registry.js';
import { ipvsReference, type Counts } from './fidelity-ipvs.js';
import { Events } from './fidelity-slow.js';

export const BURST_PARAMS = {
  seeds: [21, 22, 23],
  seconds: 30,
  /** xvsd's default --tick-ms. */
  tickMs: 200,
  rttMs: 0.3,
  /** Between one connection's close and the next one of a sequential client. */
  thinkMs: 3,
  /** FIN_WAIT/TIME_WAIT, counted inactive: IPVS's tcpfin default. */
  lingerS: 120,
  minPicks: 64,
} as const;

interface Life {
  /** Seconds every connection stays established at least (a server that holds its answer). */
  fixedS: number;
  /** Mean of an exponential time on top. */
  meanS: number;
}

interface Client {
  start: number;
  conns: number;
  /** Sequential clients are what the scenario measures separately. */
  sequential: boolean;
}

interface Scenario {
  name: string;
  weights: readonly number[];
  /** Per real; real 0 is the one that holds its connections. */
  life: readonly Life[];
  clients(rand: () => number, seconds: number): Client[];
}

const FAST: Life = { fixedS: 0, meanS: 0.002 };

export const BURST_SCENARIOS: readonly Scenario[] = [
  {
    // test/lab-sched.test.ts: 10 curls at once (spawned a few ms apart), rs1
    // holds its answers 4 s; 1 s later one curl fetches 20 URLs in a row.
    // Again every 6 s, once the held connections are over.
    name: 'lab',
    weights: [1, 1],
    life: [{ fixedS: 4, meanS: 0.002 }, FAST],
    clients: (_rand, seconds) => {
      const out: Client[] = [];
      for (let t0 = 0.5; t0 + 1.5 < seconds; t0 += 6) {
        for (let i = 0; i < 10; i++) out.push({ start: t0 + i * 0.01, conns: 1, sequential: false });
        out.push({ start: t0 + 1, conns: 20, sequential: true });
      }
      return out;
    },
  },
  {
    // Sequential bursts of 5..30 connections, about three a second, and 8
    // clients at once every 1.7 s; real 0 keeps its connections ~1 s.
    name: 'bursts',
    weights: [3, 2, 1],
    life: [{ fixedS: 0.5, meanS: 0.5 }, { fixedS: 0, meanS: 0.005 }, { fixedS: 0, meanS: 0.005 }],
    clients: (rand, seconds) => {
      const out: Client[] = [];
      for (let t = -Math.log(1 - rand()) / 3; t < seconds - 1; t += -Math.log(1 - rand()) / 3) {
        out.push({ start: t, conns: 5 + Math.floor(rand() * 26), sequential: true });
      }
      for (let t0 = 0.3; t0 < seconds - 1; t0 += 1.7) {
        for (let i = 0; i < 8; i++) out.push({ start: t0 + i * 0.002, conns: 1, sequential: false });
      }
      return out.sort((a, b) => a.start - b.start);
    },
  },
];

const NAMES = ['lc', 'wlc', 'sed', 'nq'] as const;
type Name = (typeof NAMES)[number];

const EV = { arrive: 0, establish: 1, close: 2, expire: 3, tick: 4 } as const;

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The same uniform draw for the j-th connection of client c on both paths. */
function uniform(seed: number, c: number, j: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(c + 1, 0xc2b2ae35) ^ Math.imul(j + 1, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h = Math.imul(h ^ (h >>> 12), 0x297a2d39);
  return ((h ^ (h >>> 15)) >>> 0) / 2 ** 32;
}

interface PathResult {
  picks: number;
  toHeld: number;
  seqPicks: number;
  seqToHeld: number;
  /** xvs only: picks that differ from IPVS's choice on the same live counts. */
  mismatches: number;
}

/**
 * One path through the scenario. `xvs` false: IPVS picks on live counts.
 * `xvs` true: the control plane's tick, as src/daemon does it, builds a plan
 * from the counts and the arrivals since the last one; arrivals read it in
 * sequence.
 */
function run(sc: Scenario, name: Name, seed: number, xvs: boolean, p = BURST_PARAMS): PathResult {
  const n = sc.weights.length;
  const counts: Counts = { active: new Float64Array(n), inactive: new Float64Array(n) };
  const ipvs = ipvsReference(name, sc.weights, counts);
  const clients = sc.clients(prng(seed), p.seconds);
  const q = new Events();
  clients.forEach((c, i) => q.push(c.start, i * 8 + EV.arrive));
  const made = new Int32Array(clients.length);
  const realOf: number[] = [];
  const clientOf: number[] = [];
  const out: PathResult = { picks: 0, toHeld: 0, seqPicks: 0, seqToHeld: 0, mismatches: 0 };

  const sched = schedulerByName(name);
  const arrivals = new Float64Array(n);
  let tickArrivals = 0;
  let table: Uint32Array = new Uint32Array(0);
  let pos = 0;
  if (xvs) q.push(0, EV.tick);
  const tick = (): void => {
    const reals: RealState[] = sc.weights.map((weight, i) => ({
      id: i, weight, addr: `192.0.2.${10 + i}`, port: 80,
      active: counts.active[i]!, inactive: counts.inactive[i]!, arrivals: arrivals[i]!,
    }));
    table = sched.build({ reals, picks: Math.max(p.minPicks, 2 * tickArrivals), cursor: pos });
    tickArrivals = 0;
    arrivals.fill(0);
  };

  while (q.size > 0) {
    const t = q.peek();
    if (t > p.seconds + 10) break;
    const v = q.pop();
    const kind = v & 7;
    const id = v >> 3;
    if (kind === EV.tick) {
      tick();
      if (t + p.tickMs / 1000 <= p.seconds) q.push(t + p.tickMs / 1000, EV.tick);
      continue;
    }
    if (kind === EV.arrive) {
      const choice = ipvs(0, 0);
      let r = choice;
      if (xvs) {
        r = table.length ? table[pos++ % table.length]! : -1;
        if (r !== choice) out.mismatches++;
        tickArrivals++;
        if (r >= 0) arrivals[r]!++;
      }
      out.picks++;
      const seq = clients[id]!.sequential;
      if (seq) out.seqPicks++;
      if (r === 0) {
        out.toHeld++;
        if (seq) out.seqToHeld++;
      }
      if (r < 0) continue;
      const conn = realOf.length;
      realOf.push(r);
      clientOf.push(id);
      counts.inactive[r]!++; // SYN_RECV
      q.push(t + p.rttMs / 1000, conn * 8 + EV.establish);
      continue;
    }
    const r = realOf[id]!;
    if (kind === EV.establish) {
      counts.inactive[r]!--;
      counts.active[r]!++;
      const c = clientOf[id]!;
      const life = sc.life[r]!;
      q.push(t + life.fixedS - Math.log(1 - uniform(seed, c, made[c]!)) * life.meanS, id * 8 + EV.close);
    } else if (kind === EV.close) {
      counts.active[r]!--;
      counts.inactive[r]!++;
      q.push(t + p.lingerS, id * 8 + EV.expire);
      const c = clientOf[id]!;
      if (++made[c]! < clients[c]!.conns) q.push(t + p.thinkMs / 1000, c * 8 + EV.arrive);
    } else {
      counts.inactive[r]!--;
    }
  }
  return out;
}

export interface BurstRow {
  scenario: string;
  scheduler: Name;
  /** % of xvs's picks that differ from IPVS's choice on the same counts; mean over seeds. */
  mismatchPct: number;
  /** % of new connections to the holding real: xvs, IPVS. */
  xvsHeldPct: number;
  ipvsHeldPct: number;
  /** Sequential clients' connections sent to the holding real, per run: xvs, IPVS. */
  xvsSeqToHeld: number;
  ipvsSeqToHeld: number;
}

export function runBurstScenarios(p = BURST_PARAMS): BurstRow[] {
  const rows: BurstRow[] = [];
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  for (const sc of BURST_SCENARIOS) {
    for (const name of NAMES) {
      const x = p.seeds.map((s) => run(sc, name, s, true, p));
      const i = p.seeds.map((s) => run(sc, name, s, false, p));
      rows.push({
        scenario: sc.name,
        scheduler: name,
        mismatchPct: mean(x.map((r) => (100 * r.mismatches) / r.picks)),
        xvsHeldPct: mean(x.map((r) => (100 * r.toHeld) / r.picks)),
        ipvsHeldPct: mean(i.map((r) => (100 * r.toHeld) / r.picks)),
        xvsSeqToHeld: mean(x.map((r) => r.seqToHeld)),
        ipvsSeqToHeld: mean(i.map((r) => r.seqToHeld)),
      });
    }
  }
  console.log(`\nbursts shorter than a ${p.tickMs} ms tick (sequential clients and clients at once; real 0 holds its connections), ` +
    `mean over ${p.seeds.length} seeds: picks that differ from IPVS's choice on the same live counts; share of new connections ` +
    'to the holding real, xvs | IPVS; sequential connections sent to it per run, xvs | IPVS');
  for (const r of rows) {
    console.log(`${r.scenario.padEnd(7)} ${r.scheduler.padEnd(4)} differ ${r.mismatchPct.toFixed(2).padStart(6)}%   ` +
      `held ${r.xvsHeldPct.toFixed(1).padStart(5)}% | ${r.ipvsHeldPct.toFixed(1).padStart(5)}%   ` +
      `sequential to held ${r.xvsSeqToHeld.toFixed(1).padStart(5)} | ${r.ipvsSeqToHeld.toFixed(1)}`);
  }
  return rows;
}
