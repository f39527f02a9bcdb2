import { checkReals, usable } from './common.js';
import type { PlanOptions } from './least-conn.js';
import { simulatePicks, type SimCounts } from './pick-sim.js';
import type { LoadReal, SchedReal } from './types.js';

/**
 * IPVS fo (weighted failover, ip_vs_fo.c): every new connection goes to the
 * available real of the highest weight, the first in list order among
 * equals; weight 0 and overloaded reals are not available. The choice
 * depends on no count, so the table is that one real (a sequence table of
 * one slot), rebuilt when a weight or an overload changes; none available:
 * an empty table, refused as IPVS refuses.
 */
export function buildFo(reals: readonly (SchedReal & { overloaded?: boolean })[]): Uint32Array {
  checkReals(reals);
  let best: SchedReal | undefined;
  for (const r of reals) if (usable(r) && (!best || r.weight > best.weight)) best = r;
  return best ? Uint32Array.of(best.id) : new Uint32Array(0);
}

/**
 * IPVS ovf (overflow, ip_vs_ovf.c) for one pick: the real of the highest
 * weight, the first in list order among equals, skipping weight 0,
 * overloaded, and any whose active connections exceed its weight (so a
 * real takes connections until it has weight + 1 active). Only active
 * connections count. -1: every real is full, and IPVS refuses.
 */
export function ovfPick(reals: readonly LoadReal[], c: SimCounts): number {
  let h = -1;
  for (let i = 0; i < reals.length; i++) {
    const r = reals[i]!;
    if (r.overloaded === true || r.weight === 0 || c.active[i]! > r.weight) continue;
    if (h < 0 || r.weight > reals[h]!.weight) h = i;
  }
  return h;
}

/**
 * ovf's plan: the picks IPVS would make from the counts, one at a time,
 * each counted as it is handed out (pick-sim.ts); a pick that finds every
 * real full is a refused slot. No available real at all: an empty table.
 */
export function planOvf(reals: readonly LoadReal[], picks: number, opts: PlanOptions = {}): Uint32Array {
  if (!reals.some(usable)) return new Uint32Array(0);
  return simulatePicks(reals, picks, opts, (c) => ovfPick(reals, c));
}
