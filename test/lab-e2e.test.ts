// End to end in the namespace lab: real curl and Node clients, real HTTP
// servers, xvsd and xvsadm as an operator runs them, for DR and TUN, over
// IPv4 and over IPv6 (the lab's 2001:db8::/64 side, every address and the
// VIP of that family).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import path from 'node:path';
import { request } from '../src/control/socket.js';
import type { ListResult } from '../src/control/protocol.js';
import { createLab, nsExec, overIpv6, type Lab } from '../src/lab/topology.js';
import { startHttpd, type RunningHttpd } from '../src/lab/servers.js';
import { captureReplySources, curlMany, keepAliveRequests, realServerSetup, startDirector, vipUrl, type DirectorHandle } from '../src/lab/scenario.js';
import { kernelSkipReason } from './helpers/env.js';

const skip = kernelSkipReason();
const REQUESTS = 300;

/** ADDR:PORT as xvsadm takes it and ipvsadm lists it: an IPv6 address in brackets. */
const ep = (addr: string, port: number): string => (isIPv6(addr) ? `[${addr}]:${port}` : `${addr}:${port}`);
const re = (text: string): string => text.replace(/[.[\]]/g, '\\$&');

for (const family of ['inet', 'inet6'] as const)
for (const mode of ['dr', 'tun'] as const) {
  const flag = mode === 'dr' ? '-g' : '-i';
  const name = `${mode.toUpperCase()}${family === 'inet6' ? ' over IPv6' : ''}`;
  describe(`lab: ${name} end to end`, { skip }, () => {
    /** The lab as this family sees it: its VIP and each host's address of the family. */
    let lab: Lab;
    let director: DirectorHandle;
    const servers: RunningHttpd[] = [];

    before(async () => {
      const whole = await createLab({ id: `xvs${family === 'inet6' ? '6' : ''}${mode}${process.pid % 10000}`, reals: 2, ipv6: family === 'inet6' });
      lab = family === 'inet6' ? overIpv6(whole) : whole;
      for (const [i, host] of lab.reals.entries()) {
        servers.push(await startHttpd(lab, host, `rs${i + 1}`));
        await realServerSetup(lab, host, mode);
      }
      director = await startDirector(lab);
      await director.xvsadm(['-A', '-t', ep(lab.vip, 80), '-s', 'wrr']);
      await director.xvsadm(['-a', '-t', ep(lab.vip, 80), '-r', ep(lab.reals[0]!.ip, 80), flag, '-w', '3']);
      await director.xvsadm(['-a', '-t', ep(lab.vip, 80), '-r', lab.reals[1]!.ip, flag, '-w', '1']);
    });

    after(async () => {
      await director?.stop();
      for (const s of servers) await s.stop();
      await lab?.down();
    });

    const list = () => request(director.socket, { op: 'list' }) as Promise<ListResult>;

    test(`${REQUESTS} curl requests succeed, split 3:1, replies bypass the director`, async () => {
      const { result: names, macs } = await captureReplySources(lab, () => curlMany(lab, REQUESTS));
      assert.equal(names.length, REQUESTS, 'every request answered');
      const rs1 = names.filter((n) => n === 'rs1').length;
      const rs2 = names.filter((n) => n === 'rs2').length;
      assert.equal(rs1 + rs2, REQUESTS);
      assert.deepEqual([rs1, rs2], [REQUESTS * 0.75, REQUESTS * 0.25], `wrr 3:1 split, got rs1=${rs1} rs2=${rs2}`);

      // The client's capture: every reply from the VIP came from a real server's MAC.
      assert.equal(macs.get(lab.director.mac) ?? 0, 0, 'no reply came from the director');
      const fromReals = (macs.get(lab.reals[0]!.mac) ?? 0) + (macs.get(lab.reals[1]!.mac) ?? 0);
      assert.ok(fromReals >= REQUESTS, `replies from real servers: ${fromReals}`);
      assert.equal([...macs.keys()].filter((m) => m !== lab.reals[0]!.mac && m !== lab.reals[1]!.mac).length, 0);

      // The director's own counters: it forwarded only the client's direction.
      const l = await list();
      const svc = l.services[0]!;
      assert.equal(svc.stats.conns, REQUESTS);
      assert.equal(svc.reals[0]!.stats.conns, rs1);
      assert.equal(svc.reals[1]!.stats.conns, rs2);
      assert.equal(svc.stats.outpkts, 0);
      assert.equal(l.counters.tx, svc.stats.inpkts, 'every forwarded packet was a client packet');
    });

    test('each keep-alive connection stays on one real server', async () => {
      const conns = await keepAliveRequests(lab, 20, 10);
      assert.equal(conns.length, 20);
      for (const c of conns) {
        assert.equal(c.servers.length, 10);
        assert.equal(new Set(c.localPorts).size, 1, 'one TCP connection');
        assert.equal(new Set(c.servers).size, 1, `one real server per connection, got ${c.servers.join(',')}`);
      }
      assert.equal(new Set(conns.map((c) => c.servers[0])).size, 2, 'connections spread over both servers');
    });

    test('xvsadm -L -n shows the service in ipvsadm layout', async () => {
      const out = await director.xvsadm(['-L', '-n']);
      const word = mode === 'dr' ? 'Route' : 'Tunnel';
      assert.match(out, new RegExp(`^TCP  ${re(ep(lab.vip, 80))} wrr`, 'm'));
      assert.match(out, new RegExp(`-> ${re(ep(lab.reals[0]!.ip, 80))}\\s+${word}\\s+3\\s`));
      assert.match(out, new RegExp(`-> ${re(ep(lab.reals[1]!.ip, 80))}\\s+${word}\\s+1\\s`));
    });

    if (mode === 'tun') {
      test(`TUN: a large upload succeeds through ${family === 'inet6' ? 'ICMPv6 packet-too-big' : 'ICMP frag-needed'} (PMTUD)`, async () => {
        const body = path.join(lab.dir, 'upload.bin');
        writeFileSync(body, Buffer.alloc(256 * 1024, 0x78));
        const out = await nsExec(lab.client.ns, 'curl', ['-s', '-g', '--fail', '--max-time', '20', '--data-binary', `@${body}`, vipUrl(lab)], { timeoutMs: 30_000 });
        assert.match(out, /^rs[12]$/m);
        const l = await list();
        assert.ok((l.counters.frag_needed ?? 0) > 0, `frag_needed=${l.counters.frag_needed}`);
      });
    }

    if (mode === 'dr') {
      test('a restarted xvsd keeps the running flows and the configuration', async () => {
        const pending = keepAliveRequests(lab, 4, 12, { intervalMs: 250 });
        await new Promise((r) => setTimeout(r, 600));
        await director.stop();
        director = await startDirector(lab);
        const conns = await pending;
        for (const c of conns) {
          assert.equal(c.servers.length, 12, 'no request failed across the restart');
          assert.equal(new Set(c.servers).size, 1, 'flows stayed on their real server');
        }
        const l = await list();
        assert.equal(l.services.length, 1, 'service restored from the pinned maps');
        assert.deepEqual(l.services[0]!.reals.map((r) => [r.addr, r.weight]), [[lab.reals[0]!.ip, 3], [lab.reals[1]!.ip, 1]]);
        const names = await curlMany(lab, 40);
        assert.equal(names.length, 40);
      });

      test('kill -9 of xvsd in the middle of a long download: it completes, byte for byte, and a restart carries on', async () => {
        const size = 16 * 1024 * 1024;
        // 2 MB/s: eight seconds of transfer, whatever the machine's load, so the crash lands inside it.
        const download = nsExec(lab.client.ns, 'curl', ['-s', '-g', '--fail', '--limit-rate', '2M', '--max-time', '60', '-o', '/dev/null',
          '-w', '%{size_download} %{http_code}', `${vipUrl(lab)}bytes/${size}`], { timeoutMs: 70_000 });
        await new Promise((r) => setTimeout(r, 1500));
        await director.stop('SIGKILL');
        await new Promise((r) => setTimeout(r, 1000)); // the director's flows go on without a control plane
        director = await startDirector(lab);
        assert.equal((await download).trim(), `${size} 200`);
        const l = await list();
        assert.equal(l.services.length, 1, 'service restored from the pinned maps');
        assert.equal((await curlMany(lab, 20)).length, 20);
      });
    }
  });
}

