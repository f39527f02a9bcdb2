import { XvsError } from '../errors.js';
import type { ServiceKey } from '../control/protocol.js';
import { logger } from '../log.js';
import { CFG_F, FAMILY, FWD, REAL_F, SVC_F } from '../maps/abi.js';
import { emptySlot } from '../maps/codec.js';
import * as C from '../maps/codecs.js';
import { createArrayMap, mapFromId, type RawMap } from '../maps/map.js';
import { modeByCode, MODES } from '../modes/index.js';
import { tunnelEntry, tunnelFromEntry } from '../modes/tunnel.js';
import { schedFlagsOfSvc, svcFlagBits } from '../schedulers/flags.js';
import { natRealSlot } from '../schedulers/hash.js';
import { LOOKUP_CODES, lookupOf, SCHEDULERS, schedulerByCode, type SchedulerName } from '../schedulers/registry.js';
import { addr16ToIp } from '../maps/codec.js';
import { familyOf } from './addr.js';
import type { Dataplane } from './dataplane.js';
import { compileFwmarkRules, type FwmarkEntry } from './fwmark-rules.js';
import { EMPTY_MODEL, serviceName, type Model, type RealModel, type ServiceModel } from './model.js';

// The only code that writes the director's maps, and the only place that
// turns the model into the ABI of bpf/include/xvs_abi.h (and back, for a
// restart). The director hands it the model before and after a change and
// the new tables; it writes the difference, in an order the running
// dataplane can follow packet by packet, all or nothing.

const log = logger('map-writer');

const PROTO_NUM = { tcp: 6, udp: 17 } as const;
const BPF_F_INNER_MAP = 1 << 12;
/** Forwarding methods whose replies come back through the director. */
const TWO_WAY = new Set<number>([FWD.nat, FWD.fullnat]);

/** A fwmark service's key: proto 0, port 0, the mark in addr[0] (xvs_abi.h). */
export function svcKeyOf(k: ServiceKey): C.SvcKey {
  const family = familyOf(k.addr);
  if (k.fwmark) {
    const b = Buffer.alloc(16);
    b.writeUInt32BE(k.fwmark >>> 0, 0);
    return { addr: addr16ToIp(b, family), port: 0, proto: 0, family };
  }
  return { addr: k.addr, port: k.port, proto: PROTO_NUM[k.proto], family };
}

/** The service key fields of a pinned key (the inverse of svcKeyOf). */
function keyFromEntry(key: C.SvcKey): Pick<ServiceModel, 'proto' | 'addr' | 'port' | 'fwmark'> {
  if (key.proto !== 0) return { proto: key.proto === PROTO_NUM.udp ? 'udp' : 'tcp', addr: key.addr, port: key.port };
  const fwmark = C.svcKey.encode(key).readUInt32BE(0);
  return { proto: 'tcp', addr: key.family === FAMILY.inet6 ? '::' : '0.0.0.0', port: 0, fwmark };
}

/** xvs_svc.persist_mask: the IPv4 netmask in word 0, or the IPv6 prefix as 16 bytes. */
function maskBytes(s: ServiceModel): Buffer {
  const b = Buffer.alloc(16);
  if (s.persistent === undefined) return b;
  if (familyOf(s.addr) === FAMILY.inet) {
    b.writeUInt32BE(s.netmask >>> 0, 0);
    return b;
  }
  for (let bit = 0; bit < s.netmask; bit++) b[bit >> 3]! |= 0x80 >> (bit & 7);
  return b;
}

function maskFromBytes(family: number, b: Buffer): number {
  if (family === FAMILY.inet) return b.readUInt32BE(0);
  let bits = 0;
  while (bits < 128 && (b[bits >> 3]! & (0x80 >> (bits & 7))) !== 0) bits++;
  return bits;
}

export function svcEntryOf(s: ServiceModel): C.Svc {
  const info = SCHEDULERS[s.scheduler];
  const persistent = s.persistent !== undefined;
  return {
    id: s.id, flags: (persistent ? SVC_F.persistent : 0) | (s.ops ? SVC_F.ops : 0) | svcFlagBits(s.schedFlags ?? 0), sched: info.code,
    lookup: LOOKUP_CODES[lookupOf(s.scheduler, s.schedFlags)],
    tbl_size: s.tableSize, persist_timeout: s.persistent ?? 0, persist_mask: maskBytes(s),
  };
}

