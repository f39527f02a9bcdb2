// The next hop of each real server as the kernel would route to it: egress
// interface, the next hop's MAC, the interface's MAC, the route's MTU and
// source address. The dataplane keeps them in xvs_nexthops so the packet
// path needs no bpf_fib_lookup; an entry it cannot fill (no route, or a
// neighbour not resolved yet) stays at ifindex 0 and the dataplane asks the
// FIB itself, counting nh_miss.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

function sysNet(dev: string, file: string): string {
  return readFileSync(`/sys/class/net/${dev}/${file}`, 'utf8').trim();
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
  const mtu = route.metrics?.find((m) => m.mtu !== undefined)?.mtu ?? Number(sysNet(route.dev, 'mtu'));
  if (!neigh?.lladdr) return { ...unknown, saddr };
  return {
    ifindex: Number(sysNet(route.dev, 'ifindex')),
    mtu,
    dmac: neigh.lladdr,
    smac: sysNet(route.dev, 'address'),
    saddr,
  };
}
