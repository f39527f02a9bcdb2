import { XvsError } from '../errors.js';
import { checkReals } from './common.js';
import { activeSpans, addTick, closingPicks, type ConnHistory } from './conn-history.js';
import { LBLC_TABLE_SIZE, planLblcState } from './lblc.js';
import { LBLCR_TABLE_SIZE, planLblcrState } from './lblcr.js';
import type { LocalityOptions, LocalityPlan } from './locality.js';
import { plan, type LeastConnName, type PlanOptions } from './least-conn.js';
import { hashesPort } from './flags.js';
import { buildMh } from './mh.js';
import { buildFo, planOvf } from './overflow.js';
import { buildRr } from './rr.js';
import { buildDh, buildSh } from './sh-dh.js';
import { planTwos } from './twos.js';
import type { LoadReal, RealState, SchedInput } from './types.js';
import { buildWrr } from './wrr.js';

export { MAX_SEQ_TABLE } from './wrr.js';
export type { HashReal, LoadReal, NewConnAs, RealState, SchedInput, SchedReal } from './types.js';
export type { LocalityOptions, LocalityPlan } from './locality.js';

// Every IPVS scheduler name, with the code the dataplane stores in
// xvs_svc.sched and how it indexes the service's table (xvs_svc.lookup).
// Codes are ABI: never renumber, only append. A 'static' table depends on
// the configuration only; a 'dynamic' one on live connection counts too, and
// the daemon rebuilds it every tick.
export const SCHEDULERS = {
  rr: { code: 1, lookup: 'seq', kind: 'static' },
  wrr: { code: 2, lookup: 'seq', kind: 'static' },
  lc: { code: 3, lookup: 'seq', kind: 'dynamic' },
  wlc: { code: 4, lookup: 'seq', kind: 'dynamic' },
  sed: { code: 5, lookup: 'seq', kind: 'dynamic' },
  nq: { code: 6, lookup: 'seq', kind: 'dynamic' },
  dh: { code: 7, lookup: 'hash_dst', kind: 'static' },
  sh: { code: 8, lookup: 'hash_src', kind: 'static' },
  lblc: { code: 9, lookup: 'hash_dst', kind: 'dynamic' },
  lblcr: { code: 10, lookup: 'hash_dst', kind: 'dynamic' },
  mh: { code: 11, lookup: 'hash_src', kind: 'static' },
  fo: { code: 12, lookup: 'seq', kind: 'static' },
  ovf: { code: 13, lookup: 'seq', kind: 'dynamic' },
  twos: { code: 14, lookup: 'seq', kind: 'dynamic' },
} as const;

export type SchedulerName = keyof typeof SCHEDULERS;
export type Lookup = (typeof SCHEDULERS)[SchedulerName]['lookup'];
export type SchedulerKind = (typeof SCHEDULERS)[SchedulerName]['kind'];
/** What a service's table is indexed by: its scheduler's lookup, or with sh-port/mh-port the source port too. */
export type TableLookup = Lookup | 'hash_src_port';

/** xvs_svc.lookup of a service: sh-port and mh-port (scheduler flags) hash the client's port with its address. */
export function lookupOf(name: SchedulerName, schedFlags = 0): TableLookup {
  return hashesPort(name, schedFlags) ? 'hash_src_port' : SCHEDULERS[name].lookup;
}

/** XVS_LOOKUP_* of bpf/include/xvs_abi.h, by the names used here. */
export { LOOKUP as LOOKUP_CODES } from '../maps/abi.js';

/** As ipvsadm: a service added without -s gets wlc. */
export const DEFAULT_SCHEDULER: SchedulerName = 'wlc';

/**
 * Picks a dynamic 'seq' table plans when the caller has no arrival rate to
 * size it from (e.g. on a configuration change, before the first tick).
 */
export const DEFAULT_PICKS = 64;

/** Real ids per slot. For 'seq' lookups the dataplane takes slot = counter++ % length. */
export type TableBuilder = (input: SchedInput) => Uint32Array;

/**
 * What a scheduler carries from one plan of a service to the next: lc, wlc,
 * sed and nq how long each real's connections stay active, lblc and lblcr
 * their last plan. Opaque to callers, who keep it with the service.
 */
export type SchedMemory =
  | { readonly history: ConnHistory }
  | { readonly last: LocalityPlan };

export interface Planned {
  table: Uint32Array;
  /** Pass to the service's next plan; undefined: nothing to remember. */
  memory: SchedMemory | undefined;
}

/** A pure planner: the same input and memory give the same table and memory. */
export type Planner = (input: SchedInput, memory: SchedMemory | undefined) => Planned;

export interface SchedulerInfo {
  name: SchedulerName;
  code: number;
  lookup: Lookup;
  kind: SchedulerKind;
}

export interface Scheduler extends SchedulerInfo {
  plan: Planner;
  /** plan() with the memory kept in this object: one object per service. */
  build: TableBuilder;
}

const loads = (reals: readonly RealState[]): LoadReal[] =>
  reals.map((r) => ({ id: r.id, weight: r.weight, active: r.active ?? 0, inactive: r.inactive ?? 0, overloaded: r.overloaded === true }));

/** Lays the plan out so that slot (cursor % length) holds its first pick. */
function fromCursor(planned: Uint32Array, cursor: number | bigint | undefined): Uint32Array {
  const len = planned.length;
  if (len === 0 || cursor === undefined) return planned;
  const start = Number(BigInt(cursor) % BigInt(len));
  if (start === 0) return planned;
  const out = new Uint32Array(len);
  out.set(planned.subarray(0, len - start), start);
  out.set(planned.subarray(len - start), 0);
  return out;
}

