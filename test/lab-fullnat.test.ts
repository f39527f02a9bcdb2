// FULLNAT in the namespace lab with real curl clients and real servers
// behind a router (src/lab/fullnat.ts): the real servers are in a subnet
// of their own, not on the director's link, and route through the router,
// not the director. They run `xvs realserver setup --mode fullnat` and an
// HTTP server that reports, for every connection, the client the TOA
// reader recorded (clientOf) and the peer it sees. Checked for every
// connection: the TOA names the client's own end, the peer is a local
// address of the service's pool. Hundreds of requests all answered and
// split per weights, over IPv4, IPv6 and NAT64 (an IPv6 VIP in front of
// IPv4 real servers: the TOA then carries the IPv6 client), the flows
// spread over the local addresses; then 4 MiB each way, the upload's first
// data segment a full one, which must reach the real server whole with the
// TOA in it: the MSS the director lowered in the SYN-ACK left it room (for
// NAT64 the IPv4 header, 20 bytes shorter than the IPv6 one, does too).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv6 } from 'node:net';
import { request } from '../src/control/socket.js';
import type { ListResult } from '../src/control/protocol.js';
import type { StatusView } from '../src/daemon/views.js';
import { FULLNAT_NET, firstLargeSegment, fullnatLab, fullnatRealServer, startToaHttpd, toaRequests, upload, type FullnatLab, type RunningServer } from '../src/lab/fullnat.js';
import { createLab, nsExec, run, type Lab } from '../src/lab/topology.js';
import { connectionsClosed, startDirector, type DirectorHandle } from '../src/lab/scenario.js';
import { kernelSkipReason } from './helpers/env.js';
import { sweepStaleCgroups, testCgroup, type TestCgroup } from './helpers/cgroup.js';
import * as F from './helpers/frames.js';

const skip = kernelSkipReason();
const REQUESTS = 300;
const BIG = 4 << 20;
const N = FULLNAT_NET;
const DROPS = ['fnat_no_laddr', 'fnat_no_port', 'toa_no_room', 'nat_refused', 'drop_no_conn', 'no_neigh', 'fib_fail', 'error', 'bad_mode', 'no_real', 'ttl_exceeded'] as const;

/** The same address in one text form, whatever the writer (curl, Node, the maps). */
const canon = (a: string): string => (isIPv6(a) ? F.addrText(F.ip6(a)) : a);

interface Scenario {
  name: string;
  vip: string;
  port: number;
  /** The real servers' addresses, weights 3 and 1. */
  reals: (i: number) => string;
  pool: readonly string[];
  /** What the real servers see the client's segments from: the pool's addresses of their family. */
  peers: readonly string[];
}

/** The client and the TOA named by a TCP segment's option 254 (kind, length, port, address), from its IP packet. */
function toaOf(ipPacket: Buffer): { address: string; port: number; totalLength: number } | undefined {
  const v6 = ipPacket[0]! >> 4 === 6;
  const ihl = v6 ? 40 : (ipPacket[0]! & 0x0f) * 4;
  const totalLength = v6 ? 40 + ipPacket.readUInt16BE(4) : ipPacket.readUInt16BE(2);
  const tcp = ipPacket.subarray(ihl);
  const end = (tcp[12]! >> 4) * 4;
  for (let i = 20; i < end;) {
    const kind = tcp[i]!;
    if (kind === 0) break;
    if (kind === 1) { i++; continue; }
    const len = tcp[i + 1]!;
    if (len < 2) break;
    if (kind === 254 && (len === 8 || len === 20)) {
      const port = tcp.readUInt16BE(i + 2);
      const a = tcp.subarray(i + 4, i + len);
      return { address: len === 8 ? [...a].join('.') : F.addrText(a), port, totalLength };
    }
    i += len;
  }
  return { address: '', port: 0, totalLength };
}

