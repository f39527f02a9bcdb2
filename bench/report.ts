// The bench's table and JSON. Ratios always compare with the baseline of the
// same method measured in the same run.
import type { LiveResult, Napi } from './live.js';
import type { MicroResult } from './micro.js';
import { NET } from './net.js';

/** Losses below this share of generated frames do not name a bottleneck. */
const LOSS_THRESHOLD = 0.001;

const r2 = (x: number): number => Math.round(x * 100) / 100;
const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const mpps = (x: number): string => (x / 1e6).toFixed(3);

export interface Env { date: string; kernel: string; cpus: number; cpuModel: string; node: string; frameBytes: number }

export function microRows(ms: MicroResult[]) {
  const base = (m: MicroResult['method']) => ms.find((x) => x.prog === 'xdp_macswap' && x.method === m)?.nsPerPkt ?? NaN;
  return ms.map((m) => ({ ...m, nsPerPkt: r2(m.nsPerPkt), nsAlt: r2(m.nsAlt), ratio: r2(m.nsPerPkt / (m.floorNs ?? base(m.method))) }));
}

function bound(r: LiveResult): string {
  if (r.b === 'none') return 'the generator alone';
  const thr = r.generated * LOSS_THRESHOLD;
  const lostB = r.generated - r.bRx;
  const lostA = r.b === 'xdp_sink' ? 0 : r.bTx - r.sunk;
  const pct = (n: number) => `${((100 * n) / r.generated).toFixed(1)}%`;
  if (lostB > thr) return `xb's core (CPU ${r.bCpu ?? '?'}): ${pct(lostB)} dropped at its ring`;
  if (lostA > thr) return `xa's sink: ${pct(lostA)} dropped at its ring`;
  if (r.napi === 'softirq') return 'one core running gen, xb and sink in turn';
  return 'the generator (lossless)';
}

export function liveRows(ls: LiveResult[]) {
  const find = (b: LiveResult['b'], n: Napi) => ls.find((x) => x.b === b && x.napi === n && x.mode === null);
  return ls.map((l) => {
    const nsPerPkt = 1e9 / l.pps;
    const gen = find('none', l.napi);
    const swap = find('xdp_macswap', l.napi);
    return {
      ...l,
      pps: Math.round(l.pps),
      ppsMin: Math.round(l.ppsMin),
      ppsMax: Math.round(l.ppsMax),
      offeredPps: Math.round(l.offeredPps),
      wallMs: r2(l.wallMs),
      genKernelMs: r2(l.genKernelMs),
      callOverheadMs: r2(l.callOverheadMs),
      nsPerPkt: r2(nsPerPkt),
      // Serial chains only: what xb's program, the way back and the sink add to the generator.
      netNsPerPkt: l.b !== 'none' && gen && l.napi === 'softirq' ? r2(nsPerPkt - 1e9 / gen.pps) : null,
      lostPct: l.b === 'none' ? null : r3((100 * (l.generated - l.sunk)) / l.generated),
      ratio: l.b === 'none' || !swap ? null : r2(l.pps / swap.pps),
      newFlowPct: l.newFlows === null ? null : r2((100 * l.newFlows) / Math.max(l.bTx, 1)),
      bound: bound(l),
    };
  });
}

type LiveRow = ReturnType<typeof liveRows>[number];
type MicroRow = ReturnType<typeof microRows>[number];

export function table(head: string[], rows: (string | number)[][], leftCols: number): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => r.map((c, i) => (i < leftCols || i === r.length - 1 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd())
    .join('\n');
}

const dash = (x: number | null, digits: number): string => (x === null ? '-' : x.toFixed(digits));

/** A two-way case's direction stands for its flows: always one established flow. */
const flowsText = (l: { flows: string; dir: string | null }): string => (l.dir === null ? l.flows : l.dir === 'in' ? 'c->r' : 'reply');

