// FULLNAT through BPF_PROG_TEST_RUN, both directions: the client's packet
// leaves from a local address and port of the service to RIP:rport, the
// reply comes back to them and goes out as VIP:vport to the client; the
// client's address travels in TCP option 254 (TOA) and the real server's
// SYN-ACK announces an MSS smaller by the option's size. Expected frames are
// built from scratch here (checksums included). Local ports: distinct across
// flows, exhaustion counted, expired ones taken again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Dataplane } from '../src/daemon/dataplane.js';
import { XdpAction } from '../src/loader/index.js';
import { CONN_STATE } from '../src/maps/abi.js';
import type { ConnKey } from '../src/maps/codecs.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const { fromClient, toClient } = HOP;
const toReal = HOP.toFar;
const fromReal = HOP.fromFar;
const RPORT = 8080;
const LIP = ADDR.dirFar;
const LIP6 = ADDR.dir6Far;

interface Fam { client: string; vip: string; real: string; lip: string }
const V4: Fam = { client: ADDR.client, vip: ADDR.vip, real: ADDR.rsFar, lip: LIP };
const V6: Fam = { client: ADDR.client6, vip: ADDR.vip6, real: ADDR.rs6Far, lip: LIP6 };

interface Seg { sport: number; flags: number; options?: Buffer; payload?: Buffer; ttl?: number }
const hopOpt = (f: Fam, ttl: number) => (f === V6 ? { ip6: { hopLimit: ttl } } : { ip: { ttl } });

const inbound = (f: Fam, s: Seg) => F.packet({
  l2: fromClient, proto: 'tcp', src: f.client, dst: f.vip, sport: s.sport, dport: 80, flags: s.flags,
  ...(s.options ? { options: s.options } : {}), ...(s.payload ? { payload: s.payload } : {}),
});
/** As the real server gets it: from LIP:lport, TOA appended to the options when `toa`. */
const outbound = (f: Fam, s: Seg, lport: number, toa: boolean) => F.packet({
  l2: toReal, proto: 'tcp', src: f.lip, dst: f.real, sport: lport, dport: RPORT, flags: s.flags,
  ...(s.options || toa ? { options: Buffer.concat([s.options ?? Buffer.alloc(0), toa ? F.TcpOpt.toa(s.sport, f.client) : Buffer.alloc(0)]) } : {}),
  ...(s.payload ? { payload: s.payload } : {}),
});
const reply = (f: Fam, s: Seg, lport: number) => F.packet({
  l2: fromReal, proto: 'tcp', src: f.real, dst: f.lip, sport: RPORT, dport: lport, flags: s.flags,
  ...(s.options ? { options: s.options } : {}), ...(s.payload ? { payload: s.payload } : {}), ...hopOpt(f, 64),
});
const toClientFrame = (f: Fam, s: Seg) => F.packet({
  l2: toClient, proto: 'tcp', src: f.vip, dst: f.client, sport: 80, dport: s.sport, flags: s.flags,
  ...(s.options ? { options: s.options } : {}), ...(s.payload ? { payload: s.payload } : {}), ...hopOpt(f, 63),
});
const fwdKey = (f: Fam, sport: number): ConnKey =>
  ({ saddr: f.client, daddr: f.vip, sport, dport: 80, proto: 6, family: f === V6 ? 10 : 2 });
/** The local port a frame to the real server carries. */
const lportOf = (out: Buffer) => out.readUInt16BE(14 + (out[14]! >> 4 === 6 ? 40 : 20));

