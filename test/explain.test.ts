// `xvs explain` holds itself to the dataplane: for each case the command
// runs against a real xvsd (its pinned maps on a bpffs this test mounts),
// then the exact packet it explained goes through the program xvsd attached
// (BPF_PROG_TEST_RUN of it, by its kernel id), and the verdict, the real
// server (from the output frame), the counters and the statistics must be
// what explain said. FULLNAT, whose local addresses xvsadm cannot give yet,
// is held to the dataplane the same way in-process.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ListResult } from '../src/control/protocol.js';
import type { StatusView } from '../src/daemon/views.js';
import { explain, type Explanation } from '../src/explain/explain.js';
import { XdpAction } from '../src/loader/index.js';
import { packageRoot } from '../src/paths.js';
import { attachedProgram, type Attached } from './helpers/attached.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';
import { kernelSkipReason, sh } from './helpers/env.js';
import * as F from './helpers/frames.js';
import { xvsdNs, type Exec, type XvsdNs } from './helpers/xvsd-ns.js';

const skip = kernelSkipReason();
const VIP = '192.0.2.80';
const VIP6 = '2001:db8::80';
const NAT_RS = '192.0.2.21';
const MACS: Record<string, string> = {
  '192.0.2.11': '02:00:00:00:00:0b', '192.0.2.12': '02:00:00:00:00:0c', '192.0.2.13': '02:00:00:00:00:0d',
  '192.0.2.14': '02:00:00:00:00:0e', [NAT_RS]: '02:00:00:00:00:15', '2001:db8::11': '02:00:00:00:00:0f',
};
const l2 = { dst: '02:00:00:00:01:01', src: '02:00:00:00:00:fe' };
const VERDICT: Record<string, number> = { XDP_DROP: XdpAction.DROP, XDP_PASS: XdpAction.PASS, XDP_TX: XdpAction.TX, XDP_REDIRECT: XdpAction.REDIRECT };
const xvsBin = path.join(packageRoot, 'dist', 'src', 'cli', 'xvs.js');

const run = (cmd: string, args: string[]): Promise<Exec> => new Promise((resolve) => {
  execFile(cmd, args, { timeout: 30_000, encoding: 'utf8' }, (err, stdout, stderr) => {
    const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
    resolve({ stdout, stderr, code });
  });
});

