import { byAddress, checkReals, checkTableSize, gcd, usable } from './common.js';
import { settleSlots } from './fallback.js';
import { strHash32 } from './hash.js';
import type { HashReal } from './types.js';

/** Default Maglev table length: prime, and ~100x the reals of a large service (256 KiB). */
export const MH_TABLE_SIZE = 65537;

/** Seeds of the offset and skip hashes: a contract between directors, like hash32. */
export const MH_HASH_SEEDS = { offset: 0, skip: 0x5bd1e995 } as const;

/** A real's place in the Maglev permutation: slot j of its preference list is (offset + j*skip) % M. */
export function mhPermutation(addr: string, port: number, tableSize: number): { offset: number; skip: number } {
  const key = `${addr}:${port}`;
  return {
    offset: strHash32(key, MH_HASH_SEEDS.offset) % tableSize,
    skip: (strHash32(key, MH_HASH_SEEDS.skip) % (tableSize - 1)) + 1,
  };
}

/**
 * Turns per round, as ip_vs_mh.c: weight / gcd of the weights, shifted right
 * so the largest is at most half the table's bits wide (IPVS: 6 bits for its
 * 4093 slots; 8 for 65537). Without the shift one heavy real would take whole
 * runs of preferred slots before the others had a turn, which is what makes
 * Maglev's slot ownership stable; the price, as in IPVS, is that weight
 * ratios above 2^bits are flattened. A live real always gets >= 1 turn.
 */
export function mhTurns(weights: readonly number[], tableSize: number): number[] {
  const g = weights.reduce((a, w) => (w > 0 ? gcd(w, a) : a), 0);
  if (g === 0) return weights.map(() => 0);
  const bits = Math.floor(Math.round(Math.log2(tableSize)) / 2);
  const top = Math.max(...weights) / g;
  const shift = Math.max(0, 32 - Math.clz32(top) - bits);
  return weights.map((w) => (w > 0 ? Math.max(1, Math.floor(w / g / 2 ** shift)) : 0));
}

/**
 * Maglev hashing (Eisenbud et al., NSDI'16, section 3.4) with IPVS's weights:
 * in each round every real, in (address, port) order, claims its next
 * `turns` preferred free slots, until the table is full. Ordering by address
 * and hashing "addr:port" (not ids) make the table a function of the
 * configuration alone, identical on every director. Adding or removing one
 * of N reals moves about 1/N of the slots. As in IPVS, the table is laid out
 * by each real's last weight above 0 (ip_vs_mh_permutate reads
 * last_weight), so quiescing a real (weight 0) or its overload moves no
 * slot: its clients are refused, or with mh-fallback sent on
 * (settleSlots). A real that never had a weight above 0 holds no slot.
 */
export function buildMh(reals: readonly HashReal[], tableSize = MH_TABLE_SIZE, fallback = false): Uint32Array {
  checkReals(reals);
  checkTableSize('mh', tableSize, reals.length);
  const layoutWeight = (r: HashReal): number => (r.weight > 0 ? r.weight : r.lastWeight ?? 0);
  const live = byAddress(reals.filter((r) => layoutWeight(r) > 0));
  const ok = new Set(reals.filter(usable).map((r) => r.id));
  if (ok.size === 0) return new Uint32Array(0);
  const m = tableSize;
  const turns = mhTurns(live.map(layoutWeight), m);
  const perms = live.map((r) => mhPermutation(r.addr, r.port, m));
  const next = Int32Array.from(perms, (p) => p.offset);
  const taken = new Uint8Array(m);
  const out = new Uint32Array(m);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < live.length; i++) {
      const skip = perms[i]!.skip;
      const id = live[i]!.id;
      for (let t = turns[i]!; t > 0; t--) {
        let c = next[i]!;
        while (taken[c]) {
          c += skip;
          if (c >= m) c -= m;
        }
        taken[c] = 1;
        out[c] = id;
        next[i] = c;
        if (++filled === m) return settleSlots(out, (x) => ok.has(x), fallback);
      }
    }
  }
}