export function realEntryOf(s: ServiceModel, r: RealModel, removed: boolean): C.Real {
  return {
    addr: r.addr, port: r.port, family: familyOf(r.addr), fwd: MODES[r.fwd].code, weight: r.weight,
    flags: (removed ? REAL_F.removed : 0) | (r.overloaded ? REAL_F.overload : 0), svc_id: s.id, gen: r.gen,
    u_threshold: r.uthreshold, l_threshold: r.lthreshold, last_weight: r.lastWeight, ...tunnelEntry(r.tunnel),
  };
}

/** A pinned service entry as model fields; undefined for a scheduler code nobody knows. */
export function serviceFromEntry(key: C.SvcKey, e: C.Svc): Omit<ServiceModel, 'reals' | 'plan'> | undefined {
  const info = schedulerByCode(e.sched);
  if (!info) return undefined;
  const persistent = (e.flags & SVC_F.persistent) !== 0;
  const schedFlags = schedFlagsOfSvc(e.flags);
  return {
    id: e.id, ...keyFromEntry(key),
    scheduler: info.name as SchedulerName, ...(schedFlags ? { schedFlags } : {}), ...(persistent ? { persistent: e.persist_timeout } : {}),
    ...((e.flags & SVC_F.ops) !== 0 ? { ops: true } : {}),
    netmask: persistent ? maskFromBytes(key.family, e.persist_mask) : key.family === FAMILY.inet ? 0xffffffff : 128, tableSize: e.tbl_size,
  };
}

/** A pinned real entry; undefined for a slot never used. */
export function realFromEntry(id: number, raw: Buffer): { svcId: number; removed: boolean; real: RealModel } | undefined {
  if (emptySlot(C.real, raw)) return undefined;
  const e = C.real.decode(raw);
  return {
    svcId: e.svc_id,
    removed: (e.flags & REAL_F.removed) !== 0,
    real: {
      id, gen: e.gen, addr: e.addr, port: e.port, fwd: modeByCode(e.fwd), weight: e.weight, lastWeight: e.last_weight,
      uthreshold: e.u_threshold, lthreshold: e.l_threshold, overloaded: (e.flags & REAL_F.overload) !== 0,
      ...(e.fwd === FWD.tun && tunnelFromEntry(e) ? { tunnel: tunnelFromEntry(e)! } : {}),
    },
  };
}

const u32 = (n: number): Buffer => C.u32Codec.encode(n);

export class MapWriter {
  /** Undo steps of the writes so far, while atomically() runs. */
  #undo: (() => void)[] | undefined;
  /** Replaced inner tables, held open so an undo can put them back. */
  #held: RawMap[] = [];
  /** Ifindexes whose xvs_if_mtus entry may be set (writeIfMtus). */
  #ifMtusSet: Set<number> | undefined;

  constructor(readonly dp: Dataplane) {}

