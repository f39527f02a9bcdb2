import { XvsError } from '../errors.js';
import { netmaskBits, prefixLength, type FwmarkRule, type Proto, type RealSpec, type ServiceKey, type ServiceSpec } from '../control/protocol.js';
import { validateReal, type ModeName } from '../modes/index.js';
import type { Tunnel } from '../modes/tunnel.js';
import { checkSchedulerName, type SchedulerName } from '../schedulers/registry.js';
import { checkIp, familyOf } from './addr.js';
import { FAMILY } from '../maps/abi.js';
import { nextOverload } from './overload.js';
import type { PlanState } from './table-publisher.js';

// The director's model: the services and real servers the maps hold, as
// immutable values, and the rules a change must pass. Every edit returns a
// new model or throws, and never touches the maps: the director writes them
// from the difference and only then keeps the new model.

export interface RealModel {
  readonly id: number;
  /** Bumped each time the id is reused, so stale flows cannot reach the new owner. */
  readonly gen: number;
  readonly addr: string;
  readonly port: number;
  readonly fwd: ModeName;
  readonly weight: number;
  /** The latest weight above 0 (IPVS's last_weight): mh lays a quiesced real's slots out by it. */
  readonly lastWeight: number;
  readonly uthreshold: number;
  readonly lthreshold: number;
  /** Over its upper threshold (decided by the tick): out of every table. */
  readonly overloaded: boolean;
  /** TUN through GUE or GRE; absent: IPIP, or not TUN. */
  readonly tunnel?: Tunnel;
}

export interface ServiceModel {
  readonly id: number;
  readonly proto: Proto;
  readonly addr: string;
  readonly port: number;
  /** -f: a fwmark service (addr its family's unspecified address, port 0; see ServiceKey). */
  readonly fwmark?: number;
  readonly scheduler: SchedulerName;
  /** ipvsadm -b: scheduler flag bits (src/schedulers/flags.ts); absent: none. */
  readonly schedFlags?: number;
  /** Persistence timeout in seconds; absent: not persistent. */
  readonly persistent?: number;
  /**
   * Persistence granularity as IPVS keeps it: for IPv4 a netmask as a number
   * (all ones unless -M said otherwise), for IPv6 a prefix length (128
   * unless -M said otherwise).
   */
  readonly netmask: number;
  /** In ipvsadm insertion order, which schedulers use for ties. */
  readonly reals: readonly RealModel[];
  /** Slots of the table the dataplane holds for this service. */
  readonly tableSize: number;
  /** What the table publisher keeps from one plan to the next. */
  readonly plan: PlanState;
  /** FULLNAT's local addresses (ipvsadm -P), in the order they were added. */
  readonly laddrs?: readonly string[];
  /** -o: every UDP datagram scheduled on its own (one-packet scheduling). */
  readonly ops?: boolean;
}

export interface Model {
  /** By serviceName(). */
  readonly services: ReadonlyMap<string, ServiceModel>;
  /** Where the next real id search starts (next-fit). */
  readonly realCursor: number;
  /**
   * Every local address a service has had, by its index in xvs_laddrs. A
   * flow carries its local address's id for as long as it lives, so an id
   * is taken back only when every id is taken, and then only from an
   * address no pool holds and no live flow carries (addLaddr).
   */
  readonly laddrIds?: ReadonlyMap<string, number>;
  /** Fwmark rules (fwmark-rules.ts) in the order they were added; absent: none. */
  readonly fwmarkRules?: readonly FwmarkRule[];
}

/** How many services and real servers the dataplane's maps can hold. */
export interface Limits {
  services: number;
  reals: number;
}

export const EMPTY_PLAN: PlanState = { memory: undefined, svcConns: 0, lastArrivals: 0, realConns: new Map() };

export const EMPTY_MODEL: Model = { services: new Map(), realCursor: 0 };

const ALL_ONES = 0xffffffff;
const IPV6_ALL = 128;

export const serviceName = (k: ServiceKey): string =>
  (k.fwmark ? `fwmark ${k.fwmark}${familyOf(k.addr) === FAMILY.inet6 ? ' ipv6' : ''}` : `${k.proto} ${k.addr}:${k.port}`);

export function findService(m: Model, k: ServiceKey): ServiceModel {
  const s = m.services.get(serviceName(k));
  if (!s) throw new XvsError('NO_SERVICE', `no service ${serviceName(k)}`);
  return s;
}

