import type { BatchRequest, ChangeResult, ConnView, FwmarkRule, LaddrView, ListResult, RealSpec, Request, ServiceKey, ServiceSpec, Timeouts } from '../control/protocol.js';
import { XvsError } from '../errors.js';
import { logger } from '../log.js';
import * as C from '../maps/codecs.js';
import { checkIp } from './addr.js';
import { readStateTimeouts, readTimeouts, type ConnCensus } from './conn-count.js';
import { withSet } from './timeouts.js';
import type { Dataplane } from './dataplane.js';
import { MapWriter, realFromEntry } from './map-writer.js';
import * as M from './model.js';
import type { IpContext } from './ip-tables.js';
import { ensureNeighbours } from './neigh.js';
import { resolveNexthops } from './nexthop.js';
import { mergeView, refreshChange, viewOf, type NexthopView, type RefreshReport } from './nexthop-refresh.js';
import { UnresolvedNexthops } from './nexthop-status.js';
import { MutationQueue } from './queue.js';
import { restoreModel } from './restore.js';
import { planTable, readLive, type PublisherOptions } from './table-publisher.js';
import { needsTick, tickChange } from './tick.js';
import { laddrView } from './laddr-view.js';
import { laddrIdsCarried } from './laddr-carried.js';
import { addFwmarkRule, delFwmarkRule, ruleName } from './fwmark-rules.js';
import { laddrWarnings } from './laddr-warnings.js';
import { RateEstimator, realRateKey, svcRateKey } from './estimator.js';
import { configView, connectionsView, countersView, fwmarkRulesView, listView, statsByRateKey, statusView, type StatusView } from './views.js';

const log = logger('director');

export interface DirectorOptions extends PublisherOptions, IpContext {
  /**
   * Keep managed neighbour entries for real servers' next hops: true
   * (default, neigh.ts), false for none (packet tests), or a function run
   * at add-real instead.
   */
  neighbours?: boolean | ((addr: string) => Promise<void>);
  tunnelSource?: string;
  /** Called after each committed change of the configuration (not after ticks): xvsd saves it. */
  onChange?: () => void;
}

/** Who sent a request, as the control socket knows it (SO_PEERCRED). */
export interface Peer {
  pid: number;
  uid: number;
  gid: number;
}

const MUTATIONS = new Set<Request['op']>(['add-service', 'edit-service', 'del-service', 'add-real', 'edit-real', 'del-real', 'clear', 'zero', 'set-timeouts', 'batch', 'add-laddr', 'del-laddr', 'add-fwmark-rule', 'del-fwmark-rule']);

/** What a transaction computed before anything is written. */
interface Change<T = void> {
  model: M.Model;
  /** New tables, by service id; the model's tableSize already says their length. */
  tables?: ReadonlyMap<number, Uint32Array>;
  /** Writes beyond the model's (statistics, configuration). */
  writes?: (w: MapWriter) => void;
  census?: ConnCensus;
  /** Runs once the change is committed; what it returns is the transaction's result. */
  done?: () => T;
}

/** What the control plane has done since xvsd started, for the metrics. */
export interface DirectorActivity {
  /** Ticks that had work (a dynamic scheduler or a threshold), and the time they took. */
  ticks: number;
  tickSeconds: number;
  /** Scheduler tables written, by what asked: the tick's re-plans, or a change of configuration. */
  publishes: { tick: number; change: number };
}

const EMPTY_CENSUS: ConnCensus = { reals: new Map(), destinations: new Map() };

/** ipvsadm -Z on the model: the tick counts new connections from zero; the ids and estimator keys to zero. */
function zeroModel(m: M.Model, k?: ServiceKey): { model: M.Model; svcs: number[]; reals: number[]; keys: string[] } {
  const targets = k ? [M.findService(m, k)] : [...m.services.values()];
  let model = m;
  for (const s of targets) model = M.withService(model, { ...s, plan: { ...s.plan, svcConns: 0, realConns: new Map() } });
  return {
    model,
    svcs: targets.map((s) => s.id),
    reals: targets.flatMap((s) => s.reals.map((r) => r.id)),
    keys: targets.flatMap((s) => [svcRateKey(s.id, M.serviceName(s)), ...s.reals.map((r) => realRateKey(r.id, r.gen))]),
  };
}

/**
 * The director: every change of its model is a transaction. Requests from
 * any socket connection and the tick queue up in one MutationQueue; each in
 * turn is validated against the model and its new tables are computed (a
 * refusal stops here, nothing written), then the map writer writes the
 * difference (all or nothing), and only then is the new model kept. Reads
 * see the last committed model.
 */
