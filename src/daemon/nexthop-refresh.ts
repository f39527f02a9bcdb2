// Keeps xvs_nexthops following the kernel. `ip monitor` says when a
// neighbour, route or link changed; an event that can change an entry (a
// next hop's MAC appears, changes or goes; any route; an MTU, MAC or state
// change of an interface in use, the director's own included) schedules one
// refresh of every entry and of the interfaces' MTUs (xvs_if_mtus), which
// the director runs as a transaction in its queue: read the kernel's tables
// in three processes, compute every entry, write those that differ. Events
// within DEBOUNCE_MS share one refresh; a periodic refresh is the safety net
// for anything the monitor missed.
import { logger } from '../log.js';
import * as C from '../maps/codecs.js';
import type { Dataplane } from './dataplane.js';
import { ifMtusOf } from './if-mtus.js';
import { IpMonitor, type MonitorEvent } from './ip-monitor.js';
import { neighbourKey, usableMac, type IpContext, type IpTables } from './ip-tables.js';
import { realFromEntry } from './map-writer.js';
import type { MapWriter } from './map-writer.js';
import type { Model } from './model.js';
import { ensureNeighbours } from './neigh.js';
import { resolveNexthops, type Resolution } from './nexthop.js';

const log = logger('nexthop');

/** What the last refresh saw: the events that would change it. */
export interface NexthopView {
  /** Next hops in use (neighbourKey): the MAC written for them, or hopState() of an unresolved one. */
  hops: Map<string, string>;
  /** Interfaces in use, as last read. */
  links: Map<string, { ifindex: number; mtu: number; address?: string; up: boolean }>;
}

export interface RefreshReport {
  /** Real ids whose entry was rewritten. */
  changed: number[];
  /** Live real servers' addresses whose next hop is unknown, with why. */
  unresolved: Map<string, string>;
}

/**
 * What an event is compared with: the usable MAC, else the states (an
 * unresolved entry's reason says them, so a change of state is news too;
 * a changing state of a resolved MAC is not).
 */
export function hopState(n: { lladdr?: string; state: readonly string[] } | undefined): string {
  if (!n) return '!absent';
  return usableMac(n) ?? `!${n.state.join(',') || 'NONE'}`;
}

export function viewOf(resolutions: Iterable<Resolution>, t: IpTables): NexthopView {
  const hops = new Map<string, string>();
  const links = new Map<string, { ifindex: number; mtu: number; address?: string; up: boolean }>();
  for (const r of resolutions) {
    if (!r.hop) continue;
    const key = neighbourKey(r.hop.addr, r.hop.dev);
    hops.set(key, r.unresolved ? hopState(t.neighbours.get(key)) : r.nh.dmac);
    const l = t.links.get(r.hop.dev);
    if (l) links.set(l.ifname, { ifindex: l.ifindex, mtu: l.mtu, up: l.up, ...(l.address !== undefined ? { address: l.address } : {}) });
  }
  return { hops, links };
}

/** Whether the event can change an entry computed from `view`. */
export function needsRefresh(e: MonitorEvent, view: NexthopView): boolean {
  switch (e.kind) {
    case 'neigh': {
      if (e.dev === undefined) return false;
      const key = neighbourKey(e.dst, e.dev);
      if (!view.hops.has(key)) return false;
      const now = hopState(e.deleted ? undefined : { state: e.state, ...(e.lladdr !== undefined ? { lladdr: e.lladdr } : {}) });
      return now !== view.hops.get(key);
    }
    // Any route can become the best one for some real server.
    case 'route': return true;
    case 'link': {
      const l = view.links.get(e.ifname);
      if (!l) return false;
      return e.deleted || l.ifindex !== e.ifindex || l.up !== e.up || (e.mtu !== undefined && e.mtu !== l.mtu) || (e.address !== undefined && e.address !== l.address);
    }
    case 'other': return false;
  }
}

/**
 * Every real id whose entry the dataplane may read, with its address: the
 * model's real servers, and deleted ones still in xvs_reals, whose flows go
 * on until they expire.
 */
export function nexthopTargets(dp: Dataplane, m: Model): Map<number, string> {
  const targets = new Map<number, string>();
  const { keys, values } = dp.reals.raw.lookupBatch(4096);
  values.forEach((raw, i) => {
    const found = realFromEntry(C.u32Codec.decode(keys[i]!), raw);
    if (found) targets.set(found.real.id, found.real.addr);
  });
  for (const s of m.services.values()) for (const r of s.reals) targets.set(r.id, r.addr);
  return targets;
}

