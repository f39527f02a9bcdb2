// xvs_nat_real_slots: the dataplane asks for a reply only while the slot of
// the packet's source holds a NAT or FULLNAT real server's address. The
// control plane keeps the slots in step with xvs_nat_reals (one count per
// address there, deleted real servers' too), puts them right at start, and
// computes the slot as the dataplane does (checked here through
// BPF_PROG_TEST_RUN, IPv4 and IPv6).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Director } from '../src/daemon/director.js';
import { XdpAction } from '../src/loader/index.js';
import { natRealSlot } from '../src/schedulers/hash.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const RPORT = 8080;

describe('xvs_nat_real_slots', { skip }, () => {
  let t: DirectorNs;
  const slots = () => t.dp.natRealSlots;
  const size = () => slots().raw.maxEntries;
  const countAt = (addr: string) => slots().get(natRealSlot(addr, size())) ?? 0;
  const total = () => {
    let n = 0;
    for (const [, v] of slots().entries()) n += v;
    return n;
  };
  const inbound = (v6: boolean, sport: number, flags: number) => F.frame({
    l2: HOP.fromClient, src: v6 ? ADDR.client6 : ADDR.client, dst: v6 ? ADDR.vip6 : ADDR.vip,
    sport, dport: 80, flags,
  });
  const reply = (v6: boolean, sport: number, flags: number) => F.frame({
    l2: HOP.fromRs1, src: v6 ? ADDR.rs6 : ADDR.rs1, dst: v6 ? ADDR.client6 : ADDR.client,
    sport: RPORT, dport: sport, flags,
  });

  before(async () => {
    t = directorNs('xvs-nrs');
    await t.director.addService({ proto: 'tcp', addr: ADDR.vip, port: 80, scheduler: 'rr' });
    await t.director.addService({ proto: 'tcp', addr: ADDR.vip6, port: 80, scheduler: 'rr' });
  });

  after(() => {
    t?.close();
  });

  test('one count per NAT address, however many real servers share it; none for DR', async () => {
    assert.equal(total(), 0);
    await t.addReal({ proto: 'tcp', addr: ADDR.vip, port: 80 }, { addr: ADDR.rsNoNeigh, port: 0, fwd: 'dr', weight: 0 });
    assert.equal(total(), 0, 'a DR real server is no source of replies');
    await t.addReal({ proto: 'tcp', addr: ADDR.vip, port: 80 }, { addr: ADDR.rs1, port: RPORT, fwd: 'nat', weight: 1 });
    await t.addReal({ proto: 'tcp', addr: ADDR.vip6, port: 80 }, { addr: ADDR.rs6, port: RPORT, fwd: 'nat', weight: 1 });
    assert.equal(t.dp.natReals.get({ addr: ADDR.rs1, family: 2 }), 1);
    assert.equal(countAt(ADDR.rs1), 1);
    assert.equal(countAt(ADDR.rs6), natRealSlot(ADDR.rs6, size()) === natRealSlot(ADDR.rs1, size()) ? 2 : 1);
    assert.equal(total(), 2);
  });

  test('the dataplane reads the slot TypeScript computes (IPv4 and IPv6)', () => {
    for (const v6 of [false, true]) {
      const sport = v6 ? 42001 : 42000;
      const src = v6 ? ADDR.rs6 : ADDR.rs1;
      assert.equal(t.run(inbound(v6, sport, F.TCP.SYN)).retval, XdpAction.TX, 'client SYN');
      assert.equal(t.run(reply(v6, sport, F.TCP.SYN | F.TCP.ACK)).retval, XdpAction.TX, 'SYN-ACK translated');
      // The count moved to the next slot: the reply is no longer looked for,
      // so it goes on down the chain (to the kernel: no service has RIP:8080).
      const at = natRealSlot(src, size());
      const next = (at + 1) % size();
      const saved = [slots().get(at) ?? 0, slots().get(next) ?? 0] as const;
      try {
        slots().set(at, 0);
        slots().set(next, 1);
        assert.equal(t.run(reply(v6, sport, F.TCP.SYN | F.TCP.ACK)).retval, XdpAction.PASS, 'not looked for');
      } finally {
        slots().set(at, saved[0]);
        slots().set(next, saved[1]);
      }
      assert.equal(t.run(reply(v6, sport, F.TCP.SYN | F.TCP.ACK)).retval, XdpAction.TX, 'translated again');
    }
  });

  test('a restarted director puts slots out of step right', () => {
    const at = natRealSlot(ADDR.rs1, size());
    const stray = (at + 7) % size();
    slots().set(at, 0);
    slots().set(stray, 3);
    const d = new Director(t.dp, { neighbours: false });
    assert.ok(d);
    assert.equal(countAt(ADDR.rs1), 1);
    assert.equal(slots().get(stray), natRealSlot(ADDR.rs6, size()) === stray ? 1 : 0);
    assert.equal(total(), 2);
  });

  test('a deleted real server keeps its count while its entry stays; the last address out empties its slot', async () => {
    await t.director.delReal({ proto: 'tcp', addr: ADDR.vip6, port: 80 }, { addr: ADDR.rs6, port: RPORT });
    // Its flows go on (IPVS's default), so their replies are still looked for.
    assert.equal(countAt(ADDR.rs6), natRealSlot(ADDR.rs6, size()) === natRealSlot(ADDR.rs1, size()) ? 2 : 1);
    await t.director.delService({ proto: 'tcp', addr: ADDR.vip, port: 80 });
    await t.director.delService({ proto: 'tcp', addr: ADDR.vip6, port: 80 });
    const left = [...t.dp.natReals.entries()].length;
    assert.equal(total(), left, 'the slots count exactly the addresses xvs_nat_reals still holds');
  });
});
