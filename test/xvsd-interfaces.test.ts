// xvsd on several interfaces, each with a role: the list's grammar, every bad
// combination refused with one line and nothing changed, the program on each
// interface and each in the devmap, a restart with another list leaving no
// stale attachment, and `xvs down` / --teardown-on-exit taking it all off.
// xvsd and xvs run as an operator runs them, in a namespace of this test.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from '../src/control/socket.js';
import { collectInterfaces, parseInterfaces } from '../src/daemon/interfaces.js';
import type { StatusView } from '../src/daemon/views.js';
import { XvsError } from '../src/errors.js';
import { BpfObject, attachXdp, ifIndex, withNetns, xdpProgId } from '../src/loader/index.js';
import { bpfObject, packageRoot } from '../src/paths.js';
import { kernelSkipReason, nsSh, sh } from './helpers/env.js';

const skip = kernelSkipReason();
const bin = (name: string) => path.join(packageRoot, 'dist', 'src', 'cli', name);

describe('--interface NAME[:ROLE]: the grammar', () => {
  const parse = (...values: string[]) => parseInterfaces(values.reduce<string[]>((acc, v) => collectInterfaces(v, acc), []), { complete: true });
  const refused = (values: string[], re: RegExp, complete = true) => {
    assert.throws(() => parseInterfaces(values.flatMap((v) => v.split(',')), { complete }), (e: unknown) => {
      assert.ok(e instanceof XvsError && e.code === 'BAD_ARGUMENT', String(e));
      assert.match(e.message, re);
      assert.doesNotMatch(e.oneLine(), /\n/);
      return true;
    });
  };

  test('no role is both: today\'s one-armed director', () => {
    assert.deepEqual(parse('eth0'), [{ name: 'eth0', role: 'both' }]);
  });

  test('repeated and comma lists add up, in order', () => {
    assert.deepEqual(parse('eth0:client,eth1:server', 'eth2:both'), [
      { name: 'eth0', role: 'client' }, { name: 'eth1', role: 'server' }, { name: 'eth2', role: 'both' },
    ]);
  });

  test('refusals', () => {
    refused(['eth0:outside'], /role "outside" is not one of client, server, both/);
    refused(['eth0', 'eth0:server'], /eth0 is given twice/);
    refused(['eth0,,eth1'], /name is missing/);
    refused([':client'], /name is missing/);
    refused(['eth0:client'], /no interface faces the real servers/);
    refused(['eth0:server', 'eth1:server'], /no interface faces the clients/);
    // `xvs down` takes any part of a list, but not a bad one.
    assert.deepEqual(parseInterfaces(['eth1:server'], { complete: false }), [{ name: 'eth1', role: 'server' }]);
    refused(['eth1:dmz'], /role "dmz"/, false);
  });
});

