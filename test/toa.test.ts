// The TOA reader with real TCP connections. A lab client and real server;
// on the wire between them test/fixtures/toa_path.c plays a FULLNAT
// director (the client's address replaced by a local address of its own,
// the client's carried in a TOA where a director may put it); on the real
// server `xvs realserver setup --mode fullnat` runs the reader on a test
// cgroup, and an HTTP server in that cgroup answers each request with
// clientOf() of its connection. The client compares the answers with its
// own end of each connection; entries must be gone once connections close.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createLab, nsExec, run, sweepStaleLabs, type Lab, type LabHost } from '../src/lab/topology.js';
import { BpfObject, attachXdp, ifIndex, withNetns, withNetnsAsync } from '../src/loader/index.js';
import { AttachType, attachCgroup, detachCgroup } from '../src/loader/cgroup.js';
import { toaClient } from '../src/maps/codecs.js';
import type { RawMap } from '../src/maps/map.js';
import { packageRoot } from '../src/paths.js';
import { setupRealServer, teardownRealServer, type RealServerOptions } from '../src/realserver/setup.js';
import { kernelSkipReason } from './helpers/env.js';
import * as F from './helpers/frames.js';
import { sweepStaleCgroups, testCgroup, type TestCgroup } from './helpers/cgroup.js';

const skip = kernelSkipReason();

/** The lab's IPv6 addresses of the client and the first real server (LabHost.ip6). */
const CLIENT6 = '2001:db8::100';
const RS6 = '2001:db8::11';
/** The director's local addresses the stand-in puts in place of the client's. */
const LOCAL4 = '192.0.2.200';
const LOCAL6 = '2001:db8::200';
const WHERE = { none: 0, handshake: 1, data: 2, both: 3, late: 4 } as const;
const AF = { inet: 2, inet6: 10 } as const;
const CONNS = 40;

const dist = (p: string): string => path.join(packageRoot, 'dist', p);
const canon = (a: string): string => (F.isIp6(a) ? F.addrText(F.ip6(a)) : a);

interface Answer {
  client: { address: string; port: number; family: string; via: 'toa' | 'peer'; segment?: string };
  peer: { address: string; port: number };
}
interface Result { local: { address: string; port: number }; status: number; answer: Answer; answers: Array<{ answer: Answer }> }

interface PathCfg { client: string; local: string; toa: string; where: number; badLen?: number }

/** struct toa_path_cfg (52 bytes): three addresses, then the TOA's family, where, corrupt, bad_len. */
function encodeCfg(c: PathCfg): Buffer {
  const b = Buffer.alloc(52);
  F.ipAddr(c.client).copy(b, 0);
  F.ipAddr(c.local).copy(b, 16);
  F.ipAddr(c.toa).copy(b, 32);
  b[48] = F.isIp6(c.toa) ? AF.inet6 : AF.inet;
  b[49] = c.where;
  b[50] = c.badLen === undefined ? 0 : 1;
  b[51] = c.badLen ?? 0;
  return b;
}

function waitForLine(child: ChildProcess, line: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${what}: no "${line}" within 20 s (${err.trim()})`)), 20_000);
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.split('\n').includes(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${String(code)}): ${err.trim()}`));
    });
  });
}

function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
  });
}

