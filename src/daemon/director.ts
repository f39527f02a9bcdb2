import { XvsError } from '../errors.js';
import { logger } from '../log.js';
import type { ListResult, Proto, RealSpec, RealView, Request, ServiceKey, ServiceSpec, ServiceView, StatsView, Timeouts } from '../control/protocol.js';
import { COUNTERS, XVS_CNT_MAX } from '../maps/counters.js';
import * as C from '../maps/codecs.js';
import { modeByCode, MODES, validateReal, type ModeName } from '../modes/index.js';
import { LOOKUP_CODES, schedulerByCode, schedulerByName, type Scheduler } from '../schedulers/registry.js';
import { checkIp, familyOf } from './addr.js';
import { countConns, DEFAULT_TIMEOUTS, type ConnCensus } from './conn-count.js';
import { slotOf } from '../schedulers/hash.js';
import { readTable } from './tables.js';
import type { Dataplane } from './dataplane.js';
import { ensureNeighbour } from './neigh.js';
import { resolveNexthop } from './nexthop.js';
import { netmaskString, nextOverload, parseNetmask } from './overload.js';
import { installTable } from './tables.js';

const log = logger('director');

const MAX_SERVICES = 1024;
const MAX_REALS = 16384;
const SVC_F_PERSISTENT = 1;
const REAL_F_REMOVED = 1;
const REAL_F_OVERLOAD = 2;
const REAL_FAMILY_OFFSET = 18;
const PROTO_NUM = { tcp: 6, udp: 17 } as const;
const ZERO_STATS: C.Stats = { conns: 0, inpkts: 0, inbytes: 0, outpkts: 0, outbytes: 0 };
/** Picks planned per tick for dynamic schedulers: twice the last tick's arrivals, within these bounds. */
const MIN_PICKS = 64;
const MAX_PICKS = 65536;

interface RealState {
  id: number; gen: number; addr: string; port: number; fwd: ModeName; weight: number;
  uthreshold: number; lthreshold: number; overloaded: boolean;
  /** xvs_real_stats conns at the last publish: arrivals since size how a planned pick counts. */
  lastConns: number;
}
interface ServiceState {
  key: C.SvcKey; entry: C.Svc; proto: Proto; addr: string; port: number; sched: Scheduler; reals: RealState[];
  /** svc stats conns at the last tick: arrivals per tick size the next plan. */
  lastConns: number;
  /** lblc/lblcr after a restart: the table the dataplane holds. */
  previous?: Uint32Array;
}

export interface DirectorOptions {
  /** Keep managed neighbour entries for real servers (off in packet tests). */
  neighbours?: boolean;
  tunnelSource?: string;
  /** Maglev table size (a prime). */
  mhTableSize?: number;
}

const keyName = (k: ServiceKey) => `${k.proto} ${k.addr}:${k.port}`;

/**
 * The control plane's model of services and real servers, and the only
 * writer of the dataplane's maps. The maps are the truth: on start the model
 * is read back from them, so a restarted xvsd carries on with the running
 * dataplane and its flows.
 */
export class Director {
  readonly #services = new Map<string, ServiceState>();
  #realCursor = 0;
  #census: ConnCensus = { reals: new Map(), destinations: new Map() };

  constructor(readonly dp: Dataplane, readonly opts: DirectorOptions = {}) {
    this.#restore();
    if (opts.tunnelSource !== undefined) checkIp(opts.tunnelSource, 'tunnel source');
  }

  async handle(req: Request): Promise<unknown> {
    switch (req.op) {
      case 'add-service': return this.addService(req.svc);
      case 'edit-service': return this.editService(req.svc);
      case 'del-service': return this.delService(req.key);
      case 'add-real': return this.addReal(req.key, req.real);
      case 'edit-real': return this.editReal(req.key, req.real);
      case 'del-real': return this.delReal(req.key, req.real);
      case 'clear': return this.clear();
      case 'zero': return this.zero(req.key);
      case 'list': return this.list(req.key);
      case 'status': return this.status();
      case 'set-timeouts': return this.setTimeouts(req.timeouts);
      case 'get-timeouts': return this.timeouts();
    }
  }

