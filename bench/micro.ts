// Per-packet cost through BPF_PROG_TEST_RUN on B's ingress, so fib lookups
// resolve the real server and the director answers XDP_TX.
import * as F from '../test/helpers/frames.js';
import { FRAME_LEN, flowFrame, flowSpace, MODES, setFlow, type Mode } from './frames.js';
import { NET, type Links } from './net.js';
import { dirDelta, dirSnap, type DirSnap, type Progs } from './progs.js';
import { ctxFor, inNs, median, msSince, nowNs, runTx, VerdictError, yieldToLoop } from './run-util.js';
import { withChecksums } from './nat-frames.js';

export const MICRO_LIMITS = {
  /** repeat=N: a calibration run sizes each round to about roundMs of kernel time. */
  calibrate: 100_000,
  roundMs: 300,
  rounds: 3,
  maxRepeat: 50_000_000,
  /** repeat=1 loops: whichever comes first. */
  loopMs: 2500,
  loopRuns: 200_000,
  batchMs: 50,
  /** After each batch of a case, this many runs of the floor: its ratio divides by a floor of the same moments. */
  floorRuns: 2_000,
} as const;

export interface MicroResult {
  name: string;
  method: 'repeat=N' | 'repeat=1';
  prog: 'xdp_macswap' | 'xvs_xdp';
  packets: number;
  /** Kernel-reported: median of rounds (repeat=N) or sum/count (repeat=1). */
  nsPerPkt: number;
  /** repeat=1: median single run; repeat=N: wall clock around the syscalls / packets. */
  nsAlt: number;
  /** repeat=1 cases of the director: the floor's mean over runs interleaved with the case's batches. */
  floorNs?: number;
  newFlows: number | null;
  director: DirSnap | null;
}

export interface Ctx { p: Progs; links: Links }

/** The first output of a case must be its frame, as the real server gets it. */
function checkOutput(mode: Mode | null, out: Buffer): void {
  if (mode === null) return;
  const m = MODES[mode];
  const tun = m.fwd === 'tun';
  const want = FRAME_LEN + (tun ? (m.v6 ? 40 : 20) : 0);
  // The outer header's protocol: 4 (IPv4 in IPv4) at byte 9, 41 (IPv6 in IPv6) at byte 6.
  const encap = !tun || (m.v6 ? out[14 + 6] === 41 : out[14 + 9] === 4);
  if (out.length !== want || !out.subarray(0, 6).equals(F.mac(NET.rsMac)) || !encap) {
    throw new VerdictError(`${mode} output is not a frame to the real server: ${out.subarray(0, 60).toString('hex')}`);
  }
}

function repeatN(c: Ctx, name: string, fd: number, frame: Buffer, mode: Mode | null): MicroResult {
  const ctxIn = ctxFor(c.links.b, frame.length);
  const before = mode ? dirSnap(c.p, mode) : null;
  const cal = inNs(() => runTx(name, fd, { data: frame, ctxIn, repeat: MICRO_LIMITS.calibrate }));
  checkOutput(mode, cal.data);
  const perRound = Math.ceil((MICRO_LIMITS.roundMs * 1e6) / Math.max(cal.duration, 1));
  const repeat = Math.min(MICRO_LIMITS.maxRepeat, Math.max(MICRO_LIMITS.calibrate, perRound));
  const kernel: number[] = [];
  let wallNs = 0;
  for (let i = 0; i < MICRO_LIMITS.rounds; i++) {
    const t0 = nowNs();
    const r = inNs(() => runTx(name, fd, { data: frame, ctxIn, repeat }));
    wallNs += Number(nowNs() - t0);
    kernel.push(r.duration);
  }
  const packets = repeat * MICRO_LIMITS.rounds;
  const d = before && mode ? dirDelta(before, dirSnap(c.p, mode)) : null;
  const runs = packets + MICRO_LIMITS.calibrate;
  if (d && d.counters.tx !== runs) throw new VerdictError(`${name}: director counted ${d.counters.tx} TX for ${runs} runs`);
  return {
    name, method: 'repeat=N', prog: mode ? 'xvs_xdp' : 'xdp_macswap', packets,
    nsPerPkt: median(kernel), nsAlt: wallNs / packets, newFlows: d ? d.conns : null, director: d,
  };
}

