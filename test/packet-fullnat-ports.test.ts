// FULLNAT's local-port search under load, through BPF_PROG_TEST_RUN: with
// three quarters of one (LIP, RIP:rport) port space held, new flows still
// get a port (the search tries XVS_LPORT_TRIES ports, not 8), each a free
// one; with every port held, the flow is refused and counted, and nothing
// the search looked at is touched.
//
// Why 300 flows at 75 %: a try lands on a held port with probability about
// 0.75, so a flow is refused when all its tries do. With 8 tries that is
// 0.75^8 = 10 %: about 31 of 300 flows refused, and none refused with
// probability 8e-15 (the test fails on the old search). With 64 tries it is
// 0.753^64 = 1.3e-8 per flow: some flow refused with probability 4e-6 (the
// test passes on this one). Exact figures (tries without replacement, the
// held count growing by each flow) in docs/architecture.md.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdpAction } from '../src/loader/index.js';
import { CONN_STATE } from '../src/maps/abi.js';
import { u32Codec, type ConnKey, type Nat } from '../src/maps/codecs.js';
import { PerCpuMap } from '../src/maps/map.js';
import { pinMainThread } from '../bench/cpu.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const { fromClient } = HOP;
const toReal = HOP.toFar;
const RPORT = 8080;
const LIP = ADDR.dirFar;
const LPORT_MIN = 1024;
const PORTS = 65536 - LPORT_MIN;
/** Held ports that are new flows' (in xvs_new_replies) rather than confirmed ones' (xvs_nats). */
const EMBRYONIC = 1000;
const FLOWS = 300;
/** XVS_LPORT_DRY_AFTER (xvs_abi.h); the test fails if the two differ (the count stops there). */
const DRY_AFTER = 4;

const replyKey = (lport: number): ConnKey => ({ saddr: ADDR.rsFar, daddr: LIP, sport: RPORT, dport: lport, proto: 6, family: 2 });
/** Another flow's reply side on `lport`, seen at `lastSeen`. */
const holder = (lport: number, lastSeen: number, state: number): Nat => ({
  last_seen: lastSeen, vaddr: ADDR.vip, caddr: '198.51.100.200', vport: 80, cport: lport, real_id: 0, svc_id: 0,
  ifindex: 1, cmac: ADDR.routerMac, smac: ADDR.dirMac, family: 2, state, flags: 1,
});
const syn = (src: string, sport: number) => F.packet({ l2: fromClient, proto: 'tcp', src, dst: ADDR.vip, sport, dport: 80, flags: F.TCP.SYN });
/** The SYN as the real server gets it: from LIP:lport to RIP:rport, checksums recomputed by the builder. */
const synOut = (lport: number) => F.packet({ l2: toReal, proto: 'tcp', src: LIP, dst: ADDR.rsFar, sport: lport, dport: RPORT, flags: F.TCP.SYN });
const lportOf = (out: Buffer) => out.readUInt16BE(14 + 20);

/** The ports 1024..65535 in an order fixed by a seeded generator (mulberry32), so a failure replays. */
function shuffledPorts(seed: number): number[] {
  const ports = Array.from({ length: PORTS }, (_, i) => LPORT_MIN + i);
  let a = seed >>> 0;
  const rand = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), a | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
  for (let i = ports.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [ports[i], ports[j]] = [ports[j]!, ports[i]!];
  }
  return ports;
}

