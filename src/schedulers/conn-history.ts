// What lc, wlc, sed and nq learn, tick after tick, about how long each real
// server's connections stay active, so a plan counts each of its own picks,
// and the connections already open, the way IPVS will see them at the later
// picks of the same plan.
//
// Little's law per real server: its mean active count L is the rate at
// which connections leave the active state times the mean time they stay
// in it, D = L / departures. Both come from sums over ticks, decayed alike
// (the active count the tick's census saw; the new connections since the
// last tick less the growth of the active count), so the ratio holds however
// bursty the traffic: a server whose connections end within milliseconds is
// almost never seen active and gets D near 0, whatever one tick happened to
// catch, and one that holds its connections has no departures and counts
// as busy until they do end. A pick then stays active while D x (the
// service's new connections per tick that had any) later picks arrive, on
// average; the span used is the likeliest count, the median of a Poisson
// count with that mean (mean + 1/3 rounded down): a pick expected to see 0.6
// later arrivals while open most often sees none. Connections already open
// close on the same scale: with lifetimes that forget their age, the j-th
// of `a` open connections closes after span x (1/a + ... + 1/(a-j+1))
// picks, the expected order statistics, rounded the same way.

/** Weight of the past per tick: an effective window of ten ticks. */
export const HISTORY_DECAY = 0.9;

export interface RealHistory {
  /** Decayed sum over ticks of the active count the census saw. */
  readonly active: number;
  /** Decayed sum over ticks of the connections that left the active state. */
  readonly departures: number;
  /** The active count at the last tick. */
  readonly lastActive: number;
}

export interface ConnHistory {
  /** Decayed count of ticks in which the service had new connections. */
  readonly busyTicks: number;
  /** Decayed sum of the service's new connections per tick. */
  readonly arrivals: number;
  /** By real id; a real server no longer in the service is forgotten. */
  readonly reals: ReadonlyMap<number, RealHistory>;
}

export interface TickSample {
  id: number;
  /** Active (ESTABLISHED) connections at the tick. */
  active?: number;
  /** New connections since the previous tick. */
  arrivals?: number;
}

/** The history with one more tick. */
export function addTick(h: ConnHistory | undefined, reals: readonly TickSample[]): ConnHistory {
  const d = HISTORY_DECAY;
  let total = 0;
  const next = new Map<number, RealHistory>();
  for (const r of reals) {
    const was = h?.reals.get(r.id);
    const active = r.active ?? 0;
    const arrivals = r.arrivals ?? 0;
    total += arrivals;
    // New connections that did not add to the active count replaced ones
    // that left it. A real with no record starts from none open (after a
    // restart the sum starts below zero: busy until departures show).
    const departed = arrivals - (active - (was?.lastActive ?? 0));
    next.set(r.id, { active: (was?.active ?? 0) * d + active, departures: (was?.departures ?? 0) * d + departed, lastActive: active });
  }
  return {
    busyTicks: (h?.busyTicks ?? 0) * d + (total > 0 ? 1 : 0),
    arrivals: (h?.arrivals ?? 0) * d + total,
    reals: next,
  };
}

/**
 * Per real (input order): for how many of the service's next picks a pick
 * of it still counts as active (see plan()'s activeFor). Infinity where
 * nothing is known yet (no tick with new connections) and for a real
 * server whose connections are open and none has ended. A real server with
 * no record takes the service's mean.
 */
export function activeSpans(h: ConnHistory | undefined, reals: readonly { id: number }[]): number[] {
  if (!h || !(h.busyTicks > 0) || !(h.arrivals > 0)) return reals.map(() => Infinity);
  const perBusyTick = h.arrivals / h.busyTicks;
  let active = 0;
  let departures = 0;
  for (const r of h.reals.values()) {
    active += r.active;
    departures += Math.max(0, r.departures);
  }
  const ticksActive = (a: number, dep: number): number => (dep > 0 ? a / dep : a > 0 ? Infinity : 0);
  const mean = departures > 0 || active > 0 ? ticksActive(active, departures) : Infinity;
  return reals.map((r) => {
    const x = h.reals.get(r.id);
    const known = x && (x.active > 0 || x.departures > 0);
    return likeliestCount((known ? ticksActive(x.active, x.departures) : mean) * perBusyTick);
  });
}

/** The likeliest of a count with this mean: the median of a Poisson count, about mean + 1/3 rounded down. */
function likeliestCount(mean: number): number {
  return Number.isFinite(mean) ? Math.floor(mean + 1 / 3) : Infinity;
}

/**
 * Per real (input order): before which picks its connections open now
 * close (plan()'s closing), given the spans activeSpans() returned.
 */
export function closingPicks(reals: readonly { active?: number }[], spans: readonly number[]): (number[] | undefined)[] {
  return reals.map((r, i) => {
    const a = r.active ?? 0;
    const span = spans[i]!;
    if (a === 0 || !Number.isFinite(span)) return undefined;
    const out: number[] = [];
    let sum = 0;
    for (let j = 0; j < a; j++) {
      sum += 1 / (a - j);
      out.push(likeliestCount(span * sum));
    }
    return out;
  });
}
