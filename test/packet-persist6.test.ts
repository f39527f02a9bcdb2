// Persistence with an IPv6 prefix (ipvsadm -p 360 -M 64) through the
// director with BPF_PROG_TEST_RUN: the control plane's 16-byte mask, the
// templates the dataplane keys on it, clients of one /64 on one real server
// and clients of another /64 scheduled on their own; and the prefix read
// back from the pinned maps by a restarted control plane.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatList } from '../src/cli/list-format.js';
import { Director } from '../src/daemon/director.js';
import { XdpAction } from '../src/loader/index.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const inbound = HOP.fromClient;
const RS1 = F.mac(ADDR.rs1Mac).toString('hex');
const FAR = F.mac(ADDR.rsFarMac).toString('hex');

describe('persistence with an IPv6 prefix (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  let sport = 50000;

  /** A SYN from `src` to the VIP's `port`: which real server's MAC it leaves for, checked to be DR's rewrite. */
  const syn = (src: string, port: number): string => {
    const input = F.frame({ l2: inbound, src, dst: ADDR.vip6, sport: sport++, dport: port, flags: F.TCP.SYN });
    const r = t.run(input);
    assert.ok(r.retval === XdpAction.TX || r.retval === XdpAction.REDIRECT, `verdict ${r.retval} for ${src}`);
    const to = r.data.subarray(0, 6).toString('hex');
    const want = F.withMacs(input, to === RS1 ? ADDR.rs1Mac : ADDR.rsFarMac, to === RS1 ? ADDR.dirMac : ADDR.dir2Mac);
    assert.equal(r.data.toString('hex'), want.toString('hex'), `only the MACs change for ${src}`);
    return to;
  };
  const svc = (port: number) => ({ proto: 'tcp' as const, addr: ADDR.vip6, port });
  const addService = async (port: number, netmask?: string) => {
    await t.director.addService({ ...svc(port), scheduler: 'rr', persistent: 360, ...(netmask === undefined ? {} : { netmask }) });
    await t.addReal(svc(port), { addr: ADDR.rs6, port: 0, fwd: 'dr', weight: 1 });
    await t.addReal(svc(port), { addr: ADDR.rs6Far, port: 0, fwd: 'dr', weight: 1 });
  };
  const svcEntry = (port: number) => {
    const e = t.dp.services.get({ addr: ADDR.vip6, port, proto: 6, family: 10 });
    assert.ok(e, `service port ${port}`);
    return e;
  };
  /** The persistence templates of one service, client addresses as keyed. */
  const templates = (port: number): string[] => {
    const id = svcEntry(port).id;
    return [...t.dp.persist.entries()].filter(([k]) => k.svc_id === id).map(([k]) => k.caddr).sort();
  };

  before(() => {
    t = directorNs('xvs-pp6');
  });

  after(() => {
    t?.close();
  });

  test('-M 64 becomes a 16-byte /64 persist_mask; the listing says mask 64', async () => {
    await addService(90, '64');
    assert.equal(svcEntry(90).persist_mask.toString('hex'), 'ffffffffffffffff0000000000000000');
    await addService(92, '1');
    assert.equal(svcEntry(92).persist_mask.toString('hex'), '80000000000000000000000000000000');
    await addService(93, '127');
    assert.equal(svcEntry(93).persist_mask.toString('hex'), 'fffffffffffffffffffffffffffffffe');
    await addService(91);
    assert.equal(svcEntry(91).persist_mask.toString('hex'), 'ffffffffffffffffffffffffffffffff');
    const view = t.director.list(svc(90)).services[0]!;
    assert.deepEqual([view.persistent, view.netmask], [360, '64']);
    assert.equal(t.director.list(svc(91)).services[0]!.netmask, '128');
    const listing = formatList(t.director.list(), { stats: false, exact: false });
    assert.match(listing, /^TCP {2}\[2001:db8::80\]:90 rr persistent 360 mask 64$/m);
    assert.match(listing, /^TCP {2}\[2001:db8::80\]:91 rr persistent 360$/m);
  });

  test('clients of one /64 stick to one real server; another /64 is scheduled on its own', () => {
    const a = syn('2001:db8:ff:1::a', 90);
    // rr would alternate; the template of the /64 holds every later client of it.
    for (const c of ['2001:db8:ff:1::a', '2001:db8:ff:1::b', '2001:db8:ff:1:ffff:ffff:ffff:ffff', '2001:db8:ff:1::']) {
      assert.equal(syn(c, 90), a, `${c} is in the first client's /64`);
    }
    const b = syn('2001:db8:ff:2::a', 90);
    assert.notEqual(b, a, 'a client of another /64 takes the next rr pick, not the first template');
    for (const c of ['2001:db8:ff:2::b', '2001:db8:ff:2:8000::1']) assert.equal(syn(c, 90), b, `${c} is in the second /64`);
    assert.equal(syn('2001:db8:ff:1::c', 90), a, 'the first /64 still goes where it went');
    assert.deepEqual(templates(90), ['2001:db8:ff:1::', '2001:db8:ff:2::'], 'one template per /64, keyed by the masked address');
  });

  test('without -M an IPv6 service persists per client address', () => {
    const first = syn('2001:db8:ff:1::a', 91);
    assert.equal(syn('2001:db8:ff:1::a', 91), first, 'the same client stays');
    assert.notEqual(syn('2001:db8:ff:1::b', 91), first, 'a neighbour of the same /64 is scheduled on its own');
    assert.deepEqual(templates(91), ['2001:db8:ff:1::a', '2001:db8:ff:1::b']);
  });

  test('-E changes the prefix; a restarted control plane reads it back from the maps', async () => {
    await t.director.editService({ ...svc(90), scheduler: 'rr', persistent: 600, netmask: '48' });
    assert.equal(svcEntry(90).persist_mask.toString('hex'), 'ffffffffffff00000000000000000000');
    const before = t.director.list();
    const again = new Director(t.dp, { neighbours: false });
    const after = again.list();
    assert.deepEqual(after.services.map((s) => [s.port, s.persistent, s.netmask]), before.services.map((s) => [s.port, s.persistent, s.netmask]));
    assert.deepEqual(after.services.find((s) => s.port === 90)?.netmask, '48');
    // Under /48 the two /64s are one client group: a new template of 2001:db8:ff::/48.
    const c = syn('2001:db8:ff:7::1', 90);
    assert.equal(syn('2001:db8:ff:8::1', 90), c);
    assert.ok(templates(90).includes('2001:db8:ff::'));
  });
});
