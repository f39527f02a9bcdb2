// Fwmark services through BPF_PROG_TEST_RUN: a packet of no address/port
// service gets the mark of the first rule it matches in its longest prefix
// (then the shorter prefixes' rules), and goes to that mark's service;
// exact output frames, built here. Port ranges at their ends, protocols,
// IPv6, a mark with no service, persistence across ports and protocols,
// NAT keeping each packet's port or sending all to the real server's own,
// flows outliving their rule, and a
// restarted control plane reading the rules back from the pinned trie.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FwmarkRule, ServiceKey } from '../src/control/protocol.js';
import { Director } from '../src/daemon/director.js';
import { XdpAction } from '../src/loader/index.js';
import { CFG_F } from '../src/maps/abi.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const inbound = HOP.fromClient;
const fwm = (fwmark: number, v6 = false): ServiceKey => ({ proto: 'tcp', addr: v6 ? '::' : '0.0.0.0', port: 0, fwmark });

const RULES: FwmarkRule[] = [
  { mark: 1, addr: '192.0.2.64', len: 26, proto: 'tcp', dport: [80, 90] },
  // Longer, inside the first: wins for 192.0.2.80:85; other ports fall through to the /26.
  { mark: 2, addr: '192.0.2.80', len: 32, proto: 'tcp', dport: [85, 85] },
  // A mark with no service.
  { mark: 3, addr: '192.0.2.96', len: 27, proto: 'udp', dport: [53, 53] },
  { mark: 4, addr: '2001:db8::', len: 64, proto: 'tcp', dport: [443, 443] },
  // Mark 4 for IPv4 too, whose fwmark 4 service does not exist (only the IPv6 one does).
  { mark: 4, addr: '192.0.2.240', len: 28, proto: 'tcp', dport: [443, 443] },
  // Every port and both protocols of a /28, for a persistent service.
  { mark: 5, addr: '192.0.2.128', len: 28 },
  { mark: 6, addr: '192.0.2.200', len: 32, proto: 'tcp' },
  { mark: 8, addr: '192.0.2.210', len: 32, proto: 'udp' },
  { mark: 7, addr: '192.0.2.220', len: 32, proto: 'tcp' },
];
const LIP = '192.0.2.201';

