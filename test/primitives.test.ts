// Packet tests of the dataplane's rewrite primitives (bpf/dataplane/csum.h,
// rewrite.h, hdrmove.h) through BPF_PROG_TEST_RUN on the test-only program
// test/fixtures/prim_test.c, which applies the primitive a control map
// names. Expected frames are rebuilt from scratch here with every length and
// checksum recomputed in full (helpers/frames.ts), never read back from the
// code under test; every output's checksums must verify as well.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BpfObject, testRun, XdpAction } from '../src/loader/index.js';
import type { RawMap } from '../src/maps/map.js';
import { packageRoot } from '../src/paths.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';

const skip = kernelSkipReason();

/** enum prim_op in prim_test.c. */
const Op = { REWRITE_SRC: 1, REWRITE_DST: 2, TTL: 3, TOA: 4, OPEN_ROOM: 5, CSUM: 6, TUPLE: 7 } as const;
/** enum xvs_prim_status in csum.h, and the fixture's own "not IP". */
const St = {
  OK: 0, EBOUNDS: -1, EPROTO: -2, ENOSPC: -3, EADJUST: -4, ETTL: -5, ENOCSUM: -6, EEXIST: -7, EARG: -8, NOT_IP: 1,
} as const;
const AF = { INET: 2, INET6: 10 } as const;
const HDRMOVE_MAX = 22 + 60 + 60;

interface Ctl {
  op: number; at?: number; room?: number;
  /** REWRITE, TOA, TUPLE (the destination): the address (its family goes along); CSUM: the new bytes. */
  addr?: string; to?: Buffer;
  port?: number;
  /** CSUM; TUPLE: the source address's bytes */
  from?: Buffer; check?: number;
  /** TUPLE: the source port, and whether the TTL goes down too */
  sport?: number; ttl?: boolean;
}

/** struct prim_ctl (60 bytes): host-order u32s, then fields as they lie in a packet. */
function encodeCtl(c: Ctl): Buffer {
  const b = Buffer.alloc(60);
  b.writeUInt32LE(c.op, 0);
  b.writeUInt32LE(c.at ?? 0, 8);
  b.writeUInt32LE(c.room ?? 0, 12);
  if (c.addr !== undefined) {
    F.ipAddr(c.addr).copy(b, 16);
    b[50] = F.isIp6(c.addr) ? AF.INET6 : AF.INET;
  }
  c.to?.copy(b, 16);
  c.from?.copy(b, 32);
  b.writeUInt16BE(c.port ?? 0, 48);
  if (c.to) b[51] = c.to.length;
  b.writeUInt16BE(c.check ?? 0, 52);
  b.writeUInt16BE(c.sport ?? 0, 56);
  b[58] = c.ttl ? 1 : 0;
  return b;
}

const DIR_MAC = '02:00:00:00:01:01';
const ROUTER_MAC = '02:00:00:00:00:fe';
const l2 = { dst: DIR_MAC, src: ROUTER_MAC };
const CLIENT4 = '203.0.113.7';
const VIP4 = '192.0.2.80';
const RS4 = '10.0.0.11';
const LADDR4 = '10.0.0.2';
const CLIENT6 = '2001:db8:c::7';
const VIP6 = '2001:db8::80';
const RS6 = '2001:db8:1::11';
const LADDR6 = 'fd00::2';

type PktOpts = Partial<F.PacketOpts> & { src: string; dst: string };
const pkt = (o: PktOpts): Buffer => F.packet({ l2, sport: 40000, dport: 80, proto: 'tcp', ...o });

/** Linux's SYN options: MSS, SACK permitted, timestamps, NOP, window scale. */
const linuxSyn = Buffer.concat([F.TcpOpt.mss(1460), F.TcpOpt.sackPermitted(), F.TcpOpt.timestamps(0x11223344, 0), F.TcpOpt.nop(), F.TcpOpt.windowScale(7)]);
/** macOS's: ends in two EOLs instead of NOP padding. */
const macSyn = Buffer.concat([F.TcpOpt.mss(1460), F.TcpOpt.nop(), F.TcpOpt.windowScale(6), F.TcpOpt.nop(), F.TcpOpt.nop(),
  F.TcpOpt.timestamps(0x0a0b0c0d, 0), F.TcpOpt.sackPermitted(), F.TcpOpt.eol(), F.TcpOpt.eol()]);
const nopNopTs = (v: number, e: number) => Buffer.concat([F.TcpOpt.nop(), F.TcpOpt.nop(), F.TcpOpt.timestamps(v, e)]);
const nops = (n: number) => Buffer.alloc(n, 1);
const zeros = (n: number) => Buffer.alloc(n);
const ipOptions = Buffer.from([0x01, 0x01, 0x01, 0x00]); // NOP NOP NOP EOL

/**
 * The segment's 2-byte word at payload[0..1] chosen so that the checksum
 * the builder computes for `target` comes out as 0 (sent as 0xffff by UDP):
 * the ones'-complement sum of the rest plus this word must be 0xffff.
 */
function payloadForZeroChecksum(target: PktOpts): Buffer {
  const payload = Buffer.alloc(6, 0x5a);
  payload.writeUInt16BE(0, 0);
  const f = pkt({ ...target, payload, zeroChecksum: true });
  const d = F.dissect(f);
  const seg = Buffer.from(f.subarray(d.l4, d.l4 + d.l4Len));
  seg.writeUInt16BE(0, target.proto === 'udp' ? 6 : 16);
  const sumRest = ~F.inetChecksum(F.pseudoHeader(target.src, target.dst, d.proto, d.l4Len), seg) & 0xffff;
  payload.writeUInt16BE(~sumRest & 0xffff, 0);
  return payload;
}