describe('lab: FULLNAT with TOA, real servers behind a router', { skip, timeout: 600_000 }, () => {
  let lab: FullnatLab;
  let director: DirectorHandle;
  let cg: TestCgroup;
  const servers: RunningServer[] = [];
  const set: { host: FullnatLab['reals'][number]; vips: string[] }[] = [];

  const scenarios: Scenario[] = [
    { name: 'IPv4', vip: '', port: 80, reals: (i) => N.real(11 + i), pool: N.laddrs4, peers: N.laddrs4 },
    { name: 'IPv6', vip: N.vip6, port: 80, reals: (i) => N.real6(11 + i), pool: N.laddrs6, peers: N.laddrs6 },
    // An IPv6 VIP in front of IPv4 real servers; the pool holds both families, the IPv4 servers take its IPv4 addresses.
    { name: 'NAT64', vip: N.vip6, port: 81, reals: (i) => N.real(11 + i), pool: [N.laddrs6[0], N.laddrs4[1], N.laddrs4[2]], peers: [N.laddrs4[1], N.laddrs4[2]] },
  ];
  const svc = (s: Scenario): string[] => ['-t', isIPv6(s.vip) ? `[${s.vip}]:${s.port}` : `${s.vip}:${s.port}`];
  const counters = async (): Promise<Record<string, number>> => (await request(director.socket, { op: 'status' }) as StatusView).counters;
  const closed = (vip: string): Promise<void> => connectionsClosed({ ...lab, vip } as Lab, 80);

  before(async () => {
    await sweepStaleCgroups();
    cg = testCgroup('fullnat-lab');
    const base = await createLab({ id: `xvsf${process.pid % 10000}`, reals: 2, ipv6: true });
    // after() takes it down whatever happens next.
    lab = base as FullnatLab;
    lab = await fullnatLab(base);
    scenarios[0]!.vip = lab.vip;
    const toa = { cgroup: { path: cg.path, dir: cg.dir } };
    for (const [i, host] of lab.reals.entries()) {
      const vips = [lab.vip, lab.vip6];
      await fullnatRealServer(lab, host, vips, 'setup', toa);
      set.push({ host, vips });
      servers.push(await startToaHttpd(lab, host, `rs${i + 1}`, toa));
    }
    director = await startDirector(lab);
    // As an operator would: the service, its local addresses, its real servers.
    for (const s of scenarios) {
      await director.xvsadm(['-A', ...svc(s), '-s', 'wrr']);
      for (const a of s.pool) await director.xvsadm(['-P', ...svc(s), '-z', a]);
      await director.xvsadm(['-a', ...svc(s), '-r', isIPv6(s.reals(0)) ? `[${s.reals(0)}]:80` : `${s.reals(0)}:80`, '-b', '-w', '3']);
      await director.xvsadm(['-a', ...svc(s), '-r', isIPv6(s.reals(1)) ? `[${s.reals(1)}]:80` : `${s.reals(1)}:80`, '-b', '-w', '1']);
    }
  });

  after(async () => {
    await director?.stop();
    for (const s of servers) await s.stop();
    const toa = { cgroup: { path: cg?.path ?? '', dir: cg?.dir ?? '' } };
    for (const { host, vips } of set) await fullnatRealServer(lab, host, vips, 'teardown', toa).catch(() => undefined);
    await lab?.down();
    await cg?.remove();
  });

  test('the real servers are in a subnet of their own behind the router, which is their gateway; -L and -G show the services', async () => {
    for (const r of lab.reals) {
      assert.equal((await run('ip', ['-n', r.ns, '-4', 'route', 'show', 'default'])).trim(), `default via ${N.routerServerSide} dev eth0`);
      assert.match(await run('ip', ['-n', r.ns, '-6', 'route', 'show', 'default']), new RegExp(`^default via ${N.routerServerSide6} dev eth0 `));
      // The director reaches them through the router, not on a link of its own.
      assert.match(await nsExec(lab.director.ns, 'ip', ['route', 'get', r.ip]), new RegExp(`via ${N.routerClientSide} dev eth0`));
      assert.match(await nsExec(lab.director.ns, 'ip', ['-6', 'route', 'get', r.ip6!]), new RegExp(`via ${N.routerClientSide6} dev eth0`));
    }
    const listing = await director.xvsadm(['-L', '-n']);
    assert.match(listing, new RegExp(`\\n  -> ${N.real(11).replace(/\./g, '\\.')}:80 +FullNat 3 `));
    const g = await director.xvsadm(['-G']);
    assert.equal(g.split('\n').filter((l) => /^\S/.test(l)).length, 1 + scenarios.length, g);
    for (const s of scenarios) for (const a of s.pool) assert.match(g, new RegExp(` ${a.replace(/\./g, '\\.')} `));
  });

  for (const [i, s] of scenarios.entries()) {
    test(`${s.name}: ${REQUESTS} curl requests, all answered and split 3:1; every TOA names the client, every peer is a local address; the flows spread over the pool`, async () => {
      const before = await counters();
      const answers = await toaRequests(lab, s.vip, REQUESTS, s.port);
      await closed(s.vip);
      assert.equal(answers.length, REQUESTS, 'every request answered');
      assert.deepEqual(['rs1', 'rs2'].map((n) => answers.filter((a) => a.server === n).length), [REQUESTS * 3 / 4, REQUESTS / 4], 'wrr 3:1, exactly');
      const peers = s.peers.map(canon);
      const perPeer = new Map<string, number>();
      for (const a of answers) {
        assert.deepEqual({ ...a.client, address: canon(a.client.address) }, { via: 'toa', address: canon(a.local.address), port: a.local.port },
          `the TOA names the client's own end: ${JSON.stringify(a)}`);
        assert.ok(peers.includes(canon(a.peer.address)), `the peer is a local address of the pool: ${JSON.stringify(a)}`);
        assert.ok(a.peer.port >= 1024 && a.peer.port <= 65535, `local port ${a.peer.port}`);
        perPeer.set(canon(a.peer.address), (perPeer.get(canon(a.peer.address)) ?? 0) + 1);
      }
      for (const p of peers) assert.ok((perPeer.get(p) ?? 0) >= REQUESTS / (4 * peers.length), `flows over the pool: ${JSON.stringify([...perPeer])}`);

      const after = await counters();
      const delta = (k: string): number => (after[k] ?? 0) - (before[k] ?? 0);
      // The handshake's ACK and the request's segment each carry it, once a connection: one or two per connection.
      assert.ok(delta('toa_added') >= REQUESTS && delta('toa_added') <= 2 * REQUESTS, `toa_added ${delta('toa_added')}`);
      for (const d of DROPS) assert.equal(delta(d), 0, d);
      const l = await request(director.socket, { op: 'list' }) as ListResult;
      const v = l.services.find((x) => canon(x.addr) === canon(s.vip) && x.port === s.port)!;
      assert.equal(v.stats.conns, REQUESTS);
      assert.deepEqual(v.reals.map((r) => r.stats.conns), [REQUESTS * 3 / 4, REQUESTS / 4]);
      assert.ok(v.reals.every((r) => r.stats.outpkts > 0), 'the replies came back through the director');
      const st = (await request(director.socket, { op: 'status' }) as StatusView).fullnat[i]!;
      assert.deepEqual(st.laddrs.map((x) => x.addr), s.pool);
      assert.deepEqual(st.realsWithoutLaddr, []);
    });
  }

  for (const s of scenarios) {
    test(`${s.name}: 4 MiB up, its first full data segment carrying the TOA within the MTU, and 4 MiB down`, async () => {
      const before = await counters();
      // A 1500-byte IP packet is a 1514-byte frame: only full segments reach the filter.
      const { result: up, packets } = await firstLargeSegment(lab.reals, 1514, () => upload(lab, s.vip, BIG, s.port));
      assert.equal(up.status, 200);
      assert.equal(up.headers['x-received-bytes'], String(BIG), 'the real server read every byte');
      const [via = '', addr = '', port = ''] = (up.headers['x-client'] ?? '').split(' ');
      assert.deepEqual([via, canon(addr), Number(port)], ['toa', canon(up.local.address), up.local.port], 'the TOA names the uploading client');
      const server = up.headers['x-real-server']!;
      const first = packets.get(server);
      assert.ok(first, `the real server that answered (${server}) received full segments: ${[...packets.keys()].join(' ')}`);
      const toa = toaOf(first);
      assert.equal(toa?.totalLength, 1500, 'a full segment, TOA included, is exactly the MTU');
      assert.deepEqual({ address: canon(toa?.address ?? ''), port: toa?.port }, { address: canon(up.local.address), port: up.local.port },
        'the first full segment carried the TOA naming the client: it was not dropped for its size and sent again without');

      const url = `http://${isIPv6(s.vip) ? `[${s.vip}]` : s.vip}:${s.port}/bytes/${BIG}`;
      const down = (await nsExec(lab.client.ns, 'curl', ['-s', '-g', '--fail', '--max-time', '60', '-o', '/dev/null',
        '-w', '%{size_download}|%{local_ip}|%{local_port}|%header{x-client}', url], { timeoutMs: 90_000 })).split('|');
      assert.equal(down[0], String(BIG));
      const [dvia = '', daddr = '', dport = ''] = (down[3] ?? '').split(' ');
      assert.deepEqual([dvia, canon(daddr), dport], ['toa', canon(down[1]!), down[2]], 'the TOA names the downloading client');
      await closed(s.vip);
      const after = await counters();
      for (const d of DROPS) assert.equal((after[d] ?? 0) - (before[d] ?? 0), 0, d);
    });
  }
});
