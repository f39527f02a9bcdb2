// The namespace lab shared by tests, the demo and the bench. Every host is
// its own network namespace; a switch namespace holds the bridges; nothing
// is configured outside those namespaces except the lab's bpffs under /run.
//
// One-armed (the default): one bridged segment, 192.0.2.0/24, with the
// client (.100), the director (.1, eth0, VIP .80) and N real servers (.11..).
//
// Two-armed (`arms: 2`), a two-armed LVS-DR/TUN site:
//
//          client 198.51.100.100
//             │ eth0
//   ──────────┴──────────── br0: client segment, 198.51.100.0/24 ────────┐
//             │ eth0 .1, VIP .80/32                                     │ eth0 .254
//          director  (xvsd --interface eth0:client,eth1:server)       router (forwards)
//             │ eth1 192.0.2.1                                          │ eth1 .254
//   ──────────┴──────┬─────────┬── br1: server segment, 192.0.2.0/24 ───┘
//                    │ eth0    │ eth0
//                   rs1 .11   rs2 .12 ...   (default route via the router, 192.0.2.254)
//
// A client's packets reach the VIP on the director's client-side interface
// and leave by its server-side interface (XDP_REDIRECT through xvs_tx_ports)
// with that interface's MAC. The real servers answer from the VIP through
// their default gateway, the router, which reaches the client segment
// without the director: as at a real site, replies never cross the
// director (which in DR/TUN would not know what to do with them), and the
// router's rp_filter is off because it forwards packets whose source, the
// VIP, is on its other side. The segments are separate bridges, so ARP for
// the VIP is answered only where clients ask, and frames to the real
// servers can only be seen on the server segment.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { XvsError } from '../errors.js';
import { logger } from '../log.js';
import { BpfObject, attachXdp, ifIndex, withNetns } from '../loader/index.js';
import { bpfObject } from '../paths.js';

const log = logger('lab');

export const LAB_NET = {
  prefixLen: 24,
  director: '192.0.2.1',
  firstReal: 11,
  vip: '192.0.2.80',
  client: '192.0.2.100',
} as const;

/** The two-armed lab: the server segment is LAB_NET's (without client and VIP). */
export const LAB_NET_TWO_ARMED = {
  prefixLen: 24,
  /** The client segment. */
  client: '198.51.100.100',
  directorClientSide: '198.51.100.1',
  vip: '198.51.100.80',
  routerClientSide: '198.51.100.254',
  /** The server segment. */
  directorServerSide: LAB_NET.director,
  firstReal: LAB_NET.firstReal,
  routerServerSide: '192.0.2.254',
} as const;

/**
 * With `ipv6` (one-armed): one /64 on the same segment, each host's address
 * ending as its IPv4 one does (2001:db8::11 beside 192.0.2.11).
 */
export const LAB_NET6 = {
  prefixLen: 64,
  director: '2001:db8::1',
  vip: '2001:db8::80',
  client: '2001:db8::100',
  real: (octet: number): string => `2001:db8::${octet}`,
} as const;

// Last octets double as the last MAC byte, so a capture names the host; the
// byte before says the segment (0 the server or only segment, 1 the client segment).
const MAC_DIRECTOR = 0x01;
const MAC_CLIENT = 0x64;
const MAC_ROUTER = 0xfe;
const MAX_REALS = 50; // .11–.60 stays clear of the VIP (.80) and client (.100)

/** Each run's bpffs and owner file live here, not under /sys: `ip netns exec` mounts a fresh /sys per run. */
export const LAB_ROOT = '/run/xvs-lab';
const BRIDGE = 'br0';
/** The server segment of a two-armed lab. */
const BRIDGE_SERVERS = 'br1';
const HOST_IF = 'eth0';
const HOST_IF_SERVERS = 'eth1';

export interface LabHost {
  name: string;
  ns: string;
  ifname: string;
  ip: string;
  mac: string;
  /** The switch-side end of the host's veth, in the switch namespace. */
  peer: string;
  /** Its IPv6 address, in a lab made with `ipv6`. */
  ip6?: string;
}

export interface Lab {
  id: string;
  arms: 1 | 2;
  switchNs: string;
  client: LabHost;
  /** The director's interface facing the clients, where the VIP is (one-armed: its only one). */
  director: LabHost;
  /** The director's interface facing the real servers (one-armed: the same as director). */
  directorServerSide: LabHost;
  /** Two-armed: the router between the segments, the real servers' default gateway (its client-side and server-side legs). */
  router: { clientSide: LabHost; serverSide: LabHost } | undefined;
  /** What xvsd is given: --interface eth0 (one-armed) or eth0:client,eth1:server. */
  directorInterfaces: string[];
  reals: LabHost[];
  vip: string;
  /** The IPv6 VIP, in a lab made with `ipv6`. */
  vip6?: string;
  bpffs: string;
  /** /run/xvs-lab/ID: scratch space removed by down() (state files, captures). */
  dir: string;
  down(): Promise<void>;
}