  /**
   * Runs `fn`'s writes as one change: if one fails, those before it are
   * undone (newest first) and the error is rethrown. Nested calls join the
   * outer one.
   */
  atomically<T>(fn: () => T): T {
    if (this.#undo) return fn();
    this.#undo = [];
    try {
      return fn();
    } catch (e) {
      for (const step of this.#undo.reverse()) {
        try {
          step();
        } catch (err) {
          log.error({ err: (err as Error).message }, 'undoing a failed change failed: the maps may disagree with the model');
        }
      }
      throw e;
    } finally {
      this.#undo = undefined;
      for (const m of this.#held) m.close();
      this.#held = [];
    }
  }

  /**
   * Writes what `after` changes from `before`, with `tables` as the new
   * tables of the services that have one (their tableSize already says so).
   * Unchanged objects are skipped: the model is immutable, so an edit makes
   * new objects for what it changes and keeps the rest.
   */
  sync(before: Model, after: Model, tables: ReadonlyMap<number, Uint32Array>): void {
    this.atomically(() => {
      // A local address's entry before any service's set names it; never taken back (flows carry its id).
      for (const [addr, id] of after.laddrIds ?? []) {
        if (before.laddrIds?.get(addr) !== id) this.#put(this.dp.laddrs.raw, u32(id), C.laddr.encode({ addr, family: familyOf(addr) }));
      }
      // A service is its id under its name; ids are reused, names may come back.
      const ident = (s: ServiceModel): string => `${s.id} ${serviceName(s)}`;
      const was = new Map([...before.services.values()].map((s) => [ident(s), s]));
      const now = new Map([...after.services.values()].map((s) => [ident(s), s]));
      for (const [k, s] of was) if (!now.has(k)) this.#closeService(s);
      for (const [k, s] of now) {
        const old = was.get(k);
        const table = tables.get(s.id);
        if (old === s && !table) continue;
        if (!old) this.#openService(s);
        const oldReals = new Map((old?.reals ?? []).map((r) => [r.id, r]));
        // Real servers before the table that names them...
        for (const r of s.reals) {
          const o = oldReals.get(r.id);
          if (o === r) continue;
          if (o?.gen !== r.gen) this.#zeroStats(this.dp.realStats.raw, r.id);
          this.#putReal(r.id, realEntryOf(s, r, false));
        }
        if (table) this.#installTable(s, old?.tableSize ?? 0, table);
        else this.#put(this.dp.services.raw, C.svcKey.encode(svcKeyOf(s)), C.svc.encode(svcEntryOf(s)));
        // ...and a deleted one flagged only once no table names it: its flows go on.
        for (const o of old?.reals ?? []) {
          if (!s.reals.some((r) => r.id === o.id)) this.#putReal(o.id, realEntryOf(s, o, true));
        }
        if (old?.laddrs !== s.laddrs) this.#putSvcLaddrs(s, after);
      }
      // A miss looks for a port-zero service only while there is one (a fwmark service's port 0 is no such port).
      this.#configFlag(CFG_F.any_port, [...after.services.values()].some((s) => s.port === 0 && !s.fwmark));
      if (before.fwmarkRules !== after.fwmarkRules) this.#syncFwmarkRules(after);
    });
  }

  /**
   * The trie's entries for the model's rules: the flag goes on after the
   * entries are in, and off before they go, so no packet is classified by
   * a half-written set. xvs_fwmark_rules is an LPM trie, whose lookup
   * answers the longest prefix of the key, not the key: what exists is
   * read by walking its keys.
   */
  #syncFwmarkRules(after: Model): void {
    const map = this.dp.fwmarkRules.raw;
    const want = compileFwmarkRules(after.fwmarkRules ?? [], map.maxEntries);
    const have = new Set([...map.keys()].map((k) => k.toString('hex')));
    const encoded = [...want.values()].map((e: FwmarkEntry) => [C.fwmarkKey.encode(e.key), C.fwmarkRules.encode(e.value)] as const);
    const keep = new Set(encoded.map(([k]) => k.toString('hex')));
    if (want.size === 0) this.#configFlag(CFG_F.fwmark, false);
    for (const [k, v] of encoded) this.#putExact(map, k, v, have.has(k.toString('hex')));
    for (const hex of have) if (!keep.has(hex)) this.#delExact(map, Buffer.from(hex, 'hex'));
    if (want.size > 0) this.#configFlag(CFG_F.fwmark, true);
  }

  #putExact(map: RawMap, key: Buffer, value: Buffer, exists: boolean): void {
    const old = exists ? map.lookup(key) : null;
    if (old?.equals(value)) return;
    this.#record(() => (old ? map.update(key, old) : map.delete(key)));
    map.update(key, value);
  }

