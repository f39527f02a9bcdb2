import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addr16ToIp, ipToAddr16, sumValues, type Codec } from '../src/maps/codec.js';
import { addrKey, config, conn, connKey, nat, nexthop, persist, persistKey, real, stats, svc, svcKey, u32Codec, u64Codec } from '../src/maps/codecs.js';

function roundTrip<T>(c: Codec<T>, v: T): void {
  const b = c.encode(v);
  assert.equal(b.length, c.size, `${c.name} size`);
  assert.deepEqual(c.decode(b), v, `${c.name} round trip`);
  // Decoding at an offset inside a larger buffer gives the same value.
  const big = Buffer.alloc(c.size + 13, 0xee);
  c.encodeInto(v, big, 13);
  assert.deepEqual(c.decode(big, 13), v, `${c.name} at an offset`);
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('codecs', () => {
  it('round-trip every struct', () => {
    roundTrip(svcKey, { addr: '192.0.2.10', port: 80, proto: 6, family: 2 });
    roundTrip(svcKey, { addr: '2001:db8::10', port: 443, proto: 17, family: 10 });
    roundTrip(svc, { id: 7, flags: 0x80000001, sched: 3, lookup: 1, tbl_size: 65521, persist_timeout: 360, persist_mask: hex('ffffff00' + '00'.repeat(12)) });
    roundTrip(real, { addr: '10.1.2.3', port: 8080, family: 2, fwd: 3, weight: 100, flags: 1, svc_id: 7, gen: 0xfffffffe, u_threshold: 100, l_threshold: 50, last_weight: 100, tun_port: 6080, tun_type: 1, tun_flags: 2 });
    roundTrip(real, { addr: 'fd00::2', port: 65535, family: 10, fwd: 1, weight: 0, flags: 0, svc_id: 0, gen: 1, u_threshold: 0, l_threshold: 0, last_weight: 65535, tun_port: 0, tun_type: 2, tun_flags: 1 });
    roundTrip(connKey, { saddr: '198.51.100.7', daddr: '192.0.2.10', sport: 40000, dport: 80, proto: 6, family: 2 });
    roundTrip(connKey, { saddr: '2001:db8:1::7', daddr: '2001:db8::10', sport: 1, dport: 2, proto: 17, family: 10 });
    roundTrip(conn, { last_seen: 2 ** 53 - 1, real_id: 16383, real_gen: 9, svc_id: 1023, state: 5, flags: 1, lport: 61000, laddr_id: 3 });
    roundTrip(nat, { last_seen: 7, vaddr: '192.0.2.80', caddr: '203.0.113.7', vport: 80, cport: 40000, real_id: 3, svc_id: 2, ifindex: 9, cmac: '02:00:00:00:00:fe', smac: '02:00:00:00:01:01', family: 2, state: 1, flags: 0 });
    roundTrip(nat, { last_seen: 0, vaddr: '2001:db8::80', caddr: '2001:db8:ff::7', vport: 443, cport: 1, real_id: 0, svc_id: 0, ifindex: 1, cmac: '00:00:00:00:00:00', smac: 'ff:ff:ff:ff:ff:ff', family: 10, state: 11, flags: 1 });
    roundTrip(addrKey, { addr: '192.0.2.11', family: 2 });
    roundTrip(persistKey, { caddr: '203.0.113.0', svc_id: 3, family: 2 });
    roundTrip(persist, { last_seen: 12345, real_id: 4, real_gen: 5 });
    roundTrip(stats, { conns: 1, inpkts: 2 ** 40, inbytes: 3, outpkts: 0, outbytes: Number.MAX_SAFE_INTEGER });
    roundTrip(config, { hz: 250, flags: 1, timeout: Array.from({ length: 16 }, (_, i) => i * 1000 + 7) });
    roundTrip(nexthop, { ifindex: 7, mtu: 1500, dmac: '02:00:00:00:00:0b', smac: '02:00:00:00:01:01', saddr: '192.0.2.1' });
    roundTrip(nexthop, { ifindex: 0, mtu: 0, dmac: '00:00:00:00:00:00', smac: 'ff:ff:ff:ff:ff:ff', saddr: '2001:db8::1' });
    roundTrip(u32Codec, 0xdeadbeef);
    roundTrip(u64Codec, 2 ** 52 + 1);
  });

  it('encodes a service key byte for byte', () => {
    const b = svcKey.encode({ addr: '192.0.2.10', port: 80, proto: 6, family: 2 });
    assert.deepEqual(b, hex(`
      c0 00 02 0a  00 00 00 00  00 00 00 00  00 00 00 00
      00 50  06  02`));
  });

  it('encodes a real server byte for byte', () => {
    const b = real.encode({ addr: '10.0.0.2', port: 8080, family: 2, fwd: 2, weight: 3, flags: 1, svc_id: 7, gen: 0x01020304, u_threshold: 10, l_threshold: 0x0100, last_weight: 0x0203, tun_port: 0x17c0, tun_type: 1, tun_flags: 1 });
    assert.deepEqual(b, hex(`
      0a 00 00 02  00 00 00 00  00 00 00 00  00 00 00 00
      1f 90  02  02
      03 00 00 00  01 00 00 00  07 00 00 00  04 03 02 01
      0a 00 00 00  00 01 00 00  03 02 00 00
      17 c0  01  01`));
  });

  it('writes zeros in padding', () => {
    const cases: [Codec<never>, unknown, [number, number][]][] = [
      [svc as Codec<never>, { id: 1, flags: 2, sched: 3, lookup: 4, tbl_size: 5, persist_timeout: 0, persist_mask: Buffer.alloc(16) }, [[10, 12]]],
      [real as Codec<never>, { addr: '10.0.0.2', port: 1, family: 2, fwd: 1, weight: 1, flags: 0, svc_id: 0, gen: 0, u_threshold: 0, l_threshold: 0, last_weight: 0, tun_port: 0, tun_type: 0, tun_flags: 0 }, [[4, 16]]],
      [persistKey as Codec<never>, { caddr: '1.2.3.0', svc_id: 1, family: 2 }, [[4, 16], [21, 24]]],
      [connKey as Codec<never>, { saddr: '1.2.3.4', daddr: '5.6.7.8', sport: 1, dport: 2, proto: 6, family: 2 }, [[38, 40]]],
      [conn as Codec<never>, { last_seen: 1, real_id: 2, real_gen: 3, svc_id: 4, state: 1, flags: 0, lport: 0, laddr_id: 0 }, [[28, 32]]],
    ];
    for (const [c, v, ranges] of cases) {
      const b = Buffer.alloc(c.size, 0xff);
      c.encodeInto(v as never, b, 0);
      for (const [from, to] of ranges) {
        assert.ok(b.subarray(from, to).every((x) => x === 0), `${c.name} bytes ${from}..${to} are ${b.subarray(from, to).toString('hex')}`);
      }
      assert.deepEqual(b, c.encode(v as never), `${c.name}: encodeInto over garbage equals encode`);
    }
  });

  it('refuses an address of the wrong family', () => {
    assert.throws(() => svcKey.encode({ addr: '2001:db8::1', port: 80, proto: 6, family: 2 }), { code: 'BAD_ADDRESS' });
    assert.throws(() => real.encode({ addr: '10.0.0.1', port: 80, family: 10, fwd: 1, weight: 1, flags: 0, svc_id: 0, gen: 0, u_threshold: 0, l_threshold: 0, last_weight: 1, tun_port: 0, tun_type: 0, tun_flags: 0 }), { code: 'BAD_ADDRESS' });
    assert.throws(() => svcKey.encode({ addr: 'not-an-ip', port: 80, proto: 6, family: 2 }), { code: 'BAD_ADDRESS' });
  });

  it('refuses a missing field', () => {
    assert.throws(() => svc.encode({ id: 1 } as never), { code: 'BAD_ARGUMENT' });
  });

  it('converts addresses both ways', () => {
    const v4 = ipToAddr16('198.51.100.255');
    assert.equal(v4.family, 2);
    assert.deepEqual(v4.bytes, hex('c63364ff 00000000 00000000 00000000'));
    assert.equal(addr16ToIp(v4.bytes, 2), '198.51.100.255');

    const v6 = ipToAddr16('2001:DB8::8:800:200C:417A');
    assert.equal(v6.family, 10);
    assert.deepEqual(v6.bytes, hex('20010db8 00000000 00080800 200c417a'));

    // The WHATWG URL parser's IPv6 serializer is the RFC 5952 short form.
    for (const ip of ['::', '::1', '1::', 'fe80::1:0:0:1', '2001:db8:0:0:1:0:0:1', '2001:0:0:1:0:0:0:1',
      '1:2:3:4:5:6:7:8', '::ffff:192.0.2.1', '2001:db8::', '0:1:0:1:0:1:0:1', '2001:db8:0:1:1:1:1:1']) {
      const short = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
      assert.equal(addr16ToIp(ipToAddr16(ip).bytes, 10), short, ip);
    }
    assert.throws(() => ipToAddr16('fe80::1%eth0'), { code: 'BAD_ADDRESS' });
    assert.throws(() => ipToAddr16('1.2.3'), { code: 'BAD_ADDRESS' });
  });

  it('reads an address without a family member as IPv4 when only addr[0] is set', () => {
    const b = Buffer.alloc(nexthop.size);
    hex('0a000001').copy(b, 20);
    assert.equal(nexthop.decode(b).saddr, '10.0.0.1');
    b[35] = 1;
    assert.equal(nexthop.decode(b).saddr, 'a00:1::1');
  });

  it('refuses a MAC that is not one, and a mask of the wrong size', () => {
    const nh = { ifindex: 1, mtu: 1500, dmac: '02:00:00:00:00:0b', smac: '02:00:00:00:01:01', saddr: '192.0.2.1' };
    assert.throws(() => nexthop.encode({ ...nh, dmac: '02:00:00:00:0b' }), { code: 'BAD_ADDRESS' });
    assert.throws(() => nexthop.encode({ ...nh, smac: '02:00:00:00:01:zz' }), { code: 'BAD_ADDRESS' });
    assert.throws(() => svc.encode({ id: 1, flags: 0, sched: 1, lookup: 0, tbl_size: 0, persist_timeout: 0, persist_mask: Buffer.alloc(4) }), { code: 'BAD_ARGUMENT' });
  });

  it('lays out fields at C offsets', () => {
    const offsets = (c: Codec<unknown>) => Object.fromEntries(c.fields.map((f) => [f.name, [f.offset, f.size]]));
    assert.deepEqual(offsets(svcKey as Codec<unknown>), { addr: [0, 16], port: [16, 2], proto: [18, 1], family: [19, 1] });
    assert.deepEqual(offsets(conn as Codec<unknown>), { last_seen: [0, 8], real_id: [8, 4], real_gen: [12, 4], svc_id: [16, 4], state: [20, 1], flags: [21, 1], lport: [22, 2], laddr_id: [24, 4], pad0: [28, 4] });
    assert.deepEqual([svcKey.size, svc.size, real.size, connKey.size, conn.size, stats.size, config.size, nat.size], [20, 36, 52, 40, 32, 40, 72, 80]);
  });

  it('sums per-CPU values field by field', () => {
    const a = { conns: 1, inpkts: 2, inbytes: 3, outpkts: 4, outbytes: 5 };
    assert.deepEqual(sumValues([a, a, { ...a, conns: 10 }]), { conns: 12, inpkts: 6, inbytes: 9, outpkts: 12, outbytes: 15 });
    assert.equal(sumValues([1, 2, 3]), 6);
    assert.deepEqual(sumValues([{ addr: 'x', n: 1 }, { addr: 'y', n: 2 }]), { addr: 'x', n: 3 });
  });
});