export interface RefreshOptions extends IpContext {
  tunnelSource?: string;
  /** Make next hops managed neighbours (neigh.ts). */
  neighbours: boolean;
  /** The view the entries are computed from, as soon as the tables are read. */
  onView(v: NexthopView): void;
}

/**
 * One refresh, for the director to run as a transaction: the kernel's
 * tables read once, next hops made managed neighbours, and the writes of
 * the entries that differ from what the map holds.
 */
export async function refreshChange(dp: Dataplane, m: Model, o: RefreshOptions): Promise<{ resolutions: Resolution[]; changed: number[]; writes: (w: MapWriter) => void }> {
  const ctx = o.netns !== undefined ? { netns: o.netns } : {};
  const targets = nexthopTargets(dp, m);
  const { resolutions, tables } = await resolveNexthops([...targets.values()], o.tunnelSource, ctx);
  const ifs = ifMtusOf(dp.ports, tables.links, dp.ifMtus.raw.maxEntries);
  const view = viewOf(resolutions.values(), tables);
  for (const l of ifs.watched) view.links.set(l.ifname, { ifindex: l.ifindex, mtu: l.mtu, up: l.up, ...(l.address !== undefined ? { address: l.address } : {}) });
  o.onView(view);
  if (o.neighbours) await ensureNeighbours([...resolutions.values()].flatMap((r) => (r.hop ? [r.hop] : [])), tables, ctx);
  const entry = (id: number): C.Nexthop => resolutions.get(targets.get(id)!)!.nh;
  const changed = [...targets.keys()].filter((id) => !dp.nexthops.raw.lookup(C.u32Codec.encode(id))?.equals(C.nexthop.encode(entry(id))));
  return {
    resolutions: [...resolutions.values()],
    changed,
    writes: (w) => {
      for (const id of changed) w.writeNexthop(id, entry(id));
      if (changed.length > 0) log.debug({ ids: changed }, 'next hops rewritten');
      const mtus = w.writeIfMtus(ifs.mtus);
      if (mtus.length > 0) log.debug({ ifindexes: mtus }, 'interface MTUs rewritten');
    },
  };
}

export interface RefresherOptions extends IpContext {
  debounceMs?: number;
  /** The safety-net period. */
  periodMs?: number;
}

export const DEFAULT_DEBOUNCE_MS = 50;
export const DEFAULT_PERIOD_MS = 30_000;

/** The director side the refresher drives. */
export interface NexthopRefreshTarget {
  refreshNexthops(): Promise<RefreshReport>;
  /** What the entries were computed from, for needsRefresh. */
  nexthopView(): NexthopView;
}

/** `into` with what `more` adds (an add-real between two refreshes). */
export function mergeView(into: NexthopView, more: NexthopView): NexthopView {
  return { hops: new Map([...into.hops, ...more.hops]), links: new Map([...into.links, ...more.links]) };
}

export class NexthopRefresher {
  readonly #monitor: IpMonitor;
  #timer: NodeJS.Timeout | undefined;
  #period: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** Refreshes run so far (tests wait on it). */
  refreshes = 0;

  constructor(readonly director: NexthopRefreshTarget, readonly opts: RefresherOptions = {}) {
    this.#monitor = new IpMonitor({
      ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
      onEvent: (e) => { if (needsRefresh(e, director.nexthopView())) this.schedule(); },
      onRestart: () => this.schedule(),
    });
  }

  /** Starts watching, then refreshes every entry once (a restart may have missed anything). */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#monitor.start();
    const period = this.opts.periodMs ?? DEFAULT_PERIOD_MS;
    this.#period = setInterval(() => this.schedule(), period);
    this.#period.unref();
    await this.refresh();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#period);
    this.#monitor.stop();
  }

  get monitorPid(): number | undefined {
    return this.#monitor.pid;
  }

  /** A refresh soon; events until then share it. */
  schedule(): void {
    if (this.#stopped || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.refresh();
    }, this.opts.debounceMs ?? DEFAULT_DEBOUNCE_MS);
  }

  /** Settles when no refresh runs (after stop(), nothing starts another). */
  idle(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }

  /** One refresh now; if one is running, another follows it (it may have read the tables before the event). */
  refresh(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          await this.director.refreshNexthops();
          this.refreshes++;
        } while (this.#again && !this.#stopped);
      } catch (e) {
        log.error({ err: (e as Error).message }, 'next-hop refresh failed; retrying at the next event or period');
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }
}
