// The real server's decap helper (bpf/xvs_decap.c) through BPF_PROG_TEST_RUN:
// every tunnel the director sends (IPIP, 6 in 4, 4 in 6, 6 in 6), tagged or
// not, stripped to exactly the inner packet under the frame's own MACs;
// only for a VIP of the inner packet's family; malformed and foreign frames
// passed byte for byte as they came, and counted as the helper saw them.
// Expected frames are built from the RFCs in helpers/frames.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdpAction } from '../src/loader/index.js';
import { DECAP_AF } from '../src/maps/abi.js';
import { ipToAddr16 } from '../src/maps/codec.js';
import { Decap, decapSkip } from './helpers/decap.js';
import * as F from './helpers/frames.js';

const skip = decapSkip;

const RS_MAC = '02:00:00:00:00:0b';
const DIR_MAC = '02:00:00:00:00:01';
const VIP4 = '192.0.2.80';
const VIP6 = '2001:db8::80';
const CLIENT4 = '203.0.113.7';
const CLIENT6 = '2001:db8:ff::7';
const OUTER = { v4: { src: '192.0.2.1', dst: '192.0.2.11' }, v6: { src: '2001:db8::1', dst: '2001:db8::11' } };


/** The client's packet as the real server must see it, under the tunnel frame's MACs. */
const inner = (dst: string, o: { sport?: number; vlans?: number[]; payload?: Buffer; proto?: 'tcp' | 'udp' } = {}): Buffer =>
  F.frame({
    l2: { dst: RS_MAC, src: DIR_MAC, ...(o.vlans ? { vlans: o.vlans } : {}) },
    src: F.isIp6(dst) ? CLIENT6 : CLIENT4, dst, sport: o.sport ?? 40000, dport: 80,
    proto: o.proto ?? 'tcp', payload: o.payload ?? Buffer.from('GET / HTTP/1.1\r\n\r\n'),
  });

/** `pkt` (a frame from inner()) tunnelled as the director sends it, over `outer`'s family. */
const tunnel = (pkt: Buffer, outer: 'v4' | 'v6'): Buffer => F.encap(pkt, { dstMac: RS_MAC, srcMac: DIR_MAC, outerSrc: OUTER[outer].src, outerDst: OUTER[outer].dst });

/** The same with 802.1Q tags: the outer L2 header carries them, the outer ethertype after them. */
const tagged = (pkt: Buffer, outer: 'v4' | 'v6', vlans: number[]): Buffer => {
  const t = tunnel(pkt, outer);
  return Buffer.concat([F.eth({ dst: RS_MAC, src: DIR_MAC, vlans, type: t.readUInt16BE(12) }), t.subarray(14)]);
};

/** A frame of `bytes` with `at` overwritten; `ipSum` recomputes the IPv4 header checksum at `l3`. */
const patched = (f: Buffer, at: number, bytes: number[], ipSum?: { l3: number }): Buffer => {
  const o = Buffer.from(f);
  bytes.forEach((b, i) => { o[at + i] = b; });
  if (ipSum) {
    const hlen = (o[ipSum.l3]! & 0x0f) * 4;
    o.writeUInt16BE(0, ipSum.l3 + 10);
    o.writeUInt16BE(F.inetChecksum(o.subarray(ipSum.l3, ipSum.l3 + hlen)), ipSum.l3 + 10);
  }
  return o;
};