function microTable(micro: MicroRow[], connTable: number): string[] {
  return [
    '1. Per-packet cost, BPF_PROG_TEST_RUN with ingress = xb (verdict XDP_TX checked on every run)',
    table(
      ['case', 'method', 'packets', 'ns/pkt', 'alt ns', 'floor ns', 'x floor', 'from copy', 'new flows'],
      micro.map((m) => [m.name, m.method, m.packets, m.nsPerPkt.toFixed(2), m.nsAlt.toFixed(2), m.floorNs === undefined ? '-' : m.floorNs.toFixed(2), m.ratio.toFixed(2), m.director?.counters.flow_cached ?? '-', m.newFlows ?? '-']),
      2,
    ),
    '   repeat=N: one frame rerun N times in the kernel; ns/pkt = median of the kernel\'s integer averages, alt = wall clock / N.',
    '   repeat=1: one syscall per packet, kernel-timed durations summed / count (Katran\'s method), alt = median run. A lone',
    '   run pays the timer and a cold cache, so these compare with the repeat=1 baseline, not the repeat=N one. Each repeat=1',
    '   case of the director divides by its own floor: 2000 floor runs between its 50 ms batches (this shared VM\'s speed drifts).',
    `   new flow: a fresh 5-tuple every run (source port and client address, never repeated: checked); conn table ${connTable}`,
    '   entries, new flows (and reply sides) in 8192 sets of 8: once a set is full, a new flow takes its oldest way.',
    '   SYN of a known flow: the SYN of a flow the director has seen, again (a retransmission). IPv6 TUN is IPv6 in IPv6.',
    '   from copy: runs this CPU\'s copy of the flow\'s established entry forwarded (flow_cached; a SYN never), the',
    '   table the rest (the first, one a second). One flow\'s lines stay warm between runs; 2,000 or 20,000 flows in turn',
    '   cost 5-6x, copies or not (docs/architecture.md, "Where the time goes").',
    '   NAT, FULLNAT, NAT64 (an IPv6 VIP, FULLNAT to an IPv4 real server): on a director of their own, since one with a NAT',
    '   real server runs the reply stage on every packet (DR and TUN above do not pay it). established: a client data',
    '   segment of a flow opened first (SYN, SYN-ACK, ACK, data: FULLNAT\'s TOA went in the last two); reply: the real',
    '   server\'s data segment of such a flow. Every output is checked byte for byte against a frame built from scratch.',
    `   FULLNAT new flow: port allocation included; a pool of ${NET.laddrs.length} local addresses x ${NET.lports} ports, of which the new-flow`,
    '   reply table holds at most 65536 at once; any counter besides rx/tx moving (fnat_no_port, a drop) stops the bench.',
  ];
}

function liveTable(live: LiveRow[], connTable: number): string[] {
  return [
    '2. Forwarded packets/s with live frames: xdp_gen on xa (test run) -> xb runs the program -> XDP_TX -> xdp_sink on xa',
    table(
      ['napi', 'program on xb', 'flows', 'generated', 'sunk', 'lost %', 'Mpps', 'min-max', 'ns/pkt', 'net ns', 'x macswap', 'new %', 'bound by'],
      live.map((l) => [
        l.napi, l.name, l.b === 'none' ? '-' : flowsText(l), l.generated, l.sunk, dash(l.lostPct, 3), mpps(l.pps),
        `${mpps(l.ppsMin)}-${mpps(l.ppsMax)}`, l.nsPerPkt.toFixed(1), dash(l.netNsPerPkt, 1), dash(l.ratio, 2),
        dash(l.newFlowPct, 1), l.bound,
      ]),
      3,
    ),
    '   Mpps = median over 3 generator calls of frames counted by the sink / wall time of the call (min-max: the spread);',
    '   ns/pkt = 1e9 / Mpps; lost = generated - sunk. The generator runs on CPU 0 (Node\'s main thread, pinned).',
    '   softirq (veth default): xb\'s and xa\'s NAPI run inside the generator\'s test run on CPU 0, so a figure is the whole',
    '   chain\'s cost on one core, bounded by that core; net ns = ns/pkt minus the generator-alone row (xb without XDP, so',
    '   the redirect fails at once): roughly what the enqueue to xb, xb\'s program, the way back and the sink add.',
    `   new flows: xdp_gen gives frame n the n-th 5-tuple (port and client address), restarting per case and never`,
    `   repeating (checked), so each frame is a miss + schedule + insert; conn table ${connTable} entries (new % confirms).`,
    '   syn: one flow\'s SYN again and again (a retransmitting client). c->r / reply: the client\'s data segment / the real',
    '   server\'s reply of one established NAT or FULLNAT flow (opened first, as in part 1), on a director of the two-way',
    '   modes. kernel: xdp_pass on xb, the stack forwards with nftables NAT and conntrack (part 3 says how); its frames reach',
    '   xdp_sink as skbs, which xa converts (a copy) before the sink runs: part of this chain\'s cost, not part 3\'s.',
    '   Each generator call pays a fixed setup/teardown (callOverheadMs in the JSON), inside the wall time.',
  ];
}