export class Director {
  readonly #queue = new MutationQueue();
  readonly #writer: MapWriter;
  readonly #limits: M.Limits;
  #model: M.Model;
  /** The last tick's census: configuration changes plan from it. */
  #census = EMPTY_CENSUS;
  #tickQueued = false;
  /** ipvsadm --rate: sampled every 2 s by estimate(). */
  readonly rates = new RateEstimator();
  readonly #unresolved = new UnresolvedNexthops();
  readonly activity: DirectorActivity = { ticks: 0, tickSeconds: 0, publishes: { tick: 0, change: 0 } };
  /** What the next-hop entries were computed from (nexthop-refresh.ts). */
  #nhView: NexthopView = { hops: new Map(), links: new Map() };

  constructor(readonly dp: Dataplane, readonly opts: DirectorOptions = {}) {
    this.#writer = new MapWriter(dp);
    this.#limits = { services: dp.svcStats.raw.maxEntries, reals: dp.reals.raw.maxEntries };
    this.#model = restoreModel(dp, this.#limits);
    this.#writer.syncNatRealSlots();
    // The tunnel source goes into each real server's next hop (nexthop.ts).
    if (opts.tunnelSource !== undefined) checkIp(opts.tunnelSource, 'tunnel source');
  }

  /** The committed model. */
  get model(): M.Model {
    return this.#model;
  }

  /** One request; a change is logged with who asked for it once it is committed. */
  async handle(req: Request, peer?: Peer): Promise<unknown> {
    const result = await this.#dispatch(req);
    if (MUTATIONS.has(req.op)) {
      log.info({ peer: peer ?? 'unknown', op: req.op, request: req.op === 'batch' ? { requests: req.requests.length } : req }, 'change committed');
    }
    return result;
  }

