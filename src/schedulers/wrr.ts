import { XvsError } from '../errors.js';
import type { SchedReal } from './registry.js';

/**
 * Largest scheduler table the control plane will build for one service.
 * A 'seq' table is one whole cycle of picks (wrr: sum(weight)/gcd slots), so
 * large co-prime weights could otherwise ask for many megabytes per service;
 * 2^20 slots (4 MiB of u32 ids) is where we say no. Only wrr can get there:
 * rr has one slot per real and XVS_MAX_REALS is 16384.
 */
export const MAX_SEQ_TABLE = 1 << 20;

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * IPVS wrr (ip_vs_wrr_schedule) unrolled over one full cycle.
 *
 * IPVS keeps a current weight cw that starts at the largest weight and drops
 * by the gcd of all weights after each pass over the list; a pass picks, in
 * list order, every real whose weight is >= cw. A real of weight w is thus
 * picked w/gcd times per cycle and the cycle is sum(weight)/gcd picks long,
 * so a table of that length indexed by a shared counter replays IPVS exactly
 * from a freshly (re)configured service. Weight 0 never reaches cw > 0: such
 * a real is quiesced and has no slot.
 *
 * Passes only change where cw crosses a distinct weight, so the work is one
 * list merge per distinct weight plus the copy of the output, not passes x reals.
 */
export function buildWrr(reals: readonly SchedReal[]): Uint32Array {
  for (const r of reals) {
    if (!Number.isInteger(r.weight) || r.weight < 0) {
      throw new XvsError('BAD_ARGUMENT', `real ${r.id} has weight ${r.weight}; weights are integers >= 0`);
    }
  }
  const live = reals.map((r, pos) => ({ id: r.id, weight: r.weight, pos })).filter((r) => r.weight > 0);
  if (live.length === 0) return new Uint32Array(0);

  const step = live.reduce((g, r) => gcd(r.weight, g), 0);
  const total = live.reduce((n, r) => n + r.weight / step, 0);
  if (total > MAX_SEQ_TABLE) {
    throw new XvsError('CAPACITY', `wrr cycle for these weights is ${total} slots, over the limit of ${MAX_SEQ_TABLE}`, {
      hint: 'use weights with a larger common divisor (e.g. multiples of 10) or smaller weights',
    });
  }

  const byWeightDesc = [...live].sort((a, b) => b.weight - a.weight || a.pos - b.pos);
  const out = new Uint32Array(total);
  let at = 0;
  let active: typeof live = [];
  for (let i = 0; i < byWeightDesc.length; ) {
    const weight = byWeightDesc[i]!.weight;
    const joining: typeof live = [];
    while (i < byWeightDesc.length && byWeightDesc[i]!.weight === weight) joining.push(byWeightDesc[i++]!);
    active = mergeByPos(active, joining);
    const below = i < byWeightDesc.length ? byWeightDesc[i]!.weight : 0;
    const pass = Uint32Array.from(active, (r) => r.id);
    // Every cw in (below, weight] selects exactly the reals of weight >= weight.
    for (let passes = (weight - below) / step; passes > 0; passes--) {
      out.set(pass, at);
      at += pass.length;
    }
  }
  return out;
}

function mergeByPos<T extends { pos: number }>(a: readonly T[], b: readonly T[]): T[] {
  const out: T[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]!.pos < b[j]!.pos)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}