  addService(spec: ServiceSpec): void {
    const addr = checkIp(spec.addr, 'virtual service');
    const name = keyName(spec);
    if (this.#services.has(name)) throw new XvsError('SERVICE_EXISTS', `service ${name} already exists`);
    const sched = schedulerByName(spec.scheduler);
    const persist = persistence(spec);
    const used = new Set([...this.#services.values()].map((s) => s.entry.id));
    let id = 0;
    while (used.has(id)) id++;
    if (id >= MAX_SERVICES) throw new XvsError('CAPACITY', `at most ${MAX_SERVICES} virtual services`);
    const key: C.SvcKey = { addr, port: spec.port, proto: PROTO_NUM[spec.proto], family: familyOf(addr) };
    const entry: C.Svc = { id, sched: sched.code, lookup: LOOKUP_CODES[sched.lookup], tbl_size: 0, ...persist };
    this.dp.svcStats.setAll(id, ZERO_STATS);
    this.dp.schedPos.update(C.u32Codec.encode(id), Buffer.alloc(8));
    this.dp.schedTables.delete(C.u32Codec.encode(id));
    this.dp.services.set(key, entry);
    this.#services.set(name, { key, entry, proto: spec.proto, addr, port: spec.port, sched, reals: [], lastConns: 0 });
    log.info({ service: name, scheduler: sched.name, persistent: spec.persistent }, 'service added');
  }

  editService(spec: ServiceSpec): void {
    const s = this.#service(spec);
    const sched = schedulerByName(spec.scheduler);
    const persist = persistence(spec);
    s.entry = { ...s.entry, sched: sched.code, lookup: LOOKUP_CODES[sched.lookup], ...persist };
    s.sched = sched;
    this.#publish(s);
    log.info({ service: keyName(spec), scheduler: sched.name, persistent: spec.persistent }, 'service edited');
  }

  delService(k: ServiceKey): void {
    const s = this.#service(k);
    this.#drop(s);
    log.info({ service: keyName(k) }, 'service deleted');
  }

  async addReal(k: ServiceKey, spec: RealSpec): Promise<void> {
    const s = this.#service(k);
    const addr = checkIp(spec.addr, 'real server');
    const port = validateReal(spec.fwd, s.port, spec.port);
    // DR leaves the packet as it is: only a real server of the VIP's family can take it.
    if (spec.fwd === 'dr' && familyOf(addr) !== s.key.family) {
      throw new XvsError('BAD_ADDRESS', `DR real server ${addr} is not of the family of ${s.addr}`, { hint: 'TUN (-i) carries either family in either' });
    }
    checkRealNumbers(spec);
    if (s.reals.some((r) => r.addr === addr && r.port === port)) {
      throw new XvsError('REAL_EXISTS', `real server ${addr}:${port} already in service ${keyName(k)}`);
    }
    const id = this.#allocRealId();
    const prev = this.#rawReal(id);
    const real: RealState = {
      id, gen: ((prev?.gen ?? 0) + 1) >>> 0, addr, port, fwd: spec.fwd, weight: spec.weight,
      uthreshold: spec.uthreshold ?? 0, lthreshold: spec.lthreshold ?? 0, overloaded: false, lastConns: 0,
    };
    if (this.opts.neighbours !== false) await ensureNeighbour(addr);
    this.dp.nexthops.set(id, await resolveNexthop(addr, this.opts.tunnelSource));
    this.dp.realStats.setAll(id, ZERO_STATS);
    this.#writeReal(s, real, 0);
    s.reals.push(real);
    this.#publish(s);
    log.info({ service: keyName(k), real: `${addr}:${port}`, fwd: spec.fwd, weight: spec.weight, id }, 'real server added');
  }

  editReal(k: ServiceKey, spec: RealSpec): void {
    const s = this.#service(k);
    const r = this.#real(s, spec);
    validateReal(spec.fwd, s.port, r.port);
    checkRealNumbers(spec);
    r.fwd = spec.fwd;
    r.weight = spec.weight;
    r.uthreshold = spec.uthreshold ?? 0;
    r.lthreshold = spec.lthreshold ?? 0;
    r.overloaded = nextOverload(r.overloaded, this.#total(r), r.uthreshold, r.lthreshold);
    this.#writeReal(s, r, 0);
    this.#publish(s);
    log.info({ service: keyName(k), real: `${r.addr}:${r.port}`, fwd: r.fwd, weight: r.weight }, 'real server edited');
  }

  delReal(k: ServiceKey, spec: { addr: string; port: number }): void {
    const s = this.#service(k);
    const r = this.#real(s, spec);
    s.reals = s.reals.filter((x) => x !== r);
    this.#publish(s);
    // Flows already on it go on until they end, as IPVS does by default.
    this.#writeReal(s, r, REAL_F_REMOVED);
    log.info({ service: keyName(k), real: `${r.addr}:${r.port}` }, 'real server deleted');
  }

  clear(): void {
    for (const s of [...this.#services.values()]) this.#drop(s);
    log.info('all services cleared');
  }

  zero(k?: ServiceKey): void {
    const targets = k ? [this.#service(k)] : [...this.#services.values()];
    for (const s of targets) {
      this.dp.svcStats.setAll(s.entry.id, ZERO_STATS);
      s.lastConns = 0;
      for (const r of s.reals) this.dp.realStats.setAll(r.id, ZERO_STATS);
    }
  }

  setTimeouts(t: Timeouts): void {
    for (const [name, v] of Object.entries(t)) {
      if (!Number.isInteger(v) || v < 0 || v > 2 ** 31 / 1000) throw new XvsError('BAD_ARGUMENT', `timeout ${name} ${v} is not a number of seconds`);
    }
    const cur = this.timeouts();
    this.#writeConfig({ timeout_tcp: t.tcp || cur.tcp, timeout_tcpfin: t.tcpfin || cur.tcpfin, timeout_udp: t.udp || cur.udp });
    log.info({ timeouts: this.timeouts() }, 'timeouts set');
  }

  timeouts(): Timeouts {
    const c = this.dp.config.get(0);
    return {
      tcp: c?.timeout_tcp || DEFAULT_TIMEOUTS.tcp,
      tcpfin: c?.timeout_tcpfin || DEFAULT_TIMEOUTS.tcpfin,
      udp: c?.timeout_udp || DEFAULT_TIMEOUTS.udp,
    };
  }

  list(k?: ServiceKey): ListResult {
    const targets = k ? [this.#service(k)] : [...this.#services.values()].sort((a, b) => a.entry.id - b.entry.id);
    const counts = this.#countAll().reals;
    const services: ServiceView[] = targets.map((s) => ({
      proto: s.proto,
      addr: s.addr,
      port: s.port,
      scheduler: s.sched.name,
      ...(s.entry.flags & SVC_F_PERSISTENT ? { persistent: s.entry.persist_timeout, netmask: netmaskString(s.entry.persist_mask.readUInt32BE(0)) } : {}),
      stats: statsView(this.dp.svcStats.sum(s.entry.id)),
      reals: s.reals.map((r): RealView => ({
        addr: r.addr,
        port: r.port,
        fwd: r.fwd,
        weight: r.weight,
        uthreshold: r.uthreshold,
        lthreshold: r.lthreshold,
        activeConns: counts.get(r.id)?.active ?? 0,
        inactConns: counts.get(r.id)?.inactive ?? 0,
        stats: statsView(this.dp.realStats.sum(r.id)),
      })),
    }));
    return { connTableSize: this.dp.connTableSize, services, counters: this.counters(), timeouts: this.timeouts() };
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, idx] of Object.entries(COUNTERS)) {
      if (idx < XVS_CNT_MAX) out[name] = this.dp.counters.sum(idx) ?? 0;
    }
    return out;
  }

  status(): { services: number; reals: number; connTableSize: number; counters: Record<string, number> } {
    let reals = 0;
    for (const s of this.#services.values()) reals += s.reals.length;
    return { services: this.#services.size, reals, connTableSize: this.dp.connTableSize, counters: this.counters() };
  }

  /** Whether tick() has work: a dynamic scheduler or a threshold somewhere. */
  needsTick(): boolean {
    for (const s of this.#services.values()) {
      if (s.sched.kind === 'dynamic' || s.reals.some((r) => r.uthreshold > 0)) return true;
    }
    return false;
  }

  /**
   * One control-plane tick: count connections from the table, move real
   * servers in and out of overload, and re-plan dynamic schedulers so the
   * next picks follow the exact IPVS algorithm from the current counts.
   */
  tick(): void {
    if (!this.needsTick()) return;
    this.#census = this.#countAll();
    for (const s of this.#services.values()) {
      let changed = false;
      for (const r of s.reals) {
        const o = nextOverload(r.overloaded, this.#total(r), r.uthreshold, r.lthreshold);
        if (o !== r.overloaded) {
          r.overloaded = o;
          this.#writeReal(s, r, 0);
          changed = true;
          log.info({ service: keyName(s), real: `${r.addr}:${r.port}`, overloaded: o }, 'threshold crossed');
        }
      }
      if (changed || s.sched.kind === 'dynamic') this.#publish(s);
    }
  }

  #total(r: RealState): number {
    const c = this.#census.reals.get(r.id);
    return c ? c.active + c.inactive : 0;
  }

  #countAll(): ConnCensus {
    const gens = new Map<number, number>();
    for (const s of this.#services.values()) for (const r of s.reals) gens.set(r.id, r.gen);
    return countConns(this.dp, gens, this.timeouts());
  }

  #service(k: ServiceKey): ServiceState {
    const s = this.#services.get(keyName(k));
    if (!s) throw new XvsError('NO_SERVICE', `no service ${keyName(k)}`);
    return s;
  }

  #real(s: ServiceState, spec: { addr: string; port: number }): RealState {
    const port = spec.port === 0 ? s.port : spec.port;
    const r = s.reals.find((x) => x.addr === spec.addr && x.port === port);
    if (!r) throw new XvsError('NO_REAL', `no real server ${spec.addr}:${port} in service ${keyName(s)}`);
    return r;
  }

  /** Builds and swaps in the service's table; dynamic plans restart at slot 0. */
  #publish(s: ServiceState): void {
    const conns = this.dp.svcStats.sum(s.entry.id)?.conns ?? 0;
    const arrivals = Math.max(0, conns - s.lastConns);
    s.lastConns = conns;
    const reals = s.reals.map((r) => {
      const c = this.#census.reals.get(r.id);
      const rc = this.dp.realStats.sum(r.id)?.conns ?? 0;
      const arrived = Math.max(0, rc - r.lastConns);
      r.lastConns = rc;
      return {
        id: r.id, weight: r.weight, addr: r.addr, port: r.port,
        active: c?.active ?? 0, inactive: c?.inactive ?? 0, overloaded: r.overloaded, arrivals: arrived,
      };
    });
    const locality = s.sched.name === 'lblc' || s.sched.name === 'lblcr';
    const table = s.sched.build({
      reals,
      picks: Math.min(MAX_PICKS, Math.max(MIN_PICKS, 2 * arrivals)),
      ...(s.sched.name === 'mh' && this.opts.mhTableSize ? { tableSize: this.opts.mhTableSize } : {}),
      ...(locality && s.previous ? { previous: s.previous } : {}),
      ...(locality ? { flows: this.#flowsPerSlot(s) } : {}),
    });
    s.previous = undefined;
    s.entry = installTable(this.dp, s.key, s.entry, table);
    if (s.sched.kind === 'dynamic') this.dp.schedPos.update(C.u32Codec.encode(s.entry.id), Buffer.alloc(8));
  }

  /** Live flows per slot of the service's current table, by destination hash, as the dataplane indexes it. */
  #flowsPerSlot(s: ServiceState): Uint32Array {
    const len = s.entry.tbl_size;
    const flows = new Uint32Array(len);
    if (len === 0) return flows;
    for (const [daddr, n] of this.#census.destinations.get(s.entry.id) ?? []) flows[slotOf(daddr, len)]! += n;
    return flows;
  }

  #drop(s: ServiceState): void {
    this.dp.services.delete(s.key);
    this.dp.schedTables.delete(C.u32Codec.encode(s.entry.id));
    for (const r of s.reals) this.#writeReal(s, r, REAL_F_REMOVED);
    this.#services.delete(keyName(s));
  }

  #writeReal(s: ServiceState, r: RealState, flags: number): void {
    this.dp.reals.set(r.id, {
      addr: r.addr, port: r.port, family: familyOf(r.addr), fwd: MODES[r.fwd].code, weight: r.weight,
      flags: flags | (r.overloaded ? REAL_F_OVERLOAD : 0), svc_id: s.entry.id, gen: r.gen,
      u_threshold: r.uthreshold, l_threshold: r.lthreshold,
    });
  }

  #writeConfig(patch: Partial<C.Config>): void {
    const cur = this.dp.config.get(0);
    if (!cur) throw new XvsError('LIBBPF', 'xvs_config has no entry 0');
    this.dp.config.set(0, { ...cur, ...patch });
  }

  /** The stored real entry, or undefined for a slot never used. */
  #rawReal(id: number): C.Real | undefined {
    const b = this.dp.reals.raw.lookup(C.u32Codec.encode(id));
    return b && b[REAL_FAMILY_OFFSET] !== 0 ? C.real.decode(b) : undefined;
  }

  /** Next-fit, so a freed slot (and its generation) is reused as late as possible. */
  #allocRealId(): number {
    const live = new Set<number>();
    for (const s of this.#services.values()) for (const r of s.reals) live.add(r.id);
    for (let i = 0; i < MAX_REALS; i++) {
      const id = (this.#realCursor + i) % MAX_REALS;
      if (!live.has(id)) {
        this.#realCursor = (id + 1) % MAX_REALS;
        return id;
      }
    }
    throw new XvsError('CAPACITY', `at most ${MAX_REALS} real servers`);
  }

  #restore(): void {
    const byId = new Map<number, ServiceState>();
    for (const [key, entry] of this.dp.services.entries()) {
      const info = schedulerByCode(entry.sched);
      if (!info) {
        log.warn({ key, sched: entry.sched }, 'pinned service has an unknown scheduler; left alone');
        continue;
      }
      const sched = schedulerByName(info.name);
      const proto: Proto = key.proto === PROTO_NUM.udp ? 'udp' : 'tcp';
      const s: ServiceState = { key, entry, proto, addr: key.addr, port: key.port, sched, reals: [], lastConns: this.dp.svcStats.sum(entry.id)?.conns ?? 0 };
      if (info.name === 'lblc' || info.name === 'lblcr') s.previous = readTable(this.dp, entry.id);
      byId.set(entry.id, s);
      this.#services.set(keyName(s), s);
    }
    if (byId.size === 0) return;
    const { keys, values } = this.dp.reals.raw.lookupBatch(4096);
    let maxId = -1;
    values.forEach((vb, i) => {
      if (vb[REAL_FAMILY_OFFSET] === 0) return;
      const id = C.u32Codec.decode(keys[i]!);
      const r = C.real.decode(vb);
      const s = byId.get(r.svc_id);
      maxId = Math.max(maxId, id);
      if (!s || r.flags & REAL_F_REMOVED) return;
      s.reals.push({
        id, gen: r.gen, addr: r.addr, port: r.port, fwd: modeByCode(r.fwd), weight: r.weight,
        uthreshold: r.u_threshold, lthreshold: r.l_threshold, overloaded: (r.flags & REAL_F_OVERLOAD) !== 0,
        lastConns: this.dp.realStats.sum(id)?.conns ?? 0,
      });
    });
    this.#realCursor = (maxId + 1) % MAX_REALS;
    log.info({ services: byId.size }, 'state restored from pinned maps');
  }
}

function persistence(spec: ServiceSpec): Pick<C.Svc, 'flags' | 'persist_timeout' | 'persist_mask'> {
  if (spec.persistent === undefined) {
    if (spec.netmask !== undefined) throw new XvsError('BAD_ARGUMENT', 'a netmask (-M) needs persistence (-p)');
    return { flags: 0, persist_timeout: 0, persist_mask: Buffer.alloc(16) };
  }
  if (!Number.isInteger(spec.persistent) || spec.persistent < 1) throw new XvsError('BAD_ARGUMENT', `persistence timeout ${spec.persistent} is not a positive number of seconds`);
  const bytes = Buffer.alloc(16);
  if (familyOf(spec.addr) === 10) {
    bytes.fill(0xff); // per client address (the protocol takes no IPv6 prefix yet)
  } else {
    const mask = parseNetmask(spec.netmask ?? '255.255.255.255');
    if (mask === undefined) throw new XvsError('BAD_ARGUMENT', `netmask ${spec.netmask} is not a contiguous IPv4 mask`);
    bytes.writeUInt32BE(mask, 0);
  }
  return { flags: SVC_F_PERSISTENT, persist_timeout: spec.persistent, persist_mask: bytes };
}

function checkRealNumbers(spec: RealSpec): void {
  if (!Number.isInteger(spec.weight) || spec.weight < 0 || spec.weight > 65535) throw new XvsError('BAD_ARGUMENT', `weight ${spec.weight} is not in 0..65535`);
  const u = spec.uthreshold ?? 0;
  const l = spec.lthreshold ?? 0;
  for (const [n, v] of [['upper threshold', u], ['lower threshold', l]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1) throw new XvsError('BAD_ARGUMENT', `${n} ${v} is not a connection count`);
  }
  if (u > 0 && l > u) throw new XvsError('BAD_ARGUMENT', `lower threshold ${l} is above the upper threshold ${u}`);
}

function statsView(s: C.Stats | null): StatsView {
  const v = s ?? ZERO_STATS;
  return { conns: v.conns, inpkts: v.inpkts, outpkts: v.outpkts, inbytes: v.inbytes, outbytes: v.outbytes };
}
