import { XvsError } from '../errors.js';
import { checkReals } from './common.js';
import { cachedBuckets, LocalityLoad, newcomerConnections, type LocalityOptions, type LocalityPlan } from './locality.js';
import type { LoadReal, NewConnAs } from './types.js';
import { MAX_SEQ_TABLE } from './wrr.js';

/**
 * Default lblc table length: destination buckets, like IPVS's 1024-bucket
 * cache (CONFIG_IP_VS_LBLC_TAB_BITS=10), but prime for the dataplane's
 * hash32(daddr) % length. IPVS caches each destination address; here
 * destinations that share a bucket share its real.
 */
export const LBLC_TABLE_SIZE = 1021;

export function checkLocalitySize(name: string, size: number, multiple = 1): void {
  if (!Number.isInteger(size) || size < multiple || size % multiple !== 0 || size > MAX_SEQ_TABLE) {
    throw new XvsError('BAD_ARGUMENT', `${name} table size ${size} must be a multiple of ${multiple} in ${multiple}..${MAX_SEQ_TABLE}`);
  }
}

/**
 * IPVS lblc over destination buckets, planned once per tick from live counts:
 *
 *   a cached bucket keeps its real n while n is still a real of the service,
 *   has weight > 0 and is not overloaded (ip_vs_lblc.c: n.active > n.weight
 *   while some real has active < weight/2); otherwise, and for a bucket not
 *   cached, the bucket gets the wlc choice over the service (overloaded
 *   reals skipped).
 *
 * As in IPVS the cached real is kept even if flagged overloaded: only the
 * rule above moves a bucket. Buckets a flow used for the first time since
 * the last plan go first, by replaying IPVS on their connections
 * (newcomerConnections). Then the other cached buckets, in slot order: each
 * reassignment counts one new connection on its new real (the one that made
 * IPVS reassign), so a batch of moves spreads instead of piling onto the
 * real that was least loaded at the snapshot, and kept buckets count nothing
 * (their traffic is already in the live counts). Buckets not cached come
 * last (see cachedBuckets). No real able to take a new destination means an
 * empty table.
 */
export function planLblcState(
  reals: readonly LoadReal[],
  previous: LocalityPlan | undefined,
  tableSize = LBLC_TABLE_SIZE,
  opts: LocalityOptions = {},
): LocalityPlan {
  checkReals(reals);
  checkLocalitySize('lblc', tableSize);
  const load = new LocalityLoad(reals, opts.newConnAs ?? 'active');
  if (load.wlc() < 0) return { table: new Uint32Array(0), pinned: new Uint8Array(0) };
  const prev = previous?.table.length === tableSize ? previous : undefined;
  const { cached, arrived, freshShare } = cachedBuckets(prev, opts.flows, tableSize, 1);
  const table = new Uint32Array(tableSize);
  const placed = replayLblc(load, arrived, prev, opts.flows, table);
  for (let b = 0; b < tableSize; b++) {
    if (!cached[b] || placed.has(b)) continue;
    const n = load.index.get(prev!.table[b]!);
    if (n !== undefined && reals[n]!.weight > 0 && !load.isOverloaded(n)) {
      table[b] = reals[n]!.id;
      continue;
    }
    const m = load.wlc();
    table[b] = reals[m]!.id;
    load.bump(m);
  }
  for (let b = 0; b < tableSize; b++) {
    if (cached[b]) continue;
    const m = load.wlc();
    table[b] = reals[m]!.id;
    load.bump(m, freshShare);
  }
  return { table, pinned: cached };
}

/** planLblcState with every bucket of `previous` cached. */
export function planLblc(
  reals: readonly LoadReal[],
  previous: Uint32Array | undefined,
  tableSize = LBLC_TABLE_SIZE,
  opts: { newConnAs?: NewConnAs } = {},
): Uint32Array {
  const prev = previous ? { table: previous, pinned: new Uint8Array(previous.length).fill(1) } : undefined;
  return planLblcState(reals, prev, tableSize, { newConnAs: opts.newConnAs }).table;
}

/**
 * Buckets a flow used for the first time during the last tick were placed
 * blind, by a plan made before their traffic existed; IPVS placed those
 * destinations at their first connection and moved them again while they
 * were overloaded. This replays that (see newcomerConnections) through IPVS
 * lblc, and the cache it leaves is their placement. Returns the buckets placed.
 */
function replayLblc(load: LocalityLoad, arrived: readonly number[], prev: LocalityPlan | undefined, flows: Uint32Array | undefined, table: Uint32Array): Set<number> {
  const cache = new Map<number, number>();
  for (const b of newcomerConnections(load, arrived, prev, flows, 1)) {
    const c = cache.get(b);
    if (c !== undefined && load.reals[c]!.weight > 0 && !load.isOverloaded(c)) {
      load.bump(c);
      continue;
    }
    const m = load.wlc();
    cache.set(b, m);
    load.bump(m);
  }
  for (const [b, i] of cache) table[b] = load.reals[i]!.id;
  return new Set(cache.keys());
}
