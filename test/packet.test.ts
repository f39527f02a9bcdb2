// Packet tests of the director through BPF_PROG_TEST_RUN: a table of
// {description, input frame, expected verdict, expected output frame}, run in
// order (flows pin), inside a namespace this test creates so bpf_fib_lookup
// resolves real servers from its routes and neighbours.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Director } from '../src/daemon/director.js';
import { XdpAction } from '../src/loader/index.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const DIR_MAC = ADDR.dirMac;
const DIR2_MAC = ADDR.dir2Mac;
const RS1_MAC = ADDR.rs1Mac;
const RS_FAR_MAC = ADDR.rsFarMac;
const ROUTER_MAC = ADDR.routerMac;
const CLIENT = ADDR.client;
const VIP = ADDR.vip;
const RS1 = ADDR.rs1;
const RS_NONEIGH = ADDR.rsNoNeigh;
const RS_FAR = ADDR.rsFar;

const inbound = { dst: DIR_MAC, src: ROUTER_MAC };
const syn = (dport: number, sport = 40000, extra: Partial<F.FlowOpts> = {}) =>
  F.frame({ l2: inbound, src: CLIENT, dst: VIP, sport, dport, flags: F.TCP.SYN, ...extra });

type Expect = Buffer | 'same' | ((input: Buffer) => Buffer);
interface Case { name: string; input: Buffer; verdict: number; output?: Expect; check?: (out: Buffer) => void }

