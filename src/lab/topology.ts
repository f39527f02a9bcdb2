// The namespace lab shared by tests, the demo and the bench: one bridged L2
// segment (192.0.2.0/24, a documentation range) with a client, a director
// and N real servers, each in its own network namespace. Nothing here is
// configured outside those namespaces except the lab's bpffs under /run.
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

/**
 * With `ipv6`: one /64 on the same segment, each host's address ending as
 * its IPv4 one does (2001:db8::11 beside 192.0.2.11).
 */
export const LAB_NET6 = {
  prefixLen: 64,
  director: '2001:db8::1',
  vip: '2001:db8::80',
  client: '2001:db8::100',
  real: (octet: number): string => `2001:db8::${octet}`,
} as const;

// Last octets double as the last MAC byte, so a capture names the host.
const MAC_DIRECTOR = 0x01;
const MAC_CLIENT = 0x64;
const MAX_REALS = 50; // .11–.60 stays clear of the VIP (.80) and client (.100)

/** Each run's bpffs and owner file live here, not under /sys: `ip netns exec` mounts a fresh /sys per run. */
export const LAB_ROOT = '/run/xvs-lab';
const BRIDGE = 'br0';
const HOST_IF = 'eth0';

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
  switchNs: string;
  client: LabHost;
  director: LabHost;
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
  return new RegExp(`^${id}-(sw|client|dir|rs\\d+)$`).test(ns);
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
  const idOf = new RegExp(`^(${prefix}[a-z0-9]*)-(sw|client|dir|rs\\d+)$`);
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

interface HostSpec {
  name: string;
  nsSuffix: string;
  ip: string;
  ip6: string;
  macByte: number;
}

function hostSpecs(reals: number): HostSpec[] {
  const specs: HostSpec[] = [
    { name: 'client', nsSuffix: 'client', ip: LAB_NET.client, ip6: LAB_NET6.client, macByte: MAC_CLIENT },
    { name: 'director', nsSuffix: 'dir', ip: LAB_NET.director, ip6: LAB_NET6.director, macByte: MAC_DIRECTOR },
  ];
  for (let i = 1; i <= reals; i++) {
    const octet = LAB_NET.firstReal + i - 1;
    specs.push({ name: `rs${i}`, nsSuffix: `rs${i}`, ip: `192.0.2.${octet}`, ip6: LAB_NET6.real(octet), macByte: octet });
  }
  return specs;
}

async function addHost(id: string, switchNs: string, spec: HostSpec, ipv6: boolean): Promise<LabHost> {
  const host: LabHost = {
    name: spec.name,
    ns: `${id}-${spec.nsSuffix}`,
    ifname: HOST_IF,
    ip: spec.ip,
    mac: `02:00:00:00:00:${hexByte(spec.macByte)}`,
    peer: `sw-${spec.name}`,
    ...(ipv6 ? { ip6: spec.ip6 } : {}),
  };
  const h = ['-n', host.ns];
  const sw = ['-n', switchNs];
  // Created in place: no interface ever exists in the root namespace.
  await run('ip', [...sw, 'link', 'add', host.peer, 'type', 'veth', 'peer', 'name', HOST_IF, 'netns', host.ns]);
  await run('ip', [...h, 'link', 'set', HOST_IF, 'address', host.mac]);
  await run('ip', [...h, 'addr', 'add', `${host.ip}/${LAB_NET.prefixLen}`, 'dev', HOST_IF]);
  if (host.ip6) await run('ip', [...h, '-6', 'addr', 'add', `${host.ip6}/${LAB_NET6.prefixLen}`, 'dev', HOST_IF, 'nodad']);
  await run('ip', [...h, 'link', 'set', HOST_IF, 'up']);
  await run('ip', [...sw, 'link', 'set', host.peer, 'master', BRIDGE]);
  await run('ip', [...sw, 'link', 'set', host.peer, 'up']);
  // Frames forwarded by XDP would otherwise keep CHECKSUM_PARTIAL and be dropped by the receiver.
  await nsExec(host.ns, 'ethtool', ['-K', HOST_IF, 'tx', 'off']);
  await nsExec(switchNs, 'ethtool', ['-K', host.peer, 'tx', 'off']);
  return host;
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

// XDP_TX on a veth reaches the peer only if the peer runs an XDP program.
function attachPeerPass(switchNs: string, peer: string): BpfObject {
  const objectPath = bpfObject('xvs_aux');
  if (!existsSync(objectPath)) throw new XvsError('OBJECT_MISSING', `${objectPath} not found`);
  const aux = BpfObject.open({ objectPath });
  try {
    aux.load();
    const fd = aux.program('xdp_pass').fd;
    withNetns(switchNs, () => attachXdp(ifIndex(peer), fd, 'native'));
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
  // The longest namespace-derived name must stay readable; veth names do not depend on it.
  if (!/^[a-z][a-z0-9]{0,15}$/.test(id)) throw new XvsError('BAD_ARGUMENT', `lab id "${id}": use 1-16 lowercase letters and digits`);
  if (!Number.isInteger(reals) || reals < 1 || reals > MAX_REALS) {
    throw new XvsError('BAD_ARGUMENT', `lab reals ${reals}: between 1 and ${MAX_REALS}`);
  }
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
    const specs = hostSpecs(reals);
    // The switch only bridges: it needs no addresses of its own, in either family.
    await prepareNamespace(switchNs, false);
    await Promise.all(specs.map((s) => prepareNamespace(`${id}-${s.nsSuffix}`, ipv6)));
    await run('ip', ['-n', switchNs, 'link', 'add', BRIDGE, 'type', 'bridge', ...(ipv6 ? ['mcast_snooping', '0'] : [])]);
    await run('ip', ['-n', switchNs, 'link', 'set', BRIDGE, 'up']);
    const hosts = await Promise.all(specs.map((s) => addHost(id, switchNs, s, ipv6)));
    const [client, director, ...realHosts] = hosts;
    if (!client || !director) throw new Error('unreachable: host list');
    state.aux = attachPeerPass(switchNs, director.peer);
    log.debug({ id, reals, ipv6 }, 'lab up');
    return { id, switchNs, client, director, reals: realHosts, vip: LAB_NET.vip, ...(ipv6 ? { vip6: LAB_NET6.vip } : {}), bpffs, dir, down };
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
