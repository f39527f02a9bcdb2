// Established flows under a flood of spoofed new flows: a director with a
// small connection table confirms a thousand connections, then takes ten
// times its two tables' size in spoofed SYN and SYN+ACK frames, each a
// 5-tuple never seen before, through BPF_PROG_TEST_RUN; then every
// established connection's next segment must still find its flow.
import * as F from '../test/helpers/frames.js';
import { flowFrame, setFlow } from './frames.js';
import type { Links } from './net.js';
import { closeProgs, loadProgs } from './progs.js';
import { testRun, XdpAction } from '../src/loader/index.js';
import { ctxFor, inNs, msSince, nowNs, VerdictError } from './run-util.js';

export const FLOOD = { connTable: 65536, established: 1000, times: 10 } as const;

export interface FloodResult {
  connTable: number;
  synTable: number;
  established: number;
  floodFrames: number;
  floodMs: number;
  /** Established flows still in xvs_conns after the flood, and still forwarded (not dropped as strays). */
  kept: number;
  forwarded: number;
  /** What the flood's frames became: new flows (SYN) and drops (SYN+ACK of no flow). */
  newFlows: number;
  dropped: number;
}

export async function runFloodBench(links: Links): Promise<FloodResult> {
  const p = await loadProgs(FLOOD.connTable);
  try {
    const run = (f: Buffer) => testRun(p.fd.director, { data: f, ctxIn: ctxFor(links.b, f.length) });
    const ports = Array.from({ length: FLOOD.established }, (_, i) => 20000 + i);
    inNs(() => {
      for (const sport of ports) for (const flags of [F.TCP.SYN, F.TCP.ACK]) run(flowFrame('dr', flags, sport));
    });
    const synTable = p.dp.newFlows.maxEntries;
    const floodFrames = FLOOD.times * (FLOOD.connTable + synTable);
    const before = p.director.counters();
    const t0 = nowNs();
    const frame = flowFrame('dr', F.TCP.SYN, 0, true);
    inNs(() => {
      for (let n = 0; n < floodFrames; n++) {
        setFlow(frame, 'dr', n);
        frame[14 + 20 + 13] = n % 2 === 0 ? F.TCP.SYN : F.TCP.SYN | F.TCP.ACK;
        const r = run(frame);
        const want = n % 2 === 0 ? XdpAction.TX : XdpAction.DROP;
        if (r.retval !== want) throw new VerdictError(`flood frame ${n}: verdict ${r.retval}, expected ${want}`);
      }
    });
    const floodMs = msSince(t0);
    const after = p.director.counters();
    let kept = 0;
    let forwarded = 0;
    inNs(() => {
      for (const sport of ports) {
        if (p.dp.conns.get({ saddr: '203.0.113.7', daddr: '192.0.2.80', sport, dport: 80, proto: 6, family: 2 })) kept++;
        if (run(flowFrame('dr', F.TCP.ACK, sport)).retval === XdpAction.TX) forwarded++;
      }
    });
    return {
      connTable: FLOOD.connTable, synTable, established: FLOOD.established, floodFrames, floodMs,
      kept, forwarded,
      newFlows: (after.tx ?? 0) - (before.tx ?? 0),
      dropped: (after.drop_no_conn ?? 0) - (before.drop_no_conn ?? 0),
    };
  } finally {
    closeProgs(p);
  }
}

export function floodLines(r: FloodResult): string[] {
  return [
    `4. A flood of spoofed new flows: ${r.established} established connections, then ${r.floodFrames} spoofed SYN and SYN+ACK`,
    `   frames (${FLOOD.times}x the ${r.connTable}-entry connection table plus its ${r.synTable}-entry new-flow table), every one a new 5-tuple`,
    `   -> ${r.kept} of ${r.established} established flows still in xvs_conns, ${r.forwarded} of ${r.established} still forwarded;`,
    `   the flood made ${r.newFlows} new flows (SYN) and ${r.dropped} drops (SYN+ACK of no flow), in ${(r.floodMs / 1000).toFixed(1)} s.`,
  ];
}
