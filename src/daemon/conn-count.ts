import type { Timeouts } from '../control/protocol.js';
import * as C from '../maps/codecs.js';
import type { Dataplane } from './dataplane.js';

// Connection states (XVS_CS_*) and IPVS's TCP and UDP timeouts
// (ip_vs_proto_tcp.c / _udp.c defaults, the `ipvsadm --set tcp tcpfin udp` values).
const STATE = { NONE: 0, ESTABLISHED: 1, SYN_RECV: 2, FIN_WAIT: 3, CLOSE: 4, UDP: 5 } as const;
export const DEFAULT_TIMEOUTS = { tcp: 900, tcpfin: 120, udp: 300 } as const;

/** The timeouts the dataplane applies now: xvs_config's, 0 meaning the default. */
export function readTimeouts(dp: Dataplane): Timeouts {
  const c = dp.config.get(0);
  return {
    tcp: c?.timeout_tcp || DEFAULT_TIMEOUTS.tcp,
    tcpfin: c?.timeout_tcpfin || DEFAULT_TIMEOUTS.tcpfin,
    udp: c?.timeout_udp || DEFAULT_TIMEOUTS.udp,
  };
}

/** Seconds an entry in this state lives after its last packet, as bpf/dataplane/flow.h decides. */
function timeoutOf(state: number, t: { tcp: number; tcpfin: number; udp: number }): number {
  switch (state) {
    case STATE.ESTABLISHED: return t.tcp;
    case STATE.FIN_WAIT: return t.tcpfin;
    case STATE.UDP: return t.udp;
    case STATE.SYN_RECV: return 60;
    default: return 10;
  }
}

export interface ConnCounts { active: number; inactive: number }

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

export function countConns(dp: Dataplane, gens: ReadonlyMap<number, number>, timeouts: { tcp: number; tcpfin: number; udp: number }): ConnCensus {
  const out = new Map<number, ConnCounts>();
  const destinations = new Map<number, Map<string, number>>();
  const now = Number(process.hrtime.bigint()); // CLOCK_MONOTONIC, as bpf_ktime_get_ns
  const { keys, values } = dp.conns.raw.lookupBatch(4096);
  values.forEach((vb, i) => {
    const c = C.conn.decode(vb);
    if (gens.get(c.real_id) !== c.real_gen) return;
    const ageS = (now - c.last_seen_ns) / 1e9;
    if (ageS > timeoutOf(c.state, timeouts)) return;
    const n = out.get(c.real_id) ?? { active: 0, inactive: 0 };
    if (c.state === STATE.ESTABLISHED) n.active++;
    else n.inactive++;
    out.set(c.real_id, n);
    const daddr = C.connKey.decode(keys[i]!).daddr;
    const d = destinations.get(c.svc_id) ?? new Map<string, number>();
    d.set(daddr, (d.get(daddr) ?? 0) + 1);
    destinations.set(c.svc_id, d);
  });
  return { reals: out, destinations };
}
