// A real xvsd in a network namespace of its own (one veth pair, the
// documentation range inside it), driven by the real xvsadm binary: what an
// operator's shell sees, exit codes included. Its pins live in the /sys that
// `ip netns exec` mounts for each run, so they die with the process: a
// restart is a director after a reboot.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from '../../src/control/socket.js';
import type { Request } from '../../src/control/protocol.js';
import { packageRoot } from '../../src/paths.js';
import { sh } from './env.js';

const bin = (name: string) => path.join(packageRoot, 'dist', 'src', 'cli', name);

export interface Exec {
  stdout: string;
  stderr: string;
  code: number;
}

export interface XvsdNs {
  ns: string;
  dir: string;
  socket: string;
  /** xvsadm --socket SOCKET ARGS, from the root namespace (the socket is a file). */
  xvsadm(args: string[], input?: string): Promise<Exec>;
  /** The same inside the namespace, where /etc/netns/NS/{hosts,services} are /etc's. */
  xvsadmInNs(args: string[], input?: string): Promise<Exec>;
  request(req: Request): Promise<unknown>;
  /** xvsd's stderr (its pino log) so far. */
  log(): string;
  start(extra?: string[]): Promise<void>;
  /** SIGTERM (or SIGKILL) and wait. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops xvsd, deletes the namespace, the temporary directory and /etc/netns/NS. */
  close(): Promise<void>;
}

function exec(cmd: string, args: string[], input?: string): Promise<Exec> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 30_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ stdout, stderr, code });
    });
    child.stdin?.end(input ?? '');
  });
}

/** Namespace files (hosts, services, resolv.conf) that `ip netns exec` binds over /etc's. */
export function etcNetns(ns: string, files: Record<string, string>): void {
  const dir = `/etc/netns/${ns}`;
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
}

export async function xvsdNs(name: string): Promise<XvsdNs> {
  const ns = `${name}${process.pid % 100000}`;
  try { sh('ip', ['netns', 'del', ns]); } catch { /* not there */ }
  sh('ip', ['netns', 'add', ns]);
  const ip = (...a: string[]) => sh('ip', ['-n', ns, ...a]);
  ip('link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'p0');
  for (const d of ['lo', 'd0', 'p0']) ip('link', 'set', d, 'up');
  ip('addr', 'add', '192.0.2.1/24', 'dev', 'd0');
  const dir = mkdtempSync(path.join(tmpdir(), `${name}-`));
  const socket = path.join(dir, 'xvsd.sock');
  let child: ChildProcess | undefined;
  let log = '';

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill(signal);
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  };

  const start = async (extra: string[] = []): Promise<void> => {
    if (child) throw new Error('xvsd is already running: stop it first');
    const c = spawn('ip', ['netns', 'exec', ns, process.execPath, bin('xvsd.js'), '--interface', 'd0', '--socket', socket,
      '--conn-table-size', '4096', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    c.stderr!.setEncoding('utf8').on('data', (d: string) => { if (log.length < 1 << 20) log += d; });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (c.exitCode !== null) {
        child = undefined;
        throw new Error(`xvsd exited with ${c.exitCode}: ${log}`);
      }
      try {
        await request(socket, { op: 'status' }, 1000);
        return;
      } catch {
        if (Date.now() > deadline) {
          await stop('SIGKILL');
          throw new Error(`xvsd did not answer within 15 s: ${log}`);
        }
        await sleep(100);
      }
    }
  };

  return {
    ns, dir, socket,
    xvsadm: (args, input) => exec(process.execPath, [bin('xvsadm.js'), '--socket', socket, ...args], input),
    xvsadmInNs: (args, input) => exec('ip', ['netns', 'exec', ns, process.execPath, bin('xvsadm.js'), '--socket', socket, ...args], input),
    request: (req) => request(socket, req),
    log: () => log,
    start,
    stop,
    close: async () => {
      await stop();
      try { sh('ip', ['netns', 'del', ns]); } catch { /* gone */ }
      rmSync(dir, { recursive: true, force: true });
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    },
  };
}
