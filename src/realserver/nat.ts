// What a Linux real server needs for LVS-NAT: its replies must go back
// through the director, which alone can turn RIP:rport into VIP:vport, so
// its default route (of the service's family) goes via the director's
// address on the real servers' side, as the LVS documents configure it
// (`route add default gw DIP`). Nothing goes on lo: the real server's own
// address is the destination the director writes.
//
// ICMP redirects are refused too (accept_redirects 0, setup.ts's sysctls):
// on one segment the director's kernel, forwarding a reply XDP left to it,
// may tell the real server to reach a client directly, and a real server
// that took that advice would answer from RIP, bypassing the translation.
//
// What the operator still decides: a client the real server reaches on a
// link of its own (an address of its own subnet) is answered directly,
// never through the director; clients must be in other subnets (on one
// segment, a subnet of their own; see README "Real servers").
import { execFile } from 'node:child_process';
import { isIPv6 } from 'node:net';
import { XvsError } from '../errors.js';

/** A default route as `ip -j route show` prints it, enough to put it back. */
export interface SavedRoute {
  gateway?: string;
  dev?: string;
  metric?: number;
  flags?: string[];
  protocol?: string;
}

/** The default route xvs set for one family and the ones it replaced. */
export interface NatRoute {
  director: string;
  interface: string;
  previous: SavedRoute[];
}

export type NatFamily = 'inet' | 'inet6';

interface Lines {
  lines: string[];
  undo: Array<() => void | Promise<void>>;
}

function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 15_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new XvsError('SYSTEM', `ip ${args.join(' ')}: ${(stderr || err.message).replace(/\s+/g, ' ').trim()}`));
      else resolve(stdout);
    });
  });
}

export const natFamily = (addr: string): NatFamily => (isIPv6(addr) ? 'inet6' : 'inet');
const fam = (f: NatFamily): string => (f === 'inet6' ? '-6' : '-4');

/** The interface the director is on, directly (a route through a gateway would not bring the replies back to it). */
export async function directorInterface(director: string): Promise<string> {
  const out = await ip(['-j', fam(natFamily(director)), 'route', 'get', director]);
  const [r] = JSON.parse(out || '[]') as Array<{ dev?: string; gateway?: string; type?: string }>;
  if (!r?.dev || r.dev === 'lo' || r.type === 'local') {
    throw new XvsError('BAD_ADDRESS', `director ${director} is an address of this host, not of the director`);
  }
  if (r.gateway) {
    throw new XvsError('BAD_ADDRESS', `director ${director} is reached through ${r.gateway}, not on a link of this host`,
      { hint: 'a NAT real server routes its replies to the director\'s address on the real servers\' segment' });
  }
  return r.dev;
}

async function defaultRoutes(f: NatFamily): Promise<SavedRoute[]> {
  const out = await ip(['-j', fam(f), 'route', 'show', 'table', 'main', 'default']);
  return (JSON.parse(out || '[]') as SavedRoute[]).map((r) => ({
    ...(r.gateway ? { gateway: r.gateway } : {}), ...(r.dev ? { dev: r.dev } : {}),
    ...(r.metric !== undefined ? { metric: r.metric } : {}), ...(r.flags?.length ? { flags: r.flags } : {}),
    ...(r.protocol ? { protocol: r.protocol } : {}),
  }));
}

const isOurs = (r: SavedRoute, n: { director: string; interface: string }): boolean =>
  r.gateway === n.director && r.dev === n.interface && r.metric === undefined;

function routeArgs(r: SavedRoute): string[] {
  return ['default', ...(r.gateway ? ['via', r.gateway] : []), ...(r.dev ? ['dev', r.dev] : []),
    ...(r.metric !== undefined ? ['metric', String(r.metric)] : []), ...(r.flags?.includes('onlink') ? ['onlink'] : []),
    ...(r.protocol && r.protocol !== 'boot' ? ['proto', r.protocol] : [])];
}

/** Makes the director the default gateway of its family, keeping the routes it replaces; undoable. */
export async function routeViaDirector(director: string, iface: string, ctx: Lines): Promise<NatRoute> {
  const f = natFamily(director);
  const previous = (await defaultRoutes(f)).filter((r) => !isOurs(r, { director, interface: iface }));
  const route = { director, interface: iface, previous };
  if (previous.length === 0 && (await defaultRoutes(f)).length > 0) return route; // already via the director
  for (const r of previous) await ip([fam(f), 'route', 'del', ...routeArgs(r)]);
  await ip([fam(f), 'route', 'replace', 'default', 'via', director, 'dev', iface]);
  ctx.undo.push(() => restoreRoutes(route, { lines: [], undo: [] }));
  ctx.lines.push(`set the ${f === 'inet6' ? 'IPv6' : 'IPv4'} default route via ${director} dev ${iface}${previous.length ? ` (replacing ${previous.map((r) => routeArgs(r).join(' ')).join('; ')})` : ''}`);
  return route;
}

/** Puts back the default routes routeViaDirector replaced. */
export async function restoreRoutes(n: NatRoute, ctx: Lines): Promise<void> {
  const f = natFamily(n.director);
  const now = await defaultRoutes(f);
  if (now.some((r) => isOurs(r, n))) {
    await ip([fam(f), 'route', 'del', 'default', 'via', n.director, 'dev', n.interface]);
    ctx.lines.push(`removed the default route via ${n.director}`);
  }
  for (const r of n.previous) {
    try {
      await ip([fam(f), 'route', 'add', ...routeArgs(r)]);
      ctx.lines.push(`restored the default route ${routeArgs(r).slice(1).join(' ')}`);
    } catch (e) {
      ctx.lines.push(`could not restore the default route ${routeArgs(r).slice(1).join(' ')}: ${(e as Error).message}`);
    }
  }
}

/** Whether the default route xvs set is still there (the namespace it was set in lives). */
export async function natRouteAlive(n: NatRoute): Promise<boolean> {
  try {
    return (await defaultRoutes(natFamily(n.director))).some((r) => isOurs(r, n));
  } catch {
    return false;
  }
}
