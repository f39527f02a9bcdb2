// IPv6 through the director with BPF_PROG_TEST_RUN: DR, TUN in every mix of
// families (6 in 6, 6 in 4, 4 in 6), ICMPv6 packet-too-big and port
// unreachable, extension headers, malformed and mutated frames, and the hash
// schedulers agreeing with the control plane on IPv6 addresses.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readTable } from '../src/daemon/restore.js';
import { XdpAction } from '../src/loader/index.js';
import { slotOf } from '../src/schedulers/hash.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const inbound = HOP.fromClient;
const syn6 = (dport: number, sport = 40000, extra: Partial<F.FlowOpts> = {}) =>
  F.frame({ l2: inbound, src: ADDR.client6, dst: ADDR.vip6, sport, dport, flags: F.TCP.SYN, ...extra });
const syn4 = (dport: number, sport = 40000, extra: Partial<F.FlowOpts> = {}) =>
  F.frame({ l2: inbound, src: ADDR.client, dst: ADDR.vip, sport, dport, flags: F.TCP.SYN, ...extra });
const toRs = (f: Buffer) => F.withMacs(f, ADDR.rs1Mac, ADDR.dirMac);
const truncated = (f: Buffer, n: number) => Buffer.from(f.subarray(0, n));
const patched = (f: Buffer, at: number, bytes: number[]) => {
  const o = Buffer.from(f);
  bytes.forEach((b, i) => { o[at + i] = b; });
  return o;
};
/** A 1500-byte IPv6 packet: fits the link, not the tunnel. */
const full6 = Buffer.alloc(1500 - 40 - 20, 0x62);
const full4 = Buffer.alloc(1500 - 20 - 20, 0x61);
const hopByHop = { type: 0, body: Buffer.from([1, 4, 0, 0, 0, 0]) }; // PadN
const destOpts = { type: 60, body: Buffer.from([1, 4, 0, 0, 0, 0]) };

type Expect = Buffer | 'same' | ((input: Buffer) => Buffer);
interface Case { name: string; input: Buffer; verdict: number; output?: Expect; check?: (out: Buffer) => void }

function icmp6Verifies(o: Buffer): void {
  const ip = o.subarray(14);
  const plen = ip.readUInt16BE(4);
  const src = F.addrText(ip.subarray(8, 24));
  const dst = F.addrText(ip.subarray(24, 40));
  assert.equal(F.inetChecksum(F.pseudoHeader(src, dst, 58, plen), ip.subarray(40, 40 + plen)), 0, 'ICMPv6 checksum verifies');
}

