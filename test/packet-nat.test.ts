// LVS-NAT through BPF_PROG_TEST_RUN, both directions: the client's packet
// leaves with RIP:rport as its destination, the real server's reply with
// VIP:vport as its source (TTL - 1) towards the MAC the client's packets came
// from; every expected frame is built from scratch here, checksums included.
// IPVS's two-way TCP states, Out counters, UDP, IPv6, replies that match no
// flow, malformed and mutated replies.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdpAction } from '../src/loader/index.js';
import { CONN_STATE } from '../src/maps/abi.js';
import type { ConnKey } from '../src/maps/codecs.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const { fromClient, toClient } = HOP;
const fromReal = HOP.fromRs1;
const toReal = HOP.toRs1;
const RPORT = 8080;

interface Seg { sport: number; flags: number; payload?: Buffer; seq?: number; proto?: 'tcp' | 'udp'; v6?: boolean }

/** client -> VIP:80, as it arrives. */
const inbound = (s: Seg) => F.frame({
  l2: fromClient, src: s.v6 ? ADDR.client6 : ADDR.client, dst: s.v6 ? ADDR.vip6 : ADDR.vip, sport: s.sport, dport: 80,
  flags: s.flags, proto: s.proto ?? 'tcp', ...(s.payload ? { payload: s.payload } : {}),
});
/** The same, as the real server must get it. */
const dnatted = (s: Seg) => F.frame({
  l2: toReal, src: s.v6 ? ADDR.client6 : ADDR.client, dst: s.v6 ? ADDR.rs6 : ADDR.rs1, sport: s.sport, dport: RPORT,
  flags: s.flags, proto: s.proto ?? 'tcp', ...(s.payload ? { payload: s.payload } : {}),
});
/** real server -> client, as it arrives (TTL 64). */
const reply = (s: Seg, ttl = 64) => F.frame({
  l2: fromReal, src: s.v6 ? ADDR.rs6 : ADDR.rs1, dst: s.v6 ? ADDR.client6 : ADDR.client, sport: RPORT, dport: s.sport,
  flags: s.flags, proto: s.proto ?? 'tcp', ...(s.payload ? { payload: s.payload } : {}),
  ...(s.v6 ? { ip6: { hopLimit: ttl } } : { ip: { ttl } }),
});
/** The reply as the client must get it: from VIP:80, one hop later, to the MAC the client's packets came from. */
const unnatted = (s: Seg) => F.frame({
  l2: toClient, src: s.v6 ? ADDR.vip6 : ADDR.vip, dst: s.v6 ? ADDR.client6 : ADDR.client, sport: 80, dport: s.sport,
  flags: s.flags, proto: s.proto ?? 'tcp', ...(s.payload ? { payload: s.payload } : {}),
  ...(s.v6 ? { ip6: { hopLimit: 63 } } : { ip: { ttl: 63 } }),
});

const fwdKey = (sport: number, v6 = false, proto = 6): ConnKey => ({
  saddr: v6 ? ADDR.client6 : ADDR.client, daddr: v6 ? ADDR.vip6 : ADDR.vip, sport, dport: 80, proto, family: v6 ? 10 : 2,
});
const revKey = (sport: number, v6 = false, proto = 6): ConnKey => ({
  saddr: v6 ? ADDR.rs6 : ADDR.rs1, daddr: v6 ? ADDR.client6 : ADDR.client, sport: RPORT, dport: sport, proto, family: v6 ? 10 : 2,
});

