// Defaults inside network namespaces, through the real commands under `ip
// netns exec`: `xvs realserver` keeps its state per namespace and xvsd mounts
// the bpffs `ip netns exec` does not give it. Checks read the namespaces with
// ip, sysctl, bpftool and /proc, never through the code under test.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createLab, nsExec, run, sweepStaleLabs, type Lab, type LabHost } from '../src/lab/topology.js';
import { startDirector, type DirectorHandle } from '../src/lab/scenario.js';
import { packageRoot } from '../src/paths.js';
import { kernelSkipReason } from './helpers/env.js';
import { decapVips, xdpProg } from './helpers/inspect.js';

const skip = kernelSkipReason() ?? false;
const xvs = path.join(packageRoot, 'dist', 'src', 'cli', 'xvs.js');
const xvsd = path.join(packageRoot, 'dist', 'src', 'cli', 'xvsd.js');
// Where the README says `xvs realserver` keeps its state by default.
const STATE_ROOT = '/run/xvs';
const VIP2 = '192.0.2.81';
const KEYS = ['all', 'lo', 'eth0'].flatMap((d) => ['arp_ignore', 'arp_announce', 'rp_filter'].map((k) => `net.ipv4.conf.${d}.${k}`));

interface Exit { code: number; stdout: string; stderr: string }

/** Runs a command to its end and reports how it ended, failure included. */
async function attempt(cmd: string, args: string[]): Promise<Exit> {
  try {
    return { code: 0, stdout: await run(cmd, args), stderr: '' };
  } catch (e) {
    const err = e as { detail?: string; cause?: { code?: number } };
    return { code: typeof err.cause?.code === 'number' ? err.cause.code : -1, stdout: '', stderr: err.detail ?? '' };
  }
}

const rsCli = (host: LabHost, args: string[]): Promise<string> =>
  nsExec(host.ns, process.execPath, [xvs, 'realserver', ...args]);

async function sysctls(host: LabHost): Promise<Record<string, string>> {
  const vals = (await nsExec(host.ns, 'sysctl', ['-n', ...KEYS])).trim().split('\n');
  return Object.fromEntries(KEYS.map((k, i) => [k, vals[i] ?? '?']));
}

async function loAddrs(host: LabHost): Promise<string[]> {
  const out = await run('ip', ['-n', host.ns, '-j', '-4', 'addr', 'show', 'dev', 'lo']);
  return (JSON.parse(out) as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>)
    .flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
}

/** The inode `ip netns` gives the namespace, which names its default state directory. */
function nsInode(host: LabHost): number {
  return statSync(`/run/netns/${host.ns}`).ino;
}

/** bpffs mounts on /sys/fs/bpf in the mount namespace of a /proc/PID/mountinfo. */
function bpffsOnSysFsBpf(mountinfo: string): number {
  return readFileSync(mountinfo, 'utf8').split('\n')
    .filter((l) => l.split(' ')[4] === '/sys/fs/bpf' && l.split(' - ')[1]?.startsWith('bpf ')).length;
}

