// What a Linux real server needs for LVS-DR and LVS-TUN (LVS-NAT: nat.ts): the VIP on lo so the
// kernel accepts packets addressed to it, ARP settings so the host never
// answers or announces an IPv4 VIP (the director owns it on the wire), and
// for TUN the xdp_decap program, which replaces the tunnel modules (IPIP,
// SIT, ip6_tunnel, fou for GUE, ip_gre), plus rp_filter off for an IPv4 VIP. FULLNAT needs none
// of that (the director talks to the real server's own address from one of
// its own), only the client's address back: the TOA reader (toa-reader.ts)
// on a cgroup. Everything changed is recorded so teardown can put it back
// exactly. All of it belongs to one network namespace, so the record does
// too: by default it lives under a directory named for the namespace
// (sys/netns.ts).
//
// An IPv6 VIP needs no sysctl in place of arp_ignore/arp_announce: Linux
// answers a neighbour solicitation only for an address of the interface it
// arrived on (ndisc_recv_ns looks the target up on that device, strictly),
// so a VIP on lo is never claimed on the wire; and it solicits neighbours
// from an address of the outgoing interface, its link-local one when the
// packet's source (the VIP) is not there, so it never announces the VIP
// either. test/realserver-ipv6.test.ts shows both in a namespace. What it does
// need is that link-local address: without one the kernel sends no
// solicitation for a reply from the VIP at all, so setup says so.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import path from 'node:path';
import { XvsError, isXvsError } from '../errors.js';
import { logger } from '../log.js';
import { BpfObject, attachXdp, detachXdp, ifIndex, xdpProgId } from '../loader/index.js';
import { DECAP_AF, FAMILY } from '../maps/abi.js';
import { addr16ToIp, ipToAddr16 } from '../maps/codec.js';
import { mapFromId, type RawMap } from '../maps/map.js';
import { bpfObject } from '../paths.js';
import { ensurePinDir } from '../sys/bpffs.js';
import { checkCgroupPath } from '../sys/cgroupfs.js';
import { decapTunnelOf, decapTunnelText, GUE_PORTS_MAP, guePorts, openGuePorts, syncGuePorts, type DecapTunnel } from './decap-ports.js';
import { directorInterface, natFamily, natRouteAlive, restoreRoutes, routeViaDirector, type NatFamily, type NatRoute } from './nat.js';
import { netnsInode } from '../sys/netns.js';
import { attachToaReader, checkTableSize, currentCookie, detachToaReader, toaReaderAttached, type ToaReaderState } from './toa-reader.js';

const log = logger('realserver');

export interface RealServerOptions {
  vip: string;
  mode: 'dr' | 'tun' | 'nat' | 'fullnat';
  /** NAT: the director's address on the real servers' side, the default gateway to set. */
  director?: string;
  interface?: string;
  /** FULLNAT: the cgroup (as /proc/PID/cgroup names it) whose connections the TOA reader sees; default "/". */
  cgroup?: string;
  /** FULLNAT: connections the TOA reader's map holds (default XVS_TOA_TABLE_DEFAULT). */
  toaTableSize?: number;
  /** Default: PIN_ROOT/netns-INODE. */
  pinDir?: string;
  /** Default: STATE_ROOT/netns-INODE. */
  stateDir?: string;
  xdpMode?: 'native' | 'generic';
  /** TUN: the tunnel the director sends (--tun-type, default ipip); GUE arrives on UDP port tunPort. */
  tunType?: 'ipip' | 'gue' | 'gre';
  tunPort?: number;
}

export const REALSERVER_DEFAULTS = {
  pinRoot: '/sys/fs/bpf/xvs-rs',
  // /run, not /sys: `ip netns exec` gives every run a fresh /sys, /run stays.
  stateRoot: '/run/xvs',
  stateFile: 'realserver.json',
  xdpMode: 'native',
} as const;

/** This network namespace's directory under each default root. */
function netnsDir(root: string): string {
  return path.join(root, `netns-${netnsInode()}`);
}

const DECAP_PROG = 'xdp_decap';
const DECAP_MAP = 'xvs_decap_vips';
// The label marks the address as ours, even after a setup that died before saving state.
const LO_LABEL = 'lo:xvs';

type Mode = RealServerOptions['mode'];
type XdpMode = NonNullable<RealServerOptions['xdpMode']>;

