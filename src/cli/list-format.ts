import { isIPv4 } from 'node:net';
import { DEFAULT_NETMASK, DEFAULT_PREFIX6, type ConnView, type Fwd, type ListResult, type RateView, type RealView, type ServiceView, type StatsView, type Timeouts } from '../control/protocol.js';
import { formatSchedFlags } from '../schedulers/flags.js';
import { IPVS_VERSION } from './ipvsadm-args.js';
import { afOf, compareAddr, ipvsSort, ntop } from './list-order.js';
import { tunInfo } from './tun-format.js';
import type { Names } from './names.js';

// ipvsadm -L byte for byte (ipvsadm.c: print_title, print_service_entry,
// print_largenum, list_conn): column widths, the trailing blanks of the
// padded last column, sort order, K/M/G/T abbreviations, and without -n the
// host and service names cut where ipvsadm cuts them (33 characters for the
// service column, 28 for a destination, IPv4 only).

export interface ListFormatOptions {
  stats: boolean;
  exact: boolean;
  /** The --thresholds layout; --stats wins if both are set, as in ipvsadm. */
  thresholds?: boolean;
  rate?: boolean;
  persistentConn?: boolean;
  tunInfo?: boolean;
  /** Services and real servers in the daemon's order. */
  nosort?: boolean;
  /** The "IP Virtual Server version" line; ipvsadm omits it when listing one service. */
  header?: boolean;
  /** Host and service names (no -n); absent: numeric. */
  names?: Names;
}

const FWD_NAMES: Record<Fwd, string> = { dr: 'Route', tun: 'Tunnel', nat: 'Masq', fullnat: 'FullNat' };

/** ipvsadm's print_largenum: a 9-wide column, abbreviated past 8 digits unless exact. */
export function largeNum(n: number, exact: boolean): string {
  const s = String(n);
  if (exact) return s.padStart(s.length <= 8 ? 9 : s.length + 1);
  if (n < 1e8) return s.padStart(9);
  const [div, unit] = n < 1e9 ? [1e3, 'K'] : n < 1e11 ? [1e6, 'M'] : n < 1e14 ? [1e9, 'G'] : [1e12, 'T'];
  return `${Math.floor(n / div)}${unit}`.padStart(9);
}

/** addrport_to_anyname: numeric (inet_ntop's text), or the host's and the port's names where they have one. */
export function hostPort(addr: string, port: number, proto: string, names?: Names): string {
  const host = names?.hostOf(addr) ?? ntop(addr);
  const p = names?.serviceOf(port, proto as 'tcp' | 'udp') ?? String(port);
  return isIPv4(addr) ? `${host}:${p}` : `[${host}]:${p}`;
}

const PROTO_ORDER = { tcp: 6, udp: 17 } as const;

// ipvs_cmp_services and ipvs_cmp_dests, sorted as glibc's qsort sorts (list-order.ts).
// fwmark first (`r = s1->fwmark - s2->fwmark`, an unsigned difference read as an int): address services, with none, come first.
function byService(a: ServiceView, b: ServiceView): number {
  return (((a.fwmark ?? 0) - (b.fwmark ?? 0)) | 0) || afOf(a.addr) - afOf(b.addr) || PROTO_ORDER[a.proto] - PROTO_ORDER[b.proto] || compareAddr(a.addr, b.addr) || a.port - b.port;
}

function byReal(port: number): (a: RealView, b: RealView) => number {
  return (a, b) => compareAddr(a.addr, b.addr) || (a.port || port) - (b.port || port);
}

export function sortedServices(res: ListResult, nosort = false): ServiceView[] {
  return nosort ? [...res.services] : ipvsSort(res.services, byService);
}

export function sortedReals(svc: ServiceView, nosort = false): RealView[] {
  return nosort ? [...svc.reals] : ipvsSort(svc.reals, byReal(svc.port));
}

function statsColumns(s: StatsView, exact: boolean): string {
  return [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes].map((n) => largeNum(n, exact)).join('');
}

const ZERO_RATES: RateView = { cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 };

// ipvsadm's " (sched-flags)" when any flag bit is set, then " persistent T"
// with " mask M" for a service whose granularity is coarser than one host (a
// dotted mask, or an IPv6 prefix length), then " ops".
function flags(svc: ServiceView): string {
  const sched = svc.schedFlags ? ` (${formatSchedFlags(svc.scheduler, svc.schedFlags)})` : '';
  const ops = svc.ops ? ' ops' : '';
  if (svc.persistent === undefined) return `${sched}${ops}`;
  const whole = isIPv4(svc.addr) ? DEFAULT_NETMASK : DEFAULT_PREFIX6;
  const mask = svc.netmask !== undefined && svc.netmask !== whole ? ` mask ${svc.netmask}` : '';
  return `${sched} persistent ${svc.persistent}${mask}${ops}`;
}

/** A fwmark service as ipvsadm names it: "FWM  1", "FWM  1 IPv6" (addr: its family's unspecified address). */
export function fwmarkName(fwmark: number, addr: string): string {
  return `FWM  ${fwmark}${isIPv4(addr) ? '' : ' IPv6'}`;
}

/** The service column: "TCP  host:port", cut at 33 characters for IPv4 as ipvsadm's svc_name[33]; "FWM  %d" (" IPv6") for a fwmark service. */
function serviceName(svc: ServiceView, names?: Names): string {
  if (svc.fwmark) return fwmarkName(svc.fwmark, svc.addr);
  const name = `${svc.proto.toUpperCase().padEnd(4)} ${hostPort(svc.addr, svc.port, svc.proto, names)}`;
  return isIPv4(svc.addr) ? name.slice(0, 33) : name;
}

