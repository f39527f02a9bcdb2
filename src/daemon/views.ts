import type { ConnView, FwmarkRule, ListResult, RealView, ServiceKey, ServiceSpec, ServiceView, StatsView } from '../control/protocol.js';
import { COUNTERS, XVS_CNT_MAX } from '../maps/counters.js';
import * as C from '../maps/codecs.js';
import { CONN_STATE, FAMILY } from '../maps/abi.js';
import { familyOf } from './addr.js';
import { countConns, readStateTimeouts, readTimeouts } from './conn-count.js';
import type { Dataplane } from './dataplane.js';
import { realRateKey, svcRateKey, type RateEstimator } from './estimator.js';
import { fullnatStatus, type FullnatStatus } from './laddr-view.js';
import { sortedRules } from './fwmark-rules.js';
import { svcKeyOf } from './map-writer.js';
import { findService, realGens, serviceName, type Model, type RealModel, type ServiceModel } from './model.js';

// What xvsadm -L, xvs status and --timeout show: the committed model with
// the dataplane's live counts and statistics. Read-only.

const ZERO_STATS: StatsView = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };

/** A service as a request would add it; the mask in the protocol's form (dotted for IPv4, a prefix length for IPv6). */
function specOf(s: ServiceModel): ServiceSpec {
  return {
    proto: s.proto, addr: s.addr, port: s.port, ...(s.fwmark ? { fwmark: s.fwmark } : {}), scheduler: s.scheduler,
    ...(s.schedFlags ? { schedFlags: s.schedFlags } : {}),
    ...(s.persistent !== undefined ? { persistent: s.persistent, netmask: familyOf(s.addr) === FAMILY.inet6 ? String(s.netmask) : netmaskString(s.netmask) } : {}),
    ...(s.ops ? { ops: true } : {}),
  };
}

export function countersView(dp: Pick<Dataplane, 'counters'>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, idx] of Object.entries(COUNTERS)) {
    if (idx < XVS_CNT_MAX) out[name] = dp.counters.sum(idx) ?? 0;
  }
  return out;
}

export function listView(dp: Dataplane, m: Model, k?: ServiceKey, rates?: RateEstimator): ListResult {
  const targets = k ? [findService(m, k)] : [...m.services.values()].sort((a, b) => a.id - b.id);
  const timeouts = readTimeouts(dp);
  const counts = countConns(dp, realGens(m)).reals;
  const templates = persistCounts(dp, m);
  const services: ServiceView[] = targets.map((s) => ({
    ...specOf(s),
    stats: statsView(dp.svcStats.sum(s.id)),
    ...(rates ? { rates: rates.rates(svcRateKey(s.id, serviceName(s))) } : {}),
    reals: s.reals.map((r): RealView => ({
      addr: r.addr,
      port: r.port,
      fwd: r.fwd,
      weight: r.weight,
      uthreshold: r.uthreshold,
      lthreshold: r.lthreshold,
      ...(r.tunnel ? { tunnel: r.tunnel } : {}),
      activeConns: counts.get(r.id)?.active ?? 0,
      inactConns: counts.get(r.id)?.inactive ?? 0,
      persistConns: templates.get(r.id) ?? 0,
      stats: statsView(dp.realStats.sum(r.id)),
      ...(rates ? { rates: rates.rates(realRateKey(r.id, r.gen)) } : {}),
    })),
    ...laddrsOf(s),
  }));
  return { connTableSize: dp.connTableSize, services, counters: countersView(dp), timeouts, ...rulesOf(m) };
}

/** Every fwmark rule, as listings and -S show them; absent when there are none. */
export function fwmarkRulesView(m: Model): FwmarkRule[] {
  return sortedRules(m.fwmarkRules ?? []);
}

function rulesOf(m: Model): Pick<ListResult, 'fwmarkRules'> {
  return m.fwmarkRules && m.fwmarkRules.length > 0 ? { fwmarkRules: fwmarkRulesView(m) } : {};
}

export interface StatusView {
  services: number;
  reals: number;
  connTableSize: number;
  counters: Record<string, number>;
  /** Real servers whose xvs_nexthops entry is unknown (ifindex 0), with why when known. */
  unresolvedNexthops: { addr: string; why: string }[];
  /** Where the program runs, and whether the devmap holds each (a redirect there takes the devmap). */
  interfaces: { name: string; ifindex: number; role: string; mode: string; txPort: boolean }[];
  /** Services with local addresses or FULLNAT real servers: the pools, ports held, and who cannot be served. */
  fullnat: FullnatStatus[];
}

export function statusView(dp: Dataplane, m: Model, why: ReadonlyMap<string, string> = new Map()): StatusView {
  let reals = 0;
  const unresolved = new Map<string, string>();
  for (const s of m.services.values()) {
    reals += s.reals.length;
    for (const r of s.reals) {
      if ((dp.nexthops.get(r.id)?.ifindex ?? 0) === 0) unresolved.set(r.addr, why.get(r.addr) ?? 'not resolved yet');
    }
  }
  const interfaces = dp.ports.map((p) => ({ name: p.name, ifindex: p.ifindex, role: p.role, mode: p.mode, txPort: dp.txPorts.get(p.ifindex)?.ifindex === p.ifindex }));
  return {
    services: m.services.size, reals, connTableSize: dp.connTableSize, counters: countersView(dp),
    unresolvedNexthops: [...unresolved].sort(([a], [b]) => a.localeCompare(b)).map(([addr, w]) => ({ addr, why: w })),
    interfaces,
    fullnat: fullnatStatus(dp, m),
  };
}

