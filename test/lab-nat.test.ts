// LVS-NAT in the namespace lab with real curl clients and HTTP servers:
// one-armed (client, director and real servers on one segment, the client
// in a subnet of its own: src/lab/nat.ts) and two-armed (src/lab/topology.ts,
// replies leaving by the client-side interface through the devmap). The
// real servers are set up by `xvs realserver setup --mode nat`: their
// default route goes via the director, nothing is on lo. Port mapping
// (VIP:80 -> RIP:8080), every request answered, the wrr split exact,
// keep-alive connections on one real server, and a capture on the client's
// wire: every packet it received came from the VIP. Then PMTUD through NAT:
// a router with a 1280-byte route MTU between the director and a real
// server, a 256 KiB upload and download; the upload completes only because
// the router's fragmentation-needed about client -> RIP:8080 reaches the
// client as one about client -> VIP:80 (icmperr.h).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from '../src/control/socket.js';
import type { ListResult } from '../src/control/protocol.js';
import { createLab, nsExec, run, LAB_NET_TWO_ARMED, type Lab } from '../src/lab/topology.js';
import { natOneArmed } from '../src/lab/nat.js';
import { startHttpd, type RunningHttpd } from '../src/lab/servers.js';
import { capture, connectionsClosed, curlMany, keepAliveRequests, realServerSetup, startDirector, vipUrl, type DirectorHandle } from '../src/lab/scenario.js';
import { kernelSkipReason } from './helpers/env.js';

const skip = kernelSkipReason();
const REQUESTS = 400;
const RPORT = 8080;
const DROPS = ['drop_no_conn', 'no_neigh', 'fib_fail', 'error', 'bad_mode', 'no_real', 'nat_refused', 'ttl_exceeded', 'icmp_drop'] as const;

/** Source addresses of the IPv4 packets to `host` on its interface while fn ran, with their counts. */
async function sourcesSeen<T>(lab: Lab, fn: () => Promise<T>): Promise<{ result: T; sources: Map<string, number> }> {
  const { result, text } = await capture(lab.client.ns, lab.client.ifname, `ip and dst host ${lab.client.ip}`, fn);
  const sources = new Map<string, number>();
  for (const line of text.split('\n')) {
    // "... IPv4, length 66: 198.51.100.80.80 > 198.51.100.100.41234: tcp 0"
    const m = /: (\d+\.\d+\.\d+\.\d+)(?:\.\d+)? > /.exec(line);
    if (m?.[1]) sources.set(m[1], (sources.get(m[1]) ?? 0) + 1);
  }
  return { result, sources };
}

for (const arms of [1, 2] as const) {
  describe(`lab: NAT through a ${arms === 1 ? 'one' : 'two'}-armed director`, { skip }, () => {
    let lab: Lab;
    let director: DirectorHandle;
    const servers: RunningHttpd[] = [];

    before(async () => {
      lab = await createLab({ id: `xvsn${arms}${process.pid % 10000}`, reals: 2, arms });
      if (arms === 1) lab = await natOneArmed(lab);
      for (const [i, host] of lab.reals.entries()) {
        servers.push(await startHttpd(lab, host, `rs${i + 1}`, { port: RPORT }));
        await realServerSetup(lab, host, 'nat');
      }
      director = await startDirector(lab);
      await director.xvsadm(['-A', '-t', `${lab.vip}:80`, '-s', 'wrr']);
      await director.xvsadm(['-a', '-t', `${lab.vip}:80`, '-r', `${lab.reals[0]!.ip}:${RPORT}`, '-m', '-w', '3']);
      await director.xvsadm(['-a', '-t', `${lab.vip}:80`, '-r', `${lab.reals[1]!.ip}:${RPORT}`, '-m', '-w', '1']);
    });

    after(async () => {
      await director?.stop();
      for (const s of servers) await s.stop();
      await lab?.down();
    });

    test('the real servers route through the director and have nothing on lo', async () => {
      for (const r of lab.reals) {
        assert.equal((await run('ip', ['-n', r.ns, '-4', 'route', 'show', 'default'])).trim(), `default via ${lab.directorServerSide.ip} dev eth0`);
        assert.doesNotMatch(await run('ip', ['-n', r.ns, '-4', '-o', 'addr', 'show', 'dev', 'lo']), new RegExp(lab.vip.replace(/\./g, '\\.')));
      }
      const listing = await director.xvsadm(['-L', '-n']);
      assert.match(listing, new RegExp(`-> ${lab.reals[0]!.ip}:${RPORT}\\s+Masq\\s+3`));
    });

    test(`${REQUESTS} curl requests to VIP:80, answered from RIP:${RPORT}: all answered, exact 3:1, the client sees only the VIP`, async () => {
      const { result: names, sources } = await sourcesSeen(lab, async () => {
        const answered = await curlMany(lab, REQUESTS);
        // Every packet of these connections delivered, so the capture and the counters are final.
        await connectionsClosed(lab, RPORT);
        return answered;
      });
      assert.equal(names.length, REQUESTS, 'every request answered');
      const per = ['rs1', 'rs2'].map((n) => names.filter((x) => x === n).length);
      assert.deepEqual(per, [REQUESTS * 3 / 4, REQUESTS / 4], 'wrr 3:1, exactly');

      assert.deepEqual([...sources.keys()], [lab.vip], `sources the client saw: ${[...sources.keys()].join(' ')}`);
      const l = await request(director.socket, { op: 'list' }) as ListResult;
      const svc = l.services[0]!;
      assert.equal(svc.stats.conns, REQUESTS);
      assert.deepEqual(svc.reals.map((r) => r.stats.conns), per);
      // Every packet the client received was a reply the director translated, and only those.
      assert.equal(sources.get(lab.vip), svc.stats.outpkts, 'each reply seen once, from the VIP');
      assert.equal(l.counters.nat_reply, svc.stats.outpkts);
      assert.ok(svc.reals.every((r) => r.stats.outpkts > 0), 'Out counters per real server');
      const c = l.counters;
      if (arms === 2) {
        assert.equal(c.redirect, svc.stats.inpkts + svc.stats.outpkts, 'both directions change interface');
        assert.equal(c.redirect_unmapped, 0, 'all through xvs_tx_ports');
        assert.equal(c.tx, 0);
      } else {
        assert.equal(c.tx, svc.stats.inpkts + svc.stats.outpkts, 'both directions leave by the one interface');
        assert.equal(c.redirect, 0);
      }
      for (const d of DROPS) assert.equal(c[d], 0, d);
    });

    test('keep-alive connections stay on one real server', async () => {
      const results = await keepAliveRequests(lab, 20, 10);
      assert.equal(results.length, 20);
      for (const r of results) {
        assert.equal(r.servers.length, 10, 'every request answered');
        assert.equal(new Set(r.servers).size, 1, `one real server per connection: ${r.servers.join(' ')}`);
        assert.equal(new Set(r.localPorts).size, 1, 'one TCP connection');
      }
      await connectionsClosed(lab, RPORT);
    });
  });
}