describe('real-server decap (BPF_PROG_TEST_RUN)', { skip }, () => {
  let decap: Decap;
  const expect = (...a: Parameters<Decap['expect']>) => decap.expect(...a);

  before(() => {
    decap = new Decap();
    decap.setVip(VIP4, DECAP_AF.inet);
    decap.setVip(VIP6, DECAP_AF.inet6);
  });

  after(() => {
    decap?.close();
  });

  test('every mix of families is stripped to the inner packet', () => {
    for (const [dst, outer] of [[VIP4, 'v4'], [VIP6, 'v4'], [VIP4, 'v6'], [VIP6, 'v6']] as const) {
      const pkt = inner(dst);
      const name = `${F.isIp6(dst) ? 6 : 4} in ${outer === 'v6' ? 6 : 4}`;
      const input = tunnel(pkt, outer);
      // Checked apart from the frame builders: the outer header is what the RFCs say.
      assert.equal(input.readUInt16BE(12), outer === 'v6' ? 0x86dd : 0x0800, name);
      assert.equal(input[14 + (outer === 'v6' ? 6 : 9)], F.isIp6(dst) ? 41 : 4, name);
      expect(name, input, pkt, 'decapped');
      expect(`${name}, UDP`, tunnel(inner(dst, { proto: 'udp' }), outer), inner(dst, { proto: 'udp' }), 'decapped');
    }
  });

  test('tags stay, the last ethertype names the inner family', () => {
    for (const vlans of [[7], [7, 8]]) {
      for (const [dst, outer] of [[VIP6, 'v4'], [VIP4, 'v6'], [VIP6, 'v6'], [VIP4, 'v4']] as const) {
        expect(`${dst} in ${outer} tagged ${vlans.join('.')}`, tagged(inner(dst), outer, vlans), inner(dst, { vlans }), 'decapped');
      }
    }
  });

  test('an outer IPv4 header with options, and Ethernet padding after the packet', () => {
    const pkt = inner(VIP6);
    const ip = F.ipv4({ src: OUTER.v4.src, dst: OUTER.v4.dst, proto: 41, payloadLen: pkt.length - 14, options: Buffer.from([1, 1, 1, 0]), df: true });
    expect('IPv4 options', Buffer.concat([F.eth({ dst: RS_MAC, src: DIR_MAC }), ip, pkt.subarray(14)]), pkt, 'decapped');
    const pad = Buffer.alloc(6);
    const small = inner(VIP4, { payload: Buffer.alloc(0) });
    expect('padded', Buffer.concat([tunnel(small, 'v6'), pad]), Buffer.concat([small, pad]), 'decapped');
  });

  test('only a VIP of the inner packet\'s own family is stripped', () => {
    expect('4 in 4 to another address', tunnel(inner('192.0.2.99'), 'v4'), 'same', 'not_vip');
    expect('6 in 6 to another address', tunnel(inner('2001:db8::99'), 'v6'), 'same', 'not_vip');
    expect('6 in 4 to the client', tunnel(inner(CLIENT6), 'v4'), 'same', 'not_vip');
    // 2001:db8:: and 32.1.13.184 are the same 16 key bytes (20 01 0d b8, then zeros).
    decap.setVip('2001:db8::', DECAP_AF.inet6);
    expect('IPv4 32.1.13.184 where only IPv6 2001:db8:: is a VIP', tunnel(inner('32.1.13.184'), 'v6'), 'same', 'not_vip');
    expect('IPv6 2001:db8:: is one', tunnel(inner('2001:db8::'), 'v4'), inner('2001:db8::'), 'decapped');
    decap.setVip('32.1.13.184', DECAP_AF.inet);
    expect('IPv6 2001:db8:: where only IPv4 32.1.13.184 is a VIP', tunnel(inner('2001:db8::'), 'v6'), 'same', 'not_vip');
    decap.setVip('32.1.13.184', DECAP_AF.inet | DECAP_AF.inet6);
    expect('both, once both are VIPs: IPv4', tunnel(inner('32.1.13.184'), 'v6'), inner('32.1.13.184'), 'decapped');
    expect('both, once both are VIPs: IPv6', tunnel(inner('2001:db8::'), 'v6'), inner('2001:db8::'), 'decapped');
    decap.vips.delete(ipToAddr16('2001:db8::').bytes);
  });

  test('malformed tunnels pass untouched and are counted', () => {
    const in4 = tunnel(inner(VIP4), 'v4');
    const in6 = tunnel(inner(VIP6), 'v6');
    const s4 = tunnel(inner(VIP6), 'v4'); // 6 in 4
    const l3 = 14;
    const cases: [string, Buffer][] = [
      ['outer IPv4 checksum wrong', patched(in4, l3 + 10, [in4[l3 + 10]! ^ 0xff, in4[l3 + 11]!])],
      ['outer IPv4 a first fragment (MF)', patched(in4, l3 + 6, [0x20, 0], { l3 })],
      ['outer IPv4 a later fragment', patched(s4, l3 + 6, [0, 0x10], { l3 })],
      ['outer IPv4 header length 4 words', patched(in4, l3, [0x44], { l3 })],
      ['outer IPv4 version 6', patched(in4, l3, [0x65], { l3 })],
      ['outer IPv4 total length beyond the frame', patched(in4, l3 + 2, [0x05, 0xdc], { l3 })],
      ['outer IPv4 total length shorter than its header', patched(in4, l3 + 2, [0, 16], { l3 })],
      ['outer IPv4 total length shorter than the inner packet', patched(in4, l3 + 2, [0, in4.readUInt16BE(l3 + 2) - 1], { l3 })],
      ['inner IPv4 version 5', patched(in4, l3 + 20, [0x55])],
      ['inner IPv4 header length 4 words', patched(in4, l3 + 20, [0x44])],
      ['inner IPv4 total length shorter than its header', patched(in4, l3 + 20 + 2, [0, 19])],
      ['inner IPv4 cut by the frame', Buffer.from(in4.subarray(0, l3 + 20 + 12))],
      ['inner IPv6 said to be in 4 but is IPv4', patched(s4, l3 + 20, [0x45])],
      ['inner IPv6 payload length beyond the outer packet', patched(s4, l3 + 20 + 4, [0x05, 0xdc])],
      ['inner IPv6 cut by the frame', Buffer.from(s4.subarray(0, l3 + 20 + 30))],
      ['outer IPv6 version 4', patched(in6, l3, [0x40])],
      ['outer IPv6 payload length beyond the frame', patched(in6, l3 + 4, [0x05, 0xdc])],
      ['outer IPv6 payload length 0', patched(in6, l3 + 4, [0, 0])],
      ['inner IPv6 in IPv6 version 4', patched(in6, l3 + 40, [0x40])],
      ['inner IPv6 in IPv6 cut by the frame', Buffer.from(in6.subarray(0, l3 + 40 + 39))],
    ];
    for (const [name, input] of cases) expect(name, input, 'same', 'malformed');
  });

  test('what is not a tunnel passes untouched and uncounted', () => {
    const ip6WithDestOpts = (() => {
      const pkt = inner(VIP6);
      const ip = F.ipv6({ src: OUTER.v6.src, dst: OUTER.v6.dst, nextHeader: 41, payloadLen: pkt.length - 14, ext: [{ type: 60, body: Buffer.from([1, 4, 0, 0, 0, 0]) }] });
      return Buffer.concat([F.eth({ dst: RS_MAC, src: DIR_MAC, type: 0x86dd }), ip, pkt.subarray(14)]);
    })();
    const cases: [string, Buffer][] = [
      ['plain TCP to the IPv4 VIP', inner(VIP4)],
      ['plain TCP to the IPv6 VIP', inner(VIP6)],
      ['protocol 47 (GRE) whose header names no IP ethertype', patched(tunnel(inner(VIP4), 'v4'), 14 + 9, [47], { l3: 14 })],
      ['IPv6 in IPv6 behind a destination-options header (not what the director sends)', ip6WithDestOpts],
      ['ARP', Buffer.concat([F.eth({ dst: 'ff:ff:ff:ff:ff:ff', src: DIR_MAC, type: 0x0806 }), Buffer.alloc(28)])],
      ['an IPv4 header cut before its protocol', Buffer.from(tunnel(inner(VIP4), 'v4').subarray(0, 14 + 8))],
      ['an IPv6 header cut before its end', Buffer.from(tunnel(inner(VIP6), 'v6').subarray(0, 14 + 39))],
      ['three VLAN tags (more than are read)', tagged(inner(VIP4), 'v4', [1, 2, 3])],
    ];
    for (const [name, input] of cases) expect(name, input, 'same', null);
  });

  test('mutated tunnels: never aborted, and stripped only to a VIP\'s own packet', () => {
    let seed = 4242;
    const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed; };
    const bases = [tunnel(inner(VIP4), 'v4'), tunnel(inner(VIP6), 'v4'), tunnel(inner(VIP4), 'v6'), tunnel(inner(VIP6), 'v6'), tagged(inner(VIP6), 'v6', [9])];
    let decapped = 0;
    for (let i = 0; i < 3000; i++) {
      const base = bases[i % bases.length]!;
      const f = Buffer.from(base);
      for (let j = 1 + (rnd() % 3); j > 0; j--) f[12 + (rnd() % (f.length - 12))] = rnd() & 0xff;
      // BPF_PROG_TEST_RUN takes no XDP frame shorter than an Ethernet header.
      const input = rnd() % 4 === 0 ? Buffer.from(f.subarray(0, 14 + (rnd() % (f.length - 14)))) : f;
      const r = decap.run(input);
      assert.ok(r.retval === XdpAction.PASS, `frame ${i}: verdict ${r.retval}`);
      if (r.data.equals(input)) continue;
      // Stripped: the input less one outer header after the L2 header (MACs and
      // tags kept), leaving a packet to a VIP of its own family under the right ethertype.
      decapped++;
      const cut = input.length - r.data.length;
      const l2 = [14, 18, 22].find((n) => r.data.subarray(0, n - 2).equals(input.subarray(0, n - 2)) && r.data.subarray(n).equals(input.subarray(n + cut)));
      assert.ok(l2 !== undefined, `frame ${i}: not the input less ${cut} bytes after an L2 header`);
      assert.ok(cut === 40 || (cut >= 20 && cut <= 60 && cut % 4 === 0), `frame ${i}: ${cut} bytes removed`);
      const ip = r.data.subarray(l2);
      const v6 = ip[0]! >> 4 === 6;
      assert.equal(r.data.readUInt16BE(l2 - 2), v6 ? 0x86dd : 0x0800, `frame ${i}: ethertype`);
      assert.equal((v6 ? ip.subarray(24, 40) : ip.subarray(16, 20)).toString('hex'), (v6 ? F.ip6(VIP6) : F.ip4(VIP4)).toString('hex'), `frame ${i}: inner destination`);
    }
    assert.ok(decapped > 0, 'some mutated frames are still good tunnels');
  });
});
