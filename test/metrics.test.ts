// xvsd --metrics against a real xvsd in a namespace of its own: packets go
// through the program xvsd attached (BPF_PROG_TEST_RUN of it, by its kernel
// id), the scrape comes from curl inside the namespace, and the text is read
// with parse-prometheus-text-format. Every figure is checked against what
// the test sent and against what xvsadm shows for the same moment.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ListResult } from '../src/control/protocol.js';
import { XdpAction, ifIndex, withNetns, xdpProgId } from '../src/loader/index.js';
import { packageRoot } from '../src/paths.js';
import { attachedProgram, type Attached } from './helpers/attached.js';
import { kernelSkipReason, sh } from './helpers/env.js';
import * as F from './helpers/frames.js';
import { Scrape } from './helpers/prom.js';
import { xvsdNs, type Exec, type XvsdNs } from './helpers/xvsd-ns.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';
import { Metrics } from '../src/metrics/metrics.js';

const skip = kernelSkipReason();
const PORT = 9469;
const MAC = { rs1: '02:00:00:00:00:0b', rs2: '02:00:00:00:00:0c', rs6: '02:00:00:00:00:0d', router: '02:00:00:00:00:fe' } as const;
const CLIENT = '203.0.113.7';
const CLIENT6 = '2001:db8:ff::7';
const l2 = { dst: '02:00:00:00:01:01', src: MAC.router };

const run = (cmd: string, args: string[]): Promise<Exec> => new Promise((resolve) => {
  execFile(cmd, args, { timeout: 30_000, encoding: 'utf8' }, (err, stdout, stderr) => {
    const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
    resolve({ stdout, stderr, code });
  });
});

