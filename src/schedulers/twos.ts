import { usable } from './common.js';
import type { PlanOptions } from './least-conn.js';
import { simulatePicks, type SimCounts } from './pick-sim.js';
import type { LoadReal } from './types.js';

/** A u32 source, as prandom_u32() is to IPVS. */
export type U32Source = () => number;

/**
 * IPVS twos (power of two choices, ip_vs_twos.c) for one pick. Over the
 * available reals (weight above 0, not overloaded) in list order, with
 * total = the sum of their weights + 1, two draws r1, r2 = u32 % total each
 * pick the first real whose running weight sum reaches the draw (so the
 * first available real also takes the draw 0: its odds are (w + 1) /
 * total, as in the kernel). The second wins only when strictly less loaded
 * by IPVS's measure, weight2 x overhead1 > weight1 x overhead2, overhead =
 * active x 256 + inactive. -1: no real available. The running sums are
 * fixed for a plan (weights do not change in one), so they are made once
 * and each draw is a binary search.
 */
export function twosPicker(reals: readonly LoadReal[]): (c: SimCounts, rand: U32Source) => number {
  const at: number[] = [];
  const sums: number[] = [];
  let sum = 0;
  reals.forEach((r, i) => {
    if (!usable(r)) return;
    sum += r.weight;
    at.push(i);
    sums.push(sum);
  });
  const total = sum + 1;
  // The first running sum >= r.
  const find = (r: number): number => {
    let lo = 0;
    let hi = sums.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sums[mid]! >= r) hi = mid;
      else lo = mid + 1;
    }
    return at[lo]!;
  };
  return (c, rand) => {
    if (sum === 0) return -1;
    const c1 = find(rand() % total);
    const c2 = find(rand() % total);
    const overhead = (i: number): number => c.active[i]! * 256 + c.inactive[i]!;
    return reals[c2]!.weight * overhead(c1) > reals[c1]!.weight * overhead(c2) ? c2 : c1;
  };
}

/** mulberry32: small, fast, and the same sequence on every run for one seed. */
export function seededU32(seed: number): U32Source {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/**
 * twos's plan: IPVS draws two reals at random for every new connection, so
 * the table is a sample of that process: each slot is one twos pick, made
 * with its own draws from the counts as IPVS would see them by then (each
 * pick counted as it is handed out, pick-sim.ts). The draws come from
 * `seed` (the caller passes the sequence counter, so the plan is a pure
 * function of its input and successive ticks draw afresh). Slot by slot the
 * table follows twos's distribution given those counts; what differs from
 * IPVS is only that the draws are made at the tick, for counts predicted
 * along the plan, not when the connection arrives.
 */
export function planTwos(reals: readonly LoadReal[], picks: number, opts: PlanOptions, seed: number): Uint32Array {
  if (!reals.some(usable)) return new Uint32Array(0);
  const rand = seededU32(seed);
  const pick = twosPicker(reals);
  return simulatePicks(reals, picks, opts, { pick: (c) => pick(c, rand) });
}