export interface LabOptions {
  id?: string;
  reals?: number;
  /**
   * IPv6 is off by default so link-local chatter does not show up in captures
   * and counters. On, every host also has an address of LAB_NET6, usable at
   * once: no duplicate address detection (nodad, and accept_dad 0 for the
   * link-local address the kernel solicits neighbours from), no router
   * solicitations, and a bridge that floods multicast rather than snooping
   * it, so a neighbour solicitation always reaches the host it asks for.
   */
  ipv6?: boolean;
  /** 1 (default): one segment; 2: a client segment and a server segment (see the header). */
  arms?: 1 | 2;
}

export interface RunOptions {
  timeoutMs?: number;
  input?: string;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** execFile as a promise; failures carry the command and its stderr. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const timeout = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout, maxBuffer: 16 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const why = err.killed ? `timed out after ${timeout} ms` : oneLine(stderr) || oneLine(err.message);
      reject(new XvsError('SYSTEM', `${[cmd, ...args].join(' ')}: ${why}`, { detail: stderr, cause: err }));
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export function nsExec(ns: string, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

function runSync(cmd: string, args: readonly string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr ?? '';
    log.warn({ cmd: [cmd, ...args].join(' ') }, `cleanup step failed: ${oneLine(stderr) || String(e)}`);
    return null;
  }
}

function hexByte(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function labDir(id: string): string {
  return path.join(LAB_ROOT, id);
}

function nsBelongsTo(ns: string, id: string): boolean {
  return new RegExp(`^${id}-(sw|client|dir|rt|rs\\d+)$`).test(ns);
}

function listNamespaces(): string[] {
  const out = runSync('ip', ['netns', 'list']) ?? '';
  return out.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean);
}

function isMounted(dir: string): boolean {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  return lines.some((l) => l.split(' ')[4] === dir);
}

// pid plus kernel start time: a recycled pid does not look like the owner.
function procStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function writeOwner(dir: string): void {
  writeFileSync(path.join(dir, 'owner'), `${process.pid} ${procStart(process.pid)}\n`);
}

function ownerAlive(id: string): number | null {
  try {
    const [pid, start] = readFileSync(path.join(labDir(id), 'owner'), 'utf8').trim().split(' ');
    const n = Number(pid);
    return Number.isInteger(n) && procStart(n) === start ? n : null;
  } catch {
    return null;
  }
}

/** Synchronous so the 'exit' handler can use it; every step is best effort. */
function destroyLab(id: string): void {
  const namespaces = listNamespaces().filter((ns) => nsBelongsTo(ns, id));
  for (const ns of namespaces) {
    // A process left in a namespace would keep it, and its veth, alive after `ip netns del`.
    const pids = (runSync('ip', ['netns', 'pids', ns]) ?? '').split('\n').map(Number);
    for (const pid of pids) {
      if (pid > 0 && pid !== process.pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }
  for (const ns of namespaces) runSync('ip', ['netns', 'del', ns]);
  const dir = labDir(id);
  const bpffs = path.join(dir, 'bpffs');
  for (let i = 0; i < 3 && existsSync(bpffs) && isMounted(bpffs); i++) {
    if (runSync('umount', [bpffs]) === null) runSync('umount', ['-l', bpffs]);
  }
  if (existsSync(bpffs) && isMounted(bpffs)) {
    log.warn({ bpffs }, 'bpffs still mounted; leaving its directory');
    return;
  }
  rmSync(dir, { recursive: true, force: true });
}

interface LiveLab {
  aux: BpfObject | null;
}
const live = new Map<string, LiveLab>();
let handlersInstalled = false;

function destroyAllLive(): void {
  for (const [id, l] of live) {
    try {
      l.aux?.close();
    } catch {
      // the process is going away anyway
    }
    destroyLab(id);
  }
  live.clear();
}

// A failing assertion, an uncaught error or ^C must not leave namespaces behind.
function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', destroyAllLive);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      // Someone else handles this signal and decides whether to exit; 'exit' still cleans up.
      if (process.listenerCount(sig) > 1) return;
      destroyAllLive();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/** Removes labs whose owning process is gone (namespaces, bpffs mount, directory). */
export async function sweepStaleLabs(prefix = 'xvs'): Promise<void> {
  const ids = new Set<string>();
  const idOf = new RegExp(`^(${prefix}[a-z0-9]*)-(sw|client|dir|rt|rs\\d+)$`);
  for (const ns of listNamespaces()) {
    const m = idOf.exec(ns);
    if (m?.[1]) ids.add(m[1]);
  }
  if (existsSync(LAB_ROOT)) {
    for (const d of readdirSync(LAB_ROOT)) if (d.startsWith(prefix)) ids.add(d);
  }
  for (const id of ids) {
    if (live.has(id)) continue;
    const owner = ownerAlive(id);
    if (owner !== null && owner !== process.pid) continue;
    log.info({ id }, 'removing stale lab');
    destroyLab(id);
  }
}

/** One interface of one host: a veth whose other end is on a bridge of the switch. */
interface LinkSpec {
  name: string;
  nsSuffix: string;
  ifname: string;
  ip: string;
  mac: string;
  bridge: string;
  peer: string;
  /** One-armed with `ipv6`: the host's IPv6 address too. */
  ip6?: string;
}

const labMac = (segment: number, byte: number): string => `02:00:00:00:${hexByte(segment)}:${hexByte(byte)}`;

function linkSpecs(reals: number, arms: 1 | 2): LinkSpec[] {
  const realLinks: LinkSpec[] = [];
  for (let i = 1; i <= reals; i++) {
    const octet = LAB_NET.firstReal + i - 1;
    realLinks.push({
      name: `rs${i}`, nsSuffix: `rs${i}`, ifname: HOST_IF, ip: `192.0.2.${octet}`, mac: labMac(0, octet),
      bridge: arms === 2 ? BRIDGE_SERVERS : BRIDGE, peer: `sw-rs${i}`, ...(arms === 1 ? { ip6: LAB_NET6.real(octet) } : {}),
    });
  }
  if (arms === 1) {
    return [
      { name: 'client', nsSuffix: 'client', ifname: HOST_IF, ip: LAB_NET.client, ip6: LAB_NET6.client, mac: labMac(0, MAC_CLIENT), bridge: BRIDGE, peer: 'sw-client' },
      { name: 'director', nsSuffix: 'dir', ifname: HOST_IF, ip: LAB_NET.director, ip6: LAB_NET6.director, mac: labMac(0, MAC_DIRECTOR), bridge: BRIDGE, peer: 'sw-director' },
      ...realLinks,
    ];
  }
  const N = LAB_NET_TWO_ARMED;
  return [
    { name: 'client', nsSuffix: 'client', ifname: HOST_IF, ip: N.client, mac: labMac(1, MAC_CLIENT), bridge: BRIDGE, peer: 'sw-client' },
    { name: 'director', nsSuffix: 'dir', ifname: HOST_IF, ip: N.directorClientSide, mac: labMac(1, MAC_DIRECTOR), bridge: BRIDGE, peer: 'sw-director' },
    { name: 'director', nsSuffix: 'dir', ifname: HOST_IF_SERVERS, ip: N.directorServerSide, mac: labMac(0, MAC_DIRECTOR), bridge: BRIDGE_SERVERS, peer: 'sw-director1' },
    { name: 'router', nsSuffix: 'rt', ifname: HOST_IF, ip: N.routerClientSide, mac: labMac(1, MAC_ROUTER), bridge: BRIDGE, peer: 'sw-router' },
    { name: 'router', nsSuffix: 'rt', ifname: HOST_IF_SERVERS, ip: N.routerServerSide, mac: labMac(0, MAC_ROUTER), bridge: BRIDGE_SERVERS, peer: 'sw-router1' },
    ...realLinks,
  ];
}

async function addSwitchPort(id: string, switchNs: string, spec: LinkSpec, ipv6: boolean): Promise<LabHost> {
  const host: LabHost = {
    name: spec.name, ns: `${id}-${spec.nsSuffix}`, ifname: spec.ifname, ip: spec.ip, mac: spec.mac, peer: spec.peer,
    ...(ipv6 && spec.ip6 ? { ip6: spec.ip6 } : {}),
  };
  const h = ['-n', host.ns];
  const sw = ['-n', switchNs];
  // Created in place: no interface ever exists in the root namespace.
  await run('ip', [...sw, 'link', 'add', host.peer, 'type', 'veth', 'peer', 'name', host.ifname, 'netns', host.ns]);
  await run('ip', [...h, 'link', 'set', host.ifname, 'address', host.mac]);
  await run('ip', [...h, 'addr', 'add', `${host.ip}/${LAB_NET.prefixLen}`, 'dev', host.ifname]);
  if (host.ip6) await run('ip', [...h, '-6', 'addr', 'add', `${host.ip6}/${LAB_NET6.prefixLen}`, 'dev', host.ifname, 'nodad']);
  await run('ip', [...h, 'link', 'set', host.ifname, 'up']);
  await run('ip', [...sw, 'link', 'set', host.peer, 'master', spec.bridge]);
  await run('ip', [...sw, 'link', 'set', host.peer, 'up']);
  // Frames forwarded by XDP would otherwise keep CHECKSUM_PARTIAL and be dropped by the receiver.
  await nsExec(host.ns, 'ethtool', ['-K', host.ifname, 'tx', 'off']);
  await nsExec(switchNs, 'ethtool', ['-K', host.peer, 'tx', 'off']);
  return host;
}

/** The router forwards between the segments; the real servers route through it. */
async function wireTwoArmed(router: LabHost, reals: readonly LabHost[]): Promise<void> {
  // rp_filter off: replies from the VIP arrive on the server side while the VIP's subnet is on the client side.
  await nsExec(router.ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0',
    `net.ipv4.conf.${HOST_IF}.rp_filter=0`, `net.ipv4.conf.${HOST_IF_SERVERS}.rp_filter=0`]);
  for (const r of reals) await run('ip', ['-n', r.ns, 'route', 'add', 'default', 'via', LAB_NET_TWO_ARMED.routerServerSide, 'dev', r.ifname]);
}

async function prepareNamespace(ns: string, ipv6: boolean): Promise<void> {
  await run('ip', ['netns', 'add', ns]);
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  if (!ipv6) {
    await nsExec(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    return;
  }
  // Before the veth arrives, which takes its settings from `default`: its
  // link-local address is usable at once (the kernel sends no neighbour
  // solicitation from a tentative one) and it asks for no router.
  await nsExec(ns, 'sysctl', ['-qw', ...['all', 'default'].flatMap((c) => [
    `net.ipv6.conf.${c}.accept_dad=0`, `net.ipv6.conf.${c}.router_solicitations=0`, `net.ipv6.conf.${c}.accept_ra=0`])]);
}

// XDP_TX or XDP_REDIRECT out of a veth reaches the peer only if the peer runs an XDP program.
function attachPeerPass(switchNs: string, peers: readonly string[]): BpfObject {
  const objectPath = bpfObject('xvs_aux');
  if (!existsSync(objectPath)) throw new XvsError('OBJECT_MISSING', `${objectPath} not found`);
  const aux = BpfObject.open({ objectPath });
  try {
    aux.load();
    const fd = aux.program('xdp_pass').fd;
    withNetns(switchNs, () => { for (const p of peers) attachXdp(ifIndex(p), fd, 'native'); });
    return aux;
  } catch (e) {
    aux.close();
    throw e;
  }
}

export interface LinkEnd {
  host: LabHost;
  ifname: string;
  ip: string;
  mac: string;
}

/**
 * A second, direct link between two lab hosts (a director with two paths
 * to a real server): a veth pair created in place, addresses on both ends,
 * checksum offload off as on the switch ports, and xdp_pass on both ends so
 * frames redirected or sent back by XDP reach the other side.
 */
export async function addLink(lab: Lab, a: Omit<LinkEnd, 'host'> & { host: LabHost }, b: Omit<LinkEnd, 'host'> & { host: LabHost }, prefixLen: number): Promise<void> {
  const aux = live.get(lab.id)?.aux;
  if (!aux) throw new XvsError('BAD_ARGUMENT', `lab ${lab.id} is not up in this process`);
  await run('ip', ['-n', a.host.ns, 'link', 'add', a.ifname, 'address', a.mac, 'type', 'veth', 'peer', 'name', b.ifname, 'address', b.mac, 'netns', b.host.ns]);
  for (const end of [a, b]) {
    await run('ip', ['-n', end.host.ns, 'addr', 'add', `${end.ip}/${prefixLen}`, 'dev', end.ifname]);
    await run('ip', ['-n', end.host.ns, 'link', 'set', end.ifname, 'up']);
    await nsExec(end.host.ns, 'ethtool', ['-K', end.ifname, 'tx', 'off']);
    const fd = aux.program('xdp_pass').fd;
    withNetns(end.host.ns, () => attachXdp(ifIndex(end.ifname), fd, 'native'));
  }
}

export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  const id = opts.id ?? `xvs${process.pid % 100000}`;
  const reals = opts.reals ?? 2;
  const arms = opts.arms ?? 1;
  // The longest namespace-derived name must stay readable; veth names do not depend on it.
  if (!/^[a-z][a-z0-9]{0,15}$/.test(id)) throw new XvsError('BAD_ARGUMENT', `lab id "${id}": use 1-16 lowercase letters and digits`);
  if (!Number.isInteger(reals) || reals < 1 || reals > MAX_REALS) {
    throw new XvsError('BAD_ARGUMENT', `lab reals ${reals}: between 1 and ${MAX_REALS}`);
  }
  if (arms !== 1 && arms !== 2) throw new XvsError('BAD_ARGUMENT', `lab arms ${String(arms)}: 1 or 2`);
  if (live.has(id)) throw new XvsError('BAD_ARGUMENT', `lab ${id} is already up in this process`);
  const other = ownerAlive(id);
  if (other !== null && other !== process.pid) throw new XvsError('BAD_ARGUMENT', `lab ${id} belongs to running process ${other}`);

  await sweepStaleLabs();
  destroyLab(id);
  installExitHandlers();
  const state: LiveLab = { aux: null };
  live.set(id, state);

  const dir = labDir(id);
  const bpffs = path.join(dir, 'bpffs');
  const switchNs = `${id}-sw`;
  let downed = false;
  const down = async (): Promise<void> => {
    if (downed) return;
    downed = true;
    try {
      state.aux?.close();
    } catch (e) {
      log.warn({ id, err: String(e) }, 'closing the aux object failed');
    }
    try {
      destroyLab(id);
    } catch (e) {
      log.warn({ id, err: String(e) }, 'lab teardown failed');
    }
    live.delete(id);
  };

  try {
    mkdirSync(bpffs, { recursive: true });
    writeOwner(dir); // before any namespace, so a concurrent sweep sees an owner
    await run('mount', ['-t', 'bpf', 'bpf', bpffs]);

    const ipv6 = opts.ipv6 ?? false;
    if (ipv6 && arms === 2) throw new XvsError('UNSUPPORTED', 'the two-armed lab is IPv4 only');
    const specs = linkSpecs(reals, arms);
    // The switch only bridges: it needs no addresses of its own, in either family.
    await prepareNamespace(switchNs, false);
    await Promise.all([...new Set(specs.map((s) => s.nsSuffix))].map((suffix) => prepareNamespace(`${id}-${suffix}`, ipv6)));
    for (const bridge of new Set(specs.map((s) => s.bridge))) {
      await run('ip', ['-n', switchNs, 'link', 'add', bridge, 'type', 'bridge', ...(ipv6 ? ['mcast_snooping', '0'] : [])]);
      await run('ip', ['-n', switchNs, 'link', 'set', bridge, 'up']);
    }
    const links = await Promise.all(specs.map((s) => addSwitchPort(id, switchNs, s, ipv6)));
    const of = (name: string): LabHost[] => links.filter((l) => l.name === name);
    const [client] = of('client');
    const [director, directorServers] = of('director');
    const [routerClients, routerServers] = of('router');
    const realHosts = links.filter((l) => l.name.startsWith('rs'));
    if (!client || !director) throw new Error('unreachable: host list');
    const directorServerSide = directorServers ?? director;
    const router = routerClients && routerServers ? { clientSide: routerClients, serverSide: routerServers } : undefined;
    if (router) await wireTwoArmed(router.clientSide, realHosts);
    state.aux = attachPeerPass(switchNs, [...new Set([director.peer, directorServerSide.peer])]);
    log.debug({ id, reals, arms, ipv6 }, 'lab up');
    return {
      id, arms, switchNs, client, director, directorServerSide, router, reals: realHosts, bpffs, dir, down,
      vip: arms === 2 ? LAB_NET_TWO_ARMED.vip : LAB_NET.vip,
      ...(ipv6 ? { vip6: LAB_NET6.vip } : {}),
      directorInterfaces: arms === 2 ? [`${director.ifname}:client`, `${directorServerSide.ifname}:server`] : [director.ifname],
    };
  } catch (e) {
    await down();
    throw e;
  }
}

/**
 * The lab as its IPv6 side: the same namespaces, hosts and down(), with the
 * IPv6 VIP as `vip` and each host's IPv6 address as `ip`, for code written
 * against a lab's addresses (lab/scenario.ts) to run over IPv6.
 */
export function overIpv6(lab: Lab): Lab {
  const six = (h: LabHost): LabHost => {
    if (!h.ip6) throw new XvsError('BAD_ARGUMENT', `lab ${lab.id} was made without ipv6`);
    return { ...h, ip: h.ip6 };
  };
  if (!lab.vip6) throw new XvsError('BAD_ARGUMENT', `lab ${lab.id} was made without ipv6`);
  return { ...lab, vip: lab.vip6, client: six(lab.client), director: six(lab.director), reals: lab.reals.map(six) };
}
