import { logger } from '../log.js';
import { neighbourKey, runBatch, usableMac, type IpContext, type IpTables } from './ip-tables.js';

const log = logger('neigh');

// The dataplane takes next-hop MACs from the kernel's neighbour table, which
// XDP cannot make the kernel resolve, and the kernel's own stack sends
// nothing to a real server that would keep its entry confirmed. A "managed"
// neighbour entry (Linux 5.16+) is one the kernel resolves, re-probes and
// keeps fresh by itself, so every next hop the director uses (a real server
// on the link, or the gateway its route goes through) gets one.

/**
 * The `ip -batch` lines that make these next hops managed. An entry the
 * kernel already trusts is converted with its MAC and state given, so it
 * never passes through INCOMPLETE (a plain `replace ... managed` would
 * restart resolution and drop packets meanwhile); a permanent or NOARP entry
 * needs no probing and is left alone, as is one already managed.
 */
export function neighbourFixes(hops: Iterable<{ addr: string; dev: string }>, t: IpTables): string[] {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const h of hops) {
    const key = neighbourKey(h.addr, h.dev);
    if (seen.has(key)) continue;
    seen.add(key);
    const n = t.neighbours.get(key);
    if (n?.managed || n?.state.some((s) => s === 'PERMANENT' || s === 'NOARP')) continue;
    const mac = usableMac(n);
    lines.push(mac
      ? `neigh replace ${h.addr} lladdr ${mac} dev ${h.dev} nud stale managed`
      : `neigh replace ${h.addr} dev ${h.dev} managed`);
  }
  return lines;
}

export async function ensureNeighbours(hops: Iterable<{ addr: string; dev: string }>, t: IpTables, ctx: IpContext = {}): Promise<void> {
  const lines = neighbourFixes(hops, t);
  if (lines.length === 0) return;
  const err = await runBatch(lines, ctx);
  if (err) log.warn({ err }, 'cannot set some managed neighbours; their packets may be dropped as no_neigh');
  else log.debug({ count: lines.length }, 'managed neighbours set');
}
