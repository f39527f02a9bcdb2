// What xvsadm -G and xvs status say about FULLNAT's local addresses, checked
// against flows opened through BPF_PROG_TEST_RUN: the CONNS of each address
// is the number of new flows whose frame to the real server left from it
// (read off the frames, not the maps); a pool of both families serves each
// real server from its own; the warnings a change answers with name the
// real servers no address can serve, and status lists them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdpAction } from '../src/loader/index.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const { fromClient } = HOP;
const RPORT = 8080;
const LIPS = ['198.51.100.1', '198.51.100.2', '198.51.100.3'];
const LIP6 = '2001:db8:1::1';

/** The source address of a frame to the real server (IPv4 or IPv6). */
function sourceOf(frame: Buffer): string {
  const ip = frame.subarray(14);
  return ip[0]! >> 4 === 4 ? [...ip.subarray(12, 16)].join('.') : F.addrText(ip.subarray(8, 24));
}

describe('xvsadm -G and xvs status: local addresses and the flows holding their ports', { skip }, () => {
  let t: DirectorNs;
  const v4 = { proto: 'tcp' as const, addr: ADDR.vip, port: 80 };
  const nat64 = { proto: 'tcp' as const, addr: ADDR.vip6, port: 80 };

  before(async () => {
    t = directorNs('xvs-lav', { connTableSize: 65536 });
    await t.director.addService({ ...v4, scheduler: 'rr' });
    for (const a of LIPS) await t.director.addLaddr(v4, a);
    await t.addReal(v4, { addr: ADDR.rsFar, port: RPORT, fwd: 'fullnat', weight: 1 });
    await t.director.addService({ ...nat64, scheduler: 'rr' });
    await t.director.addLaddr(nat64, LIP6);
    await t.director.addLaddr(nat64, LIPS[1]!);
    await t.addReal(nat64, { addr: ADDR.rsFar, port: RPORT, fwd: 'fullnat', weight: 1 });
  });

  after(() => {
    t?.close();
  });

  /** n new flows from distinct clients to `vip`; the local address each left from. */
  function open(vip: string, n: number, base: number): Map<string, number> {
    const seen = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const src = vip === ADDR.vip ? `203.0.113.${1 + (i % 250)}` : `2001:db8:ff::${(i % 250).toString(16)}`;
      const r = t.run(F.packet({ l2: fromClient, proto: 'tcp', src, dst: vip, sport: base + i, dport: 80, flags: F.TCP.SYN }));
      assert.equal(r.retval, XdpAction.REDIRECT, `flow ${i}: ${JSON.stringify(t.director.counters())}`);
      const lip = sourceOf(r.data);
      seen.set(lip, (seen.get(lip) ?? 0) + 1);
    }
    return seen;
  }

  test('CONNS per address is the flows that left from it; the flows spread over the pool', () => {
    const seen = open(ADDR.vip, 300, 30000);
    assert.deepEqual([...seen.keys()].sort(), [...LIPS].sort(), 'every address of the pool in use');
    for (const [a, n] of seen) assert.ok(n >= 50, `${a}: ${n} of 300 flows`);
    const [view] = t.director.laddrView(v4);
    assert.deepEqual(view, { ...v4, laddrs: LIPS.map((addr) => ({ addr, conns: seen.get(addr) ?? 0 })) });
  });

  test('NAT64: IPv4 real servers take the IPv4 address of a mixed pool, and only it', () => {
    const seen = open(ADDR.vip6, 40, 40000);
    assert.deepEqual([...seen], [[LIPS[1], 40]]);
    const all = t.director.laddrView();
    assert.deepEqual(all.map((v) => `${v.addr}:${v.port}`), [`${ADDR.vip}:80`, `${ADDR.vip6}:80`], 'every service, in the order of their ids');
    assert.deepEqual(all[1]!.laddrs, [{ addr: LIP6, conns: 0 }, { addr: LIPS[1], conns: 40 }], 'the same address counts per service');
  });

  test('status lists each FULLNAT pool; removing an address warns and status names who cannot be served', async () => {
    const before = t.director.status();
    assert.deepEqual(before.fullnat.map((s) => [s.service, s.laddrs.map((l) => l.addr), s.realsWithoutLaddr]), [
      [`tcp ${ADDR.vip}:80`, LIPS, []],
      [`tcp ${ADDR.vip6}:80`, [LIP6, LIPS[1]], []],
    ]);
    // The counters status shows include FULLNAT's, by name.
    for (const c of ['fnat_no_laddr', 'fnat_no_port', 'toa_added', 'toa_no_room', 'nat_refused']) {
      assert.equal(typeof before.counters[c], 'number', c);
    }

    // The IPv4 address goes: the NAT64 service keeps an IPv6 one its IPv4 real server cannot use.
    const res = await t.director.delLaddr(nat64, LIPS[1]!);
    assert.deepEqual(res, { warnings: [
      `-t [${ADDR.vip6}]:80 has no IPv4 local address: new connections to FULLNAT real server ${ADDR.rsFar}:${RPORT} are dropped until one is added (-P -t [${ADDR.vip6}]:80 -z ADDR)`,
    ] });
    const after = t.director.status().fullnat[1]!;
    assert.deepEqual(after.realsWithoutLaddr, [`${ADDR.rsFar}:${RPORT}`]);
    assert.deepEqual(after.laddrs, [{ addr: LIP6, conns: 0 }]);
    // What the warning says is what the dataplane does.
    const dropped = t.director.counters().fnat_no_laddr ?? 0;
    const r = t.run(F.packet({ l2: fromClient, proto: 'tcp', src: '2001:db8:ff::99', dst: ADDR.vip6, sport: 50000, dport: 80, flags: F.TCP.SYN }));
    assert.equal(r.retval, XdpAction.DROP);
    assert.equal((t.director.counters().fnat_no_laddr ?? 0) - dropped, 1);
    // Put back, no warning; an address added or a DR real server changes nothing to warn about.
    assert.equal(await t.director.addLaddr(nat64, LIPS[1]!), undefined);
    assert.equal(await t.addReal(v4, { addr: ADDR.rs1, port: 80, fwd: 'dr', weight: 1 }), undefined);
    assert.deepEqual(t.director.status().fullnat[1]!.realsWithoutLaddr, []);
  });

  test('a batch warns about the state it ends in, not the steps on the way', async () => {
    const k = { proto: 'tcp' as const, addr: ADDR.vip6, port: 81 };
    const res = await t.director.batch([
      { op: 'add-service', svc: { ...k, scheduler: 'rr' } },
      { op: 'add-real', key: k, real: { addr: ADDR.rs6Far, port: RPORT, fwd: 'fullnat', weight: 1 } },
      { op: 'add-real', key: k, real: { addr: ADDR.rsFar, port: RPORT, fwd: 'fullnat', weight: 1 } },
      { op: 'add-real', key: k, real: { addr: '198.51.100.20', port: RPORT, fwd: 'fullnat', weight: 1 } },
      { op: 'add-laddr', key: k, laddr: LIP6 },
    ]);
    assert.deepEqual(res, { warnings: [
      `-t [${ADDR.vip6}]:81 has no IPv4 local address: new connections to FULLNAT real servers ${ADDR.rsFar}:${RPORT}, 198.51.100.20:${RPORT} are dropped until one is added (-P -t [${ADDR.vip6}]:81 -z ADDR)`,
    ] });
    assert.equal(await t.director.batch([{ op: 'add-laddr', key: k, laddr: LIPS[2]! }]), undefined);
  });
});
