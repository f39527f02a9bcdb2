// Part 3 of the report: packets per core, xvs beside the kernel's NAT.
import { ipvsLine, type IpvsAbsence } from './kernel-nat.js';
import type { LiveResult } from './live.js';
import { table } from './report.js';

/** Issue 8: xvs's packets per core, as a multiple of the kernel's NAT on the same traffic. */
export const PER_CORE_GOAL = 3;

/** Idle time of xb's thread above this share of the wall time: it was not saturated. */
const IDLE_PCT = 5;

const r2 = (x: number): number => Math.round(x * 100) / 100;
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

export function perCoreRows(rs: readonly LiveResult[]) {
  const nsOf = (r: LiveResult) => (r.bThread ? r.bThread.runNs / r.bRx : NaN);
  const floor = rs.find((r) => r.b === 'xdp_macswap');
  return rs.map((r) => {
    const ns = nsOf(r);
    // The generator calls' wall time: the drains between them hold at most a ring's tail of frames.
    const wallNs = r.wallMs * 1e6;
    return {
      name: r.name, b: r.b, mode: r.mode, dir: r.dir, generated: r.generated, frames: r.bRx, sunk: r.sunk,
      nsPerFrame: r2(ns),
      mppsPerCore: r3(1e3 / ns),
      xFloor: floor ? r2(ns / nsOf(floor)) : null,
      /** Shares of the timed calls' wall time: xb's thread running, and waiting for CPU 1 while it had work. */
      busyPct: r2((100 * (r.bThread?.runNs ?? NaN)) / wallNs),
      waitedPct: r2((100 * (r.bThread?.waitNs ?? NaN)) / wallNs),
      framesPerRun: r2(r.bRx / (r.bThread?.runs ?? NaN)),
      /** The generator bounds the figure when xb's thread sat idle for part of the time (neither running nor waiting). */
      boundBy: 100 - (100 * ((r.bThread?.runNs ?? 0) + (r.bThread?.waitNs ?? 0))) / wallNs > IDLE_PCT ? 'the generator' as const : 'xb\'s core' as const,
      kernelChecks: r.kernelChecks,
    };
  });
}

export type PerCoreRow = ReturnType<typeof perCoreRows>[number];

function pairs(rows: readonly PerCoreRow[]) {
  const out: { what: string; xvs: PerCoreRow; kernel: PerCoreRow; times: number }[] = [];
  for (const x of rows.filter((r) => r.b === 'xvs_xdp')) {
    const k = rows.find((r) => r.b === 'kernel' && r.mode === x.mode && r.dir === x.dir);
    if (k) out.push({ what: `${x.name.replace('xvs_xdp ', '')} ${x.dir === 'in' ? 'client->real' : 'reply'}`, xvs: x, kernel: k, times: r2(k.nsPerFrame / x.nsPerFrame) });
  }
  return out;
}

export function perCoreSummary(rows: readonly PerCoreRow[]) {
  return pairs(rows).map((p) => ({ what: p.what, times: p.times, goal: PER_CORE_GOAL, met: p.times >= PER_CORE_GOAL }));
}

export function perCoreLines(rows: readonly PerCoreRow[] | null, ipvs: IpvsAbsence): string[] {
  const head = '3. Packets per core: the director\'s CPU time per frame, xvs beside the kernel\'s own NAT (nftables dnat/snat, conntrack)';
  if (!rows) return [head, '   skipped: one CPU, so the director cannot have a core of its own.', ipvsLine(ipvs)];
  return [
    head,
    table(
      ['case', 'dir', 'frames', 'ns/frame', 'Mpps/core', 'x floor', 'busy %', 'waited %', 'frames/run', 'checked', 'bound by'],
      rows.map((r) => [
        r.name, r.dir === null ? '-' : r.dir === 'in' ? 'c->r' : 'reply', r.frames, r.nsPerFrame.toFixed(1), r.mppsPerCore.toFixed(3),
        r.xFloor === null ? '-' : r.xFloor.toFixed(2), r.busyPct.toFixed(1), r.waitedPct.toFixed(1), r.framesPerRun.toFixed(0),
        r.kernelChecks ? r.kernelChecks.map((c) => `${c.translated}/${c.polled}`).join(', ') : 'counters', r.boundBy,
      ]),
      2,
    ),
    '   ns/frame = run time of xb\'s NAPI thread (alone on CPU 1; /proc/TID/schedstat) / frames it took from its ring, over',
    '   3 generator calls offering all CPU 0 can make (frames/run: taken in one go). That thread does all',
    '   of the director\'s work on a frame: the ring, the XDP program and XDP_TX, or the kernel\'s receive (xdp_pass, which',
    '   gives veth its NAPI, and GRO off: 2-5% cheaper for the kernel than GRO on in trials), conntrack, NAT hooks, route,',
    '   forwarding and neighbour; then the hand-off into xa\'s queue. Freeing the frame happens on xa\'s side, uncounted for',
    '   both (an skb costs more to free than an XDP frame, so this favours the kernel). The generator and xa\'s sink share',
    '   CPU 0, the sink at a real-time priority so that its queue never overflows back onto xb. busy / waited % = xb\'s',
    '   thread running / waiting for CPU 1 (other load on this machine) as shares of wall time; the run time excludes the',
    '   waits. Mpps/core = 1000 / ns/frame; x floor = ns/frame / the macswap row\'s. bound by: xb\'s core when its thread',
    `   ran or waited all the time; the generator when it sat idle over ${IDLE_PCT}% of it (fewer frames per wake-up, which`,
    '   costs the director more per frame: against xvs, which is the one that runs out of frames).',
    '   kernel: the same frames and handshake as xvs; no TSO on xb (else veth hands frames to xa\'s backlog, not its NAPI),',
    '   no ICMP redirects (as a one-armed NAT director must); checked = frames nftables counted leaving translated as xvs',
    '   would translate them / frames xb took, in a check pass before and one after the timed calls (no bench rule is in',
    '   the timed path). xvs: its own counters, every frame TX (and nat_reply for a reply).',
    ipvsLine(ipvs),
    `   goal (issue 8): xvs's packets per core >= ${PER_CORE_GOAL}x the kernel's NAT on the same traffic:`,
    ...perCoreSummary(rows).map((s) => `     ${s.what.padEnd(26)} ${s.times.toFixed(2)}x  ${s.met ? 'met' : 'NOT met'}`),
  ];
}