// TUN across families: an IPv4 VIP on IPv6 real servers (4 in 6) and an IPv6
// VIP on IPv4 real servers (6 in 4), side by side on one director; each real
// server takes both VIPs, its decap both tunnels.
describe('lab: TUN across families end to end', { skip }, () => {
  let v4: Lab;
  let v6: Lab;
  let director: DirectorHandle;
  const servers: RunningHttpd[] = [];

  before(async () => {
    v4 = await createLab({ id: `xvsmix${process.pid % 10000}`, reals: 2, ipv6: true });
    v6 = overIpv6(v4);
    for (const [i, host] of v4.reals.entries()) {
      servers.push(await startHttpd(v4, host, `rs${i + 1}`));
      await realServerSetup(v4, host, 'tun');
      await realServerSetup(v6, host, 'tun');
    }
    director = await startDirector(v4);
    await nsExec(v4.director.ns, 'ip', ['-6', 'addr', 'replace', `${v6.vip}/128`, 'dev', v4.director.ifname, 'nodad']);
    // The VIP of one family, the real servers of the other.
    for (const [vip, reals] of [[v4.vip, v6.reals], [v6.vip, v4.reals]] as const) {
      await director.xvsadm(['-A', '-t', ep(vip, 80), '-s', 'wrr']);
      await director.xvsadm(['-a', '-t', ep(vip, 80), '-r', ep(reals[0]!.ip, 80), '-i', '-w', '3']);
      await director.xvsadm(['-a', '-t', ep(vip, 80), '-r', reals[1]!.ip, '-i', '-w', '1']);
    }
  });

  after(async () => {
    await director?.stop();
    for (const s of servers) await s.stop();
    await v4?.down();
  });

  for (const [name, side, tunnelled] of [['an IPv4 VIP on IPv6 real servers (4 in 6)', () => v4, () => v6], ['an IPv6 VIP on IPv4 real servers (6 in 4)', () => v6, () => v4]] as const) {
    test(`${name}: ${REQUESTS} curl requests split 3:1, replies straight from the real servers, keep-alive stays`, async () => {
      const lab = side();
      const { result: names, macs } = await captureReplySources(lab, () => curlMany(lab, REQUESTS));
      assert.deepEqual([names.filter((n) => n === 'rs1').length, names.filter((n) => n === 'rs2').length], [REQUESTS * 0.75, REQUESTS * 0.25]);
      assert.equal(macs.get(lab.director.mac) ?? 0, 0, 'no reply came from the director');
      assert.ok((macs.get(lab.reals[0]!.mac) ?? 0) + (macs.get(lab.reals[1]!.mac) ?? 0) >= REQUESTS);
      const l = (await request(director.socket, { op: 'list', key: { proto: 'tcp', addr: lab.vip, port: 80 } })) as ListResult;
      const svc = l.services[0]!;
      assert.deepEqual(svc.reals.map((r) => [r.addr, r.fwd, r.stats.conns]),
        [[tunnelled().reals[0]!.ip, 'tun', REQUESTS * 0.75], [tunnelled().reals[1]!.ip, 'tun', REQUESTS * 0.25]]);
      const conns = await keepAliveRequests(lab, 8, 5);
      for (const c of conns) assert.equal(new Set(c.servers).size, 1, `one real server per connection, got ${c.servers.join(',')}`);
      assert.equal(new Set(conns.map((c) => c.servers[0])).size, 2, 'connections spread over both servers');
    });
  }

  test('xvsadm -L -n lists both, tunnels of the other family included', async () => {
    const out = await director.xvsadm(['-L', '-n']);
    const lines = out.split('\n').slice(3, -1);
    assert.deepEqual(lines.map((l) => l.replace(/\s+\d+\s+\d+\s*$/, '').trimEnd()), [
      `TCP  ${ep(v4.vip, 80)} wrr`,
      `  -> ${ep(v6.reals[0]!.ip, 80).padEnd(28)} Tunnel  3`,
      `  -> ${ep(v6.reals[1]!.ip, 80).padEnd(28)} Tunnel  1`,
      `TCP  ${ep(v6.vip, 80)} wrr`,
      `  -> ${ep(v4.reals[0]!.ip, 80).padEnd(28)} Tunnel  3`,
      `  -> ${ep(v4.reals[1]!.ip, 80).padEnd(28)} Tunnel  1`,
    ]);
  });
});