/** The documented TOA placement, modelled independently of the C code. */
function optionsWithToa(opts: Buffer, toa: Buffer): Buffer | null {
  if (opts.length + toa.length > 40) return null;
  let end = opts.length;
  for (let i = 0; i < opts.length;) {
    if (opts[i] === 0) { end = i; break; }
    i += opts[i] === 1 ? 1 : opts[i + 1]!;
  }
  // An EOL and everything after it become NOPs; the TOA is appended.
  return Buffer.concat([opts.subarray(0, end), nops(opts.length - end), toa]);
}

/** Deterministic PRNG (mulberry32), so a failure names a reproducible seed. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(0, 255)));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  const addr = (v6: boolean) => F.addrText(bytes(v6 ? 16 : 4));
  return { next, int, bytes, pick, addr };
}
type Rng = ReturnType<typeof rng>;

/** Valid TCP options in a random mix, padded to whole words with NOPs or EOL and zeros. */
function randomOptions(r: Rng, max = 40): Buffer {
  const parts: Buffer[] = [];
  let len = 0;
  const pool = [
    () => F.TcpOpt.mss(r.int(536, 9000)), () => F.TcpOpt.windowScale(r.int(0, 14)), () => F.TcpOpt.sackPermitted(),
    () => F.TcpOpt.timestamps(r.int(0, 0xffffffff), r.pick([0, r.int(0, 0xffffffff)])), () => F.TcpOpt.nop(),
    () => F.TcpOpt.sack(Array.from({ length: r.int(1, 3) }, () => [r.int(0, 0xffffffff), r.int(0, 0xffffffff)] as [number, number])),
  ];
  for (let n = r.int(0, 6); n > 0; n--) {
    const o = r.pick(pool)();
    if (len + o.length > max) break;
    parts.push(o);
    len += o.length;
  }
  const pad = (4 - (len % 4)) % 4;
  if (pad > 0 || (len < max && r.int(0, 4) === 0)) {
    if (r.int(0, 1) === 0 && pad > 0) parts.push(nops(pad));
    // After an EOL comes padding, zeros by RFC 9293; a sender may leave anything.
    else parts.push(F.TcpOpt.eol(), r.int(0, 3) === 0 ? r.bytes(pad > 0 ? pad - 1 : 3) : zeros(pad > 0 ? pad - 1 : 3));
  }
  return Buffer.concat(parts);
}

interface RandomFrame { opts: PktOpts; v6: boolean }

function randomFrame(r: Rng, proto?: 'tcp' | 'udp'): RandomFrame {
  const v6 = r.int(0, 1) === 1;
  const p = proto ?? r.pick(['tcp', 'udp'] as const);
  const o: PktOpts = {
    l2: { ...l2, vlans: Array.from({ length: r.int(0, 2) }, () => r.int(1, 4094)) },
    src: r.addr(v6), dst: r.addr(v6), sport: r.int(1, 65535), dport: r.int(1, 65535), proto: p,
    payload: r.bytes(r.pick([0, 1, r.int(2, 40), r.int(41, 300)])),
  };
  if (p === 'tcp') {
    Object.assign(o, { flags: r.pick([F.TCP.SYN, F.TCP.ACK, F.TCP.ACK | F.TCP.PSH, F.TCP.FIN | F.TCP.ACK]), seq: r.int(0, 0xffffffff), ack: r.int(0, 0xffffffff), options: randomOptions(r) });
  } else if (!v6 && r.int(0, 3) === 0) {
    o.zeroChecksum = true;
  }
  if (v6) o.ip6 = { hopLimit: r.int(0, 255), tc: r.int(0, 255), flowLabel: r.int(0, 0xfffff) };
  else o.ip = { ttl: r.int(0, 255), tos: r.int(0, 255), id: r.int(0, 0xffff), df: r.int(0, 1) === 1, ...(r.int(0, 4) === 0 ? { options: ipOptions } : {}) };
  return { opts: o, v6 };
}