describe('FULLNAT with TOA (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const hex = (b: Buffer) => b.toString('hex');
  const counter = (n: string) => t.director.counters()[n] ?? 0;

  before(async () => {
    t = directorNs('xvs-pf6', { connTableSize: 65536 });
    for (const f of [V4, V6]) {
      const key = { proto: 'tcp' as const, addr: f.vip, port: 80 };
      await t.director.addService({ ...key, scheduler: 'rr' });
      await t.addReal(key, { addr: f.real, port: RPORT, fwd: 'fullnat', weight: 1 });
      await t.director.addLaddr(key, f.lip);
    }
    await t.director.addService({ proto: 'tcp', addr: ADDR.vip, port: 81, scheduler: 'rr' });
    await t.addReal({ proto: 'tcp', addr: ADDR.vip, port: 81 }, { addr: ADDR.rsFar, port: RPORT, fwd: 'fullnat', weight: 1 });
  });

  after(() => {
    t?.close();
  });

  for (const [name, f] of [['IPv4', V4], ['IPv6', V6]] as const) {
    test(`${name}: a connection through FULLNAT, TOA in the handshake's ACK and the first data, MSS lowered`, () => {
      const sport = f === V4 ? 41000 : 41001;
      const syn = { sport, flags: F.TCP.SYN, options: F.TcpOpt.mss(1460) };
      const r1 = t.run(inbound(f, syn));
      assert.equal(r1.retval, XdpAction.REDIRECT, 'the real server is behind d1');
      const lport = lportOf(r1.data);
      assert.ok(lport >= 1024, `local port ${lport}`);
      assert.equal(hex(r1.data), hex(outbound(f, syn, lport, false)), 'SYN: from LIP:lport to RIP:rport');
      assert.equal(t.dp.newFlows.get(fwdKey(f, sport))?.lport, lport);

      const synack = { sport, flags: F.TCP.SYN | F.TCP.ACK, options: F.TcpOpt.mss(1460) };
      const r2 = t.run(reply(f, synack, lport));
      assert.equal(r2.retval, XdpAction.TX);
      const toaLen = f === V6 ? 20 : 8;
      assert.equal(hex(r2.data), hex(toClientFrame(f, { ...synack, options: F.TcpOpt.mss(1460 - toaLen) })), 'SYN-ACK: VIP:80 to the client, MSS less the TOA');

      const added = counter('toa_added');
      const ack = { sport, flags: F.TCP.ACK };
      assert.equal(hex(t.run(inbound(f, ack)).data), hex(outbound(f, ack, lport, true)), 'the handshake\'s ACK carries the client\'s address');
      assert.equal(t.dp.conns.get(fwdKey(f, sport))?.state, CONN_STATE.established);
      const data = { sport, flags: F.TCP.ACK | F.TCP.PSH, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n') };
      assert.equal(hex(t.run(inbound(f, data)).data), hex(outbound(f, data, lport, true)), 'and the first data segment');
      const more = { sport, flags: F.TCP.ACK | F.TCP.PSH, payload: Buffer.from('more') };
      assert.equal(hex(t.run(inbound(f, more)).data), hex(outbound(f, more, lport, false)), 'not the next one');
      assert.equal(counter('toa_added') - added, 2);

      const answer = { sport, flags: F.TCP.ACK | F.TCP.PSH, payload: Buffer.alloc(300, 0x42) };
      assert.equal(hex(t.run(reply(f, answer, lport)).data), hex(toClientFrame(f, answer)), 'a reply');
    });
  }

  test('no room for TOA: the segment goes on without it, counted', () => {
    const sport = 42000;
    const r1 = t.run(inbound(V4, { sport, flags: F.TCP.SYN }));
    const lport = lportOf(r1.data);
    const full = Buffer.concat([F.TcpOpt.timestamps(1, 2), F.TcpOpt.sack([[1, 2], [3, 4], [5, 6]]), F.TcpOpt.nop(), F.TcpOpt.nop(), F.TcpOpt.nop(), F.TcpOpt.nop()]);
    assert.equal(full.length, 40);
    const before = counter('toa_no_room');
    const ack = { sport, flags: F.TCP.ACK, options: full };
    assert.equal(hex(t.run(inbound(V4, ack)).data), hex(outbound(V4, ack, lport, false)));
    assert.equal(counter('toa_no_room') - before, 1);
  });

  test('local ports differ across flows to the same real server', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const r = t.run(F.packet({ l2: fromClient, proto: 'tcp', src: `203.0.113.${10 + (i % 200)}`, dst: ADDR.vip, sport: 20000 + i, dport: 80, flags: F.TCP.SYN }));
      assert.equal(r.retval, XdpAction.REDIRECT, `flow ${i}: counters ${JSON.stringify(t.director.counters())}`);
      const lport = lportOf(r.data);
      assert.ok(!seen.has(lport), `local port ${lport} handed out twice`);
      seen.add(lport);
    }
  });

  test('a service without a local address drops new flows, counted', () => {
    const before = counter('fnat_no_laddr');
    assert.equal(t.run(F.packet({ l2: fromClient, proto: 'tcp', src: ADDR.client, dst: ADDR.vip, sport: 43000, dport: 81, flags: F.TCP.SYN })).retval, XdpAction.DROP);
    assert.equal(counter('fnat_no_laddr') - before, 1);
    assert.equal(t.dp.newFlows.get({ ...fwdKey(V4, 43000), dport: 81 }), null);
  });
});

