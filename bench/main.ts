// The bench proper; run.ts checks the machine first and imports this.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../src/paths.js';
import { CPUS, pinMainThread } from './cpu.js';
import { FRAME_LEN, TWO_WAY } from './frames.js';
import { runLive, type LiveCase, type LiveResult, type Napi } from './live.js';
import { runMicro } from './micro.js';
import { runMicroNat } from './micro-nat.js';
import { ipvsAbsence } from './kernel-nat.js';
import { PER_CORE_CASES, runPerCore } from './percore.js';
import { perCoreLines, perCoreRows, perCoreSummary } from './report-percore.js';
import { createNet, destroyNet, NET } from './net.js';
import { closeProgs, loadProgs, type Progs } from './progs.js';
import { DEFAULT_CONN_TABLE_SIZE } from '../src/daemon/dataplane.js';
import { liveRows, microRows, render, toJson, type Env } from './report.js';
import { runFidelityBench } from './fidelity.js';
import { floodLines, runFloodBench } from './flood.js';
import { runSchedSpeedBench } from './sched-speed.js';
import { runTablePushBench } from './table-push.js';

/** xvsd's defaults: what an operator gets (the new-flow tables have one size). */
const MICRO_CONN_TABLE = DEFAULT_CONN_TABLE_SIZE;
const LIVE_CONN_TABLE = DEFAULT_CONN_TABLE_SIZE;
export const RESULTS_FILE = path.join(packageRoot, 'dist', 'bench-results.json');

/** Opt-in: on a 2-CPU VM the overdriven NAPI thread gives bimodal figures. */
const THREADED = process.env.XVS_BENCH_THREADED === '1';

const LIVE_ONE_WAY: readonly LiveCase[] = [
  { name: 'generator alone (no XDP)', b: 'none', mode: null, flows: 'fixed' },
  { name: 'xdp_sink (ceiling)', b: 'xdp_sink', mode: null, flows: 'fixed' },
  { name: 'xdp_macswap (baseline)', b: 'xdp_macswap', mode: null, flows: 'fixed' },
  { name: 'xvs_xdp DR', b: 'xvs_xdp', mode: 'dr', flows: 'fixed' },
  { name: 'xvs_xdp DR', b: 'xvs_xdp', mode: 'dr', flows: 'syn' },
  { name: 'xvs_xdp DR', b: 'xvs_xdp', mode: 'dr', flows: 'new' },
  { name: 'xvs_xdp TUN', b: 'xvs_xdp', mode: 'tun', flows: 'fixed' },
  { name: 'xvs_xdp TUN', b: 'xvs_xdp', mode: 'tun', flows: 'new' },
  { name: 'xvs_xdp IPv6 DR', b: 'xvs_xdp', mode: 'dr6', flows: 'fixed' },
  { name: 'xvs_xdp IPv6 TUN', b: 'xvs_xdp', mode: 'tun6', flows: 'fixed' },
];

/** On a director of the two-way modes; the kernel's NAT beside each (kernel-nat.ts). */
const LIVE_TWO_WAY: readonly LiveCase[] = PER_CORE_CASES.filter((c) => c.mode !== null);

const progress = (s: string): void => { process.stderr.write(`bench: ${s}\n`); };

function env(): Env {
  return {
    date: new Date().toISOString(), kernel: os.release(), cpus: CPUS,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown', node: process.version, frameBytes: FRAME_LEN,
  };
}

async function liveAll(p: Progs, links: ReturnType<typeof createNet>, cases: readonly LiveCase[]): Promise<LiveResult[]> {
  // With one CPU there is no second core for a NAPI thread.
  const napis: Napi[] = THREADED && CPUS >= 2 ? ['softirq', 'threaded'] : ['softirq'];
  const out: LiveResult[] = [];
  pinMainThread(0);
  try {
    for (const napi of napis) {
      // A thread needs NAPI, which veth has only with a program attached.
      // Threaded chains of the kernel's NAT: part 3 has them, measured for what they cost the director's core.
      for (const c of cases.filter((x) => napi === 'softirq' || (x.b !== 'none' && x.b !== 'kernel'))) {
        const r = await runLive(p, links, c, napi, 1);
        progress(`${napi} ${c.name} ${c.dir ?? c.flows}: ${(r.pps / 1e6).toFixed(3)} Mpps, ${r.sunk} of ${r.generated} frames sunk`);
        out.push(r);
      }
    }
  } finally {
    pinMainThread('all');
  }
  return out;
}

export async function main(): Promise<void> {
  const t0 = Date.now();
  const e = env();
  progress(`namespace ${NET.ns}`);
  const links = createNet();
  let p: Progs | null = null;
  try {
    p = await loadProgs(MICRO_CONN_TABLE);
    const micro = await runMicro(p, links, progress);
    closeProgs(p);
    p = null;
    p = await loadProgs(MICRO_CONN_TABLE, TWO_WAY);
    micro.push(...await runMicroNat({ p, links }, progress));
    closeProgs(p);
    p = null;
    // A fresh director for the chains: no flows left from part 1.
    p = await loadProgs(LIVE_CONN_TABLE);
    const live = await liveAll(p, links, LIVE_ONE_WAY);
    closeProgs(p);
    p = null;
    p = await loadProgs(LIVE_CONN_TABLE, TWO_WAY);
    live.push(...await liveAll(p, links, LIVE_TWO_WAY));
    const perCore = await runPerCore(p, links, progress);
    closeProgs(p);
    p = null;
    const ipvs = ipvsAbsence();
    const flood = await runFloodBench(links);
    const m = microRows(micro);
    const l = liveRows(live);
    const conns = { micro: MICRO_CONN_TABLE, live: LIVE_CONN_TABLE };
    const extra = THREADED
      ? ['   threaded: xb\'s NAPI is a kernel thread pinned to CPU 1 (xa\'s sink follows it there); the generator overdrives it.']
      : ['   Set XVS_BENCH_THREADED=1 to add chains with xb\'s NAPI in a thread on CPU 1 (overdriven; unstable on small VMs).'];
    const pc = perCore ? perCoreRows(perCore) : null;
    process.stdout.write(`${render(e, m, l, conns, extra)}\n\n${perCoreLines(pc, ipvs).join('\n')}\n\n${floodLines(flood).join('\n')}\n`);
    // Control plane: table publishing, scheduler build speed, scheduling fidelity against exact IPVS.
    const tablePush = runTablePushBench();
    const schedSpeed = await runSchedSpeedBench();
    const fidelity = await runFidelityBench();
    const perCoreJson = { ipvs, cases: pc, summary: pc ? perCoreSummary(pc) : null };
    const json = JSON.stringify({ ...toJson(e, (Date.now() - t0) / 1000, NET.ns, m, l, conns), perCore: perCoreJson, flood, controlPlane: { tablePush, schedSpeed, fidelity } }, null, 2);
    process.stdout.write(`\n${json}\n`);
    mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
    writeFileSync(RESULTS_FILE, `${json}\n`);
    progress(`results written to ${path.relative(process.cwd(), RESULTS_FILE)} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    if (p) closeProgs(p);
    destroyNet();
  }
}
