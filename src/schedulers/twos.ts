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
 * active x 256 + inactive. -1: no real available.
 */
export function twosPick(reals: readonly LoadReal[], c: SimCounts, rand: U32Source): number {
  let total = 0;
  for (const r of reals) if (usable(r)) total += r.weight;
  if (total === 0) return -1;
  total += 1;
  const r1 = rand() % total;
  const r2 = rand() % total;
  let c1 = -1;
  let c2 = -1;
  let sum = 0;
  for (let i = 0; i < reals.length && (c1 < 0 || c2 < 0); i++) {
    if (!usable(reals[i]!)) continue;
    sum += reals[i]!.weight;
    if (c1 < 0 && sum >= r1) c1 = i;
    if (c2 < 0 && sum >= r2) c2 = i;
  }
  const overhead = (i: number): number => c.active[i]! * 256 + c.inactive[i]!;
  return reals[c2]!.weight * overhead(c1) > reals[c1]!.weight * overhead(c2) ? c2 : c1;
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
  return simulatePicks(reals, picks, opts, (c) => twosPick(reals, c, rand));
}