  #delExact(map: RawMap, key: Buffer): void {
    const old = map.lookup(key);
    if (!old) return;
    this.#record(() => map.update(key, old));
    map.delete(key);
  }

  #configFlag(flag: number, on: boolean): void {
    const cur = this.dp.config.get(0);
    if (!cur) throw new XvsError('LIBBPF', 'xvs_config has no entry 0');
    const flags = on ? cur.flags | flag : cur.flags & ~flag;
    if (flags !== cur.flags) this.#put(this.dp.config.raw, u32(0), C.config.encode({ ...cur, flags }));
  }

  /** The service's local addresses as ids of xvs_laddrs (none: an empty set). */
  #putSvcLaddrs(s: ServiceModel | { id: number; laddrs?: undefined }, m: Model): void {
    const ids = (s.laddrs ?? []).map((a) => m.laddrIds?.get(a) ?? 0);
    const padded = [...ids, ...new Array<number>(C.SVC_LADDRS_MAX - ids.length).fill(0)];
    this.#put(this.dp.svcLaddrs.raw, u32(s.id), C.svcLaddrs.encode({ count: ids.length, ids: padded }));
  }

  /** Zeroes the statistics of these services and real servers (ipvsadm -Z). */
  zeroStats(svcIds: readonly number[], realIds: readonly number[]): void {
    this.atomically(() => {
      for (const id of svcIds) this.#zeroStats(this.dp.svcStats.raw, id);
      for (const id of realIds) this.#zeroStats(this.dp.realStats.raw, id);
    });
  }

  /** How the dataplane reaches real server `id` (see nexthop.ts). */
  writeNexthop(id: number, nh: C.Nexthop): void {
    this.atomically(() => this.#put(this.dp.nexthops.raw, u32(id), C.nexthop.encode(nh)));
  }

  /**
   * xvs_if_mtus: exactly these interfaces' MTUs (ifindex -> MTU); every
   * other entry 0 (unknown), so an interface no longer used or whose
   * ifindex went to another leaves no stale MTU behind. The whole array
   * (65,536 entries) is read once, for what pins of an earlier xvsd hold;
   * after that only the entries this writer has set are looked at, since a
   * refresh runs at every link event. Returns the ifindexes written.
   */
  writeIfMtus(want: ReadonlyMap<number, number>): number[] {
    const map = this.dp.ifMtus.raw;
    if (!this.#ifMtusSet) {
      const set = new Set<number>();
      for (const b of map.batches(4096)) {
        for (let j = 0; j < b.count; j++) if (b.values.readUInt32LE(j * map.valueBufSize) !== 0) set.add(b.keys.readUInt32LE(j * 4));
      }
      this.#ifMtusSet = set;
    }
    // Never shrinks: an undone write may have put an entry back.
    for (const i of want.keys()) this.#ifMtusSet.add(i);
    const off = [...this.#ifMtusSet].filter((i) => C.u32Codec.decode(map.lookup(u32(i))!) !== (want.get(i) ?? 0));
    this.atomically(() => {
      for (const i of off) this.#put(map, u32(i), u32(want.get(i) ?? 0));
    });
    return off;
  }

  writeConfig(patch: Partial<C.Config>): void {
    const cur = this.dp.config.get(0);
    if (!cur) throw new XvsError('LIBBPF', 'xvs_config has no entry 0');
    this.atomically(() => this.#put(this.dp.config.raw, u32(0), C.config.encode({ ...cur, ...patch })));
  }

  /** A new service: statistics from zero, the sequence from slot 0, no table left by an earlier owner of the id. */
  #openService(s: ServiceModel): void {
    this.#zeroStats(this.dp.svcStats.raw, s.id);
    this.#put(this.dp.schedPos, u32(s.id), Buffer.alloc(8));
    this.#putTable(s.id, null);
  }

  /** No new lookup finds the service, then its table and real servers go; their flows go on. */
  #closeService(s: ServiceModel): void {
    this.#del(this.dp.services.raw, C.svcKey.encode(svcKeyOf(s)));
    this.#putTable(s.id, null);
    for (const r of s.reals) this.#putReal(r.id, realEntryOf(s, r, true));
    this.#putSvcLaddrs({ id: s.id }, EMPTY_MODEL);
  }

  /**
   * A new inner map is filled first and swapped in with one outer-map write,
   * so the dataplane sees the old table or the new one, never a mix.
   * tbl_size is written before a shrink and after a growth, so a slot index
   * is always inside whichever table is live.
   */
  #installTable(s: ServiceModel, liveSize: number, table: Uint32Array): void {
    const key = C.svcKey.encode(svcKeyOf(s));
    const entry = C.svc.encode(svcEntryOf({ ...s, tableSize: table.length }));
    if (table.length === 0) {
      this.#put(this.dp.services.raw, key, entry);
      this.#putTable(s.id, null);
      return;
    }
    const inner = createArrayMap(`xvs_t${s.id}`, 4, table.length, BPF_F_INNER_MAP);
    try {
      // Host-order u32 keys and values, as the kernel copies them.
      const keys = Uint32Array.from({ length: table.length }, (_, i) => i);
      inner.updateBatchFlat(Buffer.from(keys.buffer), Buffer.from(table.buffer, table.byteOffset, table.byteLength), table.length);
      if (table.length < liveSize) {
        this.#put(this.dp.services.raw, key, entry);
        this.#putTable(s.id, inner);
      } else {
        this.#putTable(s.id, inner);
        this.#put(this.dp.services.raw, key, entry);
      }
    } finally {
      inner.close(); // the outer map holds its own reference
    }
  }

  /**
   * A real server's entry. xvs_nat_reals counts, per address, the entries
   * (deleted ones too: their flows go on) of NAT and FULLNAT real servers,
   * and xvs_config says whether there are any: the dataplane looks for
   * replies only then.
   */
  #putReal(id: number, e: C.Real): void {
    const key = u32(id);
    const raw = this.dp.reals.raw.lookup(key);
    const old = raw && !emptySlot(C.real, raw) ? C.real.decode(raw) : undefined;
    this.#put(this.dp.reals.raw, key, C.real.encode(e));
    const before = old !== undefined && TWO_WAY.has(old.fwd);
    const after = TWO_WAY.has(e.fwd);
    if (before && after && old.addr === e.addr) return;
    if (before) this.#countNatReal(old.addr, old.family, -1);
    if (after) this.#countNatReal(e.addr, e.family, 1);
  }

  #countNatReal(addr: string, family: number, delta: number): void {
    const map = this.dp.natReals.raw;
    const key = C.addrKey.encode({ addr, family });
    const was = map.lookup(key) ? C.u32Codec.decode(map.lookup(key)!) : 0;
    const n = was + delta;
    // The address's slot first when it arrives, last when it goes: the
    // dataplane looks for replies by the slot alone (xvs_maybe_reply).
    if (was === 0 && n > 0) this.#countSlot(addr, 1);
    if (n > 0) this.#put(map, key, u32(n));
    else this.#del(map, key);
    if (was > 0 && n <= 0) this.#countSlot(addr, -1);
    this.#configFlag(CFG_F.two_way, map.nextKey(null) !== null);
  }

  /** xvs_nat_real_slots: how many addresses of xvs_nat_reals fall in each slot. */
  #countSlot(addr: string, delta: number): void {
    const map = this.dp.natRealSlots.raw;
    const key = u32(natRealSlot(addr, map.maxEntries));
    const n = C.u32Codec.decode(map.lookup(key)!) + delta;
    this.#put(map, key, u32(Math.max(0, n)));
  }

  /**
   * Rewrites xvs_nat_real_slots from xvs_nat_reals where they differ: at
   * start, since pins made before the slots existed (or a crash between the
   * two writes) leave them out of step, and a reply whose slot says 0 would
   * go to the kernel untranslated.
   */
  syncNatRealSlots(): void {
    const slots = this.dp.natRealSlots.raw;
    const want = new Uint32Array(slots.maxEntries);
    for (const [k] of this.dp.natReals.entries()) want[natRealSlot(k.addr, slots.maxEntries)]! += 1;
    // One batch read of the array, then a write only where a slot differs.
    const off: number[] = [];
    for (const b of slots.batches(4096)) {
      for (let j = 0; j < b.count; j++) {
        const i = b.keys.readUInt32LE(j * 4);
        if (b.values.readUInt32LE(j * slots.valueBufSize) !== want[i]) off.push(i);
      }
    }
    if (off.length === 0) return;
    log.warn({ slots: off.length }, 'xvs_nat_real_slots was out of step with xvs_nat_reals: rewritten');
    this.atomically(() => {
      for (const i of off) this.#put(slots, u32(i), u32(want[i]!));
    });
  }

  #zeroStats(map: RawMap, id: number): void {
    this.#put(map, u32(id), Buffer.alloc(map.valueBufSize));
  }

  #record(step: () => void): void {
    this.#undo?.push(step);
  }

  #put(map: RawMap, key: Buffer, value: Buffer): void {
    const old = map.lookup(key);
    if (old?.equals(value)) return;
    this.#record(() => (old ? map.update(key, old) : map.delete(key)));
    map.update(key, value);
  }

  #del(map: RawMap, key: Buffer): void {
    const old = map.lookup(key);
    if (!old) return;
    this.#record(() => map.update(key, old));
    map.delete(key);
  }

  /** Points the service's slot of xvs_sched_tables at `inner`, or empties it. */
  #putTable(svcId: number, inner: RawMap | null): void {
    const outer = this.dp.schedTables;
    const key = u32(svcId);
    const oldId = outer.lookup(key);
    if (!oldId && !inner) return;
    const old = oldId ? mapFromId(C.u32Codec.decode(oldId)) : null;
    if (old) this.#held.push(old);
    this.#record(() => (old ? outer.update(key, u32(old.fd)) : outer.delete(key)));
    if (inner) outer.update(key, u32(inner.fd));
    else outer.delete(key);
  }
}