describe('FULLNAT local ports: exhaustion and reuse (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const key = { proto: 'tcp' as const, addr: ADDR.vip, port: 80 };

  before(async () => {
    t = directorNs('xvs-pfp', { connTableSize: 131072 });
    await t.director.addService({ ...key, scheduler: 'rr' });
    await t.addReal(key, { addr: ADDR.rsFar, port: RPORT, fwd: 'fullnat', weight: 1 });
    await t.director.addLaddr(key, LIP);
  });

  after(() => {
    t?.close();
  });

  /** Every local port of (RIP:rport, laddr) held by a reply side seen at `lastSeen`. */
  function holdAll(dp: Dataplane, lastSeen: number, laddr: string = LIP): void {
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (let lport = 1024; lport < 65536; lport++) {
      keys.push(dp.nats.key.encode({ saddr: ADDR.rsFar, daddr: laddr, sport: RPORT, dport: lport, proto: 6, family: 2 }));
      values.push(dp.nats.value.encode({
        last_seen: lastSeen, vaddr: ADDR.vip, caddr: '198.51.100.200', vport: 80, cport: lport, real_id: 0, svc_id: 0,
        ifindex: 1, cmac: ADDR.routerMac, smac: ADDR.dirMac, family: 2, state: CONN_STATE.established, flags: 1,
      }));
    }
    dp.nats.raw.updateBatch(keys, values);
  }

  test('every port in use: the new flow is dropped and counted, nothing kept', () => {
    holdAll(t.dp, t.dp.jiffies());
    const before = t.director.counters().fnat_no_port ?? 0;
    const syn = F.packet({ l2: fromClient, proto: 'tcp', src: ADDR.client, dst: ADDR.vip, sport: 44000, dport: 80, flags: F.TCP.SYN });
    assert.equal(t.run(syn).retval, XdpAction.DROP);
    assert.equal((t.director.counters().fnat_no_port ?? 0) - before, 1);
    assert.equal(t.dp.newFlows.get({ saddr: ADDR.client, daddr: ADDR.vip, sport: 44000, dport: 80, proto: 6, family: 2 }), null);
  });

  test('ports whose flows expired are taken again', () => {
    holdAll(t.dp, 0); // jiffies 0: long expired
    const syn = F.packet({ l2: fromClient, proto: 'tcp', src: ADDR.client, dst: ADDR.vip, sport: 44001, dport: 80, flags: F.TCP.SYN });
    const r = t.run(syn);
    assert.equal(r.retval, XdpAction.REDIRECT);
    const lport = lportOf(r.data);
    const rev = t.dp.newReplies.get({ saddr: ADDR.rsFar, daddr: LIP, sport: RPORT, dport: lport, proto: 6, family: 2 });
    assert.equal(rev?.caddr, ADDR.client, 'the port now belongs to the new flow');
    assert.equal(t.dp.nats.get({ saddr: ADDR.rsFar, daddr: LIP, sport: RPORT, dport: lport, proto: 6, family: 2 }), null, 'the expired one is gone');
  });

  test('one local address with every port in use: the next of the pool takes the flows; both used up, refused', async () => {
    const LIP2 = '198.51.100.2';
    await t.director.addLaddr(key, LIP2);
    holdAll(t.dp, t.dp.jiffies());
    // Whichever address a client's hash starts at, its flow leaves from the one with free ports.
    for (let sport = 44100; sport < 44116; sport++) {
      const r = t.run(F.packet({ l2: fromClient, proto: 'tcp', src: ADDR.client, dst: ADDR.vip, sport, dport: 80, flags: F.TCP.SYN }));
      assert.equal(r.retval, XdpAction.REDIRECT, `client port ${sport}`);
      assert.equal(F.addrText(r.data.subarray(26, 30)), LIP2, `client port ${sport}: from the address with free ports`);
    }
    holdAll(t.dp, t.dp.jiffies(), LIP2);
    const before = t.director.counters().fnat_no_port ?? 0;
    const syn = F.packet({ l2: fromClient, proto: 'tcp', src: ADDR.client, dst: ADDR.vip, sport: 44200, dport: 80, flags: F.TCP.SYN });
    assert.equal(t.run(syn).retval, XdpAction.DROP);
    assert.equal((t.director.counters().fnat_no_port ?? 0) - before, 1);
  });
});

