import { LE, ipToAddr16 } from '../maps/codec.js';
import type * as C from '../maps/codecs.js';
import { CONN_STATE, FWD, REAL_F } from '../maps/abi.js';
import { fmix32 } from '../schedulers/hash.js';

// The dataplane's decisions that explain replays, each the TypeScript of one
// C function (named beside it); bpf/ is the truth, test/explain.test.ts holds
// these to it by sending the packet explain described through the program.
// Two rules already had a TypeScript twin and are not repeated here: the
// address hash of sh/dh/mh/lblc tables (xvs_hash32 and xvs_addr_fold in
// sched.h: slotOf in src/schedulers/hash.ts) and whether an entry is still
// live (xvs_fresh in sched.h: fresh in src/daemon/conn-count.ts).

/** Flags of a TCP segment (struct tcphdr's bits). */
export const TCP_FLAG = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10 } as const;

/** xvs_flow: a SYN without ACK or RST opens a connection. */
export const isSyn = (tcp: boolean, flags: number): boolean => tcp && (flags & (TCP_FLAG.syn | TCP_FLAG.ack | TCP_FLAG.rst)) === TCP_FLAG.syn;

/** xvs_flow_more: what moves a new flow to xvs_conns (the client's ACK, a second datagram). */
export const confirms = (tcp: boolean, flags: number): boolean =>
  !tcp || ((flags & TCP_FLAG.ack) !== 0 && (flags & (TCP_FLAG.syn | TCP_FLAG.rst)) === 0);

/** xvs_closing (flow.h): a SYN in these states starts a new connection on the old tuple. */
export function closing(state: number): boolean {
  return state === CONN_STATE.close || state === CONN_STATE.fin_wait || state === CONN_STATE.time_wait ||
    state === CONN_STATE.close_wait || state === CONN_STATE.last_ack;
}

/** xvs_real_takes_new (sched.h): a real server that may take new connections of this service. */
export function takesNew(r: C.Real | null, gen: number, svcId: number): boolean {
  return r !== null && r.gen === gen && r.svc_id === svcId && r.weight !== 0 && (r.flags & REAL_F.removed) === 0;
}

/** xvs_in_dir (flow.h): NAT and FULLNAT see the replies; the director then keeps both halves. */
export const twoWay = (fwd: number): boolean => fwd === FWD.nat || fwd === FWD.fullnat;

/** xvs_persist_key (sched.h): the client's address under the service's mask, byte by byte. */
export function persistAddr(client: string, mask: Buffer): Buffer {
  const b = ipToAddr16(client).bytes;
  for (let i = 0; i < 16; i++) b[i]! &= mask[i]!;
  return b;
}

const word = (b: Buffer, o: number): number => (LE ? b.readUInt32LE(o) : b.readUInt32BE(o));

/**
 * xvs_client_hash (natconn.h): where a client starts in a FULLNAT service's
 * pool of local addresses. It hashes the folded address and the port as
 * the packet holds them (network order, read as host-order integers), then
 * murmur3's finaliser.
 */
export function clientHash(addr: string, port: number): number {
  const b = ipToAddr16(addr).bytes;
  const fold = (word(b, 0) ^ word(b, 4) ^ word(b, 8) ^ word(b, 12)) >>> 0;
  const sport = LE ? ((port & 0xff) << 8) | (port >>> 8) : port;
  return fmix32(fold ^ (sport << 16));
}
