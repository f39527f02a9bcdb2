import { logger } from '../log.js';
import { emptySlot } from '../maps/codec.js';
import * as C from '../maps/codecs.js';
import { mapFromId } from '../maps/map.js';
import type { Dataplane } from './dataplane.js';
import { realFromEntry, serviceFromEntry } from './map-writer.js';
import { rulesOfEntry } from './fwmark-rules.js';
import { EMPTY_MODEL, serviceName, withFwmarkRules, type Limits, type Model, type RealModel, type ServiceModel } from './model.js';

const log = logger('restore');

/**
 * The model the pinned maps describe: a restarted xvsd carries on with the
 * running dataplane and its flows. Statistics read now are where the next
 * tick counts new connections from.
 */
export function restoreModel(dp: Dataplane, limits: Limits): Model {
  const byId = new Map<number, { s: Omit<ServiceModel, 'reals' | 'plan'>; reals: RealModel[] }>();
  for (const [key, entry] of dp.services.entries()) {
    const s = serviceFromEntry(key, entry);
    if (!s) {
      log.warn({ key, sched: entry.sched }, 'pinned service has an unknown scheduler; left alone');
      continue;
    }
    byId.set(s.id, { s, reals: [] });
  }
  // Each prefix's own rules, in their order there (fwmark-rules.ts).
  const rules = [...dp.fwmarkRules.entries()].flatMap(([key, value]) => rulesOfEntry({ key, value }));
  if (byId.size === 0) return withFwmarkRules(EMPTY_MODEL, rules);
  const { keys, values } = dp.reals.raw.lookupBatch(4096);
  let maxId = -1;
  values.forEach((raw, i) => {
    const id = C.u32Codec.decode(keys[i]!);
    const found = realFromEntry(id, raw);
    if (!found) return;
    maxId = Math.max(maxId, id);
    const owner = byId.get(found.svcId);
    if (owner && !found.removed) owner.reals.push(found.real);
  });
  // Local addresses: every id in use, and each service's set by id.
  const laddrIds = new Map<string, number>();
  const byLaddrId = new Map<number, string>();
  const la = dp.laddrs.raw.lookupBatch(1024);
  la.values.forEach((raw, i) => {
    if (emptySlot(C.laddr, raw)) return;
    const e = C.laddr.decode(raw);
    const id = C.u32Codec.decode(la.keys[i]!);
    laddrIds.set(e.addr, id);
    byLaddrId.set(id, e.addr);
  });
  const services = new Map<string, ServiceModel>();
  for (const { s, reals } of byId.values()) {
    const sl = dp.svcLaddrs.get(s.id);
    const laddrs = sl ? sl.ids.slice(0, sl.count).flatMap((id) => byLaddrId.get(id) ?? []) : [];
    const locality = s.scheduler === 'lblc' || s.scheduler === 'lblcr';
    const previous = locality ? readTable(dp, s.id) : undefined;
    services.set(serviceName(s), {
      ...s, reals, ...(laddrs.length > 0 ? { laddrs } : {}),
      plan: {
        memory: undefined,
        svcConns: dp.svcStats.sum(s.id)?.conns ?? 0,
        lastArrivals: 0,
        realConns: new Map(reals.map((r) => [r.id, dp.realStats.sum(r.id)?.conns ?? 0])),
        ...(previous ? { previous } : {}),
      },
    });
  }
  log.info({ services: services.size, fwmarkRules: rules.length }, 'state restored from pinned maps');
  return withFwmarkRules({ services, realCursor: (maxId + 1) % limits.reals, ...(laddrIds.size > 0 ? { laddrIds } : {}) }, rules);
}

/** The table the dataplane holds for a service (the outer map yields the inner map's id). */
export function readTable(dp: Dataplane, svcId: number): Uint32Array | undefined {
  const idBuf = dp.schedTables.lookup(C.u32Codec.encode(svcId));
  if (!idBuf) return undefined;
  const inner = mapFromId(C.u32Codec.decode(idBuf));
  try {
    const { keys, values } = inner.lookupBatch(4096);
    const out = new Uint32Array(inner.maxEntries);
    values.forEach((v, i) => { out[C.u32Codec.decode(keys[i]!)] = C.u32Codec.decode(v); });
    return out;
  } finally {
    inner.close();
  }
}
