import type { SchedReal } from './registry.js';

/**
 * IPVS rr: each real with a non-zero weight once per cycle, in list order.
 * Weight 0 quiesces a real (ip_vs_rr skips it), so it gets no slot.
 */
export function buildRr(reals: readonly SchedReal[]): Uint32Array {
  return Uint32Array.from(reals.filter((r) => r.weight > 0), (r) => r.id);
}
