// The next-hop refresher: parsing of `ip monitor` events and of batched
// `ip` output (recorded from iproute2 6.1), the decisions made from them,
// the number of processes a refresh costs, and the refresher itself against
// a namespace whose neighbour, route and link tables the test changes while
// it measures how long the director's xvs_nexthops takes to follow.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Director } from '../src/daemon/director.js';
import { parseMonitorLine } from '../src/daemon/ip-monitor.js';
import { parseLinks, parseNeighbours, parseRouteBatch, readIpTables, routeBatch, type IpTables } from '../src/daemon/ip-tables.js';
import { neighbourFixes } from '../src/daemon/neigh.js';
import { nexthopFrom } from '../src/daemon/nexthop.js';
import { NexthopRefresher, needsRefresh, type NexthopView } from '../src/daemon/nexthop-refresh.js';
import { ADDR, directorNs, type DirectorNs } from './helpers/director-ns.js';
import { kernelSkipReason, sh } from './helpers/env.js';

const skip = kernelSkipReason();

describe('ip monitor lines', () => {
  test('neighbour events: added, changed, deleted, managed, IPv6', () => {
    assert.deepEqual(parseMonitorLine('[NEIGH]192.0.2.11 dev eth0 lladdr 02:00:00:00:00:0B REACHABLE '),
      { kind: 'neigh', deleted: false, dst: '192.0.2.11', dev: 'eth0', lladdr: '02:00:00:00:00:0b', state: ['REACHABLE'] });
    assert.deepEqual(parseMonitorLine('[NEIGH]Deleted 192.0.2.11 dev a0 lladdr 02:00:00:00:00:0c PERMANENT '),
      { kind: 'neigh', deleted: true, dst: '192.0.2.11', dev: 'a0', lladdr: '02:00:00:00:00:0c', state: ['PERMANENT'] });
    assert.deepEqual(parseMonitorLine('[NEIGH]192.0.2.12 dev a0 managed FAILED '),
      { kind: 'neigh', deleted: false, dst: '192.0.2.12', dev: 'a0', state: ['FAILED'] });
    assert.deepEqual(parseMonitorLine('[NEIGH]2001:0db8:0::31 dev a0 lladdr 02:00:00:00:00:1f router STALE'),
      { kind: 'neigh', deleted: false, dst: '2001:db8::31', dev: 'a0', lladdr: '02:00:00:00:00:1f', state: ['STALE'] });
  });

  test('route and link events', () => {
    assert.deepEqual(parseMonitorLine('[ROUTE]198.51.100.0/24 via 192.0.2.254 dev a0 '), { kind: 'route', deleted: false, dev: 'a0' });
    assert.deepEqual(parseMonitorLine('[ROUTE]Deleted blackhole 203.0.113.0/24 '), { kind: 'route', deleted: true });
    assert.deepEqual(parseMonitorLine('[ROUTE]local fe80::1 dev a0 table local proto kernel metric 0 pref medium'),
      { kind: 'route', deleted: false, dev: 'a0', table: 'local' });
    assert.deepEqual(
      parseMonitorLine('[LINK]3: a0@b0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP group default \\    link/ether 02:00:00:00:01:99 brd ff:ff:ff:ff:ff:ff'),
      { kind: 'link', deleted: false, ifindex: 3, ifname: 'a0', up: true, mtu: 1450, address: '02:00:00:00:01:99' });
    assert.deepEqual(
      parseMonitorLine('[LINK]Deleted 7: eth1: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 02:00:00:00:02:01 brd ff:ff:ff:ff:ff:ff'),
      { kind: 'link', deleted: true, ifindex: 7, ifname: 'eth1', up: false, mtu: 1500, address: '02:00:00:00:02:01' });
    assert.equal(parseMonitorLine('   '), undefined);
    assert.equal(parseMonitorLine('[NEIGH]miss 192.0.2.1')?.kind, 'other');
    assert.equal(parseMonitorLine('[ADDR]2: eth0 inet 192.0.2.1/24')?.kind, 'other');
  });
});

