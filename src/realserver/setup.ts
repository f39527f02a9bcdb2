// What a Linux real server needs for LVS-DR and LVS-TUN: the VIP on lo so the
// kernel accepts packets addressed to it, ARP settings so the host never
// answers or announces the VIP (the director owns it on the wire), and for
// TUN the xdp_decap program, which replaces the ipip module, plus rp_filter
// off. Everything changed is recorded so teardown can put it back exactly.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import path from 'node:path';
import { XvsError, isXvsError } from '../errors.js';
import { logger } from '../log.js';
import { BpfObject, attachXdp, detachXdp, ifIndex, xdpProgId } from '../loader/index.js';
import { ipToAddr16 } from '../maps/codec.js';
import { mapFromPin, type RawMap } from '../maps/map.js';
import { bpfObject } from '../paths.js';
import { onBpffs } from '../sys/bpffs.js';

const log = logger('realserver');

export interface RealServerOptions {
  vip: string;
  mode: 'dr' | 'tun';
  interface?: string;
  pinDir?: string;
  stateDir?: string;
  xdpMode?: 'native' | 'generic';
}

export const REALSERVER_DEFAULTS = {
  pinDir: '/sys/fs/bpf/xvs-rs',
  stateDir: '/run/xvs',
  stateFile: 'realserver.json',
  xdpMode: 'native',
} as const;

const DECAP_PROG = 'xdp_decap';
const DECAP_MAP = 'xvs_decap_vips';
// The label marks the address as ours, even after a setup that died before saving state.
const LO_LABEL = 'lo:xvs';

type Mode = RealServerOptions['mode'];
type XdpMode = NonNullable<RealServerOptions['xdpMode']>;

interface VipState {
  mode: Mode;
  interface: string;
}

interface DecapState {
  interface: string;
  ifindex: number;
  progId: number;
  xdpMode: XdpMode;
  pinDir: string;
}

interface State {
  version: 1;
  vips: Record<string, VipState>;
  /** Sysctl values from before xvs touched them, keyed `DEV/NAME` (under net/ipv4/conf). */
  saved: Record<string, string>;
  decap: DecapState | null;
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

function validate(o: RealServerOptions): { vip: string; mode: Mode; xdpMode: XdpMode } {
  const vip = String(o.vip ?? '').trim();
  if (isIPv6(vip)) throw new XvsError('UNSUPPORTED', `VIP ${vip}: IPv6 real servers are not supported yet`);
  if (!isIPv4(vip)) throw new XvsError('BAD_ADDRESS', `VIP "${vip}" is not an IPv4 address`);
  if (o.mode !== 'dr' && o.mode !== 'tun') throw new XvsError('BAD_ARGUMENT', `mode "${String(o.mode)}": use dr or tun`);
  const xdpMode = o.xdpMode ?? REALSERVER_DEFAULTS.xdpMode;
  if (xdpMode !== 'native' && xdpMode !== 'generic') throw new XvsError('BAD_ARGUMENT', `xdp mode "${String(xdpMode)}": use native or generic`);
  if (o.interface !== undefined && !/^[^/\s]{1,15}$/.test(o.interface)) {
    throw new XvsError('NO_INTERFACE', `"${o.interface}" is not an interface name`);
  }
  if (process.geteuid?.() !== 0) throw new XvsError('NOT_ROOT', 'real server setup changes addresses and sysctls');
  return { vip, mode: o.mode, xdpMode };
}

function stateFile(o: RealServerOptions): string {
  return path.join(o.stateDir ?? REALSERVER_DEFAULTS.stateDir, REALSERVER_DEFAULTS.stateFile);
}

function loadState(file: string): State {
  if (!existsSync(file)) return { version: 1, vips: {}, saved: {}, decap: null };
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as State;
    if (s.version !== 1 || typeof s.vips !== 'object' || typeof s.saved !== 'object') throw new Error('unknown layout');
    return s;
  } catch (e) {
    throw new XvsError('SYSTEM', `state file ${file} is unreadable (${message(e)}); fix or remove it`);
  }
}

