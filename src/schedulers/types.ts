/** A real server as a table builder sees it; list order is ipvsadm insertion order. */
export interface SchedReal {
  id: number;
  weight: number;
}

/**
 * A real server with the live state the dynamic schedulers read. Counts are
 * IPVS's: active = ESTABLISHED connections, inactive = every other state
 * (SYN_RECV, FIN_WAIT, TIME_WAIT, ...). overloaded mirrors
 * IP_VS_DEST_F_OVERLOAD (over its upper connection threshold).
 */
export interface RealState extends SchedReal {
  addr: string;
  port: number;
  /** mh: see HashReal.lastWeight. */
  lastWeight?: number;
  active?: number;
  inactive?: number;
  overloaded?: boolean;
  /**
   * lc/wlc/sed/nq, on a tick's plan only: new connections this real got
   * since the last tick (the change of xvs_real_stats conns). With active,
   * one more sample of how long its connections stay active, hence how a
   * planned pick counts (see conn-history.ts).
   */
  arrivals?: number;
}

/** What the load-driven planners need: no address, counts required. */
export interface LoadReal extends SchedReal {
  active: number;
  inactive: number;
  overloaded?: boolean;
}

/** What the hashing builders need: the address orders the table, not list order. */
export interface HashReal extends SchedReal {
  addr: string;
  port: number;
  overloaded?: boolean;
  /**
   * mh: the latest weight above 0 (IPVS's last_weight), by which a real
   * quiesced to weight 0 keeps its slots; absent or 0: it never had one.
   */
  lastWeight?: number;
}

/**
 * How a connection the planner itself places is counted when it simulates the
 * next pick. IPVS counts a new DR/TUN TCP connection inactive (SYN_RECV),
 * active one round trip later on the client's ACK, and inactive again once
 * it closes. See plan() for what the planner does when it is not told.
 */
export type NewConnAs = 'active' | 'inactive';

export interface SchedInput {
  reals: readonly RealState[];
  /** seq planners (lc, wlc, sed, nq): how many consecutive new connections to plan. */
  picks?: number;
  /**
   * lblc/lblcr: the table installed last time, so buckets keep their
   * servers. Defaults to the table this scheduler object built last; pass it
   * when that is not what the dataplane holds (e.g. read back after a restart).
   */
  previous?: Uint32Array;
  /**
   * lblc/lblcr: live flows per slot of the previous table, i.e. for each of
   * the service's flows hash32(daddr) % previous.length. Tells which buckets
   * IPVS would have cached; see LocalityOptions.flows.
   */
  flows?: Uint32Array;
  /** Table length for sh, dh, mh, lblc and lblcr. */
  tableSize?: number;
  /**
   * sh/mh: sh-fallback/mh-fallback. An unavailable real's slots send their
   * clients on to an available one instead of refusing them (see
   * fallback.ts).
   */
  fallback?: boolean;
  /**
   * seq planners: xvs_sched_pos, the sequence number of the next new flow.
   * The plan is rotated so that flow (slot cursor % length) takes its first
   * pick: the counter is never reset, and a burst continues from one plan
   * into the next.
   */
  cursor?: number | bigint;
  /** seq planners: count every pick this way, instead of from the reals' arrivals. */
  newConnAs?: NewConnAs;
}
