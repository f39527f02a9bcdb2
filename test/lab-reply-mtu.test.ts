// NAT64 replies past the client side's MTU in the namespace lab (the
// FULLNAT site of src/lab/fullnat.ts): an IPv6 client asks a UDP server on
// an IPv4 real server behind a router, through an IPv6 VIP. The server
// answers with as many bytes as it is asked for, with DF (Linux sets it on
// UDP by default). Every link is 1,500 bytes: a 1,500-byte IPv4 reply
// would be 1,520 as IPv6, so the director answers the real server with
// fragmentation-needed, MTU 1,480; the real server's kernel learns it for
// the route to the local address, and a reply sized for it reaches the
// client whole.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from '../src/control/socket.js';
import type { StatusView } from '../src/daemon/views.js';
import { FULLNAT_NET, fullnatLab, type FullnatLab } from '../src/lab/fullnat.js';
import { startDirector, type DirectorHandle } from '../src/lab/scenario.js';
import { createLab, nsExec, run } from '../src/lab/topology.js';
import { kernelSkipReason } from './helpers/env.js';

const skip = kernelSkipReason();
const N = FULLNAT_NET;
const LADDR = N.laddrs4[0];
const PORT = 5353;

/** Answers every datagram with as many bytes as its text asks for. */
const SERVER = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(Buffer.alloc(Number(m.toString()), 0x61), r.port, r.address));
s.bind(${PORT}, () => console.log('ready'));
`;

/** One question to [VIP]:PORT; prints the length of the answer, or "none" after 1 s. */
const ask = (vip: string, n: number) => `
const s = require('node:dgram').createSocket('udp6');
const t = setTimeout(() => { console.log('none'); s.close(); }, 1000);
s.on('message', (m) => { clearTimeout(t); console.log(m.length); s.close(); });
s.send('${n}', ${PORT}, '${vip}');
`;

describe('lab: NAT64 UDP replies past the client side\'s MTU', { skip, timeout: 120_000 }, () => {
  let lab: FullnatLab;
  let director: DirectorHandle;
  let server: ChildProcess | undefined;
  const counters = async (): Promise<Record<string, number>> => (await request(director.socket, { op: 'status' }) as StatusView).counters;
  /** Polls `ok` every 20 ms; fails after 5 s (the answer travels through three namespaces). */
  const until = async <T>(get: () => Promise<T>, ok: (v: T) => boolean, what: string): Promise<T> => {
    const t0 = Date.now();
    for (;;) {
      const v = await get();
      if (ok(v)) return v;
      if (Date.now() - t0 > 5000) assert.fail(`${what}: not within 5 s (${JSON.stringify(v)})`);
      await sleep(20);
    }
  };
  const askLen = async (n: number) => (await nsExec(lab.client.ns, process.execPath, ['-e', ask(lab.vip6, n)], { timeoutMs: 10_000 })).trim();

  before(async () => {
    const base = await createLab({ id: `xvsm${process.pid % 10000}`, reals: 1, ipv6: true });
    lab = base as FullnatLab;
    lab = await fullnatLab(base);
    director = await startDirector(lab);
    const svc = ['-u', `[${lab.vip6}]:${PORT}`];
    await director.xvsadm(['-A', ...svc, '-s', 'rr']);
    await director.xvsadm(['-P', ...svc, '-z', LADDR]);
    await director.xvsadm(['-a', ...svc, '-r', `${lab.reals[0]!.ip}:${PORT}`, '-b']);
    server = spawn('ip', ['netns', 'exec', lab.reals[0]!.ns, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = await Promise.race([once(server.stdout!, 'data'), once(server, 'exit').then(() => { throw new Error('the UDP server exited'); })]);
    assert.equal(String(line).trim(), 'ready');
  });

  after(async () => {
    if (server && server.exitCode === null) {
      server.kill('SIGKILL');
      await once(server, 'exit');
    }
    await director?.stop();
    await lab?.down();
  });

  test('a 1,500-byte reply is answered with fragmentation-needed (MTU 1,480), which the real server learns; a reply that fits reaches the client', async () => {
    const rs = lab.reals[0]!;
    assert.doesNotMatch(await run('ip', ['-n', rs.ns, 'route', 'get', LADDR]), /mtu/, 'no PMTU learnt yet');
    // A small answer goes both ways (the first may wait for neighbours: asked again, at most 5 times).
    let small = 'none';
    for (let i = 0; i < 5 && small === 'none'; i++) small = await askLen(100);
    assert.equal(small, '100');
    const before = await counters();
    // 1,472 bytes of UDP payload: 1,500 as IPv4, 1,520 as IPv6.
    assert.equal(await askLen(1472), 'none', 'the translated reply does not fit the client side');
    const after1 = await until(counters, (c) => c.reply_too_big! > before.reply_too_big!, 'reply_too_big');
    assert.equal(after1.reply_too_big! - before.reply_too_big!, 1, 'reply_too_big');
    assert.equal(after1.frag_needed! - before.frag_needed!, 1, 'frag_needed');
    assert.equal(after1.drop_too_big! - before.drop_too_big!, 0, 'dropped for want of DF');
    await until(() => run('ip', ['-n', rs.ns, 'route', 'get', LADDR]), (r) => /mtu 1480/.test(r), 'the real server learns the MTU');
    // Sized for it: 1,452 bytes, 1,480 as IPv4, 1,500 as IPv6.
    assert.equal(await askLen(1452), '1452');
    assert.equal((await counters()).reply_too_big, after1.reply_too_big);
  });
});