/** Port 0 means the service's port, as in requests. */
export function findReal(s: ServiceModel, spec: { addr: string; port: number }): RealModel {
  const port = spec.port === 0 ? s.port : spec.port;
  const r = s.reals.find((x) => x.addr === spec.addr && x.port === port);
  if (!r) throw new XvsError('NO_REAL', `no real server ${spec.addr}:${port} in service ${serviceName(s)}`);
  return r;
}

/** The model with `s` in place of the service of the same name (or added). */
export function withService(m: Model, s: ServiceModel): Model {
  return withServices(m, [s]);
}

/** withService for many at once (one copy of the map, not one per service). */
export function withServices(m: Model, list: readonly ServiceModel[]): Model {
  if (list.length === 0) return m;
  const services = new Map(m.services);
  for (const s of list) services.set(serviceName(s), s);
  return { ...m, services };
}

export function withoutService(m: Model, s: ServiceModel): Model {
  const services = new Map(m.services);
  services.delete(serviceName(s));
  return { ...m, services };
}

/** The addresses of every live real server. */
export function realAddrs(m: Model): Set<string> {
  const out = new Set<string>();
  for (const s of m.services.values()) for (const r of s.reals) out.add(r.addr);
  return out;
}

/** Real id -> generation of every live real server: which flows still count. */
export function realGens(m: Model): Map<number, number> {
  const gens = new Map<number, number>();
  for (const s of m.services.values()) for (const r of s.reals) gens.set(r.id, r.gen);
  return gens;
}

/** The protocol checked the mask's syntax for the service's family; a missing one is one client host. */
function persistence(spec: ServiceSpec): Pick<ServiceModel, 'persistent' | 'netmask'> {
  const v6 = familyOf(spec.addr) === FAMILY.inet6;
  const whole = v6 ? IPV6_ALL : ALL_ONES;
  if (spec.persistent === undefined) return { netmask: whole };
  if (spec.netmask === undefined) return { persistent: spec.persistent, netmask: whole };
  return { persistent: spec.persistent, netmask: (v6 ? prefixLength(spec.netmask) : netmaskBits(spec.netmask)) ?? whole };
}

/**
 * Whether an IPv6 service reaches an IPv4 real server (or local address)
 * through FULLNAT, which translates the header both ways (NAT64). The other
 * way round (an IPv4 VIP in front of IPv6 servers) is not offered: DPVS does
 * not either, and an IPv4 client's packets may not fit once 20 bytes larger.
 */
export function nat64(serviceAddr: string, addr: string): boolean {
  return familyOf(serviceAddr) === FAMILY.inet6 && familyOf(addr) === FAMILY.inet;
}

/**
 * DR leaves the packet's addresses as they are and NAT rewrites only one of
 * them: the real server is of the VIP's family. FULLNAT rewrites both, and
 * also translates an IPv6 VIP's flows to IPv4 real servers.
 */
function checkFamilies(s: ServiceModel, addr: string, fwd: ModeName): void {
  if (fwd === 'tun' || familyOf(addr) === familyOf(s.addr)) return;
  if (fwd === 'fullnat' && nat64(s.addr, addr)) return;
  throw new XvsError('BAD_ADDRESS', `${fwd.toUpperCase()} real server ${addr} is not of the address family of ${s.addr}`, {
    hint: fwd === 'fullnat' ? 'FULLNAT serves IPv4 real servers from an IPv6 VIP (NAT64), not the other way' : 'TUN (-i) carries either family in either; FULLNAT (-b) an IPv6 VIP to IPv4 servers',
  });
}

/**
 * What the kernel and ipvsadm refuse in a service whatever the rest: a port
 * 0 (every port of the VIP) without persistence, one-packet scheduling on
 * anything but UDP, or beside FULLNAT real servers (each datagram would
 * hold a local port until its reply side expires).
 */
function checkServiceSpec(spec: ServiceSpec, reals: readonly RealModel[]): void {
  // A fwmark service has no port of its own, and either protocol.
  if (!spec.fwmark) {
    if (spec.port === 0 && spec.persistent === undefined) throw new XvsError('BAD_ARGUMENT', 'Zero port specified for non-persistent service');
    if (spec.ops && spec.proto !== 'udp') throw new XvsError('BAD_ARGUMENT', 'One-Packet Scheduling is only for UDP virtual services');
  }
  if (spec.ops && reals.some((r) => r.fwd === 'fullnat')) throw opsWithFullnat();
}

