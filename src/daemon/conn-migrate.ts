// A restart with another --conn-table-size. libbpf reuses a pinned map only
// if its definition matches, so the flow tables whose size follows the
// option (xvs_conns, xvs_persist and xvs_nats; xvs_new_flows and xvs_new_replies have one size) are loaded fresh at the new
// size instead, and the live entries are copied over from the old pins
// before those are replaced: most recently used first when the new table is
// smaller, every entry when it is larger.
import { existsSync, rmSync } from 'node:fs';
import * as lb from '../loader/libbpf.js';
import * as C from '../maps/codecs.js';
import { BPF_NOEXIST, mapFromPin, type RawMap } from '../maps/map.js';
import type { SetTable } from '../maps/set-table.js';

/** The maps sized from --conn-table-size, each with the codec of its value (all start with last_seen). */
export const RESIZABLE = {
  xvs_conns: C.conn,
  xvs_persist: C.persist,
  xvs_nats: C.nat,
} as const;

export type ResizableName = keyof typeof RESIZABLE;

export interface StalePin {
  name: ResizableName;
  path: string;
  old: RawMap;
  want: number;
}

/** The pins among `names` that `stale` says the new object cannot reuse, opened so they can be read. */
function openStalePins<N extends string>(pinDir: string, names: readonly N[], stale: (name: N, old: RawMap) => boolean): { name: N; path: string; old: RawMap }[] {
  const out: { name: N; path: string; old: RawMap }[] = [];
  try {
    for (const name of names) {
      const path = `${pinDir}/${name}`;
      if (!existsSync(path)) continue;
      const old = mapFromPin(path);
      if (stale(name, old)) out.push({ name, path, old });
      else old.close();
    }
  } catch (e) {
    for (const s of out) s.old.close();
    throw e;
  }
  return out;
}

/** The pinned flow tables whose size differs from `sizes`, opened so they can be copied from. */
export function openResizedPins(pinDir: string, sizes: Record<ResizableName, number>): StalePin[] {
  return openStalePins(pinDir, Object.keys(RESIZABLE) as ResizableName[], (name, old) => old.maxEntries !== sizes[name])
    .map((p) => ({ ...p, want: sizes[p.name] }));
}

const lastSeen = (name: ResizableName, v: Buffer): number => RESIZABLE[name].decode(v).last_seen;

const CHUNK = 4096;

export interface CopyResult {
  /** Entries in the old table when it was read. */
  entries: number;
  /** Entries the new table holds after the copy. */
  kept: number;
}

/**
 * Copies the newest `to.maxEntries` entries, oldest of them first: if the
 * LRU makes room before it is full (its free lists are per CPU), what it
 * evicts is the oldest of those copied.
 */
export function copyNewestFirst(name: ResizableName, from: RawMap, to: RawMap): CopyResult {
  const { keys, values } = from.lookupBatch(CHUNK);
  const seen = values.map((v) => lastSeen(name, v));
  const order = keys.map((_, i) => i).sort((a, b) => seen[b]! - seen[a]!);
  const take = order.slice(0, to.maxEntries).reverse();
  for (let i = 0; i < take.length; i += CHUNK) {
    const part = take.slice(i, i + CHUNK);
    to.updateBatchFlat(Buffer.concat(part.map((j) => keys[j]!)), Buffer.concat(part.map((j) => values[j]!)), part.length);
  }
  return { entries: keys.length, kept: to.lookupBatch(CHUNK).keys.length };
}

const EEXIST = 17;

/**
 * The entries the old dataplane created or touched since `since` (jiffies)
 * while the copy ran and until the new program was attached, added where the
 * new table has none: an entry the new program already wrote is newer.
 * Returns how many were added.
 */
export function copyTouchedSince(name: ResizableName, from: RawMap, to: RawMap, since: number): number {
  const { keys, values } = from.lookupBatch(CHUNK);
  let added = 0;
  values.forEach((v, i) => {
    if (lastSeen(name, v) < since) return;
    const r = lb.bpf_map_update_elem(to.fd, keys[i]!, v, BPF_NOEXIST);
    if (r === 0) added++;
    else if (r !== -EEXIST) throw new Error(`map ${name}: update failed: ${lb.strerror(r)}`);
  });
  return added;
}

/** The new table takes the old one's pin. */
export function repin(s: StalePin, to: RawMap): void {
  rmSync(s.path, { force: true });
  to.pin(s.path);
}

/** The tables in sets, by name, and the size of a set's ways now that its head is in a map of its own. */
export const SET_TABLES = {
  xvs_new_flows: C.newFlowSet.size,
  xvs_new_replies: C.newReplySet.size,
} as const;

export type SetTableName = keyof typeof SET_TABLES;

export interface HeadInSetPin {
  name: SetTableName;
  path: string;
  old: RawMap;
}

/**
 * The tables in sets pinned by a build before xvs_new_flow_heads and
 * xvs_new_reply_heads, each set's head inside it: libbpf would not reuse
 * them (their values are larger), so the new tables are loaded fresh and
 * take these entries (SetTable.adoptHeadInSets) and pins.
 */
export function openHeadInSetPins(pinDir: string): HeadInSetPin[] {
  return openStalePins(pinDir, Object.keys(SET_TABLES) as SetTableName[], (name, old) => old.valueSize !== SET_TABLES[name]);
}

/** Moves each old pin's entries into its new table, which then takes the pin. Returns how many moved. */
export function adoptHeadInSetPins(pins: HeadInSetPin[], tables: Record<SetTableName, SetTable<C.Conn> | SetTable<C.Nat>>): number {
  let n = 0;
  for (const p of pins) {
    const to = tables[p.name];
    n += to.adoptHeadInSets(p.old);
    rmSync(p.path, { force: true });
    to.raw.pin(p.path);
  }
  return n;
}

/**
 * The new-flow tables of builds before xvs_new_flows and xvs_new_replies,
 * LRU hashes pinned as xvs_syn_conns and xvs_nat_syn: their entries move
 * into the sets before the new program is attached, so the handshakes under
 * way still confirm and their replies still translate, and the pins go.
 * Returns how many moved (0: no such pins).
 */
export function adoptNewFlowPins(pinDir: string, flows: SetTable<C.Conn>, replies: SetTable<C.Nat>): number {
  const adopt = <V extends { last_seen: number }>(name: string, to: SetTable<V>): number => {
    const path = `${pinDir}/${name}`;
    if (!existsSync(path)) return 0;
    const old = mapFromPin(path);
    try {
      const { keys, values } = old.lookupBatch(CHUNK);
      keys.forEach((k, i) => {
        const v = to.value.decode(values[i]!);
        to.set(C.connKey.decode(k), v, v.last_seen);
      });
      return keys.length;
    } finally {
      old.close();
      rmSync(path, { force: true });
    }
  };
  return adopt('xvs_syn_conns', flows) + adopt('xvs_nat_syn', replies);
}
