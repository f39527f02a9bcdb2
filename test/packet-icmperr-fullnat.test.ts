// ICMP and ICMPv6 errors about FULLNAT flows, through BPF_PROG_TEST_RUN. The
// director changed both ends of such a flow, so each error is translated in
// both of its quoted pairs: from the server side (about LIP:lport -> RIP:rport)
// to the client, quoting client -> VIP:vport; from the client side (about
// VIP:vport -> client) to the real server, quoting RIP:rport -> LIP:lport,
// which is what it sent. Expected frames are built from scratch here, every
// checksum computed independently. NAT64: each error is rebuilt in the
// other family (RFC 7915's mapping); what has no counterpart there is
// dropped and counted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdpAction } from '../src/loader/index.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const { fromClient, toClient } = HOP;
const toReal = HOP.toFar;
const fromReal = HOP.fromFar;
const RPORT = 8080;

interface Fam { client: string; vip: string; real: string; lip: string; cliRouter: string; srvRouter: string; v6: boolean }
const V4: Fam = { client: ADDR.client, vip: ADDR.vip, real: ADDR.rsFar, lip: ADDR.dirFar, cliRouter: '203.0.113.1', srvRouter: '198.51.100.254', v6: false };
const V6: Fam = { client: ADDR.client6, vip: ADDR.vip6, real: ADDR.rs6Far, lip: ADDR.dir6Far, cliRouter: '2001:db8:ff::1', srvRouter: '2001:db8:1::fe', v6: true };
const T4 = { unreach: 3, fragNeeded: 4, portUnreach: 3, timeExceeded: 11 } as const;
const T6 = { unreach: 1, portUnreach: 4, tooBig: 2, timeExceeded: 3 } as const;

interface Seg { sport: number; flags?: number; payload?: Buffer; ttl?: number; dport?: number }
const ttl = (f: Fam, s: Seg) => (f.v6 ? { ip6: { hopLimit: s.ttl ?? 64 } } : { ip: { ttl: s.ttl ?? 64 } });
const pkt = (f: Fam, l2: { dst: string; src: string }, src: string, dst: string, sport: number, dport: number, s: Seg) => F.packet({
  l2, proto: 'tcp', src, dst, sport, dport, flags: s.flags ?? F.TCP.ACK, ...(s.payload ? { payload: s.payload } : {}), ...ttl(f, s),
});
/** client -> VIP:vport, as the client sent it. */
const inbound = (f: Fam, s: Seg) => pkt(f, fromClient, f.client, f.vip, s.sport, s.dport ?? 80, s);
/** The same as the real server got it: LIP:lport -> RIP:rport (a segment past the TOA ones). */
const outbound = (f: Fam, s: Seg, lport: number) => pkt(f, toReal, f.lip, f.real, lport, RPORT, s);
/** The real server's reply as it sent it: RIP:rport -> LIP:lport. */
const reply = (f: Fam, s: Seg, lport: number) => pkt(f, fromReal, f.real, f.lip, RPORT, lport, s);
/** The same as the client got it: VIP:vport -> client. */
const toClientFrame = (f: Fam, s: Seg) => pkt(f, toClient, f.vip, f.client, s.dport ?? 80, s.sport, s);
const lportOf = (out: Buffer) => out.readUInt16BE(14 + (out[14]! >> 4 === 6 ? 40 : 20));
/** What an untagged frame's ICMP checksum is off by (0: right). */
const icmpOff = (f: Buffer) => F.inetChecksum(f.subarray(34, 14 + f.readUInt16BE(16))) % 0xffff;
/** What an untagged frame's ICMPv6 checksum, over its pseudo-header, is off by (0: right). */
const icmp6Off = (f: Buffer) => {
  const len = f.readUInt16BE(14 + 4);
  return F.inetChecksum(F.pseudoHeader(F.addrText(f.subarray(22, 38)), F.addrText(f.subarray(38, 54)), 58, len), f.subarray(54, 54 + len)) % 0xffff;
};

