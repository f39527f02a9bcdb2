import { rmSync } from 'node:fs';
import { BpfObject, type XdpMode } from '../loader/index.js';
import { PerCpuMap, RawMap, TypedMap } from '../maps/map.js';
import * as C from '../maps/codecs.js';
import { SetTable } from '../maps/set-table.js';
import { bpfObject } from '../paths.js';
import { XvsError } from '../errors.js';
import { logger } from '../log.js';
import { defaultTimeouts } from './timeouts.js';
import { testRun } from '../loader/testrun.js';
import type { DirectorInterface } from './interfaces.js';
import { attachPorts, detachPorts, detachStale, type Port } from './ports.js';
import { adoptHeadInSetPins, adoptNewFlowPins, copyNewestFirst, copyTouchedSince, openHeadInSetPins, openResizedPins, repin, type CopyResult, type HeadInSetPin, type StalePin } from './conn-migrate.js';

/** The shortest frame BPF_PROG_TEST_RUN takes for XDP. */
const ETH_ZLEN = 60;
/** CONFIG_HZ choices of Linux; a measurement within 5 % of one is that one. */
const KNOWN_HZ = [100, 250, 300, 1000] as const;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Jiffies per second: counted over ~200 ms between two tick edges, so the
 * count is exact and the error is how late each edge is seen (under 1 ms).
 */
export function measureHz(jiffies: () => number): number {
  const edge = (): { j: number; t: bigint } => {
    const j0 = jiffies();
    for (let i = 0; i < 100; i++) {
      const j = jiffies();
      if (j !== j0) return { j, t: process.hrtime.bigint() };
      sleepSync(1);
    }
    throw new XvsError('SYSTEM', 'the kernel clock (jiffies) does not advance');
  };
  const a = edge();
  sleepSync(200);
  const b = edge();
  const hz = ((b.j - a.j) * 1e9) / Number(b.t - a.t);
  return KNOWN_HZ.find((k) => Math.abs(hz - k) / k < 0.05) ?? Math.round(hz);
}

const log = logger('dataplane');

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/xvs';
export const DEFAULT_CONN_TABLE_SIZE = 1 << 20;
/**
 * New flows wait in xvs_new_flows (and NAT's reply sides in
 * xvs_new_replies) for a round trip, not for their lifetime, so the tables
 * are small and of one size whatever --conn-table-size says (a restart that
 * resizes the connection tables keeps the handshakes under way): 8,192 sets
 * of 8, 65,536 flows, 5.5 MiB and 8.5 MiB (the sets' heads, 512 KiB of
 * each, in xvs_new_flow_heads and xvs_new_reply_heads). A flood of 100,000
 * SYNs a second then leaves a handshake's set 8 newer arrivals in 0.65 s on
 * average.
 */
export const DEFAULT_NEW_FLOW_SETS = 8192;

/**
 * The maps the director pins: every map its object declares that can be
 * reused (the loader's default), read from the object so a new map can never
 * be left unpinned.
 */
export function directorMaps(objectPath = bpfObject('xvs')): string[] {
  const obj = BpfObject.open({ objectPath });
  try {
    return obj.pinnableMapNames();
  } finally {
    obj.close();
  }
}

/** Removes the director's pins: the next xvsd starts with empty maps. Returns how many names were cleared. */
export function unpinDirectorMaps(pinDir: string): number {
  const names = directorMaps();
  for (const m of names) rmSync(`${pinDir}/${m}`, { force: true });
  return names.length;
}

export interface DataplaneOptions {
  /** The interfaces to attach to (see attach()); omitted: load only (packet tests, benchmarks). */
  interfaces?: readonly DirectorInterface[];
  xdpMode?: XdpMode;
  /** Omitted: no pinning (tests); maps die with the object. */
  pinDir?: string;
  connTableSize?: number;
  /** Sets of xvs_new_flows and xvs_new_replies, a power of two (default DEFAULT_NEW_FLOW_SETS); tests that flood them take fewer. Not for pinned maps: a pin of another size is not reused. */
  newFlowSets?: number;
  objectPath?: string;
}

