// ICMP and ICMPv6 errors about LVS-NAT flows, through BPF_PROG_TEST_RUN:
// from the server side about a DNATed packet, to the client about what it
// sent to the VIP; from the client side about a reply, to the real server
// about what it sent. Every expected frame is built from scratch here: the
// translated error must quote exactly the packet the other end sent (its
// transport checksum included where the quote holds it), with every
// checksum computed independently. Then errors about no flow, malformed and
// truncated ones, a TTL that runs out, and mutated errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdpAction } from '../src/loader/index.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const fromClientSide = HOP.fromClient;
const fromServerSide = HOP.fromRs1;
const toReal = HOP.toRs1;
const { toClient } = HOP;
const RPORT = 8080;
/** A router on the server side (IPv4, IPv6) that sends errors about what the director forwarded. */
const SRV_ROUTER = '192.0.2.254';
const SRV_ROUTER6 = '2001:db8::fe';
/** A router on the client side. */
const CLI_ROUTER = '203.0.113.1';
const CLI_ROUTER6 = '2001:db8:ff::1';

interface Seg { sport: number; flags?: number; payload?: Buffer; proto?: 'tcp' | 'udp'; v6?: boolean; ttl?: number }
const addrs = (v6?: boolean) => (v6
  ? { client: ADDR.client6, vip: ADDR.vip6, rs: ADDR.rs6 }
  : { client: ADDR.client, vip: ADDR.vip, rs: ADDR.rs1 });
const ttlOf = (s: Seg) => (s.v6 ? { ip6: { hopLimit: s.ttl ?? 64 } } : { ip: { ttl: s.ttl ?? 64 } });
const seg = (s: Seg) => ({ flags: s.flags ?? F.TCP.SYN, proto: s.proto ?? 'tcp', ...(s.payload ? { payload: s.payload } : {}), ...ttlOf(s) });

/** client -> VIP:80, as the client sent it. */
const inbound = (s: Seg) => F.frame({ l2: fromClientSide, src: addrs(s.v6).client, dst: addrs(s.v6).vip, sport: s.sport, dport: 80, ...seg(s) });
/** The same after the director: client -> RIP:8080. */
const dnatted = (s: Seg) => F.frame({ l2: toReal, src: addrs(s.v6).client, dst: addrs(s.v6).rs, sport: s.sport, dport: RPORT, ...seg(s) });
/** A reply as the real server sent it: RIP:8080 -> client. */
const reply = (s: Seg) => F.frame({ l2: fromServerSide, src: addrs(s.v6).rs, dst: addrs(s.v6).client, sport: RPORT, dport: s.sport, ...seg(s) });
/** The same after the director: VIP:80 -> client. */
const unnatted = (s: Seg) => F.frame({ l2: toClient, src: addrs(s.v6).vip, dst: addrs(s.v6).client, sport: 80, dport: s.sport, ...seg(s) });

const V4 = { unreach: 3, fragNeeded: 4, portUnreach: 3, hostUnreach: 1, timeExceeded: 11 } as const;
const V6 = { unreach: 1, portUnreach: 4, tooBig: 2, timeExceeded: 3 } as const;