type VipState =
  /** TUN: GUE's port or GRE; absent for IPIP (and DR). */
  | { mode: 'dr' | 'tun'; interface: string; tunnel?: DecapTunnel }
  /** NAT: the gateway it needs. */
  | { mode: 'nat'; interface: string; director: string }
  | { mode: 'fullnat'; cgroup: string };

// Kernel ids, not pins, find the running decap: a pin lives as long as its
// bpffs, which under `ip netns exec` is the one command that mounted it.
interface DecapState {
  interface: string;
  ifindex: number;
  progId: number;
  mapId: number;
  xdpMode: XdpMode;
  pinDir: string;
}

// 3: FULLNAT VIPs and the TOA reader. A version 2 file reads as one without them.
const STATE_VERSION = 3;

interface State {
  version: typeof STATE_VERSION;
  /** The network namespace the state describes (sys/netns.ts). */
  netns: number;
  vips: Record<string, VipState>;
  /** Sysctl values from before xvs touched them, keyed `DEV/NAME` (under net/ipv4/conf). */
  saved: Record<string, string>;
  decap: DecapState | null;
  toa: ToaReaderState | null;
  /** NAT: the default route set per family while a NAT VIP of it is set up. */
  natRoutes?: Partial<Record<NatFamily, NatRoute>>;
}

type Undo = () => void | Promise<void>;

interface Ctx {
  lines: string[];
  undo: Undo[];
}

function message(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();
}

function sh(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 15_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new XvsError('SYSTEM', `${cmd} ${args.join(' ')}: ${message(stderr || err.message)}`));
      else resolve(stdout);
    });
  });
}

/** The VIP in the one spelling the state file and the maps use (IPv6 compressed, lower case). */
function canonicalVip(text: string): string {
  if (isIPv4(text)) return text;
  if (isIPv6(text) && !text.includes('%')) return addr16ToIp(ipToAddr16(text).bytes, FAMILY.inet6);
  throw new XvsError('BAD_ADDRESS', `VIP "${text}" is not an IPv4 or IPv6 address`);
}

function validate(o: RealServerOptions): { vip: string; mode: Mode; xdpMode: XdpMode; tunnel: DecapTunnel | undefined } {
  const vip = canonicalVip(String(o.vip ?? '').trim());
  if (o.mode !== 'dr' && o.mode !== 'tun' && o.mode !== 'nat' && o.mode !== 'fullnat') {
    throw new XvsError('BAD_ARGUMENT', `mode "${String(o.mode)}": use dr, tun, nat or fullnat`);
  }
  if (o.cgroup !== undefined) checkCgroupPath(o.cgroup);
  if (o.toaTableSize !== undefined) checkTableSize(o.toaTableSize);
  if (o.director !== undefined) {
    if (o.mode !== 'nat') throw new XvsError('BAD_ARGUMENT', '--director is for NAT real servers only');
    if (!isIPv4(o.director) && !isIPv6(o.director)) throw new XvsError('BAD_ADDRESS', `director "${o.director}" is not an IPv4 or IPv6 address`);
    if (natFamily(o.director) !== natFamily(vip)) {
      throw new XvsError('BAD_ADDRESS', `director ${o.director} and VIP ${vip} are of different families; NAT keeps the family`);
    }
  }
  const xdpMode = o.xdpMode ?? REALSERVER_DEFAULTS.xdpMode;
  if (xdpMode !== 'native' && xdpMode !== 'generic') throw new XvsError('BAD_ARGUMENT', `xdp mode "${String(xdpMode)}": use native or generic`);
  if (o.interface !== undefined && !/^[^/\s]{1,15}$/.test(o.interface)) {
    throw new XvsError('NO_INTERFACE', `"${o.interface}" is not an interface name`);
  }
  const tunnel = decapTunnelOf(o.mode, o.tunType, o.tunPort);
  if (process.geteuid?.() !== 0) throw new XvsError('NOT_ROOT', 'real server setup changes addresses and sysctls');
  return { vip, mode: o.mode, xdpMode, tunnel };
}

interface StateLocation {
  file: string;
  /** The per-namespace default directory, removed once empty. */
  ownDir: boolean;
}

function stateLocation(o: { stateDir?: string | undefined }): StateLocation {
  const dir = o.stateDir ?? netnsDir(REALSERVER_DEFAULTS.stateRoot);
  return { file: path.join(dir, REALSERVER_DEFAULTS.stateFile), ownDir: o.stateDir === undefined };
}