describe('TOA reader: real connections through a FULLNAT stand-in', { skip, timeout: 600_000 }, () => {
  let lab: Lab;
  let rs: LabHost;
  let client: LabHost;
  let cg: TestCgroup;
  let pathObj: BpfObject | undefined;
  let cfgMap: RawMap;
  let statsMap: RawMap;
  let httpd: ChildProcess | undefined;
  let httpd4: ChildProcess | undefined;
  let outsider: ChildProcess | undefined;
  let rs2: LabHost;
  let opts2: Omit<RealServerOptions, 'vip' | 'mode'>;
  let setUp2 = false;
  let opts: Omit<RealServerOptions, 'vip' | 'mode'>;
  let pin = '';
  let setUp = false;

  /** What a reader holds, read with bpftool. */
  const entries = async (where = pin): Promise<number> => (JSON.parse(await run('bpftool', ['-j', 'map', 'dump', 'pinned', where])) as unknown[]).length;

  /** Entries go when their connection reaches CLOSE; the server's side may take a moment after the client's. */
  async function drained(what: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    let n = await entries();
    while (n > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      n = await entries();
    }
    assert.equal(n, 0, `${what}: entries left after every connection closed`);
  }

  const stats = (): number[] => [0, 1, 2, 3].map((i) => {
    const k = Buffer.alloc(4);
    k.writeUInt32LE(i);
    return Number(statsMap.lookup(k)?.readBigUInt64LE(0) ?? 0n);
  });

  function configure(family: 4 | 6, c: PathCfg): void {
    const k = Buffer.alloc(4);
    k.writeUInt32LE(family === 4 ? 0 : 1);
    cfgMap.update(k, encodeCfg(c));
  }

  async function connect(family: 4 | 6, n: number, port = 80, requests = 1): Promise<Result[]> {
    const url = family === 4 ? `http://${rs.ip}:${port}/` : `http://[${RS6}]:${port}/`;
    const out = await nsExec(client.ns, 'node', [dist('test/helpers/toa-client.js'), '--url', url, '--connections', String(n), '--requests', String(requests)], { timeoutMs: 60_000 });
    const results = JSON.parse(out) as Result[];
    assert.equal(results.length, n);
    for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.answer));
    return results;
  }

  before(async () => {
    await sweepStaleLabs();
    await sweepStaleCgroups();
    lab = await createLab({ reals: 2, ipv6: true });
    rs = lab.reals[0]!;
    rs2 = lab.reals[1]!;
    client = lab.client;
    assert.deepEqual([client.ip6, rs.ip6], [CLIENT6, RS6]);
    // Nobody owns the local addresses: the real server's answers to them go to the client's MAC, where the stand-in turns them back.
    await run('ip', ['-n', rs.ns, 'neigh', 'replace', LOCAL4, 'lladdr', client.mac, 'dev', 'eth0', 'nud', 'permanent']);
    await run('ip', ['-n', rs.ns, '-6', 'neigh', 'replace', LOCAL6, 'lladdr', client.mac, 'dev', 'eth0', 'nud', 'permanent']);
    await run('ip', ['-n', client.ns, '-6', 'neigh', 'replace', RS6, 'lladdr', rs.mac, 'dev', 'eth0', 'nud', 'permanent']);

    pathObj = BpfObject.open({ objectPath: path.join(packageRoot, 'bpf/.output/fixtures/toa_path.o') });
    pathObj.load();
    cfgMap = pathObj.map('toa_path_cfg');
    statsMap = pathObj.map('toa_path_stats');
    const fd = pathObj.program('xdp_toa_path').fd;
    withNetns(rs.ns, () => attachXdp(ifIndex('eth0'), fd, 'native'));
    withNetns(client.ns, () => attachXdp(ifIndex('eth0'), fd, 'native'));
    configure(4, { client: client.ip, local: LOCAL4, toa: client.ip, where: WHERE.none });
    configure(6, { client: CLIENT6, local: LOCAL6, toa: CLIENT6, where: WHERE.none });

    cg = testCgroup('toa');
    opts = { stateDir: path.join(lab.dir, 'rs1-state'), pinDir: path.join(lab.bpffs, 'rs1'), cgroup: cg.path };
    pin = path.join(opts.pinDir!, 'xvs_toa_conns');
    await withNetnsAsync(rs.ns, () => setupRealServer({ ...opts, vip: lab.vip, mode: 'fullnat' }));
    setUp = true;
    // A second real server's namespace with its reader on the same cgroup: it must record none of rs1's connections.
    opts2 = { stateDir: path.join(lab.dir, 'rs2-state'), pinDir: path.join(lab.bpffs, 'rs2'), cgroup: cg.path };
    await withNetnsAsync(rs2.ns, () => setupRealServer({ ...opts2, vip: lab.vip, mode: 'fullnat' }));
    setUp2 = true;

    // The application, started in the reader's cgroup before it opens its listening socket.
    httpd = spawn('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec ip netns exec "$2" node "$3" --port 80 --pin-dir "$4"',
      'sh', cg.dir, rs.ns, dist('test/helpers/toa-httpd.js'), opts.pinDir!], { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitForLine(httpd, 'listening', 'toa-httpd');
    httpd4 = spawn('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec ip netns exec "$2" node "$3" --port 81 --host 0.0.0.0 --pin-dir "$4"',
      'sh', cg.dir, rs.ns, dist('test/helpers/toa-httpd.js'), opts.pinDir!], { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitForLine(httpd4, 'listening', 'toa-httpd on an IPv4 socket');
    // The same application outside that cgroup: the reader never sees its connections.
    outsider = spawn('ip', ['netns', 'exec', rs.ns, 'node', dist('test/helpers/toa-httpd.js'), '--port', '8080', '--pin-dir', opts.pinDir!],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitForLine(outsider, 'listening', 'toa-httpd outside the cgroup');
  });

  after(async () => {
    await stop(httpd);
    await stop(httpd4);
    await stop(outsider);
    if (setUp) await withNetnsAsync(rs.ns, () => teardownRealServer({ ...opts, vip: lab.vip, mode: 'fullnat' })).catch(() => undefined);
    if (setUp2) await withNetnsAsync(rs2.ns, () => teardownRealServer({ ...opts2, vip: lab.vip, mode: 'fullnat' })).catch(() => undefined);
    await cg?.remove();
    await lab?.down();
    pathObj?.close();
  });

  const cases: Array<{ name: string; family: 4 | 6; cfg: { where: number; toa?: string; badLen?: number }; via: 'toa' | 'peer'; segment?: string; inserted: number[] }> = [
    { name: 'IPv4, TOA in the ACK completing the handshake', family: 4, cfg: { where: WHERE.handshake }, via: 'toa', segment: 'handshake', inserted: [0, CONNS, 0] },
    { name: 'IPv4, TOA in the first data segment', family: 4, cfg: { where: WHERE.data }, via: 'toa', segment: 'later', inserted: [0, 0, CONNS] },
    { name: 'IPv4, TOA in both: the first stays', family: 4, cfg: { where: WHERE.both }, via: 'toa', segment: 'handshake', inserted: [0, CONNS, CONNS] },
    { name: 'IPv4, no TOA: the socket\'s peer', family: 4, cfg: { where: WHERE.none }, via: 'peer', inserted: [0, 0, 0] },
    { name: 'IPv6, TOA in the ACK completing the handshake', family: 6, cfg: { where: WHERE.handshake }, via: 'toa', segment: 'handshake', inserted: [0, CONNS, 0] },
    { name: 'IPv6, TOA in the first data segment', family: 6, cfg: { where: WHERE.data }, via: 'toa', segment: 'later', inserted: [0, 0, CONNS] },
    { name: 'IPv6, TOA in both', family: 6, cfg: { where: WHERE.both }, via: 'toa', segment: 'handshake', inserted: [0, CONNS, CONNS] },
    { name: 'IPv6, no TOA', family: 6, cfg: { where: WHERE.none }, via: 'peer', inserted: [0, 0, 0] },
    { name: 'an IPv6 client over IPv4 (a 20-byte TOA, a director translating families)', family: 4, cfg: { where: WHERE.handshake, toa: CLIENT6 }, via: 'toa', segment: 'handshake', inserted: [0, CONNS, 0] },
    { name: 'an IPv4 client over IPv6 (an 8-byte TOA), in the data', family: 6, cfg: { where: WHERE.data, toa: '198.51.100.7' }, via: 'toa', segment: 'later', inserted: [0, 0, CONNS] },
    { name: 'a TOA of length 0 is no TOA', family: 4, cfg: { where: WHERE.handshake, badLen: 0x00 }, via: 'peer', inserted: [0, CONNS, 0] },
    { name: 'a TOA of length 1 is no TOA', family: 4, cfg: { where: WHERE.handshake, badLen: 0x01 }, via: 'peer', inserted: [0, CONNS, 0] },
    { name: 'a TOA running past the header is no TOA', family: 6, cfg: { where: WHERE.data, badLen: 0xff }, via: 'peer', inserted: [0, 0, CONNS] },
  ];

  for (const c of cases) {
    it(`${c.name}: every one of ${CONNS} parallel connections gets its client`, async () => {
      const own = c.family === 4 ? client.ip : CLIENT6;
      const local = c.family === 4 ? LOCAL4 : LOCAL6;
      configure(c.family, { client: own, local, toa: c.cfg.toa ?? own, where: c.cfg.where, ...(c.cfg.badLen === undefined ? {} : { badLen: c.cfg.badLen }) });
      const before = stats();
      const results = await connect(c.family, CONNS);
      const after = stats();
      assert.deepEqual(after.map((n, i) => n - before[i]!), [...c.inserted, 0], 'TOAs the stand-in inserted (failures, handshake, data, late)');
      const ports = new Set<number>();
      for (const r of results) {
        const a = r.answer;
        assert.equal(canon(r.local.address), canon(own), 'the client\'s own address');
        assert.equal(canon(a.peer.address.replace(/^::ffff:/, '')), canon(local), 'the server saw the director\'s local address');
        assert.equal(a.peer.port, r.local.port, 'the stand-in keeps ports');
        if (c.via === 'toa') {
          const want = c.cfg.toa ?? own;
          assert.deepEqual({ ...a.client, address: canon(a.client.address) },
            { address: canon(want), port: r.local.port, family: F.isIp6(want) ? 'IPv6' : 'IPv4', via: 'toa', segment: c.segment });
        } else {
          assert.deepEqual({ ...a.client, address: canon(a.client.address) },
            { address: canon(local), port: r.local.port, family: c.family === 4 ? 'IPv4' : 'IPv6', via: 'peer' });
        }
        ports.add(r.local.port);
      }
      assert.equal(ports.size, CONNS, 'distinct connections');
      await drained(c.name);
    });
  }

  it('a TOA after the first data is never read, even while another program keeps header callbacks on', async () => {
    const noisy = BpfObject.open({ objectPath: path.join(packageRoot, 'bpf/.output/fixtures/toa_noisy.o') });
    try {
      noisy.load();
      const fd = noisy.program('sockops_noisy').fd;
      attachCgroup(cg.dir, fd, AttachType.CGROUP_SOCK_OPS);
      try {
        for (const family of [4, 6] as const) {
          const own = family === 4 ? client.ip : CLIENT6;
          const local = family === 4 ? LOCAL4 : LOCAL6;
          configure(family, { client: own, local, toa: family === 4 ? '203.0.113.9' : '2001:db8:f::9', where: WHERE.late });
          const before = stats();
          const results = await connect(family, 10, 80, 2);
          assert.equal(stats()[3]! - before[3]!, 10, 'a TOA went into each second request');
          for (const r of results) {
            assert.equal(r.answers.length, 2);
            for (const a of r.answers) assert.deepEqual({ ...a.answer.client, address: canon(a.answer.client.address) }, { address: canon(local), port: r.local.port, family: family === 4 ? 'IPv4' : 'IPv6', via: 'peer' });
          }
          assert.equal(await entries(), 0);
        }
      } finally {
        detachCgroup(cg.dir, fd, AttachType.CGROUP_SOCK_OPS);
      }
    } finally {
      noisy.close();
    }
  });

  it('an IPv4 socket (not dual stack) gets its clients too', async () => {
    configure(4, { client: client.ip, local: LOCAL4, toa: client.ip, where: WHERE.data });
    const results = await connect(4, 10, 81);
    for (const r of results) {
      assert.deepEqual(r.answer.peer.address, LOCAL4, 'an IPv4 socket\'s peer has no ::ffff: prefix');
      assert.deepEqual(r.answer.client, { address: client.ip, port: r.local.port, family: 'IPv4', via: 'toa', segment: 'later' });
    }
    await drained('IPv4 socket');
  });

  it('a server outside the reader\'s cgroup gets no TOA', async () => {
    configure(4, { client: client.ip, local: LOCAL4, toa: client.ip, where: WHERE.handshake });
    const results = await connect(4, 5, 8080);
    for (const r of results) assert.deepEqual(r.answer.client, { address: LOCAL4, port: r.local.port, family: 'IPv4', via: 'peer' });
    assert.equal(await entries(), 0);
  });

  it('open connections are listed and looked up with `xvs toa`, and gone once closed', async () => {
    configure(4, { client: client.ip, local: LOCAL4, toa: client.ip, where: WHERE.handshake });
    configure(6, { client: CLIENT6, local: LOCAL6, toa: CLIENT6, where: WHERE.data });
    const holders = ([4, 6] as const).map((family) => {
      const url = family === 4 ? `http://${rs.ip}/` : `http://[${RS6}]/`;
      return spawn('ip', ['netns', 'exec', client.ns, 'node', dist('test/helpers/toa-client.js'), '--url', url, '--connections', '10', '--hold'],
        { stdio: ['pipe', 'pipe', 'pipe'] });
    });
    try {
      const held = await Promise.all(holders.map((h) => new Promise<Result[]>((resolve, reject) => {
        let out = '';
        h.stdout!.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          if (out.includes('\n')) resolve(JSON.parse(out) as Result[]);
        });
        h.on('exit', (code) => reject(new Error(`toa-client exited ${String(code)}`)));
      })));
      const xvs = (...args: string[]): Promise<string> => nsExec(rs.ns, 'node', [dist('src/cli/xvs.js'), 'toa', ...args, '--pin-dir', opts.pinDir!]);
      const listed = JSON.parse(await xvs('list', '--json')) as Array<{ local: { address: string; port: number }; remote: { address: string; port: number }; client: { address: string; port: number; segment: string } }>;
      const want = held.flatMap((rs4or6, i) => rs4or6.map((r) => ({
        local: { address: canon(i === 0 ? rs.ip : RS6), port: 80 },
        remote: { address: canon(i === 0 ? LOCAL4 : LOCAL6), port: r.local.port },
        client: { address: canon(r.local.address), port: r.local.port, segment: i === 0 ? 'handshake' : 'later' },
      })));
      const norm = (xs: typeof want): string[] => xs.map((x) => JSON.stringify({
        local: { ...x.local, address: canon(x.local.address) }, remote: { ...x.remote, address: canon(x.remote.address) },
        client: { address: canon(x.client.address), port: x.client.port, segment: x.client.segment },
      })).sort();
      assert.deepEqual(norm(listed), norm(want));

      const r4 = held[0]![0]!;
      assert.equal((await xvs('lookup', '--local', `${rs.ip}:80`, '--remote', `${LOCAL4}:${r4.local.port}`)).trim(), `${client.ip}:${r4.local.port}`);
      const r6 = held[1]![0]!;
      assert.equal((await xvs('lookup', '--local', `[${RS6}]:80`, '--remote', `[${LOCAL6}]:${r6.local.port}`)).trim(), `[${CLIENT6}]:${r6.local.port}`);
      const text = await xvs('list');
      assert.match(text.split('\n')[0]!, /^Local +Remote +Client +TOA in$/);
      assert.equal(text.trim().split('\n').length, 1 + 20);
      assert.equal(await entries(), 20);
      assert.equal(await entries(path.join(opts2.pinDir!, 'xvs_toa_conns')), 0, 'the reader of another namespace on the same cgroup records none of them');
    } finally {
      for (const h of holders) h.stdin!.end();
      await Promise.all(holders.map((h) => new Promise((r) => (h.exitCode !== null ? r(null) : h.once('exit', r)))));
    }
    await drained('held connections');
  });

  it('`xvs toa` refuses bad input with one line and its exit code', async () => {
    const cli = (args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> => new Promise((resolve) => {
      const p = spawn('ip', ['netns', 'exec', rs.ns, 'node', dist('src/cli/xvs.js'), 'toa', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
      p.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      p.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    const pinArgs = ['--pin-dir', opts.pinDir!];
    const cases: Array<[string[], number, RegExp]> = [
      [['lookup', '--local', '192.0.2.300:80', '--remote', `${LOCAL4}:1234`, ...pinArgs], 2, /^xvs: BAD_ADDRESS: /],
      [['lookup', '--local', `${rs.ip}`, '--remote', `${LOCAL4}:1234`, ...pinArgs], 2, /^xvs: BAD_ADDRESS: --local .* needs a port/],
      [['lookup', '--local', `${rs.ip}:80`, '--remote', `[${LOCAL6}]:1234`, ...pinArgs], 2, /^xvs: BAD_ADDRESS: .*not of one address family/],
      [['lookup', '--local', `${rs.ip}:80`, '--remote', `${LOCAL4}:1234`, ...pinArgs], 1, /^xvs: NO_TOA: no TOA recorded for 192\.0\.2\.11:80 <- 192\.0\.2\.200:1234 /],
      [['list', '--pin-dir', path.join(lab.bpffs, 'nothing-here')], 3, /^xvs: NO_TOA_READER: no TOA reader map pinned at /],
    ];
    for (const [args, code, re] of cases) {
      const r = await cli(args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.equal(r.stdout, '');
    }
  });
});