/** One repeat=1 case: what runs, and what its runs must do. */
export interface Single {
  name: string;
  fd: number;
  /** The input, rewritten in place for new flows (setFlow). */
  frame: Buffer;
  /** The director's service the case belongs to (null: the floor). */
  mode: Mode | null;
  newFlow?: boolean;
  /** A known flow no copy serves (a retransmitted SYN: its handshake in xvs_new_flows). */
  uncopied?: boolean;
  /** Throws unless `out` is what the director must make of `input`; given the first run. */
  check?: (input: Buffer, out: Buffer) => void;
  /** Counters that move by one a run besides rx and tx (a reply's nat_reply); any other is an error. */
  perRun?: readonly string[];
  /** Which of the service's statistics each run adds a packet to (a reply is an Out packet). */
  stat?: 'in' | 'out';
}

/** repeat=1: the kernel copies the input afresh per call, where TUN's reruns would wrap their own output. */
export async function single(c: Ctx, s: Single): Promise<MicroResult> {
  const { name, fd, frame, mode } = s;
  const newFlow = s.newFlow ?? false;
  const check = s.check ?? ((_i: Buffer, out: Buffer) => checkOutput(mode, out));
  const ctxIn = ctxFor(c.links.b, frame.length);
  const before = mode ? dirSnap(c.p, mode) : null;
  const durations = new Uint32Array(MICRO_LIMITS.loopRuns);
  const detail = () => (mode ? dirDelta(before!, dirSnap(c.p, mode)).counters : null);
  // The host's speed drifts on a shared VM: a floor measured once, before, can
  // differ from the floor during the case by more than a stage costs.
  const floorFrame = flowFrame('dr', F.TCP.ACK);
  const floorCtx = ctxFor(c.links.b, floorFrame.length);
  let floorSum = 0;
  let floorN = 0;
  let n = 0;
  const t0 = nowNs();
  while (n < MICRO_LIMITS.loopRuns && msSince(t0) < MICRO_LIMITS.loopMs) {
    const tb = nowNs();
    inNs(() => {
      for (let i = 0; mode && i < MICRO_LIMITS.floorRuns; i++) {
        floorSum += runTx(`${name}: floor`, c.p.fd.macswap, { data: floorFrame, ctxIn: floorCtx, repeat: 1 }).duration;
        floorN++;
      }
      while (n < MICRO_LIMITS.loopRuns && msSince(tb) < MICRO_LIMITS.batchMs) {
        if (newFlow && mode) setFlow(frame, mode, n);
        // The checked run's input is a whole valid packet: setFlow leaves the checksums stale.
        if (n === 0 && newFlow) withChecksums(frame).copy(frame);
        const input = n === 0 ? Buffer.from(frame) : frame;
        const r = runTx(`${name}, run ${n + 1}`, fd, { data: frame, ctxIn, repeat: 1 }, detail);
        if (n === 0) check(input, r.data);
        durations[n++] = r.duration;
      }
    });
    await yieldToLoop();
  }
  if (newFlow && mode && n > flowSpace(mode)) throw new VerdictError(`${name}: ${n} runs but only ${flowSpace(mode)} distinct flows`);
  const got = durations.subarray(0, n);
  const d = before && mode ? dirDelta(before, dirSnap(c.p, mode)) : null;
  if (d) {
    const want: Record<string, number> = { rx: n, tx: n };
    for (const k of s.perRun ?? []) want[k] = n;
    // An established flow's packets go from this CPU's copy of its entry
    // but the first (which may take the copy) and one a second (a copy
    // lives under a second), a retransmitted SYN's never: any other count
    // says the path is not the one measured. The bench runs on one CPU
    // (main.ts).
    const copied = d.counters.flow_cached ?? 0;
    if (!newFlow && !s.uncopied && mode) {
      const byTable = n - copied;
      if (byTable < 0 || byTable > 2 + Math.ceil(msSince(t0) / 1000)) {
        throw new VerdictError(`${name}: ${byTable} of ${n} runs went by the flow table in ${Math.round(msSince(t0))} ms: ${JSON.stringify(d.counters)}`);
      }
      want.flow_cached = copied;
    }
    for (const k of new Set([...Object.keys(want), ...Object.keys(d.counters)])) {
      if ((d.counters[k] ?? 0) !== (want[k] ?? 0)) throw new VerdictError(`${name}: counter ${k} moved by ${d.counters[k] ?? 0} in ${n} runs: ${JSON.stringify(d.counters)}`);
    }
    if (newFlow && d.conns !== n) throw new VerdictError(`${name}: ${d.conns} new flows in ${n} runs`);
    if (!newFlow && d.conns !== 0) throw new VerdictError(`${name}: ${d.conns} new flows on an established flow`);
    const [inPkts, outPkts] = s.stat === 'out' ? [0, n] : [n, 0];
    if (d.pkts !== inPkts || d.outPkts !== outPkts) throw new VerdictError(`${name}: ${d.pkts} In and ${d.outPkts} Out packets in ${n} runs`);
  }
  return {
    name, method: 'repeat=1', prog: mode ? 'xvs_xdp' : 'xdp_macswap', packets: n,
    nsPerPkt: got.reduce((a, x) => a + x, 0) / n, nsAlt: median(got), newFlows: d ? d.conns : null, director: d,
    ...(floorN > 0 ? { floorNs: floorSum / floorN } : {}),
  };
}

