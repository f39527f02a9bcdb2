// Starts lab/httpd.ts inside a lab host's namespace. `ip netns exec` execs
// node in place, so the child's pid is the server's and signals reach it.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { XvsError } from '../errors.js';
import type { Lab, LabHost } from './topology.js';

const HTTPD = fileURLToPath(new URL('./httpd.js', import.meta.url));

export interface HttpdOptions {
  port?: number;
  holdMs?: number;
  startTimeoutMs?: number;
}

export interface RunningHttpd {
  pid: number;
  stop(): Promise<void>;
}

export function startHttpd(lab: Lab, host: LabHost, name: string, opts: HttpdOptions = {}): Promise<RunningHttpd> {
  const args = ['netns', 'exec', host.ns, process.execPath, HTTPD, '--name', name, '--port', String(opts.port ?? 80)];
  if (opts.holdMs) args.push('--hold-ms', String(opts.holdMs));
  // A host with IPv6 listens on both families (:: takes IPv4 too); one without could not bind ::.
  if (host.ip6) args.push('--host', '::');
  const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });

  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(killer);
  };

  const where = `httpd ${name} in ${host.ns} (lab ${lab.id})`;
  return new Promise((resolve, reject) => {
    let out = '';
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stop();
      reject(new XvsError('SYSTEM', `${where}: ${why}`));
    };
    const timeoutMs = opts.startTimeoutMs ?? 10_000;
    const timer = setTimeout(() => fail(`not listening after ${timeoutMs} ms`), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (!settled && out.includes('listening')) {
        settled = true;
        clearTimeout(timer);
        // Keep draining stdout so the child never blocks on a full pipe.
        child.stdout.removeAllListeners('data').resume();
        resolve({ pid: child.pid ?? -1, stop });
      }
    });
    child.once('error', (e) => fail(e.message));
    child.once('exit', (code, sig) => fail(`exited (${sig ?? code}): ${stderr.replace(/\s+/g, ' ').trim()}`));
  });
}