/** FULLNAT's local addresses as ServiceView carries them: absent when there are none. */
function laddrsOf(s: ServiceModel): Pick<ServiceView, 'laddrs'> {
  return s.laddrs && s.laddrs.length > 0 ? { laddrs: [...s.laddrs] } : {};
}

function statsView(s: C.Stats | null): StatsView {
  const v = s ?? ZERO_STATS;
  return { conns: v.conns, inpkts: v.inpkts, outpkts: v.outpkts, inbytes: v.inbytes, outbytes: v.outbytes };
}

function netmaskString(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
}

/** Every live service's and real server's statistics, by estimator key. */
export function* statsByRateKey(dp: Dataplane, m: Model): Generator<[string, StatsView]> {
  for (const s of m.services.values()) {
    yield [svcRateKey(s.id, serviceName(s)), statsView(dp.svcStats.sum(s.id))];
    for (const r of s.reals) yield [realRateKey(r.id, r.gen), statsView(dp.realStats.sum(r.id))];
  }
}

interface Owner { svc: ServiceModel; real: RealModel }

function owners(m: Model): { reals: Map<number, Owner>; services: Map<number, ServiceModel> } {
  const reals = new Map<number, Owner>();
  const services = new Map<number, ServiceModel>();
  for (const svc of m.services.values()) {
    services.set(svc.id, svc);
    for (const real of svc.reals) reals.set(real.id, { svc, real });
  }
  return { reals, services };
}

/** Live persistence templates per real id (IPVS's persistconns). */
function persistCounts(dp: Dataplane, m: Model): Map<number, number> {
  const out = new Map<number, number>();
  const { reals } = owners(m);
  const now = dp.jiffies();
  const { values } = dp.persist.raw.lookupBatch(4096);
  for (const vb of values) {
    const t = C.persist.decode(vb);
    const o = reals.get(t.real_id);
    if (!o || o.real.gen !== t.real_gen || o.svc.persistent === undefined) continue;
    if (now - t.last_seen > o.svc.persistent * dp.hz) continue;
    out.set(t.real_id, (out.get(t.real_id) ?? 0) + 1);
  }
  return out;
}

// IPVS's state names (tcp_state_name_table, and "UDP" for UDP): the abi's names in capitals.
const STATE_NAMES = new Map<number, string>(Object.entries(CONN_STATE).filter(([n]) => n !== 'max').map(([n, v]) => [v, n.toUpperCase()]));

/**
 * ipvsadm -L -c: what /proc/net/ip_vs_conn would hold. Every live entry of
 * both connection tables, then every live persistence template (IPVS lists
 * them as connections in state NONE from client port 0). Entries whose real
 * server is gone or whose time is up are left out, as IPVS has expired them.
 */
export function connectionsView(dp: Dataplane, m: Model): ConnView[] {
  const { reals, services } = owners(m);
  const t = readStateTimeouts(dp);
  const now = dp.jiffies();
  const hz = dp.hz || 1;
  const out: ConnView[] = [];
  for (const table of [dp.conns.raw, dp.newFlows]) {
    const { keys, values } = table.lookupBatch(4096);
    values.forEach((vb, i) => {
      const c = C.conn.decode(vb);
      const o = reals.get(c.real_id);
      if (!o || o.real.gen !== c.real_gen) return;
      const left = (t[c.state] ?? 0) * hz - (now - c.last_seen);
      if (left < 0) return;
      const key = C.connKey.decode(keys[i]!);
      out.push({
        proto: key.proto === 17 ? 'udp' : 'tcp', expires: Math.floor(left / hz), state: STATE_NAMES.get(c.state) ?? 'NONE',
        caddr: key.saddr, cport: key.sport, vaddr: key.daddr, vport: key.dport, daddr: o.real.addr, dport: o.real.port,
      });
    });
  }
  const { keys, values } = dp.persist.raw.lookupBatch(4096);
  values.forEach((vb, i) => {
    const p = C.persist.decode(vb);
    const o = reals.get(p.real_id);
    const k = C.persistKey.decode(keys[i]!);
    const svc = services.get(k.svc_id);
    if (!o || !svc || o.real.gen !== p.real_gen || svc.persistent === undefined) return;
    const left = svc.persistent * hz - (now - p.last_seen);
    if (left < 0) return;
    out.push({
      proto: svc.proto, expires: Math.floor(left / hz), state: 'NONE',
      // A fwmark service's template carries the mark as its address, as IPVS's do.
      caddr: k.caddr, cport: 0, vaddr: svc.fwmark ? svcKeyOf(svc).addr : svc.addr, vport: svc.port, daddr: o.real.addr, dport: o.real.port,
      ...(svc.fwmark ? { fwmark: true as const } : {}),
    });
  });
  return out;
}

/** The configuration alone (no counters, no connection census): what xvsd saves on every change. */
export function configView(dp: Dataplane, m: Model): ListResult {
  const zero = { ...ZERO_STATS };
  const services: ServiceView[] = [...m.services.values()].sort((a, b) => a.id - b.id).map((s) => ({
    ...specOf(s),
    stats: zero,
    reals: s.reals.map((r): RealView => ({
      addr: r.addr, port: r.port, fwd: r.fwd, weight: r.weight, uthreshold: r.uthreshold, lthreshold: r.lthreshold,
      ...(r.tunnel ? { tunnel: r.tunnel } : {}), activeConns: 0, inactConns: 0, stats: zero,
    })),
    ...laddrsOf(s),
  }));
  return { connTableSize: dp.connTableSize, services, counters: {}, timeouts: readTimeouts(dp), ...rulesOf(m) };
}