describe('ICMP errors about FULLNAT flows (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const count = (name: string) => t.director.counters()[name as 'rx'] ?? 0;
  /** Opens a flow with the client's SYN; returns its local port. */
  const open = (f: Fam, sport: number, dport = 80) => {
    const r = t.run(inbound(f, { sport, dport, flags: F.TCP.SYN }));
    assert.equal(r.retval, XdpAction.REDIRECT, 'the real server is behind d1');
    return lportOf(r.data);
  };

  before(async () => {
    t = directorNs('xvs-pif');
    for (const f of [V4, V6]) {
      const key = { proto: 'tcp' as const, addr: f.vip, port: 80 };
      await t.director.addService({ ...key, scheduler: 'rr' });
      await t.addReal(key, { addr: f.real, port: RPORT, fwd: 'fullnat', weight: 1 });
      await t.director.addLaddr(key, f.lip);
    }
    // NAT64: an IPv6 VIP in front of an IPv4 real server.
    const k64 = { proto: 'tcp' as const, addr: ADDR.vip6, port: 82 };
    await t.director.addService({ ...k64, scheduler: 'rr' });
    await t.addReal(k64, { addr: ADDR.rsFar, port: RPORT, fwd: 'fullnat', weight: 1 });
    await t.director.addLaddr(k64, ADDR.dirFar);
  });

  after(() => {
    t?.close();
  });

  for (const f of [V4, V6]) {
    const fam = f.v6 ? 'IPv6' : 'IPv4';

    test(`${fam}: an error from a router on the server side reaches the client, quoting what the client sent`, () => {
      const sport = f.v6 ? 51001 : 51000;
      const lport = open(f, sport);
      const s = { sport, flags: F.TCP.ACK | F.TCP.PSH, payload: Buffer.alloc(1200, 0x61) };
      const [type, code] = f.v6 ? [T6.tooBig, 0] : [T4.unreach, T4.fragNeeded];
      for (const n of f.v6 ? [1232, 48] : [548, 28]) {
        const before = count('icmp_xlat');
        const err = F.icmpError({ l2: fromReal, src: f.srvRouter, dst: f.lip, type, code, rest: 1280, quote: F.quoteOf(outbound(f, s, lport), n) });
        const want = F.icmpError({ l2: toClient, src: f.srvRouter, dst: f.client, type, code, rest: 1280, quote: F.quoteOf(inbound(f, s), n), ttl: 63 });
        t.expect(err, XdpAction.TX, want, `a ${n}-byte quote`);
        assert.equal(count('icmp_xlat') - before, 1);
      }
      // The real server's own error comes from the VIP, the only address of the service the client knows.
      const [ut, uc] = f.v6 ? [T6.unreach, T6.portUnreach] : [T4.unreach, T4.portUnreach];
      const own = F.icmpError({ l2: fromReal, src: f.real, dst: f.lip, type: ut, code: uc, quote: F.quoteOf(outbound(f, s, lport)) });
      const ownWant = F.icmpError({ l2: toClient, src: f.vip, dst: f.client, type: ut, code: uc, quote: F.quoteOf(inbound(f, s)), ttl: 63 });
      t.expect(own, XdpAction.TX, ownWant, 'the real server\'s own');
    });

    test(`${fam}: an error from the client side reaches the real server, quoting what it sent to the local address`, () => {
      const sport = f.v6 ? 52001 : 52000;
      const lport = open(f, sport);
      // The reply as it left the director (TTL - 1) is what the quote holds; back to RIP -> LIP:lport.
      const r = { sport, flags: F.TCP.ACK, payload: Buffer.alloc(900, 0x63), ttl: 63 };
      const [type, code] = f.v6 ? [T6.tooBig, 0] : [T4.unreach, T4.fragNeeded];
      const before = { xlat: count('icmp_xlat'), svc: t.director.list({ proto: 'tcp', addr: f.vip, port: 80 }).services[0]!.stats.inpkts };
      const err = F.icmpError({ l2: fromClient, src: f.cliRouter, dst: f.vip, type, code, rest: 1280, quote: F.quoteOf(toClientFrame(f, r), f.v6 ? 1232 : 548) });
      const want = F.icmpError({ l2: toReal, src: f.cliRouter, dst: f.real, type, code, rest: 1280, quote: F.quoteOf(reply(f, r, lport), f.v6 ? 1232 : 548), ttl: 63 });
      t.expect(err, XdpAction.REDIRECT, want, 'a router\'s error');
      assert.equal(count('icmp_xlat') - before.xlat, 1);
      assert.equal(t.director.list({ proto: 'tcp', addr: f.vip, port: 80 }).services[0]!.stats.inpkts - before.svc, 1, 'counted In');
      // The client's own error comes from the local address: the real server knows no other peer.
      const [ut, uc] = f.v6 ? [T6.unreach, T6.portUnreach] : [T4.unreach, T4.portUnreach];
      const own = F.icmpError({ l2: fromClient, src: f.client, dst: f.vip, type: ut, code: uc, quote: F.quoteOf(toClientFrame(f, r)) });
      const ownWant = F.icmpError({ l2: toReal, src: f.lip, dst: f.real, type: ut, code: uc, quote: F.quoteOf(reply(f, r, lport)), ttl: 63 });
      t.expect(own, XdpAction.REDIRECT, ownWant, 'the client\'s own');
    });
  }

  test('an error about a flow of no connection, from either side, goes to the kernel untouched', () => {
    const s = { sport: 53999 };
    const cases: [string, Buffer][] = [
      ['client side', F.icmpError({ l2: fromClient, src: V4.cliRouter, dst: V4.vip, type: T4.timeExceeded, code: 0, quote: F.quoteOf(toClientFrame(V4, s)) })],
      ['server side', F.icmpError({ l2: fromReal, src: V4.srvRouter, dst: V4.lip, type: T4.timeExceeded, code: 0, quote: F.quoteOf(outbound(V4, s, 61000)) })],
    ];
    for (const [what, f] of cases) {
      const before = count('pass_no_svc');
      t.expect(f, XdpAction.PASS, f, what);
      assert.equal(count('pass_no_svc') - before, 1, what);
    }
  });

  test('mutated client-side errors about a flow: never aborted; passed ones untouched, forwarded ones off by what they were', () => {
    const sport = 55000;
    const lport = open(V4, sport);
    const r = { sport, flags: F.TCP.ACK, payload: Buffer.alloc(60, 0x65), ttl: 63 };
    const base = F.icmpError({ l2: fromClient, src: V4.cliRouter, dst: V4.vip, type: T4.unreach, code: T4.fragNeeded, rest: 1280, quote: F.quoteOf(toClientFrame(V4, r)) });
    const want = F.icmpError({ l2: toReal, src: V4.cliRouter, dst: V4.real, type: T4.unreach, code: T4.fragNeeded, rest: 1280, quote: F.quoteOf(reply(V4, r, lport)), ttl: 63 });
    t.expect(base, XdpAction.REDIRECT, want, 'the unmutated error');
    // Outer IPv4 header, the ICMP message, the quoted IPv4 header: what each checksum is off by.
    const off = (f: Buffer) => {
      const inner = f.subarray(42, 42 + (f[42]! & 0x0f) * 4);
      return [F.inetChecksum(f.subarray(14, 34)), F.inetChecksum(f.subarray(34, 14 + f.readUInt16BE(16))), F.inetChecksum(inner)]
        .map((x) => (x === 0xffff ? 0 : x));
    };
    let forwarded = 0;
    let passed = 0;
    for (const input of F.mutants(base, { seed: 5050, count: 2000 })) {
      const out = t.runMutant(input);
      if (out.retval === XdpAction.PASS) {
        passed++;
        continue;
      }
      // A mutation can make a TCP/UDP packet of some flow (protocol byte): only ICMP errors are checked here.
      if (out.retval !== XdpAction.REDIRECT || out.data[14 + 9] !== 1 || input.length < 42 + 20) continue;
      forwarded++;
      assert.deepEqual(off(out.data), off(input), 'checksums off by what they were');
      assert.equal(F.addrText(out.data.subarray(30, 34)), V4.real, 'to the real server');
    }
    assert.ok(forwarded > 0 && passed > 0, `some forwarded (${forwarded}) and some passed (${passed})`);
  });

  describe('NAT64 (an IPv6 VIP, an IPv4 real server)', () => {
    const LIP4 = ADDR.dirFar;
    const SRV4 = V4.srvRouter;
    /** The client's segment to VIP6:82, and the same as it left for the real server: IPv4 from LIP:lport. */
    const in6 = (s: Seg) => inbound(V6, { ...s, dport: 82 });
    const out4 = (lport: number, s: Seg) => pkt(V4, toReal, LIP4, ADDR.rsFar, lport, RPORT, s);
    const openFlow = (sport: number) => {
      const r = t.run(in6({ sport, flags: F.TCP.SYN }));
      assert.equal(r.retval, XdpAction.REDIRECT);
      assert.equal(r.data[14]! >> 4, 4, 'the flow goes to the real server as IPv4');
      return lportOf(r.data);
    };

    test('a server-side ICMPv4 error reaches the IPv6 client as ICMPv6, from the VIP, quoting what it sent (RFC 7915)', () => {
      const sport = 54000;
      const lport = openFlow(sport);
      const s = { sport, flags: F.TCP.ACK | F.TCP.PSH, payload: Buffer.alloc(1200, 0x67) };
      // what; ICMPv4 type, code, rest; ICMPv6 type, code, rest; the error's source
      const cases: [string, number, number, number, number, number, number, string][] = [
        ['fragmentation needed: packet too big, the MTU 20 larger', T4.unreach, T4.fragNeeded, 1400, T6.tooBig, 0, 1420, SRV4],
        ['a small MTU: packet too big at IPv6\'s minimum', T4.unreach, T4.fragNeeded, 576, T6.tooBig, 0, 1280, SRV4],
        ['time exceeded in transit', T4.timeExceeded, 0, 0, T6.timeExceeded, 0, 0, SRV4],
        ['host unreachable: no route', T4.unreach, 1, 0, T6.unreach, 0, 0, SRV4],
        ['communication administratively prohibited', T4.unreach, 13, 0, T6.unreach, 1, 0, SRV4],
        ['the real server\'s own port unreachable', T4.unreach, T4.portUnreach, 0, T6.unreach, T6.portUnreach, 0, ADDR.rsFar],
      ];
      for (const [what, t4, c4, r4, t6, c6, r6, src] of cases) {
        for (const n of [548, 28]) {
          const before = count('icmp_xlat');
          const err = F.icmpError({ l2: fromReal, src, dst: LIP4, type: t4, code: c4, rest: r4, quote: F.quoteOf(out4(lport, s), n) });
          const want = F.icmpError({ l2: toClient, src: V6.vip, dst: V6.client, type: t6, code: c6, rest: r6, quote: F.quoteOf(in6(s), n + 20), ttl: 63, tc: 0xc0 });
          t.expect(err, XdpAction.TX, want, `${what}, a ${n}-byte quote`);
          assert.equal(count('icmp_xlat') - before, 1, what);
        }
      }
      // A TCP quote that ends inside the checksum: the half checksum is left as it was.
      const q = F.quoteOf(out4(lport, s), 20 + 17);
      const err = F.icmpError({ l2: fromReal, src: SRV4, dst: LIP4, type: T4.timeExceeded, code: 0, quote: q });
      const wantQ = F.quoteOf(in6(s), 40 + 17);
      wantQ[40 + 16] = q[20 + 16]!;
      t.expect(err, XdpAction.TX, F.icmpError({ l2: toClient, src: V6.vip, dst: V6.client, type: T6.timeExceeded, code: 0, quote: wantQ, ttl: 63, tc: 0xc0 }), 'a 17-byte TCP quote');
    });

    test('ICMPv4 errors without an ICMPv6 counterpart, or that cannot be rebuilt, are dropped and counted', () => {
      const sport = 54001;
      const lport = openFlow(sport);
      const s = { sport, flags: F.TCP.ACK, payload: Buffer.alloc(100, 0x68) };
      const q = F.quoteOf(out4(lport, s));
      const err = (type: number, code: number, rest: number, quote = q) => F.icmpError({ l2: fromReal, src: SRV4, dst: LIP4, type, code, rest, quote });
      /** The same error with 4 bytes of IPv4 options (NOPs) in its outer header. */
      const withOptions = (f: Buffer) => {
        const ip = Buffer.concat([f.subarray(14, 34), Buffer.from([1, 1, 1, 0])]);
        ip[0] = 0x46;
        ip.writeUInt16BE(ip.length + f.length - 34, 2);
        ip.writeUInt16BE(0, 10);
        ip.writeUInt16BE(F.inetChecksum(ip), 10);
        return Buffer.concat([f.subarray(0, 14), ip, f.subarray(34)]);
      };
      const cases: [string, Buffer][] = [
        ['source quench', err(4, 0, 0)],
        ['parameter problem', err(12, 0, 0x0c000000)],
        ['fragmentation needed with no MTU', err(T4.unreach, T4.fragNeeded, 0)],
        ['a quote past IPv6\'s minimum MTU once rebuilt', err(T4.timeExceeded, 0, 0, F.quoteOf(out4(lport, { ...s, payload: Buffer.alloc(1300, 0x69) })))],
        ['IPv4 options in the error', withOptions(err(T4.timeExceeded, 0, 0))],
      ];
      for (const [what, f] of cases) {
        const before = count('icmp_drop');
        t.expect(f, XdpAction.DROP, undefined, what);
        assert.equal(count('icmp_drop') - before, 1, what);
      }
    });

    test('mutated ICMPv4 errors about the flow: never aborted; rebuilt ones carry the ICMP checksum\'s error into ICMPv6\'s', () => {
      const sport = 54003;
      const lport = openFlow(sport);
      const s = { sport, flags: F.TCP.ACK, payload: Buffer.alloc(60, 0x6a) };
      const base = F.icmpError({ l2: fromReal, src: SRV4, dst: LIP4, type: T4.unreach, code: T4.fragNeeded, rest: 1400, quote: F.quoteOf(out4(lport, s)) });
      t.expect(base, XdpAction.TX, F.icmpError({ l2: toClient, src: V6.vip, dst: V6.client, type: T6.tooBig, code: 0, rest: 1420, quote: F.quoteOf(in6(s)), ttl: 63, tc: 0xc0 }), 'the unmutated error');
      let rebuilt = 0;
      let passed = 0;
      for (const input of F.mutants(base, { seed: 6464, count: 2000 })) {
        const r = t.runMutant(input);
        if (r.retval === XdpAction.PASS) {
          passed++;
          continue;
        }
        if (r.retval !== XdpAction.TX || r.data.readUInt16BE(12) !== 0x86dd || r.data[20] !== 58) continue;
        rebuilt++;
        assert.equal(r.data.length, input.length + 40, 'the frame grew by the two headers\' difference');
        assert.equal(icmp6Off(r.data), icmpOff(input), 'ICMPv6 checksum off by what the ICMP one was');
      }
      assert.ok(rebuilt > 0 && passed > 0, `some rebuilt (${rebuilt}) and some passed (${passed})`);
    });

    test('a client-side ICMPv6 error reaches the IPv4 real server as ICMPv4, from the local address, quoting what it sent (RFC 7915)', () => {
      const sport = 54002;
      const lport = openFlow(sport);
      const r = { sport, dport: 82, flags: F.TCP.ACK, payload: Buffer.alloc(1000, 0x6b), ttl: 63 };
      /** The reply as the real server sent it (as far as the reply shows: TTL from the hop limit, DF, no identification). */
      const sent4 = pkt(V4, fromReal, ADDR.rsFar, LIP4, RPORT, lport, { ...r, ttl: 63 });
      const sent = Buffer.from(sent4);
      F.ipv4({ src: ADDR.rsFar, dst: LIP4, proto: 6, payloadLen: sent.length - 34, ttl: 63, df: true, id: 0 }).copy(sent, 14);
      // what; ICMPv6 type, code, rest, source; ICMPv4 type, code, rest
      const cases: [string, number, number, number, string, number, number, number][] = [
        ['packet too big: fragmentation needed, the MTU 20 smaller', T6.tooBig, 0, 1400, V6.cliRouter, T4.unreach, T4.fragNeeded, 1380],
        ['time exceeded', T6.timeExceeded, 0, 0, V6.cliRouter, T4.timeExceeded, 0, 0],
        ['no route: host unreachable', T6.unreach, 0, 0, V6.cliRouter, T4.unreach, 1, 0],
        ['administratively prohibited', T6.unreach, 1, 0, V6.cliRouter, T4.unreach, 10, 0],
        ['the client\'s own port unreachable', T6.unreach, T6.portUnreach, 0, V6.client, T4.unreach, T4.portUnreach, 0],
      ];
      for (const [what, t6, c6, r6, src, t4, c4, r4] of cases) {
        for (const n of [1232, 48]) {
          const before = count('icmp_xlat');
          const err = F.icmpError({ l2: fromClient, src, dst: V6.vip, type: t6, code: c6, rest: r6, quote: F.quoteOf(toClientFrame(V6, r), n), tc: 0xc0 });
          const want = F.icmpError({ l2: toReal, src: LIP4, dst: ADDR.rsFar, type: t4, code: c4, rest: r4, quote: F.quoteOf(sent, n - 20), ttl: 63 });
          t.expect(err, XdpAction.REDIRECT, want, `${what}, a ${n}-byte quote`);
          assert.equal(count('icmp_xlat') - before, 1, what);
        }
      }
      const before = count('icmp_drop');
      for (const [what, type, code, rest] of [['parameter problem', 4, 0, 40], ['packet too big below IPv6\'s minimum', T6.tooBig, 0, 1000]] as const) {
        const err = F.icmpError({ l2: fromClient, src: V6.cliRouter, dst: V6.vip, type, code, rest, quote: F.quoteOf(toClientFrame(V6, r), 200) });
        t.expect(err, XdpAction.DROP, undefined, what);
      }
      assert.equal(count('icmp_drop') - before, 2, 'dropped and counted');
    });

    test('mutated client-side ICMPv6 errors about the flow: never aborted; rebuilt ones carry the ICMPv6 checksum\'s error into ICMP\'s', () => {
      const sport = 54004;
      openFlow(sport);
      const r = { sport, dport: 82, flags: F.TCP.ACK, payload: Buffer.alloc(60, 0x6c), ttl: 63 };
      const base = F.icmpError({ l2: fromClient, src: V6.cliRouter, dst: V6.vip, type: T6.tooBig, code: 0, rest: 1400, quote: F.quoteOf(toClientFrame(V6, r)) });
      assert.equal(t.run(Buffer.from(base)).retval, XdpAction.REDIRECT, 'the unmutated error');
      let rebuilt = 0;
      let passed = 0;
      for (const input of F.mutants(base, { seed: 4646, count: 2000 })) {
        const out = t.runMutant(input);
        if (out.retval === XdpAction.PASS) {
          passed++;
          continue;
        }
        if (out.retval !== XdpAction.REDIRECT || out.data.readUInt16BE(12) !== 0x0800 || out.data[23] !== 1) continue;
        rebuilt++;
        assert.equal(out.data.length, input.length - 40, 'the frame shrank by the two headers\' difference');
        assert.equal(F.inetChecksum(out.data.subarray(14, 34)) % 0xffff, 0, 'a valid outer IPv4 header');
        assert.equal(icmpOff(out.data), icmp6Off(input), 'ICMP checksum off by what the ICMPv6 one was');
      }
      assert.ok(rebuilt > 0 && passed > 0, `some rebuilt (${rebuilt}) and some passed (${passed})`);
    });
  });
});
