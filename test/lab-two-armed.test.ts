// A two-armed director in the namespace lab (topology in src/lab/topology.ts):
// clients on one segment, real servers on another, xvsd on both interfaces
// with their roles. Real curl clients and HTTP servers, DR and TUN: every
// request answered, the wrr split exact, each frame to a real server leaving
// by the server-side interface with that interface's MAC (captured on its
// wire), none on the client segment, replies through the router, and the
// director's counters: redirects only, all through the devmap, no drops.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from '../src/control/socket.js';
import type { ListResult } from '../src/control/protocol.js';
import type { StatusView } from '../src/daemon/views.js';
import { createLab, type Lab } from '../src/lab/topology.js';
import { startHttpd, type RunningHttpd } from '../src/lab/servers.js';
import { captureReplySources, captureSources, connectionsClosed, curlMany, realServerSetup, startDirector, type DirectorHandle } from '../src/lab/scenario.js';
import { kernelSkipReason } from './helpers/env.js';

const skip = kernelSkipReason();
const REQUESTS = 400;
const DROPS = ['drop_no_conn', 'no_neigh', 'fib_fail', 'error', 'bad_mode', 'no_real'] as const;

for (const mode of ['dr', 'tun'] as const) {
  const flag = mode === 'dr' ? '-g' : '-i';
  describe(`lab: ${mode.toUpperCase()} through a two-armed director`, { skip }, () => {
    let lab: Lab;
    let director: DirectorHandle;
    const servers: RunningHttpd[] = [];

    before(async () => {
      lab = await createLab({ id: `xvs2${mode}${process.pid % 10000}`, reals: 2, arms: 2 });
      for (const [i, host] of lab.reals.entries()) {
        servers.push(await startHttpd(lab, host, `rs${i + 1}`));
        await realServerSetup(lab, host, mode);
      }
      director = await startDirector(lab);
      await director.xvsadm(['-A', '-t', `${lab.vip}:80`, '-s', 'wrr']);
      await director.xvsadm(['-a', '-t', `${lab.vip}:80`, '-r', lab.reals[0]!.ip, flag, '-w', '3']);
      await director.xvsadm(['-a', '-t', `${lab.vip}:80`, '-r', lab.reals[1]!.ip, flag, '-w', '1']);
    });

    after(async () => {
      await director?.stop();
      for (const s of servers) await s.stop();
      await lab?.down();
    });

    test('xvsd runs on both interfaces, each in the devmap, with its role', async () => {
      const s = await request(director.socket, { op: 'status' }) as StatusView;
      assert.deepEqual(s.interfaces.map((i) => [i.name, i.role, i.txPort]), [['eth0', 'client', true], ['eth1', 'server', true]]);
    });

    test(`${REQUESTS} curl requests: exact 3:1, frames to real servers leave by the server side with its MAC, replies through the router`, async () => {
      const rips = lab.reals.map((r) => r.ip);
      // DR: the client's TCP to the real servers' MACs; TUN: IPIP to their addresses.
      const toReals = mode === 'dr'
        ? `tcp and dst host ${lab.vip} and (${lab.reals.map((r) => `ether dst ${r.mac}`).join(' or ')})`
        : `ip proto 4 and (${rips.map((ip) => `dst host ${ip}`).join(' or ')})`;
      // The client segment's side of the director: the client's packets to the VIP, and anything else
      // that could be a frame for a real server (IPIP, their MACs or addresses), whoever sends it.
      const onClientSide = `(tcp and dst host ${lab.vip}) or ip proto 4 or ${lab.reals.map((r) => `ether dst ${r.mac}`).join(' or ')} or ${rips.map((ip) => `dst host ${ip}`).join(' or ')}`;
      const sw = lab.switchNs;
      const { result: clientSide, macs: serverWire } = await captureSources(sw, lab.directorServerSide.peer, toReals, () =>
        captureSources(sw, lab.director.peer, onClientSide, () =>
          captureReplySources(lab, async () => {
            const answered = await curlMany(lab, REQUESTS);
            // Every packet of these connections delivered, so both counts below are final.
            await connectionsClosed(lab);
            return answered;
          })));
      const { result: { result: names, macs: replies }, macs: clientWire } = clientSide;

      assert.equal(names.length, REQUESTS, 'every request answered');
      const rs1 = names.filter((n) => n === 'rs1').length;
      const rs2 = names.filter((n) => n === 'rs2').length;
      assert.deepEqual([rs1, rs2], [REQUESTS * 3 / 4, REQUESTS / 4], 'wrr 3:1, exactly');

      const l = await request(director.socket, { op: 'list' }) as ListResult;
      const svc = l.services[0]!;
      assert.equal(svc.stats.conns, REQUESTS);
      assert.deepEqual(svc.reals.map((r) => r.stats.conns), [rs1, rs2]);

      // The server segment's wire: every frame to a real server came from the director's server-side MAC.
      assert.deepEqual([...serverWire.keys()], [lab.directorServerSide.mac], `sources of frames to the real servers: ${[...serverWire.keys()].join(' ')}`);
      assert.equal(serverWire.get(lab.directorServerSide.mac), svc.stats.inpkts, 'each forwarded packet seen once on the server-side wire');
      assert.deepEqual([...clientWire.keys()], [lab.client.mac], `sources on the client-side wire: ${[...clientWire.keys()].join(' ')}`);
      assert.equal(clientWire.get(lab.client.mac), svc.stats.inpkts, 'the client\'s packets, each forwarded once');

      // Replies from the VIP reached the client from the router, never from the director.
      assert.deepEqual([...replies.keys()], [lab.router!.clientSide.mac], `reply sources: ${[...replies.keys()].join(' ')}`);
      assert.ok(replies.get(lab.router!.clientSide.mac)! >= REQUESTS, `replies: ${replies.get(lab.router!.clientSide.mac)}`);

      // The director redirected every forwarded packet, through the devmap, and dropped nothing.
      const c = l.counters;
      assert.equal(c.redirect, svc.stats.inpkts, 'every forwarded packet was redirected to the other interface');
      assert.equal(c.redirect_unmapped, 0, 'all through xvs_tx_ports');
      assert.equal(c.tx, 0, 'nothing went back out of the ingress interface');
      assert.equal(svc.stats.outpkts, 0);
      for (const d of DROPS) assert.equal(c[d], 0, d);
    });
  });
}
