// The two hashes the tables depend on. Both are part of the contract between
// directors: change either and every director must change with it.

import { isIPv6 } from 'node:net';
import { XvsError } from '../errors.js';
import { ipToAddr16 } from '../maps/codec.js';
import { ipv4Number } from './common.js';

/**
 * xvs_addr_fold in bpf/dataplane/flow.h, as IPVS's ip_vs_sh_hashkey folds:
 * an IPv6 address is the XOR of its four 32-bit words; an IPv4 address is
 * itself.
 */
export function foldAddr(addr: string): number | undefined {
  if (!isIPv6(addr)) return ipv4Number(addr);
  const b = ipToAddr16(addr).bytes;
  return (b.readUInt32BE(0) ^ b.readUInt32BE(4) ^ b.readUInt32BE(8) ^ b.readUInt32BE(12)) >>> 0;
}

/**
 * xvs_hash32 in bpf/dataplane/flow.h: Knuth's multiplicative hash of the
 * host-order (folded) address, as IPVS sh/dh/lblc use. The dataplane takes
 * hash32(addr) % table length, so the builders and tests use this to know
 * which slot an address lands in.
 */
export function hash32(addr: number | string): number {
  const a = typeof addr === 'number' ? addr : foldAddr(addr);
  if (a === undefined) throw new XvsError('BAD_ADDRESS', `'${addr}' is not an IP address`);
  return Math.imul(a >>> 0, 0x9e3779b1) >>> 0; // 2654435761
}

/**
 * xvs_hash32_port in bpf/dataplane/sched.h (sh-port, mh-port): IPVS adds the
 * source port to the folded address (32-bit wrap) before the multiply.
 */
export function hash32Port(addr: number | string, port: number): number {
  const a = typeof addr === 'number' ? addr : foldAddr(addr);
  if (a === undefined) throw new XvsError('BAD_ADDRESS', `'${addr}' is not an IP address`);
  return hash32(((a >>> 0) + (port & 0xffff)) >>> 0);
}

/** The slot the dataplane reads for this address in a hash_src/hash_dst table; with a port, in a hash_src_port one. */
export function slotOf(addr: number | string, tableLength: number, port?: number): number {
  return (port === undefined ? hash32(addr) : hash32Port(addr, port)) % tableLength;
}

/**
 * The slot of xvs_nat_real_slots the dataplane reads for a packet from
 * `addr` (xvs_maybe_reply in bpf/dataplane/nat.h): the address hash's slot,
 * as a hash_src table of that length would take it.
 */
export function natRealSlot(addr: string, slots: number): number {
  return slotOf(addr, slots);
}

const encoder = new TextEncoder();

/** murmur3's finaliser, as xvs_fmix32 (bpf/dataplane/common.h): every bit in reaches every bit out. */
export function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * FNV-1a over the UTF-8 bytes with a seeded basis, then murmur3's fmix32.
 * FNV alone leaves keys that differ in one late byte ("10.0.0.1:80" and
 * "10.0.0.2:80") close in the high bits; the finalizer spreads them, and
 * Maglev needs offsets and skips that look independent across reals.
 */
export function strHash32(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (const b of encoder.encode(s)) h = Math.imul(h ^ b, 0x01000193);
  return fmix32(h);
}
