// xvs_if_mtus: the MTU of each interface the director is attached to, by
// ifindex, which a NAT or FULLNAT reply must fit when it leaves towards the
// client (nat.h, xvs_reply_fits). Read from the link dump every next-hop
// refresh already makes, and written in the same transaction, so an MTU
// change reaches the dataplane as a next hop's does (nexthop-refresh.ts).
import { logger } from '../log.js';
import type { Link } from './ip-tables.js';

const log = logger('if-mtus');

/** Ifindexes past the map's size already reported (once each). */
const reported = new Set<number>();

/**
 * The entries for these interfaces, found by ifindex in the link table (a
 * renamed interface is the same one), and their links as the refresh's view
 * watches them. An interface missing from the table, or whose ifindex the
 * array cannot hold, has no entry: its replies are forwarded unchecked.
 */
export function ifMtusOf(ports: readonly { ifindex: number; name: string }[], links: ReadonlyMap<string, Link>, maxEntries: number): { mtus: Map<number, number>; watched: Link[] } {
  const byIndex = new Map([...links.values()].map((l) => [l.ifindex, l]));
  const mtus = new Map<number, number>();
  const watched: Link[] = [];
  for (const p of ports) {
    const l = byIndex.get(p.ifindex);
    if (!l) continue;
    watched.push(l);
    if (p.ifindex >= maxEntries) {
      if (!reported.has(p.ifindex)) log.warn({ interface: p.name, ifindex: p.ifindex, max: maxEntries - 1 }, 'ifindex past xvs_if_mtus: NAT replies leaving there are not checked against its MTU');
      reported.add(p.ifindex);
      continue;
    }
    if (l.mtu > 0) mtus.set(p.ifindex, l.mtu);
  }
  return { mtus, watched };
}
