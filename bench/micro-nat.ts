// The two-way modes through BPF_PROG_TEST_RUN (repeat=1, as micro.ts times
// them): NAT, FULLNAT and NAT64, each direction of an established flow, and
// FULLNAT's new flow with its local port. A reply is one of a flow the bench
// opened first (SYN, SYN-ACK, ACK, and a data segment, which carries the TOA
// for FULLNAT, so the measured segments no longer do), every frame of the
// opening checked byte for byte too.
import * as F from '../test/helpers/frames.js';
import { flowFrame, MODES } from './frames.js';
import { single, stepper, type Ctx, type MicroResult } from './micro.js';
import { arriving, leaving, viaOf, withChecksums, type Dir, type Kind, type NatMode, type Via } from './nat-frames.js';
import { NET } from './net.js';
import { dirDelta, dirSnap } from './progs.js';
import { ctxFor, inNs, runTx, VerdictError } from './run-util.js';

const NAT_LABEL = { nat: 'NAT', fnat: 'FULLNAT', nat64: 'NAT64' } as const satisfies Record<NatMode, string>;

function expectFrame(what: string, out: Buffer, want: Buffer): void {
  if (!out.equals(want)) {
    throw new VerdictError(`${what}: the director sent\n  ${out.toString('hex')}\nwhere it must send\n  ${want.toString('hex')}`);
  }
}

/**
 * Opens a flow of `mode` from the client's port `sport` through the
 * director and returns where a FULLNAT flow left from (null for NAT).
 * Every frame's output is checked; FULLNAT's ACK and first data segment
 * must carry the TOA, and nothing after them.
 */
export function openFlow(c: Ctx, mode: NatMode, sport: number): Via | null {
  const fd = c.p.fd.director;
  const full = MODES[mode].fwd === 'fullnat';
  const before = dirSnap(c.p, mode);
  let via: Via | null = null;
  for (const kind of ['syn', 'synack', 'ack', 'data'] as const satisfies readonly Kind[]) {
    const f = arriving(mode, kind, sport, via);
    const r = inNs(() => runTx(`${mode} opening ${kind}`, fd, { data: f, ctxIn: ctxFor(c.links.b, f.length) }));
    if (kind === 'syn' && full) via = viaOf(r.data);
    expectFrame(`${mode} opening ${kind}`, r.data, leaving(mode, kind, sport, via, full && (kind === 'ack' || kind === 'data')));
  }
  const d = dirDelta(before, dirSnap(c.p, mode));
  if (d.conns !== 1 || (full && d.counters.toa_added !== 2)) {
    throw new VerdictError(`${mode}: opening a flow made ${d.conns} connections and counted ${JSON.stringify(d.counters)}`);
  }
  return via;
}

/** The established flow's measured segment in one direction, and the check of its output. */
export function established(c: Ctx, mode: NatMode, dir: Dir, sport: number) {
  const via = openFlow(c, mode, sport);
  const kind: Kind = dir === 'in' ? 'data' : 'reply';
  const want = leaving(mode, kind, sport, via);
  return {
    frame: arriving(mode, kind, sport, via),
    check: (_input: Buffer, out: Buffer) => expectFrame(`${mode} ${kind}`, out, want),
  };
}

/**
 * A new FULLNAT flow's SYN leaves from one of the pool's local addresses and
 * a port in 1024..65535, to the real server, and is otherwise the input:
 * built from the input with those rewrites and fresh checksums.
 */
function checkNewFullnat(input: Buffer, out: Buffer): void {
  const via = viaOf(out);
  if (!(NET.laddrs as readonly string[]).includes(via.addr) || via.port < 1024) {
    throw new VerdictError(`fnat new flow left from ${via.addr}:${via.port}, not a local address and port of the pool`);
  }
  const d = F.dissect(input);
  const want = Buffer.from(input);
  F.mac(NET.rsMac).copy(want, 0);
  F.mac(NET.bMac).copy(want, 6);
  F.ip4(via.addr).copy(want, d.l3 + 12);
  F.ip4(NET.rs).copy(want, d.l3 + 16);
  want.writeUInt16BE(via.port, d.l4);
  want.writeUInt16BE(MODES.fnat.rport, d.l4 + 2);
  expectFrame('fnat new flow', out, withChecksums(want));
}

export async function runMicroNat(c: Ctx, progress: (s: string) => void): Promise<MicroResult[]> {
  const out: MicroResult[] = [];
  const step = stepper(out, progress);
  const fd = c.p.fd.director;
  let sport = 41000;
  for (const mode of ['nat', 'fnat', 'nat64'] as const) {
    for (const dir of ['in', 'out'] as const) {
      const e = established(c, mode, dir, sport++);
      const name = `${NAT_LABEL[mode]} established${dir === 'out' ? ' reply' : ''}`;
      step(await single(c, { name, fd, mode, ...e, ...(dir === 'out' ? { perRun: ['nat_reply'], stat: 'out' as const } : {}) }));
    }
    if (mode === 'fnat') {
      step(await single(c, {
        name: 'FULLNAT new flow', fd, mode, newFlow: true, frame: flowFrame('fnat', F.TCP.SYN, 0, true), check: checkNewFullnat,
      }));
    }
  }
  return out;
}
