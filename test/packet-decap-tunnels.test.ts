// The real server's decap helper (bpf/xvs_decap.c) with GUE and GRE, through
// BPF_PROG_TEST_RUN: every mix of families, with and without the tunnel's
// checksum, tagged or not, stripped to exactly the inner packet; GUE only on
// the ports in its bitmap; malformed tunnels (a checksum that fails, lengths
// that do not nest, headers with what the director never writes) passed
// byte for byte and counted; mutated tunnels stripped only when they still
// verify. Tunnel frames come from helpers/tunnels.ts, built from IPVS's and
// the RFCs' definitions.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdpAction } from '../src/loader/index.js';
import { DECAP_AF } from '../src/maps/abi.js';
import { ipToAddr16 } from '../src/maps/codec.js';
import { setGuePort } from '../src/realserver/decap-ports.js';
import { Decap, decapSkip } from './helpers/decap.js';
import * as F from './helpers/frames.js';
import { tunnelChecksumErrors, tunnelled, type TunnelSpec } from './helpers/tunnels.js';

const skip = decapSkip;

const RS_MAC = '02:00:00:00:00:0b';
const DIR_MAC = '02:00:00:00:00:01';
const VIP4 = '192.0.2.80';
const VIP6 = '2001:db8::80';
const OUTER = { v4: { src: '192.0.2.1', dst: '192.0.2.11' }, v6: { src: '2001:db8::1', dst: '2001:db8::11' } };
const GUE_PORT = 6080;

type Outer = 'v4' | 'v6';

const KINDS: [string, TunnelSpec][] = [
  ['GUE', { type: 'gue', port: GUE_PORT, csum: false }],
  ['GUE with checksum', { type: 'gue', port: GUE_PORT, csum: true }],
  ['GRE', { type: 'gre', csum: false }],
  ['GRE with checksum', { type: 'gre', csum: true }],
];

/** The client's packet as the real server must see it, under the tunnel frame's MACs. */
const inner = (dst: string, o: { sport?: number; vlans?: number[]; payload?: Buffer; proto?: 'tcp' | 'udp' } = {}): Buffer =>
  F.frame({
    l2: { dst: RS_MAC, src: DIR_MAC, ...(o.vlans ? { vlans: o.vlans } : {}) },
    src: F.isIp6(dst) ? '2001:db8:ff::7' : '203.0.113.7', dst, sport: o.sport ?? 40000, dport: 80,
    proto: o.proto ?? 'tcp', payload: o.payload ?? Buffer.from('GET / HTTP/1.1\r\n\r\n'),
  });

const tunnel = (pkt: Buffer, t: TunnelSpec, outer: Outer): Buffer =>
  tunnelled(pkt, t, { dstMac: RS_MAC, srcMac: DIR_MAC, outerSrc: OUTER[outer].src, outerDst: OUTER[outer].dst });

/** The same with 802.1Q tags on the outer L2 header. */
const tagged = (pkt: Buffer, t: TunnelSpec, outer: Outer, vlans: number[]): Buffer => {
  const f = tunnel(Buffer.concat([pkt.subarray(0, 12), pkt.subarray(12 + 4 * vlans.length)]), t, outer);
  return Buffer.concat([F.eth({ dst: RS_MAC, src: DIR_MAC, vlans, type: f.readUInt16BE(12) }), f.subarray(14)]);
};

/** Overwrites bytes; `fix` recomputes the outer IPv4 header checksum at 14 and, for GUE or GRE with one, the tunnel's. */
const patched = (f: Buffer, at: number, bytes: number[], fix = false): Buffer => {
  const o = Buffer.from(f);
  bytes.forEach((b, i) => { o[at + i] = b; });
  if (fix) refix(o);
  return o;
};

/** Recomputes the checksums of an untagged tunnel frame after a change, so that only the change is wrong. */
function refix(o: Buffer): void {
  const d = F.dissect(o);
  if (d.family === 4) {
    o.writeUInt16BE(0, d.l3 + 10);
    o.writeUInt16BE(F.inetChecksum(o.subarray(d.l3, d.l4)), d.l3 + 10);
  }
  const seg = o.subarray(d.l4, d.l4 + d.l4Len);
  if (d.proto === 17 && seg.length >= 8 && seg.readUInt16BE(6) !== 0) {
    seg.writeUInt16BE(0, 6);
    seg.writeUInt16BE(F.inetChecksum(F.pseudoHeader(F.addrText(d.src), F.addrText(d.dst), 17, seg.length), seg) || 0xffff, 6);
  }
  if (d.proto === 47 && seg.length >= 8 && seg.readUInt16BE(0) & 0x8000) {
    seg.writeUInt16BE(0, 4);
    seg.writeUInt16BE(F.inetChecksum(seg), 4);
  }
}