describe('xvsd on several interfaces (namespace, real xvsd and xvs)', { skip }, () => {
  const ns = `xvs-if${process.pid % 100000}`;
  const dir = `/run/xvs-iftest-${process.pid}`;
  const bpffs = path.join(dir, 'bpffs');
  const pinDir = path.join(bpffs, 'director');
  const socket = path.join(dir, 'xvsd.sock');
  let other: BpfObject | undefined;
  let otherProg = 0;
  const running = new Set<ReturnType<typeof spawn>>();

  before(() => {
    mkdirSync(bpffs, { recursive: true });
    sh('mount', ['-t', 'bpf', 'bpf', bpffs]);
    sh('ip', ['netns', 'add', ns]);
    for (const i of ['a0', 'a1', 'a2']) {
      sh('ip', ['-n', ns, 'link', 'add', i, 'type', 'veth', 'peer', 'name', `${i}p`]);
      sh('ip', ['-n', ns, 'link', 'set', i, 'up']);
      sh('ip', ['-n', ns, 'link', 'set', `${i}p`, 'up']);
    }
    sh('ip', ['-n', ns, 'link', 'property', 'add', 'dev', 'a0', 'altname', 'a0alt']);
    // No native XDP on a bridge device: attaching there falls back to generic.
    sh('ip', ['-n', ns, 'link', 'add', 'nx0', 'type', 'bridge']);
    sh('ip', ['-n', ns, 'link', 'set', 'nx0', 'up']);
    // A new namespace inherits the host's IPv4 forwarding; start from off to see xvsd turn it on.
    nsSh(ns, 'sysctl', ['-qw', 'net.ipv4.conf.a0.forwarding=0', 'net.ipv4.conf.a1.forwarding=0', 'net.ipv4.conf.a2.forwarding=0']);
    // Somebody else's XDP program on a2: never the director's to touch.
    other = BpfObject.open({ objectPath: bpfObject('xvs_aux') });
    other.load();
    const fd = other.program('xdp_pass').fd;
    withNetns(ns, () => attachXdp(ifIndex('a2'), fd, 'native'));
    otherProg = progOn('a2');
  });

  after(() => {
    for (const c of running) c.kill('SIGKILL');
    other?.close();
    try { sh('ip', ['netns', 'del', ns]); } catch { /* gone */ }
    try { sh('umount', [bpffs]); } catch { /* not mounted */ }
    rmSync(dir, { recursive: true, force: true });
  });

  const progOn = (i: string): number => withNetns(ns, () => xdpProgId(ifIndex(i)));
  const forwarding = (i: string): string => nsSh(ns, 'cat', [`/proc/sys/net/ipv4/conf/${i}/forwarding`]).trim();
  const pins = (): string[] => (existsSync(pinDir) ? readdirSync(pinDir) : []);
  /** Everything a refused start must leave as it was. */
  const snapshot = () => ({ a0: progOn('a0'), a1: progOn('a1'), a2: progOn('a2'), fwd: ['a0', 'a1', 'a2'].map(forwarding), pins: pins(), socket: existsSync(socket) });

  /** A command in the namespace, as an operator types it. */
  function cli(name: string, args: string[]): { status: number; stdout: string; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, bin(name), ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, XVS_LOG_LEVEL: 'warn' } });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  async function startXvsd(ifaces: string[], extra: string[] = []): Promise<{ stop: () => Promise<void>; status: () => Promise<StatusView> }> {
    const args = ['netns', 'exec', ns, process.execPath, bin('xvsd.js'), ...ifaces.flatMap((i) => ['--interface', i]),
      '--socket', socket, '--pin-dir', pinDir, '--conn-table-size', '4096', ...extra];
    const child = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XVS_LOG_LEVEL: 'warn' } });
    running.add(child);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`xvsd exited with ${child.exitCode}: ${stderr}`);
      try {
        await request(socket, { op: 'status' }, 1000);
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`xvsd did not answer within 15 s: ${stderr}`);
        await sleep(100);
      }
    }
    return {
      status: () => request(socket, { op: 'status' }) as Promise<StatusView>,
      stop: async () => {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
        running.delete(child);
        assert.equal(child.exitCode, 0, `xvsd exit: ${stderr}`);
      },
    };
  }

  test('every bad list: one line naming it, the exit code, nothing changed', () => {
    const cases: [string[], number, RegExp][] = [
      [['--interface', 'nope0'], 2, /^xvsd: NO_INTERFACE: interface nope0 does not exist/],
      [['--interface', 'a0:client', '--interface', 'nope0:server'], 2, /^xvsd: NO_INTERFACE: interface nope0 does not exist/],
      [['--interface', 'a0,a0'], 2, /^xvsd: BAD_ARGUMENT: --interface a0 is given twice/],
      [['--interface', 'a0:client,a0alt:server'], 2, /^xvsd: BAD_ARGUMENT: --interface a0alt and a0 are the same interface/],
      [['--interface', 'a0:outside'], 2, /^xvsd: BAD_ARGUMENT: --interface a0:outside: role "outside" is not one of client, server, both/],
      [['--interface', 'a0:client'], 2, /^xvsd: BAD_ARGUMENT: no interface faces the real servers/],
      [['--interface', 'a0:server', '--interface', 'a1:server'], 2, /^xvsd: BAD_ARGUMENT: no interface faces the clients/],
      [['--interface', 'a0,'], 2, /^xvsd: BAD_ARGUMENT: --interface "": an interface name is missing/],
    ];
    const before = snapshot();
    for (const [args, code, re] of cases) {
      const r = cli('xvsd.js', [...args, '--socket', socket, '--pin-dir', pinDir]);
      assert.equal(r.status, code, `${args.join(' ')}: exit code (${r.stderr})`);
      assert.match(r.stderr, re, args.join(' '));
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, `${args.join(' ')}: one line, got ${r.stderr}`);
      assert.deepEqual(snapshot(), before, `${args.join(' ')}: nothing changed`);
    }
    assert.deepEqual(before.fwd, ['0', '0', '0']);
  });

  test('two interfaces: the program on each, each in the devmap, forwarding on; a restart with another list leaves no stale attachment', async () => {
    let d = await startXvsd(['a0:client,a1:server']);
    let s = await d.status();
    assert.deepEqual(s.interfaces.map((i) => [i.name, i.role, i.txPort]), [['a0', 'client', true], ['a1', 'server', true]]);
    const first = progOn('a0');
    assert.notEqual(first, 0);
    assert.equal(progOn('a1'), first, 'one program on both');
    assert.equal(progOn('a2'), otherProg, 'a2 keeps its own program');
    assert.deepEqual(['a0', 'a1', 'a2'].map(forwarding), ['1', '1', '0']);
    await d.stop();
    assert.equal(progOn('a1'), first, 'SIGTERM leaves the dataplane attached');

    d = await startXvsd(['a0']);
    s = await d.status();
    assert.deepEqual(s.interfaces.map((i) => [i.name, i.role, i.txPort]), [['a0', 'both', true]]);
    assert.notEqual(progOn('a0'), 0);
    assert.notEqual(progOn('a0'), first, 'the new program replaced the old one');
    assert.equal(progOn('a1'), 0, 'a1, no longer given, was detached');
    assert.equal(progOn('a2'), otherProg, 'a2 untouched');
    await d.stop();

    d = await startXvsd(['a1:server', 'a0:client']);
    s = await d.status();
    assert.deepEqual(s.interfaces.map((i) => i.name), ['a1', 'a0']);
    assert.equal(progOn('a0'), progOn('a1'));
    await d.stop();
  });

  test('xvs down: a bad list changes nothing; without a list it finds every interface by the pinned maps', () => {
    assert.notEqual(progOn('a0'), 0);
    const before = snapshot();
    for (const [args, re] of [[['--interface', 'nope0'], /^xvs: NO_INTERFACE: interface nope0 does not exist/], [['--interface', 'a0:dmz'], /^xvs: BAD_ARGUMENT: --interface a0:dmz: role "dmz"/]] as const) {
      const r = cli('xvs.js', ['down', ...args, '--pin-dir', pinDir]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1);
      assert.deepEqual(snapshot(), before);
    }
    const r = cli('xvs.js', ['down', '--pin-dir', pinDir]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^detached from a0, a1; unpinned \d+ maps under /);
    assert.equal(progOn('a0'), 0);
    assert.equal(progOn('a1'), 0);
    assert.equal(progOn('a2'), otherProg, 'somebody else\'s program stays');
    assert.deepEqual(pins(), []);
  });

  test('--teardown-on-exit detaches every interface and unpins', async () => {
    const d = await startXvsd(['a0:client', 'a1:server'], ['--teardown-on-exit']);
    assert.notEqual(progOn('a1'), 0);
    assert.notDeepEqual(pins(), []);
    await d.stop();
    assert.equal(progOn('a0'), 0);
    assert.equal(progOn('a1'), 0);
    assert.equal(progOn('a2'), otherProg);
    assert.deepEqual(pins(), []);
  });

  test('xvs down --interface with a list, as xvsd was given it', async () => {
    const d = await startXvsd(['a0:client,a1:server']);
    await d.stop();
    const r = cli('xvs.js', ['down', '--interface', 'a0:client,a1:server', '--pin-dir', pinDir]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^detached from a0, a1; /);
    assert.equal(progOn('a0') + progOn('a1'), 0);
  });

  test('an interface without native XDP puts every interface in generic mode; the next start goes native again', async () => {
    let d = await startXvsd(['a0:client,nx0:server']);
    let s = await d.status();
    assert.deepEqual(s.interfaces.map((i) => [i.name, i.mode, i.txPort]), [['a0', 'generic', true], ['nx0', 'generic', true]]);
    await d.stop();
    d = await startXvsd(['a0:client,a1:server']);
    s = await d.status();
    assert.deepEqual(s.interfaces.map((i) => [i.name, i.mode]), [['a0', 'native'], ['a1', 'native']]);
    assert.equal(progOn('nx0'), 0, 'nx0, no longer given, was detached');
    await d.stop();
    assert.equal(cli('xvs.js', ['down', '--pin-dir', pinDir]).status, 0);
  });
});
