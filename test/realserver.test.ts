// `xvs realserver setup|teardown` inside a lab real-server namespace. Checks
// read the namespace with ip/sysctl, never through the code under test.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createLab, nsExec, run, sweepStaleLabs, type Lab, type LabHost } from '../src/lab/topology.js';
import { setupRealServer, teardownRealServer, type RealServerOptions } from '../src/realserver/setup.js';
import { BpfObject, attachXdp, detachXdp, ifIndex, withNetns, withNetnsAsync } from '../src/loader/index.js';
import { mapFromPin } from '../src/maps/map.js';
import { bpfObject } from '../src/paths.js';
import { isXvsError } from '../src/errors.js';
import { decapVips, xdpProg as xdpOn } from './helpers/inspect.js';

const skip = process.geteuid?.() !== 0 ? 'needs root (network namespaces, sysctls, XDP)' : false;
const decapMissing = existsSync(bpfObject('xvs_decap')) ? false : 'bpf/.output/xvs_decap.o is not built';

const KEYS = ['all', 'lo', 'eth0'].flatMap((d) => ['arp_ignore', 'arp_announce', 'rp_filter'].map((k) => `net.ipv4.conf.${d}.${k}`));

describe('real server setup and teardown', { skip, timeout: 120_000 }, () => {
  let lab: Lab;
  let rs: LabHost;
  let base: Omit<RealServerOptions, 'vip' | 'mode'>;

  const inRs = <T>(fn: () => Promise<T>): Promise<T> => withNetnsAsync(rs.ns, fn);
  const sysctls = async (): Promise<Record<string, string>> => {
    const vals = (await nsExec(rs.ns, 'sysctl', ['-n', ...KEYS])).trim().split('\n');
    return Object.fromEntries(KEYS.map((k, i) => [k, vals[i] ?? '?']));
  };
  const loAddrs = async (): Promise<string> => run('ip', ['-n', rs.ns, '-4', '-o', 'addr', 'show', 'dev', 'lo']);
  const xdpProg = async (): Promise<string | undefined> => (await xdpOn(rs.ns, 'eth0'))?.name;
  const stateFile = (): string => path.join(base.stateDir!, 'realserver.json');

  before(async () => {
    await sweepStaleLabs();
    lab = await createLab({ reals: 1 });
    rs = lab.reals[0]!;
    // `ip netns exec` and this process see the lab bpffs; /sys/fs/bpf is not shared.
    base = { stateDir: path.join(lab.dir, 'rs1-state'), pinDir: path.join(lab.bpffs, 'rs1') };
    // Non-default starting values prove teardown restores rather than resets.
    await nsExec(rs.ns, 'sysctl', ['-qw', 'net.ipv4.conf.all.arp_announce=1', 'net.ipv4.conf.eth0.rp_filter=2']);
  });

  after(async () => {
    await lab?.down();
  });

  it('rejects bad options without changing anything', async () => {
    const before = await sysctls();
    const cases: Array<[Partial<RealServerOptions>, string]> = [
      [{ vip: 'fe80::1%eth0', mode: 'dr' }, 'BAD_ADDRESS'],
      [{ vip: '192.0.2.300', mode: 'dr' }, 'BAD_ADDRESS'],
      [{ vip: lab.vip, mode: 'nat' as 'dr' }, 'BAD_ARGUMENT'],
      [{ vip: lab.vip, mode: 'dr', xdpMode: 'offload' as 'native' }, 'BAD_ARGUMENT'],
      [{ vip: lab.vip, mode: 'dr', interface: 'nosuch0' }, 'NO_INTERFACE'],
    ];
    for (const [o, code] of cases) {
      await assert.rejects(inRs(() => setupRealServer({ ...base, ...o } as RealServerOptions)),
        (e: unknown) => isXvsError(e) && e.code === code && !e.message.includes('\n'), JSON.stringify(o));
    }
    assert.deepEqual(await sysctls(), before);
    assert.ok(!(await loAddrs()).includes(lab.vip));
    assert.ok(!existsSync(stateFile()));
  });

  it('dr: VIP on lo and ARP sysctls, restored exactly by teardown', async () => {
    const before = await sysctls();
    const lines = await inRs(() => setupRealServer({ ...base, vip: lab.vip, mode: 'dr' }));
    assert.ok(lines.some((l) => l.includes(`${lab.vip}/32`)), lines.join('\n'));
    assert.match(await loAddrs(), new RegExp(`inet ${lab.vip.replaceAll('.', '\\.')}/32 `));
    const during = await sysctls();
    for (const d of ['all', 'lo', 'eth0']) {
      assert.equal(during[`net.ipv4.conf.${d}.arp_ignore`], '1', d);
      assert.equal(during[`net.ipv4.conf.${d}.arp_announce`], '2', d);
      assert.equal(during[`net.ipv4.conf.${d}.rp_filter`], before[`net.ipv4.conf.${d}.rp_filter`], d);
    }
    assert.equal(await xdpProg(), undefined);
    assert.ok(existsSync(stateFile()));

    const again = await inRs(() => setupRealServer({ ...base, vip: lab.vip, mode: 'dr' }));
    assert.deepEqual(again, [`${lab.vip} is already set up (dr on eth0)`]);
    await assert.rejects(inRs(() => setupRealServer({ ...base, vip: lab.vip, mode: 'tun' })), /tear it down first/);

    await inRs(() => teardownRealServer({ ...base, vip: lab.vip, mode: 'dr' }));
    assert.deepEqual(await sysctls(), before);
    assert.ok(!(await loAddrs()).includes(lab.vip));
    assert.ok(!existsSync(stateFile()));
    const noop = await inRs(() => teardownRealServer({ ...base, vip: lab.vip, mode: 'dr' }));
    assert.match(noop.join('\n'), /nothing to undo/);
  });

  it('sysctls stay while another VIP still needs them', async () => {
    const before = await sysctls();
    const vip2 = '192.0.2.81';
    await inRs(() => setupRealServer({ ...base, vip: lab.vip, mode: 'dr' }));
    await inRs(() => setupRealServer({ ...base, vip: vip2, mode: 'dr' }));
    await inRs(() => teardownRealServer({ ...base, vip: lab.vip, mode: 'dr' }));
    assert.equal((await sysctls())['net.ipv4.conf.all.arp_ignore'], '1');
    assert.match(await loAddrs(), /192\.0\.2\.81\/32/);
    await inRs(() => teardownRealServer({ ...base, vip: vip2, mode: 'dr' }));
    assert.deepEqual(await sysctls(), before);
    assert.equal((await loAddrs()).trim().split('\n').length, 1); // 127.0.0.1 only
  });

  it('tun: attaches xdp_decap, fills the pinned VIP map, detaches on teardown', { skip: decapMissing }, async () => {
    const before = await sysctls();
    const lines = await inRs(() => setupRealServer({ ...base, vip: lab.vip, mode: 'tun' }));
    assert.ok(lines.some((l) => l.startsWith('attached xdp_decap to eth0')), lines.join('\n'));
    assert.equal(await xdpProg(), 'xdp_decap');
    const during = await sysctls();
    assert.equal(during['net.ipv4.conf.all.rp_filter'], '0');
    assert.equal(during['net.ipv4.conf.eth0.rp_filter'], '0');
    const pin = path.join(base.pinDir!, 'xvs_decap_vips');
    const map = mapFromPin(pin);
    try {
      const key = Buffer.alloc(16);
      Buffer.from([192, 0, 2, 80]).copy(key);
      assert.deepEqual([...map.keys()].map((k) => k.toString('hex')), [key.toString('hex')]);
      assert.equal(map.lookup(key)?.readUInt32LE(0), 1);
    } finally {
      map.close();
    }

    await inRs(() => teardownRealServer({ ...base, vip: lab.vip, mode: 'tun' }));
    assert.equal(await xdpProg(), undefined);
    assert.ok(!existsSync(pin));
    assert.deepEqual(await sysctls(), before);
    assert.ok(!(await loAddrs()).includes(lab.vip));
  });

  it('tun: a decap detached behind its back is attached again with every tunnelled VIP', { skip: decapMissing }, async () => {
    const before = await sysctls();
    const vip2 = '192.0.2.81';
    try {
      await inRs(() => setupRealServer({ ...base, vip: lab.vip, mode: 'tun' }));
      const first = await xdpOn(rs.ns, 'eth0');
      await run('ip', ['-n', rs.ns, 'link', 'set', 'dev', 'eth0', 'xdp', 'off']);
      assert.equal(await xdpProg(), undefined);
      const lines = await inRs(() => setupRealServer({ ...base, vip: vip2, mode: 'tun' }));
      assert.ok(lines.some((l) => l.startsWith('attached xdp_decap to eth0')), lines.join('\n'));
      const again = await xdpOn(rs.ns, 'eth0');
      assert.equal(again?.name, 'xdp_decap');
      assert.notEqual(again?.id, first?.id);
      assert.deepEqual(await decapVips(again!.id), [lab.vip, vip2]);
    } finally {
      await inRs(() => teardownRealServer({ ...base, vip: vip2, mode: 'tun' }));
      await inRs(() => teardownRealServer({ ...base, vip: lab.vip, mode: 'tun' }));
    }
    assert.equal(await xdpProg(), undefined);
    assert.deepEqual(await sysctls(), before);
    assert.ok(!(await loAddrs()).includes(lab.vip));
    assert.ok(!existsSync(stateFile()));
  });

  it('a failed setup undoes what it changed', { skip: decapMissing }, async () => {
    // Someone else's XDP program on the interface: setup must refuse, not replace it.
    const other = BpfObject.open({ objectPath: bpfObject('xvs_decap') });
    try {
      other.load();
      withNetns(rs.ns, () => attachXdp(ifIndex('eth0'), other.program('xdp_decap').fd, 'native'));
      const before = await sysctls();
      await assert.rejects(inRs(() => setupRealServer({ ...base, vip: lab.vip, mode: 'tun' })),
        (e: unknown) => isXvsError(e) && e.code === 'ATTACH');
      assert.deepEqual(await sysctls(), before);
      assert.ok(!(await loAddrs()).includes(lab.vip));
      assert.ok(!existsSync(stateFile()));
      assert.equal(await xdpProg(), 'xdp_decap');
    } finally {
      withNetns(rs.ns, () => detachXdp(ifIndex('eth0')));
      other.close();
    }
  });
});