function realName(svc: ServiceView, r: RealView, names?: Names): string {
  // A real stored without its own port forwards to the service port.
  const name = hostPort(r.addr, r.port || svc.port, svc.proto, names);
  return isIPv4(r.addr) ? name.slice(0, 28) : name;
}

function realLine(svc: ServiceView, r: RealView, opts: ListFormatOptions): string {
  const name = realName(svc, r, opts.names).padEnd(28);
  if (opts.stats) return `  -> ${name}${statsColumns(r.stats, opts.exact)}`;
  if (opts.rate) {
    const t = r.rates ?? ZERO_RATES;
    return `  -> ${name} ${[t.cps, t.inpps, t.outpps].map((n) => String(n).padStart(8)).join(' ')}${largeNum(t.inbps, opts.exact)}${largeNum(t.outbps, opts.exact)}`;
  }
  if (opts.thresholds) {
    return `  -> ${name} ${[r.uthreshold, r.lthreshold, r.activeConns, r.inactConns].map((n) => String(n).padEnd(10)).join(' ')}`;
  }
  if (opts.persistentConn) {
    return `  -> ${name} ${String(r.weight).padEnd(9)} ${String(r.persistConns ?? 0).padEnd(11)} ${String(r.activeConns).padEnd(10)} ${String(r.inactConns).padEnd(10)}`;
  }
  if (opts.tunInfo) {
    const info = tunInfo(r);
    return `  -> ${name} ${FWD_NAMES[r.fwd].padEnd(7)} ${info.padEnd(13)} ${String(r.weight).padEnd(6)} ${String(r.activeConns).padEnd(10)} ${String(r.inactConns).padEnd(10)}`;
  }
  return `  -> ${name} ${FWD_NAMES[r.fwd].padEnd(7)} ${String(r.weight).padEnd(6)} ${String(r.activeConns).padEnd(10)} ${String(r.inactConns).padEnd(10)}`;
}

function title(opts: ListFormatOptions): string[] {
  const cols = (heads: string[], w: number, left: boolean) => heads.map((h) => (left ? h.padEnd(w) : h.padStart(w))).join(' ');
  const first = 'Prot LocalAddress:Port'.padEnd(33);
  if (opts.stats) return [`${first} ${cols(['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'], 8, false)}`, '  -> RemoteAddress:Port'];
  if (opts.rate) return [`${first} ${cols(['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'], 8, false)}`, '  -> RemoteAddress:Port'];
  if (opts.thresholds) return [`${first} ${cols(['Uthreshold', 'Lthreshold', 'ActiveConn', 'InActConn'], 10, true)}`, '  -> RemoteAddress:Port'];
  if (opts.persistentConn) {
    return [`${first} ${'Weight'.padEnd(9)} ${'PersistConn'.padEnd(11)} ${'ActiveConn'.padEnd(10)} ${'InActConn'.padEnd(10)}`, '  -> RemoteAddress:Port'];
  }
  if (opts.tunInfo) return ['Prot LocalAddress:Port Scheduler Flags', '  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn'];
  return ['Prot LocalAddress:Port Scheduler Flags', '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn'];
}

export function formatList(res: ListResult, opts: ListFormatOptions): string {
  const lines: string[] = [];
  if (opts.header ?? true) lines.push(`IP Virtual Server version ${IPVS_VERSION} (size=${res.connTableSize})`);
  lines.push(...title(opts));
  for (const svc of sortedServices(res, opts.nosort)) {
    const name = serviceName(svc, opts.names);
    if (opts.stats) lines.push(`${name.padEnd(33)}${statsColumns(svc.stats, opts.exact)}`);
    else if (opts.rate) {
      const t = svc.rates ?? ZERO_RATES;
      lines.push(`${name.padEnd(33)}${[t.cps, t.inpps, t.outpps, t.inbps, t.outbps].map((n) => largeNum(n, opts.exact)).join('')}`);
    } else lines.push(`${name} ${svc.scheduler}${flags(svc)}`);
    for (const r of sortedReals(svc, opts.nosort)) lines.push(realLine(svc, r, opts));
  }
  return `${lines.join('\n')}\n`;
}

/** `ipvsadm -L --timeout`. */
export function formatTimeouts(t: Timeouts): string {
  return `Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpfin} ${t.udp}\n`;
}

/** `ipvsadm -L -c` (list_conn, print_conn). */
export function formatConnections(conns: readonly ConnView[], opts: { names?: Names; persistentConn?: boolean }): string {
  const lines = ['IPVS connection entries'];
  if (opts.persistentConn) {
    lines.push(`pro expire ${'state'.padEnd(11)} ${'source'.padEnd(18)} ${'virtual'.padEnd(18)} ${'destination'.padEnd(18)} ${'pe name'.padEnd(16)} pe_data`);
  } else {
    lines.push(`pro expire ${'state'.padEnd(11)} ${'source'.padEnd(18)} ${'virtual'.padEnd(18)} destination`);
  }
  for (const c of conns) {
    const expire = `${String(Math.floor(c.expires / 60)).padStart(2, '0')}:${String(c.expires % 60).padStart(2, '0')}`;
    const proto = c.fwmark ? 'IP' : c.proto.toUpperCase();
    lines.push([
      proto.padEnd(3), expire.padEnd(6), c.state.padEnd(11),
      hostPort(c.caddr, c.cport, c.proto, opts.names).padEnd(18),
      hostPort(c.vaddr, c.vport, c.proto, opts.names).padEnd(18),
      hostPort(c.daddr, c.dport, c.proto, opts.names),
    ].join(' '));
  }
  return `${lines.join('\n')}\n`;
}

/** Every address a listing shows: what a listing without -n has to look up. */
export function listedAddrs(res: ListResult): string[] {
  return res.services.flatMap((s) => [...(s.fwmark ? [] : [s.addr]), ...s.reals.map((r) => r.addr)]);
}