describe('FULLNAT local ports under load (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const key = { proto: 'tcp' as const, addr: ADDR.vip, port: 80 };
  const noPort = () => t.director.counters().fnat_no_port ?? 0;

  /** Holds `ports`: the first EMBRYONIC as new flows in xvs_new_replies, the rest as confirmed ones in xvs_nats. */
  function hold(ports: readonly number[]): void {
    const now = t.dp.jiffies();
    for (const p of ports.slice(0, EMBRYONIC)) t.dp.newReplies.set(replyKey(p), holder(p, now, CONN_STATE.syn_recv), now);
    const confirmed = ports.slice(EMBRYONIC);
    t.dp.nats.raw.updateBatch(confirmed.map((p) => t.dp.nats.key.encode(replyKey(p))), confirmed.map((p) => t.dp.nats.value.encode(holder(p, now, CONN_STATE.established))));
  }

  /** xvs_lport_dry: the real server's refused searches in a row, on every CPU. */
  const dry = () => new PerCpuMap(t.dp.obj.map('xvs_lport_dry'), u32Codec, u32Codec);
  let realId = 0;

  function clear(): void {
    for (const m of [t.dp.nats, t.dp.conns]) {
      for (const k of [...m.raw.keys()]) m.raw.delete(k);
    }
    t.dp.newFlows.clear();
    t.dp.newReplies.clear();
    const d = dry();
    d.set(realId, new Array<number>(d.cpus).fill(0));
  }

  before(async () => {
    // Room for every port of the space in xvs_nats.
    t = directorNs('xvs-pfl', { connTableSize: 131072 });
    await t.director.addService({ ...key, scheduler: 'rr' });
    await t.addReal(key, { addr: ADDR.rsFar, port: RPORT, fwd: 'fullnat', weight: 1 });
    await t.director.addLaddr(key, LIP);
    // The real server's id, as the dataplane keys it: the one xvs_reals slot of this address.
    const sched = t.run(syn(ADDR.client, 43999));
    assert.equal(sched.retval, XdpAction.REDIRECT);
    realId = t.dp.newReplies.get(replyKey(lportOf(sched.data)))!.real_id;
  });

  after(() => {
    t?.close();
  });

  test(`75 % of the ports held: ${FLOWS} new flows from distinct clients all leave, each from a free port of its own`, () => {
    clear();
    const ports = shuffledPorts(0x5eed);
    const held = new Set(ports.slice(0, (PORTS * 3) / 4));
    hold([...held]);
    const before = noPort();
    const chosen = new Set<number>();
    for (let i = 0; i < FLOWS; i++) {
      const client = `203.0.113.${1 + (i % 250)}`;
      const sport = 30000 + i;
      const r = t.run(syn(client, sport));
      assert.equal(r.retval, XdpAction.REDIRECT, `flow ${i}: refused (fnat_no_port ${noPort() - before})`);
      const lport = lportOf(r.data);
      assert.equal(r.data.toString('hex'), synOut(lport).toString('hex'), `flow ${i}: bytes`);
      assert.ok(!held.has(lport), `flow ${i}: port ${lport} is held by another flow`);
      assert.ok(!chosen.has(lport), `flow ${i}: port ${lport} handed out twice`);
      chosen.add(lport);
      assert.equal(t.dp.newReplies.get(replyKey(lport))?.caddr, client, `flow ${i}: its reply side holds the port`);
    }
    assert.equal(noPort() - before, 0, 'no flow counted as refused');
  });

  test('every port held (new and confirmed flows): refused and counted, the held ports untouched, nothing left behind', () => {
    clear();
    const ports = shuffledPorts(0xf00d);
    hold(ports);
    const embryonic = ports.slice(0, EMBRYONIC);
    const before = noPort();
    for (let i = 0; i < 3; i++) {
      assert.equal(t.run(syn(ADDR.client, 44000 + i)).retval, XdpAction.DROP, `flow ${i}`);
      assert.equal(t.dp.newFlows.get({ saddr: ADDR.client, daddr: ADDR.vip, sport: 44000 + i, dport: 80, proto: 6, family: 2 }), null);
    }
    assert.equal(noPort() - before, 3);
    assert.equal([...t.dp.newReplies.entries()].length, EMBRYONIC, 'xvs_new_replies: the held new flows, no claim left');
    for (const p of embryonic) assert.equal(t.dp.newReplies.get(replyKey(p))?.cport, p, `port ${p}: still its flow's`);
    assert.equal([...t.dp.nats.raw.keys()].length, PORTS - EMBRYONIC, 'xvs_nats: the confirmed flows');
  });

  test(`a port space that stays full: after ${DRY_AFTER} refused searches in a row the search is short (a flood costs what 8 tries did); one that finds a port restores it`, () => {
    clear();
    const ports = shuffledPorts(0xd1e);
    hold(ports);
    const before = noPort();
    // The count is per CPU and a test run runs on the calling thread's: one
    // CPU for the whole sequence, or a migration would split it.
    pinMainThread(0);
    try {
      for (let i = 0; i < DRY_AFTER + 2; i++) {
        assert.equal(t.run(syn(ADDR.client, 45000 + i)).retval, XdpAction.DROP, `flow ${i}`);
        assert.deepEqual(dry().get(realId)?.[0], Math.min(i + 1, DRY_AFTER), `CPU 0 after ${i + 1} refusals`);
      }
      assert.equal(noPort() - before, DRY_AFTER + 2, 'every refusal counted');
      // Nine ports in ten freed: a short search (8 tries) misses them all with probability 1e-8.
      const freed = ports.slice(EMBRYONIC).filter((_, i) => i % 10 !== 0);
      for (const p of freed) t.dp.nats.raw.delete(t.dp.nats.key.encode(replyKey(p)));
      const r = t.run(syn(ADDR.client, 45100));
      assert.equal(r.retval, XdpAction.REDIRECT, 'a freed port found');
      assert.equal(dry().get(realId)?.[0], 0, 'the full search is back');
      assert.equal(dry().sum(realId), 0, 'on no CPU a count left');
    } finally {
      pinMainThread('all');
    }
  });
});
