// The namespace lab as a FULLNAT site: the real servers move off the
// director's segment into a subnet of their own behind a router, which is
// their default gateway in both families; the director reaches them through
// the router and is no gateway of theirs. Replies come back to the director
// only because FULLNAT made them replies to one of its local addresses.
//
//   client 192.0.2.100, 2001:db8::100 ─┐
//   director 192.0.2.1, 2001:db8::1, VIPs .80 and ::80,          ├ br0: 192.0.2.0/24, 2001:db8::/64
//     local addresses .201-.203 and ::201-::202 (on its eth0)    │
//   router eth0 192.0.2.254, 2001:db8::fe ──────────────────────┘
//   router eth1 203.0.113.254, 2001:db8:2::fe ─┐
//   rs1 203.0.113.11, 2001:db8:2::11 ...       ├ br2: 203.0.113.0/24, 2001:db8:2::/64
//                                              ┘
// The director owns its local addresses, as it owns the VIPs: the router
// finds them by ARP and neighbour discovery on the shared segment. The
// real servers run `xvs realserver setup --mode fullnat` (the TOA reader on
// a cgroup the caller gives) and lab/toa-httpd.ts in that cgroup.
import { spawn, type ChildProcess } from 'node:child_process';
import { isIPv6 } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { XvsError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { nsExec, run, type Lab, type LabHost } from './topology.js';

const bin = (name: string) => path.join(packageRoot, 'dist', 'src', name);

export const FULLNAT_NET = {
  vip6: '2001:db8::80',
  laddrs4: ['192.0.2.201', '192.0.2.202', '192.0.2.203'],
  laddrs6: ['2001:db8::201', '2001:db8::202'],
  routerClientSide: '192.0.2.254',
  routerClientSide6: '2001:db8::fe',
  servers: '203.0.113.0/24',
  servers6: '2001:db8:2::/64',
  routerServerSide: '203.0.113.254',
  routerServerSide6: '2001:db8:2::fe',
  real: (octet: number): string => `203.0.113.${octet}`,
  real6: (octet: number): string => `2001:db8:2::${octet}`,
} as const;

export interface FullnatLab extends Lab {
  vip6: string;
  /** The router's namespace, between the director's segment and the real servers'. */
  routerNs: string;
}

const mac = (segment: number, byte: number): string => `02:00:00:00:${segment.toString(16).padStart(2, '0')}:${byte.toString(16).padStart(2, '0')}`;

/** The bridge a switch port is enslaved to. */
async function bridgeOf(switchNs: string, port: string): Promise<string> {
  const [link] = JSON.parse(await run('ip', ['-n', switchNs, '-j', 'link', 'show', port])) as { master?: string }[];
  if (!link?.master) throw new XvsError('SYSTEM', `${switchNs}/${port} is on no bridge`);
  return link.master;
}

/** A host's interface on a bridge of the switch, both families, checksums filled in (XDP forwards these frames). */
async function plug(switchNs: string, bridge: string, ns: string, o: { ifname: string; peer: string; mac: string; ip: string; ip6: string }): Promise<void> {
  await run('ip', ['-n', switchNs, 'link', 'add', o.peer, 'type', 'veth', 'peer', 'name', o.ifname, 'netns', ns]);
  await run('ip', ['-n', ns, 'link', 'set', o.ifname, 'address', o.mac]);
  await run('ip', ['-n', ns, 'addr', 'add', `${o.ip}/24`, 'dev', o.ifname]);
  await run('ip', ['-n', ns, '-6', 'addr', 'add', `${o.ip6}/64`, 'dev', o.ifname, 'nodad']);
  await run('ip', ['-n', ns, 'link', 'set', o.ifname, 'up']);
  await run('ip', ['-n', switchNs, 'link', 'set', o.peer, 'master', bridge]);
  await run('ip', ['-n', switchNs, 'link', 'set', o.peer, 'up']);
  await nsExec(ns, 'ethtool', ['-K', o.ifname, 'tx', 'off']);
  await nsExec(switchNs, 'ethtool', ['-K', o.peer, 'tx', 'off']);
}

/**
 * A one-armed lab made with `ipv6` turned into the FULLNAT site above. Its
 * namespaces keep the lab's names (the router's is the lab's `rt`), so the
 * lab's down() removes everything.
 */
export async function fullnatLab(lab: Lab): Promise<FullnatLab> {
  if (lab.arms !== 1 || !lab.vip6) throw new XvsError('BAD_ARGUMENT', 'fullnatLab: a one-armed lab made with ipv6');
  const N = FULLNAT_NET;
  const sw = lab.switchNs;
  const routerNs = `${lab.id}-rt`;
  await run('ip', ['netns', 'add', routerNs]);
  await run('ip', ['-n', routerNs, 'link', 'set', 'lo', 'up']);
  // Before its interfaces come, which take `default`'s settings: no DAD, no router solicitations.
  await nsExec(routerNs, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', ...['all', 'default'].flatMap((c) => [
    `net.ipv6.conf.${c}.accept_dad=0`, `net.ipv6.conf.${c}.router_solicitations=0`, `net.ipv6.conf.${c}.accept_ra=0`, `net.ipv6.conf.${c}.forwarding=1`])]);
  const segment = await bridgeOf(sw, lab.director.peer);
  await plug(sw, segment, routerNs, { ifname: 'eth0', peer: 'sw-router', mac: mac(0, 0xfe), ip: N.routerClientSide, ip6: N.routerClientSide6 });
  const servers = 'br2';
  await run('ip', ['-n', sw, 'link', 'add', servers, 'type', 'bridge', 'mcast_snooping', '0']);
  await run('ip', ['-n', sw, 'link', 'set', servers, 'up']);
  await plug(sw, servers, routerNs, { ifname: 'eth1', peer: 'sw-router1', mac: mac(2, 0xfe), ip: N.routerServerSide, ip6: N.routerServerSide6 });

  const reals: LabHost[] = [];
  for (const [i, r] of lab.reals.entries()) {
    const octet = 11 + i;
    // Off the director's segment: the veth goes, its switch end with it.
    await run('ip', ['-n', r.ns, 'link', 'del', r.ifname]);
    const host: LabHost = { ...r, ip: N.real(octet), ip6: N.real6(octet), mac: mac(2, octet) };
    await plug(sw, servers, r.ns, { ifname: r.ifname, peer: r.peer, mac: host.mac, ip: host.ip, ip6: host.ip6! });
    await run('ip', ['-n', r.ns, 'route', 'add', 'default', 'via', N.routerServerSide]);
    await run('ip', ['-n', r.ns, '-6', 'route', 'add', 'default', 'via', N.routerServerSide6]);
    reals.push(host);
  }

  const d = lab.director;
  await run('ip', ['-n', d.ns, 'route', 'add', N.servers, 'via', N.routerClientSide]);
  await run('ip', ['-n', d.ns, '-6', 'route', 'add', N.servers6, 'via', N.routerClientSide6]);
  await run('ip', ['-n', d.ns, '-6', 'addr', 'add', `${lab.vip6}/128`, 'dev', d.ifname, 'nodad']);
  for (const a of N.laddrs4) await run('ip', ['-n', d.ns, 'addr', 'add', `${a}/32`, 'dev', d.ifname]);
  for (const a of N.laddrs6) await run('ip', ['-n', d.ns, '-6', 'addr', 'add', `${a}/128`, 'dev', d.ifname, 'nodad']);
  return { ...lab, reals, vip6: lab.vip6, routerNs };
}

