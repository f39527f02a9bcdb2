import type { Timeouts } from '../control/protocol.js';
import * as C from '../maps/codecs.js';
import type { Dataplane } from './dataplane.js';
import { CONN_STATE } from '../maps/abi.js';
import { defaultTimeouts, setView } from './timeouts.js';

/** The timeout table the dataplane applies now (the control plane wrote it at load). */
export function readStateTimeouts(dp: Pick<Dataplane, 'config'>): number[] {
  return dp.config.get(0)?.timeout ?? defaultTimeouts();
}

/** The timeouts ipvsadm --set changes, as the dataplane applies them now. */
export function readTimeouts(dp: Dataplane): Timeouts {
  return setView(readStateTimeouts(dp));
}

export interface ConnCounts { active: number; inactive: number }

/**
 * xvs_fresh in bpf/dataplane/sched.h, the one rule for whether an entry
 * still counts: its state's timeout has not run out since its last packet
 * (jiffies). Every census of the flow tables asks this.
 */
export function fresh(now: number, lastSeen: number, timeoutSeconds: number, hz: number): boolean {
  return now - lastSeen <= timeoutSeconds * hz;
}

/** ipvsadm's ActiveConn: established; every other live state is InActConn. */
export const isActive = (state: number): boolean => state === CONN_STATE.established;

/**
 * ActiveConn/InActConn per real id, as ipvsadm -L shows them, counted from
 * the connection table itself: an entry counts while its state's timeout has
 * not run out since its last packet.
 */
export interface ConnCensus {
  /** By real id. */
  reals: Map<number, ConnCounts>;
  /** By service id: live flows per destination address (lblc/lblcr locality). */
  destinations: Map<number, Map<string, number>>;
}

export function countConns(dp: Dataplane, gens: ReadonlyMap<number, number>): ConnCensus {
  const out = new Map<number, ConnCounts>();
  const destinations = new Map<number, Map<string, number>>();
  const now = dp.jiffies();
  const t = readStateTimeouts(dp);
  // Confirmed flows and new ones (SYN_RECV, a first datagram): IPVS counts both.
  for (const table of [dp.conns.raw, dp.newFlows]) {
    const { keys, values } = table.lookupBatch(4096);
    values.forEach((vb, i) => {
      const c = C.conn.decode(vb);
      if (gens.get(c.real_id) !== c.real_gen) return;
      if (!fresh(now, c.last_seen, t[c.state] ?? 0, dp.hz)) return;
      const n = out.get(c.real_id) ?? { active: 0, inactive: 0 };
      if (isActive(c.state)) n.active++;
      else n.inactive++;
      out.set(c.real_id, n);
      const daddr = C.connKey.decode(keys[i]!).daddr;
      const d = destinations.get(c.svc_id) ?? new Map<string, number>();
      d.set(daddr, (d.get(daddr) ?? 0) + 1);
      destinations.set(c.svc_id, d);
    });
  }
  return { reals: out, destinations };
}
