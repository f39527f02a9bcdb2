// GUE and GRE real servers through the director (BPF_PROG_TEST_RUN): every
// tunnel type and checksum flag in every mix of families, exact outer and
// inner bytes against frames built in helpers/tunnels.ts (checksums computed
// there over the bytes as they are), lengths that take every path of the
// checksum's sum, the MTU each tunnel leaves (ICMP fragmentation-needed,
// ICMPv6 packet-too-big), GUE's source port per flow, a tunnel changed under
// a running flow, and mutated frames.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ListResult, RealSpec, ServiceKey } from '../src/control/protocol.js';
import { Director } from '../src/daemon/director.js';
import { XdpAction } from '../src/loader/index.js';
import { TUN_SPORT } from '../src/maps/abi.js';
import type { Tunnel } from '../src/modes/tunnel.js';
import * as F from './helpers/frames.js';
import { gueSourcePort, ipPacket, tunnelChecksumErrors, tunnelled, type TunnelSpec } from './helpers/tunnels.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const inbound = HOP.fromClient;
/** The route's MTU in the test namespace (veth's default). */
const MTU = 1500;

interface Kind { name: string; tunnel: Tunnel; spec: TunnelSpec; overhead: number }
const KINDS: Kind[] = [
  { name: 'GUE without checksum', tunnel: { type: 'gue', port: 6080, csum: 'nocsum' }, spec: { type: 'gue', port: 6080, csum: false }, overhead: 12 },
  { name: 'GUE with checksum', tunnel: { type: 'gue', port: 6081, csum: 'csum' }, spec: { type: 'gue', port: 6081, csum: true }, overhead: 12 },
  // IPVS writes the remote-checksum option only for a packet whose checksum is still to be made; a forwarded one gets the checksum.
  { name: 'GUE with remote checksum', tunnel: { type: 'gue', port: 6082, csum: 'remcsum' }, spec: { type: 'gue', port: 6082, csum: true }, overhead: 12 },
  { name: 'GRE without checksum', tunnel: { type: 'gre', csum: 'nocsum' }, spec: { type: 'gre', csum: false }, overhead: 4 },
  { name: 'GRE with checksum', tunnel: { type: 'gre', csum: 'csum' }, spec: { type: 'gre', csum: true }, overhead: 8 },
];
const FAMILIES = [
  { name: '4 in 4', vip: ADDR.vip, client: ADDR.client, rs: ADDR.rs1, outerSrc: ADDR.dir, ipHlen: 20 },
  { name: '6 in 4', vip: ADDR.vip6, client: ADDR.client6, rs: ADDR.rs1, outerSrc: ADDR.dir, ipHlen: 20 },
  { name: '4 in 6', vip: ADDR.vip, client: ADDR.client, rs: ADDR.rs6, outerSrc: ADDR.dir6, ipHlen: 40 },
  { name: '6 in 6', vip: ADDR.vip6, client: ADDR.client6, rs: ADDR.rs6, outerSrc: ADDR.dir6, ipHlen: 40 },
] as const;
type Family = (typeof FAMILIES)[number];

/** One service per family mix and tunnel kind, each with one real server. */
const portOf = (fi: number, ki: number): number => 2000 + fi * 10 + ki;