/** The flow's first packet (and the client's ACK that confirms it), so what follows runs the established path. */
function prime(c: Ctx, mode: Mode, sport: number): Buffer {
  for (const flags of [F.TCP.SYN, F.TCP.ACK]) {
    const f = flowFrame(mode, flags, sport);
    inNs(() => runTx(`${mode} priming ${flags === F.TCP.SYN ? 'SYN' : 'ACK'}`, c.p.fd.director, { data: f, ctxIn: ctxFor(c.links.b, f.length) }));
  }
  return flowFrame(mode, F.TCP.ACK, sport);
}

/** A SYN the director has seen: what a client retransmitting its SYN sends. */
function knownSyn(c: Ctx, mode: Mode, sport: number): Buffer {
  const f = flowFrame(mode, F.TCP.SYN, sport);
  inNs(() => runTx(`${mode} first SYN`, c.p.fd.director, { data: f, ctxIn: ctxFor(c.links.b, f.length) }));
  return f;
}

export const stepper = (out: MicroResult[], progress: (s: string) => void) => (r: MicroResult): void => {
  out.push(r);
  progress(`${r.name} (${r.method}): ${r.nsPerPkt.toFixed(1)} ns/pkt over ${r.packets} packets`);
};

/** The floor and the DR/TUN cases, on a director of the one-way modes. */
export async function runMicro(p: Progs, links: Links, progress: (s: string) => void): Promise<MicroResult[]> {
  const c = { p, links };
  const out: MicroResult[] = [];
  const step = stepper(out, progress);
  const swapFrame = flowFrame('dr', F.TCP.ACK);
  step(repeatN(c, 'baseline xdp_macswap', p.fd.macswap, swapFrame, null));
  step(repeatN(c, 'DR established', p.fd.director, prime(c, 'dr', 40000), 'dr'));
  const fd = p.fd.director;
  step(await single(c, { name: 'baseline xdp_macswap', fd: p.fd.macswap, frame: swapFrame, mode: null }));
  step(await single(c, { name: 'DR established', fd, frame: prime(c, 'dr', 40001), mode: 'dr' }));
  step(await single(c, { name: 'DR SYN of a known flow', fd, frame: knownSyn(c, 'dr', 40002), mode: 'dr', uncopied: true }));
  step(await single(c, { name: 'DR new flow', fd, frame: flowFrame('dr', F.TCP.SYN, 0, true), mode: 'dr', newFlow: true }));
  step(await single(c, { name: 'TUN established', fd, frame: prime(c, 'tun', 40000), mode: 'tun' }));
  step(await single(c, { name: 'TUN new flow', fd, frame: flowFrame('tun', F.TCP.SYN, 0, true), mode: 'tun', newFlow: true }));
  step(await single(c, { name: 'IPv6 DR established', fd, frame: prime(c, 'dr6', 40000), mode: 'dr6' }));
  step(await single(c, { name: 'IPv6 TUN established', fd, frame: prime(c, 'tun6', 40000), mode: 'tun6' }));
  return out;
}
