import { isIPv4 } from 'node:net';
import { DEFAULT_NETMASK, DEFAULT_PREFIX6, type Fwd, type ListResult, type RealView, type ServiceView, type StatsView, type Timeouts } from '../control/protocol.js';
import { addrPort, afOf, compareAddr, ipvsSort } from './list-order.js';

// `ipvsadm -L -n` byte for byte (column widths, the trailing blanks of the
// padded last column, sort order, K/M/G/T abbreviations), so scripts that
// parse ipvsadm's listing can parse ours. Addresses are always numeric.

export interface ListFormatOptions {
  stats: boolean;
  exact: boolean;
  /** The --thresholds layout; --stats wins if both are set, as in ipvsadm. */
  thresholds?: boolean;
  /** The "IP Virtual Server version" line; ipvsadm omits it when listing one service. */
  header?: boolean;
}

const FWD_NAMES: Record<Fwd, string> = { dr: 'Route', tun: 'Tunnel', nat: 'Masq', fullnat: 'FullNat' };

// The IPVS version ipvsadm prints; tools grep for it.
const IPVS_VERSION = '1.2.1';

/** ipvsadm's print_largenum: a 9-wide column, abbreviated past 8 digits unless exact. */
export function largeNum(n: number, exact: boolean): string {
  const s = String(n);
  if (exact) return s.padStart(s.length <= 8 ? 9 : s.length + 1);
  if (n < 1e8) return s.padStart(9);
  const [div, unit] = n < 1e9 ? [1e3, 'K'] : n < 1e11 ? [1e6, 'M'] : n < 1e14 ? [1e9, 'G'] : [1e12, 'T'];
  return `${Math.floor(n / div)}${unit}`.padStart(9);
}

function hostPort(addr: string, port: number): string {
  return addrPort(addr, port);
}

const PROTO_ORDER = { tcp: 6, udp: 17 } as const;

// ipvs_cmp_services and ipvs_cmp_dests (list-order.ts).
function byService(a: ServiceView, b: ServiceView): number {
  return afOf(a.addr) - afOf(b.addr) || PROTO_ORDER[a.proto] - PROTO_ORDER[b.proto] || compareAddr(a.addr, b.addr) || a.port - b.port;
}

function byReal(port: number): (a: RealView, b: RealView) => number {
  return (a, b) => compareAddr(a.addr, b.addr) || (a.port || port) - (b.port || port);
}

function statsColumns(s: StatsView, exact: boolean): string {
  return [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes].map((n) => largeNum(n, exact)).join('');
}

// ipvsadm's " persistent T" flag, with " mask M" for a service whose
// granularity is coarser than one host: a dotted mask, or an IPv6 prefix length.
function flags(svc: ServiceView): string {
  if (svc.persistent === undefined) return '';
  const whole = isIPv4(svc.addr) ? DEFAULT_NETMASK : DEFAULT_PREFIX6;
  const mask = svc.netmask !== undefined && svc.netmask !== whole ? ` mask ${svc.netmask}` : '';
  return ` persistent ${svc.persistent}${mask}`;
}

function realLine(svc: ServiceView, r: RealView, opts: ListFormatOptions): string {
  // A real stored without its own port forwards to the service port.
  const name = hostPort(r.addr, r.port || svc.port).padEnd(28);
  if (opts.stats) return `  -> ${name}${statsColumns(r.stats, opts.exact)}`;
  if (opts.thresholds) {
    return `  -> ${name} ${[r.uthreshold, r.lthreshold, r.activeConns, r.inactConns].map((n) => String(n).padEnd(10)).join(' ')}`;
  }
  return `  -> ${name} ${FWD_NAMES[r.fwd].padEnd(7)} ${String(r.weight).padEnd(6)} ${String(r.activeConns).padEnd(10)} ${String(r.inactConns).padEnd(10)}`;
}

export function formatList(res: ListResult, opts: ListFormatOptions): string {
  const lines: string[] = [];
  if (opts.header ?? true) lines.push(`IP Virtual Server version ${IPVS_VERSION} (size=${res.connTableSize})`);
  if (opts.stats) {
    const heads = ['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'].map((h) => h.padStart(8)).join(' ');
    lines.push(`${'Prot LocalAddress:Port'.padEnd(33)} ${heads}`, '  -> RemoteAddress:Port');
  } else if (opts.thresholds) {
    const heads = ['Uthreshold', 'Lthreshold', 'ActiveConn', 'InActConn'].map((h) => h.padEnd(10)).join(' ');
    lines.push(`${'Prot LocalAddress:Port'.padEnd(33)} ${heads}`, '  -> RemoteAddress:Port');
  } else {
    lines.push('Prot LocalAddress:Port Scheduler Flags', '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn');
  }
  for (const svc of ipvsSort(res.services, byService)) {
    const name = `${svc.proto.toUpperCase()}  ${hostPort(svc.addr, svc.port)}`;
    lines.push(opts.stats ? `${name.padEnd(33)}${statsColumns(svc.stats, opts.exact)}` : `${name} ${svc.scheduler}${flags(svc)}`);
    for (const r of ipvsSort(svc.reals, byReal(svc.port))) lines.push(realLine(svc, r, opts));
  }
  return `${lines.join('\n')}\n`;
}

/** `ipvsadm -L --timeout`. */
export function formatTimeouts(t: Timeouts): string {
  return `Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpfin} ${t.udp}\n`;
}
