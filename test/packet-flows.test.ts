// The connection tables through BPF_PROG_TEST_RUN: new flows wait in
// xvs_new_flows until the client confirms them; a flood of new flows cannot
// evict a confirmed one; a segment of no flow is never answered by the
// director's own stack; a new connection on the tuple of a flow whose real
// server left is scheduled afresh; next hops come from the cache the control
// plane fills, the FIB only when it has none.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdpAction } from '../src/loader/index.js';
import { CONN_STATE } from '../src/maps/abi.js';
import type { ConnKey } from '../src/maps/codecs.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const inbound = HOP.fromClient;
const RS1 = F.mac(ADDR.rs1Mac).toString('hex');
const FAR = F.mac(ADDR.rsFarMac).toString('hex');
const CONN_TABLE = 4096;

const pkt = (dport: number, sport: number, flags: number, src: string = ADDR.client) =>
  F.frame({ l2: inbound, src, dst: ADDR.vip, sport, dport, flags });
const key = (dport: number, sport: number, src: string = ADDR.client, proto = 6): ConnKey =>
  ({ saddr: src, daddr: ADDR.vip, sport, dport, proto, family: 2 });
const macOf = (r: { data: Buffer }) => r.data.subarray(0, 6).toString('hex');

describe('connection tables (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const counter = (name: string) => t.director.counters()[name] ?? 0;

  before(async () => {
    t = directorNs('xvs-pf', { connTableSize: CONN_TABLE, newFlowSets: 128, tunnelSource: '192.0.2.99' });
    const svc = async (port: number, scheduler: string, reals: [string, 'dr' | 'tun'][], proto: 'tcp' | 'udp' = 'tcp') => {
      await t.director.addService({ proto, addr: ADDR.vip, port, scheduler });
      for (const [addr, fwd] of reals) await t.addReal({ proto, addr: ADDR.vip, port }, { addr, port: 0, fwd, weight: 1 });
    };
    await svc(80, 'rr', [[ADDR.rs1, 'dr']]);
    await svc(81, 'rr', [[ADDR.rs1, 'dr'], [ADDR.rsFar, 'dr']]);
    await svc(82, 'sh', [[ADDR.rs1, 'dr'], [ADDR.rsFar, 'dr']]);
    await svc(83, 'rr', [[ADDR.rs1, 'tun']]);
    await svc(53, 'rr', [[ADDR.rs1, 'dr']], 'udp');
  });

  after(() => {
    t?.close();
  });

  test('a new flow waits in xvs_new_flows and moves to xvs_conns on the client\'s ACK', () => {
    const promoted = counter('promoted');
    assert.equal(t.run(pkt(80, 50000, F.TCP.SYN)).retval, XdpAction.TX);
    assert.equal(t.dp.newFlows.get(key(80, 50000))?.state, CONN_STATE.syn_recv, 'SYN_RECV in the new-flow table');
    assert.equal(t.dp.conns.get(key(80, 50000)), null);
    assert.equal(t.run(pkt(80, 50000, F.TCP.SYN)).retval, XdpAction.TX, 'a retransmitted SYN');
    assert.equal(t.run(pkt(80, 50000, F.TCP.ACK)).retval, XdpAction.TX);
    assert.equal(t.dp.conns.get(key(80, 50000))?.state, CONN_STATE.established, 'ESTABLISHED in the confirmed table');
    assert.equal(t.dp.newFlows.get(key(80, 50000)), null);
    assert.equal(counter('promoted') - promoted, 1);
    assert.equal(t.run(pkt(80, 50000, F.TCP.ACK | F.TCP.FIN)).retval, XdpAction.TX);
    assert.equal(t.dp.conns.get(key(80, 50000))?.state, CONN_STATE.fin_wait, 'FIN_WAIT');
  });

  test('UDP: the first datagram makes a new flow, the second confirms it', () => {
    const dgram = () => F.frame({ l2: inbound, src: ADDR.client, dst: ADDR.vip, sport: 6000, dport: 53, proto: 'udp', payload: Buffer.from('x') });
    assert.equal(t.run(dgram()).retval, XdpAction.TX);
    assert.equal(t.dp.newFlows.get(key(53, 6000, ADDR.client, 17))?.state, CONN_STATE.udp);
    assert.equal(t.run(dgram()).retval, XdpAction.TX);
    assert.equal(t.dp.conns.get(key(53, 6000, ADDR.client, 17))?.state, CONN_STATE.udp);
    assert.equal(t.dp.newFlows.get(key(53, 6000, ADDR.client, 17)), null);
  });

  test('a flood of new flows many times the table size evicts no confirmed flow', () => {
    const flows = Array.from({ length: 20 }, (_, i) => 51000 + i);
    const first = new Map<number, string>();
    for (const sport of flows) {
      first.set(sport, macOf(t.run(pkt(81, sport, F.TCP.SYN))));
      assert.notEqual(t.run(pkt(81, sport, F.TCP.ACK)).retval, XdpAction.DROP);
    }
    const synSize = t.dp.newFlows.maxEntries;
    const flood = 10 * (CONN_TABLE + synSize);
    let dropped = 0;
    for (let i = 0; i < flood; i++) {
      const src = `198.51.100.${1 + (i % 250)}`;
      const flags = i % 2 === 0 ? F.TCP.SYN : F.TCP.SYN | F.TCP.ACK;
      if (t.run(pkt(81, 1024 + Math.floor(i / 250), flags, src)).retval === XdpAction.DROP) dropped++;
    }
    assert.equal(dropped, flood / 2, 'a SYN+ACK of no flow is dropped');
    for (const sport of flows) {
      assert.ok(t.dp.conns.get(key(81, sport)), `flow ${sport} still in the table`);
      assert.equal(macOf(t.run(pkt(81, sport, F.TCP.ACK))), first.get(sport), `flow ${sport} on its real server`);
    }
  });

  test('a segment of no flow: dropped for rr, forwarded by its hash for sh, never a new entry', () => {
    const drops = counter('drop_no_conn');
    const sloppy = counter('sloppy');
    assert.equal(t.run(pkt(81, 52000, F.TCP.ACK)).retval, XdpAction.DROP);
    assert.equal(counter('drop_no_conn') - drops, 1);
    const viaSyn = macOf(t.run(pkt(82, 52001, F.TCP.SYN, '203.0.113.50')));
    const stray = t.run(pkt(82, 52002, F.TCP.ACK, '203.0.113.50'));
    assert.equal(stray.retval, XdpAction.TX);
    assert.equal(macOf(stray), viaSyn, 'the real server sh gives this client');
    assert.equal(counter('sloppy') - sloppy, 1);
    assert.equal(t.dp.conns.get(key(82, 52002, '203.0.113.50')), null);
    assert.equal(t.dp.newFlows.get(key(82, 52002, '203.0.113.50')), null);
  });

  test('a SYN on the tuple of a flow whose real server was deleted or quiesced is scheduled afresh', async () => {
    const svc = { proto: 'tcp' as const, addr: ADDR.vip, port: 81 };
    for (const how of ['quiesce', 'delete'] as const) {
      const sport = how === 'quiesce' ? 53000 : 53001;
      const mac = macOf(t.run(pkt(81, sport, F.TCP.SYN)));
      t.run(pkt(81, sport, F.TCP.ACK));
      const gone = mac === RS1 ? ADDR.rs1 : ADDR.rsFar;
      if (how === 'quiesce') await t.director.editReal(svc, { addr: gone, port: 81, fwd: 'dr', weight: 0 });
      else await t.director.delReal(svc, { addr: gone, port: 81 });
      assert.equal(macOf(t.run(pkt(81, sport, F.TCP.ACK))), mac, `${how}: the running connection stays`);
      const again = t.run(pkt(81, sport, F.TCP.SYN));
      assert.notEqual(macOf(again), mac, `${how}: a new connection on the same tuple goes elsewhere`);
      assert.equal(macOf(t.run(pkt(81, sport, F.TCP.ACK))), macOf(again), `${how}: and stays there`);
      if (how === 'quiesce') await t.director.editReal(svc, { addr: gone, port: 81, fwd: 'dr', weight: 1 });
      else await t.addReal(svc, { addr: gone, port: 0, fwd: 'dr', weight: 1 });
    }
  });

  test('next hops come from the control plane\'s cache; without an entry the FIB answers, counted', () => {
    const misses = counter('nh_miss');
    assert.equal(macOf(t.run(pkt(80, 54000, F.TCP.SYN))), RS1);
    assert.equal(counter('nh_miss') - misses, 0, 'a cached next hop needs no FIB lookup');
    const id = t.dp.newFlows.get(key(80, 54000))!.real_id;
    const cached = t.dp.nexthops.get(id)!;
    assert.equal(cached.dmac, ADDR.rs1Mac);
    assert.equal(cached.smac, ADDR.dirMac);
    // A changed MAC in the cache is used at once.
    t.dp.nexthops.set(id, { ...cached, dmac: '02:00:00:00:00:99' });
    assert.equal(macOf(t.run(pkt(80, 54000, F.TCP.ACK))), '020000000099');
    t.dp.nexthops.set(id, { ...cached, ifindex: 0 });
    assert.equal(macOf(t.run(pkt(80, 54001, F.TCP.SYN))), RS1);
    assert.equal(counter('nh_miss') - misses, 1);
    t.dp.nexthops.set(id, cached);
  });

  test('TUN takes its outer source from xvsd --tunnel-source', () => {
    const input = pkt(83, 55000, F.TCP.SYN);
    const r = t.run(input);
    assert.equal(r.retval, XdpAction.TX);
    assert.equal(r.data.toString('hex'), F.encap(input, { dstMac: ADDR.rs1Mac, srcMac: ADDR.dirMac, outerSrc: '192.0.2.99', outerDst: ADDR.rs1 }).toString('hex'));
  });
});
