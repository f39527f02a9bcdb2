// End to end in the namespace lab: real curl and Node clients, real HTTP
// servers, xvsd and xvsadm as an operator runs them, for DR and TUN.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { request } from '../src/control/socket.js';
import type { ListResult } from '../src/control/protocol.js';
import { createLab, nsExec, type Lab } from '../src/lab/topology.js';
import { startHttpd, type RunningHttpd } from '../src/lab/servers.js';
import { captureReplySources, curlMany, keepAliveRequests, realServerSetup, startDirector, type DirectorHandle } from '../src/lab/scenario.js';
import { kernelSkipReason } from './helpers/env.js';

const skip = kernelSkipReason();
const REQUESTS = 300;

for (const mode of ['dr', 'tun'] as const) {
  const flag = mode === 'dr' ? '-g' : '-i';
  describe(`lab: ${mode.toUpperCase()} end to end`, { skip }, () => {
    let lab: Lab;
    let director: DirectorHandle;
    const servers: RunningHttpd[] = [];

    before(async () => {
      lab = await createLab({ id: `xvs${mode}${process.pid % 10000}`, reals: 2 });
      for (const [i, host] of lab.reals.entries()) {
        servers.push(await startHttpd(lab, host, `rs${i + 1}`));
        await realServerSetup(lab, host, mode);
      }
      director = await startDirector(lab);
      await director.xvsadm(['-A', '-t', `${lab.vip}:80`, '-s', 'wrr']);
      await director.xvsadm(['-a', '-t', `${lab.vip}:80`, '-r', `${lab.reals[0]!.ip}:80`, flag, '-w', '3']);
      await director.xvsadm(['-a', '-t', `${lab.vip}:80`, '-r', lab.reals[1]!.ip, flag, '-w', '1']);
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
      assert.ok(Math.abs(rs1 - REQUESTS * 0.75) <= 3, `wrr 3:1 split, got rs1=${rs1} rs2=${rs2}`);

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
      assert.match(out, new RegExp(`^TCP  ${lab.vip.replace(/\./g, '\\.')}:80 wrr`, 'm'));
      assert.match(out, new RegExp(`-> ${lab.reals[0]!.ip.replace(/\./g, '\\.')}:80\\s+${word}\\s+3\\s`));
      assert.match(out, new RegExp(`-> ${lab.reals[1]!.ip.replace(/\./g, '\\.')}:80\\s+${word}\\s+1\\s`));
    });

    if (mode === 'tun') {
      test('TUN: a large upload succeeds through ICMP frag-needed (PMTUD)', async () => {
        const body = path.join(lab.dir, 'upload.bin');
        writeFileSync(body, Buffer.alloc(256 * 1024, 0x78));
        const out = await nsExec(lab.client.ns, 'curl', ['-s', '--fail', '--max-time', '20', '--data-binary', `@${body}`, `http://${lab.vip}/`], { timeoutMs: 30_000 });
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
    }
  });
}
