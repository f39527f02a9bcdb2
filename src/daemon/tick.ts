import { SCHEDULERS } from '../schedulers/registry.js';
import { countConns, type ConnCensus } from './conn-count.js';
import type { Dataplane } from './dataplane.js';
import { realGens, serviceName, withServices, type Model, type ServiceModel } from './model.js';
import { nextOverload } from './overload.js';
import { planTable, readLive, type PublisherOptions } from './table-publisher.js';

/** Whether a tick has work: a dynamic scheduler or a threshold somewhere. */
export function needsTick(m: Model): boolean {
  for (const s of m.services.values()) {
    if (SCHEDULERS[s.scheduler].kind === 'dynamic' || s.reals.some((r) => r.uthreshold > 0)) return true;
  }
  return false;
}

export interface Crossing {
  service: string;
  real: string;
  overloaded: boolean;
}

export interface TickChange {
  model: Model;
  tables: Map<number, Uint32Array>;
  census: ConnCensus;
  crossed: Crossing[];
}

/**
 * One control-plane tick, as a change for the director to write and commit:
 * count connections from the table, move real servers in and out of
 * overload, and re-plan every dynamic scheduler (and every table an
 * overload change touches) so the next picks follow the exact IPVS
 * algorithm from the current counts.
 */
export function tickChange(dp: Dataplane, m: Model, opts: PublisherOptions): TickChange {
  const census = countConns(dp, realGens(m));
  const tables = new Map<number, Uint32Array>();
  const crossed: Crossing[] = [];
  const updated: ServiceModel[] = [];
  for (const s of m.services.values()) {
    let changed = false;
    const reals = s.reals.map((r) => {
      const c = census.reals.get(r.id);
      const overloaded = nextOverload(r.overloaded, c ? c.active + c.inactive : 0, r.uthreshold, r.lthreshold);
      if (overloaded === r.overloaded) return r;
      changed = true;
      crossed.push({ service: serviceName(s), real: `${r.addr}:${r.port}`, overloaded });
      return { ...r, overloaded };
    });
    if (!changed && SCHEDULERS[s.scheduler].kind !== 'dynamic') continue;
    const next = { ...s, reals };
    const { table, plan } = planTable(next, readLive(dp, next, census), true, opts);
    updated.push({ ...next, tableSize: table.length, plan });
    tables.set(s.id, table);
  }
  return { model: withServices(m, updated), tables, census, crossed };
}
