// The fidelity bench's reference: IPVS as the kernel runs it, one connection
// at a time on exact live counts, written from net/netfilter/ipvs/ip_vs_*.c.
// Shares no code with src/schedulers on purpose.

import type { SchedulerName } from '../src/schedulers/registry.js';

export interface Counts {
  active: Float64Array;
  inactive: Float64Array;
}

/** Picks a real index for a new connection, or -1 (IPVS: no destination). */
export type Pick = (client: number, daddr: number) => number;

const knuth = (a: number): number => Math.imul(a >>> 0, 0x9e3779b1) >>> 0;

/** twos's prandom_u32(), seeded (xorshift32: not the planner's generator, so the two draw independently). */
function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

export function ipvsReference(name: Exclude<SchedulerName, 'mh'>, weights: readonly number[], c: Counts, seed = 1): Pick {
  const n = weights.length;
  const oh = (i: number): number => c.active[i]! * 256 + c.inactive[i]!;
  const wlc = (): number => {
    let least = -1;
    for (let i = 0; i < n; i++) {
      if (least < 0) {
        if (weights[i]! > 0) least = i;
      } else if (oh(least) * weights[i]! > oh(i) * weights[least]!) {
        least = i;
      }
    }
    return least;
  };
  // lblc/lblcr is_overloaded: over its weight while some real is under half its own.
  const overloaded = (i: number): boolean => c.active[i]! > weights[i]! && weights.some((w, j) => c.active[j]! * 2 < w);

  switch (name) {
    case 'rr': {
      let cursor = -1;
      return () => {
        for (let k = 1; k <= n; k++) {
          const i = (cursor + k) % n;
          if (weights[i]! > 0) return (cursor = i);
        }
        return -1;
      };
    }
    case 'wrr': {
      const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
      const di = weights.reduce((g, w) => (w > 0 ? gcd(w, g) : g), 0) || 1;
      const mw = Math.max(0, ...weights) - (di - 1);
      let cw = mw;
      let cursor = -1;
      return () => {
        if (mw <= 0) return -1;
        for (;;) {
          for (let i = cursor + 1; i < n; i++) if (weights[i]! >= cw) return (cursor = i);
          cursor = -1;
          cw -= di;
          if (cw <= 0) cw = mw;
        }
      };
    }
    case 'lc':
      return () => {
        let least = -1;
        for (let i = 0; i < n; i++) if (weights[i]! > 0 && (least < 0 || oh(i) < oh(least))) least = i;
        return least;
      };
    case 'wlc':
      return wlc;
    case 'sed':
    case 'nq':
      return () => {
        let least = -1;
        for (let i = 0; i < n; i++) {
          if (weights[i] === 0) continue;
          if (name === 'nq' && c.active[i] === 0) return i;
          if (least < 0 || (c.active[least]! + 1) * weights[i]! > (c.active[i]! + 1) * weights[least]!) least = i;
        }
        return least;
      };
    case 'sh':
    case 'dh': {
      // ip_vs_sh_reassign / ip_vs_dh_assign: 256 buckets filled in list order
      // (sh: `weight` consecutive buckets per real), looked up by the low 8 bits.
      const buckets = new Int32Array(256);
      let p = 0;
      let d = 0;
      for (let b = 0; b < 256; b++) {
        buckets[b] = p;
        if (name === 'dh' || ++d >= weights[p]!) {
          p = (p + 1) % n;
          d = 0;
        }
      }
      return (client, daddr) => buckets[knuth(name === 'sh' ? client : daddr) & 255]!;
    }
    case 'lblc': {
      const cache = new Map<number, number>();
      return (_client, daddr) => {
        const cached = cache.get(daddr);
        if (cached !== undefined && weights[cached]! > 0 && !overloaded(cached)) return cached;
        const least = wlc();
        if (least >= 0) cache.set(daddr, least);
        return least;
      };
    }
    case 'fo':
      // ip_vs_fo_schedule: the highest weight, strictly greater than the best so far.
      return () => {
        let h = -1;
        for (let i = 0; i < n; i++) if (weights[i]! > (h < 0 ? 0 : weights[h]!)) h = i;
        return h;
      };
    case 'ovf':
      // ip_vs_ovf_schedule: skip a dest whose active connections exceed its weight.
      return () => {
        let h = -1;
        for (let i = 0; i < n; i++) {
          if (weights[i] === 0 || c.active[i]! > weights[i]!) continue;
          if (h < 0 || weights[i]! > weights[h]!) h = i;
        }
        return h;
      };
    case 'twos': {
      // ip_vs_twos_schedule: two draws in [0, total], each the first dest whose
      // running weight reaches it; the second if strictly less loaded per weight.
      const rand = xorshift32(seed);
      return () => {
        const total = weights.reduce((a, b) => a + b, 0);
        if (total === 0) return -1;
        let r1 = rand() % (total + 1);
        let r2 = rand() % (total + 1);
        let c1 = -1;
        let c2 = -1;
        for (let i = 0; i < n; i++) {
          if (weights[i] === 0) continue;
          r1 -= weights[i]!;
          r2 -= weights[i]!;
          if (r1 <= 0 && c1 < 0) c1 = i;
          if (r2 <= 0 && c2 < 0) c2 = i;
          if (c1 >= 0 && c2 >= 0) break;
        }
        return weights[c2]! * oh(c1) > weights[c1]! * oh(c2) ? c2 : c1;
      };
    }
    case 'lblcr': {
      // Sets shrink only after lblcr_expiration (24 h) without change: never in a bench run.
      const sets = new Map<number, number[]>();
      const setMin = (set: readonly number[]): number => {
        let least = -1;
        for (const i of set) {
          if (least < 0) {
            if (weights[i]! > 0) least = i;
          } else if (oh(least) * weights[i]! > oh(i) * weights[least]!) {
            least = i;
          }
        }
        return least;
      };
      return (_client, daddr) => {
        const set = sets.get(daddr);
        if (set) {
          const least = setMin(set);
          if (least >= 0 && !overloaded(least)) return least;
        }
        const d = wlc();
        if (d < 0) return -1;
        if (!set) sets.set(daddr, [d]);
        else if (!set.includes(d)) set.unshift(d); // list_add_rcu: newest first
        return d;
      };
    }
  }
}