/** The loaded director program and typed views of its maps. */
export class Dataplane {
  readonly services: TypedMap<C.SvcKey, C.Svc>;
  readonly reals: TypedMap<number, C.Real>;
  readonly schedTables: RawMap;
  readonly schedPos: RawMap;
  readonly conns: TypedMap<C.ConnKey, C.Conn>;
  readonly persist: TypedMap<C.PersistKey, C.Persist>;
  readonly svcStats: PerCpuMap<number, C.Stats>;
  readonly realStats: PerCpuMap<number, C.Stats>;
  readonly counters: PerCpuMap<number, number>;
  readonly config: TypedMap<number, C.Config>;
  readonly progFd: number;
  readonly clockFd: number;
  readonly newFlows: SetTable<C.Conn>;
  /** xvs_flow_cache_ctl: the flow copies' generation and the masks of xvs_new_flows and xvs_new_replies. */
  readonly flowCtl: TypedMap<number, C.FlowCtl>;
  readonly nexthops: TypedMap<number, C.Nexthop>;
  readonly nats: TypedMap<C.ConnKey, C.Nat>;
  /** The reply sides of new NAT and FULLNAT flows, in sets as newFlows. */
  readonly newReplies: SetTable<C.Nat>;
  readonly natReals: TypedMap<C.AddrKey, number>;
  /** xvs_nat_real_slots: what the dataplane reads of natReals, by slot (nat.h). */
  readonly natRealSlots: TypedMap<number, number>;
  /** xvs_if_mtus: the MTU of each interface the director uses, by ifindex (0: unknown). */
  readonly ifMtus: TypedMap<number, number>;
  readonly laddrs: TypedMap<number, C.Laddr>;
  readonly svcLaddrs: TypedMap<number, C.SvcLaddrs>;
  /** Fwmark rules by destination prefix (an LPM trie: a lookup finds the longest prefix, not the key). */
  readonly fwmarkRules: TypedMap<C.FwmarkKey, C.FwmarkRules>;
  /** The devmap of the interfaces the director redirects to; never pinned, filled by attach(). */
  readonly txPorts: TypedMap<number, C.DevmapVal>;
  /** Jiffies per second of this kernel (xvs_config.hz). */
  hz = 0;
  /** The interfaces the program is attached to, by attach(). */
  ports: Port[] = [];

  private constructor(readonly obj: BpfObject, readonly connTableSize: number) {
    this.services = new TypedMap(obj.map('xvs_services'), C.svcKey, C.svc);
    this.reals = new TypedMap(obj.map('xvs_reals'), C.u32Codec, C.real);
    this.schedTables = obj.map('xvs_sched_tables');
    this.schedPos = obj.map('xvs_sched_pos');
    this.conns = new TypedMap(obj.map('xvs_conns'), C.connKey, C.conn);
    this.persist = new TypedMap(obj.map('xvs_persist'), C.persistKey, C.persist);
    this.svcStats = new PerCpuMap(obj.map('xvs_svc_stats'), C.u32Codec, C.stats);
    this.realStats = new PerCpuMap(obj.map('xvs_real_stats'), C.u32Codec, C.stats);
    this.counters = new PerCpuMap(obj.map('xvs_counters'), C.u32Codec, C.u64Codec);
    this.config = new TypedMap(obj.map('xvs_config'), C.u32Codec, C.config);
    this.progFd = obj.program('xvs_xdp').fd;
    this.clockFd = obj.program('xvs_clock').fd;
    this.newFlows = new SetTable(obj.map('xvs_new_flows'), obj.map('xvs_new_flow_heads'), C.conn);
    this.flowCtl = new TypedMap(obj.map('xvs_flow_cache_ctl'), C.u32Codec, C.flowCtl);
    this.nexthops = new TypedMap(obj.map('xvs_nexthops'), C.u32Codec, C.nexthop);
    this.nats = new TypedMap(obj.map('xvs_nats'), C.connKey, C.nat);
    this.newReplies = new SetTable(obj.map('xvs_new_replies'), obj.map('xvs_new_reply_heads'), C.nat);
    this.natReals = new TypedMap(obj.map('xvs_nat_reals'), C.addrKey, C.u32Codec);
    this.natRealSlots = new TypedMap(obj.map('xvs_nat_real_slots'), C.u32Codec, C.u32Codec);
    this.ifMtus = new TypedMap(obj.map('xvs_if_mtus'), C.u32Codec, C.u32Codec);
    this.laddrs = new TypedMap(obj.map('xvs_laddrs'), C.u32Codec, C.laddr);
    this.svcLaddrs = new TypedMap(obj.map('xvs_svc_laddrs'), C.u32Codec, C.svcLaddrs);
    this.fwmarkRules = new TypedMap(obj.map('xvs_fwmark_rules'), C.fwmarkKey, C.fwmarkRules);
    this.txPorts = new TypedMap(obj.map('xvs_tx_ports'), C.u32Codec, C.devmapVal);
  }

  /** The dataplane's clock now: bpf_jiffies64(), as connection entries hold it. */
  jiffies(): number {
    const r = testRun(this.clockFd, { data: Buffer.alloc(ETH_ZLEN) });
    return Number(r.data.readBigUInt64LE(0));
  }

