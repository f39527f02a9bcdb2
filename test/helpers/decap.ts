// The real server's decap helper (bpf/xvs_decap.c) loaded for
// BPF_PROG_TEST_RUN, with its maps and counters, for the packet tests of
// each tunnel kind.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { BpfObject, XdpAction, testRun, type TestRunResult } from '../../src/loader/index.js';
import { DECAP_CNT } from '../../src/maps/abi.js';
import { ipToAddr16 } from '../../src/maps/codec.js';
import { u32Codec, u64Codec } from '../../src/maps/codecs.js';
import { PerCpuMap, type RawMap } from '../../src/maps/map.js';
import { bpfObject } from '../../src/paths.js';

export const decapSkip = process.getuid?.() !== 0 ? 'needs root for BPF' : existsSync(bpfObject('xvs_decap')) ? undefined : 'bpf/.output/xvs_decap.o is not built';

export type DecapCounter = Exclude<keyof typeof DECAP_CNT, 'max'>;

export class Decap {
  readonly #obj: BpfObject;
  readonly vips: RawMap;
  readonly ports: RawMap;
  readonly #counters: PerCpuMap<number, number>;
  readonly #prog: number;

  constructor() {
    this.#obj = BpfObject.open({ objectPath: bpfObject('xvs_decap') });
    this.#obj.load();
    this.#prog = this.#obj.program('xdp_decap').fd;
    this.vips = this.#obj.map('xvs_decap_vips');
    this.ports = this.#obj.map('xvs_decap_ports');
    this.#counters = new PerCpuMap(this.#obj.map('xvs_decap_counters'), u32Codec, u64Codec);
  }

  /** `addr` is a VIP of the families `fams` (DECAP_AF bits). */
  setVip(addr: string, fams: number): void {
    const v = Buffer.alloc(4);
    v.writeUInt32LE(fams);
    this.vips.update(ipToAddr16(addr).bytes, v);
  }

  counts(): Record<DecapCounter, number> {
    const count = (c: DecapCounter): number => Number(this.#counters.sum(DECAP_CNT[c]) ?? 0);
    return { decapped: count('decapped'), not_vip: count('not_vip'), malformed: count('malformed') };
  }

  run(input: Buffer): TestRunResult {
    return testRun(this.#prog, { data: input });
  }

  /** Runs one frame; checks verdict, exact output and which counter (if any) moved. */
  expect(name: string, input: Buffer, output: Buffer | 'same', counter: DecapCounter | null, verdict: number = XdpAction.PASS): void {
    const was = this.counts();
    const r = this.run(input);
    assert.equal(r.retval, verdict, `${name}: verdict`);
    assert.equal(r.data.toString('hex'), (output === 'same' ? input : output).toString('hex'), `${name}: output bytes`);
    const now = this.counts();
    for (const c of Object.keys(now) as DecapCounter[]) assert.equal(now[c] - was[c], c === counter ? 1 : 0, `${name}: counter ${c}`);
  }

  close(): void {
    this.#obj.close();
  }
}
