// The tables in sets (xvs_new_flows, xvs_new_replies: bpf/dataplane/sets.h)
// through BPF_PROG_TEST_RUN: the dataplane and src/maps/set-table.ts find a
// tuple in the same set and way, both families; a flow the control plane
// writes is the one the client's ACK confirms; a way whose check does not
// match its contents (two CPUs wrote it at once) is no flow; a full set
// gives its oldest way to a new flow and keeps the others; a confirmed flow
// frees its way; a FULLNAT claim that meets another claim under way in its
// set gives up. One set of eight ways per table, so every tuple meets in it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdpAction } from '../src/loader/index.js';
import { CONN_STATE, SET } from '../src/maps/abi.js';
import { fieldOffset } from '../src/maps/codec.js';
import * as C from '../src/maps/codecs.js';
import { tupleHash, wayFold } from '../src/maps/set-table.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();

const seg = (sport: number, flags: number, v6 = false) =>
  F.frame({ l2: HOP.fromClient, src: v6 ? ADDR.client6 : ADDR.client, dst: v6 ? ADDR.vip6 : ADDR.vip, sport, dport: 80, flags });
const key = (sport: number, v6 = false): C.ConnKey =>
  ({ saddr: v6 ? ADDR.client6 : ADDR.client, daddr: v6 ? ADDR.vip6 : ADDR.vip, sport, dport: 80, proto: 6, family: v6 ? 10 : 2 });
const macOf = (b: Buffer) => b.subarray(0, 6).toString('hex');
const RS1 = F.mac(ADDR.rs1Mac).toString('hex');
const FAR = F.mac(ADDR.rsFarMac).toString('hex');