const emptyState = (): State => ({ version: STATE_VERSION, netns: netnsInode(), vips: {}, saved: {}, decap: null, toa: null });
const isEmpty = (s: State): boolean => Object.keys(s.vips).length === 0 && Object.keys(s.saved).length === 0 && !s.decap && !s.toa
  && Object.keys(s.natRoutes ?? {}).length === 0;

function readState(file: string): State {
  if (!existsSync(file)) return emptyState();
  let s: State;
  try {
    s = JSON.parse(readFileSync(file, 'utf8')) as State;
    if (typeof s.vips !== 'object' || typeof s.saved !== 'object') throw new Error('unknown layout');
  } catch (e) {
    throw new XvsError('SYSTEM', `state file ${file} is unreadable (${message(e)}); fix or remove it`);
  }
  if ((s.version as number) === 2) s = { ...s, version: STATE_VERSION, toa: null };
  if (s.version !== STATE_VERSION) {
    throw new XvsError('SYSTEM', `state file ${file} has layout version ${String(s.version)}, this xvs reads ${STATE_VERSION}`,
      { hint: 'tear down with the xvs that set it up, or remove the file' });
  }
  const here = netnsInode();
  if (s.netns !== here) {
    throw new XvsError('SYSTEM', `state file ${file} describes network namespace net:[${String(s.netns)}], not this one (net:[${here}])`,
      { hint: 'every network namespace keeps its own state: leave out --state-dir for the default, or remove the file if that namespace is gone' });
  }
  return s;
}

function decapAttached(d: DecapState): boolean {
  try {
    return xdpProgId(d.ifindex) === d.progId;
  } catch {
    return false; // the interface is gone, and the program with it
  }
}

/**
 * The state, or an empty one when the file describes a namespace that is
 * gone: a namespace deleted without teardown leaves its file behind, and the
 * kernel hands its inode to a later namespace. Nothing xvs put in the
 * namespace (a VIP on lo, the decap program) is there then.
 */
async function loadState(loc: StateLocation, lines: string[]): Promise<State> {
  const s = readState(loc.file);
  if (isEmpty(s)) return s;
  let why = 'none of its VIPs is on lo';
  if (s.toa) {
    // The cookie settles it: no later namespace gets this one's.
    if (s.toa.netnsCookie === currentCookie()) return s;
    why = 'its TOA reader records another network namespace';
  } else {
    if (s.decap && decapAttached(s.decap)) return s;
    const onLo = await loVips();
    if (Object.keys(s.vips).some((v) => onLo.has(v))) return s;
    for (const n of Object.values(s.natRoutes ?? {})) if (await natRouteAlive(n)) return s;
  }
  log.warn({ file: loc.file, vips: Object.keys(s.vips) }, 'state file describes a network namespace that is gone; ignoring it');
  lines.push(`ignored ${loc.file}: ${why}, it belongs to a network namespace that is gone`);
  // A reader stays on its cgroup after its namespace goes; it records nothing any more, but holds its map.
  if (s.toa) {
    try {
      await detachToaReader(s.toa, lines);
    } catch (e) {
      lines.push(`could not detach that namespace's TOA reader: ${message(e)}`);
    }
  }
  rmSync(loc.file, { force: true });
  return emptyState();
}

