// Port-zero services (ipvsadm -t VIP:0 -p: every port of the VIP) and
// one-packet scheduling (-o, UDP) through BPF_PROG_TEST_RUN: which service a
// packet finds, where it goes, what the flow tables keep; expected frames
// built from scratch, checksums included.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdpAction } from '../src/loader/index.js';
import { CFG_F } from '../src/maps/abi.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const { fromClient, toRs1, toFar, toClient } = HOP;
const fromRs6 = HOP.fromRs1;

const any = { proto: 'tcp' as const, addr: ADDR.vip, port: 0 };
const web = { proto: 'tcp' as const, addr: ADDR.vip, port: 80 };
const dns = { proto: 'udp' as const, addr: ADDR.vip, port: 53 };
const nat6 = { proto: 'tcp' as const, addr: ADDR.vip6, port: 0 };
// A port-zero NAT service whose real server has a port of its own: every port goes there.
const VIP_TO_ONE = '192.0.2.90';
const toOne = { proto: 'tcp' as const, addr: VIP_TO_ONE, port: 0 };

describe('port-zero services and one-packet scheduling (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const hex = (b: Buffer) => b.toString('hex');
  const counter = (n: string) => t.director.counters()[n] ?? 0;
  const syn = (dport: number, sport = 40000, l2: { dst: string; src: string } = fromClient) =>
    F.packet({ l2, proto: 'tcp', src: ADDR.client, dst: ADDR.vip, sport, dport, flags: F.TCP.SYN });

  before(async () => {
    t = directorNs('xvs-pz', { connTableSize: 4096 });
    await t.director.addService({ ...any, scheduler: 'rr', persistent: 300 });
    await t.addReal(any, { addr: ADDR.rs1, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ ...web, scheduler: 'rr' });
    await t.addReal(web, { addr: ADDR.rsFar, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ ...dns, scheduler: 'rr', ops: true });
    await t.addReal(dns, { addr: ADDR.rs1, port: 0, fwd: 'dr', weight: 1 });
    await t.addReal(dns, { addr: ADDR.rsFar, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ ...nat6, scheduler: 'rr', persistent: 300 });
    await t.addReal(nat6, { addr: ADDR.rs6, port: 0, fwd: 'nat', weight: 1 });
    await t.director.addService({ ...toOne, scheduler: 'rr', persistent: 300 });
    await t.addReal(toOne, { addr: ADDR.rs1, port: 8080, fwd: 'nat', weight: 1 });
  });

  after(() => {
    t?.close();
  });

  test('a port with no service of its own goes to the VIP\'s port-zero service; a port with one keeps it', () => {
    for (const dport of [22, 8443, 65535]) {
      const r = t.run(syn(dport));
      assert.equal(r.retval, XdpAction.TX, `port ${dport}`);
      assert.equal(hex(r.data), hex(syn(dport, 40000, toRs1)), `port ${dport}: DR to rs1, the port kept`);
    }
    const r = t.run(syn(80));
    assert.equal(r.retval, XdpAction.REDIRECT);
    assert.equal(hex(r.data), hex(syn(80, 40000, toFar)), 'port 80 has its own service');
    assert.ok(((t.dp.config.get(0)?.flags ?? 0) & CFG_F.any_port) !== 0);
  });

  test('NAT behind a port-zero service keeps each packet\'s port, both ways', () => {
    for (const dport of [8443, 3306]) {
      const c = F.packet({ l2: fromClient, proto: 'tcp', src: ADDR.client6, dst: ADDR.vip6, sport: 41000, dport, flags: F.TCP.SYN });
      const r = t.run(c);
      assert.equal(r.retval, XdpAction.TX);
      assert.equal(hex(r.data), hex(F.packet({ l2: toRs1, proto: 'tcp', src: ADDR.client6, dst: ADDR.rs6, sport: 41000, dport, flags: F.TCP.SYN })));
      const back = t.run(F.packet({ l2: fromRs6, proto: 'tcp', src: ADDR.rs6, dst: ADDR.client6, sport: dport, dport: 41000, flags: F.TCP.SYN | F.TCP.ACK }));
      assert.equal(back.retval, XdpAction.TX);
      assert.equal(hex(back.data), hex(F.packet({ l2: toClient, proto: 'tcp', src: ADDR.vip6, dst: ADDR.client6, sport: dport, dport: 41000, flags: F.TCP.SYN | F.TCP.ACK, ip6: { hopLimit: 63 } })));
    }
  });

  test('NAT behind a port-zero service to a real server\'s own port: every port goes there, the reply leaves from the client\'s', () => {
    for (const dport of [22, 443]) {
      const sport = 41000 + dport;
      const input = F.packet({ l2: fromClient, proto: 'tcp', src: ADDR.client, dst: VIP_TO_ONE, sport, dport, flags: F.TCP.SYN });
      const want = F.packet({ l2: toRs1, proto: 'tcp', src: ADDR.client, dst: ADDR.rs1, sport, dport: 8080, flags: F.TCP.SYN });
      const r = t.run(input);
      assert.equal(r.retval, XdpAction.TX, `port ${dport}`);
      assert.equal(hex(r.data), hex(want), `port ${dport} to ${ADDR.rs1}:8080`);
      const synack = F.packet({ l2: HOP.fromRs1, proto: 'tcp', src: ADDR.rs1, dst: ADDR.client, sport: 8080, dport: sport, flags: F.TCP.SYN | F.TCP.ACK });
      const back = F.packet({ l2: toClient, proto: 'tcp', src: VIP_TO_ONE, dst: ADDR.client, sport: dport, dport: sport, flags: F.TCP.SYN | F.TCP.ACK, ip: { ttl: 63 } });
      const b = t.run(synack);
      assert.equal(b.retval, XdpAction.TX, `the SYN-ACK for port ${dport}`);
      assert.equal(hex(b.data), hex(back), `the SYN-ACK of ${ADDR.rs1}:8080 back as ${VIP_TO_ONE}:${dport}`);
    }
  });

  test('-o: each datagram of one client tuple is scheduled on its own, and no flow is kept', () => {
    const q = (l2: { dst: string; src: string }) => F.packet({ l2, proto: 'udp', src: ADDR.client, dst: ADDR.vip, sport: 5353, dport: 53, payload: Buffer.from('q') });
    const outs = [0, 1, 2, 3].map(() => t.run(q(fromClient)));
    const to = outs.map((r) => (hex(r.data) === hex(q(toRs1)) ? 'rs1' : hex(r.data) === hex(q(toFar)) ? 'far' : 'other'));
    assert.deepEqual(to.filter((x) => x === 'other'), []);
    assert.deepEqual([...to].sort(), ['far', 'far', 'rs1', 'rs1'], `rr over both for one tuple: ${to.join(' ')}`);
    assert.notEqual(to[0], to[1]);
    const key = { saddr: ADDR.client, daddr: ADDR.vip, sport: 5353, dport: 53, proto: 17, family: 2 };
    assert.equal(t.dp.newFlows.get(key), null);
    assert.equal(t.dp.conns.get(key), null);
    assert.equal(t.director.list().services.find((s) => s.port === 53)?.stats.conns, 4, 'each datagram a connection, as IPVS counts them');
  });

  test('refused: port 0 without persistence, a DR real with a port behind port 0, -o on TCP or beside FULLNAT', async () => {
    await assert.rejects(t.director.addService({ proto: 'tcp', addr: ADDR.vip, port: 0, scheduler: 'rr' }), { code: 'BAD_ARGUMENT', message: 'Zero port specified for non-persistent service' });
    await assert.rejects(t.addReal(any, { addr: ADDR.rsFar, port: 8080, fwd: 'dr', weight: 1 }), { code: 'PORT_MAPPING', message: "DR keeps each packet's port in a port-zero service, not 8080" });
    await assert.rejects(t.director.addService({ proto: 'tcp', addr: ADDR.vip, port: 81, scheduler: 'rr', ops: true }), { code: 'BAD_ARGUMENT', message: 'One-Packet Scheduling is only for UDP virtual services' });
    await assert.rejects(t.addReal(dns, { addr: ADDR.rsFar, port: 5353, fwd: 'fullnat', weight: 1 }), { code: 'UNSUPPORTED' });
  });

  test('without a port-zero service a miss costs one lookup again: the flag goes, the packet goes to the kernel', async () => {
    await t.director.delService(any);
    await t.director.delService(nat6);
    await t.director.delService(toOne);
    assert.equal((t.dp.config.get(0)?.flags ?? 0) & CFG_F.any_port, 0);
    const before = counter('pass_no_svc');
    assert.equal(t.run(syn(8443, 40100)).retval, XdpAction.PASS);
    assert.equal(counter('pass_no_svc') - before, 1);
  });
});