const macOf = (f: Buffer): string => [...f.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
const bracket = (a: string): string => (a.includes(':') ? `[${a}]` : a);

describe('xvs explain against a running xvsd, each answer held to the dataplane', { skip }, () => {
  let t: XvsdNs;
  let dp: Attached;
  let bpffs: string;

  const adm = async (...args: string[]) => {
    const r = await t.xvsadm(args);
    assert.equal(r.code, 0, `xvsadm ${args.join(' ')}: ${r.stderr}`);
  };
  const xvs = (...args: string[]) => run('ip', ['netns', 'exec', t.ns, process.execPath, xvsBin, ...args]);
  const explainCli = async (proto: string, src: string, dst: string, ...extra: string[]): Promise<Explanation> => {
    const r = await xvs('explain', proto, src, dst, '--json', '--pin-dir', path.join(bpffs, 'xvs'), '--socket', t.socket, ...extra);
    assert.equal(r.code, 0, `xvs explain ${proto} ${src} ${dst}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Explanation;
  };
  const counters = async () => (await t.request({ op: 'status' }) as StatusView).counters;
  const list = async () => await t.request({ op: 'list' }) as ListResult;
  /** The service explain named: "tcp VIP:PORT" (a port-zero service's port is 0), or "fwmark N". */
  const serviceOf = (l: ListResult, name: string, svc: string) => {
    const mark = /^fwmark (\d+)$/.exec(name);
    const svcPort = Number(name.slice(name.lastIndexOf(':') + 1));
    return l.services.find((s) => (mark ? s.fwmark === Number(mark[1]) : s.addr === svc && s.port === svcPort))!;
  };
  const realStats = (l: ListResult, name: string, svc: string, real: { addr: string; port: number }) =>
    serviceOf(l, name, svc).reals.find((r) => r.addr === real.addr && r.port === real.port)!.stats;
  const svcStats = (l: ListResult, name: string, svc: string) => serviceOf(l, name, svc).stats;

  /**
   * Explains the packet, sends it, and checks the dataplane did what explain
   * said. Returns the explanation and the output frame.
   */
  const check = async (what: string, proto: 'tcp' | 'udp', src: { addr: string; port: number }, dst: { addr: string; port: number }, flags: number, extra: string[] = []): Promise<{ e: Explanation; out: Buffer }> => {
    const e = await explainCli(proto, `${bracket(src.addr)}:${src.port}`, `${bracket(dst.addr)}:${dst.port}`, ...extra);
    const frame = F.frame({ l2, src: src.addr, dst: dst.addr, sport: src.port, dport: dst.port, proto, flags, ...(proto === 'udp' ? { payload: Buffer.alloc(0) } : {}) });
    const c0 = await counters();
    const l0 = await list();
    const r = dp.run(frame);
    const c1 = await counters();
    const l1 = await list();
    assert.equal(r.retval, VERDICT[e.verdict], `${what}: verdict ${e.verdict}`);
    if (e.action === 'forward' && e.real) {
      const f = F.dissect(r.data);
      if (e.real.fwd === 'nat') {
        assert.equal(`${bracket(F.addrText(f.dst))}:${r.data.readUInt16BE(f.l4 + 2)}`, e.rewrite?.dst, `${what}: NAT to ${e.rewrite?.dst}`);
        assert.equal(F.addrText(f.dst), e.real.addr);
      } else {
        assert.equal(macOf(r.data), MACS[e.real.addr], `${what}: to ${e.real.addr} (by its MAC)`);
      }
    }
    if (e.verdict === 'XDP_PASS') assert.equal(r.data.toString('hex'), frame.toString('hex'), `${what}: passed untouched`);
    // Counters: each one explain names moved by one, and no other of the packet path did (the kernel's IPv6 chatter on the veth moves rx and pass_no_svc).
    const noisy = new Set(['rx', 'pass_no_svc']);
    for (const [name, v] of Object.entries(c1)) {
      const delta = v - (c0[name] ?? 0);
      if (noisy.has(name)) assert.ok(delta >= (e.counters.includes(name as never) ? 1 : 0), `${what}: counter ${name}`);
      else assert.equal(delta, e.counters.includes(name as never) ? 1 : 0, `${what}: counter ${name} moved ${delta}`);
    }
    if (e.stats && 'inpkts' in e.stats && e.real && e.service) {
      const svcAddr = dst.addr;
      const name = e.service.name;
      const d = (a: { conns: number; inpkts: number; inbytes: number }, b: typeof a) => ({ conns: b.conns - a.conns, inpkts: b.inpkts - a.inpkts, inbytes: b.inbytes - a.inbytes });
      const want = { conns: e.stats.conns, inpkts: e.stats.inpkts, inbytes: e.stats.inbytes };
      assert.deepEqual(d(svcStats(l0, name, svcAddr), svcStats(l1, name, svcAddr)), want, `${what}: service statistics`);
      const live = serviceOf(l1, name, svcAddr).reals.some((x) => x.addr === e.real!.addr && x.port === e.real!.port);
      if (live) assert.deepEqual(d(realStats(l0, name, svcAddr, e.real), realStats(l1, name, svcAddr, e.real)), want, `${what}: real statistics`);
    }
    return { e, out: r.data };
  };
  const client = (port: number, addr = '203.0.113.7') => ({ addr, port });
  const vip = (port: number, addr = VIP) => ({ addr, port });

  before(async () => {
    bpffs = mkdtempSync(path.join(tmpdir(), 'xvs-explain-bpf-'));
    sh('mount', ['-t', 'bpf', 'bpf', bpffs]);
    t = await xvsdNs('xvs-exp');
    const ip = (...a: string[]) => sh('ip', ['-n', t.ns, ...a]);
    ip('-6', 'addr', 'add', '2001:db8::1/64', 'dev', 'd0', 'nodad');
    for (const [addr, mac] of Object.entries(MACS)) ip(...(addr.includes(':') ? ['-6'] : []), 'neigh', 'add', addr, 'lladdr', mac, 'dev', 'd0', 'nud', 'permanent');
    await t.start(['--pin-dir', path.join(bpffs, 'xvs')]);
    const svc = async (port: number, sched: string, reals: string[], more: string[] = []) => {
      await adm('-A', '-t', `${VIP}:${port}`, '-s', sched, ...more);
      for (const r of reals) await adm('-a', '-t', `${VIP}:${port}`, '-r', r, '-g');
    };
    await svc(80, 'rr', ['192.0.2.11', '192.0.2.12']);
    await adm('-A', '-t', `${VIP}:81`, '-s', 'wrr');
    await adm('-a', '-t', `${VIP}:81`, '-r', '192.0.2.11', '-g', '-w', '3');
    await adm('-a', '-t', `${VIP}:81`, '-r', '192.0.2.12', '-g', '-w', '1');
    await svc(82, 'sh', ['192.0.2.11', '192.0.2.12', '192.0.2.13', '192.0.2.14']);
    await svc(83, 'mh', ['192.0.2.11', '192.0.2.12', '192.0.2.13', '192.0.2.14']);
    await svc(86, 'sh', ['192.0.2.11', '192.0.2.12', '192.0.2.13', '192.0.2.14'], ['-b', 'sh-port']);
    // A quiesced real keeps its buckets; without sh-fallback its clients are refused, as IPVS refuses them.
    await svc(87, 'sh', ['192.0.2.11']);
    await svc(84, 'rr', ['192.0.2.11', '192.0.2.12'], ['-p', '300']);
    await svc(85, 'rr', ['192.0.2.13']);
    await adm('-A', '-t', `${VIP}:8080`, '-s', 'rr');
    await adm('-a', '-t', `${VIP}:8080`, '-r', `${NAT_RS}:9090`, '-m');
    await adm('-A', '-u', `${VIP}:5353`, '-s', 'rr', '-o');
    await adm('-a', '-u', `${VIP}:5353`, '-r', '192.0.2.11', '-g');
    await adm('-a', '-u', `${VIP}:5353`, '-r', '192.0.2.12', '-g');
    await adm('-A', '-t', '192.0.2.81:0', '-s', 'rr', '-p', '60');
    await adm('-a', '-t', '192.0.2.81:0', '-r', NAT_RS, '-m');
    await adm('--fwmark-rule', '1', '-d', '192.0.2.88/31', '-p', 'tcp', '--dport', '100:200');
    await adm('--fwmark-rule', '2', '-d', '192.0.2.89', '-p', 'udp');
    await adm('-A', '-f', '1', '-s', 'rr');
    await adm('-a', '-f', '1', '-r', '192.0.2.13', '-g');
    await adm('-A', '-t', `[${VIP6}]:80`, '-s', 'rr');
    await adm('-a', '-t', `[${VIP6}]:80`, '-r', '[2001:db8::11]:80', '-g');
    dp = attachedProgram(t.ns, 'd0');
  });

  after(async () => {
    dp?.close();
    await t?.close();
    if (bpffs) {
      try { sh('umount', [bpffs]); } catch { /* not mounted */ }
      rmSync(bpffs, { recursive: true, force: true });
    }
  });

  test('rr: the next new flow, then its confirmation, then the established flow', async () => {
    const first = await check('rr SYN', 'tcp', client(41000), vip(80), F.TCP.SYN);
    assert.equal(first.e.flows.length, 0);
    assert.equal(first.e.scheduler?.lookup, 'seq');
    assert.equal(first.e.entry?.startsWith('a new entry in xvs_new_flows'), true);
    const second = await check('rr SYN, the next slot', 'tcp', client(41001), vip(80), F.TCP.SYN);
    assert.notEqual(second.e.real?.addr, first.e.real?.addr, 'rr takes turns');
    assert.equal(second.e.scheduler?.position, first.e.scheduler!.position! + 1);
    const ack = await check('rr ACK confirms', 'tcp', client(41000), vip(80), F.TCP.ACK);
    assert.deepEqual(ack.e.packet.flags, ['ACK'], 'an ACK by default on a live flow');
    assert.equal(ack.e.flows.at(-1)?.table, 'xvs_new_flows');
    assert.ok(ack.e.counters.includes('promoted'));
    assert.equal(ack.e.real?.addr, first.e.real?.addr);
    const est = await check('rr established', 'tcp', client(41000), vip(80), F.TCP.ACK | F.TCP.PSH, ['--flags', 'ACK,PSH']);
    assert.equal(est.e.flows[0]?.table, 'xvs_conns');
    assert.equal(est.e.flows[0]?.state, 'ESTABLISHED');
    assert.equal(est.e.flows[0]?.generation.valid, true);
    assert.equal(est.e.real?.addr, first.e.real?.addr);
    assert.equal(est.e.scheduler, undefined, 'an established flow asks no scheduler');
    const syn = await check('a retransmitted SYN of the established flow stays', 'tcp', client(41000), vip(80), F.TCP.SYN, ['--flags', 'SYN']);
    assert.equal(syn.e.real?.addr, first.e.real?.addr);
    await check('a segment of no flow on rr is dropped', 'tcp', client(41999), vip(80), F.TCP.ACK, ['--flags', 'ACK']);
  });

  test('wrr: four new flows, each where explain said', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) seen.push((await check(`wrr SYN ${i}`, 'tcp', client(42000 + i), vip(81), F.TCP.SYN)).e.real!.addr);
    assert.deepEqual(seen.filter((a) => a === '192.0.2.11').length, 3, 'weights 3:1 over one cycle');
  });

  test('sh and mh: the slot of the client\'s hash', async () => {
    for (const [port, sched] of [[82, 'sh'], [83, 'mh']] as const) {
      const seen = new Set<string>();
      for (const c of ['203.0.113.7', '203.0.113.8', '203.0.113.9', '198.51.100.33', '198.51.100.34']) {
        const { e } = await check(`${sched} SYN from ${c}`, 'tcp', client(43000, c), vip(port), F.TCP.SYN);
        assert.equal(e.scheduler?.lookup, 'hash_src');
        assert.equal(e.service?.scheduler, sched);
        seen.add(e.real!.addr);
      }
      assert.ok(seen.size >= 2, `${sched}: clients spread (${[...seen].join(' ')})`);
      const { e } = await check(`${sched}: a segment of no flow goes to its hash's owner (sloppy)`, 'tcp', client(43999, '203.0.113.50'), vip(port), F.TCP.ACK, ['--flags', 'ACK']);
      assert.ok(e.counters.includes('sloppy'));
    }
  });

  test('sh-port: one client\'s ports spread; a quiesced real\'s slot refuses without sh-fallback', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const { e } = await check(`sh-port SYN from port ${47000 + i}`, 'tcp', client(47000 + i, '203.0.113.60'), vip(86), F.TCP.SYN);
      assert.equal(e.scheduler?.lookup, 'hash_src_port');
      seen.add(e.real!.addr);
    }
    assert.ok(seen.size >= 2, `one client's flows spread over ports (${[...seen].join(' ')})`);
    await adm('-e', '-t', `${VIP}:87`, '-r', '192.0.2.11', '-g', '-w', '0');
    const { e } = await check('sh: the quiesced real\'s slot', 'tcp', client(47100), vip(87), F.TCP.SYN);
    assert.equal(e.verdict, 'XDP_TX', 'ICMP port unreachable goes back the way it came');
    assert.ok(e.counters.includes('no_real'));
  });

  test('persistence: the first flow writes a template, the next follows it', async () => {
    const a = await check('persistent first SYN', 'tcp', client(44000), vip(84), F.TCP.SYN);
    assert.equal(a.e.persistence?.template, null);
    for (let i = 1; i <= 3; i++) {
      const b = await check(`persistent SYN ${i}`, 'tcp', client(44000 + i), vip(84), F.TCP.SYN);
      assert.equal(b.e.persistence?.template?.realId, a.e.real!.id);
      assert.equal(b.e.persistence?.template?.usable, true);
      assert.equal(b.e.real?.addr, a.e.real?.addr);
      assert.equal(b.e.scheduler, undefined, 'the template, not the scheduler');
    }
  });

  test('no service: the kernel gets it', async () => {
    const { e } = await check('no service', 'tcp', client(45000), vip(9999), F.TCP.SYN);
    assert.equal(e.service, null);
    assert.deepEqual(e.counters, ['rx', 'pass_no_svc']);
    await check('no service for UDP on a TCP service\'s port', 'udp', client(45001), vip(80), 0);
  });

  test('a deleted real server: its flow goes on, a new one goes elsewhere, a SYN on its tuple is rescheduled', async () => {
    await check('SYN to the only real', 'tcp', client(46000), vip(85), F.TCP.SYN);
    await check('ACK confirms', 'tcp', client(46000), vip(85), F.TCP.ACK);
    await adm('-a', '-t', `${VIP}:85`, '-r', '192.0.2.14', '-g');
    await adm('-d', '-t', `${VIP}:85`, '-r', '192.0.2.13');
    const kept = await check('the deleted real\'s flow goes on', 'tcp', client(46000), vip(85), F.TCP.ACK);
    assert.equal(kept.e.real?.addr, '192.0.2.13');
    assert.equal(kept.e.real?.removed, true);
    const fresh = await check('a new flow goes to the remaining real', 'tcp', client(46001), vip(85), F.TCP.SYN);
    assert.equal(fresh.e.real?.addr, '192.0.2.14');
    const reuse = await check('a SYN on the deleted real\'s tuple is scheduled afresh', 'tcp', client(46000), vip(85), F.TCP.SYN, ['--flags', 'SYN']);
    assert.equal(reuse.e.real?.addr, '192.0.2.14');
    assert.ok(reuse.e.steps.some((s) => /scheduled afresh/.test(s.says)));
  });

  test('NAT: the rewrite, then the real server\'s reply back through the NAT reply stage', async () => {
    const { e } = await check('NAT SYN', 'tcp', client(47000), vip(8080), F.TCP.SYN);
    assert.equal(e.real?.fwd, 'nat');
    assert.equal(e.rewrite?.dst, `${NAT_RS}:9090`);
    const reply = await check('the reply of the NAT flow', 'tcp', { addr: NAT_RS, port: 9090 }, client(47000), F.TCP.SYN | F.TCP.ACK, ['--flags', 'SYN,ACK']);
    assert.ok(reply.e.counters.includes('nat_reply'));
    assert.equal(reply.e.rewrite?.src, `${VIP}:8080`);
    const f = F.dissect(reply.out);
    assert.equal(F.addrText(f.src), VIP, 'the reply leaves from the VIP');
    assert.equal(reply.out.readUInt16BE(f.l4), 8080);
  });

  test('a port-zero service: every port of its VIP, NAT to the packet\'s port', async () => {
    const { e } = await check('port zero NAT SYN', 'tcp', client(47500), vip(4321, '192.0.2.81'), F.TCP.SYN);
    assert.equal(e.service?.name, 'tcp 192.0.2.81:0');
    assert.equal(e.rewrite?.dst, `${NAT_RS}:4321`);
    await check('port zero: no service for another VIP', 'tcp', client(47501), vip(4321, '192.0.2.82'), F.TCP.SYN);
  });

  test('a fwmark service: the mark the rules give, its service, its real server; a mark without a service passes', async () => {
    const { e } = await check('fwmark SYN', 'tcp', client(47700), vip(150, '192.0.2.89'), F.TCP.SYN);
    assert.equal(e.service?.name, 'fwmark 1');
    assert.equal(e.real?.addr, '192.0.2.13');
    assert.ok(e.steps.some((x) => /the fwmark rules give mark 1 \(tcp, port 100:200\)/.test(x.says)));
    const none = await check('fwmark 2 has no service', 'udp', client(47701), vip(53, '192.0.2.89'), 0);
    assert.equal(none.e.service, null);
    assert.ok(none.e.steps.some((x) => /no fwmark 2 service exists/.test(x.says)));
    await check('outside the port range', 'tcp', client(47702), vip(201, '192.0.2.88'), F.TCP.SYN);
  });

  test('one-packet scheduling: no entry, every datagram scheduled afresh', async () => {
    const a = await check('-o first datagram', 'udp', client(47600), vip(5353), 0);
    assert.match(a.e.entry ?? '', /no entry/);
    const b = await check('-o the same flow\'s next datagram', 'udp', client(47600), vip(5353), 0);
    assert.equal(b.e.flows.length, 0);
    assert.notEqual(b.e.real?.addr, a.e.real?.addr, 'rr turns per datagram');
  });

  test('IPv6: a new flow and its UDP-less service', async () => {
    const { e } = await check('IPv6 SYN', 'tcp', client(48000, '2001:db8:ff::7'), vip(80, VIP6), F.TCP.SYN);
    assert.equal(e.packet.family, 'ipv6');
    assert.equal(e.real?.addr, '2001:db8::11');
  });

  test('text output names the stages, the verdict and the counters', async () => {
    const r = await xvs('explain', 'tcp', '203.0.113.7:49000', `${VIP}:80`, '--pin-dir', path.join(bpffs, 'xvs'), '--socket', t.socket);
    assert.equal(r.code, 0, r.stderr);
    for (const stage of ['packet', 'flow', 'service', 'scheduler', 'real', 'nexthop', 'verdict', 'counters', 'result']) assert.match(r.stdout, new RegExp(`^${stage} `, 'm'));
    assert.match(r.stdout, /^scheduler +the next new flow gets slot \d+ of 2/m);
    assert.match(r.stdout, /^result +forward: XDP_TX to 192\.0\.2\.1[12]:80 \(DR\)$/m);
  });

  test('bad input: one line, the right exit code', async () => {
    const pin = ['--pin-dir', path.join(bpffs, 'xvs'), '--socket', t.socket];
    const cases: [string[], number, RegExp][] = [
      [['explain', 'icmp', '203.0.113.7:1', `${VIP}:80`, ...pin], 2, /^xvs: BAD_ARGUMENT: protocol 'icmp' is neither tcp nor udp/],
      [['explain', 'tcp', '203.0.113.7', `${VIP}:80`, ...pin], 2, /^xvs: BAD_ADDRESS: client '203\.0\.113\.7' needs a port/],
      [['explain', 'tcp', '203.0.113.7:1', 'nowhere:80', ...pin], 2, /^xvs: BAD_ADDRESS: 'nowhere:80' is not an address/],
      [['explain', 'tcp', '2001:db8:ff::7', `${VIP}:80`, ...pin], 2, /^xvs: BAD_ADDRESS: client '2001:db8:ff::7' needs a port/],
      [['explain', 'tcp', '[2001:db8:ff::7]:1', `${VIP}:80`, ...pin], 2, /^xvs: BAD_ADDRESS: client 2001:db8:ff::7 and VIP 192\.0\.2\.80 are of different families/],
      [['explain', 'tcp', '203.0.113.7:1', `${VIP}:80`, '--flags', 'SYN,URG', ...pin], 2, /^xvs: BAD_ARGUMENT: unknown TCP flag 'urg'/],
      [['explain', 'tcp', '203.0.113.7:1', `${VIP}:80`, '--interface', 'nope0', ...pin], 2, /^xvs: NO_INTERFACE: interface nope0 does not exist/],
      [['explain', 'tcp', '203.0.113.7:1', `${VIP}:80`, '--pin-dir', path.join(bpffs, 'none')], 3, /^xvs: NO_PINS: no director's maps are pinned in /],
    ];
    for (const [args, exit, line] of cases) {
      const r = await xvs(...args);
      assert.equal(r.code, exit, `${args.slice(0, 4).join(' ')}: exit code (${r.stderr})`);
      assert.match(r.stderr, line);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${args.slice(0, 4).join(' ')}: one line`);
      assert.equal(r.stdout, '');
    }
  });
});

describe('explain FULLNAT against the dataplane (in-process: xvsadm has no local addresses yet)', { skip }, () => {
  let t: DirectorNs;
  const LIPS = ['192.0.2.200', '192.0.2.201', '192.0.2.202'];

  before(async () => {
    t = directorNs('xvs-expf');
    const key = { proto: 'tcp' as const, addr: ADDR.vip, port: 80 };
    await t.director.addService({ ...key, scheduler: 'rr' });
    await t.addReal(key, { addr: ADDR.rs1, port: 8080, fwd: 'fullnat', weight: 1 });
    for (const l of LIPS) await t.director.addLaddr(key, l);
  });

  after(() => t?.close());

  test('the local address explain names is the one the packet leaves from', () => {
    const used = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const c = { addr: `203.0.113.${10 + i}`, port: 50000 + i * 7 };
      const e = explain(t.dp, { proto: 'tcp', client: c, vip: { addr: ADDR.vip, port: 80 }, ingress: { ifindex: t.ifindex, name: 'd0' } });
      assert.equal(e.real?.fwd, 'fullnat');
      assert.match(e.rewrite?.note ?? '', /allocated at the SYN/);
      const frame = F.frame({ l2: HOP.fromClient, src: c.addr, dst: ADDR.vip, sport: c.port, dport: 80, flags: F.TCP.SYN });
      const r = t.run(frame);
      assert.equal(r.retval, VERDICT[e.verdict]);
      const f = F.dissect(r.data);
      const lip = F.addrText(f.src);
      assert.equal(e.rewrite?.src, `${lip}:PORT`, `client ${c.addr}:${c.port}: the local address`);
      assert.equal(F.addrText(f.dst), ADDR.rs1);
      used.add(lip);
      // The flow's entry now names its local address and port: explain reads them back.
      const ack = explain(t.dp, { proto: 'tcp', client: c, vip: { addr: ADDR.vip, port: 80 }, ingress: { ifindex: t.ifindex, name: 'd0' } });
      assert.equal(ack.rewrite?.src, `${lip}:${r.data.readUInt16BE(f.l4)}`);
    }
    assert.ok(used.size >= 2, `clients spread over the pool (${[...used].join(' ')})`);
  });
});
