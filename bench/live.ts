// Forwarded packets per second through a veth pair with live frames:
// xdp_gen (test run, ingress A) -> out of A -> B runs the program under
// test (or, for 'kernel', the kernel's own NAT: kernel-nat.ts) -> back to A
// -> xdp_sink on A counts and drops.
import * as F from '../test/helpers/frames.js';
import { attachXdp, BPF_F_TEST_XDP_LIVE_FRAMES, detachXdp, testRun } from '../src/loader/index.js';
import { cpuShares, napiThreads, pinNapi, realtimeNapi, threadTime, type ThreadTime } from './cpu.js';
import { FRAME_LEN, flowFrame, flowSpace, type Mode } from './frames.js';
import { checkDown, checkUp, kernelNatDown, kernelNatUp, kernelOpening, kernelSegment, type KernelMode } from './kernel-nat.js';
import { openFlow } from './micro-nat.js';
import { arriving, padded, type Dir, type NatMode } from './nat-frames.js';
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
  /** Frames of a kernel case's check pass, before and after its timed calls. */
  checkFrames: 20_000,
} as const;

/**
 * 'none': xb has no XDP, so veth offers no ndo_xdp_xmit and the redirect
 * fails at once. 'kernel': xdp_pass on xb, for veth's NAPI, and the stack
 * forwarding with nftables NAT (kernel-nat.ts).
 */
export type BProg = 'none' | 'xdp_sink' | 'xdp_macswap' | 'xvs_xdp' | 'kernel';
/**
 * softirq: every NAPI runs on the generator's core, inside its test run.
 * threaded: xb's NAPI in a thread on CPU 1 (xa's follows it there).
 * split: xb's NAPI thread alone on CPU 1, xa's with the generator on CPU 0,
 * so CPU 1 does the director's work and nothing else (percore.ts).
 */
export type Napi = 'softirq' | 'threaded' | 'split';

/**
 * fixed: one established flow; syn: one flow's SYN over and over; new: every
 * frame a new flow. dir (NAT modes): the client's data segment ('in') or
 * the real server's reply ('out') of an established flow.
 */
export interface LiveCase { name: string; b: BProg; mode: Mode | null; flows: 'fixed' | 'syn' | 'new'; dir?: Dir }

/** A kernel case's check pass: frames xb took, frames that left it, and of those the ones translated as xvs would. */
export interface KernelCheck { polled: number; forwarded: number; translated: number }

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
  dir: Dir | null;
  /** split: the run time of xb's NAPI thread over the timed calls, its waits for CPU 1, and how often it ran. */
  bThread: ThreadTime | null;
  /** kernel: the check passes before and after the timed calls. */
  kernelChecks: KernelCheck[] | null;
}

const fdOf = (p: Progs, b: Exclude<BProg, 'none' | 'kernel'>): number => (b === 'xdp_sink' ? p.fd.sink : b === 'xdp_macswap' ? p.fd.macswap : p.fd.director);

const isNat = (m: Mode | null): m is NatMode => m === 'nat' || m === 'fnat' || m === 'nat64';
const isKernelMode = (m: Mode | null): m is KernelMode => m === 'nat' || m === 'fnat';

/** Each two-way case opens a flow of its own: a client port no other case used. */
let nextNatPort = 51000;

/** The frame the chain repeats, after opening its flow; sport: the client's port of a two-way flow. */
async function template(p: Progs, links: Links, c: LiveCase): Promise<{ frame: Buffer; sport: number }> {
  const sport = nextNatPort++;
  if (c.b === 'kernel') {
    if (!isKernelMode(c.mode) || !c.dir) throw new Error(`${c.name}: the kernel's NAT takes nat or fnat and a direction`);
    for (const f of kernelOpening(c.mode, sport)) {
      const g = padded(f);
      setTemplate(p, g, null);
      generate(p, links, g, 1);
      await sleep(LIVE_LIMITS.drainMs);
    }
    return { frame: kernelSegment(c.mode, c.dir, sport), sport };
  }
  return { frame: oneWayOrNat(p, links, c, sport), sport };
}

function oneWayOrNat(p: Progs, links: Links, c: LiveCase, sport: number): Buffer {
  if (c.mode === null) return flowFrame('dr', F.TCP.ACK);
  if (isNat(c.mode)) {
    if (!c.dir || c.flows !== 'fixed') throw new Error(`${c.name}: a two-way case is an established flow's one direction`);
    const via = openFlow({ p, links }, c.mode, sport);
    return arriving(c.mode, c.dir === 'in' ? 'data' : 'reply', sport, via);
  }
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
    if (c.b !== 'none' && c.b !== 'kernel') attachXdp(links.b, fdOf(p, c.b), 'native');
  });
  if (c.b === 'kernel') {
    if (!isKernelMode(c.mode)) throw new Error(`${c.name}: the kernel's NAT takes nat or fnat`);
    inNs(() => attachXdp(links.b, p.fd.pass, 'native'));
    kernelNatUp(c.mode);
  }
  if (napi === 'softirq') return null;
  // veth has NAPI only while XDP is attached, so this follows the attach.
  setThreadedNapi(NET.b, true);
  if (!pinNapi(NET.b, bCpu)) throw new Error(`no NAPI thread for ${NET.b} after enabling threaded NAPI`);
  if (napi === 'split') {
    setThreadedNapi(NET.a, true);
    if (!pinNapi(NET.a, 0)) throw new Error(`no NAPI thread for ${NET.a} after enabling threaded NAPI`);
    realtimeNapi(NET.a);
  }
  return bCpu;
}