describe('new flows table (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const counter = (name: string) => t.director.counters()[name] ?? 0;
  /** The real server of the IPv4 service at addr, with its service's id. */
  const realOf = (addr: string) => {
    const svc = [...t.director.model.services.values()].find((s) => s.addr === ADDR.vip)!;
    const r = svc.reals.find((x) => x.addr === addr)!;
    return { id: r.id, gen: r.gen, svcId: svc.id };
  };
  const entry = (r: { id: number; gen: number; svcId: number }, lastSeen: number): C.Conn =>
    ({ last_seen: lastSeen, real_id: r.id, real_gen: r.gen, svc_id: r.svcId, state: CONN_STATE.syn_recv, flags: 0, lport: 0, laddr_id: 0 });
  const WAY0 = fieldOffset(C.newFlowSet, 'way');
  const CHECK = fieldOffset(C.newFlow, 'check');

  before(async () => {
    t = directorNs('xvs-nf', { newFlowSets: 1 });
    await t.director.addService({ proto: 'tcp', addr: ADDR.vip, port: 80, scheduler: 'rr' });
    for (const addr of [ADDR.rs1, ADDR.rsFar]) await t.addReal({ proto: 'tcp', addr: ADDR.vip, port: 80 }, { addr, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ proto: 'tcp', addr: ADDR.vip6, port: 80, scheduler: 'rr' });
    await t.addReal({ proto: 'tcp', addr: ADDR.vip6, port: 80 }, { addr: ADDR.rs6, port: 0, fwd: 'dr', weight: 1 });
    const fnat = { proto: 'tcp' as const, addr: ADDR.vip, port: 83 };
    await t.director.addService({ ...fnat, scheduler: 'rr' });
    await t.addReal(fnat, { addr: ADDR.rsFar, port: 8080, fwd: 'fullnat', weight: 1 });
    await t.director.addLaddr(fnat, ADDR.dirFar);
  });

  after(() => {
    t?.close();
  });

  /** The one set's ways, and their tags (its head, in xvs_new_flow_heads). */
  const setBytes = () => t.dp.newFlows.raw.lookup(C.u32Codec.encode(0))!;
  const tags = () => C.setHead.decode(t.dp.newFlows.heads.lookup(C.u32Codec.encode(0))!).tag;
  const wayOf = (k: C.ConnKey) => tags().indexOf((tupleHash(C.connKey.encode(k)) | 1) >>> 0);
  const forwarded = (v: number) => v === XdpAction.TX || v === XdpAction.REDIRECT;

  test('a SYN\'s flow is where the control plane looks for it, IPv4 and IPv6, and its ACK frees the way', () => {
    t.dp.newFlows.clear();
    for (const v6 of [false, true]) {
      assert.equal(t.run(seg(41000, F.TCP.SYN, v6)).retval, XdpAction.TX);
      const c = t.dp.newFlows.get(key(41000, v6));
      assert.equal(c?.state, CONN_STATE.syn_recv, `${v6 ? 'IPv6' : 'IPv4'}: found by src/maps/set-table.ts`);
      const way = wayOf(key(41000, v6));
      assert.ok(way >= 0, 'tagged with the hash both sides compute');
      const raw = setBytes();
      assert.deepEqual(C.connKey.decode(raw, WAY0 + C.newFlow.size * way), key(41000, v6));
      const at = WAY0 + C.newFlow.size * way;
      assert.equal(raw.readBigUInt64LE(at + CHECK), wayFold(raw, at, CHECK), 'sealed with the fold both sides compute');
      const promoted = counter('promoted');
      assert.equal(t.run(seg(41000, F.TCP.ACK, v6)).retval, XdpAction.TX);
      assert.equal(counter('promoted') - promoted, 1);
      assert.equal(t.dp.newFlows.get(key(41000, v6)), null, 'confirmed: no longer a new flow');
      assert.equal(tags()[way], 0, 'its way is free');
      assert.ok(t.dp.conns.get(key(41000, v6)));
    }
  });

  test('a flow the control plane writes is the one the client\'s ACK confirms, on its real server', () => {
    t.dp.newFlows.clear();
    const far = realOf(ADDR.rsFar);
    const now = t.dp.jiffies();
    t.dp.newFlows.set(key(42000), entry(far, now), now);
    const r = t.run(seg(42000, F.TCP.ACK));
    assert.ok(forwarded(r.retval));
    assert.equal(macOf(r.data), FAR);
    assert.equal(t.dp.conns.get(key(42000))?.real_id, far.id);
  });

  test('a way whose check does not match (written by two CPUs at once) is no flow: the ACK is dropped, not sent to a mixed real', () => {
    t.dp.newFlows.clear();
    assert.ok(forwarded(t.run(seg(43000, F.TCP.SYN)).retval));
    const raw = setBytes();
    const way = wayOf(key(43000));
    const at = WAY0 + C.newFlow.size * way;
    // Another real's id where the key still says this flow: what a torn write leaves.
    const other = realOf(ADDR.rs1).id === t.dp.newFlows.get(key(43000))!.real_id ? realOf(ADDR.rsFar) : realOf(ADDR.rs1);
    raw.writeUInt32LE(other.id, at + fieldOffset(C.newFlow, 'conn') + fieldOffset(C.conn, 'real_id'));
    t.dp.newFlows.raw.update(C.u32Codec.encode(0), raw);
    assert.equal(t.dp.newFlows.get(key(43000)), null, 'the control plane does not list it');
    const drops = counter('drop_no_conn');
    assert.equal(t.run(seg(43000, F.TCP.ACK)).retval, XdpAction.DROP);
    assert.equal(counter('drop_no_conn') - drops, 1);
    assert.equal(t.dp.conns.get(key(43000)), null);
  });

  test('a full set gives its oldest way to a new flow; the others still confirm on their real servers', () => {
    t.dp.newFlows.clear();
    const now = t.dp.jiffies();
    const reals = [realOf(ADDR.rs1), realOf(ADDR.rsFar)];
    const OLDEST = 3;
    for (let i = 0; i < SET.ways; i++) {
      const r = reals[i % 2]!;
      // Born a jiffy apart, in ways 0..7 in turn; the one in way OLDEST first.
      const born = now - SET.ways + ((i + SET.ways - OLDEST) % SET.ways);
      t.dp.newFlows.set(key(44000 + i), entry(r, born), born);
    }
    assert.equal(tags().filter((x) => x !== 0).length, SET.ways, 'the set is full');
    assert.equal(wayOf(key(44000 + OLDEST)), OLDEST);
    assert.ok(forwarded(t.run(seg(45000, F.TCP.SYN)).retval));
    assert.equal(t.dp.newFlows.get(key(44000 + OLDEST)), null, 'the oldest went');
    assert.equal(wayOf(key(45000)), OLDEST, 'the new flow took its way');
    for (let i = 0; i < SET.ways; i++) {
      if (i === OLDEST) continue;
      const r = t.run(seg(44000 + i, F.TCP.ACK));
      assert.ok(forwarded(r.retval), `flow ${44000 + i}`);
      assert.equal(macOf(r.data), i % 2 === 0 ? RS1 : FAR, `flow ${44000 + i} on its real server`);
    }
    assert.equal(t.run(seg(44000 + OLDEST, F.TCP.ACK)).retval, XdpAction.DROP, 'the evicted flow\'s ACK is a stray');
    // Seven confirmed: their ways are free, so the next new flows take those and evict nothing.
    assert.equal(tags().filter((x) => x !== 0).length, 1);
    for (let i = 0; i < SET.ways - 1; i++) assert.ok(forwarded(t.run(seg(46000 + i, F.TCP.SYN)).retval));
    assert.equal(t.dp.newFlows.get(key(45000))?.state, CONN_STATE.syn_recv, 'nothing evicted while a way was free');
  });

  test('a FULLNAT claim that meets another claim under way in its set gives the port up: refused while that lasts, then claimed', () => {
    t.dp.newFlows.clear();
    t.dp.newReplies.clear();
    const syn = (sport: number) => F.frame({ l2: HOP.fromClient, src: ADDR.client, dst: ADDR.vip, sport, dport: 83, flags: F.TCP.SYN });
    const set0 = C.u32Codec.encode(0);
    const claimed = (tag: number) => {
      const head = t.dp.newReplies.heads.lookup(set0)!;
      head.writeUInt32LE(tag, 4 * (SET.ways - 1));
      t.dp.newReplies.heads.update(set0, head);
    };
    claimed(SET.claimed); // another CPU between its compare-and-swap and its write
    const before = counter('fnat_no_port');
    assert.equal(t.run(syn(47000)).retval, XdpAction.DROP);
    assert.equal(counter('fnat_no_port') - before, 1, 'every port of the search given up');
    assert.equal([...t.dp.newReplies.entries()].length, 0, 'nothing left behind');
    claimed(0);
    assert.ok(forwarded(t.run(syn(47001)).retval));
    const held = [...t.dp.newReplies.entries()];
    assert.equal(held.length, 1);
    assert.equal(held[0]![1].cport, 47001, 'the reply side holds its port');
  });
});
