// Each CPU's copies of established flows (xvs_flow_cache, xvs_reply_cache)
// through BPF_PROG_TEST_RUN: a packet that can change nothing is forwarded
// from the copy, byte for byte as from the table; a segment that can (SYN,
// FIN, RST) goes to the table and the copy stops counting; a copy is
// refreshed from the table after a second; a SYN that schedules a reused
// tuple afresh retires every copy, so its ACK follows the new real server;
// a new flow on a tuple whose entry went forgets this CPU's copy; a
// handshake is never copied (its retransmitted SYNs go by xvs_new_flows,
// its ACK confirms it); a FULLNAT flow is copied only once the client's
// address has travelled.
// The test runs on one CPU: the copies are that CPU's.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { XdpAction } from '../src/loader/index.js';
import { CONN_STATE } from '../src/maps/abi.js';
import type { ConnKey } from '../src/maps/codecs.js';
import { pinMainThread } from '../bench/cpu.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const RPORT = 8080;

interface Seg { dport: number; sport: number; flags: number; payload?: Buffer }
const opt = (s: Seg) => (s.payload ? { payload: s.payload } : {});
const inbound = (s: Seg) => F.frame({ l2: HOP.fromClient, src: ADDR.client, dst: ADDR.vip, sport: s.sport, dport: s.dport, flags: s.flags, ...opt(s) });
const key = (dport: number, sport: number): ConnKey => ({ saddr: ADDR.client, daddr: ADDR.vip, sport, dport, proto: 6, family: 2 });
const macOf = (b: Buffer) => b.subarray(0, 6).toString('hex');
const hex = (b: Buffer) => b.toString('hex');