describe('director packet path (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  let director: Director;
  const addReal = (...a: Parameters<Director['addReal']>) => t.addReal(...a);

  before(async () => {
    t = directorNs('xvs-pt');
    director = t.director;
    const svc = async (port: number, reals: [string, 'dr' | 'tun', number][], proto: 'tcp' | 'udp' = 'tcp', scheduler = 'rr') => {
      await director.addService({ proto, addr: VIP, port, scheduler });
      for (const [addr, fwd, weight] of reals) await addReal({ proto, addr: VIP, port }, { addr, port: 0, fwd, weight });
    };
    await svc(80, [[RS1, 'dr', 1]]);
    await svc(81, [[RS1, 'tun', 1]]);
    await svc(53, [[RS1, 'dr', 1]], 'udp');
    await svc(82, []);
    await svc(83, [[RS_NONEIGH, 'dr', 1]]);
    await svc(84, [[RS_FAR, 'dr', 1]]);
    await svc(85, [[RS1, 'dr', 3], [RS_FAR, 'dr', 1]], 'tcp', 'wrr');
  });

  after(() => {
    t?.close();
  });

  const run = (input: Buffer) => t.run(input);

  const dr = (input: Buffer) => F.withMacs(input, RS1_MAC, DIR_MAC);
  const bigPayload = Buffer.alloc(1500 - 40, 0x61);
  const ipOptions = Buffer.from([0x01, 0x01, 0x01, 0x00]); // NOP NOP NOP EOL
  const validSyn = syn(80, 40001);
  const truncated = (f: Buffer, n: number) => Buffer.from(f.subarray(0, n));
  const patched = (f: Buffer, at: number, bytes: number[]) => {
    const o = Buffer.from(f);
    bytes.forEach((b, i) => { o[at + i] = b; });
    return o;
  };

  const cases: Case[] = [
    { name: 'ARP passes untouched', input: Buffer.concat([F.eth({ ...inbound, type: 0x0806 }), Buffer.alloc(28)]), verdict: XdpAction.PASS, output: 'same' },
    { name: 'IPv4 to a non-service port passes', input: syn(8080), verdict: XdpAction.PASS, output: 'same' },
    { name: 'ICMP to the VIP passes', input: Buffer.concat([F.eth(inbound), F.ipv4({ src: CLIENT, dst: VIP, proto: 1, payloadLen: 8 }), Buffer.alloc(8)]), verdict: XdpAction.PASS, output: 'same' },
    { name: 'DR: SYN goes to the real server with only the MACs changed', input: syn(80), verdict: XdpAction.TX, output: dr },
    { name: 'DR: the same flow stays on its real server', input: syn(80, 40000, { flags: F.TCP.ACK }), verdict: XdpAction.TX, output: dr },
    { name: 'DR: a TCP segment of an unknown flow of an rr service is dropped, never answered by the director\'s stack', input: syn(80, 40999, { flags: F.TCP.ACK }), verdict: XdpAction.DROP },
    { name: 'DR: UDP', input: F.frame({ l2: inbound, src: CLIENT, dst: VIP, sport: 5353, dport: 53, proto: 'udp', payload: Buffer.from('q') }), verdict: XdpAction.TX, output: dr },
    { name: 'DR: 802.1Q-tagged frame keeps its tag', input: syn(80, 40002, { l2: { ...inbound, vlans: [100] } }), verdict: XdpAction.TX, output: dr },
    { name: 'DR: IPv4 options are forwarded intact', input: syn(80, 40003, { ip: { options: ipOptions } }), verdict: XdpAction.TX, output: dr },
    {
      name: 'TUN: IPIP with outer checksum, TTL/TOS/ID/DF of the inner packet',
      input: syn(81, 40010, { ip: { ttl: 57, tos: 0x10, id: 0x4242, df: true } }),
      verdict: XdpAction.TX,
      output: (i) => F.ipip(i, { dstMac: RS1_MAC, srcMac: DIR_MAC, outerSrc: '192.0.2.1', outerDst: RS1 }),
      check: (o) => assert.equal(F.inetChecksum(o.subarray(14, 34)), 0, 'outer IPv4 checksum verifies'),
    },
    {
      name: 'TUN: IP options stay in the inner header',
      input: syn(81, 40011, { ip: { options: ipOptions } }),
      verdict: XdpAction.TX,
      output: (i) => F.ipip(i, { dstMac: RS1_MAC, srcMac: DIR_MAC, outerSrc: '192.0.2.1', outerDst: RS1 }),
    },
    {
      name: 'TUN: a full-MTU DF packet gets ICMP frag-needed with MTU 1480',
      input: syn(81, 40012, { flags: F.TCP.SYN, payload: bigPayload, ip: { df: true } }),
      verdict: XdpAction.TX,
      output: (i) => F.icmpUnreach(i, 4, 1480),
      check: (o) => {
        assert.equal(F.inetChecksum(o.subarray(14, 34)), 0, 'ICMP IPv4 header checksum verifies');
        assert.equal(F.inetChecksum(o.subarray(34)), 0, 'ICMP checksum verifies');
        assert.equal(o.readUInt16BE(34 + 6), 1480);
      },
    },
    { name: 'TUN: a full-MTU packet without DF goes to the kernel', input: syn(81, 40013, { payload: bigPayload }), verdict: XdpAction.PASS, output: 'same' },
    {
      name: 'no real server: ICMP port unreachable, as IPVS',
      input: syn(82),
      verdict: XdpAction.TX,
      output: (i) => F.icmpUnreach(i, 3, 0),
      check: (o) => assert.equal(F.inetChecksum(o.subarray(34)), 0, 'ICMP checksum verifies'),
    },
    { name: 'next hop unresolved: dropped and counted, not black-holed silently', input: syn(83), verdict: XdpAction.DROP },
    { name: 'real server behind another interface: redirect', input: syn(84), verdict: XdpAction.REDIRECT, output: (i) => F.withMacs(i, RS_FAR_MAC, DIR2_MAC) },
    // Malformed and unusual frames: never forwarded, never a crash.
    { name: 'Ethernet header only', input: F.eth(inbound), verdict: XdpAction.PASS, output: 'same' },
    { name: 'truncated IPv4 header', input: truncated(validSyn, 14 + 12), verdict: XdpAction.PASS, output: 'same' },
    { name: 'IPv4 ethertype with version 6', input: patched(validSyn, 14, [0x65]), verdict: XdpAction.PASS, output: 'same' },
    { name: 'IHL below 5', input: patched(validSyn, 14, [0x44]), verdict: XdpAction.PASS, output: 'same' },
    { name: 'IHL 15 beyond the frame', input: truncated(patched(validSyn, 14, [0x4f]), 14 + 40), verdict: XdpAction.PASS, output: 'same' },
    { name: 'total length beyond the frame', input: patched(validSyn, 16, [0x05, 0xdc]), verdict: XdpAction.PASS, output: 'same' },
    { name: 'total length below the header length', input: patched(validSyn, 16, [0x00, 0x10]), verdict: XdpAction.PASS, output: 'same' },
    { name: 'truncated TCP header', input: truncated(patched(validSyn, 16, [0x00, 30]), 14 + 30), verdict: XdpAction.PASS, output: 'same' },
    { name: 'TCP data offset below 5', input: patched(validSyn, 14 + 20 + 12, [0x40]), verdict: XdpAction.PASS, output: 'same' },
    { name: 'truncated UDP header', input: truncated(patched(F.frame({ l2: inbound, src: CLIENT, dst: VIP, sport: 1, dport: 53, proto: 'udp' }), 16, [0, 24]), 14 + 24), verdict: XdpAction.PASS, output: 'same' },
    { name: 'first fragment (MF) goes to the kernel', input: syn(80, 40020, { ip: { mf: true } }), verdict: XdpAction.PASS, output: 'same' },
    { name: 'later fragment goes to the kernel', input: syn(80, 40021, { ip: { fragOffset: 100 } }), verdict: XdpAction.PASS, output: 'same' },
    { name: 'three VLAN tags are not parsed as IP', input: syn(80, 40022, { l2: { ...inbound, vlans: [1, 2, 3] } }), verdict: XdpAction.PASS, output: 'same' },
  ];

  test('table', () => {
    for (const c of cases) {
      const r = run(c.input);
      assert.equal(r.retval, c.verdict, `${c.name}: verdict`);
      if (c.output !== undefined) {
        const want = c.output === 'same' ? c.input : Buffer.isBuffer(c.output) ? c.output : c.output(c.input);
        assert.equal(r.data.toString('hex'), want.toString('hex'), `${c.name}: output bytes`);
      }
      c.check?.(r.data);
    }
  });

  test('counters name what happened', () => {
    const n = director.counters();
    assert.equal(n.no_neigh, 1);
    assert.equal(n.frag_needed, 1);
    assert.equal(n.no_real, 1);
    assert.ok(n.malformed! >= 8, `malformed=${n.malformed}`);
    assert.equal(n.pass_fragment, 2);
    assert.equal(n.redirect, 1);
  });

  test('accounting: a forwarded packet counts on its service and real server; an ICMP answer of the director does not', () => {
    const key = { proto: 'tcp' as const, addr: VIP, port: 81 };
    const stats = () => {
      const [s] = director.list(key).services;
      assert.ok(s && s.reals[0]);
      return { svc: s.stats, real: s.reals[0].stats };
    };
    const before = stats();
    const tooBig = run(syn(81, 47000, { payload: bigPayload, ip: { df: true } }));
    assert.equal(tooBig.retval, XdpAction.TX);
    assert.equal(tooBig.data[14 + 9], 1, 'the answer is ICMP');
    assert.deepEqual(stats(), before, 'fragmentation-needed touches no counter of the service or the real server');

    const small = syn(81, 47001);
    assert.equal(run(small).retval, XdpAction.TX);
    const after = stats();
    const ipLen = small.length - 14;
    for (const which of ['svc', 'real'] as const) {
      assert.deepEqual(after[which], { ...before[which], conns: before[which].conns + 1, inpkts: before[which].inpkts + 1, inbytes: before[which].inbytes + ipLen }, which);
    }
  });

  test('wrr 3:1 follows the IPVS sequence A A A B, flow by flow', () => {
    const macs = [];
    for (let i = 0; i < 8; i++) {
      const r = run(syn(85, 41000 + i));
      assert.equal(r.retval === XdpAction.TX || r.retval === XdpAction.REDIRECT, true);
      macs.push(F.mac(RS1_MAC).equals(r.data.subarray(0, 6)) ? 'A' : 'B');
    }
    assert.deepEqual(macs.join(''), 'AAABAAAB');
  });

  test('weight 0 quiesces: no new flows, existing flows continue', async () => {
    const key = { proto: 'tcp' as const, addr: VIP, port: 85 };
    const first = run(syn(85, 42000));
    const firstMac = first.data.subarray(0, 6).toString('hex');
    const quiesce = firstMac === F.mac(RS1_MAC).toString('hex') ? RS1 : RS_FAR;
    await director.editReal(key, { addr: quiesce, port: 85, fwd: 'dr', weight: 0 });
    for (let i = 0; i < 6; i++) {
      const r = run(syn(85, 42100 + i));
      assert.notEqual(r.data.subarray(0, 6).toString('hex'), firstMac, 'no new flow on the quiesced server');
    }
    const again = run(syn(85, 42000, { flags: F.TCP.ACK }));
    assert.equal(again.data.subarray(0, 6).toString('hex'), firstMac, 'existing flow continues');
    await director.editReal(key, { addr: quiesce, port: 85, fwd: 'dr', weight: quiesce === RS1 ? 3 : 1 });
  });

  test('deleted real server: its flows continue, new flows go elsewhere', async () => {
    const key = { proto: 'tcp' as const, addr: VIP, port: 86 };
    await director.addService({ ...key, scheduler: 'rr' });
    await addReal(key, { addr: RS1, port: 0, fwd: 'dr', weight: 1 });
    await addReal(key, { addr: RS_FAR, port: 0, fwd: 'dr', weight: 1 });
    const a = run(syn(86, 43000));
    const aMac = a.data.subarray(0, 6).toString('hex');
    await director.delReal(key, { addr: aMac === F.mac(RS1_MAC).toString('hex') ? RS1 : RS_FAR, port: 86 });
    assert.equal(run(syn(86, 43000, { flags: F.TCP.ACK })).data.subarray(0, 6).toString('hex'), aMac);
    for (let i = 0; i < 4; i++) assert.notEqual(run(syn(86, 43100 + i)).data.subarray(0, 6).toString('hex'), aMac);
  });

  const macOf = (r: { data: Buffer }) => r.data.subarray(0, 6).toString('hex');
  const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

  test('persistence (-p -M /24): one client subnet stays on one real server across connections', async () => {
    const key = { proto: 'tcp' as const, addr: VIP, port: 87 };
    await director.addService({ ...key, scheduler: 'rr', persistent: 360, netmask: '255.255.255.0' });
    await addReal(key, { addr: RS1, port: 0, fwd: 'dr', weight: 1 });
    await addReal(key, { addr: RS_FAR, port: 0, fwd: 'dr', weight: 1 });
    const first = macOf(run(syn(87, 45000)));
    for (let i = 1; i < 8; i++) assert.equal(macOf(run(syn(87, 45000 + i))), first, `connection ${i} of the client`);
    assert.equal(macOf(run(syn(87, 45100, { src: '203.0.113.200' }))), first, 'another client of the same /24');
    const other = macOf(run(syn(87, 45200, { src: '198.51.100.99' })));
    assert.notEqual(other, first, 'a client of another subnet takes the next rr pick');
    for (let i = 1; i < 4; i++) assert.equal(macOf(run(syn(87, 45200 + i, { src: '198.51.100.99' }))), other);
  });

  test('persistence templates expire after their timeout', async () => {
    const key = { proto: 'tcp' as const, addr: VIP, port: 88 };
    await director.addService({ ...key, scheduler: 'rr', persistent: 1 });
    await addReal(key, { addr: RS1, port: 0, fwd: 'dr', weight: 1 });
    await addReal(key, { addr: RS_FAR, port: 0, fwd: 'dr', weight: 1 });
    const first = macOf(run(syn(88, 46000)));
    assert.equal(macOf(run(syn(88, 46001))), first);
    await sleep(1300);
    assert.notEqual(macOf(run(syn(88, 46002))), first, 'after the timeout rr picks again');
  });

  test('connection timeouts (--set): an idle UDP flow expires and is scheduled anew', async () => {
    const key = { proto: 'udp' as const, addr: VIP, port: 54 };
    await director.addService({ ...key, scheduler: 'rr' });
    await addReal(key, { addr: RS1, port: 0, fwd: 'dr', weight: 1 });
    await addReal(key, { addr: RS_FAR, port: 0, fwd: 'dr', weight: 1 });
    await director.setTimeouts({ tcp: 0, tcpfin: 0, udp: 1 });
    assert.deepEqual(director.timeouts(), { tcp: 900, tcpfin: 120, udp: 1 });
    const dgram = () => F.frame({ l2: inbound, src: CLIENT, dst: VIP, sport: 7000, dport: 54, proto: 'udp', payload: Buffer.from('x') });
    const first = macOf(run(dgram()));
    assert.equal(macOf(run(dgram())), first, 'within the timeout the flow stays');
    await sleep(2300);
    assert.notEqual(macOf(run(dgram())), first, 'after the timeout the flow is new');
    await director.setTimeouts({ tcp: 0, tcpfin: 0, udp: 300 });
  });

  test('mutated frames: verdicts stay sane and DR never changes more than the MACs', () => {
    let seed = 12345;
    const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed; };
    const bases = [syn(80, 44000), F.frame({ l2: inbound, src: CLIENT, dst: VIP, sport: 5353, dport: 53, proto: 'udp', payload: Buffer.from('abcd') })];
    for (let i = 0; i < 3000; i++) {
      const base = bases[i % bases.length]!;
      const f = Buffer.from(base);
      const flips = 1 + (rnd() % 3);
      for (let j = 0; j < flips; j++) f[14 + (rnd() % (f.length - 14))] = rnd() & 0xff;
      const input = rnd() % 4 === 0 ? f.subarray(0, 14 + (rnd() % (f.length - 14))) : f;
      const r = run(Buffer.from(input));
      assert.notEqual(r.retval, XdpAction.ABORTED);
      if (r.retval !== XdpAction.TX) continue;
      const isIcmp = r.data.length >= 34 && r.data[14 + 9] === 1 && input[14 + 9] !== 1;
      if (isIcmp) continue; // an answer to the sender (port unreachable)
      assert.equal(r.data.subarray(12).toString('hex'), input.subarray(12).toString('hex'), 'only the MACs change');
    }
  });
});
