// `xvs realserver setup|teardown` with IPv6 VIPs, in a lab real server with
// IPv6; and what Linux's neighbour discovery does with a VIP on lo, which is
// why setup changes no sysctl for one. Checks read the namespace with ip,
// sysctl and bpftool, never through the code under test.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createLab, nsExec, run, type Lab, type LabHost } from '../src/lab/topology.js';
import { setupRealServer, teardownRealServer, type RealServerOptions } from '../src/realserver/setup.js';
import { withNetnsAsync } from '../src/loader/index.js';
import { bpfObject } from '../src/paths.js';
import { isXvsError } from '../src/errors.js';
import { xdpProg } from './helpers/inspect.js';

const skip = process.geteuid?.() !== 0 ? 'needs root (network namespaces, sysctls, XDP)' : existsSync(bpfObject('xvs_decap')) ? false : 'bpf/.output/xvs_decap.o is not built';

const VIP6 = '2001:db8::80';
const KEYS = [
  ...['all', 'lo', 'eth0'].flatMap((d) => ['arp_ignore', 'arp_announce', 'rp_filter'].map((k) => `net.ipv4.conf.${d}.${k}`)),
  ...['all', 'lo', 'eth0'].flatMap((d) => ['forwarding', 'proxy_ndp', 'accept_dad', 'disable_ipv6'].map((k) => `net.ipv6.conf.${d}.${k}`)),
];

interface AddrInfo { family: string; local: string; prefixlen: number; scope?: string; nodad?: boolean; metric?: number }
interface Neigh { dst: string; lladdr?: string; state?: string[] }

