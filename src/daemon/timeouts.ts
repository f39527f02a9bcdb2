import type { Timeouts } from '../control/protocol.js';
import { CONN_STATE } from '../maps/abi.js';

type StateName = Exclude<keyof typeof CONN_STATE, 'max'>;

/**
 * IPVS's connection timeouts in seconds after the last packet, by state
 * (ip_vs_proto_tcp.c's tcp_timeouts, ip_vs_proto_udp.c's). The control plane
 * writes them into xvs_config.timeout when it loads the dataplane, so this is
 * the only place they are known.
 */
export const IPVS_TIMEOUTS: Record<StateName, number> = {
  none: 2, established: 900, syn_sent: 120, syn_recv: 60, fin_wait: 120, time_wait: 120,
  close: 10, close_wait: 60, last_ack: 30, listen: 120, synack: 120, udp: 300,
};

/** The states `ipvsadm --set tcp tcpfin udp` sets. */
export const SET_STATES = { tcp: CONN_STATE.established, tcpfin: CONN_STATE.fin_wait, udp: CONN_STATE.udp } as const;

/** xvs_config.timeout as IPVS starts: every slot, the spare ones as CLOSE. */
export function defaultTimeouts(): number[] {
  const t = new Array<number>(CONN_STATE.max).fill(IPVS_TIMEOUTS.close);
  for (const [name, s] of Object.entries(IPVS_TIMEOUTS)) t[CONN_STATE[name as StateName]] = s;
  return t;
}

/** The --set view of a timeout table. */
export function setView(t: readonly number[]): Timeouts {
  return { tcp: t[SET_STATES.tcp]!, tcpfin: t[SET_STATES.tcpfin]!, udp: t[SET_STATES.udp]! };
}

/** `t` with --set's values in place; 0 leaves one as it is, as ipvsadm --set does. */
export function withSet(t: readonly number[], set: Timeouts): number[] {
  const out = [...t];
  for (const [name, state] of Object.entries(SET_STATES)) {
    const v = set[name as keyof Timeouts];
    if (v !== 0) out[state] = v;
  }
  return out;
}