// NAT64 through FULLNAT: an IPv6 VIP, IPv4 real servers and local addresses.
// The expected IPv4 frame is what RFC 7915 makes of the client's (TOS from
// the traffic class, TTL from the hop limit, DF, identification 0) and the
// IPv6 reply what it makes of the server's; builders recompute every checksum.
describe('FULLNAT NAT64: an IPv6 VIP in front of IPv4 real servers (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const hex = (b: Buffer) => b.toString('hex');
  const counter = (n: string) => t.director.counters()[n] ?? 0;
  const key = { proto: 'tcp' as const, addr: ADDR.vip6, port: 80 };
  const ukey = { proto: 'udp' as const, addr: ADDR.vip6, port: 53 };
  const mixed = { proto: 'tcp' as const, addr: ADDR.vip6, port: 81 };

  const c6 = (o: { sport: number; dport?: number; proto?: 'tcp' | 'udp'; flags?: number; options?: Buffer; payload?: Buffer; tc?: number }) => F.packet({
    l2: fromClient, proto: o.proto ?? 'tcp', src: ADDR.client6, dst: ADDR.vip6, sport: o.sport, dport: o.dport ?? 80,
    ...(o.flags === undefined ? {} : { flags: o.flags }), ...(o.options ? { options: o.options } : {}),
    ...(o.payload ? { payload: o.payload } : {}), ip6: { tc: o.tc ?? 0 },
  });
  const to4 = (o: { lport: number; rport?: number; proto?: 'tcp' | 'udp'; flags?: number; options?: Buffer; payload?: Buffer; tos?: number }) => F.packet({
    l2: toReal, proto: o.proto ?? 'tcp', src: LIP, dst: ADDR.rsFar, sport: o.lport, dport: o.rport ?? RPORT,
    ...(o.flags === undefined ? {} : { flags: o.flags }), ...(o.options ? { options: o.options } : {}),
    ...(o.payload ? { payload: o.payload } : {}), ip: { tos: o.tos ?? 0, ttl: 64, id: 0, df: true },
  });
  const from4 = (o: { lport: number; rport?: number; proto?: 'tcp' | 'udp'; flags?: number; options?: Buffer; payload?: Buffer; tos?: number }) => F.packet({
    l2: fromReal, proto: o.proto ?? 'tcp', src: ADDR.rsFar, dst: LIP, sport: o.rport ?? RPORT, dport: o.lport,
    ...(o.flags === undefined ? {} : { flags: o.flags }), ...(o.options ? { options: o.options } : {}),
    ...(o.payload ? { payload: o.payload } : {}), ip: { tos: o.tos ?? 0, ttl: 64 },
  });
  const to6 = (o: { sport: number; vport?: number; proto?: 'tcp' | 'udp'; flags?: number; options?: Buffer; payload?: Buffer; tc?: number }) => F.packet({
    l2: toClient, proto: o.proto ?? 'tcp', src: ADDR.vip6, dst: ADDR.client6, sport: o.vport ?? 80, dport: o.sport,
    ...(o.flags === undefined ? {} : { flags: o.flags }), ...(o.options ? { options: o.options } : {}),
    ...(o.payload ? { payload: o.payload } : {}), ip6: { tc: o.tc ?? 0, hopLimit: 63 },
  });
  const lport4 = (out: Buffer) => out.readUInt16BE(14 + 20);

  before(async () => {
    t = directorNs('xvs-pf64', { connTableSize: 65536 });
    for (const k of [key, ukey]) {
      await t.director.addService({ ...k, scheduler: 'rr' });
      await t.addReal(k, { addr: ADDR.rsFar, port: k === key ? RPORT : 5353, fwd: 'fullnat', weight: 1 });
      await t.director.addLaddr(k, LIP);
    }
    await t.director.addService({ ...mixed, scheduler: 'rr' });
    await t.addReal(mixed, { addr: ADDR.rs6Far, port: RPORT, fwd: 'fullnat', weight: 1 });
    await t.addReal(mixed, { addr: ADDR.rsFar, port: RPORT, fwd: 'fullnat', weight: 1 });
    await t.director.addLaddr(mixed, LIP);
    await t.director.addLaddr(mixed, LIP6);
  });

  after(() => {
    t?.close();
  });

  test('TCP: the handshake, TOA of the IPv6 client in the ACK, traffic class and TOS, MSS lowered', () => {
    const sport = 45000;
    const r1 = t.run(c6({ sport, flags: F.TCP.SYN, options: F.TcpOpt.mss(1440), tc: 0xb8 }));
    assert.equal(r1.retval, XdpAction.REDIRECT);
    const lport = lport4(r1.data);
    assert.equal(hex(r1.data), hex(to4({ lport, flags: F.TCP.SYN, options: F.TcpOpt.mss(1440), tos: 0xb8 })), 'SYN: IPv4 from LIP:lport');

    const r2 = t.run(from4({ lport, flags: F.TCP.SYN | F.TCP.ACK, options: F.TcpOpt.mss(1460), tos: 0x28 }));
    assert.equal(r2.retval, XdpAction.TX);
    assert.equal(hex(r2.data), hex(to6({ sport, flags: F.TCP.SYN | F.TCP.ACK, options: F.TcpOpt.mss(1440), tc: 0x28 })),
      'SYN-ACK: IPv6 from VIP:80, MSS less the 20 bytes of an IPv6 TOA');

    const ack = t.run(c6({ sport, flags: F.TCP.ACK }));
    assert.equal(hex(ack.data), hex(to4({ lport, flags: F.TCP.ACK, options: F.TcpOpt.toa(sport, ADDR.client6) })),
      'the ACK carries the IPv6 client (kind 254, length 20) in an IPv4 segment');
    const body = Buffer.alloc(1000, 0x61);
    const down = t.run(from4({ lport, flags: F.TCP.ACK | F.TCP.PSH, payload: body }));
    assert.equal(hex(down.data), hex(to6({ sport, flags: F.TCP.ACK | F.TCP.PSH, payload: body })));
    // No data segment has carried the client's address yet: the FIN does.
    const fin = t.run(c6({ sport, flags: F.TCP.FIN | F.TCP.ACK }));
    assert.equal(hex(fin.data), hex(to4({ lport, flags: F.TCP.FIN | F.TCP.ACK, options: F.TcpOpt.toa(sport, ADDR.client6) })));
  });

  test('UDP both ways; a reply without a checksum, which IPv6 must have, is dropped and counted', () => {
    const q = Buffer.from('query');
    const r1 = t.run(c6({ proto: 'udp', sport: 46000, dport: 53, payload: q }));
    assert.equal(r1.retval, XdpAction.REDIRECT);
    const lport = lport4(r1.data);
    assert.equal(hex(r1.data), hex(to4({ proto: 'udp', lport, rport: 5353, payload: q })));
    const a = Buffer.from('answer');
    const r2 = t.run(from4({ proto: 'udp', lport, rport: 5353, payload: a }));
    assert.equal(hex(r2.data), hex(to6({ proto: 'udp', sport: 46000, vport: 53, payload: a })));
    const bare = from4({ proto: 'udp', lport, rport: 5353, payload: a });
    bare.writeUInt16BE(0, 14 + 20 + 6);
    const before = counter('nat_refused');
    assert.equal(t.run(bare).retval, XdpAction.DROP);
    assert.equal(counter('nat_refused') - before, 1);
  });

  test('an IPv6 packet with an extension header is not translated: dropped and counted', () => {
    const plain = c6({ sport: 45100, flags: F.TCP.SYN });
    // A Destination Options header (next header TCP, 8 bytes of PadN) after the IPv6 header.
    const ext = Buffer.from([6, 0, 1, 4, 0, 0, 0, 0]);
    const f = Buffer.concat([plain.subarray(0, 54), ext, plain.subarray(54)]);
    f[14 + 6] = 60;
    f.writeUInt16BE(f.readUInt16BE(14 + 4) + 8, 14 + 4);
    const before = counter('nat_refused');
    assert.equal(t.run(f).retval, XdpAction.DROP);
    assert.equal(counter('nat_refused') - before, 1);
  });

  test('a pool of both families: each flow leaves from a local address of its real server\'s family', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = t.run(c6({ sport: 47000 + i, dport: 81, flags: F.TCP.SYN }));
      assert.equal(r.retval, XdpAction.REDIRECT);
      const d = F.dissect(r.data);
      const [lip, rip] = d.family === 4 ? [LIP, ADDR.rsFar] : [LIP6, ADDR.rs6Far];
      assert.equal(hex(d.src), hex(F.ipAddr(lip)));
      assert.equal(hex(d.dst), hex(F.ipAddr(rip)));
      seen.add(rip);
    }
    assert.equal(seen.size, 2, 'rr took both real servers');
  });

  test('refused: an IPv4 VIP in front of an IPv6 real server, an IPv6 local address on an IPv4 service', async () => {
    const v4 = { proto: 'tcp' as const, addr: ADDR.vip, port: 90 };
    await t.director.addService({ ...v4, scheduler: 'rr' });
    await assert.rejects(t.addReal(v4, { addr: ADDR.rs6Far, port: RPORT, fwd: 'fullnat', weight: 1 }), { code: 'BAD_ADDRESS' });
    await assert.rejects(t.director.addLaddr(v4, LIP6), { code: 'BAD_ADDRESS' });
    await t.director.delService(v4);
  });
});