describe('ICMP errors about NAT flows (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const hex = (b: Buffer) => b.toString('hex');
  const count = (name: string) => t.director.counters()[name as 'rx'] ?? 0;
  /** Opens a flow with the client's SYN (and the server's SYN-ACK for TCP). */
  const open = (s: Seg) => {
    t.expect(inbound(s), XdpAction.TX, dnatted(s), 'the flow\'s first packet');
  };

  before(async () => {
    t = directorNs('xvs-pi');
    for (const [addr, real, proto] of [[ADDR.vip, ADDR.rs1, 'tcp'], [ADDR.vip, ADDR.rs1, 'udp'], [ADDR.vip6, ADDR.rs6, 'tcp']] as const) {
      await t.director.addService({ proto, addr, port: 80, scheduler: 'rr' });
      await t.addReal({ proto, addr, port: 80 }, { addr: real, port: RPORT, fwd: 'nat', weight: 1 });
    }
  });

  after(() => {
    t?.close();
  });

  test('fragmentation needed from a router on the server side reaches the client about the VIP (IPv4)', () => {
    const s = { sport: 41000, flags: F.TCP.ACK | F.TCP.PSH, payload: Buffer.alloc(1200, 0x61) };
    open({ sport: 41000 });
    // Linux routers quote up to 576 bytes of IP; RFC 792 asks for the header and 8 bytes.
    for (const n of [548, 28, 20 + 18, 20 + 17]) {
      const before = count('icmp_xlat');
      const err = F.icmpError({ l2: fromServerSide, src: SRV_ROUTER, dst: ADDR.client, type: V4.unreach, code: V4.fragNeeded, rest: 1280, quote: F.quoteOf(dnatted(s), n) });
      const quote = F.quoteOf(inbound(s), n);
      // Half a TCP checksum is left as it was: nothing can correct half of one.
      if (n === 20 + 17) quote[36] = F.quoteOf(dnatted(s))[36]!;
      const want = F.icmpError({ l2: toClient, src: SRV_ROUTER, dst: ADDR.client, type: V4.unreach, code: V4.fragNeeded, rest: 1280, quote, ttl: 63 });
      t.expect(err, XdpAction.TX, want, `a ${n}-byte quote`);
      assert.equal(count('icmp_xlat') - before, 1);
    }
  });

  test('the real server\'s own port unreachable (UDP) comes from the VIP, about the VIP', () => {
    const s = { sport: 5300, proto: 'udp' as const, payload: Buffer.from('query') };
    open(s);
    const err = F.icmpError({ l2: fromServerSide, src: ADDR.rs1, dst: ADDR.client, type: V4.unreach, code: V4.portUnreach, quote: F.quoteOf(dnatted(s)) });
    const want = F.icmpError({ l2: toClient, src: ADDR.vip, dst: ADDR.client, type: V4.unreach, code: V4.portUnreach, quote: F.quoteOf(inbound(s)), ttl: 63 });
    t.expect(err, XdpAction.TX, want, 'port unreachable');
  });

  test('a UDP quote without a checksum keeps none', () => {
    const s = { sport: 5301, proto: 'udp' as const, payload: Buffer.from('q') };
    open(s);
    const noSum = (f: Buffer) => { const q = F.quoteOf(f); q.writeUInt16BE(0, 20 + 6); return q; };
    const err = F.icmpError({ l2: fromServerSide, src: ADDR.rs1, dst: ADDR.client, type: V4.unreach, code: V4.portUnreach, quote: noSum(dnatted(s)) });
    const want = F.icmpError({ l2: toClient, src: ADDR.vip, dst: ADDR.client, type: V4.unreach, code: V4.portUnreach, quote: noSum(inbound(s)), ttl: 63 });
    t.expect(err, XdpAction.TX, want, 'no UDP checksum');
  });

  test('ICMPv6 packet too big from a router on the server side reaches the client about the VIP', () => {
    const s = { sport: 42000, flags: F.TCP.ACK, payload: Buffer.alloc(1400, 0x62), v6: true };
    open({ sport: 42000, v6: true });
    for (const n of [1232, 48]) {
      const err = F.icmpError({ l2: fromServerSide, src: SRV_ROUTER6, dst: ADDR.client6, type: V6.tooBig, code: 0, rest: 1280, quote: F.quoteOf(dnatted(s), n) });
      const want = F.icmpError({ l2: toClient, src: SRV_ROUTER6, dst: ADDR.client6, type: V6.tooBig, code: 0, rest: 1280, quote: F.quoteOf(inbound(s), n), ttl: 63 });
      t.expect(err, XdpAction.TX, want, `a ${n}-byte quote`);
    }
    // The real server's own error (an unreachable port) comes from the VIP.
    const err = F.icmpError({ l2: fromServerSide, src: ADDR.rs6, dst: ADDR.client6, type: V6.unreach, code: V6.portUnreach, quote: F.quoteOf(dnatted(s)) });
    const want = F.icmpError({ l2: toClient, src: ADDR.vip6, dst: ADDR.client6, type: V6.unreach, code: V6.portUnreach, quote: F.quoteOf(inbound(s)), ttl: 63 });
    t.expect(err, XdpAction.TX, want, 'the real server\'s own');
  });

  test('an error from the client side about a reply reaches the real server about what it sent', () => {
    const sport = 43000;
    open({ sport });
    // The director sent the reply on with TTL - 1: that is what the quote holds, back to RIP:8080.
    const r = { sport, flags: F.TCP.ACK, payload: Buffer.alloc(900, 0x63) };
    const inAndOut = { svc: t.director.list({ proto: 'tcp', addr: ADDR.vip, port: 80 }).services[0]!.stats.inpkts };
    const err = F.icmpError({ l2: fromClientSide, src: CLI_ROUTER, dst: ADDR.vip, type: V4.timeExceeded, code: 0, quote: F.quoteOf(unnatted({ ...r, ttl: 63 }), 60) });
    const want = F.icmpError({ l2: toReal, src: CLI_ROUTER, dst: ADDR.rs1, type: V4.timeExceeded, code: 0, quote: F.quoteOf(reply({ ...r, ttl: 63 }), 60), ttl: 63 });
    t.expect(err, XdpAction.TX, want, 'time exceeded');
    const svc = t.director.list({ proto: 'tcp', addr: ADDR.vip, port: 80 }).services[0]!;
    assert.equal(svc.stats.inpkts - inAndOut.svc, 1, 'counted In, as IPVS counts an ICMP error it forwards');
    // IPv6: the client itself says the port is unreachable.
    open({ sport, v6: true });
    const r6 = { sport, flags: F.TCP.ACK, v6: true, ttl: 63 };
    const err6 = F.icmpError({ l2: fromClientSide, src: ADDR.client6, dst: ADDR.vip6, type: V6.unreach, code: V6.portUnreach, quote: F.quoteOf(unnatted(r6)) });
    const want6 = F.icmpError({ l2: toReal, src: ADDR.client6, dst: ADDR.rs6, type: V6.unreach, code: V6.portUnreach, quote: F.quoteOf(reply(r6)), ttl: 63 });
    t.expect(err6, XdpAction.TX, want6, 'ICMPv6 port unreachable');
    const err6r = F.icmpError({ l2: fromClientSide, src: CLI_ROUTER6, dst: ADDR.vip6, type: V6.tooBig, code: 0, rest: 1280, quote: F.quoteOf(unnatted(r6)) });
    const want6r = F.icmpError({ l2: toReal, src: CLI_ROUTER6, dst: ADDR.rs6, type: V6.tooBig, code: 0, rest: 1280, quote: F.quoteOf(reply(r6)), ttl: 63 });
    t.expect(err6r, XdpAction.TX, want6r, 'ICMPv6 packet too big');
  });

  test('errors about no flow, and ICMP that is no error, go to the kernel untouched', () => {
    const nf = { sport: 49999, flags: F.TCP.ACK };
    const cases: [string, Buffer][] = [
      ['about no flow (server side)', F.icmpError({ l2: fromServerSide, src: SRV_ROUTER, dst: ADDR.client, type: V4.unreach, code: V4.fragNeeded, rest: 1280, quote: F.quoteOf(dnatted(nf)) })],
      ['about no flow (client side)', F.icmpError({ l2: fromClientSide, src: CLI_ROUTER, dst: ADDR.vip, type: V4.timeExceeded, code: 0, quote: F.quoteOf(unnatted(nf)) })],
      ['about no flow (IPv6)', F.icmpError({ l2: fromServerSide, src: SRV_ROUTER6, dst: ADDR.client6, type: V6.tooBig, code: 0, rest: 1280, quote: F.quoteOf(dnatted({ ...nf, v6: true })) })],
      ['an echo request to the VIP', F.icmpError({ l2: fromClientSide, src: ADDR.client, dst: ADDR.vip, type: 8, code: 0, quote: Buffer.from('ping-payload') })],
      ['an ICMPv6 echo request', F.icmpError({ l2: fromClientSide, src: ADDR.client6, dst: ADDR.vip6, type: 128, code: 0, quote: Buffer.from('ping-payload') })],
    ];
    for (const [what, f] of cases) {
      const before = count('pass_no_svc');
      t.expect(f, XdpAction.PASS, f, what);
      assert.equal(count('pass_no_svc') - before, 1, `${what}: counted as before`);
    }
  });

  test('malformed and truncated errors about a flow: the kernel\'s, untouched and counted', () => {
    const s = { sport: 44000, flags: F.TCP.ACK, payload: Buffer.alloc(100, 0x64) };
    open({ sport: 44000 });
    const good = (quote: Buffer, dst: string = ADDR.client) =>
      F.icmpError({ l2: fromServerSide, src: SRV_ROUTER, dst, type: V4.unreach, code: V4.fragNeeded, rest: 1280, quote });
    const q = F.quoteOf(dnatted(s));
    const mutate = (fn: (b: Buffer) => void) => { const b = Buffer.from(q); fn(b); return b; };
    const cut = good(q).subarray(0, 14 + 20 + 6);
    const cases: [string, Buffer][] = [
      ['a quote cut inside the ports', good(q.subarray(0, 20 + 3))],
      ['a quote cut inside the IP header', good(q.subarray(0, 12))],
      ['no quote at all', good(Buffer.alloc(0))],
      ['an ICMP header cut short (the IP length says so)', Buffer.concat([cut.subarray(0, 14), F.ipv4({ src: SRV_ROUTER, dst: ADDR.client, proto: 1, payloadLen: 6 }), cut.subarray(34)])],
      ['a quoted header of IPv6 in IPv4', good(mutate((b) => { b[0] = 0x65; }))],
      ['a quoted IHL below 5', good(mutate((b) => { b[0] = 0x44; }))],
      ['a quoted IHL past the quote', good(mutate((b) => { b[0] = 0x4f; }).subarray(0, 48))],
      ['addressed to someone other than the quoted source', good(q, '203.0.113.9')],
    ];
    for (const [what, f] of cases) {
      const before = count('icmp_malformed');
      t.expect(f, XdpAction.PASS, f, what);
      assert.equal(count('icmp_malformed') - before, 1, `${what}: counted`);
    }
    // The IPv6 quote must be a whole header and ports too.
    open({ sport: 44000, v6: true });
    const q6 = F.quoteOf(dnatted({ ...s, v6: true }));
    for (const n of [40 + 7, 39]) {
      const f = F.icmpError({ l2: fromServerSide, src: SRV_ROUTER6, dst: ADDR.client6, type: V6.tooBig, code: 0, rest: 1280, quote: q6.subarray(0, n) });
      const before = count('icmp_malformed');
      t.expect(f, XdpAction.PASS, f, `a ${n}-byte IPv6 quote`);
      assert.equal(count('icmp_malformed') - before, 1);
    }
  });

  test('an error whose TTL runs out at the director is dropped and counted', () => {
    const s = { sport: 45000 };
    open(s);
    const before = count('ttl_exceeded');
    const err = F.icmpError({ l2: fromServerSide, src: SRV_ROUTER, dst: ADDR.client, type: V4.unreach, code: V4.hostUnreach, quote: F.quoteOf(dnatted(s)), ttl: 1 });
    t.expect(err, XdpAction.DROP, undefined, 'TTL 1');
    assert.equal(count('ttl_exceeded') - before, 1);
  });

  test('mutated errors about a flow: never aborted; forwarded ones changed only what the translation changes', () => {
    const s = { sport: 46000, flags: F.TCP.ACK, payload: Buffer.alloc(40, 0x65) };
    open({ sport: 46000 });
    const base = F.icmpError({ l2: fromServerSide, src: SRV_ROUTER, dst: ADDR.client, type: V4.unreach, code: V4.fragNeeded, rest: 1280, quote: F.quoteOf(dnatted(s)) });
    const translated = F.icmpError({ l2: toClient, src: SRV_ROUTER, dst: ADDR.client, type: V4.unreach, code: V4.fragNeeded, rest: 1280, quote: F.quoteOf(inbound(s)), ttl: 63 });
    t.expect(base, XdpAction.TX, translated, 'the unmutated error');
    // What a checksum was off by, it stays off by (incremental updates, as any router's).
    const off = (f: Buffer) => {
      const ipLen = f.readUInt16BE(16);
      const inner = f.subarray(42, 42 + (f[42]! & 0x0f) * 4);
      return [F.inetChecksum(f.subarray(14, 34)), F.inetChecksum(f.subarray(34, 14 + ipLen)), F.inetChecksum(inner)].map((x) => (x === 0xffff ? 0 : x));
    };
    /** The quoted TCP checksum's error, when the quote holds the whole segment. */
    const quotedL4Off = (f: Buffer) => {
      const inL3 = 42;
      const hl = (f[inL3]! & 0x0f) * 4;
      const tot = f.readUInt16BE(inL3 + 2);
      if (f[inL3 + 9] !== 6 || inL3 + tot !== 14 + f.readUInt16BE(16) || tot < hl + 20) return null;
      const src = F.addrText(f.subarray(inL3 + 12, inL3 + 16));
      const dst = F.addrText(f.subarray(inL3 + 16, inL3 + 20));
      const x = F.inetChecksum(F.pseudoHeader(src, dst, 6, tot - hl), f.subarray(inL3 + hl, inL3 + tot));
      return x === 0xffff ? 0 : x;
    };
    let forwarded = 0;
    let passed = 0;
    for (const input of F.mutants(base, { seed: 8080, count: 3000 })) {
      const r = t.runMutant(input, [XdpAction.PASS, XdpAction.DROP, XdpAction.TX]);
      if (r.retval === XdpAction.PASS) {
        passed++;
        continue;
      }
      if (r.retval !== XdpAction.TX) continue;
      // A mutation can make a valid TCP/UDP packet (protocol byte) or leave an ICMP error of this flow.
      if (r.data[14 + 9] !== 1) continue;
      forwarded++;
      assert.deepEqual(off(r.data), off(input), 'checksums off by what they were');
      assert.deepEqual(quotedL4Off(r.data), quotedL4Off(input), 'the quoted TCP checksum too');
      // What the translation changes: MACs, outer TTL, quoted destination and port, and the checksums checked above.
      const want = Buffer.from(input);
      F.withMacs(want, ADDR.routerMac, ADDR.dirMac).copy(want, 0, 0, 12);
      want[14 + 8] = input[14 + 8]! - 1;
      const inL3 = 42;
      const inL4 = inL3 + (input[inL3]! & 0x0f) * 4;
      F.ip4(ADDR.vip).copy(want, inL3 + 16);
      want.writeUInt16BE(80, inL4 + 2);
      if (hex(input.subarray(14 + 12, 14 + 16)) === hex(F.ip4(ADDR.rs1))) F.ip4(ADDR.vip).copy(want, 14 + 12);
      const ipLen = input.readUInt16BE(16);
      const sums = [14 + 10, 34 + 2, inL3 + 10, ...(inL4 + 18 <= 14 + ipLen ? [inL4 + 16] : [])];
      for (const at of sums) r.data.copy(want, at, at, at + 2);
      assert.equal(hex(r.data), hex(want), 'only the translation\'s changes');
    }
    assert.ok(forwarded > 0 && passed > 0, `some forwarded (${forwarded}) and some passed (${passed})`);
  });

  test('mutated ICMPv6 errors about a flow: never aborted; forwarded ones changed only what the translation changes', () => {
    const s = { sport: 46001, flags: F.TCP.ACK, payload: Buffer.alloc(40, 0x66), v6: true };
    open({ sport: 46001, v6: true });
    const base = F.icmpError({ l2: fromServerSide, src: SRV_ROUTER6, dst: ADDR.client6, type: V6.tooBig, code: 0, rest: 1280, quote: F.quoteOf(dnatted(s)) });
    const translated = F.icmpError({ l2: toClient, src: SRV_ROUTER6, dst: ADDR.client6, type: V6.tooBig, code: 0, rest: 1280, quote: F.quoteOf(inbound(s)), ttl: 63 });
    t.expect(base, XdpAction.TX, translated, 'the unmutated error');
    const L3 = 14;
    const IC = L3 + 40;
    const IN = IC + 8;
    // The ICMPv6 checksum's error (over its pseudo-header), and the quoted TCP checksum's when the quote is whole.
    const off = (f: Buffer) => {
      const len = f.readUInt16BE(L3 + 4);
      const x = F.inetChecksum(F.pseudoHeader(F.addrText(f.subarray(L3 + 8, L3 + 24)), F.addrText(f.subarray(L3 + 24, L3 + 40)), 58, len), f.subarray(IC, IC + len));
      const inLen = f.readUInt16BE(IN + 4);
      const whole = f[IN + 6] === 6 && IN + 40 + inLen === IC + len;
      const y = whole ? F.inetChecksum(F.pseudoHeader(F.addrText(f.subarray(IN + 8, IN + 24)), F.addrText(f.subarray(IN + 24, IN + 40)), 6, inLen), f.subarray(IN + 40, IN + 40 + inLen)) : null;
      return [x, y].map((v) => (v === 0xffff ? 0 : v));
    };
    let forwarded = 0;
    let passed = 0;
    for (const input of F.mutants(base, { seed: 6060, count: 3000 })) {
      const r = t.runMutant(input, [XdpAction.PASS, XdpAction.DROP, XdpAction.TX]);
      if (r.retval === XdpAction.PASS) {
        passed++;
        continue;
      }
      if (r.retval !== XdpAction.TX || r.data[L3 + 6] !== 58) continue;
      forwarded++;
      assert.deepEqual(off(r.data), off(input), 'checksums off by what they were');
      const want = Buffer.from(input);
      F.withMacs(want, ADDR.routerMac, ADDR.dirMac).copy(want, 0, 0, 12);
      want[L3 + 7] = input[L3 + 7]! - 1;
      F.ip6(ADDR.vip6).copy(want, IN + 24);
      want.writeUInt16BE(80, IN + 40 + 2);
      if (hex(input.subarray(L3 + 8, L3 + 24)) === hex(F.ip6(ADDR.rs6))) F.ip6(ADDR.vip6).copy(want, L3 + 8);
      const end = L3 + 40 + input.readUInt16BE(L3 + 4);
      for (const at of [IC + 2, ...(IN + 40 + 18 <= end ? [IN + 40 + 16] : [])]) r.data.copy(want, at, at, at + 2);
      assert.equal(hex(r.data), hex(want), 'only the translation\'s changes');
    }
    assert.ok(forwarded > 0 && passed > 0, `some forwarded (${forwarded}) and some passed (${passed})`);
  });
});
