import { checkReals, usable } from './common.js';
import type { PlanOptions } from './least-conn.js';
import { simulatePicks, type PickRule, type SimCounts } from './pick-sim.js';
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
 * IPVS ovf (overflow, ip_vs_ovf.c) pick by pick: the real of the highest
 * weight, the first in list order among equals, skipping weight 0,
 * overloaded, and any whose active connections exceed its weight (so a
 * real takes connections until it has weight + 1 active). Only active
 * connections count. -1: every real is full, and IPVS refuses.
 *
 * Without a scan per pick: the available reals ranked as ovf prefers them
 * (weight down, list order among equals), and a heap of the ranks of those
 * not full. A real leaves the heap lazily when found full at the top, and
 * comes back when a connection of it turns inactive.
 */
function ovfRule(reals: readonly LoadReal[]): PickRule {
  const byRank = reals.flatMap((r, i) => (usable(r) ? [i] : [])).sort((a, b) => reals[b]!.weight - reals[a]!.weight || a - b);
  const rank = new Int32Array(reals.length).fill(-1);
  byRank.forEach((i, k) => { rank[i] = k; });
  const heap: number[] = [];
  const inHeap = new Uint8Array(byRank.length);
  const full = (k: number, c: SimCounts): boolean => c.active[byRank[k]!]! > reals[byRank[k]!]!.weight;
  const push = (k: number): void => {
    inHeap[k] = 1;
    let at = heap.push(k) - 1;
    while (at > 0 && heap[(at - 1) >> 1]! > k) {
      heap[at] = heap[(at - 1) >> 1]!;
      at = (at - 1) >> 1;
    }
    heap[at] = k;
  };
  const pop = (): void => {
    inHeap[heap[0]!] = 0;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let at = 0;
    for (;;) {
      const l = 2 * at + 1;
      if (l >= heap.length) break;
      const m = l + 1 < heap.length && heap[l + 1]! < heap[l]! ? l + 1 : l;
      if (heap[m]! >= last) break;
      heap[at] = heap[m]!;
      at = m;
    }
    heap[at] = last;
  };
  let started = false;
  return {
    pick(c) {
      if (!started) {
        started = true;
        for (let k = 0; k < byRank.length; k++) if (!full(k, c)) push(k);
      }
      while (heap.length > 0 && full(heap[0]!, c)) pop();
      return heap.length > 0 ? byRank[heap[0]!]! : -1;
    },
    changed(i, c) {
      const k = rank[i]!;
      if (started && k >= 0 && !inHeap[k] && !full(k, c)) push(k);
    },
  };
}

/**
 * ovf's plan: the picks IPVS would make from the counts, one at a time,
 * each counted as it is handed out (pick-sim.ts); a pick that finds every
 * real full is a refused slot. No available real at all: an empty table.
 */
export function planOvf(reals: readonly LoadReal[], picks: number, opts: PlanOptions = {}): Uint32Array {
  if (!reals.some(usable)) return new Uint32Array(0);
  return simulatePicks(reals, picks, opts, ovfRule(reals));
}
