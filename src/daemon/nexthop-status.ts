import { logger } from '../log.js';
import type { Resolution } from './nexthop.js';

const log = logger('nexthop');

/**
 * Why each live real server's next hop is unknown, as last resolved, for
 * `xvs status`; one log line when one becomes unknown and one when it is
 * known again.
 */
export class UnresolvedNexthops {
  #why = new Map<string, string>();

  get why(): ReadonlyMap<string, string> {
    return this.#why;
  }

  /**
   * `live`: the model's real server addresses. `all`: `rs` are every
   * address (a refresh), so one not among them is no longer unresolved.
   */
  note(rs: Iterable<Resolution>, live: ReadonlySet<string>, all: boolean): void {
    const next = new Map(all ? [] : this.#why);
    for (const r of rs) {
      if (!live.has(r.addr)) continue;
      if (r.unresolved) next.set(r.addr, r.unresolved);
      else next.delete(r.addr);
    }
    for (const a of [...next.keys()]) if (!live.has(a)) next.delete(a);
    for (const [addr, why] of next) {
      if (!this.#why.has(addr)) log.warn({ real: addr, why }, 'next hop unresolved: its packets go through the FIB and are dropped while it cannot resolve');
    }
    for (const addr of this.#why.keys()) if (!next.has(addr) && live.has(addr)) log.info({ real: addr }, 'next hop resolved');
    this.#why = next;
  }
}