describe('director packet path, IPv6 (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;

  before(async () => {
    t = directorNs('xvs-p6');
    const svc = async (addr: string, port: number, reals: [string, 'dr' | 'tun'][], proto: 'tcp' | 'udp' = 'tcp', scheduler = 'rr') => {
      await t.director.addService({ proto, addr, port, scheduler });
      for (const [real, fwd] of reals) await t.addReal({ proto, addr, port }, { addr: real, port: 0, fwd, weight: 1 });
    };
    await svc(ADDR.vip6, 80, [[ADDR.rs6, 'dr']]);
    await svc(ADDR.vip6, 81, [[ADDR.rs6, 'tun']]);
    await svc(ADDR.vip6, 82, [[ADDR.rs1, 'tun']]);
    await svc(ADDR.vip, 86, [[ADDR.rs6, 'tun']]);
    await svc(ADDR.vip6, 83, []);
    await svc(ADDR.vip6, 84, [[ADDR.rs6Far, 'dr']]);
    await svc(ADDR.vip6, 53, [[ADDR.rs6, 'dr']], 'udp');
    await svc(ADDR.vip6, 85, [[ADDR.rs6, 'dr'], [ADDR.rs6Far, 'dr']], 'tcp', 'sh');
  });

  after(() => {
    t?.close();
  });

  const valid = syn6(80, 41000);
  const cases: Case[] = [
    { name: 'DR: SYN goes to the real server with only the MACs changed', input: syn6(80), verdict: XdpAction.TX, output: toRs },
    { name: 'DR: the flow stays on its real server', input: syn6(80, 40000, { flags: F.TCP.ACK }), verdict: XdpAction.TX, output: toRs },
    { name: 'DR: hop-by-hop and destination options are walked and forwarded intact', input: syn6(80, 40001, { ip6: { ext: [hopByHop, destOpts] } }), verdict: XdpAction.TX, output: toRs },
    { name: 'DR: UDP', input: F.frame({ l2: inbound, src: ADDR.client6, dst: ADDR.vip6, sport: 5353, dport: 53, proto: 'udp', payload: Buffer.from('q') }), verdict: XdpAction.TX, output: toRs },
    { name: 'DR: VLAN-tagged', input: syn6(80, 40002, { l2: { ...inbound, vlans: [7] } }), verdict: XdpAction.TX, output: toRs },
    { name: 'DR: real server behind another interface: redirect', input: syn6(84), verdict: XdpAction.REDIRECT, output: (i) => F.withMacs(i, ADDR.rsFarMac, ADDR.dir2Mac) },
    {
      name: 'TUN: IPv6 in IPv6 with traffic class and hop limit of the inner packet',
      input: syn6(81, 40010, { ip6: { tc: 0x28, hopLimit: 57 } }),
      verdict: XdpAction.TX,
      output: (i) => F.encap(i, { dstMac: ADDR.rs1Mac, srcMac: ADDR.dirMac, outerSrc: ADDR.dir6, outerDst: ADDR.rs6 }),
    },
    {
      name: 'TUN: IPv6 in IPv4 (SIT, protocol 41) with DF',
      input: syn6(82, 40011, { ip6: { tc: 0x10, hopLimit: 33 } }),
      verdict: XdpAction.TX,
      output: (i) => F.encap(i, { dstMac: ADDR.rs1Mac, srcMac: ADDR.dirMac, outerSrc: ADDR.dir, outerDst: ADDR.rs1 }),
      check: (o) => assert.equal(F.inetChecksum(o.subarray(14, 34)), 0, 'outer IPv4 checksum verifies'),
    },
    {
      name: 'TUN: IPv4 in IPv6',
      input: syn4(86, 40012, { ip: { ttl: 50, tos: 0x08 } }),
      verdict: XdpAction.TX,
      output: (i) => F.encap(i, { dstMac: ADDR.rs1Mac, srcMac: ADDR.dirMac, outerSrc: ADDR.dir6, outerDst: ADDR.rs6 }),
    },
    {
      name: 'TUN 6 in 6: a full-MTU packet gets ICMPv6 packet-too-big with MTU 1460',
      input: syn6(81, 40013, { payload: full6 }),
      verdict: XdpAction.TX,
      output: (i) => F.icmp6Error(i, 2, 0, 1460, 128),
      check: icmp6Verifies,
    },
    {
      name: 'TUN 6 in 4: a full-MTU packet gets ICMPv6 packet-too-big with MTU 1480',
      input: syn6(82, 40014, { payload: full6 }),
      verdict: XdpAction.TX,
      output: (i) => F.icmp6Error(i, 2, 0, 1480, 128),
      check: icmp6Verifies,
    },
    {
      name: 'TUN 4 in 6: a full-MTU DF packet gets ICMP fragmentation-needed with MTU 1460',
      input: syn4(86, 40015, { payload: full4, ip: { df: true } }),
      verdict: XdpAction.TX,
      output: (i) => F.icmpUnreach(i, 4, 1460),
    },
    { name: 'TUN 4 in 6: a full-MTU packet without DF goes to the kernel', input: syn4(86, 40016, { payload: full4 }), verdict: XdpAction.PASS, output: 'same' },
    {
      name: 'no real server: ICMPv6 port unreachable from the VIP',
      input: syn6(83),
      verdict: XdpAction.TX,
      output: (i) => F.icmp6Error(i, 1, 4, 0, 128),
      check: icmp6Verifies,
    },
    { name: 'a TCP segment of no flow of an rr service is dropped', input: syn6(80, 41999, { flags: F.TCP.ACK }), verdict: XdpAction.DROP },
    // Malformed and unusual: never forwarded, never a crash.
    { name: 'truncated IPv6 header', input: truncated(valid, 14 + 30), verdict: XdpAction.PASS, output: 'same' },
    { name: 'IPv6 ethertype with version 4', input: patched(valid, 14, [0x45]), verdict: XdpAction.PASS, output: 'same' },
    { name: 'payload length beyond the frame', input: patched(valid, 14 + 4, [0x05, 0xdc]), verdict: XdpAction.PASS, output: 'same' },
    { name: 'payload length 0 (jumbogram or empty)', input: patched(valid, 14 + 4, [0, 0]), verdict: XdpAction.PASS, output: 'same' },
    { name: 'a fragment header goes to the kernel', input: syn6(80, 41001, { ip6: { ext: [{ type: 44, body: Buffer.from([0, 0, 0, 0, 0, 1]) }] } }), verdict: XdpAction.PASS, output: 'same' },
    { name: 'a fragment header after hop-by-hop goes to the kernel', input: syn6(80, 41002, { ip6: { ext: [hopByHop, { type: 44, body: Buffer.from([0, 0, 0, 0, 0, 1]) }] } }), verdict: XdpAction.PASS, output: 'same' },
    { name: 'five extension headers: longer than walked', input: syn6(80, 41003, { ip6: { ext: [hopByHop, destOpts, destOpts, destOpts, destOpts] } }), verdict: XdpAction.PASS, output: 'same' },
    { name: 'an extension header longer than the packet', input: patched(syn6(80, 41004, { ip6: { ext: [hopByHop] } }), 14 + 40 + 1, [200]), verdict: XdpAction.PASS, output: 'same' },
    { name: 'an extension header cut by the frame', input: truncated(syn6(80, 41005, { ip6: { ext: [hopByHop] } }), 14 + 40 + 1), verdict: XdpAction.PASS, output: 'same' },
    { name: 'truncated TCP header', input: truncated(patched(valid, 14 + 4, [0, 10]), 14 + 50), verdict: XdpAction.PASS, output: 'same' },
    { name: 'no next header (59)', input: Buffer.concat([F.eth({ ...inbound, type: 0x86dd }), F.ipv6({ src: ADDR.client6, dst: ADDR.vip6, nextHeader: 59, payloadLen: 8 }), Buffer.alloc(8)]), verdict: XdpAction.PASS, output: 'same' },
    { name: 'ICMPv6 to the VIP passes', input: Buffer.concat([F.eth({ ...inbound, type: 0x86dd }), F.ipv6({ src: ADDR.client6, dst: ADDR.vip6, nextHeader: 58, payloadLen: 8 }), Buffer.from([128, 0, 0, 0, 0, 1, 0, 1])]), verdict: XdpAction.PASS, output: 'same' },
  ];

  test('table', () => {
    for (const c of cases) {
      const r = t.run(c.input);
      assert.equal(r.retval, c.verdict, `${c.name}: verdict`);
      if (c.output !== undefined) {
        const want = c.output === 'same' ? c.input : Buffer.isBuffer(c.output) ? c.output : c.output(c.input);
        assert.equal(r.data.toString('hex'), want.toString('hex'), `${c.name}: output bytes`);
      }
      c.check?.(r.data);
    }
    const n = t.director.counters();
    assert.equal(n.frag_needed, 3);
    assert.equal(n.no_real, 1);
    assert.equal(n.pass_fragment, 2);
    assert.ok(n.malformed! >= 7, `malformed=${n.malformed}`);
  });

  test('sh: the dataplane picks the real server the control plane\'s hash of the IPv6 client names', () => {
    const entry = t.dp.services.get({ addr: ADDR.vip6, port: 85, proto: 6, family: 10 });
    assert.ok(entry);
    const table = readTable(t.dp, entry.id);
    assert.ok(table && table.length > 0);
    const macOf = new Map<number, string>();
    for (const id of new Set(table)) macOf.set(id, t.dp.reals.get(id)?.addr === ADDR.rs6 ? ADDR.rs1Mac : ADDR.rsFarMac);
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const client = `2001:db8:ff::${((i * 7919) & 0xffff).toString(16)}:${i.toString(16)}`;
      const r = t.run(F.frame({ l2: inbound, src: client, dst: ADDR.vip6, sport: 1000 + i, dport: 85, flags: F.TCP.SYN }));
      const want = macOf.get(table[slotOf(client, table.length)]!);
      const got = r.data.subarray(0, 6).toString('hex');
      assert.equal(got, F.mac(want!).toString('hex'), `client ${client}`);
      seen.add(got);
    }
    assert.equal(seen.size, 2, 'both real servers take clients');
  });

  test('mutated IPv6 frames: verdicts stay sane and DR never changes more than the MACs', () => {
    let seed = 777;
    const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed; };
    const bases = [
      syn6(80, 44000),
      syn6(80, 44001, { ip6: { ext: [hopByHop, destOpts] } }),
      F.frame({ l2: inbound, src: ADDR.client6, dst: ADDR.vip6, sport: 5353, dport: 53, proto: 'udp', payload: Buffer.from('abcd') }),
    ];
    for (let i = 0; i < 3000; i++) {
      const base = bases[i % bases.length]!;
      const f = Buffer.from(base);
      const flips = 1 + (rnd() % 3);
      for (let j = 0; j < flips; j++) f[14 + (rnd() % (f.length - 14))] = rnd() & 0xff;
      const input = rnd() % 4 === 0 ? f.subarray(0, 14 + (rnd() % (f.length - 14))) : f;
      const r = t.run(Buffer.from(input));
      assert.notEqual(r.retval, XdpAction.ABORTED);
      if (r.retval !== XdpAction.TX && r.retval !== XdpAction.REDIRECT) continue;
      const ip = r.data.subarray(14);
      const answer = ip.length >= 40 && ip[0]! >> 4 === 6 && ip[6] === 58 && input[14 + 6] !== 58;
      if (answer) continue; // an ICMPv6 error back to the sender
      if (r.data.length !== input.length) {
        // A mutated address that is a TUN service: the input follows an outer header.
        assert.equal(r.data.subarray(r.data.length - (input.length - 14)).toString('hex'), input.subarray(14).toString('hex'), 'encapsulated intact');
        continue;
      }
      assert.equal(r.data.subarray(12).toString('hex'), input.subarray(12).toString('hex'), 'only the MACs change');
    }
  });
});
