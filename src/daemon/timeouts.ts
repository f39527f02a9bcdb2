import { CONN_STATE } from '../maps/abi.js';

/**
 * IPVS's connection timeouts in seconds after the last packet
 * (ip_vs_proto_tcp.c, ip_vs_proto_udp.c): tcp, tcpfin and udp are what
 * `ipvsadm --set` changes; synrecv and close it cannot. The control plane
 * writes them all into xvs_config when it loads the dataplane, so this is the
 * only place they are known.
 */
export const IPVS_TIMEOUTS = { tcp: 900, tcpfin: 120, udp: 300, synrecv: 60, close: 10 } as const;

export type StateTimeouts = { [K in keyof typeof IPVS_TIMEOUTS]: number };

/** Seconds an entry in this state lives after its last packet, as bpf/dataplane/flow.h decides. */
export function timeoutOf(state: number, t: StateTimeouts): number {
  switch (state) {
    case CONN_STATE.established: return t.tcp;
    case CONN_STATE.fin_wait: return t.tcpfin;
    case CONN_STATE.udp: return t.udp;
    case CONN_STATE.syn_recv: return t.synrecv;
    default: return t.close;
  }
}
