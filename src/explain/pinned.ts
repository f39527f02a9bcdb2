import { existsSync } from 'node:fs';
import path from 'node:path';
import { XvsError } from '../errors.js';
import { BpfObject, testRun } from '../loader/index.js';
import * as C from '../maps/codecs.js';
import { mapFromPin, type RawMap, TypedMap } from '../maps/map.js';
import { SetTable } from '../maps/set-table.js';
import { bpfObject } from '../paths.js';
import type { ExplainMaps } from './explain.js';

/** The shortest frame BPF_PROG_TEST_RUN takes for XDP. */
const ETH_ZLEN = 60;

/**
 * A running director's maps, opened from their pins (read-only use): what
 * `xvs explain` reads, with or without xvsd. Its clock is the dataplane's
 * own, xvs_clock of xvs.o, loaded on its own with every map at one entry
 * (xvs_icmperr comes along: the program array that xvs_xdp tail-calls
 * through is filled at load and names it).
 */
export class PinnedDirector implements ExplainMaps {
  readonly #raw: RawMap[] = [];
  #clock: BpfObject | undefined;
  readonly services; readonly reals; readonly conns; readonly newFlows; readonly persist; readonly schedTables; readonly schedPos;
  readonly nexthops; readonly laddrs; readonly svcLaddrs; readonly nats; readonly newReplies; readonly natRealSlots; readonly config; readonly fwmarkRules;

  private constructor(readonly pinDir: string) {
    const open = (name: string): RawMap => {
      const m = mapFromPin(path.join(pinDir, name));
      this.#raw.push(m);
      return m;
    };
    try {
      this.config = new TypedMap(open('xvs_config'), C.u32Codec, C.config);
      this.services = new TypedMap(open('xvs_services'), C.svcKey, C.svc);
      this.reals = new TypedMap(open('xvs_reals'), C.u32Codec, C.real);
      this.conns = new TypedMap(open('xvs_conns'), C.connKey, C.conn);
      this.newFlows = new SetTable(open('xvs_new_flows'), open('xvs_new_flow_heads'), C.conn);
      this.persist = new TypedMap(open('xvs_persist'), C.persistKey, C.persist);
      this.schedTables = open('xvs_sched_tables');
      this.schedPos = open('xvs_sched_pos');
      this.nexthops = new TypedMap(open('xvs_nexthops'), C.u32Codec, C.nexthop);
      this.laddrs = new TypedMap(open('xvs_laddrs'), C.u32Codec, C.laddr);
      this.svcLaddrs = new TypedMap(open('xvs_svc_laddrs'), C.u32Codec, C.svcLaddrs);
      this.nats = new TypedMap(open('xvs_nats'), C.connKey, C.nat);
      this.newReplies = new SetTable(open('xvs_new_replies'), open('xvs_new_reply_heads'), C.nat);
      this.natRealSlots = new TypedMap(open('xvs_nat_real_slots'), C.u32Codec, C.u32Codec);
      this.fwmarkRules = new TypedMap(open('xvs_fwmark_rules'), C.fwmarkKey, C.fwmarkRules);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  static open(pinDir: string): PinnedDirector {
    if (!existsSync(path.join(pinDir, 'xvs_config'))) {
      throw new XvsError('NO_PINS', `no director's maps are pinned in ${pinDir}`);
    }
    return new PinnedDirector(pinDir);
  }

  /** The kernel's id of the pinned xvs_config, which every program of this director uses. */
  configId(): number {
    return this.config.raw.kernelId();
  }

  jiffies(): number {
    if (!this.#clock) {
      const objectPath = bpfObject('xvs');
      const probe = BpfObject.open({ objectPath });
      const names = probe.declaredMapNames();
      probe.close();
      const obj = BpfObject.open({ objectPath, programs: ['xvs_clock', 'xvs_icmperr'], mapSizes: Object.fromEntries(names.map((n) => [n, 1])) });
      try {
        obj.load();
      } catch (e) {
        obj.close();
        throw e;
      }
      this.#clock = obj;
    }
    return Number(testRun(this.#clock.program('xvs_clock').fd, { data: Buffer.alloc(ETH_ZLEN) }).data.readBigUInt64LE(0));
  }

  close(): void {
    for (const m of this.#raw.splice(0)) m.close();
    this.#clock?.close();
    this.#clock = undefined;
  }
}
