import { endianness } from 'node:os';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { emptySlot, fieldOffset as at } from '../maps/codec.js';
import * as C from '../maps/codecs.js';
import { mapFromId, type RawMap } from '../maps/map.js';
import { CONN_STATE, NAT_F } from '../maps/abi.js';
import { fresh, isActive, readStateTimeouts, type ConnCounts } from '../daemon/conn-count.js';
import type { Dataplane } from '../daemon/dataplane.js';
import type { Model } from '../daemon/model.js';

// What the metrics need from the flow tables, read in one walk: table fill,
// live flows by state, ActiveConn/InActConn, persistence templates, FULLNAT
// local ports in use, scheduler slots per real server.
//
// The walk reads each table a batch at a time into two reused buffers and
// reads the few fields it needs in place: no object per entry. That costs
// about 0.4 s of CPU per million entries (the kernel's batch copy is most
// of it; decoding each entry with its codec, as the tick's census does,
// costs 2 s), so a census is cached (metrics.ts) and the walk yields to the
// event loop between batches, so requests and ticks go on meanwhile.

/** Entries per BPF_MAP_LOOKUP_BATCH: ~1.5 ms of work between two turns of the event loop. */
const CHUNK = 4096;

export interface TableFill {
  /** Entries the map holds, expired ones not yet evicted included. */
  entries: number;
  /** Of those, the ones whose timeout has not run out. */
  live: number;
  max: number;
}

export interface FlowCensus {
  /** performance.now() when the walk started, and how long it took (seconds). */
  at: number;
  seconds: number;
  /** By map name: the flow tables, the NAT reply tables, the persistence templates. */
  tables: Map<string, TableFill>;
  /** Slots of xvs_reals holding a real server, live or deleted (whose flows go on). */
  realSlots: number;
  /**
   * Live flows by service id, one count per connection state (CONN_STATE's
   * numbers), whose real server slot still carries the flow's generation:
   * every flow the dataplane would still forward, a deleted real server's
   * included (they go on until they expire, as in IPVS).
   */
  services: Map<number, number[]>;
  /** ipvsadm -L's ActiveConn/InActConn by real id, for the real servers of the model. */
  reals: Map<number, ConnCounts>;
  /** Live persistence templates by real id (ipvsadm --persistent-conn). */
  templates: Map<number, number>;
  /** Live FULLNAT reply entries (local ports taken) by real id, then local address. */
  fullnatPorts: Map<number, Map<string, number>>;
  /** Slots of each service's scheduler table naming each real id, by service id. */
  slots: Map<number, Map<number, number>>;
}

export type CensusMaps = Pick<Dataplane, 'reals' | 'conns' | 'newFlows' | 'persist' | 'nats' | 'newReplies' | 'laddrs' | 'schedTables' | 'config' | 'hz' | 'jiffies'>;

const LE = endianness() === 'LE';
const u32At = (b: Buffer, o: number): number => (LE ? b.readUInt32LE(o) : b.readUInt32BE(o));
const u64At = (b: Buffer, o: number): number => (LE ? b.readUInt32LE(o) + b.readUInt32LE(o + 4) * 2 ** 32 : b.readUInt32BE(o) * 2 ** 32 + b.readUInt32BE(o + 4));

const CONN = { last: at(C.conn, 'last_seen'), real: at(C.conn, 'real_id'), gen: at(C.conn, 'real_gen'), svc: at(C.conn, 'svc_id'), state: at(C.conn, 'state') };
const REAL = { family: at(C.real, 'family'), gen: at(C.real, 'gen') };
const PERSIST = { last: at(C.persist, 'last_seen'), real: at(C.persist, 'real_id'), gen: at(C.persist, 'real_gen') };
const PKEY = { svc: at(C.persistKey, 'svc_id') };
const NAT = { last: at(C.nat, 'last_seen'), real: at(C.nat, 'real_id'), state: at(C.nat, 'state'), flags: at(C.nat, 'flags') };
const NKEY = { daddr: at(C.connKey, 'daddr') };

async function walk(m: Pick<RawMap, 'batches'>, each: (keys: Buffer, values: Buffer, i: number) => void): Promise<number> {
  let n = 0;
  for (const b of m.batches(CHUNK)) {
    for (let i = 0; i < b.count; i++) each(b.keys, b.values, i);
    n += b.count;
    await nextTurn();
  }
  return n;
}

/** The generation each real id's slot carries now (0: an empty slot, never a flow's). */
async function slotGens(dp: CensusMaps): Promise<{ gens: Uint32Array; used: number }> {
  const gens = new Uint32Array(dp.reals.raw.maxEntries);
  const size = dp.reals.raw.valueBufSize;
  let used = 0;
  await walk(dp.reals.raw, (k, v, i) => {
    if (v[i * size + REAL.family] === 0) return;
    gens[u32At(k, i * 4)] = u32At(v, i * size + REAL.gen);
    used++;
  });
  return { gens, used };
}