describe('LVS-NAT, both directions (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const hex = (b: Buffer) => b.toString('hex');
  const stateOf = (sport: number) => t.dp.conns.get(fwdKey(sport))?.state ?? t.dp.newFlows.get(fwdKey(sport))?.state;
  const revStateOf = (sport: number) => t.dp.nats.get(revKey(sport))?.state ?? t.dp.newReplies.get(revKey(sport))?.state;

  before(async () => {
    t = directorNs('xvs-pn');
    for (const [addr, real, proto] of [[ADDR.vip, ADDR.rs1, 'tcp'], [ADDR.vip, ADDR.rs1, 'udp'], [ADDR.vip6, ADDR.rs6, 'tcp']] as const) {
      await t.director.addService({ proto, addr, port: 80, scheduler: 'rr' });
      await t.addReal({ proto, addr, port: 80 }, { addr: real, port: RPORT, fwd: 'nat', weight: 1 });
    }
  });

  after(() => {
    t?.close();
  });

  test('a TCP connection: handshake, data both ways, close, with IPVS\'s states on both sides', () => {
    const sport = 41000;
    const syn = { sport, flags: F.TCP.SYN };
    t.expect(inbound(syn), XdpAction.TX, dnatted(syn), 'client SYN');
    assert.equal(stateOf(sport), CONN_STATE.syn_recv);
    assert.equal(revStateOf(sport), CONN_STATE.syn_recv);
    const synack = { sport, flags: F.TCP.SYN | F.TCP.ACK };
    t.expect(reply(synack), XdpAction.TX, unnatted(synack), 'SYN-ACK');
    const ack = { sport, flags: F.TCP.ACK };
    t.expect(inbound(ack), XdpAction.TX, dnatted(ack), 'client ACK');
    assert.equal(stateOf(sport), CONN_STATE.established);
    assert.ok(t.dp.conns.get(fwdKey(sport)) && t.dp.nats.get(revKey(sport)), 'both sides confirmed');
    assert.equal(t.dp.newReplies.get(revKey(sport)), null);
    const data = { sport, flags: F.TCP.ACK | F.TCP.PSH, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n') };
    t.expect(inbound(data), XdpAction.TX, dnatted(data), 'request');
    const answer = { sport, flags: F.TCP.ACK | F.TCP.PSH, payload: Buffer.alloc(700, 0x41) };
    t.expect(reply(answer), XdpAction.TX, unnatted(answer), 'response');
    // The server closes first: FIN out, ACK in, FIN in, ACK out.
    t.expect(reply({ sport, flags: F.TCP.FIN | F.TCP.ACK }), XdpAction.TX, unnatted({ sport, flags: F.TCP.FIN | F.TCP.ACK }));
    assert.equal(stateOf(sport), CONN_STATE.fin_wait, 'output FIN in ESTABLISHED');
    t.expect(inbound({ sport, flags: F.TCP.FIN | F.TCP.ACK }), XdpAction.TX);
    assert.equal(stateOf(sport), CONN_STATE.time_wait, 'input FIN in FIN_WAIT');
    assert.equal(revStateOf(sport), CONN_STATE.time_wait, 'the reply side follows');
  });

  test('Out counters count replies; In counters the client\'s packets', async () => {
    const [svc] = t.director.list({ proto: 'tcp', addr: ADDR.vip, port: 80 }).services;
    assert.ok(svc && svc.reals[0]);
    // The first test's connection: SYN, ACK, request, FIN in; SYN-ACK, response, FIN out.
    assert.equal(svc.stats.inpkts, 4);
    assert.equal(svc.stats.outpkts, 3);
    assert.equal(svc.reals[0].stats.outpkts, 3);
    assert.equal(svc.stats.outbytes, 40 + (40 + 700) + 40);
  });

  test('UDP both ways; a zero UDP checksum stays zero', () => {
    const q = { sport: 5353, flags: 0, proto: 'udp' as const, payload: Buffer.from('query') };
    t.expect(inbound(q), XdpAction.TX, dnatted(q), 'datagram');
    const a = { sport: 5353, flags: 0, proto: 'udp' as const, payload: Buffer.from('answer!') };
    t.expect(reply(a), XdpAction.TX, unnatted(a), 'answer');
    const noSum = reply(a);
    noSum.writeUInt16BE(0, 14 + 20 + 6);
    const r = t.expect(noSum, XdpAction.TX);
    assert.equal(r.data.readUInt16BE(14 + 20 + 6), 0, 'no checksum, still none');
  });

  test('IPv6 both ways', () => {
    const syn = { sport: 42000, flags: F.TCP.SYN, v6: true };
    t.expect(inbound(syn), XdpAction.TX, dnatted(syn), 'IPv6 SYN');
    const synack = { sport: 42000, flags: F.TCP.SYN | F.TCP.ACK, v6: true };
    t.expect(reply(synack), XdpAction.TX, unnatted(synack), 'IPv6 SYN-ACK');
  });

  test('replies that match no flow go to the kernel untouched; expired ones too', () => {
    const stray = reply({ sport: 49999, flags: F.TCP.ACK });
    t.expect(stray, XdpAction.PASS, stray, 'a reply of no flow');
    const other = F.frame({ l2: fromReal, src: ADDR.rs1, dst: ADDR.client, sport: 22, dport: 40000, flags: F.TCP.ACK });
    t.expect(other, XdpAction.PASS, other, 'the real server\'s own traffic');
  });

  test('a reply whose TTL runs out at the director is dropped and counted', () => {
    t.expect(inbound({ sport: 43000, flags: F.TCP.SYN }), XdpAction.TX);
    const before = t.director.counters().ttl_exceeded ?? 0;
    t.expect(reply({ sport: 43000, flags: F.TCP.SYN | F.TCP.ACK }, 1), XdpAction.DROP);
    assert.equal((t.director.counters().ttl_exceeded ?? 0) - before, 1);
  });

  test('mutated replies: verdicts stay sane, and a forwarded one changed only what NAT changes', () => {
    t.expect(inbound({ sport: 44000, flags: F.TCP.SYN }), XdpAction.TX);
    const base = reply({ sport: 44000, flags: F.TCP.SYN | F.TCP.ACK });
    let seed = 4242;
    // The LCG's high bits: its low ones repeat with a short period.
    const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 16; };
    let forwarded = 0;
    for (let i = 0; i < 3000; i++) {
      const f = Buffer.from(base);
      const flips = 1 + (rnd() % 3);
      for (let j = 0; j < flips; j++) f[14 + (rnd() % (f.length - 14))] = rnd() & 0xff;
      const input = rnd() % 4 === 0 ? f.subarray(0, 14 + (rnd() % (f.length - 14))) : f;
      const r = t.run(Buffer.from(input));
      assert.notEqual(r.retval, XdpAction.ABORTED);
      if (r.retval !== XdpAction.TX || r.data[14 + 9] === 1) continue;
      // Incremental updates carry a checksum's error over (as IPVS's and any
      // router's do): what the input's checksums were off by, the output's are.
      const off = (f: Buffer) => {
        const ip = f.subarray(14, 34);
        const seg = f.subarray(34, 14 + ip.readUInt16BE(2));
        const pseudo = F.pseudoHeader(`${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`, `${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}`, 6, seg.length);
        return [F.inetChecksum(ip), F.inetChecksum(pseudo, seg)].map((x) => (x === 0xffff ? 0 : x));
      };
      assert.deepEqual(off(r.data), off(Buffer.from(input)), 'checksums off by what they were');
      if (r.data.readUInt16BE(14 + 20) !== 80) continue; // not this flow's reply
      forwarded++;
      const want = Buffer.from(input);
      F.mac(ADDR.routerMac).copy(want, 0);
      F.mac(ADDR.dirMac).copy(want, 6);
      want[14 + 8] = input[14 + 8]! - 1;
      F.ip4(ADDR.vip).copy(want, 14 + 12);
      want.writeUInt16BE(80, 14 + 20);
      for (const [at, len] of [[14 + 10, 2], [14 + 20 + 16, 2]] as const) r.data.copy(want, at, at, at + len); // checksums: checked above
      assert.equal(hex(r.data), hex(want));
    }
    assert.ok(forwarded > 0, 'some mutated replies were still this flow\'s and went through');
  });
});