const opsWithFullnat = (): XvsError => new XvsError('UNSUPPORTED', 'one-packet scheduling with FULLNAT real servers is not supported',
  { hint: 'each datagram would hold a local port until its reply side expired' });

function checkOps(s: ServiceModel, fwd: ModeName): void {
  if (s.ops && fwd === 'fullnat') throw opsWithFullnat();
}

const opsOf = (spec: ServiceSpec): Pick<ServiceModel, 'ops'> => (spec.ops ? { ops: true } : {});

export function addService(m: Model, spec: ServiceSpec, limits: Limits): Model {
  checkServiceSpec(spec, []);
  const addr = checkIp(spec.addr, 'virtual service');
  const name = serviceName(spec);
  if (m.services.has(name)) throw new XvsError('SERVICE_EXISTS', `service ${name} already exists`);
  const used = new Set([...m.services.values()].map((s) => s.id));
  let id = 0;
  while (used.has(id)) id++;
  if (id >= limits.services) throw new XvsError('CAPACITY', `at most ${limits.services} virtual services`);
  return withService(m, {
    id, proto: spec.proto, addr, port: spec.port, ...(spec.fwmark ? { fwmark: spec.fwmark } : {}), scheduler: checkSchedulerName(spec.scheduler),
    ...schedFlags(spec), ...persistence(spec), ...opsOf(spec), reals: [], tableSize: 0, plan: EMPTY_PLAN,
  });
}

/** ipvsadm sends the flags with every -A and -E: an edit without -b clears them, as the kernel does. */
const schedFlags = (spec: ServiceSpec): Pick<ServiceModel, 'schedFlags'> => (spec.schedFlags ? { schedFlags: spec.schedFlags } : {});

/** A new scheduler starts with no memory of the old one's plans. */
export function editService(m: Model, spec: ServiceSpec): Model {
  const s = findService(m, spec);
  checkServiceSpec(spec, s.reals);
  const scheduler = checkSchedulerName(spec.scheduler);
  const { persistent: _drop, ops: _ops, schedFlags: _flags, ...rest } = s;
  const plan = scheduler === s.scheduler ? s.plan : { ...s.plan, memory: undefined, previous: undefined };
  return withService(m, { ...rest, scheduler, ...schedFlags(spec), ...persistence(spec), ...opsOf(spec), plan });
}

export function delService(m: Model, k: ServiceKey): Model {
  return withoutService(m, findService(m, k));
}

/** ipvsadm -C: the whole table, fwmark rules included (a restore after -C adds them again). */
export function clearServices(m: Model): Model {
  const { fwmarkRules: _rules, ...rest } = m;
  return { ...rest, services: new Map() };
}

/** The model with these fwmark rules (none: absent). */
export function withFwmarkRules(m: Model, rules: readonly FwmarkRule[]): Model {
  const { fwmarkRules: _old, ...rest } = m;
  return rules.length > 0 ? { ...rest, fwmarkRules: rules } : rest;
}

/**
 * Next-fit, so a freed id (and its generation) is reused as late as
 * possible. `lastGen` is the generation the id's slot last carried.
 */
export function addReal(m: Model, k: ServiceKey, spec: RealSpec, limits: Limits, lastGen: (id: number) => number): { model: Model; real: RealModel } {
  const s = findService(m, k);
  const addr = checkIp(spec.addr, 'real server');
  const port = validateReal(spec.fwd, s.port, spec.port, s.fwmark !== undefined);
  checkFamilies(s, addr, spec.fwd);
  checkOps(s, spec.fwd);
  if (s.reals.some((r) => r.addr === addr && r.port === port)) {
    throw new XvsError('REAL_EXISTS', `real server ${addr}:${port} already in service ${serviceName(k)}`);
  }
  const live = realGens(m);
  let id = -1;
  for (let i = 0; i < limits.reals && id < 0; i++) {
    const candidate = (m.realCursor + i) % limits.reals;
    if (!live.has(candidate)) id = candidate;
  }
  if (id < 0) throw new XvsError('CAPACITY', `at most ${limits.reals} real servers`);
  const real: RealModel = {
    id, gen: (lastGen(id) + 1) >>> 0, addr, port, fwd: spec.fwd, weight: spec.weight, lastWeight: spec.weight,
    uthreshold: spec.uthreshold ?? 0, lthreshold: spec.lthreshold ?? 0, overloaded: false,
    ...(spec.tunnel ? { tunnel: spec.tunnel } : {}),
  };
  const model = withService({ ...m, realCursor: (id + 1) % limits.reals }, { ...s, reals: [...s.reals, real] });
  return { model, real };
}