const TABLES = (): IpTables => ({
  routes: parseRouteBatch([
    '[{"dst":"192.0.2.11","dev":"d0","prefsrc":"192.0.2.1","flags":[],"uid":0,"cache":[]}]',
    '[{"dst":"198.51.100.10","gateway":"192.0.2.254","dev":"d0","prefsrc":"192.0.2.1","flags":[],"uid":0,"cache":[],"metrics":[{"mtu":1300}]}]',
    '[{"dst":"2001:db8:0:0::11","dev":"d1","prefsrc":"2001:db8::1","flags":[],"uid":0,"cache":[]}]',
    '[{"type":"local","dst":"192.0.2.1","dev":"lo","prefsrc":"192.0.2.1","flags":[],"uid":0,"cache":["local"]}]',
    '[{"dst":"192.0.2.12","dev":"d0","prefsrc":"192.0.2.1","flags":[],"uid":0,"cache":[]}]',
    '',
  ].join('\n')),
  neighbours: parseNeighbours(JSON.stringify([
    { dst: '192.0.2.11', dev: 'd0', lladdr: '02:00:00:00:00:0B', state: ['REACHABLE'] },
    { dst: '192.0.2.254', dev: 'd0', lladdr: '02:00:00:00:00:fe', managed: null, state: ['STALE'] },
    { dst: '2001:db8::11', dev: 'd1', lladdr: '02:00:00:00:00:aa', state: ['PERMANENT'] },
    { dst: '192.0.2.12', dev: 'd0', managed: null, state: ['FAILED'] },
  ])),
  links: parseLinks(JSON.stringify([
    { ifindex: 4, ifname: 'd0', flags: ['BROADCAST', 'UP'], mtu: 1500, address: '02:00:00:00:01:01' },
    { ifindex: 6, ifname: 'd1', flags: ['BROADCAST', 'UP'], mtu: 9000, address: '02:00:00:00:01:02' },
  ])),
});

