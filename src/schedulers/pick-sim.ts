import { XvsError } from '../errors.js';
import { SLOT } from '../maps/abi.js';
import { checkReals } from './common.js';
import type { PlanOptions } from './least-conn.js';
import type { LoadReal } from './types.js';
import { MAX_SEQ_TABLE } from './wrr.js';

/** The counts a pick rule sees, per real in input order, as IPVS would see them at this pick. */
export interface SimCounts {
  readonly active: Float64Array;
  readonly inactive: Float64Array;
}

/**
 * pick: a real's index (input order), or -1 when IPVS would find no
 * destination. changed: told after real i's counts changed (its pick
 * counted, or one of its connections turned inactive), for a rule that
 * keeps an index over the counts instead of scanning them at every pick.
 */
export interface PickRule {
  pick(c: SimCounts): number;
  changed?(i: number, c: SimCounts): void;
}

/**
 * The sequence of `picks` new connections an IPVS scheduler would place one
 * after another, each counted on its real before the next (active for
 * opts.activeFor[i] later picks, then inactive; connections open at the
 * start closing before the picks opts.closing says), as plan() in
 * least-conn.ts counts them; that one keeps a heap for its cost order, this
 * one asks `rule` each time, for schedulers whose choice is no cost order
 * (ovf, twos). A pick of -1 is a refused slot (SLOT.none).
 */
export function simulatePicks(reals: readonly LoadReal[], picks: number, opts: PlanOptions, rule: PickRule): Uint32Array {
  checkReals(reals);
  if (!Number.isInteger(picks) || picks < 0 || picks > MAX_SEQ_TABLE) {
    throw new XvsError('BAD_ARGUMENT', `picks ${picks} is not an integer in 0..${MAX_SEQ_TABLE}`);
  }
  const n = reals.length;
  const whole = (opts.newConnAs ?? 'active') === 'active' ? Infinity : 0;
  const span = reals.map((_, i) => Math.max(0, Math.round(opts.activeFor?.[i] ?? whole)));
  const c: SimCounts = { active: Float64Array.from(reals, (r) => r.active), inactive: Float64Array.from(reals, (r) => r.inactive) };
  // expiring[k]: reals one of whose connections turns inactive before pick k.
  const expiring: number[][] = [];
  for (let i = 0; i < n; i++) {
    const ks = opts.closing?.[i];
    const m = Math.min(ks?.length ?? 0, reals[i]!.active);
    for (let j = 0; j < m; j++) {
      const k = Math.max(0, Math.floor(ks![j]!));
      if (k < picks) (expiring[k] ??= []).push(i);
    }
  }
  const out = new Uint32Array(picks);
  for (let k = 0; k < picks; k++) {
    for (const i of expiring[k] ?? []) {
      c.active[i]!--;
      c.inactive[i]!++;
      rule.changed?.(i, c);
    }
    const i = rule.pick(c);
    if (i < 0) {
      out[k] = SLOT.none;
      continue;
    }
    out[k] = reals[i]!.id;
    const s = span[i]!;
    if (s > 0) {
      c.active[i]!++;
      if (k + s + 1 < picks) (expiring[k + s + 1] ??= []).push(i);
    } else {
      c.inactive[i]!++;
    }
    rule.changed?.(i, c);
  }
  return out;
}