/** `total`: the real's connections at the last count, to place it against new thresholds at once. */
export function editReal(m: Model, k: ServiceKey, spec: RealSpec, total: (id: number) => number): Model {
  const s = findService(m, k);
  const r = findReal(s, spec);
  validateReal(spec.fwd, s.port, r.port, s.fwmark !== undefined);
  checkFamilies(s, r.addr, spec.fwd);
  checkOps(s, spec.fwd);
  const uthreshold = spec.uthreshold ?? 0;
  const lthreshold = spec.lthreshold ?? 0;
  // The tunnel is replaced as a whole, as IPVS replaces it: an edit without one is IPIP.
  const { tunnel: _was, ...rest } = r;
  const next: RealModel = {
    // IPVS keeps the last weight above 0 through a quiesce (ip_vs_ctl.c, __ip_vs_update_dest).
    ...rest, fwd: spec.fwd, weight: spec.weight, lastWeight: spec.weight > 0 ? spec.weight : r.lastWeight, uthreshold, lthreshold,
    overloaded: nextOverload(r.overloaded, total(r.id), uthreshold, lthreshold),
    ...(spec.tunnel ? { tunnel: spec.tunnel } : {}),
  };
  return withService(m, { ...s, reals: s.reals.map((x) => (x === r ? next : x)) });
}

export function delReal(m: Model, k: ServiceKey, spec: { addr: string; port: number }): Model {
  const s = findService(m, k);
  const r = findReal(s, spec);
  return withService(m, { ...s, reals: s.reals.filter((x) => x !== r) });
}

/** A service may have this many local addresses (XVS_SVC_LADDRS_MAX). */
export const LADDRS_PER_SERVICE = 16;

/**
 * ipvsadm -P: a local address for the service's FULLNAT flows, of its
 * family. A new address takes the lowest free id of xvs_laddrs; when none
 * is free, the id of an address that no service's pool holds any more and
 * that no live flow carries (`carried`, asked only then: it reads the flow
 * tables).
 */
export function addLaddr(m: Model, k: ServiceKey, addr: string, maxIds: number, carried: () => ReadonlySet<number> = () => new Set()): Model {
  const s = findService(m, k);
  const a = checkIp(addr, 'local address');
  // An IPv6 service's pool may hold IPv4 addresses, for its IPv4 real servers (NAT64).
  if (familyOf(a) !== familyOf(s.addr) && !nat64(s.addr, a)) {
    throw new XvsError('BAD_ADDRESS', `local address ${a} is not of the address family of ${s.addr}`);
  }
  const list = s.laddrs ?? [];
  if (list.includes(a)) throw new XvsError('LADDR_EXISTS', `local address ${a} already in service ${serviceName(k)}`);
  if (list.length >= LADDRS_PER_SERVICE) throw new XvsError('CAPACITY', `service ${serviceName(k)} has ${LADDRS_PER_SERVICE} local addresses, the most a service can have`);
  const ids = new Map(m.laddrIds ?? []);
  if (!ids.has(a)) {
    const used = new Set(ids.values());
    let id = 0;
    while (used.has(id)) id++;
    if (id >= maxIds) {
      const pooled = new Set([...m.services.values()].flatMap((x) => x.laddrs ?? []));
      const busy = carried();
      const spare = [...ids].find(([x, i]) => !pooled.has(x) && !busy.has(i));
      if (!spare) throw new XvsError('CAPACITY', `at most ${maxIds} local addresses in all, and each is in a pool or carried by a live flow`);
      ids.delete(spare[0]);
      id = spare[1];
    }
    ids.set(a, id);
  }
  return withService({ ...m, laddrIds: ids }, { ...s, laddrs: [...list, a] });
}

/** ipvsadm -Q: new FULLNAT flows no longer take it; flows that have it keep it. */
export function delLaddr(m: Model, k: ServiceKey, addr: string): Model {
  const s = findService(m, k);
  const a = checkIp(addr, 'local address');
  if (!(s.laddrs ?? []).includes(a)) throw new XvsError('NO_LADDR', `no local address ${a} in service ${serviceName(k)}`);
  return withService(m, { ...s, laddrs: (s.laddrs ?? []).filter((x) => x !== a) });
}