/** Issues 7 (DR, TUN) and 8 (NAT, FULLNAT): goals, each as a ratio to the repeat=1 floor measured between the case's batches. */
const GOALS = [
  { name: 'DR established', max: 2.0 },
  { name: 'TUN established', max: 2.5 },
  { name: 'DR SYN of a known flow', max: 2.5 },
  { name: 'DR new flow', max: 6.0 },
  { name: 'TUN new flow', max: 6.0 },
  { name: 'NAT established', max: 2.5 },
  { name: 'NAT established reply', max: 2.5 },
  { name: 'FULLNAT established', max: 2.5 },
  { name: 'FULLNAT established reply', max: 2.5 },
  { name: 'FULLNAT new flow', max: 7.0 },
] as const;

function goals(micro: MicroRow[]): string[] {
  const ratio = (name: string) => micro.find((m) => m.method === 'repeat=1' && m.name === name)?.ratio;
  const out = ['   goals (repeat=1, x floor):'];
  for (const g of GOALS) {
    const r = ratio(g.name);
    if (r !== undefined) out.push(`     ${g.name.padEnd(26)} ${r.toFixed(2)} <= ${g.max.toFixed(1)}  ${r <= g.max ? 'met' : 'NOT met'}`);
  }
  for (const m of ['DR', 'TUN']) {
    const v4 = ratio(`${m} established`);
    const v6 = ratio(`IPv6 ${m} established`);
    if (v4 === undefined || v6 === undefined) continue;
    const d = (100 * (v6 - v4)) / v4;
    out.push(`     IPv6 ${m} established        ${v6.toFixed(2)} vs ${v4.toFixed(2)} (${d >= 0 ? '+' : ''}${d.toFixed(1)}%, within 10%)  ${Math.abs(d) <= 10 ? 'met' : 'NOT met'}`);
  }
  return out;
}

function summary(micro: MicroRow[], live: LiveRow[]): string[] {
  const soft = (b: LiveRow['b'], mode: LiveRow['mode']) => live.find((l) => l.napi === 'softirq' && l.b === b && l.mode === mode && l.flows === 'fixed');
  const tr = (name: string) => micro.find((m) => m.method === 'repeat=N' && m.name === name)?.nsPerPkt;
  const swap = soft('xdp_macswap', null);
  const dr = soft('xvs_xdp', 'dr');
  const trDr = tr('DR established');
  const trSwap = tr('baseline xdp_macswap');
  if (!swap || !dr || trDr === undefined || trSwap === undefined) return [];
  return [
    `   cross-check: in the softirq chain DR costs ${(dr.nsPerPkt - swap.nsPerPkt).toFixed(0)} ns/pkt more than macswap;` +
      ` the test run (repeat=N) says ${(trDr - trSwap).toFixed(0)}.`,
  ];
}

export function render(env: Env, micro: MicroRow[], live: LiveRow[], conns: { micro: number; live: number }, extra: string[]): string {
  return [
    `xvs bench: Linux ${env.kernel}, ${env.cpus} CPUs (${env.cpuModel}), Node ${env.node}, ${env.date}`,
    `every frame: Ethernet/IP/TCP, ${env.frameBytes} bytes, client -> VIP 192.0.2.80 or 2001:db8::80 (DR on :80, TUN on :81, NAT on :82,`,
    '   FULLNAT and NAT64 on :83) or the real server\'s reply, one real server',
    '',
    ...microTable(micro, conns.micro),
    ...goals(micro),
    '',
    ...liveTable(live, conns.live),
    ...summary(micro, live),
    ...extra,
  ].join('\n');
}

export function toJson(env: Env, durationS: number, namespace: string, micro: MicroRow[], live: LiveRow[], conns: { micro: number; live: number }) {
  const swap = (n: Napi) => live.find((x) => x.b === 'xdp_macswap' && x.napi === n)?.pps ?? null;
  const base = (m: MicroRow['method']) => micro.find((x) => x.prog === 'xdp_macswap' && x.method === m)?.nsPerPkt ?? null;
  return {
    ...env,
    durationS: r2(durationS),
    namespace,
    testRun: {
      connTableSize: conns.micro,
      baselineNsPerPkt: { 'repeat=N': base('repeat=N'), 'repeat=1': base('repeat=1') },
      cases: micro,
    },
    live: {
      connTableSize: conns.live,
      baselinePps: { softirq: swap('softirq'), threaded: swap('threaded') },
      generatorAlonePps: live.find((x) => x.b === 'none')?.pps ?? null,
      chains: live,
    },
  };
}