describe('xvsd --metrics', { skip }, () => {
  let t: XvsdNs;
  let dp: Attached;
  const curl = async (...args: string[]): Promise<Exec> => run('ip', ['netns', 'exec', t.ns, 'curl', '-sS', '--max-time', '10', ...args]);
  const scrape = async (): Promise<Scrape> => {
    const r = await curl('-f', `http://127.0.0.1:${PORT}/metrics`);
    assert.equal(r.code, 0, `curl: ${r.stderr}`);
    return new Scrape(r.stdout);
  };
  const adm = async (...args: string[]) => {
    const r = await t.xvsadm(args);
    assert.equal(r.code, 0, `xvsadm ${args.join(' ')}: ${r.stderr}`);
  };
  /** The real server a forwarded frame went to, by its destination MAC. */
  const realOf = (out: Buffer): string => {
    const m = [...out.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
    const name = Object.entries(MAC).find(([, v]) => v === m)?.[0];
    assert.ok(name, `the frame went to a known real server (${m})`);
    return name;
  };
  const send = (input: Buffer, verdict: number): Buffer => {
    const r = dp.run(input);
    assert.equal(r.retval, verdict);
    return r.data;
  };
  const tcp = (dport: number, sport: number, flags: number, dst = '192.0.2.80', src = CLIENT) =>
    F.frame({ l2, src, dst, sport, dport, flags });

  before(async () => {
    t = await xvsdNs('xvs-met');
    const ip = (...a: string[]) => sh('ip', ['-n', t.ns, ...a]);
    ip('-6', 'addr', 'add', '2001:db8::1/64', 'dev', 'd0', 'nodad');
    ip('neigh', 'add', '192.0.2.11', 'lladdr', MAC.rs1, 'dev', 'd0', 'nud', 'permanent');
    ip('neigh', 'add', '192.0.2.12', 'lladdr', MAC.rs2, 'dev', 'd0', 'nud', 'permanent');
    ip('-6', 'neigh', 'add', '2001:db8::11', 'lladdr', MAC.rs6, 'dev', 'd0', 'nud', 'permanent');
    await t.start(['--metrics', `127.0.0.1:${PORT}`, '--metrics-census-ms', '0']);
    await adm('-A', '-t', '192.0.2.80:80', '-s', 'wrr');
    await adm('-a', '-t', '192.0.2.80:80', '-r', '192.0.2.11', '-g', '-w', '3');
    await adm('-a', '-t', '192.0.2.80:80', '-r', '192.0.2.12', '-g', '-w', '1');
    await adm('-A', '-u', '192.0.2.80:53', '-s', 'wlc');
    await adm('-a', '-u', '192.0.2.80:53', '-r', '192.0.2.11', '-g');
    await adm('-A', '-t', '[2001:db8::80]:80', '-s', 'rr');
    await adm('-a', '-t', '[2001:db8::80]:80', '-r', '[2001:db8::11]:80', '-g');
    await adm('-A', '-t', '192.0.2.80:443', '-s', 'sh', '-p', '300');
    await adm('-a', '-t', '192.0.2.80:443', '-r', '192.0.2.12', '-g');
    dp = attachedProgram(t.ns, 'd0');
  });

  after(async () => {
    dp?.close();
    await t?.close();
  });

  test('counters, statistics, flows and table fill are what went through the dataplane', async () => {
    const before = await scrape();
    const d = (s: Scrape, name: string, labels: Record<string, string>) => s.value(name, labels) - before.value(name, labels);

    // 8 new connections on the wrr service (3:1, two whole cycles), 3 of them confirmed.
    const wentTo: string[] = [];
    for (let i = 0; i < 8; i++) wentTo.push(realOf(send(tcp(80, 41000 + i, F.TCP.SYN), XdpAction.TX)));
    for (let i = 0; i < 3; i++) assert.equal(realOf(send(tcp(80, 41000 + i, F.TCP.ACK), XdpAction.TX)), wentTo[i]);
    // A UDP flow of two datagrams (the second confirms it), one IPv6 SYN, two connections of one persistent client.
    const dns = F.frame({ l2, src: CLIENT, dst: '192.0.2.80', sport: 5353, dport: 53, proto: 'udp', payload: Buffer.from('q') });
    send(dns, XdpAction.TX);
    send(dns, XdpAction.TX);
    assert.equal(realOf(send(tcp(80, 42000, F.TCP.SYN, '2001:db8::80', CLIENT6), XdpAction.TX)), 'rs6');
    send(tcp(443, 43000, F.TCP.SYN), XdpAction.TX);
    send(tcp(443, 43001, F.TCP.SYN), XdpAction.TX);
    // A segment of no flow of an rr/wrr service (dropped), a SYN to no service (the kernel's).
    send(tcp(80, 44000, F.TCP.ACK), XdpAction.DROP);
    send(tcp(8080, 44001, F.TCP.SYN), XdpAction.PASS);

    const s = await scrape();
    const list = await t.request({ op: 'list' }) as ListResult;
    const web = { service: 'tcp/192.0.2.80:80' };
    const web6 = { service: 'tcp/[2001:db8::80]:80' };
    const dnsSvc = { service: 'udp/192.0.2.80:53' };
    const tls = { service: 'tcp/192.0.2.80:443' };
    const rs = (svc: { service: string }, real: string) => ({ ...svc, real });

    // Statistics: exactly what was sent (IPv4 SYN/ACK 40 bytes, the datagram 29, IPv6 SYN 60), and what -L --stats shows.
    assert.equal(s.value('xvs_service_connections_total', web), 8);
    assert.equal(s.value('xvs_service_packets_total', { ...web, direction: 'in' }), 11);
    assert.equal(s.value('xvs_service_bytes_total', { ...web, direction: 'in' }), 11 * 40);
    assert.equal(s.value('xvs_service_packets_total', { ...web, direction: 'out' }), 0);
    assert.equal(s.value('xvs_service_connections_total', dnsSvc), 1);
    assert.equal(s.value('xvs_service_bytes_total', { ...dnsSvc, direction: 'in' }), 2 * 29);
    assert.equal(s.value('xvs_service_bytes_total', { ...web6, direction: 'in' }), 60);
    assert.equal(s.value('xvs_service_connections_total', { ...web6, family: 'ipv6' }), 1);
    const count = (who: string) => wentTo.filter((x) => x === who).length;
    assert.deepEqual([count('rs1'), count('rs2')], [6, 2], 'wrr 3:1 over two cycles');
    assert.equal(s.value('xvs_real_connections_total', rs(web, '192.0.2.11:80')), 6);
    assert.equal(s.value('xvs_real_connections_total', rs(web, '192.0.2.12:80')), 2);
    const acked = (who: string) => wentTo.slice(0, 3).filter((x) => x === who).length;
    assert.equal(s.value('xvs_real_packets_total', { ...rs(web, '192.0.2.11:80'), direction: 'in' }), 6 + acked('rs1'));
    assert.equal(s.value('xvs_real_connections_total', rs(web6, '[2001:db8::11]:80')), 1);
    for (const sv of list.services) {
      const svc = { service: `${sv.proto}/${sv.addr.includes(':') ? `[${sv.addr}]` : sv.addr}:${sv.port}` };
      assert.equal(s.value('xvs_service_connections_total', svc), sv.stats.conns, `${svc.service} conns as -L --stats`);
      assert.equal(s.value('xvs_service_packets_total', { ...svc, direction: 'in' }), sv.stats.inpkts);
      assert.equal(s.value('xvs_service_bytes_total', { ...svc, direction: 'in' }), sv.stats.inbytes);
      for (const r of sv.reals) {
        const lab = rs(svc, `${r.addr.includes(':') ? `[${r.addr}]` : r.addr}:${r.port}`);
        assert.equal(s.value('xvs_real_connections_total', lab), r.stats.conns);
        assert.equal(s.value('xvs_real_bytes_total', { ...lab, direction: 'in' }), r.stats.inbytes);
        assert.equal(s.value('xvs_real_active_connections', lab), r.activeConns, `${lab.real} ActiveConn as -L`);
        assert.equal(s.value('xvs_real_inactive_connections', lab), r.inactConns, `${lab.real} InActConn as -L`);
      }
    }

    // Flows by state, ActiveConn/InActConn, templates.
    assert.equal(s.value('xvs_service_flows', { ...web, state: 'syn_recv' }), 5);
    assert.equal(s.value('xvs_service_flows', { ...web, state: 'established' }), 3);
    assert.equal(s.sum('xvs_service_flows', web), 8);
    assert.equal(s.value('xvs_service_flows', { ...dnsSvc, state: 'udp' }), 1);
    assert.equal(s.find('xvs_service_flows', { ...dnsSvc, state: 'established' }), undefined, 'a UDP service has no TCP states');
    assert.equal(s.value('xvs_service_flows', { ...web6, state: 'syn_recv' }), 1);
    assert.equal(s.value('xvs_service_flows', { ...tls, state: 'syn_recv' }), 2);
    assert.equal(s.value('xvs_real_active_connections', rs(web, '192.0.2.11:80')), acked('rs1'));
    assert.equal(s.value('xvs_real_inactive_connections', rs(web, '192.0.2.11:80')), 6 - acked('rs1'));
    assert.equal(s.value('xvs_real_persistent_connections', rs(tls, '192.0.2.12:443')), 1);

    // Table fill.
    assert.equal(s.value('xvs_map_entries', { map: 'xvs_conns' }), 4);
    assert.equal(s.value('xvs_map_live_entries', { map: 'xvs_conns' }), 4);
    assert.equal(s.value('xvs_map_entries', { map: 'xvs_new_flows' }), 5 + 1 + 2);
    assert.equal(s.value('xvs_map_entries', { map: 'xvs_persist' }), 1);
    assert.equal(s.value('xvs_map_max_entries', { map: 'xvs_conns' }), 4096);
    assert.equal(s.value('xvs_map_entries', { map: 'xvs_services' }), 4);
    assert.equal(s.value('xvs_map_entries', { map: 'xvs_reals' }), 5);
    assert.equal(s.value('xvs_real_scheduler_slots', rs(web, '192.0.2.11:80')), 3);
    assert.equal(s.value('xvs_real_scheduler_slots', rs(web, '192.0.2.12:80')), 1);
    assert.equal(s.value('xvs_service_scheduler_table_slots', { ...web, scheduler: 'wrr' }), 4);

    // Dataplane counters, as differences (the kernel's own IPv6 chatter on the veth also reaches the program).
    assert.equal(d(s, 'xvs_dataplane_packets_total', { reason: 'tx', action: 'forward' }), 8 + 3 + 2 + 1 + 2);
    assert.equal(d(s, 'xvs_dataplane_packets_total', { reason: 'drop_no_conn', action: 'drop' }), 1);
    assert.ok(d(s, 'xvs_dataplane_packets_total', { reason: 'pass_no_svc', action: 'pass' }) >= 1);
    assert.equal(d(s, 'xvs_dataplane_events_total', { event: 'promoted' }), 3 + 1);
    assert.ok(d(s, 'xvs_dataplane_frames_total', {}) >= 18);
    assert.equal(s.family('xvs_dataplane_packets_total').metrics.length + s.family('xvs_dataplane_events_total').metrics.length + 1,
      Object.keys(list.counters).length, 'every xvs_counters entry, each once');

    // Next hops and the control plane.
    assert.equal(s.value('xvs_nexthops_unresolved'), 0);
    assert.equal(s.value('xvs_real_nexthop_resolved', rs(web6, '[2001:db8::11]:80')), 1);
    assert.equal(s.value('xvs_real_info', { ...rs(web6, '[2001:db8::11]:80'), family: 'ipv6', forward: 'dr' }), 1);
    assert.ok(s.value('xvs_scheduler_table_publishes_total', { trigger: 'change' }) >= 5);
  });

  test('ticks and their re-plans are counted (wlc re-plans every tick)', async () => {
    let s = await scrape();
    for (let i = 0; i < 50 && s.value('xvs_scheduler_ticks_total') < 2; i++) {
      await sleep(100);
      s = await scrape();
    }
    assert.ok(s.value('xvs_scheduler_ticks_total') >= 2);
    assert.ok(s.value('xvs_scheduler_table_publishes_total', { trigger: 'tick' }) >= s.value('xvs_scheduler_ticks_total') - 1);
    assert.ok(s.value('xvs_scheduler_tick_seconds_total') > 0);
  });

  test('rates are the estimator\'s, as xvsadm --rate shows them', async () => {
    // The estimator steps every 2 s, so a scrape taken between two listings
    // shows the rates of one of them; new connections keep them above zero.
    // Bounded in time: a loaded machine may make a round outlast a step.
    const web = (l: ListResult) => l.services.find((x) => x.port === 80 && x.addr === '192.0.2.80')!;
    const svc = { service: 'tcp/192.0.2.80:80' };
    const rates = (l: ListResult) => {
      const w = web(l);
      return [w.rates!.cps, w.rates!.inpps, w.rates!.inbps, w.reals.find((r) => r.addr === '192.0.2.11')!.rates!.cps];
    };
    let port = 45000;
    let matched = false;
    const deadline = Date.now() + 30_000;
    while (!matched && Date.now() < deadline) {
      for (let i = 0; i < 40; i++) send(tcp(80, port++, F.TCP.SYN), XdpAction.TX);
      const a = rates(await t.request({ op: 'list' }) as ListResult);
      const s = await scrape();
      const b = rates(await t.request({ op: 'list' }) as ListResult);
      const got = [
        s.value('xvs_service_connections_per_second', svc), s.value('xvs_service_packets_per_second', { ...svc, direction: 'in' }),
        s.value('xvs_service_bytes_per_second', { ...svc, direction: 'in' }), s.value('xvs_real_connections_per_second', { ...svc, real: '192.0.2.11:80' }),
      ];
      if (a[0] === 0 && b[0] === 0) {
        await sleep(250);
        continue;
      }
      if (JSON.stringify(a) === JSON.stringify(b)) {
        assert.deepEqual(got, a, 'the scrape between two equal listings');
        matched = true;
      }
    }
    assert.ok(matched, 'a scrape between two equal listings with a non-zero rate');
  });

  test('only GET /metrics is served', async () => {
    const code = async (...a: string[]) => (await curl('-o', '/dev/null', '-w', '%{http_code}', ...a)).stdout;
    assert.equal(await code(`http://127.0.0.1:${PORT}/`), '404');
    assert.equal(await code(`http://127.0.0.1:${PORT}/metrics/x`), '404');
    assert.equal(await code('-X', 'POST', `http://127.0.0.1:${PORT}/metrics`), '405');
    assert.equal(await code(`http://127.0.0.1:${PORT}/metrics`), '200');
    const r = await curl('-D', '-', '-o', '/dev/null', `http://127.0.0.1:${PORT}/metrics`);
    assert.match(r.stdout, /content-type: text\/plain; version=0\.0\.4; charset=utf-8/i);
  });

  test('a bad --metrics is one line, its exit code, and nothing changes', async () => {
    const xvsd = (...a: string[]) => run('ip', ['netns', 'exec', t.ns, process.execPath, path.join(packageRoot, 'dist', 'src', 'cli', 'xvsd.js'),
      '--interface', 'd0', '--socket', path.join(t.dir, 'other.sock'), '--pin-dir', '/sys/fs/bpf/xvs-other', '--no-config', ...a]);
    const progBefore = withNetns(t.ns, () => xdpProgId(ifIndex('d0')));
    const cases: [string[], number, RegExp][] = [
      [['--metrics', '127.0.0.1'], 2, /^xvsd: BAD_ADDRESS: --metrics '127\.0\.0\.1' needs a port/],
      [['--metrics', 'localhost:9469'], 2, /^xvsd: BAD_ADDRESS: 'localhost:9469' is not an address/],
      [['--metrics', `127.0.0.1:${PORT}`], 3, /^xvsd: LISTEN: cannot serve metrics on 127\.0\.0\.1:9469: EADDRINUSE/],
      [['--metrics', '192.0.2.99:9469'], 3, /^xvsd: LISTEN: cannot serve metrics on 192\.0\.2\.99:9469: EADDRNOTAVAIL/],
      [['--metrics', `127.0.0.1:${PORT + 1}`, '--metrics-census-ms', '-1'], 2, /-1 is not a non-negative integer/],
    ];
    for (const [args, exit, line] of cases) {
      const r = await xvsd(...args);
      assert.equal(r.code, exit, `${args.join(' ')}: exit code (${r.stderr})`);
      assert.match(r.stderr, line, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
    }
    assert.equal(withNetns(t.ns, () => xdpProgId(ifIndex('d0'))), progBefore, 'the running director is untouched');
    assert.equal((await scrape()).value('xvs_map_entries', { map: 'xvs_services' }), 4);
  });
});

describe('metrics of FULLNAT local ports (in-process: xvsadm has no local addresses yet)', { skip }, () => {
  let t: DirectorNs;
  const LIPS = ['192.0.2.200', '192.0.2.201'];
  const key = { proto: 'tcp' as const, addr: ADDR.vip, port: 80 };

  before(async () => {
    t = directorNs('xvs-metf');
    await t.director.addService({ ...key, scheduler: 'rr' });
    await t.addReal(key, { addr: ADDR.rs1, port: 8080, fwd: 'fullnat', weight: 1 });
    for (const l of LIPS) await t.director.addLaddr(key, l);
  });

  after(() => t?.close());

  test('each new flow holds one local port of the address it left from, until it expires', async () => {
    const byLip = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const frame = F.frame({ l2: HOP.fromClient, src: `203.0.113.${10 + i}`, dst: ADDR.vip, sport: 51000 + i, dport: 80, flags: F.TCP.SYN });
      const r = t.run(frame);
      assert.equal(r.retval, XdpAction.TX);
      const lip = F.addrText(F.dissect(r.data).src);
      byLip.set(lip, (byLip.get(lip) ?? 0) + 1);
    }
    const s = new Scrape(await new Metrics(t.director, 0).scrape());
    const real = { service: 'tcp/192.0.2.80:80', real: '192.0.2.11:8080' };
    for (const lip of LIPS) assert.equal(s.find('xvs_fullnat_local_ports_in_use', { ...real, laddr: lip }) ?? 0, byLip.get(lip) ?? 0, `ports of ${lip}`);
    assert.equal(s.sum('xvs_fullnat_local_ports_in_use', real), 20);
    assert.equal(s.value('xvs_map_entries', { map: 'xvs_new_replies' }), 20);
    assert.equal(s.value('xvs_real_info', { ...real, forward: 'fullnat' }), 1);
  });
});
