// The kernel's change notifications for neighbours, routes and links, read
// from `ip -o monitor label neigh route link` (iproute2 6.1 prints monitor
// events as text even with -j, so -o gives one line per event and `label`
// names its table). The child is restarted when it dies; events it missed
// meanwhile are caught by the caller's refresh after a restart.
import { spawn, type ChildProcess } from 'node:child_process';
import { isIP } from 'node:net';
import { createInterface } from 'node:readline';
import { logger } from '../log.js';
import { checkIp } from './addr.js';
import type { IpContext } from './ip-tables.js';

const log = logger('ip-monitor');

export type MonitorEvent =
  | { kind: 'neigh'; deleted: boolean; dst: string; dev?: string; lladdr?: string; state: string[] }
  | { kind: 'route'; deleted: boolean; table?: string; dev?: string }
  | { kind: 'link'; deleted: boolean; ifindex: number; ifname: string; mtu?: number; address?: string; up: boolean }
  | { kind: 'other'; line: string };

const NEIGH_STATE = /^[A-Z_]+$/;

function after(words: readonly string[], key: string): string | undefined {
  const i = words.indexOf(key);
  return i >= 0 ? words[i + 1] : undefined;
}

/** One line of `ip -o monitor label ...`; undefined for a blank line. */
export function parseMonitorLine(raw: string): MonitorEvent | undefined {
  const line = raw.trim();
  if (line === '') return undefined;
  const m = /^\[(NEIGH|ROUTE|LINK)\](.*)$/.exec(line);
  if (!m) return { kind: 'other', line };
  let body = m[2]!.trim();
  const deleted = body.startsWith('Deleted ');
  if (deleted) body = body.slice('Deleted '.length).trim();
  const words = body.split(/\s+/);
  switch (m[1]) {
    case 'NEIGH': {
      const dst = words[0] ?? '';
      if (!isIP(dst)) return { kind: 'other', line };
      const dev = after(words, 'dev');
      const lladdr = after(words, 'lladdr');
      return {
        kind: 'neigh', deleted, dst: checkIp(dst, 'neighbour'), state: words.slice(1).filter((w) => NEIGH_STATE.test(w)),
        ...(dev !== undefined ? { dev } : {}), ...(lladdr !== undefined ? { lladdr: lladdr.toLowerCase() } : {}),
      };
    }
    case 'ROUTE': {
      const dev = after(words, 'dev');
      const table = after(words, 'table');
      return { kind: 'route', deleted, ...(dev !== undefined ? { dev } : {}), ...(table !== undefined ? { table } : {}) };
    }
    default: {
      // "3: eth0@if2: <BROADCAST,UP,LOWER_UP> mtu 1500 ... \    link/ether 02:... brd ..."
      const l = /^(\d+):\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>/.exec(body);
      if (!l) return { kind: 'other', line };
      const mtu = after(words, 'mtu');
      const address = after(words, 'link/ether');
      return {
        kind: 'link', deleted, ifindex: Number(l[1]), ifname: l[2]!, up: l[3]!.split(',').includes('UP'),
        ...(mtu !== undefined ? { mtu: Number(mtu) } : {}), ...(address !== undefined ? { address: address.toLowerCase() } : {}),
      };
    }
  }
}

export interface IpMonitorOptions extends IpContext {
  onEvent(e: MonitorEvent): void;
  /** After a restart of the child, for events it may have missed. */
  onRestart(): void;
}

const MAX_BACKOFF_MS = 5000;
/** A child that ran this long was healthy: its next death restarts it at once. */
const HEALTHY_MS = 10_000;

/** `ip monitor` as a child process, restarted whenever it exits until stop(). */
export class IpMonitor {
  #child: ChildProcess | undefined;
  #stopped = false;
  #backoff = 0;
  #restart: NodeJS.Timeout | undefined;
  #ready: Promise<void> | undefined;

  constructor(readonly opts: IpMonitorOptions) {}

  /** Resolves once the child runs (its first event may come at any time after). */
  start(): Promise<void> {
    this.#stopped = false;
    this.#ready ??= this.#spawn();
    return this.#ready;
  }

  /** The child's pid (tests kill it to see it come back). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#restart);
    this.#child?.kill('SIGTERM');
    this.#child = undefined;
  }

  #spawn(): Promise<void> {
    const args = [...(this.opts.netns ? ['-n', this.opts.netns] : []), '-o', 'monitor', 'label', 'neigh', 'route', 'link'];
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    const started = Date.now();
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { if (stderr.length < 2048) stderr += d; });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = parseMonitorLine(line);
      if (e) this.opts.onEvent(e);
    });
    child.once('exit', (code, signal) => {
      if (this.#child !== child) return;
      this.#child = undefined;
      if (this.#stopped) return;
      this.#backoff = Date.now() - started > HEALTHY_MS ? 0 : Math.min(MAX_BACKOFF_MS, Math.max(100, this.#backoff * 2));
      log.warn({ code, signal, stderr: stderr.trim() || undefined, restartInMs: this.#backoff }, 'ip monitor exited; restarting it');
      this.#restart = setTimeout(() => {
        if (this.#stopped) return;
        void this.#spawn().then(() => this.opts.onRestart());
      }, this.#backoff);
    });
    return new Promise((resolve) => {
      child.once('spawn', () => resolve());
      child.once('error', (e) => {
        log.error({ err: e.message }, 'cannot run ip monitor');
        resolve();
      });
    });
  }
}