describe('next hops from the kernel tables', () => {
  test('the route batch is one line per address, its answers matched by dst', () => {
    assert.equal(routeBatch(['192.0.2.11', '2001:db8::11']), 'route get 192.0.2.11\nroute get 2001:db8::11\n');
    const t = TABLES();
    assert.deepEqual([...t.routes.keys()], ['192.0.2.11', '198.51.100.10', '2001:db8::11', '192.0.2.1', '192.0.2.12']);
    assert.equal(t.routes.get('198.51.100.10')?.mtu, 1300);
    assert.equal(t.routes.get('198.51.100.10')?.gateway, '192.0.2.254');
  });

  test('an entry takes the route, the next hop\'s usable MAC and the interface', () => {
    const t = TABLES();
    assert.deepEqual(nexthopFrom('192.0.2.11', t), {
      addr: '192.0.2.11', hop: { addr: '192.0.2.11', dev: 'd0' },
      nh: { ifindex: 4, mtu: 1500, dmac: '02:00:00:00:00:0b', smac: '02:00:00:00:01:01', saddr: '192.0.2.1' },
    });
    // Through a gateway, with the route's MTU; the tunnel source of the other family is not used.
    assert.deepEqual(nexthopFrom('198.51.100.10', t, '2001:db8::99').nh,
      { ifindex: 4, mtu: 1300, dmac: '02:00:00:00:00:fe', smac: '02:00:00:00:01:01', saddr: '192.0.2.1' });
    assert.deepEqual(nexthopFrom('2001:db8::11', t, '2001:db8::99').nh,
      { ifindex: 6, mtu: 9000, dmac: '02:00:00:00:00:aa', smac: '02:00:00:00:01:02', saddr: '2001:db8::99' });
  });

  test('what cannot be resolved is unknown, with the tunnel source kept and the reason', () => {
    const t = TABLES();
    const failed = nexthopFrom('192.0.2.12', t, '192.0.2.99');
    assert.deepEqual(failed.nh, { ifindex: 0, mtu: 0, dmac: '00:00:00:00:00:00', smac: '00:00:00:00:00:00', saddr: '192.0.2.99' });
    assert.equal(failed.unresolved, 'neighbour 192.0.2.12 on d0 FAILED');
    assert.deepEqual(failed.hop, { addr: '192.0.2.12', dev: 'd0' });
    const noRoute = nexthopFrom('203.0.113.9', t, '192.0.2.99');
    assert.equal(noRoute.unresolved, 'no route');
    assert.equal(noRoute.nh.saddr, '192.0.2.99');
    assert.equal(noRoute.hop, undefined);
    assert.equal(nexthopFrom('192.0.2.1', t).unresolved, 'route type local');
    t.neighbours.clear();
    assert.equal(nexthopFrom('192.0.2.11', t).unresolved, 'neighbour 192.0.2.11 on d0 absent');
    assert.equal(nexthopFrom('192.0.2.11', t).nh.saddr, '192.0.2.1', 'the route\'s source stays for TUN');
  });

  test('next hops become managed neighbours without losing a MAC the kernel trusts', () => {
    const t = TABLES();
    const hops = [
      { addr: '192.0.2.11', dev: 'd0' }, // usable, not managed: converted with its MAC
      { addr: '192.0.2.11', dev: 'd0' }, // once
      { addr: '192.0.2.254', dev: 'd0' }, // managed already
      { addr: '2001:db8::11', dev: 'd1' }, // permanent
      { addr: '192.0.2.12', dev: 'd0' }, // managed, failed: the kernel retries by itself
      { addr: '192.0.2.13', dev: 'd0' }, // absent
    ];
    assert.deepEqual(neighbourFixes(hops, t), [
      'neigh replace 192.0.2.11 lladdr 02:00:00:00:00:0b dev d0 nud stale managed',
      'neigh replace 192.0.2.13 dev d0 managed',
    ]);
  });

  test('only events that can change an entry ask for a refresh', () => {
    const view: NexthopView = {
      hops: new Map([['192.0.2.11 d0', '02:00:00:00:00:0b'], ['192.0.2.12 d0', '!INCOMPLETE']]),
      links: new Map([['d0', { ifindex: 4, mtu: 1500, address: '02:00:00:00:01:01', up: true }]]),
    };
    const ev = (line: string): boolean => needsRefresh(parseMonitorLine(line)!, view);
    assert.equal(ev('[NEIGH]192.0.2.11 dev d0 lladdr 02:00:00:00:00:0b STALE'), false, 'same MAC, another usable state');
    assert.equal(ev('[NEIGH]192.0.2.11 dev d0 lladdr 02:00:00:00:00:0b PROBE'), false);
    assert.equal(ev('[NEIGH]192.0.2.11 dev d0 lladdr 02:00:00:00:00:0c STALE'), true, 'new MAC');
    assert.equal(ev('[NEIGH]192.0.2.11 dev d0 lladdr 02:00:00:00:00:0b FAILED'), true, 'no longer usable');
    assert.equal(ev('[NEIGH]Deleted 192.0.2.11 dev d0 lladdr 02:00:00:00:00:0b STALE'), true, 'gone');
    assert.equal(ev('[NEIGH]192.0.2.12 dev d0 managed INCOMPLETE'), false, 'as it was');
    assert.equal(ev('[NEIGH]192.0.2.12 dev d0 managed FAILED'), true, 'still unresolved, for another reason');
    assert.equal(ev('[NEIGH]192.0.2.12 dev d0 lladdr 02:00:00:00:00:0c managed REACHABLE'), true, 'resolved');
    assert.equal(ev('[NEIGH]192.0.2.50 dev d0 lladdr 02:00:00:00:00:32 REACHABLE'), false, 'not a next hop');
    assert.equal(ev('[NEIGH]192.0.2.11 dev d1 lladdr 02:00:00:00:00:0c REACHABLE'), false, 'another interface');
    assert.equal(ev('[ROUTE]192.0.2.11 via 198.51.100.2 dev d1'), true);
    assert.equal(ev('[LINK]4: d0@p0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 qdisc noqueue state UP \\    link/ether 02:00:00:00:01:01 brd ff:ff:ff:ff:ff:ff'), true, 'MTU');
    assert.equal(ev('[LINK]4: d0@p0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP \\    link/ether 02:00:00:00:01:09 brd ff:ff:ff:ff:ff:ff'), true, 'MAC');
    assert.equal(ev('[LINK]4: d0@p0: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN \\    link/ether 02:00:00:00:01:01 brd ff:ff:ff:ff:ff:ff'), true, 'down');
    assert.equal(ev('[LINK]4: d0@p0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP \\    link/ether 02:00:00:00:01:01 brd ff:ff:ff:ff:ff:ff'), false, 'nothing the entry holds');
    assert.equal(ev('[LINK]9: d9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 qdisc noqueue state UP \\    link/ether 02:00:00:00:09:09 brd ff:ff:ff:ff:ff:ff'), false, 'not in use');
  });
});