describe('flow caches (BPF_PROG_TEST_RUN, one CPU)', { skip }, () => {
  let t: DirectorNs;
  const cached = () => t.director.counters()['flow_cached'] ?? 0;
  /** Runs a frame and says whether a copy forwarded it. */
  const run = (f: Buffer) => {
    const before = cached();
    const r = t.run(f);
    return { ...r, fromCopy: cached() - before === 1 };
  };
  const handshake = (dport: number, sport: number) => {
    assert.notEqual(t.run(inbound({ dport, sport, flags: F.TCP.SYN })).retval, XdpAction.DROP);
    assert.notEqual(t.run(inbound({ dport, sport, flags: F.TCP.ACK })).retval, XdpAction.DROP);
  };

  before(async () => {
    pinMainThread(0);
    t = directorNs('xvs-fc', { connTableSize: 4096 });
    const svc = (port: number) => ({ proto: 'tcp' as const, addr: ADDR.vip, port });
    await t.director.addService({ ...svc(80), scheduler: 'rr' });
    await t.addReal(svc(80), { addr: ADDR.rs1, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ ...svc(81), scheduler: 'rr' });
    for (const addr of [ADDR.rs1, ADDR.rsFar]) await t.addReal(svc(81), { addr, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ ...svc(84), scheduler: 'rr' });
    for (const addr of [ADDR.rs1, ADDR.rsFar]) await t.addReal(svc(84), { addr, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ ...svc(82), scheduler: 'rr' });
    await t.addReal(svc(82), { addr: ADDR.rs1, port: RPORT, fwd: 'nat', weight: 1 });
    await t.director.addService({ ...svc(83), scheduler: 'rr' });
    await t.addReal(svc(83), { addr: ADDR.rsFar, port: RPORT, fwd: 'fullnat', weight: 1 });
    await t.director.addLaddr(svc(83), ADDR.dirFar);
  });

  after(() => {
    t?.close();
    pinMainThread('all');
  });

  test('DR: after one packet from the table, the flow\'s packets go from the copy, byte for byte the same', () => {
    handshake(80, 50000);
    const ack = inbound({ dport: 80, sport: 50000, flags: F.TCP.ACK | F.TCP.PSH, payload: Buffer.from('hello') });
    const want = F.withMacs(ack, ADDR.rs1Mac, ADDR.dirMac);
    const first = run(ack);
    assert.equal(first.retval, XdpAction.TX);
    assert.equal(hex(first.data), hex(want));
    assert.equal(first.fromCopy, false, 'the first goes by xvs_conns (and copies it)');
    const seen = t.dp.conns.get(key(80, 50000))?.last_seen;
    for (let i = 0; i < 3; i++) {
      const r = run(ack);
      assert.equal(r.retval, XdpAction.TX);
      assert.equal(hex(r.data), hex(want), `packet ${i + 2}`);
      assert.equal(r.fromCopy, true, `packet ${i + 2} from the copy`);
    }
    assert.equal(t.dp.conns.get(key(80, 50000))?.last_seen, seen, 'the entry is not written');
  });

  test('a retransmitted SYN goes by its handshake in xvs_new_flows, never a copy, unless its real server takes no new connection', async () => {
    const svc = { proto: 'tcp' as const, addr: ADDR.vip, port: 84 };
    const sport = 50007;
    const syn = inbound({ dport: 84, sport, flags: F.TCP.SYN });
    const first = run(syn);
    assert.equal(first.fromCopy, false, 'a new flow: the tables');
    for (let i = 0; i < 2; i++) {
      const again = run(syn);
      assert.equal(hex(again.data), hex(first.data), 'to the same real server');
      assert.equal(again.fromCopy, false, 'not from a copy');
    }
    assert.equal(t.dp.newFlows.get(key(84, sport))?.state, CONN_STATE.syn_recv, 'the handshake waits in xvs_new_flows');
    const gone = macOf(first.data) === macOf(F.mac(ADDR.rs1Mac)) ? ADDR.rs1 : ADDR.rsFar;
    await t.director.editReal(svc, { addr: gone, port: 84, fwd: 'dr', weight: 0 });
    const moved = run(syn);
    assert.equal(moved.fromCopy, false, 'quiesced: the table, which schedules it afresh');
    assert.notEqual(macOf(moved.data), macOf(first.data));
    const ack = run(inbound({ dport: 84, sport, flags: F.TCP.ACK }));
    assert.equal(ack.fromCopy, false, 'the ACK does not follow a handshake\'s copy: it confirms the flow');
    assert.equal(macOf(ack.data), macOf(moved.data));
    assert.equal(t.dp.conns.get(key(84, sport))?.state, CONN_STATE.established);
    await t.director.editReal(svc, { addr: gone, port: 84, fwd: 'dr', weight: 1 });
  });

  test('a FIN goes by the table, and the copy stops counting', () => {
    handshake(80, 50001);
    const ack = inbound({ dport: 80, sport: 50001, flags: F.TCP.ACK });
    run(ack);
    assert.equal(run(ack).fromCopy, true);
    const fin = run(inbound({ dport: 80, sport: 50001, flags: F.TCP.ACK | F.TCP.FIN }));
    assert.equal(fin.fromCopy, false);
    assert.equal(t.dp.conns.get(key(80, 50001))?.state, CONN_STATE.fin_wait);
    const after = run(ack);
    assert.equal(after.retval, XdpAction.TX);
    assert.equal(after.fromCopy, false, 'the next ACK by the table too');
    assert.equal(run(ack).fromCopy, false, 'FIN_WAIT is not copied');
    assert.equal(run(inbound({ dport: 80, sport: 50001, flags: F.TCP.RST })).fromCopy, false, 'nor is a RST forwarded from one');
  });

  test('a copy older than a second goes back to the table, which refreshes the entry', async () => {
    handshake(80, 50002);
    const ack = inbound({ dport: 80, sport: 50002, flags: F.TCP.ACK });
    run(ack);
    assert.equal(run(ack).fromCopy, true);
    const seen = t.dp.conns.get(key(80, 50002))!.last_seen;
    await sleep(1100);
    assert.equal(run(ack).fromCopy, false, 'a second later: the table');
    assert.ok(t.dp.conns.get(key(80, 50002))!.last_seen > seen, 'which refreshed the entry');
    assert.equal(run(ack).fromCopy, true, 'and a new copy');
  });

  test('a SYN that schedules a reused tuple afresh retires the copy: the new connection\'s ACK follows it', async () => {
    const svc = { proto: 'tcp' as const, addr: ADDR.vip, port: 81 };
    const sport = 50003;
    const old = macOf(t.run(inbound({ dport: 81, sport, flags: F.TCP.SYN })).data);
    const ack = inbound({ dport: 81, sport, flags: F.TCP.ACK });
    t.run(ack);
    t.run(ack);
    assert.equal(run(ack).fromCopy, true, 'the old connection from the copy');
    await t.director.editReal(svc, { addr: old === macOf(F.mac(ADDR.rs1Mac)) ? ADDR.rs1 : ADDR.rsFar, port: 81, fwd: 'dr', weight: 0 });
    assert.equal(macOf(run(ack).data), old, 'quiesced: the running connection stays');
    const again = t.run(inbound({ dport: 81, sport, flags: F.TCP.SYN }));
    assert.notEqual(macOf(again.data), old, 'a new connection on the tuple goes to the other real server');
    const next = run(ack);
    assert.equal(next.fromCopy, false, 'not from the old copy');
    assert.equal(macOf(next.data), macOf(again.data), 'its ACK follows it');
    assert.equal(macOf(run(ack).data), macOf(again.data));
  });

  test('a new flow on the tuple of one whose entry went (evicted) forgets the copy: its ACK follows the new flow', () => {
    const sport = 50006;
    const old = macOf(t.run(inbound({ dport: 84, sport, flags: F.TCP.SYN })).data);
    const ack = inbound({ dport: 84, sport, flags: F.TCP.ACK });
    t.run(ack);
    t.run(ack);
    assert.equal(run(ack).fromCopy, true);
    assert.ok(t.dp.conns.delete(key(84, sport)), 'the entry goes, as an LRU eviction takes it');
    const again = t.run(inbound({ dport: 84, sport, flags: F.TCP.SYN }));
    assert.notEqual(macOf(again.data), old, 'rr gives the new flow the other real server');
    const next = run(ack);
    assert.equal(next.fromCopy, false);
    assert.equal(macOf(next.data), macOf(again.data), 'its ACK follows it');
  });

  test('NAT: replies go from the reply side\'s copy, byte for byte the same', () => {
    const sport = 50004;
    handshake(82, sport);
    const reply = F.frame({ l2: HOP.fromRs1, src: ADDR.rs1, dst: ADDR.client, sport: RPORT, dport: sport, flags: F.TCP.ACK | F.TCP.PSH, payload: Buffer.from('answer') });
    const want = F.frame({ l2: HOP.toClient, src: ADDR.vip, dst: ADDR.client, sport: 82, dport: sport, flags: F.TCP.ACK | F.TCP.PSH, payload: Buffer.from('answer'), ip: { ttl: 63 } });
    const first = run(reply);
    assert.equal(hex(first.data), hex(want));
    assert.equal(first.fromCopy, false);
    for (let i = 0; i < 2; i++) {
      const r = run(reply);
      assert.equal(r.retval, XdpAction.TX);
      assert.equal(hex(r.data), hex(want));
      assert.equal(r.fromCopy, true);
    }
    const fin = run(F.frame({ l2: HOP.fromRs1, src: ADDR.rs1, dst: ADDR.client, sport: RPORT, dport: sport, flags: F.TCP.ACK | F.TCP.FIN }));
    assert.equal(fin.fromCopy, false, 'the real server\'s FIN by the table');
    assert.equal(run(reply).fromCopy, false, 'and its copy no longer counts');
    assert.equal(run(reply).fromCopy, false, 'FIN_WAIT is not copied');
  });

  test('FULLNAT: copied only once the client\'s address has travelled with data', () => {
    const sport = 50005;
    const syn = t.run(inbound({ dport: 83, sport, flags: F.TCP.SYN }));
    assert.equal(syn.retval, XdpAction.REDIRECT);
    const lport = syn.data.readUInt16BE(34);
    const toReal = (s: Seg, toa: boolean) => F.packet({
      l2: HOP.toFar, proto: 'tcp', src: ADDR.dirFar, dst: ADDR.rsFar, sport: lport, dport: RPORT, flags: s.flags,
      ...(toa ? { options: F.TcpOpt.toa(sport, ADDR.client) } : {}), ...opt(s),
    });
    const ack = { dport: 83, sport, flags: F.TCP.ACK };
    for (const what of ['the handshake\'s ACK', 'another ACK without data']) {
      const r = run(inbound(ack));
      assert.equal(hex(r.data), hex(toReal(ack, true)), `${what} carries TOA`);
      assert.equal(r.fromCopy, false);
    }
    const data = { dport: 83, sport, flags: F.TCP.ACK | F.TCP.PSH, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n') };
    const d1 = run(inbound(data));
    assert.equal(hex(d1.data), hex(toReal(data, true)), 'the first data carries TOA');
    assert.equal(d1.fromCopy, false);
    for (let i = 0; i < 2; i++) {
      const r = run(inbound(data));
      assert.equal(r.retval, XdpAction.REDIRECT);
      assert.equal(hex(r.data), hex(toReal(data, false)), 'later segments: no TOA');
      assert.equal(r.fromCopy, true);
    }
  });
});