export interface ToaServerOptions {
  /** The cgroup the TOA reader watches, as /proc/PID/cgroup names it, and its directory. */
  cgroup: { path: string; dir: string };
  port?: number;
}

/** Where a real server's setup keeps its state and pins in the lab. */
function rsDirs(lab: Lab, host: LabHost): string[] {
  return ['--pin-dir', path.join(lab.bpffs, host.name), '--state-dir', path.join(lab.dir, host.name)];
}

/** `xvs realserver setup|teardown --mode fullnat` for each VIP, inside the real server's namespace. */
export async function fullnatRealServer(lab: Lab, host: LabHost, vips: readonly string[], action: 'setup' | 'teardown', o: ToaServerOptions): Promise<string> {
  let out = '';
  for (const vip of vips) {
    out += await nsExec(host.ns, process.execPath, [bin('cli/xvs.js'), 'realserver', action, '--vip', vip, '--mode', 'fullnat',
      ...(action === 'setup' ? ['--cgroup', o.cgroup.path] : []), ...rsDirs(lab, host)]);
  }
  return out;
}

export interface RunningServer {
  stop(): Promise<void>;
}

/** lab/toa-httpd.ts in the real server's namespace and the reader's cgroup (entered before it listens). */
export async function startToaHttpd(lab: Lab, host: LabHost, name: string, o: ToaServerOptions): Promise<RunningServer> {
  const child = spawn('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec ip netns exec "$2" "$3" "$4" --name "$5" --port "$6" --pin-dir "$7" --state-dir "$8"',
    'sh', o.cgroup.dir, host.ns, process.execPath, bin('lab/toa-httpd.js'), name, String(o.port ?? 80),
    path.join(lab.bpffs, host.name), path.join(lab.dir, host.name)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  };
  await waitForLine(child, 'listening', `toa-httpd ${name} in ${host.ns}`, stop);
  return { stop };
}