/** A kernel case's check pass: LIVE_LIMITS.checkFrames of the case's frame, counted by nftables as they leave. */
async function kernelCheck(p: Progs, links: Links, c: LiveCase, frame: Buffer, sport: number): Promise<KernelCheck> {
  if (!isKernelMode(c.mode) || !c.dir) throw new Error(`${c.name}: not a kernel case`);
  checkUp(c.mode, c.dir, sport);
  const b0 = xdpStats(NET.b);
  generate(p, links, frame, LIVE_LIMITS.checkFrames);
  await sleep(LIVE_LIMITS.drainMs);
  const polled = statsDelta(b0, xdpStats(NET.b)).packets;
  const r = checkDown();
  const out = { polled, ...r };
  // Every frame xb took left translated: nothing went untranslated (a flow
  // conntrack did not hold) and nothing was dropped on the way.
  if (polled === 0 || r.translated !== polled || r.forwarded !== polled) {
    throw new VerdictError(`${c.name}: of ${polled} frames the kernel took, ${r.forwarded} left and ${r.translated} translated`);
  }
  return out;
}

function check(c: LiveCase, generated: number, sunk: number, genFrames: number, d: DirSnap | null): void {
  // A reply is counted as one (nat_reply) beside rx and tx; a known flow's
  // frame may go from its CPU's copy (flow_cached), never a new flow's.
  const perFrame = [...(c.dir === 'out' ? ['rx', 'tx', 'nat_reply'] : ['rx', 'tx']), ...(c.flows === 'new' ? [] : ['flow_cached'])];
  const odd = d ? Object.keys(d.counters).filter((k) => !perFrame.includes(k)) : [];
  if (d && c.dir === 'out' && d.counters.nat_reply !== d.counters.tx) {
    throw new VerdictError(`${c.name}: ${d.counters.tx} frames sent but ${d.counters.nat_reply} replies counted`);
  }
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
  try {
    const pinned = setUp(p, links, c, napi, bCpu);
    const { frame, sport } = await template(p, links, c);
    // Varying the flow makes xdp_gen count its frames, the only proof it ran when xb takes none.
    setTemplate(p, frame, c.flows === 'new' ? c.mode : c.b === 'none' ? 'dr' : null);
    const kernelChecks: KernelCheck[] | null = c.b === 'kernel' ? [] : null;
    if (kernelChecks) kernelChecks.push(await kernelCheck(p, links, c, frame, sport));
    const warm = generate(p, links, frame, LIVE_LIMITS.warmupFrames);
    const nsPerFrame = Math.max(warm.kernelNs / LIVE_LIMITS.warmupFrames, 1);
    const repeat = Math.round(Math.min(LIVE_LIMITS.maxFramesPerCall, Math.max(LIVE_LIMITS.minFramesPerCall, (LIVE_LIMITS.callMs * 1e6) / nsPerFrame)));
    await sleep(LIVE_LIMITS.drainMs);

    zeroSink(p);
    const dir0 = c.mode && c.b === 'xvs_xdp' ? dirSnap(p, c.mode) : null;
    const tids = napi === 'split' ? napiThreads(NET.b) : [];
    if (napi === 'split' && tids.length !== 1) throw new Error(`${tids.length} NAPI threads named for ${NET.b}: another namespace's ${NET.b} is threaded too`);
    const t0 = tids.map(threadTime);
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
    const bThread = tids.length > 0 ? sumThreadTime(tids.map(threadTime), t0) : null;
    const d = dir0 && c.mode ? dirDelta(dir0, dirSnap(p, c.mode)) : null;
    const generated = repeat * LIVE_LIMITS.calls;
    check(c, generated, sunk, genSeq(p) - seq0, d);
    if (kernelChecks) kernelChecks.push(await kernelCheck(p, links, c, frame, sport));
    return {
      name: c.name, b: c.b, mode: c.mode, flows: c.flows, napi, bCpu: pinned,
      calls: LIVE_LIMITS.calls, generated, bRx: b.packets, bTx: b.tx, sunk, sinkCpus: cpuShares(sinkPerCpu(p)),
      wallMs: wallNs / 1e6, genKernelMs: kernelNs / 1e6, callOverheadMs: (warm.wallNs - warm.kernelNs) / 1e6,
      pps: median(callPps), ppsMin: Math.min(...callPps), ppsMax: Math.max(...callPps), offeredPps: (generated * 1e9) / wallNs,
      newFlows: d ? d.conns : null, director: d, dir: c.dir ?? null, bThread, kernelChecks,
    };
  } finally {
    // Each step even when one before it failed: the next case starts from the bare rig.
    const steps: (() => void)[] = [
      // Threaded NAPI stays set on a device until cleared, and the next case may be softirq.
      () => { if (napi !== 'softirq') setThreadedNapi(NET.b, false); },
      () => { if (napi === 'split') setThreadedNapi(NET.a, false); },
      () => { if (c.b === 'kernel') kernelNatDown(); },
      () => inNs(() => detachXdp(links.b)),
      () => inNs(() => detachXdp(links.a)),
    ];
    for (const step of steps) {
      try { step(); } catch { /* the namespace's deletion at exit clears what is left */ }
    }
  }
}

function sumThreadTime(after: ThreadTime[], before: ThreadTime[]): ThreadTime {
  const out = { runNs: 0, waitNs: 0, runs: 0 };
  after.forEach((a, i) => {
    const b = before[i]!;
    out.runNs += a.runNs - b.runNs;
    out.waitNs += a.waitNs - b.waitNs;
    out.runs += a.runs - b.runs;
  });
  return out;
}
