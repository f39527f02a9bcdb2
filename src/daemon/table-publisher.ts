import * as C from '../maps/codecs.js';
import { slotOf } from '../schedulers/hash.js';
import { fallsBack } from '../schedulers/flags.js';
import { schedulerByName, type RealState, type SchedInput, type SchedMemory } from '../schedulers/registry.js';
import type { ConnCensus } from './conn-count.js';
import type { Dataplane } from './dataplane.js';
import type { ServiceModel } from './model.js';

/** Picks planned per tick for dynamic schedulers: twice the last tick's arrivals, within these bounds. */
const MIN_PICKS = 64;
const MAX_PICKS = 65536;

/** What a service's table planning keeps between plans; part of the model, so committed with it. */
export interface PlanState {
  /** The scheduler's own memory (see SchedMemory). */
  readonly memory: SchedMemory | undefined;
  /** xvs_svc_stats conns at the last tick, and the new connections that tick counted. */
  readonly svcConns: number;
  readonly lastArrivals: number;
  /**
   * xvs_real_stats conns per real id at the last tick. A real not here
   * counts from 0: its statistics are zeroed when it is added.
   */
  readonly realConns: ReadonlyMap<number, number>;
  /** lblc/lblcr after a restart: the table the dataplane holds, until the first plan. */
  readonly previous?: Uint32Array;
}

/** What a plan reads from the dataplane besides the model. */
export interface Live {
  census: ConnCensus;
  svcConns: number;
  realConns: ReadonlyMap<number, number>;
  /** xvs_sched_pos: the sequence number the next new flow takes. */
  cursor: bigint;
}

/** A tick reads these after its census, so the plan starts with the first flow the census did not see. */
export function readLive(dp: Dataplane, s: ServiceModel, census: ConnCensus): Live {
  const realConns = new Map<number, number>();
  for (const r of s.reals) realConns.set(r.id, dp.realStats.sum(r.id)?.conns ?? 0);
  const pos = dp.schedPos.lookup(C.u32Codec.encode(s.id));
  return { census, svcConns: dp.svcStats.sum(s.id)?.conns ?? 0, realConns, cursor: pos ? BigInt(C.u64Codec.decode(pos)) : 0n };
}

export interface PublisherOptions {
  /** Maglev table size (a prime). */
  mhTableSize?: number;
}

/**
 * The service's next table, and the plan state to keep with it. A tick's
 * plan (`tick`) takes the new connections since the last tick as a sample
 * of how the service's connections behave; a plan for a configuration
 * change uses what is known without adding to it. Pure: nothing is written.
 */
export function planTable(s: ServiceModel, live: Live, tick: boolean, opts: PublisherOptions = {}): { table: Uint32Array; plan: PlanState } {
  const p = s.plan;
  const arrivals = tick ? Math.max(0, live.svcConns - p.svcConns) : p.lastArrivals;
  const reals: RealState[] = s.reals.map((r) => {
    const c = live.census.reals.get(r.id);
    const arrived = Math.max(0, (live.realConns.get(r.id) ?? 0) - (p.realConns.get(r.id) ?? 0));
    return {
      id: r.id, weight: r.weight, lastWeight: r.lastWeight, addr: r.addr, port: r.port,
      active: c?.active ?? 0, inactive: c?.inactive ?? 0, overloaded: r.overloaded,
      ...(tick ? { arrivals: arrived } : {}),
    };
  });
  const locality = s.scheduler === 'lblc' || s.scheduler === 'lblcr';
  const input: SchedInput = {
    reals,
    picks: Math.min(MAX_PICKS, Math.max(MIN_PICKS, 2 * arrivals)),
    cursor: live.cursor,
    fallback: fallsBack(s.scheduler, s.schedFlags ?? 0),
    ...(s.scheduler === 'mh' && opts.mhTableSize ? { tableSize: opts.mhTableSize } : {}),
    ...(locality && p.previous ? { previous: p.previous } : {}),
    ...(locality ? { flows: flowsPerSlot(s, live.census) } : {}),
  };
  const planned = schedulerByName(s.scheduler).plan(input, p.memory);
  return {
    table: planned.table,
    plan: {
      memory: planned.memory,
      svcConns: tick ? live.svcConns : p.svcConns,
      lastArrivals: arrivals,
      realConns: tick ? live.realConns : p.realConns,
    },
  };
}

/** Live flows per slot of the service's current table, by destination hash, as the dataplane indexes it. */
function flowsPerSlot(s: ServiceModel, census: ConnCensus): Uint32Array {
  const len = s.tableSize;
  const flows = new Uint32Array(len);
  if (len === 0) return flows;
  for (const [daddr, n] of census.destinations.get(s.id) ?? []) flows[slotOf(daddr, len)]! += n;
  return flows;
}
