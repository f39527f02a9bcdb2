// Everything the bench loads: a director with one service per mode it is
// given (DR and TUN, or NAT, FULLNAT and NAT64) on one real server of the
// mode's family, FULLNAT services with the pool of local addresses, and the
// aux programs (baseline, sink, generator, and xdp_pass for the kernel's NAT).
import { Dataplane } from '../src/daemon/dataplane.js';
import { Director } from '../src/daemon/director.js';
import { BpfObject, withNetnsAsync } from '../src/loader/index.js';
import * as C from '../src/maps/codecs.js';
import { PerCpuMap, type RawMap } from '../src/maps/map.js';
import { bpfObject } from '../src/paths.js';
import { MODES, offsets, ONE_WAY, rsOf, vipOf, type Mode } from './frames.js';
import { NET } from './net.js';

const GEN_MAX = 128;
const SINK_IDX = 0;
/** xdp_gen's per-CPU sequence: one step per frame when it varies the 5-tuple. */
const SEQ_IDX = 1;

export interface Progs {
  modes: readonly Mode[];
  dp: Dataplane;
  director: Director;
  aux: BpfObject;
  fd: { director: number; macswap: number; sink: number; gen: number; pass: number };
  auxCount: PerCpuMap<number, number>;
  genTmpl: RawMap;
}

export async function loadProgs(connTableSize: number, modes: readonly Mode[] = ONE_WAY): Promise<Progs> {
  const dp = Dataplane.load({ connTableSize });
  const aux = BpfObject.open({ objectPath: bpfObject('xvs_aux') });
  try {
    aux.load();
    const director = new Director(dp, { neighbours: false });
    // Inside the bench's namespace, so the director resolves the real server's next hop there.
    await withNetnsAsync(NET.ns, async () => {
      for (const mode of modes) {
        const m = MODES[mode];
        const key = { proto: 'tcp' as const, addr: vipOf(mode), port: m.port };
        await director.addService({ ...key, scheduler: 'rr' });
        await director.addReal(key, { addr: rsOf(mode), port: m.rport, fwd: m.fwd, weight: 1 });
        if (m.fwd === 'fullnat') for (const a of NET.laddrs) await director.addLaddr(key, a);
      }
    });
    return {
      modes, dp, director, aux,
      fd: {
        director: dp.progFd,
        macswap: aux.program('xdp_macswap').fd,
        sink: aux.program('xdp_sink').fd,
        gen: aux.program('xdp_gen').fd,
        pass: aux.program('xdp_pass').fd,
      },
      auxCount: new PerCpuMap(aux.map('aux_count'), C.u32Codec, C.u64Codec),
      genTmpl: aux.map('gen_tmpl'),
    };
  } catch (e) {
    aux.close();
    dp.close();
    throw e;
  }
}

export function closeProgs(p: Progs): void {
  p.aux.close();
  p.dp.close();
}

export function sinkCount(p: Progs): number {
  return p.auxCount.sum(SINK_IDX) ?? 0;
}

export function genSeq(p: Progs): number {
  return p.auxCount.sum(SEQ_IDX) ?? 0;
}

export function sinkPerCpu(p: Progs): number[] {
  return p.auxCount.get(SINK_IDX) ?? [];
}

export function zeroSink(p: Progs): void {
  p.auxCount.setAll(SINK_IDX, 0);
}

/**
 * struct gen_tmpl: len, vary, port_off, addr_off, addr_bytes, pad, frame[128].
 * With `vary` (a mode), frame n gets that mode's n-th 5-tuple (setFlow's),
 * counting from 0 again: the sequence restarts with every template.
 */
export function setTemplate(p: Progs, frame: Buffer, vary: Mode | null): void {
  if (frame.length !== GEN_MAX) throw new Error(`generator template must be ${GEN_MAX} bytes, got ${frame.length}`);
  const v = Buffer.alloc(24 + GEN_MAX);
  v.writeUInt32LE(frame.length, 0);
  if (vary !== null) {
    const o = offsets(vary);
    v.writeUInt32LE(1, 4);
    v.writeUInt32LE(o.sport, 8);
    v.writeUInt32LE(MODES[vary].v6 ? o.saddr + 14 : o.saddr + 3, 12);
    v.writeUInt32LE(MODES[vary].v6 ? 2 : 1, 16);
  }
  frame.copy(v, 24);
  p.genTmpl.update(Buffer.alloc(4), v);
  p.auxCount.setAll(SEQ_IDX, 0);
}

/** Director state a case can be checked against: verdict counters, new flows, packets each way. */
export interface DirSnap { counters: Record<string, number>; conns: number; pkts: number; outPkts: number }

export function dirSnap(p: Progs, mode: Mode): DirSnap {
  const svc = p.dp.services.get({ addr: vipOf(mode), port: MODES[mode].port, proto: 6, family: MODES[mode].v6 ? 10 : 2 });
  if (!svc) throw new Error(`bench service ${vipOf(mode)}:${MODES[mode].port} is missing`);
  const s = p.dp.svcStats.sum(svc.id);
  return { counters: p.director.counters(), conns: s?.conns ?? 0, pkts: s?.inpkts ?? 0, outPkts: s?.outpkts ?? 0 };
}

export function dirDelta(a: DirSnap, b: DirSnap): DirSnap {
  const counters: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.counters)) {
    const d = v - (a.counters[k] ?? 0);
    if (d !== 0) counters[k] = d;
  }
  return { counters, conns: b.conns - a.conns, pkts: b.pkts - a.pkts, outPkts: b.outPkts - a.outPkts };
}
