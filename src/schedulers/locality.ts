import type { LoadReal, NewConnAs } from './types.js';

/**
 * Counts that lblc/lblcr see while a table is planned, with IPVS's two
 * questions on them: who is the weighted least-connection real, and is a
 * cached real overloaded. Indexes are list positions (ties: list order).
 */
export class LocalityLoad {
  readonly active: Float64Array;
  readonly inactive: Float64Array;
  readonly index: ReadonlyMap<number, number>;
  #underloaded = 0;

  constructor(readonly reals: readonly LoadReal[], readonly newConnAs: NewConnAs) {
    this.active = Float64Array.from(reals, (r) => r.active);
    this.inactive = Float64Array.from(reals, (r) => r.inactive);
    this.index = new Map(reals.map((r, i) => [r.id, i]));
    for (let i = 0; i < reals.length; i++) if (this.#isUnderloaded(i)) this.#underloaded++;
  }

  overhead(i: number): number {
    return this.active[i]! * 256 + this.inactive[i]!;
  }

  /**
   * __ip_vs_lblc_schedule: wlc over the service, skipping overloaded reals;
   * the first real must have weight > 0 and a weight-0 one can never win a
   * strict comparison after it. -1 when no real can take the connection.
   */
  wlc(candidates?: readonly number[]): number {
    let least = -1;
    const n = candidates?.length ?? this.reals.length;
    for (let k = 0; k < n; k++) {
      const i = candidates ? candidates[k]! : k;
      const r = this.reals[i]!;
      if (r.overloaded === true) continue;
      if (least < 0) {
        if (r.weight > 0) least = i;
        continue;
      }
      if (this.overhead(least) * r.weight > this.overhead(i) * this.reals[least]!.weight) least = i;
    }
    return least;
  }

  /**
   * is_overloaded() in ip_vs_lblc.c/ip_vs_lblcr.c: more active connections
   * than its weight while some real (any, flags not looked at) has fewer
   * than half its weight.
   */
  isOverloaded(i: number): boolean {
    return this.active[i]! > this.reals[i]!.weight && this.#underloaded > 0;
  }

  /**
   * Counts the connection that made IPVS (re)assign a destination; a
   * fraction when the destination is only expected to show up.
   */
  bump(i: number, amount = 1): void {
    if (this.newConnAs === 'inactive') {
      this.inactive[i] = this.inactive[i]! + amount;
      return;
    }
    const was = this.#isUnderloaded(i);
    this.active[i] = this.active[i]! + amount;
    if (was && !this.#isUnderloaded(i)) this.#underloaded--;
  }

  /** Takes a bucket's live flows off its real, as if they were about to move. */
  unbump(i: number, amount: number): void {
    const wasUnder = this.#isUnderloaded(i);
    const fromActive = Math.min(this.active[i]!, amount);
    this.active[i] = this.active[i]! - fromActive;
    this.inactive[i] = Math.max(0, this.inactive[i]! - (amount - fromActive));
    if (!wasUnder && this.#isUnderloaded(i)) this.#underloaded++;
  }

  #isUnderloaded(i: number): boolean {
    return this.active[i]! * 2 < this.reals[i]!.weight;
  }
}

/** A lblc/lblcr table and the part of IPVS's destination cache it stands for. */
export interface LocalityPlan {
  table: Uint32Array;
  /** Per slot, 1 where a flow has used the bucket since it was assigned: IPVS would have it cached. */
  pinned: Uint8Array;
}

export interface LocalityOptions {
  newConnAs?: NewConnAs;
  /**
   * Live flows per slot of the previous table (the service's flows by
   * hash32(daddr) % previous length). With it a bucket is cached only once a
   * flow has used it, and the others are planned afresh every tick, as IPVS
   * assigns a destination at its first connection. Without it every bucket
   * of the previous table counts as cached.
   */
  flows?: Uint32Array;
}

/**
 * Which buckets (of `width` slots each) are cached, which of them a flow
 * used for the first time since the last plan, and how much of a connection
 * to count for each bucket planned afresh. Fresh buckets stand for
 * destinations that may appear during the next tick: counting a whole
 * connection for each would spread them by weight alone, counting none would
 * pile them onto one real; IPVS would give the next new destinations wlc
 * picks in turn, so each fresh bucket carries its share of the new
 * destinations expected (twice the last tick's, as the seq plans do).
 * Without flows every bucket of the previous table is cached.
 */
export function cachedBuckets(
  previous: LocalityPlan | undefined,
  flows: Uint32Array | undefined,
  size: number,
  width: number,
): { cached: Uint8Array; arrived: number[]; freshShare: number } {
  const buckets = size / width;
  const cached = new Uint8Array(buckets);
  const arrived: number[] = [];
  if (!previous) return { cached, arrived, freshShare: 1 };
  if (flows === undefined || flows.length !== size) return { cached: cached.fill(1), arrived, freshShare: 1 };
  let fresh = 0;
  for (let b = 0; b < buckets; b++) {
    let used = false;
    for (let s = b * width; !used && s < (b + 1) * width; s++) used = flows[s]! > 0;
    const was = previous.pinned[b * width] === 1;
    cached[b] = was || used ? 1 : 0;
    if (!was && used) arrived.push(b);
    if (!cached[b]) fresh++;
  }
  return { cached, arrived, freshShare: fresh === 0 ? 1 : Math.min(1, Math.max(1, 2 * arrived.length) / fresh) };
}

/** Most connections one plan replays (~25 ms with 1,000 reals); beyond it, flows are scaled down. */
const MAX_REPLAY = 1 << 13;

/**
 * The connections of the buckets first used during the last tick, to replay
 * through IPVS: IPVS saw those destinations' first connections with the
 * counts of that moment and, while some real was under half its weight, moved
 * them again (is_overloaded); that transient is over within a tick, so a plan
 * made once per tick can only replay it. Their live flows are taken off the
 * reals the blind plan gave them, and the result is one bucket per
 * connection, interleaved in proportion to each bucket's flows.
 */
export function newcomerConnections(
  load: LocalityLoad,
  arrived: readonly number[],
  prev: LocalityPlan | undefined,
  flows: Uint32Array | undefined,
  width: number,
): number[] {
  if (!prev || !flows || arrived.length === 0) return [];
  const live = arrived.map((b) => {
    let f = 0;
    for (let s = b * width; s < (b + 1) * width; s++) {
      f += flows[s]!;
      const was = load.index.get(prev.table[s]!);
      if (was !== undefined) load.unbump(was, flows[s]!);
    }
    return { b, f };
  });
  const total = live.reduce((n, x) => n + x.f, 0);
  const scale = total > MAX_REPLAY ? MAX_REPLAY / total : 1;
  const conns: { at: number; b: number }[] = [];
  for (const { b, f } of live) {
    const k = Math.max(1, Math.round(f * scale));
    for (let j = 0; j < k; j++) conns.push({ at: (j + 0.5) / k, b });
  }
  return conns.sort((x, y) => x.at - y.at || x.b - y.b).map((c) => c.b);
}