function waitForLine(child: ChildProcess, line: string, what: string, stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const onExit = (code: number | null, sig: NodeJS.Signals | null): void => fail(`exited (${sig ?? code})`);
    const fail = (why: string): void => {
      clearTimeout(timer);
      child.removeListener('exit', onExit);
      void stop();
      reject(new XvsError('SYSTEM', `${what}: ${why}: ${err.replace(/\s+/g, ' ').trim()}`));
    };
    const timer = setTimeout(() => fail('not listening after 10 s'), 10_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { if (err.length < 4096) err += d; });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes(line)) {
        clearTimeout(timer);
        child.removeListener('exit', onExit);
        // Keep draining stdout so the child never blocks on a full pipe.
        child.stdout!.removeAllListeners('data').resume();
        resolve();
      }
    });
    child.once('exit', onExit);
  });
}

/** What one HTTP request through FULLNAT saw at both ends. */
export interface ToaAnswer {
  /** The client's own end of the connection. */
  local: { address: string; port: number };
  server: string;
  /** What the real server learnt: from the TOA ('toa') or, without one, the socket's peer ('peer'). */
  client: { via: string; address: string; port: number };
  /** The connection's peer at the real server: a local address of the director. */
  peer: { address: string; port: number };
}

const endpoint = (text: string): { address: string; port: number } => {
  const [address = '', port = ''] = text.trim().split(' ');
  return { address, port: Number(port) };
};

/** n HTTP requests from the client to http://VIP:port/, one connection each; what each end saw of each. */
export async function toaRequests(lab: Lab, vip: string, n: number, port = 80): Promise<ToaAnswer[]> {
  const url = `http://${isIPv6(vip) ? `[${vip}]` : vip}:${port}/`;
  const out: ToaAnswer[] = [];
  for (let done = 0; done < n;) {
    const k = Math.min(50, n - done);
    const text = await nsExec(lab.client.ns, 'curl', ['-s', '-g', '--fail', '--max-time', '5', '-H', 'Connection: close',
      '-w', '%{local_ip}|%{local_port}|%header{x-real-server}|%header{x-client}|%header{x-peer}\\n',
      ...Array.from({ length: k }, () => ['-o', '/dev/null', url]).flat()], { timeoutMs: 120_000 });
    for (const line of text.split('\n').filter(Boolean)) {
      const [ip = '', lport = '', server = '', client = '', peer = ''] = line.split('|');
      const [via = '', ...rest] = client.split(' ');
      out.push({ local: { address: ip, port: Number(lport) }, server, client: { via, ...endpoint(rest.join(' ')) }, peer: endpoint(peer) });
    }
    done += k;
  }
  return out;
}

/** An upload of `bytes` from the client whose first data segment is a full one (lab/upload.ts). */
export async function upload(lab: Lab, vip: string, bytes: number, port = 80): Promise<{ local: { address: string; port: number }; status: number; headers: Record<string, string> }> {
  const out = await nsExec(lab.client.ns, process.execPath, [bin('lab/upload.js'), '--host', vip, '--port', String(port), '--bytes', String(bytes),
    '--timeout-ms', '60000'], { timeoutMs: 90_000 });
  return JSON.parse(out) as { local: { address: string; port: number }; status: number; headers: Record<string, string> };
}

/**
 * The first frame of at least `minFrame` bytes to port 80 that `host`'s
 * interface receives while fn runs: its IP packet, or undefined when none
 * came (the connection went to another real server). Bounded: 10 s after fn.
 */
export async function firstLargeSegment<T>(hosts: readonly LabHost[], minFrame: number, fn: () => Promise<T>): Promise<{ result: T; packets: Map<string, Buffer> }> {
  const caps = hosts.map((h) => {
    const p = spawn('ip', ['netns', 'exec', h.ns, 'tcpdump', '-i', h.ifname, '-nn', '-x', '-c', '1', '-l', `tcp dst port 80 and greater ${minFrame}`],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const closed = new Promise<void>((resolve) => p.once('close', () => resolve()));
    const listening = new Promise<void>((resolve, reject) => {
      p.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; if (err.includes('listening')) resolve(); });
      p.once('exit', () => reject(new XvsError('SYSTEM', `tcpdump in ${h.ns}: ${err.trim()}`)));
    });
    return { h, p, closed, listening, out: () => out };
  });
  try {
    await Promise.all(caps.map((c) => Promise.race([c.listening, sleep(10_000).then(() => { throw new XvsError('SYSTEM', `tcpdump in ${c.h.ns} did not start`); })])));
    const result = await fn();
    const packets = new Map<string, Buffer>();
    // The host that got the connection has its frame; tcpdump exits after it.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !caps.some((c) => c.p.exitCode !== null)) await sleep(50);
    for (const c of caps) {
      if (c.p.exitCode === null) continue;
      await c.closed;
      const hex = c.out().split('\n').filter((l) => /^\s+0x[0-9a-f]+:/.test(l)).map((l) => l.replace(/^\s+0x[0-9a-f]+:\s+/, '').replace(/\s+/g, '')).join('');
      packets.set(c.h.name, Buffer.from(hex, 'hex'));
    }
    return { result, packets };
  } finally {
    for (const c of caps) {
      if (c.p.exitCode === null && c.p.signalCode === null) c.p.kill('SIGINT');
      await c.closed;
    }
  }
}
