import { XvsError } from '../errors.js';
import type { HashReal, SchedReal } from './types.js';
import { MAX_SEQ_TABLE } from './wrr.js';

export function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

const U32_MAX = 0xffffffff;
/** As ipvsadm; it also keeps every weight x count product exact in a double. */
export const MAX_WEIGHT = 65535;

function isCount(n: unknown): boolean {
  return n === undefined || (Number.isSafeInteger(n) && (n as number) >= 0);
}

/** Rejects what would make a table wrong silently: bad ids, weights or counts. */
export function checkReals(reals: readonly (SchedReal & { active?: number; inactive?: number })[]): void {
  for (const r of reals) {
    if (!Number.isInteger(r.id) || r.id < 0 || r.id > U32_MAX) {
      throw new XvsError('BAD_ARGUMENT', `real id ${r.id} is not a u32`);
    }
    if (!Number.isInteger(r.weight) || r.weight < 0 || r.weight > MAX_WEIGHT) {
      throw new XvsError('BAD_ARGUMENT', `real ${r.id} has weight ${r.weight}; weights are integers in 0..${MAX_WEIGHT}`);
    }
    if (!isCount(r.active) || !isCount(r.inactive)) {
      throw new XvsError('BAD_ARGUMENT', `real ${r.id} has connection counts ${r.active}/${r.inactive}; counts are integers >= 0`);
    }
  }
}

/** Can take a new connection: IPVS skips weight 0 (quiesced) and IP_VS_DEST_F_OVERLOAD. */
export function usable<T extends SchedReal & { overloaded?: boolean }>(r: T): boolean {
  return r.weight > 0 && r.overloaded !== true;
}

/**
 * Hash tables must be the same on every director with the same configuration,
 * and ipvsadm insertion order is not configuration (a restarted or second
 * director may have added the reals in another order), so they are laid out
 * by (address, port), never by list order.
 */
export function byAddress<T extends HashReal>(reals: readonly T[]): T[] {
  const keyed = reals.map((r) => ({ r, v4: ipv4Number(r.addr) }));
  keyed.sort((a, b) => {
    if (a.v4 !== undefined && b.v4 !== undefined && a.v4 !== b.v4) return a.v4 - b.v4;
    if ((a.v4 === undefined) !== (b.v4 === undefined)) return a.v4 === undefined ? 1 : -1;
    if (a.v4 === undefined && a.r.addr !== b.r.addr) return a.r.addr < b.r.addr ? -1 : 1;
    return a.r.port - b.r.port || a.r.id - b.r.id;
  });
  return keyed.map((k) => k.r);
}

/** Dotted quad to its host-order u32, or undefined for anything else. */
export function ipv4Number(addr: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  if (!m) return undefined;
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255)) return undefined;
  return ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
}

/** A hash table's length: a prime (our lookup is a modulo), one slot per real at least. */
export function checkTableSize(name: string, size: number, reals: number): void {
  if (!isPrime(size) || size > MAX_SEQ_TABLE) {
    throw new XvsError('BAD_ARGUMENT', `${name} table size ${size} must be a prime <= ${MAX_SEQ_TABLE}`, {
      hint: 'e.g. 251, 1021, 4093, 16381, 65521 or 65537',
    });
  }
  if (size < reals) {
    throw new XvsError('BAD_ARGUMENT', `${name} table size ${size} is smaller than the ${reals} real servers`);
  }
}

/**
 * Splits `slots` among weights in proportion (largest remainder, exact
 * integers; equal remainders go to the lower index), then gives any weight
 * that got nothing one slot from the largest holder, so no live real is
 * unreachable. Needs slots >= weights.length and every weight > 0.
 */
export function apportion(weights: readonly number[], slots: number): Uint32Array {
  const n = weights.length;
  const out = new Uint32Array(n);
  if (n === 0) return out;
  const total = weights.reduce((s, w) => s + w, 0);
  const rem = new Array<number>(n);
  let given = 0;
  for (let i = 0; i < n; i++) {
    const num = slots * weights[i]!;
    out[i] = Math.floor(num / total);
    rem[i] = num - out[i]! * total;
    given += out[i]!;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => rem[b]! - rem[a]! || a - b);
  for (let k = 0; k < slots - given; k++) out[order[k]!]!++;
  for (let i = 0; i < n; i++) {
    if (out[i] !== 0) continue;
    let big = 0;
    for (let j = 1; j < n; j++) if (out[j]! > out[big]!) big = j;
    out[big]!--;
    out[i] = 1;
  }
  return out;
}