function saveState(file: string, s: State): void {
  if (Object.keys(s.vips).length === 0 && Object.keys(s.saved).length === 0 && !s.decap) {
    rmSync(file, { force: true });
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
  return slash < 0 ? 32 : Number(dst.slice(slash + 1));
}

// Main table only: once the VIP is on lo, `ip route get` answers "lo".
async function routeDevice(vip: string): Promise<string> {
  const out = await sh('ip', ['-j', '-4', 'route', 'show', 'table', 'main', 'match', `${vip}/32`]);
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

const sysctlPath = (key: string): string => `/proc/sys/net/ipv4/conf/${key}`;
const sysctlName = (key: string): string => `net.ipv4.conf.${key.replace('/', '.')}`;

// Per device: the kernel uses max(all, dev) for arp_ignore, arp_announce and rp_filter.
function wantedSysctls(vips: Record<string, VipState>): Map<string, string> {
  const want = new Map<string, string>();
  for (const v of Object.values(vips)) {
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

async function loAddress(vip: string): Promise<{ label?: string; prefixlen: number } | null> {
  const out = await sh('ip', ['-j', '-4', 'addr', 'show', 'dev', 'lo']);
  const links = JSON.parse(out || '[]') as Array<{ addr_info?: Array<{ local: string; prefixlen: number; label?: string }> }>;
  for (const l of links) for (const a of l.addr_info ?? []) if (a.local === vip) return a;
  return null;
}

async function addLoVip(vip: string, ctx: Ctx): Promise<void> {
  if (await loAddress(vip)) return;
  await sh('ip', ['addr', 'add', `${vip}/32`, 'dev', 'lo', 'label', LO_LABEL]);
  ctx.undo.push(() => sh('ip', ['addr', 'del', `${vip}/32`, 'dev', 'lo']).then(() => undefined));
  ctx.lines.push(`added ${vip}/32 to lo`);
}

async function removeLoVip(vip: string, ctx: Ctx): Promise<void> {
  const a = await loAddress(vip);
  if (!a) return;
  if (a.label !== LO_LABEL) {
    ctx.lines.push(`left ${vip}/${a.prefixlen} on lo: it was not added by xvs`);
    return;
  }
  await sh('ip', ['addr', 'del', `${vip}/${a.prefixlen}`, 'dev', 'lo']);
  ctx.lines.push(`removed ${vip}/32 from lo`);
}

function vipKey(vip: string): Buffer {
  return ipToAddr16(vip).bytes;
}

function vipValue(): Buffer {
  const v = Buffer.alloc(4);
  v.writeUInt32LE(1);
  return v;
}

// bpftool does the same: a host without a mounted /sys/fs/bpf gets one.
async function ensurePinDir(pinDir: string, ctx: Ctx): Promise<void> {
  if (!onBpffs(pinDir)) {
    const root = '/sys/fs/bpf';
    if (!(pinDir + '/').startsWith(`${root}/`) || onBpffs(root)) {
      throw new XvsError('BAD_ARGUMENT', `pin directory ${pinDir} is not on a bpf filesystem`);
    }
    await sh('mount', ['-t', 'bpf', 'bpf', root]);
    ctx.lines.push(`mounted a bpf filesystem on ${root}`);
  }
  mkdirSync(pinDir, { recursive: true });
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

function openPinnedVips(pinDir: string): RawMap | null {
  const pin = path.join(pinDir, DECAP_MAP);
  return existsSync(pin) ? mapFromPin(pin) : null;
}

function unpin(pinDir: string): void {
  rmSync(path.join(pinDir, DECAP_MAP), { force: true });
  if (existsSync(pinDir) && readdirSync(pinDir).length === 0) rmdirSync(pinDir);
}

async function addDecap(s: State, vip: string, iface: string, pinDir: string, xdpMode: XdpMode, ctx: Ctx): Promise<void> {
  if (s.decap && s.decap.interface !== iface) {
    throw new XvsError('BAD_ARGUMENT', `decap already runs on ${s.decap.interface}; tunnelled VIPs share one interface`);
  }
  if (s.decap) pinDir = s.decap.pinDir;
  await ensurePinDir(pinDir, ctx);
  const ifindex = checkInterface(iface);
  const current = xdpProgId(ifindex);
  const ours = s.decap !== null && current === s.decap.progId && s.decap.ifindex === ifindex;
  if (current !== 0 && !ours) {
    throw new XvsError('ATTACH', `${iface} already runs XDP program id ${current}; not replacing it`);
  }
  const pinned = existsSync(path.join(pinDir, DECAP_MAP));
  const obj = openDecap(pinDir);
  try {
    if (!pinned) ctx.undo.push(() => unpin(pinDir));
    if (!ours) {
      const mode = attachXdp(ifindex, obj.program(DECAP_PROG).fd, xdpMode);
      ctx.undo.push(() => detachXdp(ifindex, mode));
      s.decap = { interface: iface, ifindex, progId: xdpProgId(ifindex), xdpMode: mode, pinDir };
      ctx.lines.push(`attached ${DECAP_PROG} to ${iface} (${mode})`);
    }
    const map = obj.map(DECAP_MAP);
    const key = vipKey(vip);
    if (!map.lookup(key)) {
      map.update(key, vipValue());
      ctx.undo.push(() => {
        const m = openPinnedVips(pinDir);
        m?.delete(key);
        m?.close();
      });
      ctx.lines.push(`added ${vip} to ${DECAP_MAP}`);
    }
  } finally {
    // The attachment holds the program and the pin holds the map.
    obj.close();
  }
}

function removeDecap(s: State, vip: string, ctx: Ctx): void {
  const d = s.decap;
  if (!d) return;
  const map = openPinnedVips(d.pinDir);
  if (map) {
    try {
      if (map.delete(vipKey(vip))) ctx.lines.push(`removed ${vip} from ${DECAP_MAP}`);
    } finally {
      map.close();
    }
  }
  if (Object.values(s.vips).some((v) => v.mode === 'tun')) return;
  let current = 0;
  try {
    current = xdpProgId(d.ifindex);
  } catch {
    // the interface is gone, and the program with it
  }
  if (current === d.progId) {
    detachXdp(d.ifindex, d.xdpMode);
    ctx.lines.push(`detached ${DECAP_PROG} from ${d.interface}`);
  } else if (current !== 0) {
    ctx.lines.push(`left XDP program id ${current} on ${d.interface}: it is not the one xvs attached`);
  }
  unpin(d.pinDir);
  ctx.lines.push(`unpinned ${path.join(d.pinDir, DECAP_MAP)}`);
  s.decap = null;
}

export async function setupRealServer(o: RealServerOptions): Promise<string[]> {
  const { vip, mode, xdpMode } = validate(o);
  const file = stateFile(o);
  const s = loadState(file);
  const prev = s.vips[vip];
  const iface = o.interface ?? prev?.interface ?? (await routeDevice(vip));
  if (prev && (prev.mode !== mode || prev.interface !== iface)) {
    throw new XvsError('BAD_ARGUMENT', `${vip} is set up as ${prev.mode} on ${prev.interface}; tear it down first`);
  }
  checkInterface(iface);

  const ctx: Ctx = { lines: [], undo: [] };
  try {
    s.vips[vip] = { mode, interface: iface };
    syncSysctls(s, ctx);
    await addLoVip(vip, ctx);
    if (mode === 'tun') await addDecap(s, vip, iface, o.pinDir ?? REALSERVER_DEFAULTS.pinDir, xdpMode, ctx);
    saveState(file, s);
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
  if (ctx.lines.length === 0) ctx.lines.push(`${vip} is already set up (${mode} on ${iface})`);
  return ctx.lines;
}

export async function teardownRealServer(o: RealServerOptions): Promise<string[]> {
  const { vip, mode } = validate(o);
  const file = stateFile(o);
  const s = loadState(file);
  const entry = s.vips[vip];
  const ctx: Ctx = { lines: [], undo: [] };
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
    if (ctx.lines.length === 0) ctx.lines.push(`${vip} was not set up by xvs; nothing to undo`);
  } else {
    if (entry.mode !== mode) ctx.lines.push(`${vip} was set up as ${entry.mode}; undoing that`);
    delete s.vips[vip];
    if (entry.mode === 'tun') await step(() => removeDecap(s, vip, ctx));
    await step(() => removeLoVip(vip, ctx));
    await step(() => syncSysctls(s, ctx));
    saveState(file, s);
  }
  if (failures.length > 0) throw new XvsError('SYSTEM', `teardown of ${vip} incomplete: ${failures.join('; ')}`);
  return ctx.lines;
}