describe('real server setup with IPv6 VIPs', { skip, timeout: 120_000 }, () => {
  let lab: Lab;
  let rs: LabHost;
  let base: Omit<RealServerOptions, 'vip' | 'mode'>;

  const inRs = <T>(fn: () => Promise<T>): Promise<T> => withNetnsAsync(rs.ns, fn);
  const sysctls = async (): Promise<Record<string, string>> => {
    const vals = (await nsExec(rs.ns, 'sysctl', ['-n', ...KEYS])).trim().split('\n');
    return Object.fromEntries(KEYS.map((k, i) => [k, vals[i] ?? '?']));
  };
  const addrs = async (ns: string, dev: string): Promise<AddrInfo[]> =>
    (JSON.parse(await run('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', dev])) as { addr_info: AddrInfo[] }[])[0]?.addr_info ?? [];
  const neigh = async (ns: string, dst: string): Promise<Neigh | undefined> =>
    (JSON.parse(await run('ip', ['-n', ns, '-j', '-6', 'neigh', 'show', 'to', dst, 'dev', 'eth0'])) as Neigh[])[0];
  const ping = async (ns: string, dst: string, from?: string): Promise<boolean> => {
    try {
      await nsExec(ns, 'ping', ['-6', '-n', '-q', '-c', '1', '-W', '1', ...(from ? ['-I', from] : []), dst], { timeoutMs: 5000 });
      return true;
    } catch {
      return false;
    }
  };
  const flushNeigh = async () => {
    for (const h of [lab.client, rs]) await run('ip', ['-n', h.ns, '-6', 'neigh', 'flush', 'dev', 'eth0']);
  };
  /** The decap map of the program on rs1's eth0: address key (hex) -> family bits. */
  const decapMap = async (): Promise<Map<string, number>> => {
    const prog = await xdpProg(rs.ns, 'eth0');
    assert.ok(prog, 'a decap program runs');
    const info = JSON.parse(await run('bpftool', ['-j', 'prog', 'show', 'id', String(prog.id)])) as { map_ids?: number[] };
    for (const id of info.map_ids ?? []) {
      const m = JSON.parse(await run('bpftool', ['-j', 'map', 'show', 'id', String(id)])) as { name: string };
      if (m.name !== 'xvs_decap_vips') continue;
      const entries = JSON.parse(await run('bpftool', ['-j', 'map', 'dump', 'id', String(id)])) as Array<{ key: string[]; value: string[] }>;
      const bytes = (a: string[]) => Buffer.from(a.map((b) => parseInt(b, 16)));
      return new Map(entries.map((e) => [bytes(e.key).toString('hex'), bytes(e.value).readUInt32LE(0)]));
    }
    throw new Error('no xvs_decap_vips map');
  };
  const stateFile = (): string => path.join(base.stateDir!, 'realserver.json');

  before(async () => {
    lab = await createLab({ id: `xvsrs6${process.pid % 10000}`, reals: 1, ipv6: true });
    rs = lab.reals[0]!;
    base = { stateDir: path.join(lab.dir, 'rs1-state'), pinDir: path.join(lab.bpffs, 'rs1') };
  });

  after(async () => {
    await lab?.down();
  });

  it('rejects bad VIPs without changing anything', async () => {
    const before = await sysctls();
    for (const vip of ['fe80::1%eth0', '2001:db8::g', '2001:db8::80/128']) {
      await assert.rejects(inRs(() => setupRealServer({ ...base, vip, mode: 'dr' })),
        (e: unknown) => isXvsError(e) && e.code === 'BAD_ADDRESS' && !e.message.includes('\n'), vip);
    }
    assert.deepEqual(await sysctls(), before);
    assert.ok(!existsSync(stateFile()));
  });

  it('dr: the VIP on lo as /128 nodad, no sysctl touched; teardown takes it away', async () => {
    const before = await sysctls();
    const lines = await inRs(() => setupRealServer({ ...base, vip: '2001:DB8:0::80', mode: 'dr' }));
    assert.deepEqual(lines, [`added ${VIP6}/128 to lo`]);
    const onLo = (await addrs(rs.ns, 'lo')).find((a) => a.local === VIP6);
    assert.ok(onLo, 'VIP on lo');
    assert.equal(onLo.prefixlen, 128);
    assert.equal(onLo.nodad, true);
    assert.deepEqual(await sysctls(), before, 'IPv6 needs no arp_ignore/arp_announce in their place');
    assert.equal(await xdpProg(rs.ns, 'eth0'), undefined);
    const again = await inRs(() => setupRealServer({ ...base, vip: VIP6, mode: 'dr' }));
    assert.deepEqual(again, [`${VIP6} is already set up (dr on eth0)`]);
    const down = await inRs(() => teardownRealServer({ ...base, vip: VIP6, mode: 'dr' }));
    assert.deepEqual(down, [`removed ${VIP6}/128 from lo`]);
    assert.ok(!(await addrs(rs.ns, 'lo')).some((a) => a.local === VIP6));
    assert.deepEqual(await sysctls(), before);
    assert.ok(!existsSync(stateFile()));
  });

  it('teardown leaves an IPv6 address on lo that xvs did not add', async () => {
    await run('ip', ['-n', rs.ns, '-6', 'addr', 'add', `${VIP6}/128`, 'dev', 'lo', 'nodad']);
    try {
      const lines = await inRs(() => teardownRealServer({ ...base, vip: VIP6, mode: 'dr' }));
      assert.deepEqual(lines, [`left ${VIP6}/128 on lo: it was not added by xvs`]);
      assert.ok((await addrs(rs.ns, 'lo')).some((a) => a.local === VIP6));
    } finally {
      await run('ip', ['-n', rs.ns, '-6', 'addr', 'del', `${VIP6}/128`, 'dev', 'lo']);
    }
  });

  it('neighbour discovery: a VIP on lo is never claimed on the wire nor announced from', async () => {
    await inRs(() => setupRealServer({ ...base, vip: VIP6, mode: 'dr' }));
    try {
      await flushNeigh();
      // The client solicits the VIP: the real server has it, on lo, and stays silent.
      assert.equal(await ping(lab.client.ns, VIP6), false, 'nobody answers for the VIP');
      assert.equal((await neigh(lab.client.ns, VIP6))?.lladdr, undefined, 'the client learnt no MAC for the VIP');
      assert.equal(await ping(lab.client.ns, rs.ip6!), true, 'the real server answers for its own address');
      assert.equal((await neigh(lab.client.ns, rs.ip6!))?.lladdr, rs.mac);

      // The real server sends from the VIP: it solicits the client from its
      // link-local address, so the client learns that one, never the VIP.
      await flushNeigh();
      await ping(rs.ns, lab.client.ip6!, VIP6); // the echo reply cannot come back: the VIP does not resolve
      assert.equal((await neigh(rs.ns, lab.client.ip6!))?.lladdr, lab.client.mac, 'the real server resolved the client');
      const ll = (await addrs(rs.ns, 'eth0')).find((a) => a.family === 'inet6' && a.scope === 'link')?.local;
      assert.ok(ll, 'the real server has a link-local address');
      assert.equal((await neigh(lab.client.ns, ll))?.lladdr, rs.mac, 'the solicitation came from the link-local address');
      assert.equal((await neigh(lab.client.ns, VIP6))?.lladdr, undefined, 'the VIP was not announced');
    } finally {
      await inRs(() => teardownRealServer({ ...base, vip: VIP6, mode: 'dr' }));
    }
    // The control: the same VIP on the wire-facing interface is answered for,
    // so the checks above would see a claim.
    await run('ip', ['-n', rs.ns, '-6', 'addr', 'add', `${VIP6}/128`, 'dev', 'eth0', 'nodad']);
    try {
      await flushNeigh();
      assert.equal(await ping(lab.client.ns, VIP6), true);
      assert.equal((await neigh(lab.client.ns, VIP6))?.lladdr, rs.mac);
    } finally {
      await run('ip', ['-n', rs.ns, '-6', 'addr', 'del', `${VIP6}/128`, 'dev', 'eth0']);
    }
  });

  it('tun: the decap map holds each VIP with its family bit; twin keys share an entry', async () => {
    const before = await sysctls();
    const twin4 = '192.0.2.81';
    const twin6 = 'c000:251::'; // the same 16 key bytes: c0 00 02 51, then zeros
    const o = { ...base, mode: 'tun' as const, interface: 'eth0' };
    try {
      const lines = await inRs(() => setupRealServer({ ...o, vip: VIP6 }));
      assert.ok(lines.some((l) => l.startsWith('attached xdp_decap to eth0')), lines.join('\n'));
      assert.deepEqual(await sysctls(), before, 'no rp_filter change for an IPv6 VIP');
      assert.deepEqual(await decapMap(), new Map([['20010db8000000000000000000000080', 2]]));
      await inRs(() => setupRealServer({ ...o, vip: twin6 }));
      await inRs(() => setupRealServer({ ...o, vip: twin4 }));
      assert.equal((await sysctls())['net.ipv4.conf.eth0.rp_filter'], '0', 'an IPv4 VIP turns rp_filter off');
      assert.deepEqual(await decapMap(), new Map([['20010db8000000000000000000000080', 2], ['c0000251000000000000000000000000', 3]]));
      await inRs(() => teardownRealServer({ ...o, vip: twin6 }));
      assert.deepEqual(await decapMap(), new Map([['20010db8000000000000000000000080', 2], ['c0000251000000000000000000000000', 1]]));
      assert.ok((await addrs(rs.ns, 'lo')).some((a) => a.local === twin4), 'the twin IPv4 VIP stays');
    } finally {
      for (const vip of [twin4, twin6, VIP6]) await inRs(() => teardownRealServer({ ...o, vip }));
    }
    assert.equal(await xdpProg(rs.ns, 'eth0'), undefined);
    assert.deepEqual(await sysctls(), before);
    assert.ok(!existsSync(stateFile()));
  });

  it('says so when the interface has no link-local address to solicit from', async () => {
    const lls = (await addrs(rs.ns, 'eth0')).filter((a) => a.family === 'inet6' && a.scope === 'link');
    assert.ok(lls.length > 0);
    await run('ip', ['-n', rs.ns, '-6', 'addr', 'flush', 'dev', 'eth0', 'scope', 'link']);
    try {
      const lines = await inRs(() => setupRealServer({ ...base, vip: VIP6, mode: 'dr' }));
      assert.ok(lines.some((l) => l.startsWith('warning: eth0 has no IPv6 link-local address')), lines.join('\n'));
      await inRs(() => teardownRealServer({ ...base, vip: VIP6, mode: 'dr' }));
    } finally {
      for (const a of lls) await run('ip', ['-n', rs.ns, '-6', 'addr', 'add', `${a.local}/${a.prefixlen}`, 'dev', 'eth0', 'nodad']);
    }
    const lines = await inRs(() => setupRealServer({ ...base, vip: VIP6, mode: 'dr' }));
    assert.ok(!lines.some((l) => l.startsWith('warning')), lines.join('\n'));
    await inRs(() => teardownRealServer({ ...base, vip: VIP6, mode: 'dr' }));
  });
});
