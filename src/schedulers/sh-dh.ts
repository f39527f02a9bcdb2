import { apportion, byAddress, checkReals, checkTableSize, usable } from './common.js';
import { settleSlots } from './fallback.js';
import type { HashReal } from './types.js';

/**
 * Default sh/dh table length. IPVS has 256 buckets indexed by the low 8 bits
 * of the multiplicative hash, and those bits depend only on the low 8 bits of
 * the address. The dataplane takes hash % length instead, and a prime length
 * makes every bit of the hash count. 4093 slots (16 KiB) give each real its
 * weight share to within 1/4093; a service with more reals than that gets the
 * next prime that fits.
 */
export const HASH_TABLE_SIZE = 4093;
const LARGER = [16381, 65521] as const;

export function defaultHashTableSize(reals: number): number {
  return reals <= HASH_TABLE_SIZE ? HASH_TABLE_SIZE : LARGER.find((p) => p >= reals) ?? reals;
}

/**
 * IPVS sh: a static bucket table where each real holds buckets in proportion
 * to its weight, a weight of 0 counting as 1 (ip_vs_sh_reassign moves on
 * after max(weight, 1) buckets). The table is laid out by (address, port),
 * so directors with the same reals build the same table in whatever order
 * the reals were added. Quiesced (weight 0) and overloaded reals keep their
 * buckets, as in IPVS, and their clients are refused, or with sh-fallback
 * sent on (settleSlots); every other client stays where it is.
 */
export function buildSh(reals: readonly HashReal[], tableSize?: number, fallback = false): Uint32Array {
  const table = buildBuckets('sh', reals, tableSize, (r) => Math.max(r.weight, 1), () => true);
  const ok = new Set(reals.filter(usable).map((r) => r.id));
  return settleSlots(table, (id) => ok.has(id), fallback);
}

/**
 * IPVS dh: every live real holds an equal share (dh ignores weights).
 * Quiesced (weight 0) and overloaded reals hold no bucket: IPVS keeps them
 * in the table and refuses those destinations; here they hash to the others.
 */
export function buildDh(reals: readonly HashReal[], tableSize?: number): Uint32Array {
  return buildBuckets('dh', reals, tableSize, () => 1, usable);
}

function buildBuckets(name: string, reals: readonly HashReal[], tableSize: number | undefined, share: (r: HashReal) => number,
  holds: (r: HashReal) => boolean): Uint32Array {
  checkReals(reals);
  const size = tableSize ?? defaultHashTableSize(reals.length);
  checkTableSize(name, size, reals.length);
  const live = byAddress(reals.filter(holds));
  if (live.length === 0) return new Uint32Array(0);
  const counts = apportion(live.map(share), size);
  // Contiguous runs are fine: consecutive client addresses step through the
  // table by a fixed stride (2654435761 mod size), not slot by slot.
  const out = new Uint32Array(size);
  let at = 0;
  live.forEach((r, i) => {
    out.fill(r.id, at, at + counts[i]!);
    at += counts[i]!;
  });
  return out;
}
