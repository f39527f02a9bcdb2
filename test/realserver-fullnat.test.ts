// `xvs realserver setup|teardown --mode fullnat` inside a lab real-server
// namespace: the TOA reader on a test cgroup, its map pinned, nothing on
// lo, and teardown undoing exactly that. Checks read the kernel with
// bpftool and ip, never through the code under test.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createLab, nsExec, run, sweepStaleLabs, type Lab, type LabHost } from '../src/lab/topology.js';
import { withNetnsAsync } from '../src/loader/index.js';
import { isXvsError } from '../src/errors.js';
import { packageRoot } from '../src/paths.js';
import { setupRealServer, teardownRealServer, type RealServerOptions } from '../src/realserver/setup.js';
import { kernelSkipReason } from './helpers/env.js';
import { sweepStaleCgroups, testCgroup, type TestCgroup } from './helpers/cgroup.js';

const skip = kernelSkipReason();
const xvsJs = path.join(packageRoot, 'dist/src/cli/xvs.js');
const VIP6 = '2001:db8::80';

interface CgProg { id: number; attach_type: string; attach_flags: string; name: string }

describe('real server setup and teardown: FULLNAT', { skip, timeout: 180_000 }, () => {
  let lab: Lab;
  let rs: LabHost;
  let cg: TestCgroup;
  let other: TestCgroup;
  let base: Omit<RealServerOptions, 'vip' | 'mode'>;

  const inRs = <T>(fn: () => Promise<T>): Promise<T> => withNetnsAsync(rs.ns, fn);
  const progs = async (dir = cg.dir): Promise<CgProg[]> => JSON.parse((await run('bpftool', ['-j', 'cgroup', 'show', dir])).trim() || '[]') as CgProg[];
  const pin = (): string => path.join(base.pinDir!, 'xvs_toa_conns');
  const stateFile = (): string => path.join(base.stateDir!, 'realserver.json');
  const loAddrs = async (): Promise<string> => run('ip', ['-n', rs.ns, '-o', 'addr', 'show', 'dev', 'lo']);
  const fullnat = (vip: string, o: Partial<RealServerOptions> = {}): RealServerOptions => ({ ...base, vip, mode: 'fullnat', ...o });

  before(async () => {
    await sweepStaleLabs();
    await sweepStaleCgroups();
    lab = await createLab({ reals: 1 });
    rs = lab.reals[0]!;
    cg = testCgroup('fullnat');
    other = testCgroup('other');
    base = { stateDir: path.join(lab.dir, 'rs1-state'), pinDir: path.join(lab.bpffs, 'rs1'), cgroup: cg.path };
  });

  after(async () => {
    for (const vip of [lab?.vip, VIP6, '192.0.2.81']) {
      if (vip) await inRs(() => teardownRealServer(fullnat(vip))).catch(() => undefined);
    }
    await cg?.remove();
    await other?.remove();
    await lab?.down();
  });

  it('rejects bad options without changing anything', async () => {
    const cases: Array<[Partial<RealServerOptions>, string]> = [
      [{ cgroup: 'xvs' }, 'BAD_ARGUMENT'],
      [{ cgroup: '/a/../b' }, 'BAD_ARGUMENT'],
      [{ cgroup: '/xvs-test-no-such-cgroup' }, 'BAD_ARGUMENT'],
      [{ toaTableSize: 10 }, 'BAD_ARGUMENT'],
      [{ toaTableSize: 1.5 }, 'BAD_ARGUMENT'],
      [{ vip: '192.0.2.300' }, 'BAD_ADDRESS'],
      [{ vip: 'fe80::1%eth0' }, 'BAD_ADDRESS'],
    ];
    for (const [o, code] of cases) {
      await assert.rejects(inRs(() => setupRealServer(fullnat(lab.vip, o))),
        (e: unknown) => isXvsError(e) && e.code === code && !e.message.includes('\n'), JSON.stringify(o));
    }
    assert.deepEqual(await progs(), []);
    assert.ok(!existsSync(stateFile()));
    assert.ok(!existsSync(pin()));
  });

  it('attaches the reader to the cgroup with its map pinned, nothing on lo; teardown undoes it', async () => {
    const lines = await inRs(() => setupRealServer(fullnat(lab.vip)));
    assert.ok(lines.includes(`attached xvs_toa_reader to cgroup ${cg.path}`), lines.join('\n'));
    const [p, ...more] = await progs();
    assert.deepEqual(more, []);
    assert.equal(p?.name, 'xvs_toa_reader');
    assert.equal(p?.attach_type, 'cgroup_sock_ops');
    assert.equal(p?.attach_flags, 'multi', 'other programs may share the hook');
    const map = JSON.parse(await run('bpftool', ['-j', 'map', 'show', 'pinned', pin()])) as { name: string; type: string; max_entries: number };
    assert.deepEqual([map.name, map.type, map.max_entries], ['xvs_toa_conns', 'lru_hash', 65536]);
    assert.ok(!(await loAddrs()).includes(lab.vip), 'a FULLNAT real server does not hold the VIP');
    const state = JSON.parse(readFileSync(stateFile(), 'utf8')) as { version: number; vips: Record<string, unknown>; toa: { progId: number; cgroup: string; netnsCookie: string } };
    assert.equal(state.version, 3);
    assert.deepEqual(state.vips, { [lab.vip]: { mode: 'fullnat', cgroup: cg.path } });
    assert.equal(state.toa.progId, p.id);
    assert.match(state.toa.netnsCookie, /^[1-9]\d*$/);

    assert.deepEqual(await inRs(() => setupRealServer(fullnat(lab.vip))), [`${lab.vip} is already set up (fullnat, TOA reader on cgroup ${cg.path})`]);
    // FULLNAT VIPs share the reader; an IPv6 VIP is fine, the real server never holds it.
    assert.deepEqual(await inRs(() => setupRealServer(fullnat('2001:DB8:0::80'))), [`added ${VIP6} (fullnat): the TOA reader already runs on cgroup ${cg.path}`]);
    assert.deepEqual((await progs()).map((x) => x.id), [p.id]);
    await assert.rejects(inRs(() => setupRealServer({ ...base, vip: lab.vip, mode: 'dr' })), /is set up as fullnat, TOA reader on cgroup .*; tear it down first/);
    await assert.rejects(inRs(() => setupRealServer(fullnat('192.0.2.81', { cgroup: other.path }))),
      (e: unknown) => isXvsError(e) && e.code === 'BAD_ARGUMENT' && e.message === `the TOA reader runs on cgroup ${cg.path}, not ${other.path}`);
    await assert.rejects(inRs(() => setupRealServer(fullnat('192.0.2.81', { toaTableSize: 4096 }))), /holds 65536 connections, not 4096/);
    assert.deepEqual(await progs(other.dir), []);

    assert.deepEqual(await inRs(() => teardownRealServer(fullnat(lab.vip))), [`removed ${lab.vip} (fullnat); the TOA reader stays for ${VIP6}`]);
    assert.deepEqual((await progs()).map((x) => x.id), [p.id], 'the other FULLNAT VIP still needs it');
    const down = await inRs(() => teardownRealServer(fullnat(VIP6)));
    assert.deepEqual(down, [`detached xvs_toa_reader from cgroup ${cg.path}`, `unpinned ${pin()}`]);
    assert.deepEqual(await progs(), []);
    assert.ok(!existsSync(pin()));
    assert.ok(!existsSync(base.pinDir!), 'its emptied pin directory goes too');
    assert.ok(!existsSync(stateFile()));
  });

  it('sizes the map, and attaches the reader again when it was detached behind its back', async () => {
    await inRs(() => setupRealServer(fullnat(lab.vip, { toaTableSize: 4096 })));
    const [first] = await progs();
    assert.ok(first);
    assert.equal((JSON.parse(await run('bpftool', ['-j', 'map', 'show', 'pinned', pin()])) as { max_entries: number }).max_entries, 4096);
    await run('bpftool', ['cgroup', 'detach', cg.dir, 'sock_ops', 'id', String(first.id)]);
    const lines = await inRs(() => setupRealServer(fullnat('192.0.2.81')));
    assert.ok(lines.includes(`the TOA reader (program id ${first.id}) no longer runs on cgroup ${cg.path}; attaching it again`), lines.join('\n'));
    const [again, ...more] = await progs();
    assert.deepEqual(more, []);
    assert.equal(again?.name, 'xvs_toa_reader');
    assert.notEqual(again?.id, first.id);
    await inRs(() => teardownRealServer(fullnat('192.0.2.81')));
    await inRs(() => teardownRealServer(fullnat(lab.vip)));
    assert.deepEqual(await progs(), []);
    assert.ok(!existsSync(stateFile()));
  });

  it('a state file whose reader records another namespace is ignored, and that reader detached', async () => {
    await inRs(() => setupRealServer(fullnat(lab.vip)));
    const [old] = await progs();
    assert.ok(old);
    // The kernel gave this namespace's inode to a new one: only the cookie tells them apart.
    const s = JSON.parse(readFileSync(stateFile(), 'utf8')) as { toa: { netnsCookie: string } };
    s.toa.netnsCookie = '1';
    writeFileSync(stateFile(), JSON.stringify(s));
    const lines = await inRs(() => setupRealServer(fullnat(lab.vip)));
    assert.match(lines[0] ?? '', /^ignored .*realserver\.json: its TOA reader records another network namespace/);
    assert.ok(lines.includes(`detached xvs_toa_reader from cgroup ${cg.path}`), lines.join('\n'));
    assert.ok(lines.includes(`attached xvs_toa_reader to cgroup ${cg.path}`), lines.join('\n'));
    const now = await progs();
    assert.equal(now.length, 1);
    assert.notEqual(now[0]?.id, old.id);
    await inRs(() => teardownRealServer(fullnat(lab.vip)));
    assert.deepEqual(await progs(), []);
  });

  it('the CLI under `ip netns exec`: cgroup v2 and bpffs mounted for the run, the map found again by id', async () => {
    const stateDir = path.join(lab.dir, 'rs1-cli-state');
    const xvs = (...args: string[]): Promise<string> => nsExec(rs.ns, 'node', [xvsJs, ...args]);
    // Default pin directory: /sys/fs/bpf, which `ip netns exec` gives each run afresh.
    const up = await xvs('realserver', 'setup', '--vip', lab.vip, '--mode', 'fullnat', '--cgroup', cg.path, '--state-dir', stateDir);
    assert.match(up, /^mounted the cgroup v2 hierarchy on \/sys\/fs\/cgroup$/m);
    assert.match(up, /^mounted a bpf filesystem on \/sys\/fs\/bpf$/m);
    assert.match(up, new RegExp(`^attached xvs_toa_reader to cgroup ${cg.path}$`, 'm'));
    assert.equal((await progs()).length, 1);
    assert.equal((await xvs('toa', 'list', '--state-dir', stateDir, '--json')).trim(), '[]');
    const down = await xvs('realserver', 'teardown', '--vip', lab.vip, '--mode', 'fullnat', '--state-dir', stateDir);
    assert.match(down, new RegExp(`^detached xvs_toa_reader from cgroup ${cg.path}$`, 'm'));
    assert.deepEqual(await progs(), []);
    assert.ok(!existsSync(path.join(stateDir, 'realserver.json')));
  });
});