describe('packet-rewrite primitives (BPF_PROG_TEST_RUN)', { skip }, () => {
  let obj: BpfObject;
  let ctl: RawMap;
  let progFd = 0;
  const key0 = Buffer.alloc(4);

  before(() => {
    obj = BpfObject.open({ objectPath: join(packageRoot, 'bpf/.output/fixtures/prim_test.o') });
    obj.load();
    ctl = obj.map('prim_ctl');
    progFd = obj.program('xdp_prim').fd;
  });

  after(() => obj?.close());

  function run(c: Ctl, frame: Buffer) {
    ctl.update(key0, encodeCtl(c));
    const r = testRun(progFd, { data: frame });
    const back = ctl.lookup(key0);
    assert.ok(back);
    return { verdict: r.retval, data: r.data, status: back.readInt32LE(4), result: back.readUInt16BE(54) };
  }

  interface Case { name: string; ctl: Ctl; input: Buffer; status: number; output?: Buffer }

  /** Success is XDP_TX with the expected bytes, every checksum verifying; a refusal XDP_PASS with the frame untouched. */
  function check(c: Case): void {
    const r = run(c.ctl, c.input);
    assert.equal(r.status, c.status, `${c.name}: status`);
    if (c.status === St.OK) {
      assert.equal(r.verdict, XdpAction.TX, `${c.name}: verdict`);
      assert.ok(c.output, `${c.name}: a success case names its output`);
      assert.equal(r.data.toString('hex'), c.output.toString('hex'), `${c.name}: output bytes`);
      assert.deepEqual(F.checksumErrors(r.data), [], `${c.name}: checksums verify`);
    } else {
      assert.equal(r.verdict, XdpAction.PASS, `${c.name}: verdict`);
      assert.equal(r.data.toString('hex'), c.input.toString('hex'), `${c.name}: refused frame untouched`);
    }
  }

  test('csum.h: replacing 2-, 4- and 16-byte words equals a full recomputation', () => {
    const r = rng(1624);
    const cases: { buf: Buffer; at: number; to: Buffer }[] = [];
    for (let i = 0; i < 600; i++) {
      const width = r.pick([2, 4, 16] as const);
      const words = r.int(width / 2 + 1, 40);
      const buf = r.bytes(words * 2);
      buf[0] = buf[0]! | 1; // a word no rewrite touches is never 0, as a pseudo-header's protocol
      const at = 2 * r.int(1, words - width / 2);
      cases.push({ buf, at, to: r.pick([r.bytes(width), Buffer.alloc(width), Buffer.alloc(width, 0xff)]) });
    }
    // Edges: a result of 0 (sum 0xffff) and one of 0xfffe; an input checksum of 0.
    for (const width of [2, 4, 16]) {
      const buf = r.bytes(2 + width);
      buf[0] = buf[0]! | 1;
      const rest = ~F.inetChecksum(buf.subarray(0, 2)) & 0xffff;
      const to = Buffer.alloc(width);
      to.writeUInt16BE(~rest & 0xffff, 0); // new sum 0xffff: checksum 0
      cases.push({ buf, at: 2, to });
      const to2 = Buffer.alloc(width);
      to2.writeUInt16BE((~rest + 1) & 0xffff, 0);
      cases.push({ buf, at: 2, to: to2 });
      const zero = Buffer.from(buf);
      zero.fill(0, 2);
      zero.writeUInt16BE(~rest & 0xffff, 2);
      cases.push({ buf: zero, at: 2, to: r.bytes(width) });
    }
    for (const { buf, at, to } of cases) {
      const check = F.inetChecksum(buf);
      const after = Buffer.from(buf);
      to.copy(after, at);
      const got = run({ op: Op.CSUM, check, from: buf.subarray(at, at + to.length), to }, Buffer.alloc(64));
      assert.equal(got.result, F.inetChecksum(after), `replace ${buf.subarray(at, at + to.length).toString('hex')} -> ${to.toString('hex')} in ${buf.toString('hex')} (check ${check.toString(16)})`);
    }
  });

  test('rewrite.h: address and port rewrites (table)', () => {
    const tcp4 = { src: CLIENT4, dst: VIP4 };
    const tcp6 = { src: CLIENT6, dst: VIP6 };
    const udp4 = { ...tcp4, proto: 'udp' as const, sport: 5353, dport: 53, payload: Buffer.from('query') };
    const udp6 = { ...tcp6, proto: 'udp' as const, sport: 5353, dport: 53, payload: Buffer.from('query') };
    const dnat = (addr: string, port: number): Ctl => ({ op: Op.REWRITE_DST, addr, port });
    const snat = (addr: string, port: number): Ctl => ({ op: Op.REWRITE_SRC, addr, port });
    const udp4Zero = { dst: RS4, dport: 53 };
    const udp4ZeroPayload = payloadForZeroChecksum({ ...udp4, ...udp4Zero });
    const udp6ZeroPayload = payloadForZeroChecksum({ ...udp6, dst: RS6 });
    const tcp4ZeroPayload = payloadForZeroChecksum({ ...tcp4, dst: RS4, dport: 8080 });
    const tcp6ZeroPayload = payloadForZeroChecksum({ ...tcp6, src: LADDR6, sport: 5000 });
    const withOpts = { options: linuxSyn, payload: Buffer.from('GET / HTTP/1.0\r\n\r\n') };
    const vlan1 = { l2: { ...l2, vlans: [100] } };
    const vlan2 = { l2: { ...l2, vlans: [100, 200] } };
    const frag = pkt({ ...tcp4, ip: { mf: true } });
    const icmp = Buffer.concat([F.eth(l2), F.ipv4({ src: CLIENT4, dst: VIP4, proto: 1, payloadLen: 8 }), Buffer.alloc(8)]);
    const hopByHop = Buffer.concat([F.eth({ ...l2, type: 0x86dd }), F.ipv6({ src: CLIENT6, dst: VIP6, nextHeader: 0, payloadLen: 8 }), Buffer.from([6, 0, 1, 4, 0, 0, 0, 0])]);

    const l4check = (f: Buffer) => { const d = F.dissect(f); return f.readUInt16BE(d.l4 + (d.proto === 6 ? 16 : 6)); };
    assert.equal(l4check(pkt({ ...udp4, ...udp4Zero, payload: udp4ZeroPayload })), 0xffff, 'the UDP/IPv4 edge case computes 0');
    assert.equal(l4check(pkt({ ...udp6, dst: RS6, payload: udp6ZeroPayload })), 0xffff, 'the UDP/IPv6 edge case computes 0');
    assert.equal(l4check(pkt({ ...tcp4, dst: RS4, dport: 8080, payload: tcp4ZeroPayload })), 0, 'the TCP/IPv4 edge case computes 0');
    assert.equal(l4check(pkt({ ...tcp6, src: LADDR6, sport: 5000, payload: tcp6ZeroPayload })), 0, 'the TCP/IPv6 edge case computes 0');

    const cases: Case[] = [
      { name: 'IPv4 TCP: NAT destination VIP:80 -> RS:8080', ctl: dnat(RS4, 8080), input: pkt(tcp4), status: St.OK, output: pkt({ ...tcp4, dst: RS4, dport: 8080 }) },
      { name: 'IPv4 TCP: FULLNAT source client -> local address, port 40000 -> 5000', ctl: snat(LADDR4, 5000), input: pkt(tcp4), status: St.OK, output: pkt({ ...tcp4, src: LADDR4, sport: 5000 }) },
      { name: 'IPv4 TCP: the port alone', ctl: dnat(VIP4, 8080), input: pkt(tcp4), status: St.OK, output: pkt({ ...tcp4, dport: 8080 }) },
      { name: 'IPv4 TCP: the address alone', ctl: dnat(RS4, 80), input: pkt(tcp4), status: St.OK, output: pkt({ ...tcp4, dst: RS4 }) },
      { name: 'IPv4 TCP with options (MSS, SACK-permitted, timestamps, window scale) and data', ctl: dnat(RS4, 8080), input: pkt({ ...tcp4, ...withOpts }), status: St.OK, output: pkt({ ...tcp4, ...withOpts, dst: RS4, dport: 8080 }) },
      { name: 'IPv4 TCP with IP options', ctl: dnat(RS4, 80), input: pkt({ ...tcp4, ip: { options: ipOptions } }), status: St.OK, output: pkt({ ...tcp4, dst: RS4, ip: { options: ipOptions } }) },
      { name: 'IPv4 TCP in an 802.1Q tag', ctl: snat(LADDR4, 5000), input: pkt({ ...tcp4, ...vlan1 }), status: St.OK, output: pkt({ ...tcp4, ...vlan1, src: LADDR4, sport: 5000 }) },
      { name: 'IPv4 TCP: a full checksum of 0 stays 0 (TCP has no "none")', ctl: dnat(RS4, 8080), input: pkt({ ...tcp4, payload: tcp4ZeroPayload }), status: St.OK, output: pkt({ ...tcp4, payload: tcp4ZeroPayload, dst: RS4, dport: 8080 }) },
      { name: 'IPv4 UDP', ctl: dnat(RS4, 5300), input: pkt(udp4), status: St.OK, output: pkt({ ...udp4, dst: RS4, dport: 5300 }) },
      { name: 'IPv4 UDP without checksum (0) keeps none', ctl: dnat(RS4, 5300), input: pkt({ ...udp4, zeroChecksum: true }), status: St.OK, output: pkt({ ...udp4, zeroChecksum: true, dst: RS4, dport: 5300 }) },
      { name: 'IPv4 UDP: a computed 0 is sent as 0xffff', ctl: dnat(RS4, 53), input: pkt({ ...udp4, payload: udp4ZeroPayload }), status: St.OK, output: pkt({ ...udp4, ...udp4Zero, payload: udp4ZeroPayload }) },
      { name: 'IPv4 UDP in two VLAN tags', ctl: snat(LADDR4, 6000), input: pkt({ ...udp4, ...vlan2 }), status: St.OK, output: pkt({ ...udp4, ...vlan2, src: LADDR4, sport: 6000 }) },
      { name: 'IPv6 TCP: NAT destination', ctl: dnat(RS6, 8080), input: pkt(tcp6), status: St.OK, output: pkt({ ...tcp6, dst: RS6, dport: 8080 }) },
      { name: 'IPv6 TCP: FULLNAT source', ctl: snat(LADDR6, 5000), input: pkt(tcp6), status: St.OK, output: pkt({ ...tcp6, src: LADDR6, sport: 5000 }) },
      { name: 'IPv6 TCP with options and data', ctl: dnat(RS6, 80), input: pkt({ ...tcp6, ...withOpts }), status: St.OK, output: pkt({ ...tcp6, ...withOpts, dst: RS6 }) },
      { name: 'IPv6 TCP: a full checksum of 0 stays 0', ctl: snat(LADDR6, 5000), input: pkt({ ...tcp6, payload: tcp6ZeroPayload }), status: St.OK, output: pkt({ ...tcp6, payload: tcp6ZeroPayload, src: LADDR6, sport: 5000 }) },
      { name: 'IPv6 TCP in two VLAN tags', ctl: dnat(RS6, 443), input: pkt({ ...tcp6, ...vlan2 }), status: St.OK, output: pkt({ ...tcp6, ...vlan2, dst: RS6, dport: 443 }) },
      { name: 'IPv6 UDP', ctl: dnat(RS6, 5300), input: pkt(udp6), status: St.OK, output: pkt({ ...udp6, dst: RS6, dport: 5300 }) },
      { name: 'IPv6 UDP: a computed 0 is sent as 0xffff', ctl: dnat(RS6, 53), input: pkt({ ...udp6, payload: udp6ZeroPayload }), status: St.OK, output: pkt({ ...udp6, dst: RS6, payload: udp6ZeroPayload }) },
      { name: 'IPv6 UDP with a zero checksum is refused (RFC 8200 makes it mandatory)', ctl: dnat(RS6, 53), input: pkt({ ...udp6, zeroChecksum: true }), status: St.ENOCSUM },
      { name: 'Ethernet padding after the IP packet is kept', ctl: dnat(RS4, 80), input: Buffer.concat([pkt(tcp4), zeros(6)]), status: St.OK, output: Buffer.concat([pkt({ ...tcp4, dst: RS4 }), zeros(6)]) },
      { name: 'an IPv6 address for an IPv4 packet is refused', ctl: dnat(RS6, 80), input: pkt(tcp4), status: St.EARG },
      { name: 'IPv4 first fragment is refused', ctl: dnat(RS4, 80), input: frag, status: St.EPROTO },
      { name: 'IPv4 later fragment is refused', ctl: dnat(RS4, 80), input: pkt({ ...tcp4, ip: { fragOffset: 10 } }), status: St.EPROTO },
      { name: 'ICMP is refused', ctl: dnat(RS4, 80), input: icmp, status: St.EPROTO },
      { name: 'IPv6 with an extension header is refused', ctl: dnat(RS6, 80), input: hopByHop, status: St.EPROTO },
      { name: 'IPv4 ethertype carrying version 6 is refused', ctl: dnat(RS4, 80), input: (() => { const f = pkt(tcp4); f[14] = 0x65; return f; })(), status: St.EPROTO },
      { name: 'ARP is not IP', ctl: dnat(RS4, 80), input: Buffer.concat([F.eth({ ...l2, type: 0x0806 }), zeros(28)]), status: St.NOT_IP },
    ];
    for (const c of cases) check(c);
  });

  test('rewrite.h: TTL and hop-limit decrement (table)', () => {
    const ttl = { op: Op.TTL };
    const v4 = (t: number, extra: PktOpts['ip'] = {}) => pkt({ src: CLIENT4, dst: VIP4, ip: { ttl: t, ...extra } });
    const v6 = (h: number) => pkt({ src: CLIENT6, dst: VIP6, ip6: { hopLimit: h } });
    const cases: Case[] = [
      { name: 'IPv4 TTL 64 -> 63', ctl: ttl, input: v4(64), status: St.OK, output: v4(63) },
      { name: 'IPv4 TTL 255 -> 254', ctl: ttl, input: v4(255), status: St.OK, output: v4(254) },
      { name: 'IPv4 TTL 2 -> 1', ctl: ttl, input: v4(2), status: St.OK, output: v4(1) },
      { name: 'IPv4 with options', ctl: ttl, input: v4(64, { options: ipOptions }), status: St.OK, output: v4(63, { options: ipOptions }) },
      { name: 'IPv4 fragments are decremented too', ctl: ttl, input: v4(64, { mf: true }), status: St.OK, output: v4(63, { mf: true }) },
      { name: 'IPv4 TTL 1 is refused', ctl: ttl, input: v4(1), status: St.ETTL },
      { name: 'IPv4 TTL 0 is refused', ctl: ttl, input: v4(0), status: St.ETTL },
      { name: 'IPv6 hop limit 64 -> 63', ctl: ttl, input: v6(64), status: St.OK, output: v6(63) },
      { name: 'IPv6 hop limit 1 is refused', ctl: ttl, input: v6(1), status: St.ETTL },
      { name: 'IPv6 in a VLAN tag', ctl: ttl, input: pkt({ src: CLIENT6, dst: VIP6, l2: { ...l2, vlans: [7] }, ip6: { hopLimit: 9 } }), status: St.OK, output: pkt({ src: CLIENT6, dst: VIP6, l2: { ...l2, vlans: [7] }, ip6: { hopLimit: 8 } }) },
    ];
    for (const c of cases) check(c);
    for (let t = 0; t < 256; t++) check({ name: `IPv4 TTL ${t}`, ctl: ttl, input: v4(t, { id: t * 257 }), status: t > 1 ? St.OK : St.ETTL, output: v4(t - 1, { id: t * 257 }) });
  });

  test('hdrmove.h: TOA insertion (table)', () => {
    const tcp4 = { src: CLIENT4, dst: RS4, sport: 40000, dport: 80 };
    const tcp6 = { src: CLIENT6, dst: RS6, sport: 40000, dport: 80 };
    const toa4 = (addr = CLIENT4, port = 40000): Ctl => ({ op: Op.TOA, addr, port });
    const toa6 = (addr = CLIENT6, port = 40000): Ctl => ({ op: Op.TOA, addr, port });
    const T4 = F.TcpOpt.toa(40000, CLIENT4);
    const T6 = F.TcpOpt.toa(40000, CLIENT6);
    const data = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const ack = { flags: F.TCP.ACK | F.TCP.PSH, payload: data };
    const o = (...b: Buffer[]) => Buffer.concat(b);
    const with4 = (p: PktOpts, opts: Buffer) => pkt({ ...p, options: opts });

    assert.equal(T4.toString('hex'), 'fe089c40cb007107', 'TOA for IPv4: kind 254, length 8, port, address');
    assert.equal(T6.toString('hex'), 'fe149c4020010db8000c00000000000000000007', 'TOA for IPv6: kind 254, length 20, port, address');

    const cases: Case[] = [
      { name: 'IPv4 SYN without options', ctl: toa4(), input: pkt(tcp4), status: St.OK, output: with4(tcp4, T4) },
      { name: 'IPv4 SYN with Linux options (MSS, SACK-permitted, timestamps, NOP, window scale)', ctl: toa4(), input: with4(tcp4, linuxSyn), status: St.OK, output: with4(tcp4, o(linuxSyn, T4)) },
      { name: 'IPv4 data segment with NOP NOP timestamps keeps its payload', ctl: toa4(), input: pkt({ ...tcp4, ...ack, options: nopNopTs(1, 2) }), status: St.OK, output: pkt({ ...tcp4, ...ack, options: o(nopNopTs(1, 2), T4) }) },
      { name: 'zero bytes inside the timestamps are data, not EOL', ctl: toa4(), input: with4(tcp4, nopNopTs(0, 0)), status: St.OK, output: with4(tcp4, o(nopNopTs(0, 0), T4)) },
      { name: 'IPv4 with SACK blocks', ctl: toa4(), input: with4(tcp4, o(nops(2), F.TcpOpt.sack([[1, 2], [3, 4]]))), status: St.OK, output: with4(tcp4, o(nops(2), F.TcpOpt.sack([[1, 2], [3, 4]]), T4)) },
      { name: 'IPv4 with IP options, in two VLAN tags', ctl: toa4(), input: pkt({ ...tcp4, l2: { ...l2, vlans: [1, 2] }, ip: { options: ipOptions }, options: linuxSyn }), status: St.OK, output: pkt({ ...tcp4, l2: { ...l2, vlans: [1, 2] }, ip: { options: ipOptions }, options: o(linuxSyn, T4) }) },
      { name: 'macOS options ending in EOL EOL: the EOLs become NOPs, TOA after', ctl: toa4(), input: with4(tcp4, macSyn), status: St.OK, output: with4(tcp4, o(macSyn.subarray(0, 22), nops(2), T4)) },
      { name: 'an aligned EOL and its padding become NOPs', ctl: toa4(), input: with4(tcp4, o(F.TcpOpt.mss(1400), F.TcpOpt.eol(), zeros(3))), status: St.OK, output: with4(tcp4, o(F.TcpOpt.mss(1400), nops(4), T4)) },
      { name: 'an unaligned EOL and a padding word after it become NOPs', ctl: toa4(), input: with4(tcp4, o(F.TcpOpt.windowScale(7), F.TcpOpt.eol(), zeros(4))), status: St.OK, output: with4(tcp4, o(F.TcpOpt.windowScale(7), nops(5), T4)) },
      { name: 'non-zero bytes after an EOL become NOPs too', ctl: toa4(), input: with4(tcp4, o(F.TcpOpt.windowScale(7), F.TcpOpt.eol(), Buffer.from([9, 9, 9, 9]))), status: St.OK, output: with4(tcp4, o(F.TcpOpt.windowScale(7), nops(5), T4)) },
      { name: 'an EOL first: TOA is the only option seen', ctl: toa4(), input: with4(tcp4, o(F.TcpOpt.eol(), zeros(3))), status: St.OK, output: with4(tcp4, o(nops(4), T4)) },
      { name: 'IPv6 TOA after an EOL in IPv6', ctl: toa6(), input: with4(tcp6, o(F.TcpOpt.mss(1400), F.TcpOpt.nop(), F.TcpOpt.eol(), zeros(2), nopNopTs(1, 2))), status: St.OK, output: with4(tcp6, o(F.TcpOpt.mss(1400), nops(16), T6)) },
      { name: 'IPv4: 32 bytes of options + 8 fills the 40 exactly', ctl: toa4(), input: with4(tcp4, o(linuxSyn, nopNopTs(5, 6))), status: St.OK, output: with4(tcp4, o(linuxSyn, nopNopTs(5, 6), T4)) },
      { name: 'IPv4: 36 bytes of options leave no room for 8', ctl: toa4(), input: with4(tcp4, o(linuxSyn, nopNopTs(5, 6), nops(4))), status: St.ENOSPC },
      { name: 'IPv4: 40 bytes of options leave no room', ctl: toa4(), input: with4(tcp4, o(linuxSyn, nopNopTs(5, 6), nops(8))), status: St.ENOSPC },
      { name: 'Ethernet padding after the IP packet stays at the end', ctl: toa4(), input: Buffer.concat([pkt({ ...tcp4, flags: F.TCP.ACK }), zeros(6)]), status: St.OK, output: Buffer.concat([pkt({ ...tcp4, flags: F.TCP.ACK, options: T4 }), zeros(6)]) },
      { name: 'IPv6 SYN without options', ctl: toa6(), input: pkt(tcp6), status: St.OK, output: with4(tcp6, T6) },
      { name: 'IPv6 SYN with Linux options: 20 + 20 fills the 40 exactly', ctl: toa6(), input: with4(tcp6, linuxSyn), status: St.OK, output: with4(tcp6, o(linuxSyn, T6)) },
      { name: 'IPv6 data segment in a VLAN tag', ctl: toa6(), input: pkt({ ...tcp6, ...ack, l2: { ...l2, vlans: [42] }, options: nopNopTs(7, 8) }), status: St.OK, output: pkt({ ...tcp6, ...ack, l2: { ...l2, vlans: [42] }, options: o(nopNopTs(7, 8), T6) }) },
      { name: 'IPv6: macOS options (24) leave no room for 20', ctl: toa6(), input: with4(tcp6, macSyn), status: St.ENOSPC },
      { name: 'an IPv6 client address in an IPv4 packet (NAT64)', ctl: toa6(), input: with4(tcp4, linuxSyn), status: St.OK, output: with4(tcp4, o(linuxSyn, T6)) },
      { name: 'an IPv4 client address in an IPv6 packet', ctl: toa4(), input: with4(tcp6, nopNopTs(1, 1)), status: St.OK, output: with4(tcp6, o(nopNopTs(1, 1), T4)) },
      { name: 'a TOA already present (a client could forge it) is refused', ctl: toa4(), input: with4(tcp4, o(nops(4), F.TcpOpt.toa(1, '1.2.3.4'))), status: St.EEXIST },
      { name: 'a TOA already present is reported before a lack of room', ctl: toa6(), input: with4(tcp4, o(linuxSyn, F.TcpOpt.toa(1, '1.2.3.4'))), status: St.EEXIST },
      { name: 'an option of length 0 is refused', ctl: toa4(), input: with4(tcp4, Buffer.from([2, 0, 5, 0xb4])), status: St.EBOUNDS },
      { name: 'an option of length 1 is refused', ctl: toa4(), input: with4(tcp4, Buffer.from([3, 1, 1, 1])), status: St.EBOUNDS },
      { name: 'an option longer than the whole option space is refused', ctl: toa4(), input: with4(tcp4, Buffer.from([2, 64, 1, 1])), status: St.EBOUNDS },
      { name: 'an option of length 255 is refused', ctl: toa4(), input: with4(tcp4, o(nops(4), Buffer.from([8, 255, 1, 1]))), status: St.EBOUNDS },
      { name: 'an option running past the header is refused', ctl: toa4(), input: with4(tcp4, Buffer.from([1, 8, 10, 0, 0, 0, 0, 0])), status: St.EBOUNDS },
      { name: 'UDP is refused', ctl: toa4(), input: pkt({ ...tcp4, proto: 'udp' }), status: St.EPROTO },
      { name: 'a fragment is refused', ctl: toa4(), input: pkt({ ...tcp4, ip: { mf: true } }), status: St.EPROTO },
    ];
    for (const c of cases) check(c);
  });

  test('hdrmove.h: opening room at an offset (table)', () => {
    const f = pkt({ src: CLIENT4, dst: VIP4, payload: Buffer.from('payload') });
    const big = pkt({ src: CLIENT6, dst: VIP6, options: linuxSyn, payload: zeros(200) });
    const room = (at: number, n: number): Ctl => ({ op: Op.OPEN_ROOM, at, room: n });
    const open = (frame: Buffer, at: number, n: number) => Buffer.concat([frame.subarray(0, at), Buffer.alloc(n, 0xaa), frame.subarray(at)]);
    const cases: Case[] = [
      { name: 'after the Ethernet header (as IPIP needs)', ctl: room(14, 20), input: f, status: St.OK, output: open(f, 14, 20) },
      { name: 'at the front', ctl: room(0, 4), input: f, status: St.OK, output: open(f, 0, 4) },
      { name: 'an odd offset and size', ctl: room(33, 7), input: f, status: St.OK, output: open(f, 33, 7) },
      { name: 'at the end of the frame', ctl: room(f.length, 8), input: f, status: St.OK, output: open(f, f.length, 8) },
      { name: 'the longest prefix (142 bytes)', ctl: room(HDRMOVE_MAX, 20), input: big, status: St.OK, output: open(big, HDRMOVE_MAX, 20) },
      { name: 'the most room (64)', ctl: room(54, 64), input: f, status: St.OK, output: open(f, 54, 64) },
      { name: 'beyond the frame is refused', ctl: room(f.length + 1, 8), input: f, status: St.EBOUNDS },
      { name: 'a prefix over 142 bytes is refused', ctl: room(HDRMOVE_MAX + 1, 8), input: big, status: St.EARG },
      { name: 'no room is refused', ctl: room(14, 0), input: f, status: St.EARG },
      { name: 'more than 64 bytes is refused', ctl: room(14, 65), input: f, status: St.EARG },
    ];
    for (const c of cases) {
      const r = run(c.ctl, c.input);
      assert.equal(r.status, c.status, `${c.name}: status`);
      assert.equal(r.verdict, c.status === St.OK ? XdpAction.TX : XdpAction.PASS, `${c.name}: verdict`);
      assert.equal(r.data.toString('hex'), (c.output ?? c.input).toString('hex'), `${c.name}: output bytes`);
    }
  });

  test('malformed headers are refused untouched by every primitive', () => {
    const base = pkt({ src: CLIENT4, dst: VIP4, options: linuxSyn });
    const base6 = pkt({ src: CLIENT6, dst: VIP6, options: linuxSyn });
    const patched = (f: Buffer, at: number, bytes: number[]) => {
      const out = Buffer.from(f);
      bytes.forEach((b, i) => { out[at + i] = b; });
      return out;
    };
    const frames: [string, Buffer][] = [
      ['IHL below 5', patched(base, 14, [0x44])],
      ['IHL 15 beyond the frame', patched(base, 14, [0x4f])],
      ['IPv4 total length beyond the frame', patched(base, 16, [0x05, 0xdc])],
      ['IPv4 total length below the header length', patched(base, 16, [0x00, 0x10])],
      ['IPv4 total length cutting the TCP header short', patched(base, 16, [0x00, 20 + 12])],
      ['TCP data offset below 5', patched(base, 14 + 20 + 12, [0x40])],
      ['TCP data offset beyond the IP length', patched(base, 14 + 20 + 12, [0xf0])],
      ['IPv6 payload length beyond the frame', patched(base6, 14 + 4, [0x05, 0xdc])],
      ['IPv6 payload length 0 (jumbogram)', patched(base6, 14 + 4, [0, 0])],
      ['IPv6 payload length cutting the TCP header short', patched(base6, 14 + 4, [0, 12])],
    ];
    for (const [name, input] of frames) {
      const addr = F.isIp6(F.addrText(F.dissect(input).src)) ? RS6 : RS4;
      for (const c of [{ op: Op.REWRITE_DST, addr, port: 80 }, { op: Op.TOA, addr: CLIENT4, port: 1 }]) {
        const r = run(c, input);
        assert.ok(r.status < 0, `${name}, op ${c.op}: refused (status ${r.status})`);
        assert.equal(r.verdict, XdpAction.PASS, `${name}, op ${c.op}: verdict`);
        assert.equal(r.data.toString('hex'), input.toString('hex'), `${name}, op ${c.op}: untouched`);
      }
    }
  });

  test('truncated frames are refused untouched by every primitive, at every length', () => {
    const frames = [
      pkt({ src: CLIENT4, dst: VIP4, options: linuxSyn, payload: Buffer.from('abc') }),
      pkt({ src: CLIENT6, dst: VIP6, options: macSyn, l2: { ...l2, vlans: [5, 6] } }),
      pkt({ src: CLIENT4, dst: VIP4, proto: 'udp', l2: { ...l2, vlans: [5] }, payload: Buffer.from('q') }),
      pkt({ src: CLIENT6, dst: VIP6, proto: 'udp' }),
    ];
    for (const full of frames) {
      const v6 = F.dissect(full).family === 6;
      const ops: Ctl[] = [
        { op: Op.REWRITE_DST, addr: v6 ? RS6 : RS4, port: 8080 },
        { op: Op.REWRITE_SRC, addr: v6 ? LADDR6 : LADDR4, port: 5000 },
        { op: Op.TTL },
        { op: Op.TOA, addr: CLIENT4, port: 1 },
        { op: Op.TOA, addr: CLIENT6, port: 1 },
        { op: Op.TUPLE, from: F.ipAddr(v6 ? LADDR6 : LADDR4), sport: 5000, addr: v6 ? RS6 : RS4, port: 8080, ttl: true },
      ];
      // BPF_PROG_TEST_RUN wants at least an Ethernet header.
      for (let len = 14; len < full.length; len++) {
        const input = Buffer.from(full.subarray(0, len));
        for (const c of ops) {
          const r = run(c, input);
          assert.ok(r.status !== St.OK, `cut at ${len}/${full.length}, op ${c.op}: refused`);
          assert.equal(r.verdict, XdpAction.PASS, `cut at ${len}, op ${c.op}: verdict`);
          assert.equal(r.data.toString('hex'), input.toString('hex'), `cut at ${len}, op ${c.op}: untouched`);
        }
      }
    }
  });

  test('random address/port rewrites on random frames match a full recomputation', () => {
    const seed = 20240607;
    const r = rng(seed);
    for (let i = 0; i < 1500; i++) {
      const { opts, v6 } = randomFrame(r);
      const input = pkt(opts);
      const dir = r.pick(['src', 'dst'] as const);
      const addr = r.int(0, 5) === 0 ? (dir === 'src' ? opts.src : opts.dst) : r.addr(v6);
      const port = r.int(0, 5) === 0 ? (dir === 'src' ? opts.sport! : opts.dport!) : r.int(0, 65535);
      const want = pkt(dir === 'src' ? { ...opts, src: addr, sport: port } : { ...opts, dst: addr, dport: port });
      const name = `seed ${seed} #${i}: ${opts.proto}${v6 ? '6' : '4'} ${dir} -> [${addr}]:${port}`;
      check({ name, ctl: { op: dir === 'src' ? Op.REWRITE_SRC : Op.REWRITE_DST, addr, port }, input, status: St.OK, output: want });
    }
  });

  test('random one-pass rewrites of both sides (and the TTL) on random frames match a full recomputation', () => {
    const seed = 4242;
    const r = rng(seed);
    for (let i = 0; i < 1500; i++) {
      const { opts, v6 } = randomFrame(r);
      const input = pkt(opts);
      const src = r.int(0, 5) === 0 ? opts.src : r.addr(v6);
      const dst = r.int(0, 5) === 0 ? opts.dst : r.addr(v6);
      const sport = r.int(0, 65535);
      const dport = r.int(0, 65535);
      const ttl = r.int(0, 1) === 1;
      const hop = v6 ? opts.ip6!.hopLimit! : opts.ip!.ttl!;
      const moved = { ...opts, src, dst, sport, dport };
      const want = !ttl ? moved : v6 ? { ...moved, ip6: { ...opts.ip6, hopLimit: hop - 1 } } : { ...moved, ip: { ...opts.ip, ttl: hop - 1 } };
      const name = `seed ${seed} #${i}: ${opts.proto}${v6 ? '6' : '4'} -> [${src}]:${sport} [${dst}]:${dport}${ttl ? ` TTL ${hop}` : ''}`;
      const ctl: Ctl = { op: Op.TUPLE, from: F.ipAddr(src), sport, addr: dst, port: dport, ttl };
      // TTL 1 or 0: refused before anything is written.
      if (ttl && hop <= 1) check({ name, ctl, input, status: St.ETTL });
      else check({ name, ctl, input, status: St.OK, output: pkt(want) });
    }
  });

  test('random TOA insertions and TTL decrements on random frames match a full recomputation', () => {
    const seed = 254;
    const r = rng(seed);
    for (let i = 0; i < 800; i++) {
      const { opts, v6 } = randomFrame(r, 'tcp');
      const input = pkt(opts);
      const client = r.addr(r.int(0, 1) === 1);
      const cport = r.int(0, 65535);
      const toOpts = optionsWithToa(opts.options!, F.TcpOpt.toa(cport, client));
      const name = `seed ${seed} #${i}: tcp${v6 ? '6' : '4'} options ${opts.options!.toString('hex')} + TOA [${client}]:${cport}`;
      if (toOpts === null) check({ name, ctl: { op: Op.TOA, addr: client, port: cport }, input, status: St.ENOSPC });
      else check({ name, ctl: { op: Op.TOA, addr: client, port: cport }, input, status: St.OK, output: pkt({ ...opts, options: toOpts }) });

      const hop = v6 ? opts.ip6!.hopLimit! : opts.ip!.ttl!;
      const dec = v6 ? { ...opts, ip6: { ...opts.ip6, hopLimit: hop - 1 } } : { ...opts, ip: { ...opts.ip, ttl: hop - 1 } };
      check({ name: `seed ${seed} #${i}: TTL ${hop}`, ctl: { op: Op.TTL }, input, status: hop > 1 ? St.OK : St.ETTL, ...(hop > 1 ? { output: pkt(dec) } : {}) });
    }
  });
});