  static load(o: DataplaneOptions = {}): Dataplane {
    const connTableSize = o.connTableSize ?? DEFAULT_CONN_TABLE_SIZE;
    const objectPath = o.objectPath ?? bpfObject('xvs');
    const newFlowSets = o.newFlowSets ?? DEFAULT_NEW_FLOW_SETS;
    if (newFlowSets < 1 || (newFlowSets & (newFlowSets - 1)) !== 0) throw new XvsError('BAD_ARGUMENT', `newFlowSets: ${newFlowSets} is not a power of two`);
    // NAT's reply sides mirror the flows they answer: one per flow.
    const sizes = {
      xvs_conns: connTableSize,
      xvs_persist: Math.max(1024, connTableSize >>> 2),
      xvs_nats: connTableSize,
    };
    // Flow tables pinned at another size are loaded fresh and filled from the old pins (conn-migrate.ts).
    const stale = o.pinDir ? openResizedPins(o.pinDir, sizes) : [];
    // And tables in sets pinned with each set's head inside it (conn-migrate.ts).
    let relaid: HeadInSetPin[] = [];
    try {
      relaid = o.pinDir ? openHeadInSetPins(o.pinDir) : [];
      const fresh = new Set<string>([...stale, ...relaid].map((s) => s.name));
      const obj = BpfObject.open({
        objectPath,
        mapSizes: { ...sizes, xvs_new_flows: newFlowSets, xvs_new_flow_heads: newFlowSets, xvs_new_replies: newFlowSets, xvs_new_reply_heads: newFlowSets },
        perCpuSlices: ['xvs_flow_cache', 'xvs_reply_cache'],
        ...(o.pinDir ? { pinDir: o.pinDir, ...(fresh.size > 0 ? { pinMaps: directorMaps(objectPath).filter((n) => !fresh.has(n)) } : {}) } : {}),
      });
      try {
        obj.load();
      } catch (e) {
        obj.close();
        throw e;
      }
      const dp = new Dataplane(obj, connTableSize);
      dp.#initConfig();
      const adopted = o.pinDir ? adoptNewFlowPins(o.pinDir, dp.newFlows, dp.newReplies) : 0;
      if (adopted > 0) log.info({ entries: adopted }, 'new flows moved from the LRU hashes of an earlier build (xvs_syn_conns, xvs_nat_syn) into xvs_new_flows and xvs_new_replies');
      if (relaid.length > 0) {
        const moved = adoptHeadInSetPins(relaid, { xvs_new_flows: dp.newFlows, xvs_new_replies: dp.newReplies });
        log.info({ entries: moved, maps: relaid.map((p) => p.name) }, 'new flows moved from the sets of an earlier build (each set\'s head inside it) into the sets and their heads\' own maps');
      }
      const since = stale.length > 0 ? dp.jiffies() : 0;
      const copied = stale.map((s) => copyNewestFirst(s.name, s.old, obj.map(s.name)));
      if (o.interfaces) {
        try {
          dp.attach(o.interfaces, o.xdpMode ?? 'native');
        } catch (e) {
          dp.detach(); // what attach() reached before it failed (its own failures undo themselves)
          dp.close();
          throw e;
        }
      }
      if (stale.length > 0) dp.#finishResize(stale, copied, since);
      return dp;
    } finally {
      for (const s of [...stale, ...relaid]) s.old.close();
    }
  }

  /**
   * After the attach, the flows the old program created or touched during
   * the copy join the new tables; then the new tables take the pins, and
   * one line says what was kept.
   */
  #finishResize(stale: StalePin[], copied: CopyResult[], since: number): void {
    const maps: Record<string, { from: number; to: number; entries: number; kept: number; late: number }> = {};
    let kept = 0;
    let dropped = 0;
    stale.forEach((s, i) => {
      const to = this.obj.map(s.name);
      const late = copyTouchedSince(s.name, s.old, to, since);
      repin(s, to);
      const c = copied[i]!;
      maps[s.name] = { from: s.old.maxEntries, to: s.want, entries: c.entries, kept: c.kept, late };
      kept += c.kept + late;
      dropped += Math.max(0, c.entries - c.kept);
    });
    const line = `flow tables resized: ${kept} entries kept, ${dropped} did not fit`;
    if (dropped > 0) log.warn({ maps }, line);
    else log.info({ maps }, line);
  }

  /**
   * Attaches the program to every interface (all or nothing) and enters each
   * in xvs_tx_ports, then detaches it from interfaces a previous xvsd on the
   * same pinned maps ran on and this list leaves out. Returns their names.
   */
  attach(ifaces: readonly DirectorInterface[], mode: XdpMode): string[] {
    this.ports = attachPorts(this.progFd, this.txPorts, ifaces, mode);
    for (const p of this.ports) log.info({ interface: p.name, role: p.role, mode: p.mode }, 'dataplane attached');
    // xvs_config: a pin every program of this director shares, never resized (unlike the flow tables).
    const stale = detachStale(this.config.raw.kernelId(), ifaces);
    if (stale.length) log.info({ interfaces: stale }, 'detached from interfaces no longer given');
    return stale;
  }

  /**
   * A fresh config (not one reused from a pin) gets the kernel's HZ and
   * IPVS's timeouts: the dataplane knows no defaults.
   */
  #initConfig(): void {
    // Never pinned: written at every load, before any packet.
    this.flowCtl.set(0, { cache_gen: 0, new_flow_mask: this.newFlows.mask, new_reply_mask: this.newReplies.mask });
    const cur = this.config.get(0);
    if (cur && cur.hz !== 0 && cur.timeout.some((t) => t !== 0)) {
      this.hz = cur.hz;
      return;
    }
    this.hz = measureHz(() => this.jiffies());
    log.debug({ hz: this.hz }, 'kernel HZ measured');
    this.config.set(0, {
      hz: this.hz,
      flags: cur?.flags ?? 0,
      timeout: defaultTimeouts(),
    });
  }

  detach(): void {
    detachPorts(this.ports);
    this.ports = [];
  }

  close(): void {
    this.obj.close();
  }
}