describe('fwmark services in the packet path (BPF_PROG_TEST_RUN)', { skip }, () => {
  let t: DirectorNs;
  const counter = (name: string) => t.director.counters()[name] ?? 0;
  const seg = (dst: string, dport: number, o: { sport?: number; proto?: 'tcp' | 'udp'; flags?: number; src?: string } = {}) =>
    F.frame({ l2: inbound, src: o.src ?? (F.isIp6(dst) ? ADDR.client6 : ADDR.client), dst, sport: o.sport ?? 40000, dport, flags: o.flags ?? F.TCP.SYN, proto: o.proto ?? 'tcp' });
  const toRs1 = (f: Buffer) => ({ verdict: XdpAction.TX, frame: F.withMacs(f, ADDR.rs1Mac, ADDR.dirMac) });
  const toFar = (f: Buffer) => ({ verdict: XdpAction.REDIRECT, frame: F.withMacs(f, ADDR.rsFarMac, ADDR.dir2Mac) });
  const expect = (input: Buffer, want: { verdict: number; frame?: Buffer }, what: string): void => {
    const r = t.run(input);
    assert.equal(r.retval, want.verdict, `${what}: verdict`);
    if (want.frame) assert.equal(r.data.toString('hex'), want.frame.toString('hex'), `${what}: output bytes`);
  };
  const passes = (input: Buffer, what: string): void => {
    const before = counter('pass_no_svc');
    expect(input, { verdict: XdpAction.PASS, frame: input }, what);
    assert.equal(counter('pass_no_svc') - before, 1, `${what}: counted pass_no_svc`);
  };

  before(async () => {
    t = directorNs('xvs-pfw');
    for (const r of RULES) await t.director.addFwmarkRule(r);
    await t.director.addService({ ...fwm(1), scheduler: 'rr' });
    await t.addReal(fwm(1), { addr: ADDR.rs1, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ ...fwm(2), scheduler: 'rr' });
    await t.addReal(fwm(2), { addr: ADDR.rsFar, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ ...fwm(4, true), scheduler: 'rr' });
    await t.addReal(fwm(4, true), { addr: ADDR.rs6, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ ...fwm(5), scheduler: 'rr', persistent: 300 });
    await t.addReal(fwm(5), { addr: ADDR.rs1, port: 0, fwd: 'dr', weight: 1 });
    await t.addReal(fwm(5), { addr: ADDR.rsFar, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ ...fwm(6), scheduler: 'rr' });
    await t.addReal(fwm(6), { addr: ADDR.rs1, port: 0, fwd: 'nat', weight: 1 });
    // A NAT real server with a port of its own: every marked packet goes to it (IPVS: dest->port ? dest->port : vport).
    await t.director.addService({ ...fwm(7), scheduler: 'rr' });
    await t.addReal(fwm(7), { addr: ADDR.rs1, port: 8080, fwd: 'nat', weight: 1 });
    await t.director.addService({ ...fwm(8), scheduler: 'rr' });
    await t.director.addLaddr(fwm(8), LIP);
    await t.addReal(fwm(8), { addr: ADDR.rs1, port: 0, fwd: 'fullnat', weight: 1 });
    // An address/port service inside mark 1's prefix and port range: it comes first.
    await t.director.addService({ proto: 'tcp', addr: '192.0.2.81', port: 88, scheduler: 'rr' });
    await t.addReal({ proto: 'tcp', addr: '192.0.2.81', port: 88 }, { addr: ADDR.rsFar, port: 0, fwd: 'dr', weight: 1 });
  });

  after(() => {
    t?.close();
  });

  test('the config flag is on and the trie holds one entry per prefix, shorter prefixes\' rules after the own', () => {
    assert.ok((t.dp.config.get(0)!.flags & CFG_F.fwmark) !== 0);
    const entries = new Map([...t.dp.fwmarkRules.entries()].map(([k, v]) => [`${k.addr}/${k.prefixlen - 32}`, v]));
    assert.deepEqual([...entries.keys()].sort(), ['192.0.2.128/28', '192.0.2.200/32', '192.0.2.210/32', '192.0.2.220/32', '192.0.2.240/28', '192.0.2.64/26', '192.0.2.80/32', '192.0.2.96/27', '2001:db8::/64']);
    const e = entries.get('192.0.2.80/32')!;
    assert.equal(e.count, 2);
    assert.equal(e.own, 1);
    assert.deepEqual(e.rules.slice(0, 2).map((r) => [r.mark, r.proto, r.dport_min, r.dport_max]), [[2, 6, 85, 85], [1, 6, 80, 90]]);
  });

  test('a packet matching a rule reaches its mark\'s real server, at both ends of the port range', () => {
    for (const port of [80, 85, 90]) {
      const f = seg('192.0.2.81', port);
      expect(f, toRs1(f), `192.0.2.81:${port}`);
    }
  });

  test('just outside the port range, another protocol, or outside the prefix: to the kernel, counted', () => {
    passes(seg('192.0.2.81', 79), 'port 79');
    passes(seg('192.0.2.81', 91), 'port 91');
    passes(seg('192.0.2.81', 85, { proto: 'udp' }), 'udp');
    passes(seg('192.0.2.63', 85), 'below the /26');
    passes(seg('192.0.2.160', 85), 'in no prefix');
  });

  test('the longest prefix wins; its other ports fall through to the shorter prefix\'s rules', () => {
    const f = seg('192.0.2.80', 85);
    expect(f, toFar(f), 'the /32 gives mark 2');
    const g = seg('192.0.2.80', 86);
    expect(g, toRs1(g), 'port 86: the /26\'s mark 1');
  });

  test('an address/port service takes its packets before any rule', () => {
    const f = seg('192.0.2.81', 88);
    expect(f, toFar(f), 'tcp 192.0.2.81:88 is its own service');
  });

  test('a rule whose mark has no service passes to the kernel, counted', () => {
    passes(seg('192.0.2.100', 53, { proto: 'udp' }), 'mark 3');
  });

  test('IPv6: a rule of the IPv6 family reaches the IPv6 fwmark service', () => {
    const f = seg('2001:db8::80', 443);
    expect(f, toRs1(f), '[2001:db8::80]:443');
    passes(seg('2001:db8::80', 444), 'port 444');
    passes(seg('2001:db8:1::80', 443), 'outside the /64');
    passes(seg('192.0.2.241', 443), 'IPv4 mark 4: the IPv6 fwmark 4 service is not its service');
  });

  test('persistence spans every port and protocol of the fwmark service', () => {
    const first = t.run(seg('192.0.2.130', 80, { sport: 41000 }));
    assert.ok(first.retval === XdpAction.TX || first.retval === XdpAction.REDIRECT, 'the first connection is forwarded');
    const same = first.retval === XdpAction.TX ? toRs1 : toFar;
    const other = first.retval === XdpAction.TX ? toFar : toRs1;
    for (const [dst, port, proto, sport] of [
      ['192.0.2.130', 443, 'tcp', 41001], ['192.0.2.131', 21, 'tcp', 41002], ['192.0.2.143', 53, 'udp', 41003], ['192.0.2.130', 8080, 'tcp', 41004],
    ] as const) {
      const f = seg(dst, port, { sport, proto });
      expect(f, same(f), `${proto} ${dst}:${port} stays with the first real server`);
    }
    // rr would alternate: another client starts on the other real server.
    const g = seg('192.0.2.130', 80, { sport: 41005, src: '203.0.113.8' });
    expect(g, other(g), 'another client');
    // -L -c: the templates carry the mark as their address and no protocol, as IPVS lists them.
    const templates = t.director.connections().filter((c) => c.state === 'NONE' && c.vaddr === '0.0.0.5');
    assert.equal(templates.length, 2, 'one template per client');
    assert.ok(templates.every((c) => c.fwmark === true && c.vport === 0 && c.cport === 0), JSON.stringify(templates));
  });

  test('NAT in a fwmark service keeps each packet\'s port (real server port 0)', () => {
    for (const port of [22, 8443]) {
      const input = seg('192.0.2.200', port, { sport: 42000 + port });
      const want = F.frame({ l2: HOP.toRs1, src: ADDR.client, dst: ADDR.rs1, sport: 42000 + port, dport: port, flags: F.TCP.SYN });
      expect(input, { verdict: XdpAction.TX, frame: want }, `192.0.2.200:${port} to ${ADDR.rs1}:${port}`);
    }
  });

  test('NAT in a fwmark service to a real server\'s own port: every marked port goes there, and the reply leaves from the port the client used', () => {
    for (const port of [80, 443]) {
      const sport = 43000 + port;
      const input = seg('192.0.2.220', port, { sport });
      const want = F.frame({ l2: HOP.toRs1, src: ADDR.client, dst: ADDR.rs1, sport, dport: 8080, flags: F.TCP.SYN });
      expect(input, { verdict: XdpAction.TX, frame: want }, `192.0.2.220:${port} to ${ADDR.rs1}:8080`);
      const synack = F.frame({ l2: HOP.fromRs1, src: ADDR.rs1, dst: ADDR.client, sport: 8080, dport: sport, flags: F.TCP.SYN | F.TCP.ACK });
      const back = F.frame({ l2: HOP.toClient, src: '192.0.2.220', dst: ADDR.client, sport: port, dport: sport, flags: F.TCP.SYN | F.TCP.ACK, ip: { ttl: 63 } });
      expect(synack, { verdict: XdpAction.TX, frame: back }, `the SYN-ACK of ${ADDR.rs1}:8080 back as 192.0.2.220:${port}`);
    }
  });

  test('a DR real server of a fwmark service keeps each packet\'s port: a port of its own is refused, so is DR for a NAT one with a port', async () => {
    await assert.rejects(t.addReal(fwm(1), { addr: ADDR.rsFar, port: 80, fwd: 'dr', weight: 1 }), { code: 'PORT_MAPPING' });
    await assert.rejects(t.director.editReal(fwm(7), { addr: ADDR.rs1, port: 8080, fwd: 'dr', weight: 1 }), { code: 'PORT_MAPPING' });
  });

  test('FULLNAT in a fwmark service: to the packet\'s port from a local address, and the reply back from the VIP and port the client used', () => {
    const input = seg('192.0.2.210', 5060, { sport: 42500, proto: 'udp' });
    const out = t.run(input);
    assert.equal(out.retval, XdpAction.TX);
    const d = F.dissect(out.data);
    assert.deepEqual([F.addrText(d.src), F.addrText(d.dst), out.data.readUInt16BE(d.l4 + 2)], [LIP, ADDR.rs1, 5060]);
    assert.deepEqual(F.checksumErrors(out.data), []);
    const lport = out.data.readUInt16BE(d.l4);
    const reply = F.frame({ l2: HOP.fromRs1, src: ADDR.rs1, dst: LIP, sport: 5060, dport: lport, proto: 'udp' });
    const back = t.run(reply);
    assert.equal(back.retval, XdpAction.TX);
    const b = F.dissect(back.data);
    assert.deepEqual([F.addrText(b.src), back.data.readUInt16BE(b.l4), F.addrText(b.dst), back.data.readUInt16BE(b.l4 + 2)], ['192.0.2.210', 5060, ADDR.client, 42500]);
    assert.deepEqual(F.checksumErrors(back.data), []);
  });

  test('mutated frames to fwmark services: never aborted; passed ones untouched; DR ones change only the MACs', () => {
    const bases = [seg('192.0.2.70', 85, { sport: 47000 }), seg('192.0.2.133', 5353, { sport: 47001, proto: 'udp' }), seg('2001:db8::9', 443, { sport: 47002 })];
    let forwarded = 0;
    let passed = 0;
    for (const [i, base] of bases.entries()) {
      for (const input of F.mutants(base, { seed: 7000 + i, count: 1000 })) {
        const r = t.runMutant(input);
        if (r.retval === XdpAction.PASS) {
          passed++;
          continue;
        }
        if (r.retval === XdpAction.DROP || r.data.length !== input.length) continue; // a drop, or an ICMP answer
        // A DR forward keeps everything past the MACs; only a mutation into a NAT or FULLNAT mark's
        // destination (marks 6, 7 and 8) may rewrite, and then towards their real server.
        if (r.data.subarray(14).equals(input.subarray(14))) {
          forwarded++;
          continue;
        }
        const v4 = input.readUInt16BE(12) === 0x0800;
        const dst = (f: Buffer) => F.addrText(f.subarray(30, 34));
        assert.ok(v4 && ['192.0.2.200', '192.0.2.210', '192.0.2.220'].includes(dst(input)) && dst(r.data) === ADDR.rs1,
          `only a NAT/FULLNAT mark rewrites: ${input.toString('hex')} -> ${r.data.toString('hex')}`);
      }
    }
    assert.ok(forwarded > 0 && passed > 0, `some forwarded (${forwarded}) and some passed (${passed})`);
  });

  test('a flow outlives its rule: keyed by its 5-tuple, it needs no mark once open', async () => {
    const syn = seg('192.0.2.82', 84, { sport: 43000 });
    expect(syn, toRs1(syn), 'SYN');
    await t.director.delFwmarkRule(RULES[0]!);
    try {
      const ack = seg('192.0.2.82', 84, { sport: 43000, flags: F.TCP.ACK });
      expect(ack, toRs1(ack), 'ACK of the open flow');
      passes(seg('192.0.2.82', 84, { sport: 43001 }), 'a new connection, the rule gone');
    } finally {
      await t.director.addFwmarkRule(RULES[0]!);
    }
  });

  test('a restarted control plane reads the rules back from the pinned trie', () => {
    const again = new Director(t.dp, { neighbours: false });
    const key = (r: FwmarkRule) => JSON.stringify([r.mark, r.addr, r.len, r.proto, r.dport]);
    assert.deepEqual(new Set(again.model.fwmarkRules!.map(key)), new Set(t.director.model.fwmarkRules!.map(key)));
    assert.equal(again.model.fwmarkRules!.length, RULES.length);
    assert.equal(again.model.services.get('fwmark 4 ipv6')?.fwmark, 4);
    assert.equal(again.model.services.get('fwmark 1')?.reals[0]?.addr, ADDR.rs1);
  });

  test('without rules the flag goes off and nothing is classified', async () => {
    for (const r of RULES) await t.director.delFwmarkRule(r);
    try {
      assert.equal(t.dp.config.get(0)!.flags & CFG_F.fwmark, 0);
      assert.equal([...t.dp.fwmarkRules.entries()].length, 0);
      passes(seg('192.0.2.81', 80, { sport: 44000 }), 'no rule');
    } finally {
      for (const r of RULES) await t.director.addFwmarkRule(r);
    }
  });
});
