// A real server behind the director's other interface: the redirect goes
// through the devmap xvs_tx_ports when the interface is entered there (what
// xvsd does for each of its interfaces), through plain bpf_redirect when it
// is not, and the counters tell which. Live frames (BPF_F_TEST_XDP_LIVE_FRAMES)
// show where the frame really went: a devmap entry whose device differs from
// its key sends the frame to that device, which bpf_redirect(ifindex) never would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BPF_F_TEST_XDP_LIVE_FRAMES, BpfObject, XdpAction, attachXdp, ifIndex, testRun, withNetns, xdpMd,
} from '../src/loader/index.js';
import { PerCpuMap } from '../src/maps/map.js';
import { u32Codec, u64Codec } from '../src/maps/codecs.js';
import { bpfObject } from '../src/paths.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason, nsSh } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const VIP = ADDR.vip;
const PORT = 84;
const inbound = HOP.fromClient;
const syn = (sport: number) => F.frame({ l2: inbound, src: ADDR.client, dst: VIP, sport, dport: PORT, flags: F.TCP.SYN });

/** xdp_sink on a veth peer: counts (then drops) every frame sent out of the director's end. */
interface Sink { obj: BpfObject; count: PerCpuMap<number, number> }

describe('redirect through the devmap xvs_tx_ports (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  let d0 = 0;
  let d1 = 0;
  const sinks: Record<'p0' | 'p1', Sink | undefined> = { p0: undefined, p1: undefined };

  before(async () => {
    t = directorNs('xvs-dm');
    // The sinks count every frame out of d0 and d1: no IPv6 there, so no MLD
    // report or router solicitation of the kernel's is counted as ours.
    nsSh(t.ns, 'sysctl', ['-qw', 'net.ipv6.conf.d0.disable_ipv6=1', 'net.ipv6.conf.d1.disable_ipv6=1']);
    await t.director.addService({ proto: 'tcp', addr: VIP, port: PORT, scheduler: 'rr' });
    await t.addReal({ proto: 'tcp', addr: VIP, port: PORT }, { addr: ADDR.rsFar, port: 0, fwd: 'dr', weight: 1 });
    [d0, d1] = withNetns(t.ns, () => [ifIndex('d0'), ifIndex('d1')]);
    for (const peer of ['p0', 'p1'] as const) {
      const obj = BpfObject.open({ objectPath: bpfObject('xvs_aux') });
      try {
        obj.load();
        sinks[peer] = { obj, count: new PerCpuMap(obj.map('aux_count'), u32Codec, u64Codec) };
      } catch (e) {
        obj.close();
        throw e;
      }
      // veth delivers an XDP-redirected frame only to a peer that runs XDP.
      withNetns(t.ns, () => attachXdp(ifIndex(peer), obj.program('xdp_sink').fd, 'native'));
    }
  });

  after(() => {
    for (const s of Object.values(sinks)) s?.obj.close();
    t?.close();
  });

  const counter = (name: string): number => t.director.counters()[name] ?? 0;
  const sunk = (peer: 'p0' | 'p1'): number => sinks[peer]?.count.sum(0) ?? 0;
  const setPort = (key: number, dev: number) => withNetns(t.ns, () => t.dp.txPorts.set(key, { ifindex: dev, bpf_prog: 0 }));

  /** One frame, its verdict, output and what the counters say about it. */
  function forward(sport: number) {
    const before = { redirect: counter('redirect'), unmapped: counter('redirect_unmapped'), tx: counter('tx') };
    const input = syn(sport);
    const r = t.run(input);
    assert.equal(r.retval, XdpAction.REDIRECT, 'verdict');
    assert.equal(r.data.toString('hex'), F.withMacs(input, ADDR.rsFarMac, ADDR.dir2Mac).toString('hex'), 'MACs of d1 and the real server');
    return { redirect: counter('redirect') - before.redirect, unmapped: counter('redirect_unmapped') - before.unmapped, tx: counter('tx') - before.tx };
  }

  /** The same frame with live frames: it really leaves; returns what each peer received. */
  async function live(sport: number): Promise<{ p0: number; p1: number }> {
    const before = { p0: sunk('p0'), p1: sunk('p1') };
    const input = syn(sport);
    withNetns(t.ns, () => testRun(t.dp.progFd, { data: input, ctxIn: xdpMd({ dataLen: input.length, ingressIfindex: t.ifindex }), flags: BPF_F_TEST_XDP_LIVE_FRAMES }));
    // The peer's NAPI receives it asynchronously; bounded wait.
    for (let i = 0; i < 50 && sunk('p0') + sunk('p1') === before.p0 + before.p1; i++) await sleep(20);
    await sleep(50);
    return { p0: sunk('p0') - before.p0, p1: sunk('p1') - before.p1 };
  }

  test('an interface not in xvs_tx_ports: plain bpf_redirect, counted as redirect_unmapped', async () => {
    assert.equal(withNetns(t.ns, () => t.dp.txPorts.get(d1)), null, 'the devmap starts empty');
    assert.deepEqual(forward(41000), { redirect: 1, unmapped: 1, tx: 0 });
    assert.deepEqual(await live(41001), { p0: 0, p1: 1 }, 'the frame left by d1');
  });

  test('an interface in xvs_tx_ports: the redirect goes through the devmap', async () => {
    setPort(d1, d1);
    assert.deepEqual(forward(41100), { redirect: 1, unmapped: 0, tx: 0 });
    assert.deepEqual(await live(41101), { p0: 0, p1: 1 }, 'the frame left by d1');
  });

  test('the devmap entry decides the device: d1 mapped to d0 sends the frame out of d0', async () => {
    setPort(d1, d0);
    try {
      assert.deepEqual(forward(41200), { redirect: 1, unmapped: 0, tx: 0 });
      assert.deepEqual(await live(41201), { p0: 1, p1: 0 }, 'bpf_redirect(d1) would have sent it out of d1');
    } finally {
      setPort(d1, d1);
    }
  });

  test('removed from xvs_tx_ports: back to plain bpf_redirect', async () => {
    withNetns(t.ns, () => t.dp.txPorts.delete(d1));
    assert.deepEqual(forward(41300), { redirect: 1, unmapped: 1, tx: 0 });
    assert.deepEqual(await live(41301), { p0: 0, p1: 1 });
  });
});
