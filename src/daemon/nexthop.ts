// The next hop of each real server as the kernel would route to it: egress
// interface, the next hop's MAC, the interface's MAC, the route's MTU and
// source address. The dataplane keeps them in xvs_nexthops so the packet
// path needs no bpf_fib_lookup; an entry that cannot be filled (no route, or
// a neighbour not resolved) is written "unknown" (ifindex 0, the tunnel
// source kept) and the dataplane asks the FIB itself, counting nh_miss, and
// drops what the FIB cannot resolve either (no_neigh, fib_fail) instead of
// sending it to a stale MAC.
import { isIPv6 } from 'node:net';
import type { Nexthop } from '../maps/codecs.js';
import { neighbourKey, readIpTables, usableMac, type IpContext, type IpTables } from './ip-tables.js';

export const UNKNOWN_NEXTHOP = (saddr: string): Nexthop => ({
  ifindex: 0, mtu: 0, dmac: '00:00:00:00:00:00', smac: '00:00:00:00:00:00', saddr,
});

/** What one real server address resolved to. */
export interface Resolution {
  addr: string;
  nh: Nexthop;
  /** The neighbour the route goes through (the gateway, or the address itself), when there is a route. */
  hop?: { addr: string; dev: string };
  /** Why nh is unknown; absent when it is resolved. */
  unresolved?: string;
}

/**
 * tunnelSource, when of the address's family, is the tunnel's outer source
 * (xvsd --tunnel-source); otherwise the route's preferred source is.
 */
export function nexthopFrom(addr: string, t: IpTables, tunnelSource?: string): Resolution {
  const v6 = isIPv6(addr);
  const src = tunnelSource !== undefined && isIPv6(tunnelSource) === v6 ? tunnelSource : undefined;
  const unknown = UNKNOWN_NEXTHOP(src ?? (v6 ? '::' : '0.0.0.0'));
  const route = t.routes.get(addr);
  if (!route?.dev) return { addr, nh: unknown, unresolved: 'no route' };
  if (route.type !== undefined && route.type !== 'unicast') return { addr, nh: unknown, unresolved: `route type ${route.type}` };
  const saddr = src ?? route.prefsrc ?? unknown.saddr;
  const hop = { addr: route.gateway ?? addr, dev: route.dev };
  const link = t.links.get(route.dev);
  if (!link) return { addr, hop, nh: { ...unknown, saddr }, unresolved: `no link ${route.dev}` };
  const neigh = t.neighbours.get(neighbourKey(hop.addr, hop.dev));
  const dmac = usableMac(neigh);
  if (!dmac) {
    return { addr, hop, nh: { ...unknown, saddr }, unresolved: `neighbour ${hop.addr} on ${hop.dev} ${neigh ? neigh.state.join(',') || 'NONE' : 'absent'}` };
  }
  return {
    addr, hop,
    nh: { ifindex: link.ifindex, mtu: route.mtu ?? link.mtu, dmac, smac: link.address ?? '00:00:00:00:00:00', saddr },
  };
}

/** Every address resolved from one read of the kernel's tables. */
export async function resolveNexthops(addrs: readonly string[], tunnelSource?: string, ctx: IpContext = {}): Promise<{ resolutions: Map<string, Resolution>; tables: IpTables }> {
  const unique = [...new Set(addrs)];
  const tables = await readIpTables(unique, ctx);
  return { resolutions: new Map(unique.map((a) => [a, nexthopFrom(a, tables, tunnelSource)])), tables };
}

/** One address (add-real). */
export async function resolveNexthop(addr: string, tunnelSource?: string, ctx: IpContext = {}): Promise<Nexthop> {
  const { resolutions } = await resolveNexthops([addr], tunnelSource, ctx);
  return resolutions.get(addr)!.nh;
}