describe('lab: PMTUD through NAT (a router with a small MTU between director and real server)', { skip }, () => {
  let lab: Lab;
  let director: DirectorHandle;
  let server: RunningHttpd | undefined;
  const FAR = '203.0.113.11';
  const SIZE = 256 * 1024;
  //   client ── eth0 director eth1 ── router (route MTU 1280 both ways) ── rs1 (also 203.0.113.11)
  // The router's client leg is down: it reaches the client only through the director.

  before(async () => {
    lab = await createLab({ id: `xvsnp${process.pid % 10000}`, reals: 1, arms: 2 });
    const rs = lab.reals[0]!;
    const rt = lab.router!.serverSide;
    const N = LAB_NET_TWO_ARMED;
    await run('ip', ['-n', rs.ns, 'addr', 'add', `${FAR}/32`, 'dev', 'lo']);
    await run('ip', ['-n', rt.ns, 'link', 'set', lab.router!.clientSide.ifname, 'down']);
    await run('ip', ['-n', rt.ns, 'route', 'add', `${FAR}/32`, 'via', rs.ip, 'dev', rt.ifname, 'mtu', 'lock', '1280']);
    await run('ip', ['-n', rt.ns, 'route', 'replace', 'default', 'via', N.directorServerSide, 'dev', rt.ifname, 'mtu', 'lock', '1280']);
    await run('ip', ['-n', lab.director.ns, 'route', 'add', '203.0.113.0/24', 'via', N.routerServerSide]);
    server = await startHttpd(lab, rs, 'rs1', { port: RPORT });
    director = await startDirector(lab);
    await director.xvsadm(['-A', '-t', `${lab.vip}:80`, '-s', 'rr']);
    await director.xvsadm(['-a', '-t', `${lab.vip}:80`, '-r', `${FAR}:${RPORT}`, '-m']);
  });

  after(async () => {
    await director?.stop();
    await server?.stop();
    await lab?.down();
  });

  test('a 256 KiB upload and a 256 KiB download complete; the client learns the path MTU from the translated error', async () => {
    const before = (await request(director.socket, { op: 'list' }) as ListResult).counters;
    const file = `${lab.dir}/upload.bin`;
    await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1024', `count=${SIZE / 1024}`, 'status=none']);
    // -H Expect: sends the body at once; the answer's X-Received-Bytes is what the real server read.
    const up = await nsExec(lab.client.ns, 'curl', ['-s', '--fail', '--max-time', '20', '-H', 'Expect:', '-D', '-', '-o', '/dev/null',
      '--data-binary', `@${file}`, vipUrl(lab)], { timeoutMs: 30_000 });
    assert.match(up, new RegExp(`x-received-bytes: ${SIZE}\\r?\\n`, 'i'), 'the real server read every byte');
    const mtu = await nsExec(lab.client.ns, 'ip', ['-4', 'route', 'get', lab.vip]);
    assert.match(mtu, /mtu 1280/, `the client's route to the VIP: ${mtu.trim()}`);
    const down = await nsExec(lab.client.ns, 'curl', ['-s', '--fail', '--max-time', '20', '-o', '/dev/null', '-w', '%{size_download}',
      `${vipUrl(lab)}bytes/${SIZE}`], { timeoutMs: 30_000 });
    assert.equal(down.trim(), String(SIZE));
    const after = (await request(director.socket, { op: 'list' }) as ListResult).counters;
    const delta = (k: keyof typeof after) => (after[k] ?? 0) - (before[k] ?? 0);
    assert.ok(delta('icmp_xlat') >= 1, `errors translated: ${delta('icmp_xlat')}`);
    for (const d of DROPS) assert.equal(delta(d), 0, d);
  });
});
