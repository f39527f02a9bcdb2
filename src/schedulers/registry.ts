import { XvsError } from '../errors.js';
import { buildRr } from './rr.js';
import { buildWrr } from './wrr.js';

export { MAX_SEQ_TABLE } from './wrr.js';

// Every IPVS scheduler name, with the code the dataplane stores in
// xvs_svc.sched and how it indexes the service's table (xvs_svc.lookup).
// Codes are ABI: never renumber, only append.
export const SCHEDULERS = {
  rr: { code: 1, lookup: 'seq' },
  wrr: { code: 2, lookup: 'seq' },
  lc: { code: 3, lookup: 'seq' },
  wlc: { code: 4, lookup: 'seq' },
  sed: { code: 5, lookup: 'seq' },
  nq: { code: 6, lookup: 'seq' },
  dh: { code: 7, lookup: 'hash_dst' },
  sh: { code: 8, lookup: 'hash_src' },
  lblc: { code: 9, lookup: 'hash_dst' },
  lblcr: { code: 10, lookup: 'hash_dst' },
  mh: { code: 11, lookup: 'hash_src' },
} as const;

export type SchedulerName = keyof typeof SCHEDULERS;
export type Lookup = (typeof SCHEDULERS)[SchedulerName]['lookup'];

/** Mirrors XVS_LOOKUP_* in bpf/include/xvs_abi.h. */
export const LOOKUP_CODES = { seq: 0, hash_src: 1, hash_dst: 2 } as const;

/** As ipvsadm: a service added without -s gets wlc. */
export const DEFAULT_SCHEDULER: SchedulerName = 'wlc';

/** A real server as a scheduler sees it; list order is ipvsadm insertion order. */
export interface SchedReal {
  id: number;
  weight: number;
}

/** Real ids per slot. For 'seq' lookups the dataplane takes slot = counter++ % length. */
export type TableBuilder = (reals: readonly SchedReal[]) => Uint32Array;

export interface SchedulerInfo {
  name: SchedulerName;
  code: number;
  lookup: Lookup;
}

export interface Scheduler extends SchedulerInfo {
  build: TableBuilder;
}

const BUILDERS: Partial<Record<SchedulerName, TableBuilder>> = { rr: buildRr, wrr: buildWrr };

const NAMES_HINT = `one of ${Object.keys(SCHEDULERS).join(' ')}`;

export function isSchedulerName(name: string): name is SchedulerName {
  return Object.hasOwn(SCHEDULERS, name);
}

/** Accepts any IPVS name, implemented or not: what a CLI can check on its own. */
export function checkSchedulerName(name: string): SchedulerName {
  if (!isSchedulerName(name)) {
    throw new XvsError('BAD_ARGUMENT', `unknown scheduler '${name}'`, { hint: NAMES_HINT });
  }
  return name;
}

/** The scheduler a service can use now: known and with a table builder. */
export function schedulerByName(name: string): Scheduler {
  const known = checkSchedulerName(name);
  const build = BUILDERS[known];
  if (!build) throw new XvsError('UNSUPPORTED', `scheduler '${known}' is not implemented yet`);
  return { name: known, ...SCHEDULERS[known], build };
}

/** Decodes xvs_svc.sched; undefined for a code no scheduler has. */
export function schedulerByCode(code: number): SchedulerInfo | undefined {
  const name = (Object.keys(SCHEDULERS) as SchedulerName[]).find((n) => SCHEDULERS[n].code === code);
  return name === undefined ? undefined : { name, ...SCHEDULERS[name] };
}
