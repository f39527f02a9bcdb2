// The next hop of each real server as the kernel would route to it: egress
// interface, the next hop's MAC, the interface's MAC, the route's MTU and
// source address. The dataplane keeps them in xvs_nexthops so the packet
// path needs no bpf_fib_lookup; an entry it cannot fill (no route, or a
// neighbour not resolved yet) stays at ifindex 0 and the dataplane asks the
// FIB itself, counting nh_miss.
import { execFile } from 'node:child_process';
import { isIPv6 } from 'node:net';
import { promisify } from 'node:util';
import type { Nexthop } from '../maps/codecs.js';

const run = promisify(execFile);

interface RouteGet { dst?: string; dev?: string; gateway?: string; prefsrc?: string; type?: string; metrics?: { mtu?: number }[] }
interface Neigh { dst: string; lladdr?: string; state?: string[] }

/** Neighbour states in which the kernel itself would send to the MAC it holds. */
const USABLE = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP']);

export const UNKNOWN_NEXTHOP = (saddr: string): Nexthop => ({
  ifindex: 0, mtu: 0, dmac: '00:00:00:00:00:00', smac: '00:00:00:00:00:00', saddr,
});

interface Link { ifindex: number; address?: string; mtu: number }

// Netlink (ip), not /sys/class/net: sysfs shows the devices of the namespace
// that mounted it, netlink those of the caller's.
async function link(dev: string): Promise<Link> {
  const { stdout } = await run('ip', ['-j', 'link', 'show', 'dev', dev]);
  const l = (JSON.parse(stdout) as Link[])[0];
  if (!l) throw new Error(`no link ${dev}`);
  return l;
}

/**
 * Resolves the next hop towards addr. tunnelSource, when given, is the
 * tunnel's outer source for a real server of its family (xvsd
 * --tunnel-source); otherwise the route's preferred source is.
 */
export async function resolveNexthop(addr: string, tunnelSource?: string): Promise<Nexthop> {
  const v6 = isIPv6(addr);
  const fam = v6 ? '-6' : '-4';
  const src = tunnelSource !== undefined && isIPv6(tunnelSource) === v6 ? tunnelSource : undefined;
  const unknown = UNKNOWN_NEXTHOP(src ?? (v6 ? '::' : '0.0.0.0'));
  let route: RouteGet | undefined;
  try {
    const { stdout } = await run('ip', ['-j', fam, 'route', 'get', addr]);
    route = (JSON.parse(stdout) as RouteGet[])[0];
  } catch {
    return unknown;
  }
  if (!route?.dev || (route.type !== undefined && route.type !== 'unicast')) return unknown;
  const saddr = src ?? route.prefsrc ?? unknown.saddr;
  const nh = route.gateway ?? addr;
  const { stdout } = await run('ip', ['-j', fam, 'neigh', 'show', 'to', nh, 'dev', route.dev]);
  const neigh = (JSON.parse(stdout) as Neigh[]).find((n) => n.lladdr && (n.state ?? []).some((s) => USABLE.has(s)));
  if (!neigh?.lladdr) return { ...unknown, saddr };
  const dev = await link(route.dev);
  return {
    ifindex: dev.ifindex,
    mtu: route.metrics?.find((m) => m.mtu !== undefined)?.mtu ?? dev.mtu,
    dmac: neigh.lladdr,
    smac: dev.address ?? '00:00:00:00:00:00',
    saddr,
  };
}
