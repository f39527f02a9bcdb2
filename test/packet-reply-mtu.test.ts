// NAT, FULLNAT and NAT64 replies that no longer fit the client side's MTU,
// through BPF_PROG_TEST_RUN. The director is attached to d0 (the client
// side) and learns its MTU by a next-hop refresh, as xvsd does; a reply
// that outgrows it once translated is answered as a router answers:
// ICMP fragmentation-needed (IPv4 with DF; NAT64's real servers are IPv4,
// told the MTU less the 20 bytes the reply grows by) or ICMPv6 packet too
// big to the real server, quoting the reply as it arrived; IPv4 without
// DF is dropped. Expected frames are built from scratch here, every
// checksum computed independently.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Director } from '../src/daemon/director.js';
import { MapWriter } from '../src/daemon/map-writer.js';
import { needsRefresh, NexthopRefresher } from '../src/daemon/nexthop-refresh.js';
import { withNetns, withNetnsAsync, XdpAction } from '../src/loader/index.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason, nsSh } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const { fromClient, toClient } = HOP;
const fromReal = HOP.fromFar;
/** An ICMP answer to the real server: back where its reply came from. */
const toReal = HOP.toFar;
const CLIENT_MTU = 1400;
const T4 = { unreach: 3, fragNeeded: 4 } as const;
const T6_TOO_BIG = 2;

/** A UDP or TCP frame whose IP packet is `total` bytes long. */
function sized(o: { l2: { dst: string; src: string }; proto: 'udp' | 'tcp'; src: string; dst: string; sport: number; dport: number; total: number; df?: boolean; ttl?: number }): Buffer {
  const v6 = o.src.includes(':');
  const hdrs = (v6 ? 40 : 20) + (o.proto === 'tcp' ? 20 : 8);
  return F.packet({
    l2: o.l2, proto: o.proto, src: o.src, dst: o.dst, sport: o.sport, dport: o.dport,
    ...(o.proto === 'tcp' ? { flags: F.TCP.ACK | F.TCP.PSH } : {}),
    payload: Buffer.alloc(o.total - hdrs, 0x5a),
    ...(v6 ? { ip6: { hopLimit: o.ttl ?? 64 } } : { ip: { ttl: o.ttl ?? 64, df: o.df ?? true } }),
  });
}

/** The source port an untagged frame's transport header carries. */
const sportOf = (f: Buffer) => f.readUInt16BE(14 + (f[14]! >> 4 === 6 ? 40 : 20));

