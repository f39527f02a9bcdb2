import { apportion, checkReals } from './common.js';
import { checkLocalitySize, LBLC_TABLE_SIZE } from './lblc.js';
import { cachedBuckets, LocalityLoad, newcomerConnections, type LocalityOptions, type LocalityPlan } from './locality.js';
import type { LoadReal, NewConnAs } from './types.js';

/**
 * Slots per lblcr bucket, and so the largest server set a bucket can hold.
 * The dataplane reads one real per slot, so a bucket's set is written as its
 * LBLCR_SET_SLOTS consecutive slots shared among the members by weight
 * (IPVS sends each connection to the set's wlc member, which shares a busy
 * destination by weight). A destination address hashes to one slot, so it
 * is the bucket's destinations, not each destination's connections, that
 * the set shares: the approximation this layout makes.
 */
export const LBLCR_SET_SLOTS = 8;

/** Default table length: as many buckets as lblc, each LBLCR_SET_SLOTS wide. */
export const LBLCR_TABLE_SIZE = LBLC_TABLE_SIZE * LBLCR_SET_SLOTS;

/**
 * IPVS lblcr (ip_vs_lblcr.c) per bucket, planned once per tick. The set is
 * read back from the bucket's slots in `previous` (the table and its cached
 * flags are the only state), dropping reals that are gone, quiesced or
 * overloaded since a slot must hold a real that can take connections. Then,
 * for a cached bucket:
 *
 *   empty set      -> the service's wlc real becomes the set;
 *   n = set's wlc member (overloaded skipped); if there is none, or n is
 *   overloaded by lblc's rule (n.active > n.weight while some real has
 *   active < weight/2), the service's wlc real joins the set.
 *
 * A bucket a flow used for the first time since the last plan gets the set
 * IPVS builds when its connections are replayed (newcomerConnections), and
 * a bucket not cached a fresh set of the service's wlc real, after the
 * cached ones (see cachedBuckets). IPVS drops the set's most loaded member
 * once the set has not changed for lblcr_expiration (24 h); here a set only
 * shrinks when a member leaves as above, or when it is full and a new member
 * needs room (the most loaded by ip_vs_dest_set_max goes). Members keep the
 * slots they had where the new weight split allows, so a set change moves
 * as few destinations as it can. Each member that joins a cached set counts
 * one new connection, as in planLblcState.
 */
export function planLblcrState(
  reals: readonly LoadReal[],
  previous: LocalityPlan | undefined,
  tableSize = LBLCR_TABLE_SIZE,
  opts: LocalityOptions = {},
): LocalityPlan {
  checkReals(reals);
  checkLocalitySize('lblcr', tableSize, LBLCR_SET_SLOTS);
  const load = new LocalityLoad(reals, opts.newConnAs ?? 'active');
  if (load.wlc() < 0) return { table: new Uint32Array(0), pinned: new Uint8Array(0) };
  const prev = previous?.table.length === tableSize ? previous : undefined;
  const k = LBLCR_SET_SLOTS;
  const { cached, arrived, freshShare } = cachedBuckets(prev, opts.flows, tableSize, k);
  const table = new Uint32Array(tableSize);
  // Buckets first used during the last tick: replay IPVS on their connections (see newcomerConnections).
  const replayed = new Map<number, number[]>();
  for (const b of newcomerConnections(load, arrived, prev, opts.flows, k)) {
    const set = replayed.get(b) ?? [];
    replayed.set(b, set);
    lblcrSchedule(set, load);
  }
  for (let b = 0; b < cached.length; b++) {
    if (!cached[b]) continue;
    const old = prev!.table.subarray(b * k, (b + 1) * k);
    const set = replayed.get(b) ?? readSet(old, load);
    if (!replayed.has(b)) lblcrSchedule(set, load, false);
    fillSet(table.subarray(b * k, (b + 1) * k), old, set, load);
  }
  for (let b = 0; b < cached.length; b++) {
    if (cached[b]) continue;
    const m = load.wlc();
    table.fill(reals[m]!.id, b * k, (b + 1) * k);
    load.bump(m, freshShare);
  }
  const pinned = new Uint8Array(tableSize);
  for (let b = 0; b < cached.length; b++) if (cached[b]) pinned.fill(1, b * k, (b + 1) * k);
  return { table, pinned };
}

/** planLblcrState with every bucket of `previous` cached. */
export function planLblcr(
  reals: readonly LoadReal[],
  previous: Uint32Array | undefined,
  tableSize = LBLCR_TABLE_SIZE,
  opts: { newConnAs?: NewConnAs } = {},
): Uint32Array {
  const prev = previous ? { table: previous, pinned: new Uint8Array(previous.length).fill(1) } : undefined;
  return planLblcrState(reals, prev, tableSize, { newConnAs: opts.newConnAs }).table;
}

/**
 * One connection to a bucket with this set, as ip_vs_lblcr_schedule: the
 * set's wlc member unless there is none or it is overloaded, else the
 * service's wlc real, which joins the set. `count` says whether the
 * connection is counted when the set's member takes it (a replayed one) or
 * only when the set changes (a plan: kept traffic is in the live counts).
 */
function lblcrSchedule(set: number[], load: LocalityLoad, count = true): void {
  const n = load.wlc(set);
  if (n >= 0 && !load.isOverloaded(n)) {
    if (count) load.bump(n);
    return;
  }
  const m = load.wlc();
  if (!set.includes(m)) {
    if (set.length === LBLCR_SET_SLOTS) set.splice(set.indexOf(mostLoaded(set, load)), 1);
    set.push(m);
  }
  load.bump(m);
}

function readSet(slots: Uint32Array | undefined, load: LocalityLoad): number[] {
  const set: number[] = [];
  for (const id of slots ?? []) {
    const i = load.index.get(id);
    if (i === undefined || set.includes(i)) continue;
    const r = load.reals[i]!;
    if (r.weight > 0 && r.overloaded !== true) set.push(i);
  }
  return set;
}

/** ip_vs_dest_set_max: the highest overhead/weight, first in set order on ties. */
function mostLoaded(set: readonly number[], load: LocalityLoad): number {
  let most = set[0]!;
  for (const i of set.slice(1)) {
    if (load.overhead(most) * load.reals[i]!.weight < load.overhead(i) * load.reals[most]!.weight) most = i;
  }
  return most;
}

function fillSet(slots: Uint32Array, old: Uint32Array | undefined, set: readonly number[], load: LocalityLoad): void {
  const target = apportion(set.map((i) => load.reals[i]!.weight), slots.length);
  const ids = set.map((i) => load.reals[i]!.id);
  const have = new Uint32Array(set.length);
  const free: number[] = [];
  for (let s = 0; s < slots.length; s++) {
    const m = old ? ids.indexOf(old[s]!) : -1;
    if (m >= 0 && have[m]! < target[m]!) {
      slots[s] = ids[m]!;
      have[m] = have[m]! + 1;
    } else {
      free.push(s);
    }
  }
  let m = 0;
  for (const s of free) {
    while (have[m]! >= target[m]!) m++;
    slots[s] = ids[m]!;
    have[m] = have[m]! + 1;
  }
}
