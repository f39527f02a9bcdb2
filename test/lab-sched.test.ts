// Scheduler behaviour a client can see, in the namespace lab with DR:
// source hashing keeps a client on one real server; wlc steers new
// connections away from a real server that holds its connections open.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLab, nsExec, type Lab } from '../src/lab/topology.js';
import { startHttpd, type RunningHttpd } from '../src/lab/servers.js';
import { curlMany, keepAliveRequests, realServerSetup, startDirector, type DirectorHandle } from '../src/lab/scenario.js';
import { kernelSkipReason } from './helpers/env.js';

const skip = kernelSkipReason();

describe('lab: schedulers seen from the client', { skip }, () => {
  let lab: Lab;
  let director: DirectorHandle;
  const servers: RunningHttpd[] = [];

  before(async () => {
    lab = await createLab({ id: `xvssc${process.pid % 10000}`, reals: 2 });
    for (const [i, host] of lab.reals.entries()) {
      servers.push(await startHttpd(lab, host, `rs${i + 1}`));
      // rs1 answers port 8080 only after 4 s: its connections stay open.
      servers.push(await startHttpd(lab, host, `rs${i + 1}`, { port: 8080, holdMs: i === 0 ? 4000 : 0 }));
      await realServerSetup(lab, host, 'dr');
    }
    director = await startDirector(lab);
    for (const [port, sched] of [[80, 'sh'], [8080, 'wlc']] as const) {
      await director.xvsadm(['-A', '-t', `${lab.vip}:${port}`, '-s', sched]);
      for (const r of lab.reals) await director.xvsadm(['-a', '-t', `${lab.vip}:${port}`, '-r', r.ip, '-g', '-w', '1']);
    }
  });

  after(async () => {
    await director?.stop();
    for (const s of servers) await s.stop();
    await lab?.down();
  });

  test('sh: one client stays on one real server across many connections', async () => {
    const names = await curlMany(lab, 60);
    assert.equal(names.length, 60);
    assert.equal(new Set(names).size, 1, `answers: ${[...new Set(names)].join(',')}`);
    const conns = await keepAliveRequests(lab, 10, 3);
    assert.deepEqual([...new Set(conns.flatMap((c) => c.servers))], [names[0]]);
  });

  test('wlc: new connections avoid the real server that holds its connections', async () => {
    const slow = Array.from({ length: 10 }, () =>
      nsExec(lab.client.ns, 'curl', ['-s', '--max-time', '10', `http://${lab.vip}:8080/`], { timeoutMs: 15_000 }));
    await sleep(1000); // a few ticks: the director has counted the open connections
    const names = await curlMany(lab, 20, 8080);
    const first = await Promise.all(slow);
    const held = first.filter((b) => b.trim() === 'rs1').length;
    assert.ok(held >= 3, `some of the first connections went to rs1 and were held (${held})`);
    assert.equal(names.length, 20);
    const toSlow = names.filter((n) => n === 'rs1').length;
    assert.ok(toSlow <= 1, `new connections went to rs2 while rs1 held ${held}: rs1 got ${toSlow} of 20`);
    const list = await director.xvsadm(['-L', '-n', '-t', `${lab.vip}:8080`]);
    assert.match(list, /wlc/);
  });
});
