import type { ListResult, RealView, ServiceKey, ServiceView, StatsView } from '../control/protocol.js';
import { COUNTERS, XVS_CNT_MAX } from '../maps/counters.js';
import type * as C from '../maps/codecs.js';
import { FAMILY } from '../maps/abi.js';
import { familyOf } from './addr.js';
import { countConns, readTimeouts } from './conn-count.js';
import type { Dataplane } from './dataplane.js';
import { findService, realGens, type Model } from './model.js';

// What xvsadm -L, xvs status and --timeout show: the committed model with
// the dataplane's live counts and statistics. Read-only.

const ZERO_STATS: StatsView = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };

export function countersView(dp: Dataplane): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, idx] of Object.entries(COUNTERS)) {
    if (idx < XVS_CNT_MAX) out[name] = dp.counters.sum(idx) ?? 0;
  }
  return out;
}

export function listView(dp: Dataplane, m: Model, k?: ServiceKey): ListResult {
  const targets = k ? [findService(m, k)] : [...m.services.values()].sort((a, b) => a.id - b.id);
  const timeouts = readTimeouts(dp);
  const counts = countConns(dp, realGens(m), timeouts).reals;
  const services: ServiceView[] = targets.map((s) => ({
    proto: s.proto,
    addr: s.addr,
    port: s.port,
    scheduler: s.scheduler,
    // In the protocol's form: dotted for IPv4, the prefix length for IPv6.
    ...(s.persistent !== undefined ? { persistent: s.persistent, netmask: familyOf(s.addr) === FAMILY.inet6 ? String(s.netmask) : netmaskString(s.netmask) } : {}),
    stats: statsView(dp.svcStats.sum(s.id)),
    reals: s.reals.map((r): RealView => ({
      addr: r.addr,
      port: r.port,
      fwd: r.fwd,
      weight: r.weight,
      uthreshold: r.uthreshold,
      lthreshold: r.lthreshold,
      activeConns: counts.get(r.id)?.active ?? 0,
      inactConns: counts.get(r.id)?.inactive ?? 0,
      stats: statsView(dp.realStats.sum(r.id)),
    })),
  }));
  return { connTableSize: dp.connTableSize, services, counters: countersView(dp), timeouts };
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
  };
}

function statsView(s: C.Stats | null): StatsView {
  const v = s ?? ZERO_STATS;
  return { conns: v.conns, inpkts: v.inpkts, outpkts: v.outpkts, inbytes: v.inbytes, outbytes: v.outbytes };
}

function netmaskString(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
}