describe('director: GUE and GRE tunnels (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;

  before(async () => {
    t = directorNs('xvs-pg');
    for (const [fi, fam] of FAMILIES.entries()) {
      for (const [ki, kind] of KINDS.entries()) {
        for (const proto of ['tcp', 'udp'] as const) {
          const key: ServiceKey = { proto, addr: fam.vip, port: portOf(fi, ki) };
          await t.director.addService({ ...key, scheduler: 'rr' });
          await t.addReal(key, { addr: fam.rs, port: 0, fwd: 'tun', weight: 1, tunnel: kind.tunnel });
        }
      }
    }
  });

  after(() => {
    t?.close();
  });

  const frameTo = (fam: Family, port: number, o: { sport?: number; payload?: Buffer; proto?: 'tcp' | 'udp'; flags?: number; df?: boolean; tos?: number; ttl?: number } = {}): Buffer =>
    F.frame({
      l2: inbound, src: fam.client, dst: fam.vip, sport: o.sport ?? 40000, dport: port, flags: o.flags ?? F.TCP.SYN, proto: o.proto ?? 'tcp',
      payload: o.payload ?? Buffer.alloc(0),
      ...(F.isIp6(fam.vip) ? { ip6: { tc: o.tos ?? 0, hopLimit: o.ttl ?? 64 } } : { ip: { df: o.df ?? false, tos: o.tos ?? 0, ttl: o.ttl ?? 64, id: 0x4d2e } }),
    });
  const outer = (fam: Family) => ({ dstMac: ADDR.rs1Mac, srcMac: ADDR.dirMac, outerSrc: fam.outerSrc, outerDst: fam.rs });
  const expectFrame = (name: string, input: Buffer, want: Buffer, verdict: number = XdpAction.TX) => {
    const r = t.run(input);
    assert.equal(r.retval, verdict, `${name}: verdict`);
    assert.equal(r.data.toString('hex'), want.toString('hex'), `${name}: output bytes`);
    return r.data;
  };

  test('every tunnel type and checksum flag, in every mix of families: exact outer and inner bytes', () => {
    for (const [fi, fam] of FAMILIES.entries()) {
      for (const [ki, kind] of KINDS.entries()) {
        const port = portOf(fi, ki);
        const cases = [
          { what: 'a SYN', input: frameTo(fam, port, { sport: 41000, tos: 0x28, ttl: 57, df: true }) },
          { what: 'its ACK with an odd-sized payload', input: frameTo(fam, port, { sport: 41000, flags: F.TCP.ACK, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n!') }) },
          { what: 'a UDP datagram', input: frameTo(fam, port, { sport: 5353, proto: 'udp', payload: Buffer.from('query') }) },
        ];
        for (const c of cases) {
          const name = `${fam.name}, ${kind.name}: ${c.what}`;
          const out = expectFrame(name, c.input, tunnelled(c.input, kind.spec, outer(fam)));
          assert.deepEqual(tunnelChecksumErrors(out), [], `${name}: checksums verify`);
          assert.deepEqual(F.checksumErrors(Buffer.concat([c.input.subarray(0, 14), ipPacket(c.input)])), [], `${name}: the inner packet is the client's`);
        }
      }
    }
  });

  test('checksums over every length the sum is taken in pieces of, up to the largest that fits', () => {
    // 512-byte pieces, then one of each power of two down to 4, then 0 to 3
    // bytes: lengths around each boundary, and a run of every remainder.
    const lengths = new Set<number>();
    for (const b of [0, 4, 8, 16, 32, 64, 128, 256, 512, 1024]) for (let d = -3; d <= 3; d++) if (b + d >= 0) lengths.add(b + d);
    for (let n = 1100; n < 1100 + 40; n++) lengths.add(n);
    for (const [fi, fam] of FAMILIES.entries()) {
      for (const [ki, kind] of KINDS.entries()) {
        if (!kind.spec.csum) continue;
        const port = portOf(fi, ki);
        const room = MTU - fam.ipHlen - kind.overhead - (F.isIp6(fam.vip) ? 40 : 20) - 8;
        for (const n of [...lengths, room]) {
          if (n > room) continue;
          const input = frameTo(fam, port, { sport: 5000 + (n % 1000), proto: 'udp', payload: Buffer.alloc(n, (n * 7 + 1) & 0xff) });
          const name = `${fam.name}, ${kind.name}, ${n} bytes of UDP payload`;
          const out = expectFrame(name, input, tunnelled(input, kind.spec, outer(fam)));
          assert.deepEqual(tunnelChecksumErrors(out), [], `${name}: checksums verify`);
        }
      }
    }
  });

  test('a checksum that comes to 0: GUE sends all ones (0 is "none" to UDP), GRE sends 0', () => {
    // A UDP/IPv4 datagram without a checksum of its own leaves its payload
    // free: its first word is chosen so that the tunnel's sum comes to 0.
    for (const [ki, kind] of KINDS.entries()) {
      if (!kind.spec.csum) continue;
      const fam = FAMILIES[0];
      const port = portOf(0, ki);
      const udp = (word: number) => F.packet({
        l2: inbound, src: fam.client, dst: fam.vip, sport: 6000, dport: port, proto: 'udp', zeroChecksum: true,
        payload: Buffer.from([word >> 8, word & 0xff, 1, 2, 3]),
      });
      const zero = tunnelled(udp(0), { ...kind.spec, ...(kind.spec.type === 'gue' ? { sport: 0 } : {}) }, outer(fam));
      const d = F.dissect(zero);
      const at = kind.spec.type === 'gue' ? d.l4 + 6 : d.l4 + 4;
      // The sum with the word 0 (and, for GUE, the source port out of it: it is the same whatever the payload).
      const sport = gueSourcePort(ipPacket(udp(0)));
      const seg = Buffer.from(zero.subarray(d.l4, d.l4 + d.l4Len));
      if (kind.spec.type === 'gue') seg.writeUInt16BE(sport, 0);
      seg.writeUInt16BE(0, at - d.l4);
      const pseudo = kind.spec.type === 'gue' ? F.pseudoHeader(fam.outerSrc, fam.rs, 17, seg.length) : Buffer.alloc(0);
      const sum = 0xffff ^ F.inetChecksum(pseudo, seg);
      const input = udp(0xffff - sum);
      const want = tunnelled(input, kind.spec, outer(fam));
      assert.equal(want.readUInt16BE(at), kind.spec.type === 'gue' ? 0xffff : 0, `${kind.name}: the case is the one meant`);
      const out = expectFrame(`${kind.name}: a sum of 0`, input, want);
      assert.deepEqual(tunnelChecksumErrors(out), [], `${kind.name}: checksums verify`);
    }
  });

  test('the MTU a tunnel leaves: the largest packet that fits goes, one byte more gets ICMP with the route\'s MTU less the tunnel', () => {
    for (const [fi, fam] of FAMILIES.entries()) {
      for (const [ki, kind] of KINDS.entries()) {
        const port = portOf(fi, ki);
        const left = MTU - fam.ipHlen - kind.overhead;
        const inner6 = F.isIp6(fam.vip);
        const payload = (n: number) => Buffer.alloc(n - (inner6 ? 40 : 20) - 20, 0x5a);
        const name = `${fam.name}, ${kind.name}`;
        const fits = frameTo(fam, port, { sport: 42000, df: true, payload: payload(left) });
        expectFrame(`${name}: ${left} bytes fit`, fits, tunnelled(fits, kind.spec, outer(fam)));
        const big = frameTo(fam, port, { sport: 42001, df: true, payload: payload(left + 1) });
        const answer = inner6 ? F.icmp6Error(big, 2, 0, Math.max(left, 1280), 128) : F.icmpUnreach(big, 4, left);
        expectFrame(`${name}: ${left + 1} bytes get ${inner6 ? 'packet-too-big' : 'fragmentation-needed'} with MTU ${left}`, big, answer);
        if (!inner6) expectFrame(`${name}: without DF the kernel has it`, frameTo(fam, port, { sport: 42002, payload: payload(left + 1) }), frameTo(fam, port, { sport: 42002, payload: payload(left + 1) }), XdpAction.PASS);
      }
    }
  });

  test('GUE\'s source port: one per flow, from the inner 5-tuple, spread over the range', () => {
    const fam = FAMILIES[0];
    const port = portOf(0, 0);
    const ports = new Set<number>();
    for (let i = 0; i < 300; i++) {
      const syn = frameTo(fam, port, { sport: 10000 + i });
      const out = t.run(syn).data;
      const sport = out.readUInt16BE(14 + 20);
      assert.equal(sport, gueSourcePort(ipPacket(syn)), `flow ${i}`);
      assert.ok(sport >= TUN_SPORT.min && sport < TUN_SPORT.max, `flow ${i}: ${sport} in the range`);
      // A later packet of the flow leaves with the same port.
      const ack = frameTo(fam, port, { sport: 10000 + i, flags: F.TCP.ACK, payload: Buffer.from('x') });
      assert.equal(t.run(ack).data.readUInt16BE(14 + 20), sport, `flow ${i}: the same port for its ACK`);
      ports.add(sport);
    }
    assert.ok(ports.size >= 295, `300 flows took ${ports.size} ports`);
    const halves = [...ports].filter((p) => p < (TUN_SPORT.min + TUN_SPORT.max) / 2).length;
    assert.ok(halves > 100 && halves < 200, `ports spread over the range: ${halves} of ${ports.size} in its lower half`);
  });

  test('a tunnel changed (xvsadm -e) applies to the flows already running, as in IPVS', async () => {
    const fam = FAMILIES[0];
    const key: ServiceKey = { proto: 'tcp', addr: fam.vip, port: portOf(0, 0) };
    const real = (tunnel?: Tunnel): RealSpec => ({ addr: fam.rs, port: 0, fwd: 'tun', weight: 1, ...(tunnel ? { tunnel } : {}) });
    const ack = frameTo(fam, key.port, { sport: 43000, flags: F.TCP.ACK, payload: Buffer.from('data') });
    expectFrame('a new flow', frameTo(fam, key.port, { sport: 43000 }), tunnelled(frameTo(fam, key.port, { sport: 43000 }), KINDS[0]!.spec, outer(fam)));
    try {
      await t.director.editReal(key, real({ type: 'gre', csum: 'csum' }));
      expectFrame('now GRE with checksum', ack, tunnelled(ack, { type: 'gre', csum: true }, outer(fam)));
      await t.director.editReal(key, real());
      expectFrame('now IPIP', ack, F.encap(ack, outer(fam)));
      await t.director.editReal(key, real({ type: 'gue', port: 7000, csum: 'csum' }));
      expectFrame('now GUE to port 7000', ack, tunnelled(ack, { type: 'gue', port: 7000, csum: true }, outer(fam)));
    } finally {
      await t.director.editReal(key, real(KINDS[0]!.tunnel));
    }
    expectFrame('back as it was', ack, tunnelled(ack, KINDS[0]!.spec, outer(fam)));
  });

  test('a restarted director reads every tunnel back from the pinned maps', () => {
    const again = new Director(t.dp, { neighbours: false });
    const tunnels = (l: ListResult) => l.services.map((v) => `${v.proto} ${v.addr}:${v.port} ${v.reals.map((r) => `${r.fwd} ${JSON.stringify(r.tunnel ?? 'ipip')}`).join()}`).sort();
    const was = tunnels(t.director.config());
    assert.equal(was.length, FAMILIES.length * KINDS.length * 2);
    assert.deepEqual(tunnels(again.config()), was);
    assert.ok(was.some((w) => w.includes('"remcsum"')) && was.some((w) => w.includes('"gre"')));
  });

  test('mutated frames to tunnelled services: never aborted; what leaves carries the packet as it came, its checksums right', () => {
    let seed = 9091;
    const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed; };
    const bases: Buffer[] = [];
    for (const [fi, fam] of FAMILIES.entries()) {
      for (const ki of [1, 4]) {
        bases.push(frameTo(fam, portOf(fi, ki), { sport: 44000 + fi, payload: Buffer.from('0123456789abcdef0123') }));
        bases.push(frameTo(fam, portOf(fi, ki), { sport: 44100 + fi, proto: 'udp', payload: Buffer.from('odd') }));
      }
    }
    let tunnelledCount = 0;
    for (let i = 0; i < 4000; i++) {
      const base = bases[i % bases.length]!;
      const f = Buffer.from(base);
      for (let j = 1 + (rnd() % 3); j > 0; j--) f[14 + (rnd() % (f.length - 14))] = rnd() & 0xff;
      const input = rnd() % 5 === 0 ? Buffer.from(f.subarray(0, 14 + (rnd() % (f.length - 14)))) : f;
      const r = t.run(input);
      assert.notEqual(r.retval, XdpAction.ABORTED, `mutation ${i}`);
      if (r.retval !== XdpAction.TX || r.data.length <= input.length) continue;
      const d = F.dissect(r.data);
      if (d.proto !== 17 && d.proto !== 47) continue; // an ICMP answer, or IPIP for a mutated address
      tunnelledCount++;
      assert.deepEqual(tunnelChecksumErrors(r.data), [], `mutation ${i}: the tunnel's checksums verify`);
      const innerAt = d.l4 + (d.proto === 17 ? 12 : (r.data.readUInt16BE(d.l4) & 0x8000 ? 8 : 4));
      assert.equal(r.data.subarray(innerAt).toString('hex'), input.subarray(14).toString('hex'), `mutation ${i}: the packet inside is the input's`);
    }
    assert.ok(tunnelledCount > 1000, `${tunnelledCount} mutated frames were forwarded`);
  });
});
