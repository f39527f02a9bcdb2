import type { Director } from '../daemon/director.js';
import { takeCensus, type FlowCensus } from './census.js';
import { collect } from './collect.js';
import { exposition } from './exposition.js';

/**
 * The census is the expensive part of a scrape (a walk of the flow tables,
 * ~0.4 s of CPU per million entries), so scrapes share one at most this
 * old; counters, statistics and rates are read afresh every time.
 */
export const DEFAULT_CENSUS_MS = 5000;

/** xvsd --metrics: one scrape's text from the director's committed model and maps. */
export class Metrics {
  #census: FlowCensus | undefined;
  #pending: Promise<FlowCensus> | undefined;

  constructor(readonly director: Director, readonly censusMs = DEFAULT_CENSUS_MS) {}

  /** The cached census, or a new one; scrapes that arrive during a walk wait for that walk. */
  async census(): Promise<FlowCensus> {
    const c = this.#census;
    if (c && performance.now() - c.at < this.censusMs) return c;
    this.#pending ??= takeCensus(this.director.dp, this.director.model).finally(() => { this.#pending = undefined; });
    this.#census = await this.#pending;
    return this.#census;
  }

  async scrape(): Promise<string> {
    const census = await this.census();
    const d = this.director;
    return exposition(collect({
      dp: d.dp, model: d.model, rates: d.rates, activity: d.activity,
      unresolved: d.status().unresolvedNexthops.length, census, now: performance.now(),
    }));
  }
}
