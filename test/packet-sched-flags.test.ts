// Packet tests of the sh/mh scheduler flags through BPF_PROG_TEST_RUN: the
// hash_src_port lookup (sh-port, mh-port) sends each new flow to the real
// server the TypeScript model of the table and hash names, for IPv4 and IPv6
// clients, SYNs and stray segments alike; an unavailable real server's
// clients are refused with ICMP port unreachable, or with *-fallback sent
// where the model's fallback says. Exact output frames throughout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdpAction } from '../src/loader/index.js';
import { SLOT } from '../src/maps/abi.js';
import { readTable } from '../src/daemon/restore.js';
import { slotOf } from '../src/schedulers/hash.js';
import { buildMh } from '../src/schedulers/mh.js';
import { buildSh } from '../src/schedulers/sh-dh.js';
import type { ServiceModel } from '../src/daemon/model.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const inbound = HOP.fromClient;
const FLAG = { fallback: 1, port: 2 } as const;

describe('sh/mh scheduler flags in the packet path (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const counter = (name: string) => t.director.counters()[name] ?? 0;
  const svcOf = (addr: string, port: number): ServiceModel => {
    const s = t.director.model.services.get(`tcp ${addr}:${port}`);
    assert.ok(s, `service ${addr}:${port}`);
    return s;
  };
  /**
   * The frame the real server `id` of the service gets: DR, only the MACs
   * change (rs1 on d0: TX; rsFar on d1: REDIRECT); rsNoNeigh has no
   * neighbour, so its packets are dropped (no_neigh), which still tells it
   * from the others.
   */
  const forwarded = (s: ServiceModel, id: number, input: Buffer): { verdict: number; frame?: Buffer } => {
    const r = s.reals.find((x) => x.id === id);
    assert.ok(r, `real ${id} in the service`);
    if (r.addr === ADDR.rsNoNeigh) return { verdict: XdpAction.DROP };
    const far = r.addr === ADDR.rsFar || r.addr === ADDR.rs6Far;
    return far
      ? { verdict: XdpAction.REDIRECT, frame: F.withMacs(input, ADDR.rsFarMac, ADDR.dir2Mac) }
      : { verdict: XdpAction.TX, frame: F.withMacs(input, ADDR.rs1Mac, ADDR.dirMac) };
  };
  const expectFrame = (input: Buffer, want: { verdict: number; frame?: Buffer }, what: string): void => {
    const r = t.run(input);
    assert.equal(r.retval, want.verdict, `${what}: verdict`);
    if (want.frame) assert.equal(r.data.toString('hex'), want.frame.toString('hex'), `${what}: output bytes`);
  };
  const syn = (src: string, dst: string, dport: number, sport: number, flags: number = F.TCP.SYN) =>
    F.frame({ l2: inbound, src, dst, sport, dport, flags });

  before(async () => {
    t = directorNs('xvs-psf');
    const svc = async (addr: string, port: number, scheduler: string, schedFlags: number, reals: [string, number][]) => {
      await t.director.addService({ proto: 'tcp', addr, port, scheduler, ...(schedFlags ? { schedFlags } : {}) });
      for (const [ra, weight] of reals) await t.addReal({ proto: 'tcp', addr, port }, { addr: ra, port: 0, fwd: 'dr', weight });
    };
    await svc(ADDR.vip, 90, 'sh', FLAG.port, [[ADDR.rs1, 1], [ADDR.rsFar, 1]]);
    await svc(ADDR.vip, 91, 'sh', 0, [[ADDR.rs1, 1], [ADDR.rsFar, 1]]);
    await svc(ADDR.vip, 92, 'mh', FLAG.port, [[ADDR.rs1, 1], [ADDR.rsFar, 1]]);
    await svc(ADDR.vip6, 90, 'sh', FLAG.port, [[ADDR.rs6, 1], [ADDR.rs6Far, 1]]);
    await svc(ADDR.vip, 93, 'sh', FLAG.port, [[ADDR.rs1, 1], [ADDR.rsFar, 0], [ADDR.rsNoNeigh, 1]]);
  });

  after(() => {
    t?.close();
  });

  test('the dataplane holds the tables the TypeScript planners build, with the port lookup', () => {
    for (const [addr, port, build] of [[ADDR.vip, 90, buildSh], [ADDR.vip, 92, buildMh], [ADDR.vip6, 90, buildSh]] as const) {
      const s = svcOf(addr, port);
      assert.deepEqual(readTable(t.dp, s.id), build(s.reals, s.tableSize), `${addr}:${port}`);
      assert.equal([...t.dp.services.entries()].find(([, e]) => e.id === s.id)?.[1].lookup, 3, 'XVS_LOOKUP_HASH_SRC_PORT');
    }
  });

  for (const [name, vip, client, port] of [
    ['sh-port, IPv4', ADDR.vip, ADDR.client, 90],
    ['mh-port, IPv4', ADDR.vip, ADDR.client, 92],
    ['sh-port, IPv6 (folded address plus port)', ADDR.vip6, ADDR.client6, 90],
  ] as const) {
    test(`${name}: each connection of one client goes where hash(client, source port) says`, () => {
      const s = svcOf(vip, port);
      const table = readTable(t.dp, s.id)!;
      const seen = new Set<number>();
      for (let k = 0; k < 24; k++) {
        const sport = 30000 + k * 977;
        const id = table[slotOf(client, table.length, sport)]!;
        seen.add(id);
        const input = syn(client, vip, port, sport);
        expectFrame(input, forwarded(s, id, input), `${name} sport ${sport}`);
      }
      assert.equal(seen.size, 2, 'the ports of one client reach both real servers');
    });
  }

  test('sh without sh-port: every connection of a client goes to one real server, the address hash\'s', () => {
    const s = svcOf(ADDR.vip, 91);
    const table = readTable(t.dp, s.id)!;
    const id = table[slotOf(ADDR.client, table.length)]!;
    for (let k = 0; k < 8; k++) {
      const input = syn(ADDR.client, ADDR.vip, 91, 31000 + k * 977);
      expectFrame(input, forwarded(s, id, input), `sport ${31000 + k * 977}`);
    }
  });

  test('sh-port: a segment of no flow is forwarded by the same hash, port included (sloppy)', () => {
    const s = svcOf(ADDR.vip, 90);
    const table = readTable(t.dp, s.id)!;
    const sloppy = counter('sloppy');
    for (let k = 0; k < 8; k++) {
      const sport = 32000 + k * 613;
      const input = syn(ADDR.client, ADDR.vip, 90, sport, F.TCP.ACK);
      expectFrame(input, forwarded(s, table[slotOf(ADDR.client, table.length, sport)]!, input), `stray ${sport}`);
    }
    assert.equal(counter('sloppy') - sloppy, 8);
  });

  /** Source ports of ADDR.client whose slot in `table` holds `id` (or not). */
  const portsWhere = (table: Uint32Array, pred: (id: number) => boolean, n: number, from = 33000): number[] => {
    const out: number[] = [];
    for (let sport = from; out.length < n && sport < 65536; sport++) if (pred(table[slotOf(ADDR.client, table.length, sport)]!)) out.push(sport);
    return out;
  };

  test('sh without sh-fallback: a client hashed to a quiesced real server is refused (ICMP port unreachable), the others are served', () => {
    const s = svcOf(ADDR.vip, 93);
    const quiesced = s.reals.find((r) => r.weight === 0)!.id;
    const layout = buildSh(s.reals.map((r) => ({ ...r, weight: 1 })), s.tableSize);
    const table = readTable(t.dp, s.id)!;
    assert.deepEqual(table, buildSh(s.reals, s.tableSize, false));
    const refusedPorts = portsWhere(layout, (id) => id === quiesced, 4);
    const servedPorts = portsWhere(layout, (id) => id !== quiesced, 4);
    const noReal = counter('no_real');
    for (const sport of refusedPorts) {
      assert.equal(table[slotOf(ADDR.client, table.length, sport)], SLOT.none);
      const input = syn(ADDR.client, ADDR.vip, 93, sport);
      expectFrame(input, { verdict: XdpAction.TX, frame: F.icmpUnreach(input, 3, 0) }, `refused ${sport}`);
    }
    assert.equal(counter('no_real') - noReal, refusedPorts.length);
    for (const sport of servedPorts) {
      const input = syn(ADDR.client, ADDR.vip, 93, sport);
      expectFrame(input, forwarded(s, layout[slotOf(ADDR.client, layout.length, sport)]!, input), `served ${sport}`);
    }
    // A stray segment of a refused client is dropped, never answered by the director's stack.
    assert.equal(t.run(syn(ADDR.client, ADDR.vip, 93, refusedPorts[0]!, F.TCP.ACK)).retval, XdpAction.DROP);
  });

  test('-E to sh-fallback,sh-port: those clients now go where the fallback rule sends them; nobody else moves', async () => {
    const before = svcOf(ADDR.vip, 93);
    const layout = buildSh(before.reals.map((r) => ({ ...r, weight: 1 })), before.tableSize);
    const quiesced = before.reals.find((r) => r.weight === 0)!.id;
    await t.director.editService({ proto: 'tcp', addr: ADDR.vip, port: 93, scheduler: 'sh', schedFlags: FLAG.fallback | FLAG.port });
    const s = svcOf(ADDR.vip, 93);
    const table = readTable(t.dp, s.id)!;
    assert.deepEqual(table, buildSh(s.reals, s.tableSize, true));
    assert.ok(!table.includes(SLOT.none));
    const fallbackTo = new Set<number>();
    for (const sport of portsWhere(layout, (id) => id === quiesced, 12)) {
      const slot = slotOf(ADDR.client, table.length, sport);
      // The model: the first slot from 2 x slot on that the layout gives an available real.
      let k = 0;
      while (layout[(2 * slot + k) % layout.length] === quiesced) k++;
      const input = syn(ADDR.client, ADDR.vip, 93, sport);
      fallbackTo.add(layout[(2 * slot + k) % layout.length]!);
      expectFrame(input, forwarded(s, layout[(2 * slot + k) % layout.length]!, input), `fallback ${sport}`);
    }
    assert.equal(fallbackTo.size, 2, 'the refused clients spread over both available real servers');
    // Ports no earlier test used, so no flow pins them: the table decides.
    for (const sport of portsWhere(layout, (id) => id !== quiesced, 4, 40000)) {
      const input = syn(ADDR.client, ADDR.vip, 93, sport, F.TCP.ACK);
      expectFrame(input, forwarded(s, layout[slotOf(ADDR.client, layout.length, sport)]!, input), `unmoved ${sport}`);
    }
  });
});