const add = <K>(m: Map<K, number>, k: K, n = 1): void => { m.set(k, (m.get(k) ?? 0) + n); };

export async function takeCensus(dp: CensusMaps, model: Model): Promise<FlowCensus> {
  const t0 = performance.now();
  const now = dp.jiffies();
  const hz = dp.hz;
  const timeout = readStateTimeouts(dp);
  const { gens, used } = await slotGens(dp);
  const modelGens = new Map<number, number>();
  const persistFor = new Map<number, number>();
  for (const s of model.services.values()) {
    if (s.persistent !== undefined) persistFor.set(s.id, s.persistent);
    for (const r of s.reals) modelGens.set(r.id, r.gen);
  }
  const out: FlowCensus = {
    at: t0, seconds: 0, tables: new Map(), realSlots: used, services: new Map(), reals: new Map(),
    templates: new Map(), fullnatPorts: new Map(), slots: new Map(),
  };

  for (const table of [dp.conns.raw, dp.newFlows]) {
    const size = table.valueBufSize;
    let live = 0;
    const entries = await walk(table, (_k, v, i) => {
      const o = i * size;
      const state = v[o + CONN.state]!;
      if (!fresh(now, u64At(v, o + CONN.last), timeout[state] ?? 0, hz)) return;
      live++;
      const real = u32At(v, o + CONN.real);
      const gen = u32At(v, o + CONN.gen);
      if (gens[real] !== gen) return;
      const svc = u32At(v, o + CONN.svc);
      let states = out.services.get(svc);
      if (!states) out.services.set(svc, (states = new Array<number>(CONN_STATE.max).fill(0)));
      states[state & (CONN_STATE.max - 1)]!++;
      if (modelGens.get(real) !== gen) return;
      const c = out.reals.get(real) ?? { active: 0, inactive: 0 };
      if (isActive(state)) c.active++;
      else c.inactive++;
      out.reals.set(real, c);
    });
    out.tables.set(table.name, { entries, live, max: table.maxEntries });
  }

  {
    const size = dp.persist.raw.valueBufSize;
    const ksize = dp.persist.raw.keySize;
    let live = 0;
    const entries = await walk(dp.persist.raw, (k, v, i) => {
      const o = i * size;
      const timeoutSeconds = persistFor.get(u32At(k, i * ksize + PKEY.svc));
      if (timeoutSeconds === undefined || !fresh(now, u64At(v, o + PERSIST.last), timeoutSeconds, hz)) return;
      live++;
      const real = u32At(v, o + PERSIST.real);
      if (modelGens.get(real) === u32At(v, o + PERSIST.gen)) add(out.templates, real);
    });
    out.tables.set(dp.persist.raw.name, { entries, live, max: dp.persist.raw.maxEntries });
  }

  // A FULLNAT reply entry holds its local port until it expires
  // (xvs_lport_taken in natconn.h); its key's destination is the local address.
  const laddrOf = await localAddresses(dp);
  for (const table of [dp.nats.raw, dp.newReplies]) {
    const size = table.valueBufSize;
    const ksize = table.keySize;
    let live = 0;
    const entries = await walk(table, (k, v, i) => {
      const o = i * size;
      const state = v[o + NAT.state]!;
      if (!fresh(now, u64At(v, o + NAT.last), timeout[state] ?? 0, hz)) return;
      live++;
      if ((v[o + NAT.flags]! & NAT_F.fullnat) === 0) return;
      const laddr = laddrOf.get(k.toString('latin1', i * ksize + NKEY.daddr, i * ksize + NKEY.daddr + 16)) ?? 'unknown';
      const real = u32At(v, o + NAT.real);
      let byLaddr = out.fullnatPorts.get(real);
      if (!byLaddr) out.fullnatPorts.set(real, (byLaddr = new Map()));
      add(byLaddr, laddr);
    });
    out.tables.set(table.name, { entries, live, max: table.maxEntries });
  }

  for (const s of model.services.values()) out.slots.set(s.id, await tableSlots(dp, s.id, s.tableSize));
  out.seconds = (performance.now() - t0) / 1000;
  return out;
}

/** Every local address by its 16 bytes as a key holds them. */
async function localAddresses(dp: CensusMaps): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const addr = at(C.laddr, 'addr');
  for (const v of dp.laddrs.raw.lookupBatch(1024).values) {
    if (!emptySlot(C.laddr, v)) out.set(v.toString('latin1', addr, addr + 16), C.laddr.decode(v).addr);
  }
  await nextTurn();
  return out;
}

/** How many of the first `size` slots of the service's table name each real id. */
async function tableSlots(dp: CensusMaps, svcId: number, size: number): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  const idBuf = dp.schedTables.lookup(C.u32Codec.encode(svcId));
  if (!idBuf || size === 0) return out;
  const inner = mapFromId(C.u32Codec.decode(idBuf));
  try {
    await walk(inner, (k, v, i) => {
      if (u32At(k, i * 4) < size) add(out, u32At(v, i * 4));
    });
  } finally {
    inner.close();
  }
  return out;
}