describe('next hops follow the kernel', { skip }, () => {
  let t: DirectorNs;
  let director: Director;
  let refresher: NexthopRefresher;
  const ip = (...a: string[]): string => sh('ip', ['-n', t.ns, ...a]);
  const svc = { proto: 'tcp' as const, addr: ADDR.vip, port: 80 };
  const NEW_MAC = '02:00:00:00:00:77';
  let rs1Id = -1;
  let rsNoId = -1;

  before(async () => {
    t = directorNs('xvsnh');
    director = new Director(t.dp, { netns: t.ns });
    await director.addService({ ...svc, scheduler: 'rr' });
    await director.addReal(svc, { addr: ADDR.rs1, port: 0, fwd: 'dr', weight: 1 });
    await director.addReal(svc, { addr: ADDR.rsNoNeigh, port: 0, fwd: 'dr', weight: 1 });
    const ids = new Map(director.model.services.get('tcp 192.0.2.80:80')!.reals.map((r) => [r.addr, r.id]));
    rs1Id = ids.get(ADDR.rs1)!;
    rsNoId = ids.get(ADDR.rsNoNeigh)!;
    refresher = new NexthopRefresher(director, { netns: t.ns });
    await refresher.start();
  });

  after(() => {
    refresher?.stop();
    t?.close();
  });

  /** Milliseconds until the entry satisfies `ok`, polled every 5 ms; fails after 5 s. */
  async function until(id: number, ok: (nh: ReturnType<typeof t.dp.nexthops.get>) => boolean, what: string): Promise<number> {
    const t0 = Date.now();
    while (Date.now() - t0 < 5000) {
      if (ok(t.dp.nexthops.get(id))) return Date.now() - t0;
      await sleep(5);
    }
    assert.fail(`${what}: not within 5 s (entry ${JSON.stringify(t.dp.nexthops.get(id))})`);
  }

  test('the start refreshes every entry and reports the unresolved one', () => {
    assert.equal(t.dp.nexthops.get(rs1Id)?.dmac, ADDR.rs1Mac);
    assert.equal(t.dp.nexthops.get(rsNoId)?.ifindex, 0);
    const status = director.status();
    assert.equal(status.unresolvedNexthops.length, 1);
    assert.equal(status.unresolvedNexthops[0]!.addr, ADDR.rsNoNeigh);
    assert.match(status.unresolvedNexthops[0]!.why, /^neighbour 192\.0\.2\.12 on d0 (INCOMPLETE|FAILED)$/);
    // The director made it a managed neighbour (the kernel keeps probing it).
    assert.match(ip('neigh', 'show', ADDR.rsNoNeigh, 'dev', 'd0'), /managed/);
  });

  test('a changed MAC is written within one second', async () => {
    ip('neigh', 'replace', ADDR.rs1, 'lladdr', NEW_MAC, 'dev', 'd0', 'nud', 'permanent');
    const ms = await until(rs1Id, (nh) => nh?.dmac === NEW_MAC, 'new MAC');
    assert.ok(ms < 1000, `took ${ms} ms`);
  });

  test('a neighbour that resolves is written, and one that goes is unknown', async () => {
    ip('neigh', 'replace', ADDR.rsNoNeigh, 'lladdr', '02:00:00:00:00:0c', 'dev', 'd0', 'nud', 'reachable');
    const ms = await until(rsNoId, (nh) => nh?.dmac === '02:00:00:00:00:0c' && nh.ifindex === t.ifindex, 'resolved');
    assert.ok(ms < 1000, `took ${ms} ms`);
    assert.deepEqual(director.status().unresolvedNexthops, []);
    ip('neigh', 'del', ADDR.rsNoNeigh, 'dev', 'd0');
    await until(rsNoId, (nh) => nh?.ifindex === 0, 'unknown again');
    assert.equal(director.status().unresolvedNexthops[0]?.addr, ADDR.rsNoNeigh);
  });

  test('a moved route and a new MTU are followed', async () => {
    const d1 = Number(JSON.parse(ip('-j', 'link', 'show', 'd1'))[0].ifindex);
    ip('route', 'add', `${ADDR.rs1}/32`, 'via', ADDR.rsFar, 'dev', 'd1');
    let ms = await until(rs1Id, (nh) => nh?.ifindex === d1 && nh.dmac === ADDR.rsFarMac && nh.smac === ADDR.dir2Mac, 'route moved');
    assert.ok(ms < 1000, `route: ${ms} ms`);
    ip('link', 'set', 'd1', 'mtu', '1400');
    ms = await until(rs1Id, (nh) => nh?.mtu === 1400, 'MTU');
    assert.ok(ms < 1000, `MTU: ${ms} ms`);
    ip('route', 'del', `${ADDR.rs1}/32`);
    await until(rs1Id, (nh) => nh?.ifindex === t.ifindex && nh.dmac === NEW_MAC, 'route back');
  });

  test('a monitor that dies is restarted and its gap refreshed', async () => {
    // Settle first: a refresh the earlier tests' events scheduled would
    // otherwise find the change below before the restart does.
    await sleep(200);
    await refresher.idle();
    const pid = refresher.monitorPid!;
    const before = refresher.refreshes;
    process.kill(pid, 'SIGKILL');
    // Changed while no monitor runs: the refresh after the restart finds it.
    ip('neigh', 'replace', ADDR.rs1, 'lladdr', ADDR.rs1Mac, 'dev', 'd0', 'nud', 'permanent');
    const t0 = Date.now();
    while (!(refresher.monitorPid && refresher.monitorPid !== pid) && Date.now() - t0 < 5000) await sleep(5);
    assert.ok(refresher.monitorPid && refresher.monitorPid !== pid, 'a new monitor runs');
    await until(rs1Id, (nh) => nh?.dmac === ADDR.rs1Mac, 'after restart');
    assert.ok(refresher.refreshes > before, 'by a refresh after the restart');
    ip('neigh', 'replace', ADDR.rs1, 'lladdr', NEW_MAC, 'dev', 'd0', 'nud', 'permanent');
    const ms = await until(rs1Id, (nh) => nh?.dmac === NEW_MAC, 'event after restart');
    assert.ok(ms < 1000, `took ${ms} ms`);
  });

  test('a refresh of 1,000 addresses costs three ip processes', async () => {
    // The refresher's own ip processes must not land in the count.
    refresher.stop();
    await refresher.idle();
    const dir = mkdtempSync(join(tmpdir(), 'xvs-ipcount-'));
    const log = join(dir, 'calls');
    const real = sh('sh', ['-c', 'command -v ip']).trim();
    writeFileSync(join(dir, 'ip'), `#!/bin/sh\necho "$*" >> ${log}\nexec ${real} "$@"\n`);
    chmodSync(join(dir, 'ip'), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${dir}:${path}`;
    try {
      // Route look-ups only (nothing is sent), inside the test's namespace.
      const addrs = Array.from({ length: 1000 }, (_, i) => `2001:db8:1::${(i + 1).toString(16)}`).concat([ADDR.rs1, '100.64.0.1']);
      const tables = await readIpTables(addrs, { netns: t.ns });
      const calls = readFileSync(log, 'utf8').trim().split('\n');
      assert.equal(calls.length, 3, calls.join(' | '));
      assert.equal(tables.routes.size, 1001, 'every address with a route has it; the one without none');
      assert.equal(tables.routes.get('2001:db8:1::3e8')?.dev, 'd1');
      assert.equal(tables.routes.has('100.64.0.1'), false);
      assert.equal(tables.routes.get(ADDR.rs1)?.dev, 'd0');
    } finally {
      process.env.PATH = path;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
