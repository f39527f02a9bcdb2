import { rmSync } from 'node:fs';
import { BpfObject, attachXdp, detachXdp, ifIndex } from '../loader/index.js';
import { PerCpuMap, RawMap, TypedMap } from '../maps/map.js';
import * as C from '../maps/codecs.js';
import { bpfObject } from '../paths.js';
import { logger } from '../log.js';
import { IPVS_TIMEOUTS } from './timeouts.js';

const log = logger('dataplane');

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/xvs';
export const DEFAULT_CONN_TABLE_SIZE = 1 << 20;

/**
 * The maps the director pins: every map its object declares (the loader's
 * default), read from the object so a new map can never be left unpinned.
 */
export function directorMaps(objectPath = bpfObject('xvs')): string[] {
  const obj = BpfObject.open({ objectPath });
  try {
    return obj.declaredMapNames();
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
  /** Omitted: load only (packet tests, benchmarks). */
  interface?: string;
  xdpMode?: 'native' | 'generic';
  /** Omitted: no pinning (tests); maps die with the object. */
  pinDir?: string;
  connTableSize?: number;
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
  ifindex = 0;
  attachedMode: 'native' | 'generic' | undefined;

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
  }

  static load(o: DataplaneOptions = {}): Dataplane {
    const connTableSize = o.connTableSize ?? DEFAULT_CONN_TABLE_SIZE;
    const obj = BpfObject.open({
      objectPath: o.objectPath ?? bpfObject('xvs'),
      mapSizes: { xvs_conns: connTableSize, xvs_persist: Math.max(1024, connTableSize >>> 2) },
      ...(o.pinDir ? { pinDir: o.pinDir } : {}),
    });
    try {
      obj.load();
    } catch (e) {
      obj.close();
      throw e;
    }
    const dp = new Dataplane(obj, connTableSize);
    dp.#initConfig();
    if (o.interface) {
      dp.ifindex = ifIndex(o.interface);
      dp.attachedMode = attachXdp(dp.ifindex, dp.progFd, o.xdpMode ?? 'native');
      log.info({ interface: o.interface, mode: dp.attachedMode, pinDir: o.pinDir, connTableSize }, 'dataplane attached');
    }
    return dp;
  }

  /** A fresh config (not one reused from a pin) gets IPVS's timeouts: the dataplane knows no defaults. */
  #initConfig(): void {
    const cur = this.config.get(0);
    if (cur && cur.timeout_tcp !== 0) return;
    this.config.set(0, {
      tun_saddr: cur?.tun_saddr ?? '0.0.0.0',
      flags: cur?.flags ?? 0,
      timeout_tcp: IPVS_TIMEOUTS.tcp,
      timeout_tcpfin: IPVS_TIMEOUTS.tcpfin,
      timeout_udp: IPVS_TIMEOUTS.udp,
      timeout_synrecv: IPVS_TIMEOUTS.synrecv,
      timeout_close: IPVS_TIMEOUTS.close,
    });
  }

  detach(): void {
    if (this.ifindex) detachXdp(this.ifindex, this.attachedMode);
    this.ifindex = 0;
  }

  close(): void {
    this.obj.close();
  }
}
