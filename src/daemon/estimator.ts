import type { RateView, StatsView } from '../control/protocol.js';

// IPVS's rate estimator (net/netfilter/ipvs/ip_vs_est.c), for ipvsadm
// --rate: every 2 seconds each counter's increase becomes a rate, smoothed
// with a weight of 1/4, kept in fixed point as the kernel keeps it
// (connections and packets scaled by 2^10, bytes by 2^5) and rounded the way
// ip_vs_read_estimator rounds. An entry first seen starts from the counters
// as they are then (a restarted xvsd finds them running); a zeroed one from
// zero; both with rates 0.

export const ESTIMATOR_INTERVAL_MS = 2000;

interface Est {
  last: StatsView;
  cps: number;
  inpps: number;
  outpps: number;
  inbps: number;
  outbps: number;
}

/** (s64)x >> 2 */
const quarter = (x: number): number => Math.floor(x / 4);

export class RateEstimator {
  readonly #est = new Map<string, Est>();

  /**
   * One 2-second step over every live entry, by key (a key names one
   * service or real server for its whole life: reuse of an id must change
   * it). Entries not in `live` are forgotten.
   */
  sample(live: Iterable<[string, StatsView]>): void {
    const seen = new Set<string>();
    for (const [key, s] of live) {
      seen.add(key);
      const e = this.#est.get(key);
      if (!e) {
        this.#est.set(key, { last: { ...s }, cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });
        continue;
      }
      // A counter that went backwards was zeroed behind our back: start again from it.
      const d = (n: number, l: number) => Math.max(0, n - l);
      e.cps += quarter(d(s.conns, e.last.conns) * 2 ** 9 - e.cps);
      e.inpps += quarter(d(s.inpkts, e.last.inpkts) * 2 ** 9 - e.inpps);
      e.outpps += quarter(d(s.outpkts, e.last.outpkts) * 2 ** 9 - e.outpps);
      e.inbps += quarter(d(s.inbytes, e.last.inbytes) * 2 ** 4 - e.inbps);
      e.outbps += quarter(d(s.outbytes, e.last.outbytes) * 2 ** 4 - e.outbps);
      e.last = { ...s };
    }
    for (const key of this.#est.keys()) if (!seen.has(key)) this.#est.delete(key);
  }

  /** ip_vs_read_estimator. */
  rates(key: string): RateView {
    const e = this.#est.get(key);
    if (!e) return { cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 };
    return {
      cps: Math.floor((e.cps + 0x1ff) / 2 ** 10),
      inpps: Math.floor((e.inpps + 0x1ff) / 2 ** 10),
      outpps: Math.floor((e.outpps + 0x1ff) / 2 ** 10),
      inbps: Math.floor((e.inbps + 0xf) / 2 ** 5),
      outbps: Math.floor((e.outbps + 0xf) / 2 ** 5),
    };
  }

  /**
   * ip_vs_zero_estimator: rates 0, and the counters as they are now (just
   * zeroed) the point the next step counts from, so nothing sent between
   * -Z and that step is lost.
   */
  zero(keys: Iterable<string>): void {
    for (const k of keys) this.#est.set(k, { last: { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 }, cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });
  }
}

export const svcRateKey = (id: number, name: string): string => `svc ${id} ${name}`;
export const realRateKey = (id: number, gen: number): string => `real ${id} ${gen}`;