describe('defaults inside network namespaces', { skip, timeout: 180_000 }, () => {
  let lab: Lab;
  let reals: LabHost[];
  let stateDirs: string[];
  let stateRootExisted = false;
  // Other work shares this mount namespace: only /sys/fs/bpf is watched, where these tests must mount nothing.
  const rootBpffs = bpffsOnSysFsBpf('/proc/self/mountinfo');
  const rootPins = existsSync('/sys/fs/bpf/xvs-rs');

  before(async () => {
    stateRootExisted = existsSync(STATE_ROOT);
    await sweepStaleLabs();
    lab = await createLab({ reals: 2 });
    reals = lab.reals;
    stateDirs = reals.map((h) => path.join(STATE_ROOT, `netns-${nsInode(h)}`));
    // Non-default starting values prove teardown restores rather than resets.
    for (const h of reals) {
      await nsExec(h.ns, 'sysctl', ['-qw', 'net.ipv4.conf.all.arp_announce=1', 'net.ipv4.conf.eth0.rp_filter=2']);
    }
  });

  after(async () => {
    // A failed test may leave state behind; the namespaces take everything else with them.
    for (const d of stateDirs ?? []) rmSync(d, { recursive: true, force: true });
    if (!stateRootExisted && existsSync(STATE_ROOT) && readdirSync(STATE_ROOT).length === 0) rmdirSync(STATE_ROOT);
    await lab?.down();
    assert.equal(bpffsOnSysFsBpf('/proc/self/mountinfo'), rootBpffs);
    assert.equal(existsSync('/sys/fs/bpf/xvs-rs'), rootPins);
  });

  it('realserver setup and teardown with default state and pin directories, in two namespaces at once', async () => {
    const before = await Promise.all(reals.map(sysctls));
    const both = <T>(fn: (h: LabHost, i: number) => Promise<T>): Promise<T[]> => Promise.all(reals.map(fn));

    await both((h) => rsCli(h, ['setup', '--vip', lab.vip, '--mode', 'tun']));
    const progs = await both((h) => xdpProg(h.ns, h.ifname));
    await both(async (h, i) => {
      assert.ok((await loAddrs(h)).includes(`${lab.vip}/32`), h.ns);
      const s = await sysctls(h);
      for (const d of ['all', 'lo', 'eth0']) {
        assert.equal(s[`net.ipv4.conf.${d}.arp_ignore`], '1', `${h.ns} ${d}`);
        assert.equal(s[`net.ipv4.conf.${d}.arp_announce`], '2', `${h.ns} ${d}`);
      }
      assert.equal(s['net.ipv4.conf.all.rp_filter'], '0', h.ns);
      assert.equal(s['net.ipv4.conf.eth0.rp_filter'], '0', h.ns);
      assert.equal(progs[i]?.name, 'xdp_decap', h.ns);
      assert.deepEqual(await decapVips(progs[i]!.id), [lab.vip], h.ns);
      assert.ok(existsSync(path.join(stateDirs[i]!, 'realserver.json')), stateDirs[i]);
    });
    assert.notEqual(progs[0]!.id, progs[1]!.id);

    // Later runs get a fresh /sys, so no pin of the first run is there: they must find the program's map anyway.
    await both((h) => rsCli(h, ['setup', '--vip', VIP2, '--mode', 'tun']));
    await both(async (h, i) => {
      assert.equal((await xdpProg(h.ns, h.ifname))?.id, progs[i]!.id, h.ns);
      assert.deepEqual(await decapVips(progs[i]!.id), [lab.vip, VIP2].sort(), h.ns);
    });

    await both((h) => rsCli(h, ['teardown', '--vip', lab.vip, '--mode', 'tun']));
    await both(async (h, i) => {
      assert.equal((await xdpProg(h.ns, h.ifname))?.id, progs[i]!.id, h.ns);
      assert.deepEqual(await decapVips(progs[i]!.id), [VIP2], h.ns);
      assert.ok(!(await loAddrs(h)).includes(`${lab.vip}/32`), h.ns);
    });

    await both((h) => rsCli(h, ['teardown', '--vip', VIP2, '--mode', 'tun']));
    await both(async (h, i) => {
      assert.equal(await xdpProg(h.ns, h.ifname), undefined, h.ns);
      assert.deepEqual(await loAddrs(h), ['127.0.0.1/8'], h.ns);
      assert.deepEqual(await sysctls(h), before[i], h.ns);
      assert.ok(!existsSync(stateDirs[i]!), stateDirs[i]);
    });
  });

  it('a state file of another network namespace is refused, changing nothing', async () => {
    const [rs1, rs2] = reals as [LabHost, LabHost];
    const shared = path.join(lab.dir, 'shared-state');
    const before = await sysctls(rs2);
    await rsCli(rs1, ['setup', '--vip', lab.vip, '--mode', 'dr', '--state-dir', shared]);
    try {
      const r = await attempt('ip', ['netns', 'exec', rs2.ns, process.execPath, xvs, 'realserver', 'setup',
        '--vip', lab.vip, '--mode', 'dr', '--state-dir', shared]);
      assert.notEqual(r.code, 0);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, new RegExp(`^xvs: SYSTEM: state file ${shared}/realserver.json describes network namespace net:\\[${nsInode(rs1)}\\], not this one \\(net:\\[${nsInode(rs2)}\\]\\)`));
      assert.deepEqual(await sysctls(rs2), before);
      assert.deepEqual(await loAddrs(rs2), ['127.0.0.1/8']);
    } finally {
      await rsCli(rs1, ['teardown', '--vip', lab.vip, '--mode', 'dr', '--state-dir', shared]);
    }
    assert.ok(!existsSync(path.join(shared, 'realserver.json')));
  });

  it('a state file left by a namespace that is gone is ignored, not obeyed', async () => {
    const rs1 = reals[0]!;
    const dir = path.join(lab.dir, 'stale-state');
    const before = await sysctls(rs1);
    // What a namespace deleted without teardown leaves for the next one to get its inode.
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'realserver.json'), JSON.stringify({
      version: 2, netns: nsInode(rs1),
      vips: { '192.0.2.99': { mode: 'tun', interface: 'r10' } },
      saved: { 'r10/arp_ignore': '0', 'all/arp_ignore': '0' },
      decap: { interface: 'r10', ifindex: 77, progId: 2147483000, mapId: 2147483000, xdpMode: 'native', pinDir: '/sys/fs/bpf/xvs-rs/gone' },
    }));
    const out = await rsCli(rs1, ['setup', '--vip', lab.vip, '--mode', 'dr', '--state-dir', dir]);
    assert.match(out, /^ignored .*realserver\.json: none of its VIPs is on lo/m);
    assert.match(out, new RegExp(`added ${lab.vip.replaceAll('.', '\\.')}/32 to lo`));
    const state = JSON.parse(readFileSync(path.join(dir, 'realserver.json'), 'utf8')) as { vips: Record<string, unknown> };
    assert.deepEqual(Object.keys(state.vips), [lab.vip]);
    await rsCli(rs1, ['teardown', '--vip', lab.vip, '--mode', 'dr', '--state-dir', dir]);
    assert.deepEqual(await sysctls(rs1), before);
    assert.deepEqual(await loAddrs(rs1), ['127.0.0.1/8']);
    assert.ok(!existsSync(path.join(dir, 'realserver.json')));
  });

  it('xvsd mounts a bpffs for its default pin directory under ip netns exec', async () => {
    let director: DirectorHandle | undefined;
    try {
      director = await startDirector(lab, { defaultPinDir: true });
      const pid = director.pid;
      // Its own mount namespace has a bpffs on /sys/fs/bpf; the test's has not gained one.
      assert.equal(bpffsOnSysFsBpf(`/proc/${pid}/mountinfo`), 1);
      assert.equal(bpffsOnSysFsBpf('/proc/self/mountinfo'), rootBpffs);
      const logged = director.stderr().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.component === 'bpffs');
      assert.equal(logged.length, 1, director.stderr());
      assert.equal(logged[0]?.mountPoint, '/sys/fs/bpf');
      assert.match(String(logged[0]?.msg), /^mounted a bpf filesystem on \/sys\/fs\/bpf/);

      // The pins there are the maps of the program running on the director's interface.
      const prog = await xdpProg(lab.director.ns, lab.director.ifname);
      assert.equal(prog?.name, 'xvs_xdp');
      const pinned = `/proc/${pid}/root/sys/fs/bpf/xvs/xvs_services`;
      const map = JSON.parse(await run('bpftool', ['-j', 'map', 'show', 'pinned', pinned])) as { id: number };
      const progInfo = JSON.parse(await run('bpftool', ['-j', 'prog', 'show', 'id', String(prog!.id)])) as { map_ids: number[] };
      assert.ok(progInfo.map_ids.includes(map.id), `${map.id} in ${progInfo.map_ids.join(',')}`);
      await director.xvsadm(['-A', '-t', `${lab.vip}:80`, '-s', 'rr']);
      assert.match(await director.xvsadm(['-L', '-n']), /192\.0\.2\.80:80 rr/);
    } finally {
      await director?.stop();
    }
  });

  it('xvsd says what to run when it cannot mount a bpffs, and changes nothing', async () => {
    const dir = path.join(lab.dir, 'not-bpffs');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'keep'), 'an operator file a mount would hide\n');
    const socket = path.join(lab.dir, 'refused.sock');
    const forwarding = (): Promise<string> => nsExec(lab.director.ns, 'sysctl', ['-n', 'net.ipv4.conf.eth0.forwarding']);
    const fwdBefore = await forwarding();
    const xdpBefore = await xdpProg(lab.director.ns, lab.director.ifname);
    const r = await attempt('ip', ['netns', 'exec', lab.director.ns, process.execPath, xvsd,
      '--interface', lab.director.ifname, '--socket', socket, '--pin-dir', dir]);
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`^xvsd: SYSTEM: pin directory ${dir} is not on a bpffs and ${dir} is not empty; .*run \`mount -t bpf bpf ${dir}\``));
    assert.equal(await forwarding(), fwdBefore);
    assert.deepEqual(await xdpProg(lab.director.ns, lab.director.ifname), xdpBefore);
    assert.ok(!existsSync(socket));
    assert.deepEqual(readdirSync(dir), ['keep']);
  });
});
