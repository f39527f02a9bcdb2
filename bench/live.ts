// Forwarded packets per second through a veth pair with live frames:
// xdp_gen (test run, ingress A) -> out of A -> B runs the program under
// test -> XDP_TX back to A -> xdp_sink on A counts and drops.
import * as F from '../test/helpers/frames.js';
import { attachXdp, BPF_F_TEST_XDP_LIVE_FRAMES, detachXdp, testRun } from '../src/loader/index.js';
import { cpuShares, pinNapi } from './cpu.js';
import { FRAME_LEN, flowFrame, flowSpace, type Mode } from './frames.js';
import { NET, setThreadedNapi, statsDelta, xdpStats, type Links } from './net.js';
import { dirDelta, dirSnap, genSeq, setTemplate, sinkCount, sinkPerCpu, zeroSink, type DirSnap, type Progs } from './progs.js';
import { ctxFor, inNs, median, nowNs, runTx, sleep, VerdictError } from './run-util.js';

export const LIVE_LIMITS = {
  warmupFrames: 1 << 16,
  /**
   * Each generator call pays a fixed setup and teardown (tens of ms on
   * 6.18), so a chain is a few long calls rather than many short ones.
   */
  callMs: 900,
  calls: 3,
  minFramesPerCall: 100_000,
  maxFramesPerCall: 20_000_000,
  batchSize: 64,
  drainMs: 50,
} as const;

/** 'none': xb has no XDP, so veth offers no ndo_xdp_xmit and the redirect fails at once. */
export type BProg = 'none' | 'xdp_sink' | 'xdp_macswap' | 'xvs_xdp';
export type Napi = 'softirq' | 'threaded';

/** fixed: one established flow; syn: one flow's SYN over and over; new: every frame a new flow. */
export interface LiveCase { name: string; b: BProg; mode: Mode | null; flows: 'fixed' | 'syn' | 'new' }

export interface LiveResult {
  name: string;
  b: BProg;
  mode: Mode | null;
  flows: LiveCase['flows'];
  napi: Napi;
  /** Where B's NAPI thread was pinned (threaded only); the generator is on CPU 0. */
  bCpu: number | null;
  calls: number;
  generated: number;
  /** veth counters of B: frames its program saw and sent back. */
  bRx: number;
  bTx: number;
  sunk: number;
  sinkCpus: Record<number, number>;
  wallMs: number;
  /** The generator's test-run loop time as the kernel reports it. */
  genKernelMs: number;
  /** Warm-up call: wall minus kernel loop time, the fixed cost of one call. */
  callOverheadMs: number;
  /** Median over the calls of frames sunk (generated, for 'none') / wall time of the call. */
  pps: number;
  ppsMin: number;
  ppsMax: number;
  offeredPps: number;
  newFlows: number | null;
  director: DirSnap | null;
}

const fdOf = (p: Progs, b: Exclude<BProg, 'none'>): number => (b === 'xdp_sink' ? p.fd.sink : b === 'xdp_macswap' ? p.fd.macswap : p.fd.director);

function template(p: Progs, links: Links, c: LiveCase): Buffer {
  if (c.mode === null) return flowFrame('dr', F.TCP.ACK);
  if (c.flows === 'new') return flowFrame(c.mode, F.TCP.SYN, 0, true);
  // The flow exists before the chain starts (confirmed by the client's ACK
  // for 'fixed'), so every live frame takes the path the case names.
  const syn = flowFrame(c.mode, F.TCP.SYN, 50000);
  inNs(() => runTx(`${c.name} priming SYN`, p.fd.director, { data: syn, ctxIn: ctxFor(links.b, syn.length) }));
  if (c.flows === 'syn') return syn;
  const ack = flowFrame(c.mode, F.TCP.ACK, 50000);
  inNs(() => runTx(`${c.name} priming ACK`, p.fd.director, { data: ack, ctxIn: ctxFor(links.b, ack.length) }));
  return ack;
}

function generate(p: Progs, links: Links, frame: Buffer, repeat: number): { wallNs: number; kernelNs: number } {
  // The generator's input is exactly one frame, and data_end its length.
  const opts = { data: frame, ctxIn: ctxFor(links.a, FRAME_LEN), repeat, flags: BPF_F_TEST_XDP_LIVE_FRAMES, batchSize: LIVE_LIMITS.batchSize };
  const t0 = nowNs();
  // Live mode reports no verdict (retval stays 0): the counts downstream tell.
  const r = inNs(() => testRun(p.fd.gen, opts));
  return { wallNs: Number(nowNs() - t0), kernelNs: r.duration * repeat };
}