function saveState(loc: StateLocation, s: State): void {
  const { file } = loc;
  if (isEmpty(s)) {
    rmSync(file, { force: true });
    if (loc.ownDir) removeIfEmpty(path.dirname(file));
    return;
  }
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`);
  renameSync(tmp, file);
}

function prefixLen(dst: string): number {
  if (dst === 'default') return 0;
  const slash = dst.indexOf('/');
  return slash < 0 ? (isIPv6(dst) ? 128 : 32) : Number(dst.slice(slash + 1));
}

const v6 = (vip: string): boolean => isIPv6(vip);
const hostPrefix = (vip: string): string => `${vip}/${v6(vip) ? 128 : 32}`;

// Main table only: once the VIP is on lo, `ip route get` answers "lo".
async function routeDevice(vip: string): Promise<string> {
  const out = await sh('ip', ['-j', v6(vip) ? '-6' : '-4', 'route', 'show', 'table', 'main', 'match', hostPrefix(vip)]);
  const routes = (out.trim() ? JSON.parse(out) : []) as Array<{ dst: string; dev?: string }>;
  const best = routes
    .filter((r) => r.dev && r.dev !== 'lo')
    .sort((a, b) => prefixLen(b.dst) - prefixLen(a.dst))[0];
  if (!best?.dev) throw new XvsError('NO_INTERFACE', `no route towards ${vip} names an interface; pass --interface`);
  return best.dev;
}

function checkInterface(name: string): number {
  try {
    const idx = ifIndex(name);
    if (idx > 0) return idx;
  } catch (e) {
    if (isXvsError(e) && e.code === 'NO_INTERFACE') throw e;
  }
  throw new XvsError('NO_INTERFACE', `interface ${name} does not exist`);
}

// IPv4 keys are DEV/NAME; an IPv6 one (NAT's accept_redirects) is ipv6:DEV/NAME.
const sysctlAt = (key: string): [string, string] => (key.startsWith('ipv6:') ? ['ipv6', key.slice(5)] : ['ipv4', key]);
const sysctlPath = (key: string): string => `/proc/sys/net/${sysctlAt(key)[0]}/conf/${sysctlAt(key)[1]}`;
const sysctlName = (key: string): string => `net.${sysctlAt(key)[0]}.conf.${sysctlAt(key)[1].replace('/', '.')}`;

// Per device: the kernel uses max(all, dev) for arp_ignore, arp_announce and
// rp_filter. IPv4 VIPs only: IPv6 has no ARP, and no rp_filter sysctl.
function wantedSysctls(vips: Record<string, VipState>): Map<string, string> {
  const want = new Map<string, string>();
  for (const [vip, v] of Object.entries(vips)) {
    if (v.mode === 'fullnat') continue;
    if (v.mode === 'nat') {
      // A host takes redirects when all or the interface says so (IPv4); IPv6 per interface.
      for (const dev of v6(vip) ? [v.interface] : ['all', v.interface]) want.set(`${v6(vip) ? 'ipv6:' : ''}${dev}/accept_redirects`, '0');
      continue;
    }
    if (v6(vip)) continue;
    for (const dev of ['all', 'lo', v.interface]) {
      want.set(`${dev}/arp_ignore`, '1');
      want.set(`${dev}/arp_announce`, '2');
    }
    if (v.mode === 'tun') {
      for (const dev of ['all', v.interface]) want.set(`${dev}/rp_filter`, '0');
    }
  }
  return want;
}

// Sync on purpose: /proc/sys/net follows the calling thread's namespace.
function readSysctl(key: string): string {
  return readFileSync(sysctlPath(key), 'utf8').trim();
}

function writeSysctl(key: string, value: string): void {
  writeFileSync(sysctlPath(key), `${value}\n`);
}

/** Brings the sysctls to what the VIPs in `s` need, restoring what they no longer need. */
function syncSysctls(s: State, ctx: Ctx): void {
  const want = wantedSysctls(s.vips);
  for (const [key, value] of want) {
    const cur = readSysctl(key);
    if (!(key in s.saved)) s.saved[key] = cur;
    if (cur === value) continue;
    writeSysctl(key, value);
    ctx.undo.push(() => writeSysctl(key, cur));
    ctx.lines.push(`set ${sysctlName(key)} = ${value} (was ${cur})`);
  }
  for (const [key, orig] of Object.entries(s.saved)) {
    if (want.has(key)) continue;
    delete s.saved[key];
    if (!existsSync(sysctlPath(key))) {
      ctx.lines.push(`${sysctlName(key)}: device is gone, nothing to restore`);
      continue;
    }
    const cur = readSysctl(key);
    if (cur === orig) continue;
    writeSysctl(key, orig);
    ctx.undo.push(() => writeSysctl(key, cur));
    ctx.lines.push(`restored ${sysctlName(key)} = ${orig}`);
  }
}

interface LoAddress { local: string; prefixlen: number; label?: string; metric?: number }

async function loAddresses(family: '-4' | '-6'): Promise<LoAddress[]> {
  const out = await sh('ip', ['-j', family, 'addr', 'show', 'dev', 'lo']);
  const links = JSON.parse(out || '[]') as Array<{ addr_info?: LoAddress[] }>;
  // In the state file's spelling: ip writes IPv4-mapped addresses its own way.
  return links.flatMap((l) => l.addr_info ?? []).map((a) => ({ ...a, local: canonicalVip(a.local) }));
}

async function loVips(): Promise<Set<string>> {
  return new Set([...(await loAddresses('-4')), ...(await loAddresses('-6'))].map((a) => a.local));
}

async function loAddress(vip: string): Promise<LoAddress | null> {
  return (await loAddresses(v6(vip) ? '-6' : '-4')).find((a) => a.local === vip) ?? null;
}

// IPv6 addresses take no label: a metric of their own marks them as ours.
const LO_METRIC6 = 0x5856; // "XV"

const isOurs = (vip: string, a: LoAddress): boolean => (v6(vip) ? a.metric === LO_METRIC6 : a.label === LO_LABEL);

async function addLoVip(vip: string, ctx: Ctx): Promise<void> {
  if (await loAddress(vip)) return;
  // nodad: lo does no duplicate address detection anyway; this says it never will.
  const mark = v6(vip) ? ['nodad', 'metric', String(LO_METRIC6)] : ['label', LO_LABEL];
  await sh('ip', ['addr', 'add', hostPrefix(vip), 'dev', 'lo', ...mark]);
  ctx.undo.push(() => sh('ip', ['addr', 'del', hostPrefix(vip), 'dev', 'lo']).then(() => undefined));
  ctx.lines.push(`added ${hostPrefix(vip)} to lo`);
}

async function removeLoVip(vip: string, ctx: Ctx): Promise<void> {
  const a = await loAddress(vip);
  if (!a) return;
  if (!isOurs(vip, a)) {
    ctx.lines.push(`left ${vip}/${a.prefixlen} on lo: it was not added by xvs`);
    return;
  }
  await sh('ip', ['addr', 'del', `${vip}/${a.prefixlen}`, 'dev', 'lo']);
  ctx.lines.push(`removed ${vip}/${a.prefixlen} from lo`);
}

/** The kernel solicits neighbours for a reply from an IPv6 VIP on lo only from the interface's link-local address. */
async function checkLinkLocal(iface: string, ctx: Ctx): Promise<void> {
  const out = await sh('ip', ['-j', '-6', 'addr', 'show', 'dev', iface, 'scope', 'link']);
  const addrs = (JSON.parse(out || '[]') as Array<{ addr_info?: { dadfailed?: boolean }[] }>).flatMap((l) => l.addr_info ?? []);
  if (addrs.some((a) => !a.dadfailed)) return;
  log.warn({ interface: iface }, 'no IPv6 link-local address: replies from the VIP cannot resolve their next hop');
  ctx.lines.push(`warning: ${iface} has no IPv6 link-local address; the kernel solicits neighbours for replies from a VIP on lo only from one`);
}

function vipKey(vip: string): Buffer {
  return ipToAddr16(vip).bytes;
}

/** The family bit of a VIP in the decap map's value (see enum xvs_decap_af). */
const decapAf = (vip: string): number => (v6(vip) ? DECAP_AF.inet6 : DECAP_AF.inet);

function u32le(n: number): Buffer {
  const v = Buffer.alloc(4);
  v.writeUInt32LE(n >>> 0);
  return v;
}

/** Sets or clears a VIP's family bit; an address left with no family leaves the map. Returns whether it changed. */
function putDecapVip(map: RawMap, vip: string, on: boolean): boolean {
  const key = vipKey(vip);
  const cur = map.lookup(key)?.readUInt32LE(0) ?? 0;
  const next = on ? cur | decapAf(vip) : cur & ~decapAf(vip);
  if (next === cur) return false;
  if (next === 0) map.delete(key);
  else map.update(key, u32le(next));
  return true;
}

function removeIfEmpty(dir: string): void {
  try {
    if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
  } catch (e) {
    log.warn({ dir, err: message(e) }, 'could not remove an empty directory');
  }
}

function openDecap(pinDir: string): BpfObject {
  const objectPath = bpfObject('xvs_decap');
  if (!existsSync(objectPath)) throw new XvsError('OBJECT_MISSING', `${objectPath} not found`);
  const obj = BpfObject.open({ objectPath, pinDir, pinMaps: [DECAP_MAP] });
  try {
    obj.load();
    return obj;
  } catch (e) {
    obj.close();
    throw e;
  }
}

/** The VIP map of the running decap program. */
function openDecapVips(d: DecapState): RawMap {
  const map = mapFromId(d.mapId);
  if (map.name !== DECAP_MAP) {
    map.close();
    throw new XvsError('SYSTEM', `map id ${d.mapId} is ${map.name}, not ${DECAP_MAP}: the state file does not match the kernel`);
  }
  return map;
}

/** Removes the pin if this run can see it; an unseen one went with its bpffs. */
function unpin(pinDir: string): boolean {
  const pin = path.join(pinDir, DECAP_MAP);
  const had = existsSync(pin);
  rmSync(pin, { force: true });
  removeIfEmpty(pinDir);
  if (path.dirname(pinDir) === REALSERVER_DEFAULTS.pinRoot) removeIfEmpty(REALSERVER_DEFAULTS.pinRoot);
  return had;
}

async function attachDecap(ifindex: number, iface: string, pinDir: string, xdpMode: XdpMode, ctx: Ctx): Promise<DecapState> {
  const mounted = await ensurePinDir(pinDir);
  if (mounted) ctx.lines.push(`mounted a bpf filesystem on ${mounted}`);
  // libbpf would reuse a pin left by a decap that no longer runs, stale VIPs and all.
  rmSync(path.join(pinDir, DECAP_MAP), { force: true });
  const obj = openDecap(pinDir);
  try {
    ctx.undo.push(() => void unpin(pinDir));
    const mode = attachXdp(ifindex, obj.program(DECAP_PROG).fd, xdpMode);
    ctx.undo.push(() => detachXdp(ifindex, mode));
    ctx.lines.push(`attached ${DECAP_PROG} to ${iface} (${mode})`);
    return { interface: iface, ifindex, progId: xdpProgId(ifindex), mapId: obj.map(DECAP_MAP).kernelId(), xdpMode: mode, pinDir };
  } finally {
    // The attachment holds the program, and the program its map.
    obj.close();
  }
}

/** Runs the decap on iface (attaching it unless ours already runs there) with every tunnelled VIP of s in its map. */
async function syncDecap(s: State, iface: string, pinDir: string, xdpMode: XdpMode, ctx: Ctx): Promise<void> {
  if (s.decap && s.decap.interface !== iface) {
    throw new XvsError('BAD_ARGUMENT', `decap already runs on ${s.decap.interface}; tunnelled VIPs share one interface`);
  }
  const ifindex = checkInterface(iface);
  const current = xdpProgId(ifindex);
  const ours = s.decap !== null && s.decap.ifindex === ifindex && current === s.decap.progId;
  if (current !== 0 && !ours) {
    throw new XvsError('ATTACH', `${iface} already runs XDP program id ${current}; not replacing it`);
  }
  const decap = ours && s.decap ? s.decap : await attachDecap(ifindex, iface, pinDir, xdpMode, ctx);
  s.decap = decap;
  const map = openDecapVips(decap);
  try {
    // All of them, not only the new one: a decap attached afresh starts empty.
    for (const [vip, v] of Object.entries(s.vips)) {
      if (v.mode !== 'tun' || !putDecapVip(map, vip, true)) continue;
      ctx.undo.push(() => {
        const m = openDecapVips(decap);
        try {
          putDecapVip(m, vip, false);
        } finally {
          m.close();
        }
      });
      ctx.lines.push(`added ${vip} to ${DECAP_MAP}`);
    }
  } finally {
    map.close();
  }
  syncDecapPorts(s, decap, ctx);
}

/** The decap's GUE ports: those of the GUE VIPs of s, no more. */
function syncDecapPorts(s: State, d: DecapState, ctx: Ctx): void {
  const want = new Set(Object.values(s.vips).flatMap((v) => (v.mode === 'tun' && v.tunnel?.type === 'gue' ? [v.tunnel.port] : [])));
  let map: RawMap;
  try {
    map = openGuePorts(d.progId);
  } catch (e) {
    if (want.size === 0) return; // an older decap, and no GUE asked of it
    throw e;
  }
  try {
    const before = new Set(guePorts(map));
    const { added, removed } = syncGuePorts(map, want);
    if (added.length + removed.length > 0) {
      ctx.undo.push(() => {
        const m = openGuePorts(d.progId);
        try {
          syncGuePorts(m, before);
        } finally {
          m.close();
        }
      });
    }
    for (const p of added) ctx.lines.push(`added UDP port ${p} to ${GUE_PORTS_MAP}`);
    for (const p of removed) ctx.lines.push(`removed UDP port ${p} from ${GUE_PORTS_MAP}`);
  } finally {
    map.close();
  }
}

function removeDecap(s: State, vip: string, ctx: Ctx): void {
  const d = s.decap;
  if (!d) return;
  const attached = decapAttached(d);
  if (attached) {
    const map = openDecapVips(d);
    try {
      if (putDecapVip(map, vip, false)) ctx.lines.push(`removed ${vip} from ${DECAP_MAP}`);
    } finally {
      map.close();
    }
  }
  if (Object.values(s.vips).some((v) => v.mode === 'tun')) {
    if (attached) syncDecapPorts(s, d, ctx);
    return;
  }
  if (attached) {
    detachXdp(d.ifindex, d.xdpMode);
    ctx.lines.push(`detached ${DECAP_PROG} from ${d.interface}`);
  } else {
    let current = 0;
    try {
      current = xdpProgId(d.ifindex);
    } catch {
      // the interface is gone, and the program with it
    }
    if (current !== 0) ctx.lines.push(`left XDP program id ${current} on ${d.interface}: it is not the one xvs attached`);
  }
  if (unpin(d.pinDir)) ctx.lines.push(`unpinned ${path.join(d.pinDir, DECAP_MAP)}`);
  s.decap = null;
}

const describeVip = (v: VipState): string => {
  if (v.mode === 'fullnat') return `fullnat, TOA reader on cgroup ${v.cgroup}`;
  if (v.mode === 'nat') return `nat on ${v.interface} via ${v.director}`;
  return `${v.mode}${v.mode === 'tun' && v.tunnel ? ` (${decapTunnelText(v.tunnel)})` : ''} on ${v.interface}`;
};
const sameVip = (a: VipState, b: VipState): boolean => describeVip(a) === describeVip(b);

/** Runs the TOA reader on the cgroup (attaching it unless ours already runs there). */
async function syncToaReader(s: State, cgroup: string, pinDir: string, tableSize: number | undefined, ctx: Ctx): Promise<void> {
  const hint = 'FULLNAT VIPs share one TOA reader: tear them down first to change it';
  if (s.toa && s.toa.cgroup !== cgroup) {
    throw new XvsError('BAD_ARGUMENT', `the TOA reader runs on cgroup ${s.toa.cgroup}, not ${cgroup}`, { hint });
  }
  if (s.toa && tableSize !== undefined && s.toa.tableSize !== tableSize) {
    throw new XvsError('BAD_ARGUMENT', `the TOA reader holds ${s.toa.tableSize} connections, not ${tableSize}`, { hint });
  }
  if (s.toa && (await toaReaderAttached(s.toa, ctx.lines))) return;
  if (s.toa) ctx.lines.push(`the TOA reader (program id ${s.toa.progId}) no longer runs on cgroup ${cgroup}; attaching it again`);
  s.toa = await attachToaReader({ cgroup, pinDir, ...(tableSize === undefined ? {} : { tableSize }) }, ctx);
}

async function removeToaReader(s: State, vip: string, ctx: Ctx): Promise<void> {
  if (!s.toa) return;
  const others = Object.entries(s.vips).filter(([, v]) => v.mode === 'fullnat').map(([k]) => k);
  if (others.length > 0) {
    ctx.lines.push(`removed ${vip} (fullnat); the TOA reader stays for ${others.join(', ')}`);
    return;
  }
  await detachToaReader(s.toa, ctx.lines);
  removeIfEmpty(s.toa.pinDir);
  if (path.dirname(s.toa.pinDir) === REALSERVER_DEFAULTS.pinRoot) removeIfEmpty(REALSERVER_DEFAULTS.pinRoot);
  s.toa = null;
}

/** Sets the default route via the director for each family a NAT VIP needs, and puts back those no longer needed. */
async function syncNatRoutes(s: State, ctx: Ctx): Promise<void> {
  const routes = s.natRoutes ?? {};
  for (const f of ['inet', 'inet6'] as const) {
    const want = Object.values(s.vips).find((v): v is Extract<VipState, { mode: 'nat' }> => v.mode === 'nat' && natFamily(v.director) === f);
    const have = routes[f];
    if (want?.director && have && (have.director !== want.director || have.interface !== want.interface)) {
      throw new XvsError('BAD_ARGUMENT', `the ${f === 'inet6' ? 'IPv6' : 'IPv4'} default route is already via ${have.director} for another VIP`,
        { hint: 'one host has one default gateway per family: every NAT VIP of it names the same director' });
    }
    if (want?.director && !have) routes[f] = await routeViaDirector(want.director, want.interface, ctx);
    if (!want && have) {
      await restoreRoutes(have, ctx);
      delete routes[f];
    }
  }
  if (Object.keys(routes).length) s.natRoutes = routes;
  else delete s.natRoutes;
}

export async function setupRealServer(o: RealServerOptions): Promise<string[]> {
  const { vip, mode, xdpMode, tunnel } = validate(o);
  const loc = stateLocation(o);
  const ctx: Ctx = { lines: [], undo: [] };
  const s = await loadState(loc, ctx.lines);
  const changes = ctx.lines.length;
  const prev = s.vips[vip];
  if (mode === 'nat' && o.director === undefined) {
    throw new XvsError('BAD_ARGUMENT', 'NAT needs --director: the director\'s address on the real servers\' side');
  }
  const prevIface = prev && prev.mode !== 'fullnat' ? prev.interface : undefined;
  let want: VipState;
  if (mode === 'fullnat') {
    want = { mode, cgroup: o.cgroup ?? (prev?.mode === 'fullnat' ? prev.cgroup : undefined) ?? s.toa?.cgroup ?? '/' };
  } else if (mode === 'nat') {
    const director = canonicalVip(o.director!);
    want = { mode, director, interface: o.interface ?? prevIface ?? (await directorInterface(director)) };
  } else {
    want = { mode, interface: o.interface ?? prevIface ?? (await routeDevice(vip)), ...(tunnel ? { tunnel } : {}) };
  }
  if (prev && !sameVip(prev, want)) {
    throw new XvsError('BAD_ARGUMENT', `${vip} is set up as ${describeVip(prev)}; tear it down first`);
  }
  if (want.mode !== 'fullnat') checkInterface(want.interface);
  const pinDir = o.pinDir ?? netnsDir(REALSERVER_DEFAULTS.pinRoot);

  try {
    s.vips[vip] = want;
    syncSysctls(s, ctx);
    if (want.mode === 'fullnat') {
      // No VIP on lo: the director sends to this host's own address.
      await syncToaReader(s, want.cgroup, pinDir, o.toaTableSize, ctx);
      if (!prev && ctx.lines.length === changes) ctx.lines.push(`added ${vip} (fullnat): the TOA reader already runs on cgroup ${want.cgroup}`);
    } else if (want.mode === 'nat') {
      await syncNatRoutes(s, ctx);
      if (await loAddress(vip)) ctx.lines.push(`warning: ${vip} is on lo; a NAT real server needs nothing there`);
    } else {
      await addLoVip(vip, ctx);
      if (v6(vip)) await checkLinkLocal(want.interface, ctx);
      if (want.mode === 'tun') await syncDecap(s, want.interface, pinDir, xdpMode, ctx);
    }
    saveState(loc, s);
  } catch (e) {
    for (const undo of ctx.undo.reverse()) {
      try {
        await undo();
      } catch (ue) {
        log.warn({ vip, err: message(ue) }, 'undo step failed');
      }
    }
    throw isXvsError(e) ? e : new XvsError('SYSTEM', `setup of ${vip} failed: ${message(e)}`, { cause: e });
  }
  if (ctx.lines.length === changes) ctx.lines.push(`${vip} is already set up (${describeVip(want)})`);
  return ctx.lines;
}

export async function teardownRealServer(o: RealServerOptions): Promise<string[]> {
  const { vip, mode } = validate(o);
  const loc = stateLocation(o);
  const ctx: Ctx = { lines: [], undo: [] };
  const s = await loadState(loc, ctx.lines);
  const changes = ctx.lines.length;
  const entry = s.vips[vip];
  const failures: string[] = [];
  const step = async (fn: () => void | Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      failures.push(message(e));
    }
  };

  if (!entry) {
    await step(() => removeLoVip(vip, ctx));
    if (ctx.lines.length === changes) ctx.lines.push(`${vip} was not set up by xvs; nothing to undo`);
  } else {
    if (entry.mode !== mode) ctx.lines.push(`${vip} was set up as ${entry.mode}; undoing that`);
    delete s.vips[vip];
    if (entry.mode === 'tun') await step(() => removeDecap(s, vip, ctx));
    if (entry.mode === 'fullnat') await step(() => removeToaReader(s, vip, ctx));
    else if (entry.mode === 'nat') await step(() => syncNatRoutes(s, ctx));
    else await step(() => removeLoVip(vip, ctx));
    await step(() => syncSysctls(s, ctx));
    saveState(loc, s);
  }
  if (failures.length > 0) throw new XvsError('SYSTEM', `teardown of ${vip} incomplete: ${failures.join('; ')}`);
  return ctx.lines;
}

/** The TOA reader this namespace's state file records, or null (for toa.ts, which reads its map). */
export function recordedToaReader(o: { stateDir?: string } = {}): ToaReaderState | null {
  const s = readState(stateLocation(o).file);
  return s.toa && s.toa.netnsCookie === currentCookie() ? s.toa : null;
}

/** Where a pin directory defaults to in this network namespace. */
export function defaultPinDir(): string {
  return netnsDir(REALSERVER_DEFAULTS.pinRoot);
}
