// The kernel's route, neighbour and link tables as the next-hop cache needs
// them, read through iproute2 in a fixed number of processes whatever the
// number of real servers: one `ip -batch` for every `route get`, one dump of
// the neighbours, one of the links. Parsing is separate from running so the
// tests can feed it recorded output.
import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import { checkIp } from './addr.js';

/** Where the tables are read: the caller's network namespace, or a named one (`ip -n`). */
export interface IpContext {
  netns?: string;
}

export interface Route {
  dst: string;
  dev?: string;
  gateway?: string;
  prefsrc?: string;
  type?: string;
  mtu?: number;
}

export interface Neighbour {
  dst: string;
  dev: string;
  lladdr?: string;
  state: string[];
  managed: boolean;
}

export interface Link {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  up: boolean;
}

export interface IpTables {
  /** By the address asked for, in checkIp form; an address with no route is absent. */
  routes: Map<string, Route>;
  /** By neighbourKey(). */
  neighbours: Map<string, Neighbour>;
  /** By name. */
  links: Map<string, Link>;
}

/** Neighbour states in which the kernel itself would send to the MAC it holds. */
export const USABLE_STATES: ReadonlySet<string> = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP']);

export const neighbourKey = (addr: string, dev: string): string => `${addr} ${dev}`;

/** The MAC the kernel would send to, or undefined while it has none it trusts. */
export function usableMac(n: { lladdr?: string; state: readonly string[] } | undefined): string | undefined {
  return n?.lladdr && n.state.some((s) => USABLE_STATES.has(s)) ? n.lladdr.toLowerCase() : undefined;
}

const ipArgs = (ctx: IpContext): string[] => (ctx.netns ? ['-n', ctx.netns] : []);

/** Runs ip with `input` on stdin; resolves stdout even on a non-zero exit (a -force batch fails if any line did). */
export function runIp(ctx: IpContext, args: readonly string[], input?: string, timeoutMs = 10_000): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', [...ipArgs(ctx), ...args], { timeout: timeoutMs, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && (err.killed || typeof err.code !== 'number')) return reject(new Error(`ip ${args.join(' ')}: ${err.killed ? `timed out after ${timeoutMs} ms` : err.message}`));
      resolve({ stdout, stderr, code: err ? Number(err.code) : 0 });
    });
    // ip may exit before reading its input (a bad line, or none wanted): EPIPE then is no error of ours.
    child.stdin?.on('error', () => undefined);
    if (input === undefined) child.stdin?.end();
    else child.stdin?.end(input);
  });
}

/** The batch that asks the kernel the route to each address: one line each. */
export function routeBatch(addrs: Iterable<string>): string {
  let s = '';
  for (const a of addrs) s += `route get ${a}\n`;
  return s;
}

interface RouteJson { dst?: string; dev?: string; gateway?: string; prefsrc?: string; type?: string; metrics?: { mtu?: number }[] }

/**
 * `ip -j -force -batch` prints one JSON array per successful `route get`
 * and nothing on stdout for a failed one (no route: the address stays
 * absent), so answers are matched by their dst, never by position.
 */
export function parseRouteBatch(stdout: string): Map<string, Route> {
  const routes = new Map<string, Route>();
  for (const line of stdout.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('[')) continue;
    for (const r of JSON.parse(t) as RouteJson[]) {
      if (!r.dst || !isIP(r.dst)) continue;
      const mtu = r.metrics?.find((m) => m.mtu !== undefined)?.mtu;
      routes.set(checkIp(r.dst, 'route destination'), {
        dst: checkIp(r.dst, 'route destination'),
        ...(r.dev !== undefined ? { dev: r.dev } : {}),
        ...(r.gateway !== undefined && isIP(r.gateway) ? { gateway: checkIp(r.gateway, 'gateway') } : {}),
        ...(r.prefsrc !== undefined && isIP(r.prefsrc) ? { prefsrc: checkIp(r.prefsrc, 'source') } : {}),
        ...(r.type !== undefined ? { type: r.type } : {}),
        ...(mtu !== undefined ? { mtu } : {}),
      });
    }
  }
  return routes;
}

interface NeighJson { dst?: string; dev?: string; lladdr?: string; state?: string[]; managed?: unknown }

export function parseNeighbours(stdout: string): Map<string, Neighbour> {
  const out = new Map<string, Neighbour>();
  const list = stdout.trim() === '' ? [] : (JSON.parse(stdout) as NeighJson[]);
  for (const n of list) {
    if (!n.dst || !n.dev || !isIP(n.dst)) continue;
    const dst = checkIp(n.dst, 'neighbour');
    out.set(neighbourKey(dst, n.dev), {
      dst, dev: n.dev, state: n.state ?? [], managed: 'managed' in n,
      ...(n.lladdr !== undefined ? { lladdr: n.lladdr.toLowerCase() } : {}),
    });
  }
  return out;
}

interface LinkJson { ifindex?: number; ifname?: string; mtu?: number; address?: string; flags?: string[] }

export function parseLinks(stdout: string): Map<string, Link> {
  const out = new Map<string, Link>();
  const list = stdout.trim() === '' ? [] : (JSON.parse(stdout) as LinkJson[]);
  for (const l of list) {
    if (l.ifindex === undefined || !l.ifname) continue;
    out.set(l.ifname, {
      ifindex: l.ifindex, ifname: l.ifname, mtu: l.mtu ?? 0, up: (l.flags ?? []).includes('UP'),
      ...(l.address !== undefined ? { address: l.address.toLowerCase() } : {}),
    });
  }
  return out;
}

/** Three processes for any number of addresses. */
export async function readIpTables(addrs: readonly string[], ctx: IpContext = {}): Promise<IpTables> {
  const [routes, neigh, link] = await Promise.all([
    addrs.length === 0 ? Promise.resolve({ stdout: '', stderr: '', code: 0 }) : runIp(ctx, ['-j', '-force', '-batch', '-'], routeBatch(addrs)),
    runIp(ctx, ['-j', 'neigh', 'show']),
    runIp(ctx, ['-j', 'link', 'show']),
  ]);
  if (neigh.code !== 0) throw new Error(`ip neigh show: ${neigh.stderr.trim()}`);
  if (link.code !== 0) throw new Error(`ip link show: ${link.stderr.trim()}`);
  return { routes: parseRouteBatch(routes.stdout), neighbours: parseNeighbours(neigh.stdout), links: parseLinks(link.stdout) };
}

/** Runs `ip -batch` lines (neighbour changes); every line is tried. Returns the error text, empty when all succeeded. */
export async function runBatch(lines: readonly string[], ctx: IpContext = {}): Promise<string> {
  if (lines.length === 0) return '';
  const r = await runIp(ctx, ['-force', '-batch', '-'], `${lines.join('\n')}\n`);
  return r.code === 0 ? '' : r.stderr.trim();
}
