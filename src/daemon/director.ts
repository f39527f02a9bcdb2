import { XvsError } from '../errors.js';
import { logger } from '../log.js';
import type { ListResult, Proto, RealSpec, RealView, Request, ServiceKey, ServiceSpec, ServiceView, StatsView } from '../control/protocol.js';
import { COUNTERS, XVS_CNT_MAX } from '../maps/counters.js';
import * as C from '../maps/codecs.js';
import { modeByCode, MODES, validateReal, type ModeName } from '../modes/index.js';
import { LOOKUP_CODES, schedulerByCode, schedulerByName } from '../schedulers/registry.js';
import { checkIpv4 } from './addr.js';
import { countConns } from './conn-count.js';
import type { Dataplane } from './dataplane.js';
import { ensureNeighbour } from './neigh.js';
import { installTable } from './tables.js';

const log = logger('director');

const MAX_SERVICES = 1024;
const MAX_REALS = 16384;
const REAL_F_REMOVED = 1;
const REAL_FAMILY_OFFSET = 18;
const PROTO_NUM = { tcp: 6, udp: 17 } as const;
const ZERO_STATS: C.Stats = { conns: 0, inpkts: 0, inbytes: 0, outpkts: 0, outbytes: 0 };

interface RealState { id: number; gen: number; addr: string; port: number; fwd: ModeName; weight: number }
interface ServiceState { key: C.SvcKey; entry: C.Svc; proto: Proto; addr: string; port: number; scheduler: string; reals: RealState[] }

export interface DirectorOptions {
  /** Keep managed neighbour entries for real servers (off in packet tests). */
  neighbours?: boolean;
  tunnelSource?: string;
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