  #dispatch(req: Request): Promise<unknown> | unknown {
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
      case 'batch': return this.batch(req.requests);
      case 'connections': return this.connections();
      case 'add-laddr': return this.addLaddr(req.key, req.laddr);
      case 'del-laddr': return this.delLaddr(req.key, req.laddr);
      case 'get-laddrs': return this.laddrView(req.key);
      case 'add-fwmark-rule': return this.addFwmarkRule(req.rule);
      case 'del-fwmark-rule': return this.delFwmarkRule(req.rule);
      case 'list-fwmark-rules': return fwmarkRulesView(this.#model);
    }
  }

  /**
   * The warnings of a committed change about these services (laddr-warnings.ts):
   * logged, and answered to the client that asked.
   */
  #warn(model: M.Model, names: Iterable<string>): ChangeResult | undefined {
    const warnings = laddrWarnings(model, names);
    for (const w of warnings) log.warn(w);
    return warnings.length > 0 ? { warnings } : undefined;
  }

  /**
   * Many changes as one transaction (xvsadm -R): each applied to the model
   * in order, the tables of every service touched planned once at the end,
   * one write of the difference. A refusal names its request ("request N: ")
   * and leaves everything as it was.
   */
  batch(requests: readonly BatchRequest[]): Promise<ChangeResult | undefined> {
    return this.#transact(async (m) => {
      let model = m;
      const touched = new Set<string>();
      /** Services whose FULLNAT real servers or local addresses the batch changed. */
      const pools = new Set<string>();
      const added = new Map<number, string>();
      const zeroed: { svcs: number[]; reals: number[]; keys: string[] }[] = [];
      /** The state timeout table after the batch's --set requests, if it has any. */
      let timeouts: number[] | undefined;
      for (const [i, req] of requests.entries()) {
        try {
          switch (req.op) {
            case 'add-service':
              model = M.addService(model, req.svc, this.#limits);
              touched.add(M.serviceName(req.svc));
              break;
            case 'edit-service':
              model = M.editService(model, req.svc);
              touched.add(M.serviceName(req.svc));
              break;
            case 'del-service':
              model = M.delService(model, req.key);
              break;
            case 'add-real': {
              const r = M.addReal(model, req.key, req.real, this.#limits, (id) => this.#lastGen(id));
              model = r.model;
              added.set(r.real.id, r.real.addr);
              touched.add(M.serviceName(req.key));
              pools.add(M.serviceName(req.key));
              break;
            }
            case 'edit-real':
              model = M.editReal(model, req.key, req.real, (id) => this.#total(id));
              touched.add(M.serviceName(req.key));
              pools.add(M.serviceName(req.key));
              break;
            case 'del-real':
              model = M.delReal(model, req.key, req.real);
              touched.add(M.serviceName(req.key));
              break;
            case 'clear':
              model = M.clearServices(model);
              break;
            case 'zero': {
              const z = zeroModel(model, req.key);
              model = z.model;
              zeroed.push(z);
              break;
            }
            case 'set-timeouts':
              timeouts = withSet(timeouts ?? readStateTimeouts(this.dp), req.timeouts);
              break;
            case 'add-laddr':
              model = M.addLaddr(model, req.key, req.laddr, this.dp.laddrs.raw.maxEntries, () => laddrIdsCarried(this.dp));
              pools.add(M.serviceName(req.key));
              break;
            case 'del-laddr':
              model = M.delLaddr(model, req.key, req.laddr);
              pools.add(M.serviceName(req.key));
              break;
            case 'add-fwmark-rule':
              model = M.withFwmarkRules(model, addFwmarkRule(model.fwmarkRules ?? [], req.rule, this.dp.fwmarkRules.raw.maxEntries));
              break;
            case 'del-fwmark-rule':
              model = M.withFwmarkRules(model, delFwmarkRule(model.fwmarkRules ?? [], req.rule));
              break;
          }
        } catch (e) {
          if (e instanceof XvsError) throw new XvsError(e.code, `request ${i + 1}: ${e.message}`, e.hint === undefined ? {} : { hint: e.hint });
          throw e;
        }
      }
      const change = this.#replan(model, [...touched]);
      // Host state and next hops for the real servers the batch leaves in place, as addReal does for one.
      const live = M.realGens(change.model);
      const todo = [...added].filter(([id]) => live.has(id));
      const neighbour = this.opts.neighbours ?? true;
      if (typeof neighbour === 'function') for (const [, addr] of todo) await neighbour(addr);
      const { resolutions, tables } = await resolveNexthops(todo.map(([, addr]) => addr), this.opts.tunnelSource, this.#ipContext());
      const resolved = todo.map(([id, addr]) => [id, resolutions.get(addr)!] as const);
      this.#nhView = mergeView(this.#nhView, viewOf(resolved.map(([, r]) => r), tables));
      const hops = resolved.flatMap(([, r]) => (r.hop ? [r.hop] : []));
      if (neighbour === true && hops.length > 0) await ensureNeighbours(hops, tables, this.#ipContext());
      return {
        ...change,
        writes: (w) => {
          for (const [id, r] of resolved) w.writeNexthop(id, r.nh);
          for (const z of zeroed) w.zeroStats(z.svcs, z.reals);
          if (timeouts) w.writeConfig({ timeout: timeouts });
        },
        done: () => {
          this.#unresolved.note(resolved.map(([, r]) => r), M.realAddrs(change.model), false);
          for (const z of zeroed) this.rates.zero(z.keys);
          log.info({ requests: requests.length, services: change.model.services.size }, 'batch applied');
          return this.#warn(change.model, pools);
        },
      };
    }, true);
  }

  /** The committed configuration without counters (what xvsd saves). */
  config(): ListResult {
    return configView(this.dp, this.#model);
  }

  /** ipvsadm -L -c. */
  connections(): ConnView[] {
    return connectionsView(this.dp, this.#model);
  }

  /** One step of the rate estimator (every ESTIMATOR_INTERVAL_MS). */
  estimate(): void {
    this.rates.sample(statsByRateKey(this.dp, this.#model));
  }

  addService(spec: ServiceSpec): Promise<void> {
    return this.#transact((m) => ({
      model: M.addService(m, spec, this.#limits),
      done: () => log.info({ service: M.serviceName(spec), scheduler: spec.scheduler, persistent: spec.persistent }, 'service added'),
    }));
  }

  editService(spec: ServiceSpec): Promise<void> {
    return this.#transact((m) => ({
      ...this.#replan(M.editService(m, spec), [M.serviceName(spec)]),
      done: () => log.info({ service: M.serviceName(spec), scheduler: spec.scheduler, persistent: spec.persistent }, 'service edited'),
    }));
  }

  delService(k: ServiceKey): Promise<void> {
    return this.#transact((m) => ({
      model: M.delService(m, k),
      done: () => log.info({ service: M.serviceName(k) }, 'service deleted'),
    }));
  }

  addReal(k: ServiceKey, spec: RealSpec): Promise<ChangeResult | undefined> {
    return this.#transact(async (m) => {
      const { model, real } = M.addReal(m, k, spec, this.#limits, (id) => this.#lastGen(id));
      const change = this.#replan(model, [M.serviceName(k)]);
      // Host state, once the change is known to be valid: the kernel keeps the MAC resolved.
      const neighbour = this.opts.neighbours ?? true;
      if (typeof neighbour === 'function') await neighbour(real.addr);
      const { resolutions, tables } = await resolveNexthops([real.addr], this.opts.tunnelSource, this.#ipContext());
      const r = resolutions.get(real.addr)!;
      // Watched before the neighbour is made managed: its resolution comes as an event.
      this.#nhView = mergeView(this.#nhView, viewOf([r], tables));
      if (neighbour === true && r.hop) await ensureNeighbours([r.hop], tables, this.#ipContext());
      return {
        ...change,
        writes: (w) => w.writeNexthop(real.id, r.nh),
        done: () => {
          log.info({ service: M.serviceName(k), real: `${real.addr}:${real.port}`, fwd: real.fwd, weight: real.weight, id: real.id }, 'real server added');
          this.#unresolved.note([r], M.realAddrs(model), false);
          return this.#warn(change.model, [M.serviceName(k)]);
        },
      };
    });
  }

  editReal(k: ServiceKey, spec: RealSpec): Promise<ChangeResult | undefined> {
    return this.#transact((m) => {
      const change = this.#replan(M.editReal(m, k, spec, (id) => this.#total(id)), [M.serviceName(k)]);
      return {
        ...change,
        done: () => {
          log.info({ service: M.serviceName(k), real: `${spec.addr}:${spec.port}`, fwd: spec.fwd, weight: spec.weight }, 'real server edited');
          return this.#warn(change.model, [M.serviceName(k)]);
        },
      };
    });
  }

  delReal(k: ServiceKey, spec: { addr: string; port: number }): Promise<void> {
    return this.#transact((m) => ({
      ...this.#replan(M.delReal(m, k, spec), [M.serviceName(k)]),
      done: () => log.info({ service: M.serviceName(k), real: `${spec.addr}:${spec.port}` }, 'real server deleted'),
    }));
  }

  /** ipvsadm -P (the FULLNAT forks' grammar): a local address for the service's FULLNAT flows. */
  addLaddr(k: ServiceKey, addr: string): Promise<void> {
    return this.#transact((m) => ({
      model: M.addLaddr(m, k, addr, this.dp.laddrs.raw.maxEntries, () => laddrIdsCarried(this.dp)),
      done: () => log.info({ service: M.serviceName(k), laddr: addr }, 'local address added'),
    }));
  }

  /** ipvsadm -Q: new flows no longer take it; running ones keep it. */
  delLaddr(k: ServiceKey, addr: string): Promise<ChangeResult | undefined> {
    return this.#transact((m) => {
      const model = M.delLaddr(m, k, addr);
      return {
        model,
        done: () => {
          log.info({ service: M.serviceName(k), laddr: addr }, 'local address deleted');
          return this.#warn(model, [M.serviceName(k)]);
        },
      };
    });
  }

  /** The service's local addresses, in the order they were added. */
  laddrs(k: ServiceKey): string[] {
    return [...(M.findService(this.#model, k).laddrs ?? [])];
  }

  /** ipvsadm -G: one service's local addresses or every service's, with the flows holding ports of each. */
  laddrView(k?: ServiceKey): LaddrView[] {
    return laddrView(this.dp, this.#model, k);
  }

  /** xvsadm --fwmark-rule: packets of no address/port service matching it get its mark. */
  addFwmarkRule(rule: FwmarkRule): Promise<void> {
    return this.#transact((m) => ({
      model: M.withFwmarkRules(m, addFwmarkRule(m.fwmarkRules ?? [], rule, this.dp.fwmarkRules.raw.maxEntries)),
      done: () => log.info({ rule: ruleName(rule) }, 'fwmark rule added'),
    }));
  }

  delFwmarkRule(rule: FwmarkRule): Promise<void> {
    return this.#transact((m) => ({
      model: M.withFwmarkRules(m, delFwmarkRule(m.fwmarkRules ?? [], rule)),
      done: () => log.info({ rule: ruleName(rule) }, 'fwmark rule deleted'),
    }));
  }

  clear(): Promise<void> {
    return this.#transact((m) => ({ model: M.clearServices(m), done: () => log.info('all services cleared') }));
  }

  /** ipvsadm -Z: statistics from zero, and the tick counts new connections from there. */
  zero(k?: ServiceKey): Promise<void> {
    return this.#transact((m) => {
      const z = zeroModel(m, k);
      return { model: z.model, writes: (w) => w.zeroStats(z.svcs, z.reals), done: () => this.rates.zero(z.keys) };
    });
  }

  /** 0 leaves a timeout as it is, as ipvsadm --set does. */
  setTimeouts(t: Timeouts): Promise<void> {
    return this.#transact((m) => {
      const next = { timeout: withSet(readStateTimeouts(this.dp), t) };
      return {
        model: m,
        writes: (w) => w.writeConfig(next),
        done: () => log.info({ timeouts: this.timeouts() }, 'timeouts set'),
      };
    });
  }

  timeouts(): Timeouts {
    return readTimeouts(this.dp);
  }

  list(k?: ServiceKey): ListResult {
    return listView(this.dp, this.#model, k, this.rates);
  }

  status(): StatusView {
    return statusView(this.dp, this.#model, this.#unresolved.why);
  }

  /**
   * Every next hop recomputed from the kernel's tables and the entries that
   * differ rewritten, as a transaction: no request or tick runs between the
   * read of the tables and the writes. Real servers deleted but still in
   * xvs_reals keep theirs current too, since their flows go on.
   */
  refreshNexthops(): Promise<RefreshReport> {
    let report: RefreshReport | undefined;
    return this.#transact(async (m) => {
      const r = await refreshChange(this.dp, m, {
        ...this.#ipContext(),
        neighbours: (this.opts.neighbours ?? true) === true,
        ...(this.opts.tunnelSource !== undefined ? { tunnelSource: this.opts.tunnelSource } : {}),
        // Watched before any neighbour is made managed: its resolution comes as an event.
        onView: (v) => { this.#nhView = v; },
      });
      return {
        model: m,
        writes: r.writes,
        done: () => {
          this.#unresolved.note(r.resolutions, M.realAddrs(m), true);
          report = { changed: r.changed, unresolved: new Map(this.#unresolved.why) };
        },
      };
    }).then(() => report!);
  }

  nexthopView(): NexthopView {
    return this.#nhView;
  }

  #ipContext(): IpContext {
    return this.opts.netns !== undefined ? { netns: this.opts.netns } : {};
  }

  counters(): Record<string, number> {
    return countersView(this.dp);
  }

  needsTick(): boolean {
    return needsTick(this.#model);
  }

  /**
   * One tick, as a transaction like any other. A tick still waiting in the
   * queue makes another one pointless: it will read the counts when it runs.
   */
  tick(): Promise<void> {
    if (this.#tickQueued) return Promise.resolve();
    this.#tickQueued = true;
    return this.#transact((m) => {
      this.#tickQueued = false;
      if (!needsTick(m)) return { model: m };
      const started = performance.now();
      const t = tickChange(this.dp, m, this.opts);
      const seconds = (performance.now() - started) / 1000;
      return {
        model: t.model,
        tables: t.tables,
        census: t.census,
        done: () => {
          this.activity.ticks++;
          this.activity.tickSeconds += seconds;
          for (const c of t.crossed) log.info(c, 'threshold crossed');
        },
      };
    }, false);
  }

  /**
   * queue -> validate and compute (compute) -> write the maps -> commit the
   * model. A throw before the writes leaves everything as it was; a failed
   * write is undone by the writer.
   */
  #transact<T = void>(compute: (m: M.Model) => Change<T> | Promise<Change<T>>, config = true): Promise<T | undefined> {
    return this.#queue.run(async () => {
      const before = this.#model;
      const c = await compute(before);
      this.#writer.atomically(() => {
        this.#writer.sync(before, c.model, c.tables ?? new Map());
        c.writes?.(this.#writer);
      });
      this.#model = c.model;
      this.activity.publishes[config ? 'change' : 'tick'] += c.tables?.size ?? 0;
      if (c.census) this.#census = c.census;
      const result = c.done?.();
      if (config) this.opts.onChange?.();
      return result;
    });
  }

  /** The model with new tables planned for these services (by name), from the last census. */
  #replan(model: M.Model, names: readonly string[]): { model: M.Model; tables: Map<number, Uint32Array> } {
    const tables = new Map<number, Uint32Array>();
    for (const name of names) {
      const s = model.services.get(name);
      if (!s) continue;
      const { table, plan } = planTable(s, readLive(this.dp, s, this.#census), false, this.opts);
      model = M.withService(model, { ...s, tableSize: table.length, plan });
      tables.set(s.id, table);
    }
    return { model, tables };
  }

  #total(id: number): number {
    const c = this.#census.reals.get(id);
    return c ? c.active + c.inactive : 0;
  }

  /** The generation the real id's slot carries in the map (0 for a slot never used). */
  #lastGen(id: number): number {
    const raw = this.dp.reals.raw.lookup(C.u32Codec.encode(id));
    return (raw && realFromEntry(id, raw)?.real.gen) ?? 0;
  }
}