describe('NAT replies past the client side\'s MTU (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const count = (name: string) => t.director.counters()[name] ?? 0;
  const counts = () => ({ big: count('reply_too_big'), icmp: count('frag_needed'), drop: count('drop_too_big'), replies: count('nat_reply') });
  const refresh = () => withNetnsAsync(t.ns, () => t.director.refreshNexthops());

  before(async () => {
    t = directorNs('xvs-pmtu');
    // NAT64: an IPv6 VIP, an IPv4 real server behind d1, UDP (DNS with EDNS, say).
    const k64 = { proto: 'udp' as const, addr: ADDR.vip6, port: 53 };
    await t.director.addService({ ...k64, scheduler: 'rr' });
    await t.addReal(k64, { addr: ADDR.rsFar, port: 53, fwd: 'fullnat', weight: 1 });
    await t.director.addLaddr(k64, ADDR.dirFar);
    // Two-armed NAT, IPv4 and IPv6, the real servers behind d1.
    for (const [vip, real] of [[ADDR.vip, ADDR.rsFar], [ADDR.vip6, ADDR.rs6Far]] as const) {
      const k = { proto: 'udp' as const, addr: vip, port: 54 };
      await t.director.addService({ ...k, scheduler: 'rr' });
      await t.addReal(k, { addr: real, port: 54, fwd: 'nat', weight: 1 });
    }
    // FULLNAT, TCP.
    const kf = { proto: 'tcp' as const, addr: ADDR.vip, port: 80 };
    await t.director.addService({ ...kf, scheduler: 'rr' });
    await t.addReal(kf, { addr: ADDR.rsFar, port: 8080, fwd: 'fullnat', weight: 1 });
    await t.director.addLaddr(kf, ADDR.dirFar);
    // The director on d0, whose MTU it learns at the refresh, as xvsd at its start.
    withNetns(t.ns, () => t.dp.attach([{ name: 'd0', ifindex: t.ifindex, role: 'both' }], 'generic'));
    nsSh(t.ns, 'ip', ['link', 'set', 'd0', 'mtu', String(CLIENT_MTU)]);
    await refresh();
    assert.equal(t.dp.ifMtus.get(t.ifindex), CLIENT_MTU, 'd0\'s MTU in xvs_if_mtus');
  });

  after(() => {
    if (t) withNetns(t.ns, () => t.dp.detach());
    t?.close();
  });

  describe('NAT64 (an IPv4 reply grows by 20 bytes)', () => {
    /** Opens a UDP flow from the client's port; returns the local port it left with. */
    const open = (cport: number) => {
      const r = t.run(F.packet({ l2: fromClient, proto: 'udp', src: ADDR.client6, dst: ADDR.vip6, sport: cport, dport: 53, payload: Buffer.from('q') }));
      assert.equal(r.retval, XdpAction.REDIRECT, 'the query goes to the real server behind d1');
      assert.equal(r.data[14]! >> 4, 4, 'as IPv4');
      return sportOf(r.data);
    };
    const reply = (lport: number, total: number, df = true) =>
      sized({ l2: fromReal, proto: 'udp', src: ADDR.rsFar, dst: ADDR.dirFar, sport: 53, dport: lport, total, df });

    test('a UDP reply exactly at the limit (IPv4 MTU - 20) is forwarded, translated', () => {
      const cport = 40001;
      const lport = open(cport);
      const before = counts();
      const want = sized({ l2: toClient, proto: 'udp', src: ADDR.vip6, dst: ADDR.client6, sport: 53, dport: cport, total: CLIENT_MTU, ttl: 63 });
      const r = t.expect(reply(lport, CLIENT_MTU - 20), XdpAction.TX, want, 'at the limit');
      assert.equal(r.data.length - 14, CLIENT_MTU);
      const now = counts();
      assert.deepEqual([now.big - before.big, now.replies - before.replies], [0, 1]);
    });

    test('one byte over with DF: ICMP fragmentation-needed to the real server, MTU - 20, quoting the reply', () => {
      const cport = 40002;
      const lport = open(cport);
      const before = counts();
      const over = reply(lport, CLIENT_MTU - 19);
      const want = F.icmpError({ l2: toReal, src: ADDR.dirFar, dst: ADDR.rsFar, type: T4.unreach, code: T4.fragNeeded, rest: CLIENT_MTU - 20, quote: F.quoteOf(over, 28) });
      t.expect(over, XdpAction.TX, want, 'one byte over');
      const now = counts();
      assert.deepEqual([now.big - before.big, now.icmp - before.icmp, now.drop - before.drop, now.replies - before.replies], [1, 1, 0, 0]);
      // The flow is unharmed: the real server's next reply, sized for the MTU it was told, goes through.
      const fits = sized({ l2: toClient, proto: 'udp', src: ADDR.vip6, dst: ADDR.client6, sport: 53, dport: cport, total: CLIENT_MTU, ttl: 63 });
      t.expect(reply(lport, CLIENT_MTU - 20), XdpAction.TX, fits, 'the next reply, resized');
    });

    test('one byte over without DF: dropped and counted', () => {
      const lport = open(40003);
      const before = counts();
      t.expect(reply(lport, CLIENT_MTU - 19, false), XdpAction.DROP, undefined, 'no DF');
      const now = counts();
      assert.deepEqual([now.big - before.big, now.icmp - before.icmp, now.drop - before.drop, now.replies - before.replies], [1, 0, 1, 0]);
    });
  });

  describe('two-armed NAT (the server side\'s MTU larger than the client side\'s)', () => {
    const cases = [
      {
        name: 'IPv4: a reply over the client side\'s MTU gets ICMP fragmentation-needed from the client\'s address; one that fits goes',
        cport: 41001, client: ADDR.client, vip: ADDR.vip, rs: ADDR.rsFar, type: T4.unreach, code: T4.fragNeeded, quote: 28, icmpTtl: undefined,
      },
      {
        name: 'IPv6: a reply over the client side\'s MTU gets ICMPv6 packet too big, quoting its first 128 bytes; one that fits goes',
        cport: 41002, client: ADDR.client6, vip: ADDR.vip6, rs: ADDR.rs6Far, type: T6_TOO_BIG, code: 0, quote: 128, icmpTtl: 255,
      },
    ] as const;
    for (const c of cases) {
      test(c.name, () => {
        const q = t.run(F.packet({ l2: fromClient, proto: 'udp', src: c.client, dst: c.vip, sport: c.cport, dport: 54, payload: Buffer.from('q') }));
        assert.equal(q.retval, XdpAction.REDIRECT);
        const reply = (total: number) => sized({ l2: fromReal, proto: 'udp', src: c.rs, dst: c.client, sport: 54, dport: c.cport, total });
        const before = counts();
        const over = reply(CLIENT_MTU + 1);
        const want = F.icmpError({
          l2: toReal, src: c.client, dst: c.rs, type: c.type, code: c.code, rest: CLIENT_MTU, quote: F.quoteOf(over, c.quote),
          ...(c.icmpTtl === undefined ? {} : { ttl: c.icmpTtl }),
        });
        t.expect(over, XdpAction.TX, want, 'one byte over');
        const fits = sized({ l2: toClient, proto: 'udp', src: c.vip, dst: c.client, sport: 54, dport: c.cport, total: CLIENT_MTU, ttl: 63 });
        t.expect(reply(CLIENT_MTU), XdpAction.TX, fits, 'at the limit');
        const now = counts();
        assert.deepEqual([now.big - before.big, now.icmp - before.icmp, now.replies - before.replies], [1, 1, 1]);
      });
    }
  });

  test('FULLNAT, TCP: a segment over the client side\'s MTU gets ICMP fragmentation-needed from the local address', () => {
    const cport = 42001;
    const syn = t.run(F.packet({ l2: fromClient, proto: 'tcp', src: ADDR.client, dst: ADDR.vip, sport: cport, dport: 80, flags: F.TCP.SYN }));
    assert.equal(syn.retval, XdpAction.REDIRECT);
    const lport = sportOf(syn.data);
    const before = counts();
    const over = sized({ l2: fromReal, proto: 'tcp', src: ADDR.rsFar, dst: ADDR.dirFar, sport: 8080, dport: lport, total: CLIENT_MTU + 1 });
    const want = F.icmpError({ l2: toReal, src: ADDR.dirFar, dst: ADDR.rsFar, type: T4.unreach, code: T4.fragNeeded, rest: CLIENT_MTU, quote: F.quoteOf(over, 28) });
    t.expect(over, XdpAction.TX, want, 'one byte over');
    const now = counts();
    assert.deepEqual([now.big - before.big, now.icmp - before.icmp, now.replies - before.replies], [1, 1, 0]);
  });

  test('the refresher follows the client side\'s MTU, an interface no next hop uses, by its link event', async () => {
    // A director of its own whose `ip` runs in the namespace, as xvsd's does in its own.
    const director = new Director(t.dp, { netns: t.ns, neighbours: false });
    const refresher = new NexthopRefresher(director, { netns: t.ns });
    try {
      await refresher.start();
      assert.equal(t.dp.ifMtus.get(t.ifindex), CLIENT_MTU);
      // Settle first: events of the set-up (local routes on d1) would refresh anyway.
      await sleep(300);
      await refresher.idle();
      // The director's own interface is watched though no next hop uses it
      // (this kernel also reports local routes after an MTU change, which
      // refresh anyway; another may not).
      const d0 = { kind: 'link' as const, deleted: false, ifindex: t.ifindex, ifname: 'd0', up: true, address: ADDR.dirMac };
      assert.equal(needsRefresh({ ...d0, mtu: 1350 }, director.nexthopView()), true, 'an MTU change of d0 is news');
      assert.equal(needsRefresh({ ...d0, mtu: CLIENT_MTU }, director.nexthopView()), false, 'its MTU unchanged is not');
      const started = refresher.refreshes;
      nsSh(t.ns, 'ip', ['link', 'set', 'd0', 'mtu', '1350']);
      // The period is 30 s: only the event can bring it within the 5 s.
      const t0 = Date.now();
      while (t.dp.ifMtus.get(t.ifindex) !== 1350 && Date.now() - t0 < 5000) await sleep(5);
      assert.equal(t.dp.ifMtus.get(t.ifindex), 1350, 'the new MTU within 5 s');
      assert.ok(refresher.refreshes > started);
    } finally {
      refresher.stop();
      await refresher.idle();
      nsSh(t.ns, 'ip', ['link', 'set', 'd0', 'mtu', String(CLIENT_MTU)]);
      await refresh();
    }
    assert.equal(t.dp.ifMtus.get(t.ifindex), CLIENT_MTU);
  });

  test('a later xvsd\'s first write clears the entries an earlier one left in the pinned map', () => {
    // As if the pins held an interface of an earlier run: ifindex 7, no longer used.
    new MapWriter(t.dp).writeIfMtus(new Map([[7, 9000], [t.ifindex, CLIENT_MTU]]));
    assert.equal(t.dp.ifMtus.get(7), 9000);
    const written = new MapWriter(t.dp).writeIfMtus(new Map([[t.ifindex, CLIENT_MTU]]));
    assert.deepEqual(written, [7]);
    assert.equal(t.dp.ifMtus.get(7), 0);
    assert.equal(t.dp.ifMtus.get(t.ifindex), CLIENT_MTU);
  });

  test('an MTU change reaches the map at the next refresh; no entry (the interface no longer used): forwarded as before', async () => {
    const cport = 43001;
    const q = t.run(F.packet({ l2: fromClient, proto: 'udp', src: ADDR.client, dst: ADDR.vip, sport: cport, dport: 54, payload: Buffer.from('q') }));
    assert.equal(q.retval, XdpAction.REDIRECT);
    const reply = (total: number) => sized({ l2: fromReal, proto: 'udp', src: ADDR.rsFar, dst: ADDR.client, sport: 54, dport: cport, total });
    const fits = (total: number) => sized({ l2: toClient, proto: 'udp', src: ADDR.vip, dst: ADDR.client, sport: 54, dport: cport, total, ttl: 63 });
    try {
      nsSh(t.ns, 'ip', ['link', 'set', 'd0', 'mtu', '1500']);
      await refresh();
      assert.equal(t.dp.ifMtus.get(t.ifindex), 1500);
      t.expect(reply(CLIENT_MTU + 1), XdpAction.TX, fits(CLIENT_MTU + 1), 'fits the larger MTU');
      withNetns(t.ns, () => t.dp.detach());
      await refresh();
      assert.equal(t.dp.ifMtus.get(t.ifindex), 0, 'no longer an interface of the director: unknown');
      const before = counts();
      t.expect(reply(1600), XdpAction.TX, fits(1600), 'unknown MTU: forwarded as before');
      assert.equal(counts().big - before.big, 0);
    } finally {
      nsSh(t.ns, 'ip', ['link', 'set', 'd0', 'mtu', String(CLIENT_MTU)]);
    }
  });
});