describe('real-server decap: GUE and GRE (BPF_PROG_TEST_RUN)', { skip }, () => {
  let decap: Decap;
  const expect = (...a: Parameters<Decap['expect']>) => decap.expect(...a);

  before(() => {
    decap = new Decap();
    decap.setVip(VIP4, DECAP_AF.inet);
    decap.setVip(VIP6, DECAP_AF.inet6);
    setGuePort(decap.ports, GUE_PORT, true);
  });

  after(() => {
    decap?.close();
  });

  test('every tunnel, with and without its checksum, in every mix of families, stripped to the inner packet', () => {
    for (const [kind, t] of KINDS) {
      for (const [dst, outer] of [[VIP4, 'v4'], [VIP6, 'v4'], [VIP4, 'v6'], [VIP6, 'v6']] as const) {
        const name = `${kind}, ${F.isIp6(dst) ? 6 : 4} in ${outer === 'v6' ? 6 : 4}`;
        for (const [what, pkt] of [['TCP', inner(dst)], ['UDP', inner(dst, { proto: 'udp' })], ['odd length', inner(dst, { payload: Buffer.from('odd') })],
          ['a full-size packet', inner(dst, { payload: Buffer.alloc(1400, 0x33) })]] as const) {
          const input = tunnel(pkt, t, outer);
          assert.deepEqual(tunnelChecksumErrors(input), [], `${name}, ${what}: the input is a good tunnel`);
          expect(`${name}, ${what}`, input, pkt, 'decapped');
        }
        expect(`${name}, tagged`, tagged(inner(dst, { vlans: [7, 8] }), t, outer, [7, 8]), inner(dst, { vlans: [7, 8] }), 'decapped');
      }
    }
  });

  test('GUE without a checksum over IPv6 is taken, as IPVS sends it', () => {
    const input = tunnel(inner(VIP6), KINDS[0]![1], 'v6');
    assert.equal(input.readUInt16BE(14 + 40 + 6), 0);
    expect('GUE/IPv6 checksum 0', input, inner(VIP6), 'decapped');
  });

  test('GUE only on its ports: others are UDP like any', () => {
    const on = (port: number) => tunnel(inner(VIP4), { type: 'gue', port, csum: true }, 'v4');
    expect('GUE to port 6081, not set up', on(6081), 'same', null);
    for (const port of [1, 31, 32, 6081, 65535]) {
      setGuePort(decap.ports, port, true);
      expect(`port ${port} once set up`, on(port), inner(VIP4), 'decapped');
      expect(`port ${port + 1 > 65535 ? port - 1 : port + 1} still not`, on(port + 1 > 65535 ? port - 1 : port + 1), 'same', null);
      setGuePort(decap.ports, port, false);
      expect(`port ${port} once taken away`, on(port), 'same', null);
    }
    expect(`port ${GUE_PORT} stays`, on(GUE_PORT), inner(VIP4), 'decapped');
  });

  test('only a VIP of the inner packet\'s family is stripped', () => {
    for (const [kind, t] of KINDS) {
      expect(`${kind} to another address`, tunnel(inner('192.0.2.99'), t, 'v4'), 'same', 'not_vip');
      expect(`${kind} 6 in 6 to another address`, tunnel(inner('2001:db8::99'), t, 'v6'), 'same', 'not_vip');
    }
  });

  test('malformed GUE and GRE pass untouched and are counted', () => {
    const l3 = 14;
    const gue4 = tunnel(inner(VIP4), KINDS[1]![1], 'v4'); // with its checksum
    const gue4n = tunnel(inner(VIP4), KINDS[0]![1], 'v4');
    const gue6 = tunnel(inner(VIP6), KINDS[1]![1], 'v6');
    const gre4 = tunnel(inner(VIP4), KINDS[3]![1], 'v4');
    const gre4n = tunnel(inner(VIP6), KINDS[2]![1], 'v4');
    const gre6 = tunnel(inner(VIP6), KINDS[3]![1], 'v6');
    const u4 = l3 + 20;
    const u6 = l3 + 40;
    const withOptions = (() => {
      const pkt = inner(VIP4);
      const t = tunnel(pkt, KINDS[0]![1], 'v4');
      const ip = F.ipv4({ src: OUTER.v4.src, dst: OUTER.v4.dst, proto: 17, payloadLen: t.length - 34, options: Buffer.alloc(40, 1) });
      return Buffer.concat([t.subarray(0, 14), ip, t.subarray(34)]);
    })();
    // GRE with one more 32-bit field than the director writes, the packet whole after it.
    const greWith = (flag: number): Buffer => {
      const pkt = inner(VIP6);
      const ip = F.ipv4({ src: OUTER.v4.src, dst: OUTER.v4.dst, proto: 47, payloadLen: 8 + pkt.length - 14 });
      const gre = Buffer.from([flag >> 8, flag & 0xff, 0x86, 0xdd, 0, 0, 0, 7]);
      return Buffer.concat([F.eth({ dst: RS_MAC, src: DIR_MAC }), ip, gre, pkt.subarray(14)]);
    };
    const cases: [string, Buffer][] = [
      ['GUE: UDP checksum wrong', patched(gue4, u4 + 6, [gue4[u4 + 6]! ^ 0x01, gue4[u4 + 7]!])],
      ['GUE: a byte of the packet changed under its checksum', patched(gue4, gue4.length - 1, [gue4[gue4.length - 1]! ^ 0x80])],
      ['GUE over IPv6: a byte of the packet changed under its checksum', patched(gue6, gue6.length - 3, [gue6[gue6.length - 3]! ^ 0x10])],
      ['GUE: UDP length beyond the IP packet', patched(gue4n, u4 + 4, [0x05, 0xdc], true)],
      ['GUE: UDP length shorter than UDP and GUE', patched(gue4n, u4 + 4, [0, 11], true)],
      ['GUE: UDP length shorter than the inner packet', patched(gue4n, u4 + 4, [0, gue4n.readUInt16BE(u4 + 4) - 1], true)],
      ['GUE: version 1', patched(gue4, u4 + 8, [0x40], true)],
      ['GUE: a control message', patched(gue4, u4 + 8, [0x20], true)],
      ['GUE: optional fields', patched(gue4, u4 + 8, [0x01], true)],
      ['GUE: flags', patched(gue4, u4 + 10, [0x80, 0], true)],
      ['GUE: protocol TCP inside', patched(gue4, u4 + 9, [6], true)],
      ['GUE: protocol 41 over an IPv4 packet', patched(gue4, u4 + 9, [41], true)],
      ['GUE: cut inside its header', Buffer.from(gue4n.subarray(0, u4 + 10))],
      ['GUE: the outer IPv4 a first fragment', patched(gue4n, l3 + 6, [0x20, 0], true)],
      ['GUE: the outer IPv4 checksum wrong', patched(gue4n, l3 + 10, [gue4n[l3 + 10]! ^ 0xff, gue4n[l3 + 11]!])],
      ['GUE: outer IPv4 with 40 bytes of options (more than the helper moves)', withOptions],
      ['GUE over IPv6: payload length beyond the frame', patched(gue6, l3 + 4, [0x05, 0xdc])],
      ['GRE: checksum wrong', patched(gre4, u4 + 4, [gre4[u4 + 4]! ^ 0x01, gre4[u4 + 5]!])],
      ['GRE: a byte of the packet changed under its checksum', patched(gre6, gre6.length - 2, [gre6[gre6.length - 2]! ^ 0x04])],
      ['GRE: a key (RFC 2890)', greWith(0x2000)],
      ['GRE: a sequence number (RFC 2890)', greWith(0x1000)],
      ['GRE: the routing flag', patched(gre4n, u4, [0x40, 0], true)],
      ['GRE: version 1', patched(gre4n, u4, [0, 1], true)],
      ['GRE: IPv4 said to be inside an IPv6 packet', patched(gre4n, u4 + 2, [0x08, 0x00], true)],
      ['GRE: with its checksum but cut before it', Buffer.from(patched(gre4n, u4, [0x80, 0]).subarray(0, u4 + 6))],
      ['GRE over IPv6: the outer version 4', patched(gre6, l3, [0x40])],
      ['GRE over IPv6: cut inside the inner header', Buffer.from(gre6.subarray(0, u6 + 8 + 30))],
    ];
    for (const [name, input] of cases) expect(name, input, 'same', 'malformed');
  });

  test('what is not a tunnel of ours passes untouched and uncounted', () => {
    const gre = tunnel(inner(VIP4), KINDS[2]![1], 'v4');
    const cases: [string, Buffer][] = [
      ['GRE carrying Ethernet (0x6558)', patched(gre, 14 + 20 + 2, [0x65, 0x58], true)],
      ['GRE carrying ERSPAN (0x88be)', patched(gre, 14 + 20 + 2, [0x88, 0xbe], true)],
      ['GRE cut before its protocol', Buffer.from(gre.subarray(0, 14 + 20 + 3))],
      ['UDP to the GUE port from a later fragment', patched(tunnel(inner(VIP4), KINDS[0]![1], 'v4'), 14 + 6, [0, 0x10], true)],
      ['UDP to another port', F.frame({ l2: { dst: RS_MAC, src: DIR_MAC }, src: '192.0.2.1', dst: '192.0.2.11', sport: 53, dport: 6081, proto: 'udp', payload: Buffer.alloc(40) })],
      ['DNS over IPv6', F.frame({ l2: { dst: RS_MAC, src: DIR_MAC }, src: '2001:db8::1', dst: '2001:db8::11', sport: 5353, dport: 53, proto: 'udp', payload: Buffer.alloc(40) })],
    ];
    for (const [name, input] of cases) expect(name, input, 'same', null);
  });

  test('mutated GUE and GRE: never aborted, stripped only when they still verify, to a VIP\'s own packet', () => {
    let seed = 777;
    const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed; };
    const bases: Buffer[] = [];
    for (const [, t] of KINDS) for (const [dst, outer] of [[VIP4, 'v4'], [VIP6, 'v4'], [VIP4, 'v6'], [VIP6, 'v6']] as const) bases.push(tunnel(inner(dst, { payload: Buffer.from('mutate me') }), t, outer));
    let decapped = 0;
    for (let i = 0; i < 4000; i++) {
      const base = bases[i % bases.length]!;
      const f = Buffer.from(base);
      for (let j = 1 + (rnd() % 3); j > 0; j--) f[12 + (rnd() % (f.length - 12))] = rnd() & 0xff;
      // Half of them with their checksums made right again, so the checks behind them are reached.
      if (rnd() % 2 === 0) {
        try { refix(f); } catch { /* not IP any more */ }
      }
      const input = rnd() % 5 === 0 ? Buffer.from(f.subarray(0, 14 + (rnd() % (f.length - 14)))) : f;
      const r = decap.run(input);
      assert.equal(r.retval, XdpAction.PASS, `frame ${i}: verdict`);
      if (r.data.equals(input)) continue;
      decapped++;
      assert.deepEqual(tunnelChecksumErrors(input), [], `frame ${i}: stripped, so its checksums verified`);
      const d = F.dissect(input);
      const seg = input.subarray(d.l4);
      const encap = d.proto === 17 ? 12 : seg.readUInt16BE(0) & 0x8000 ? 8 : 4;
      assert.ok(d.proto === 17 ? seg.readUInt16BE(2) === GUE_PORT && seg[8] === 0 && seg.readUInt16BE(10) === 0 : d.proto === 47 && (seg.readUInt16BE(0) & 0x7fff) === 0, `frame ${i}: a tunnel as the director writes it`);
      assert.equal(r.data.subarray(14).toString('hex'), input.subarray(d.l4 + encap).toString('hex'), `frame ${i}: the inner packet and what followed it`);
      const ip = r.data.subarray(14);
      const v6 = ip[0]! >> 4 === 6;
      assert.equal(r.data.readUInt16BE(12), v6 ? 0x86dd : 0x0800, `frame ${i}: ethertype`);
      assert.equal((v6 ? ip.subarray(24, 40) : ip.subarray(16, 20)).toString('hex'), (v6 ? F.ip6(VIP6) : F.ip4(VIP4)).toString('hex'), `frame ${i}: inner destination`);
    }
    assert.ok(decapped > 100, `${decapped} mutated frames were still good tunnels`);
  });
});