  constructor(readonly dp: Dataplane, readonly opts: DirectorOptions = {}) {
    this.#restore();
    if (opts.tunnelSource !== undefined) {
      dp.config.set(0, { tun_saddr: checkIpv4(opts.tunnelSource, 'tunnel source'), flags: 0 });
    }
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
    }
  }

  addService(spec: ServiceSpec): void {
    const addr = checkIpv4(spec.addr, 'virtual service');
    const name = keyName(spec);
    if (this.#services.has(name)) throw new XvsError('SERVICE_EXISTS', `service ${name} already exists`);
    const sched = schedulerByName(spec.scheduler);
    const used = new Set([...this.#services.values()].map((s) => s.entry.id));
    let id = 0;
    while (used.has(id)) id++;
    if (id >= MAX_SERVICES) throw new XvsError('CAPACITY', `at most ${MAX_SERVICES} virtual services`);
    const key: C.SvcKey = { addr, port: spec.port, proto: PROTO_NUM[spec.proto], family: 2 };
    const entry: C.Svc = { id, flags: 0, sched: sched.code, lookup: LOOKUP_CODES[sched.lookup], tbl_size: 0 };
    this.dp.svcStats.setAll(id, ZERO_STATS);
    this.dp.schedPos.update(C.u32Codec.encode(id), Buffer.alloc(8));
    this.dp.schedTables.delete(C.u32Codec.encode(id));
    this.dp.services.set(key, entry);
    this.#services.set(name, { key, entry, proto: spec.proto, addr, port: spec.port, scheduler: sched.name, reals: [] });
    log.info({ service: name, scheduler: sched.name }, 'service added');
  }

  editService(spec: ServiceSpec): void {
    const s = this.#service(spec);
    const sched = schedulerByName(spec.scheduler);
    s.entry = { ...s.entry, sched: sched.code, lookup: LOOKUP_CODES[sched.lookup] };
    s.scheduler = sched.name;
    this.#publish(s);
    log.info({ service: keyName(spec), scheduler: sched.name }, 'service edited');
  }

  delService(k: ServiceKey): void {
    const s = this.#service(k);
    this.#drop(s);
    log.info({ service: keyName(k) }, 'service deleted');
  }

  async addReal(k: ServiceKey, spec: RealSpec): Promise<void> {
    const s = this.#service(k);
    const addr = checkIpv4(spec.addr, 'real server');
    const port = validateReal(spec.fwd, s.port, spec.port);
    checkWeight(spec.weight);
    if (s.reals.some((r) => r.addr === addr && r.port === port)) {
      throw new XvsError('REAL_EXISTS', `real server ${addr}:${port} already in service ${keyName(k)}`);
    }
    const id = this.#allocRealId();
    const prev = this.#rawReal(id);
    const real: RealState = { id, gen: ((prev?.gen ?? 0) + 1) >>> 0, addr, port, fwd: spec.fwd, weight: spec.weight };
    if (this.opts.neighbours !== false) await ensureNeighbour(addr);
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
    checkWeight(spec.weight);
    r.fwd = spec.fwd;
    r.weight = spec.weight;
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
      for (const r of s.reals) this.dp.realStats.setAll(r.id, ZERO_STATS);
    }
  }

  list(k?: ServiceKey): ListResult {
    const targets = k ? [this.#service(k)] : [...this.#services.values()].sort((a, b) => a.entry.id - b.entry.id);
    const gens = new Map<number, number>();
    for (const s of targets) for (const r of s.reals) gens.set(r.id, r.gen);
    const counts = countConns(this.dp, gens);
    const services: ServiceView[] = targets.map((s) => ({
      proto: s.proto,
      addr: s.addr,
      port: s.port,
      scheduler: s.scheduler,
      stats: this.#stats(this.dp.svcStats.sum(s.entry.id)),
      reals: s.reals.map((r): RealView => ({
        addr: r.addr,
        port: r.port,
        fwd: r.fwd,
        weight: r.weight,
        activeConns: counts.get(r.id)?.active ?? 0,
        inactConns: counts.get(r.id)?.inactive ?? 0,
        stats: this.#stats(this.dp.realStats.sum(r.id)),
      })),
    }));
    return { connTableSize: this.dp.connTableSize, services, counters: this.counters() };
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

  #publish(s: ServiceState): void {
    const sched = schedulerByName(s.scheduler);
    const table = sched.build(s.reals.map((r) => ({ id: r.id, weight: r.weight })));
    s.entry = installTable(this.dp, s.key, s.entry, table);
  }

  #drop(s: ServiceState): void {
    this.dp.services.delete(s.key);
    this.dp.schedTables.delete(C.u32Codec.encode(s.entry.id));
    for (const r of s.reals) this.#writeReal(s, r, REAL_F_REMOVED);
    this.#services.delete(keyName(s));
  }

  #writeReal(s: ServiceState, r: RealState, flags: number): void {
    this.dp.reals.set(r.id, {
      addr: r.addr, port: r.port, family: 2, fwd: MODES[r.fwd].code, weight: r.weight,
      flags, svc_id: s.entry.id, gen: r.gen,
    });
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

  #stats(s: C.Stats | null): StatsView {
    const v = s ?? ZERO_STATS;
    return { conns: v.conns, inpkts: v.inpkts, outpkts: v.outpkts, inbytes: v.inbytes, outbytes: v.outbytes };
  }

  #restore(): void {
    const byId = new Map<number, ServiceState>();
    for (const [key, entry] of this.dp.services.entries()) {
      const sched = schedulerByCode(entry.sched);
      if (!sched) {
        log.warn({ key, sched: entry.sched }, 'pinned service has an unknown scheduler; left alone');
        continue;
      }
      const proto: Proto = key.proto === PROTO_NUM.udp ? 'udp' : 'tcp';
      const s: ServiceState = { key, entry, proto, addr: key.addr, port: key.port, scheduler: sched.name, reals: [] };
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
      s.reals.push({ id, gen: r.gen, addr: r.addr, port: r.port, fwd: modeByCode(r.fwd), weight: r.weight });
    });
    this.#realCursor = (maxId + 1) % MAX_REALS;
    log.info({ services: byId.size }, 'state restored from pinned maps');
  }
}

function checkWeight(w: number): void {
  if (!Number.isInteger(w) || w < 0 || w > 65535) throw new XvsError('BAD_ARGUMENT', `weight ${w} is not in 0..65535`);
}
