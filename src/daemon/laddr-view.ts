import type { LaddrView, ServiceKey } from '../control/protocol.js';
import { NAT_F } from '../maps/abi.js';
import * as C from '../maps/codecs.js';
import { readStateTimeouts } from './conn-count.js';
import type { Dataplane } from './dataplane.js';
import { endpoint, realsWithoutLaddr } from './laddr-warnings.js';
import { findService, serviceName, type Model } from './model.js';

// FULLNAT's local addresses as xvsadm -G and xvs status show them: each
// service's pool, and how many live flows hold a port of each address. The
// reply tables are the port allocator (natconn.h), so they are what is
// counted: a FULLNAT reply side is keyed by (RIP, rport, LIP, lport) and
// holds its port until its state's timeout runs out, as the dataplane
// decides with xvs_fresh().

/** Live FULLNAT reply sides per service id and local address. */
function portsHeld(dp: Dataplane): Map<number, Map<string, number>> {
  const out = new Map<number, Map<string, number>>();
  const now = dp.jiffies();
  const t = readStateTimeouts(dp);
  for (const table of [dp.nats.raw, dp.newReplies]) {
    const { keys, values } = table.lookupBatch(4096);
    values.forEach((vb, i) => {
      const n = C.nat.decode(vb);
      if ((n.flags & NAT_F.fullnat) === 0) return;
      if (now - n.last_seen > (t[n.state] ?? 0) * dp.hz) return;
      const laddr = C.connKey.decode(keys[i]!).daddr;
      const per = out.get(n.svc_id) ?? new Map<string, number>();
      per.set(laddr, (per.get(laddr) ?? 0) + 1);
      out.set(n.svc_id, per);
    });
  }
  return out;
}

/** xvsadm -G: one service's local addresses, or every service's (in the order of their ids). */
export function laddrView(dp: Dataplane, m: Model, k?: ServiceKey): LaddrView[] {
  const targets = k ? [findService(m, k)] : [...m.services.values()].sort((a, b) => a.id - b.id);
  const held = portsHeld(dp);
  return targets.map((s) => ({
    proto: s.proto, addr: s.addr, port: s.port,
    laddrs: (s.laddrs ?? []).map((addr) => ({ addr, conns: held.get(s.id)?.get(addr) ?? 0 })),
  }));
}

/** A FULLNAT service in xvs status: its pool, and the real servers it cannot serve. */
export interface FullnatStatus {
  service: string;
  laddrs: LaddrView['laddrs'];
  /** FULLNAT real servers with no local address of their family in the pool: their new flows are dropped (fnat_no_laddr). */
  realsWithoutLaddr: string[];
}

/** Every service with a local address or a FULLNAT real server. */
export function fullnatStatus(dp: Dataplane, m: Model): FullnatStatus[] {
  const held = portsHeld(dp);
  return [...m.services.values()]
    .filter((s) => (s.laddrs ?? []).length > 0 || s.reals.some((r) => r.fwd === 'fullnat'))
    .sort((a, b) => a.id - b.id)
    .map((s) => ({
      service: serviceName(s),
      laddrs: (s.laddrs ?? []).map((addr) => ({ addr, conns: held.get(s.id)?.get(addr) ?? 0 })),
      realsWithoutLaddr: [...realsWithoutLaddr(s).values()].flat().map((r) => endpoint(r.addr, r.port)),
    }));
}