type SeqPlan = (reals: LoadReal[], picks: number, opts: PlanOptions, input: SchedInput) => Uint32Array;

/**
 * lc/wlc/sed/nq, ovf and twos: the picks IPVS would make from the counts,
 * one at a time, each pick counted active for as many later picks as that
 * real server's connections stay open (learnt tick by tick, see
 * conn-history.ts), and laid out from the cursor: the next new flow takes
 * the first pick, so a burst that spans ticks goes on with the next IPVS
 * choice instead of replaying the first slots of every plan. A tick's input
 * (reals with arrivals) adds to the history; a plan for a configuration
 * change uses it.
 */
const simulated = (seqPlan: SeqPlan): Planner => (i, memory) => {
  const picks = i.picks ?? DEFAULT_PICKS;
  let history = memory && 'history' in memory ? memory.history : undefined;
  if (i.reals.some((r) => r.arrivals !== undefined)) history = addTick(history, i.reals);
  const activeFor = i.newConnAs === undefined ? activeSpans(history, i.reals) : undefined;
  const closing = activeFor && closingPicks(i.reals, activeFor);
  const table = fromCursor(seqPlan(loads(i.reals), picks, { newConnAs: i.newConnAs, activeFor, closing }, i), i.cursor);
  return { table, memory: history && { history } };
};

const leastConn = (name: LeastConnName): Planner => simulated((reals, picks, opts) => plan(name, reals, picks, opts));

/** twos draws afresh at each cursor: the low 32 bits of the sequence counter seed the plan. */
const twosSeed = (cursor: number | bigint | undefined): number => Number(BigInt(cursor ?? 0) & 0xffffffffn);

// rr/wrr: IPVS skips overloaded reals while it walks the list; leaving them
// out of the cycle gives each of the others the same share (the order inside
// the cycle can differ from IPVS's while one is overloaded).
const seqStatic = (build: (reals: RealState[]) => Uint32Array): TableBuilder => (i) => {
  checkReals(i.reals);
  return build(i.reals.filter((r) => r.overloaded !== true));
};

type LocalityPlanner = (reals: readonly LoadReal[], prev: LocalityPlan | undefined, size: number, opts: LocalityOptions) => LocalityPlan;

/**
 * lblc/lblcr carry IPVS's destination cache from one plan to the next:
 * which buckets a flow has used since they were assigned. A `previous`
 * other than the last table planned (e.g. read back after a restart) has no
 * such record, and all its buckets count as cached.
 */
const locality = (planner: LocalityPlanner, defaultSize: number): Planner => (i, memory) => {
  const last = memory && 'last' in memory ? memory.last : undefined;
  const prev = i.previous === undefined || i.previous === last?.table
    ? last
    : { table: i.previous, pinned: new Uint8Array(i.previous.length).fill(1) };
  const next = planner(loads(i.reals), prev, i.tableSize ?? defaultSize, { newConnAs: i.newConnAs, flows: i.flows });
  return { table: next.table, memory: { last: next } };
};

const stateless = (build: TableBuilder): Planner => (i) => ({ table: build(i), memory: undefined });

const PLANNERS: Record<SchedulerName, Planner> = {
  rr: stateless(seqStatic(buildRr)),
  wrr: stateless(seqStatic(buildWrr)),
  lc: leastConn('lc'),
  wlc: leastConn('wlc'),
  sed: leastConn('sed'),
  nq: leastConn('nq'),
  dh: stateless((i) => buildDh(i.reals, i.tableSize)),
  sh: stateless((i) => buildSh(i.reals, i.tableSize, i.fallback)),
  lblc: locality(planLblcState, LBLC_TABLE_SIZE),
  lblcr: locality(planLblcrState, LBLCR_TABLE_SIZE),
  mh: stateless((i) => buildMh(i.reals, i.tableSize, i.fallback)),
  fo: stateless((i) => buildFo(i.reals)),
  ovf: simulated((reals, picks, opts) => planOvf(reals, picks, opts)),
  twos: simulated((reals, picks, opts, i) => planTwos(reals, picks, opts, twosSeed(i.cursor))),
};

const NAMES_HINT = `one of ${Object.keys(SCHEDULERS).join(' ')}`;

export function isSchedulerName(name: string): name is SchedulerName {
  return Object.hasOwn(SCHEDULERS, name);
}

/** Accepts any IPVS name: what a CLI can check on its own. */
export function checkSchedulerName(name: string): SchedulerName {
  if (!isSchedulerName(name)) {
    throw new XvsError('BAD_ARGUMENT', `unknown scheduler '${name}'`, { hint: NAMES_HINT });
  }
  return name;
}

/**
 * A scheduler with its pure planner, and build(), which keeps the planner's
 * memory itself: keep one object per service when using build().
 */
export function schedulerByName(name: string): Scheduler {
  const known = checkSchedulerName(name);
  const plan = PLANNERS[known];
  let memory: SchedMemory | undefined;
  const build: TableBuilder = (input) => {
    const planned = plan(input, memory);
    memory = planned.memory;
    return planned.table;
  };
  return { name: known, ...SCHEDULERS[known], plan, build };
}

/** Decodes xvs_svc.sched; undefined for a code no scheduler has. */
export function schedulerByCode(code: number): SchedulerInfo | undefined {
  const name = (Object.keys(SCHEDULERS) as SchedulerName[]).find((n) => SCHEDULERS[n].code === code);
  return name === undefined ? undefined : { name, ...SCHEDULERS[name] };
}