/** Attaches the chain's programs; returns where B's NAPI thread was pinned, if threaded. */
function setUp(p: Progs, links: Links, c: LiveCase, napi: Napi, bCpu: number): number | null {
  inNs(() => {
    attachXdp(links.a, p.fd.sink, 'native');
    if (c.b !== 'none') attachXdp(links.b, fdOf(p, c.b), 'native');
  });
  if (napi === 'softirq') return null;
  // veth has NAPI only while XDP is attached, so this follows the attach.
  setThreadedNapi(true);
  if (!pinNapi(NET.b, bCpu)) throw new Error(`no NAPI thread for ${NET.b} after enabling threaded NAPI`);
  return bCpu;
}

function check(c: LiveCase, generated: number, sunk: number, genFrames: number, d: DirSnap | null): void {
  const odd = d ? Object.keys(d.counters).filter((k) => k !== 'rx' && k !== 'tx') : [];
  // Every frame of a new-flow chain is a 5-tuple the generator has not sent
  // before (an injective sequence, restarted per case, inside its space), and
  // the director counts each as a new connection.
  if (c.flows === 'new' && c.mode && genFrames > flowSpace(c.mode)) {
    throw new VerdictError(`${c.name}: ${genFrames} frames but only ${flowSpace(c.mode)} distinct flows: some repeated`);
  }
  if (c.flows === 'new' && d && d.conns !== d.counters.tx) {
    throw new VerdictError(`${c.name}: ${d.counters.tx} frames forwarded but ${d.conns} new connections`);
  }
  if (d && (odd.length > 0 || d.counters.rx !== d.counters.tx)) {
    throw new VerdictError(`${c.name}: the director did not answer XDP_TX to every frame: ${JSON.stringify(d.counters)}`);
  }
  if (c.b === 'none' && (sunk !== 0 || genFrames !== generated)) {
    throw new VerdictError(`${c.name}: expected ${generated} generated and none sunk, xdp_gen counted ${genFrames} and the sink ${sunk}`);
  }
  if (c.b !== 'none' && sunk === 0) throw new VerdictError(`${c.name}: nothing reached the sink; the chain is broken`);
}

export async function runLive(p: Progs, links: Links, c: LiveCase, napi: Napi, bCpu: number): Promise<LiveResult> {
  const frame = template(p, links, c);
  try {
    const pinned = setUp(p, links, c, napi, bCpu);
    // Varying the flow makes xdp_gen count its frames, the only proof it ran when xb takes none.
    setTemplate(p, frame, c.flows === 'new' ? c.mode : c.b === 'none' ? 'dr' : null);
    const warm = generate(p, links, frame, LIVE_LIMITS.warmupFrames);
    const nsPerFrame = Math.max(warm.kernelNs / LIVE_LIMITS.warmupFrames, 1);
    const repeat = Math.round(Math.min(LIVE_LIMITS.maxFramesPerCall, Math.max(LIVE_LIMITS.minFramesPerCall, (LIVE_LIMITS.callMs * 1e6) / nsPerFrame)));
    await sleep(LIVE_LIMITS.drainMs);

    zeroSink(p);
    const dir0 = c.mode ? dirSnap(p, c.mode) : null;
    const seq0 = genSeq(p);
    const b0 = xdpStats(NET.b);
    let wallNs = 0;
    let kernelNs = 0;
    let sunk = 0;
    const callPps: number[] = [];
    for (let i = 0; i < LIVE_LIMITS.calls; i++) {
      const g = generate(p, links, frame, repeat);
      await sleep(LIVE_LIMITS.drainMs);
      const now = sinkCount(p);
      // With nothing on B, the generator's own rate is the figure.
      callPps.push(((c.b === 'none' ? repeat : now - sunk) * 1e9) / g.wallNs);
      sunk = now;
      wallNs += g.wallNs;
      kernelNs += g.kernelNs;
    }
    const b = statsDelta(b0, xdpStats(NET.b));
    const d = dir0 && c.mode ? dirDelta(dir0, dirSnap(p, c.mode)) : null;
    const generated = repeat * LIVE_LIMITS.calls;
    check(c, generated, sunk, genSeq(p) - seq0, d);
    return {
      name: c.name, b: c.b, mode: c.mode, flows: c.flows, napi, bCpu: pinned,
      calls: LIVE_LIMITS.calls, generated, bRx: b.packets, bTx: b.tx, sunk, sinkCpus: cpuShares(sinkPerCpu(p)),
      wallMs: wallNs / 1e6, genKernelMs: kernelNs / 1e6, callOverheadMs: (warm.wallNs - warm.kernelNs) / 1e6,
      pps: median(callPps), ppsMin: Math.min(...callPps), ppsMax: Math.max(...callPps), offeredPps: (generated * 1e9) / wallNs,
      newFlows: d ? d.conns : null, director: d,
    };
  } finally {
    inNs(() => {
      detachXdp(links.b);
      detachXdp(links.a);
    });
  }
}
