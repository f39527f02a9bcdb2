// Drives the lab the way an operator would: xvsd in the director namespace,
// xvsadm and `xvs realserver` as commands, curl and a Node client as clients.
import { spawn, type ChildProcess } from 'node:child_process';
import { isIPv6 } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from '../control/socket.js';
import { DEFAULT_PIN_DIR } from '../daemon/dataplane.js';
import { XvsError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { nsExec, run, type Lab, type LabHost } from './topology.js';

const bin = (name: string) => path.join(packageRoot, 'dist', 'src', name);

export interface DirectorHandle {
  socket: string;
  pinDir: string;
  pid: number;
  /** What xvsd has written to stderr so far (its pino log), up to 64 KiB. */
  stderr(): string;
  xvsadm(args: string[]): Promise<string>;
  /** SIGTERM (SIGKILL after 5 s), or SIGKILL at once: a crash, which leaves the pins and the attached program as they were. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
}

export interface DirectorOptions {
  connTableSize?: number;
  /**
   * Leave --pin-dir to xvsd (/sys/fs/bpf/xvs in the mount namespace `ip netns
   * exec` makes for it, gone when it exits) instead of the lab's bpffs.
   */
  defaultPinDir?: boolean;
}

/** The director holds the VIP (it answers ARP for it) and runs xvsd. */
export async function startDirector(lab: Lab, opts: DirectorOptions = {}): Promise<DirectorHandle> {
  const socket = path.join(lab.dir, 'xvsd.sock');
  const pinDir = opts.defaultPinDir ? DEFAULT_PIN_DIR : path.join(lab.bpffs, 'director');
  await run('ip', ['-n', lab.director.ns, 'addr', 'replace', ...vipOnInterface(lab.vip), 'dev', lab.director.ifname]);
  const args = ['netns', 'exec', lab.director.ns, process.execPath, bin('cli/xvsd.js'),
    ...lab.directorInterfaces.flatMap((i) => ['--interface', i]), '--socket', socket, ...(opts.defaultPinDir ? [] : ['--pin-dir', pinDir]),
    '--conn-table-size', String(opts.connTableSize ?? 65536)];
  // `ip netns exec` execs the command, so the child's pid is xvsd's.
  const child = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XVS_LOG_LEVEL: 'warn' } });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { if (stderr.length < 65536) stderr += d; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new XvsError('SYSTEM', `xvsd exited with ${child.exitCode}: ${stderr.trim()}`);
    try {
      await request(socket, { op: 'status' }, 1000);
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new XvsError('SYSTEM', `xvsd did not answer on ${socket} within 15 s: ${stderr.trim()}`);
      }
      await sleep(100);
    }
  }
  return {
    socket,
    pinDir,
    pid: child.pid ?? 0,
    stderr: () => stderr,
    xvsadm: (a) => run(process.execPath, [bin('cli/xvsadm.js'), '--socket', socket, ...a]),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

/** `extra`: more options of `xvs realserver`, such as a TUN real server's --tun-type and --tun-port. */
export async function realServerSetup(lab: Lab, host: LabHost, mode: 'dr' | 'tun' | 'nat', action: 'setup' | 'teardown' = 'setup', extra: string[] = []): Promise<string> {
  // NAT: the gateway is the director's address on the real servers' side.
  const nat = mode === 'nat' && action === 'setup' ? ['--director', lab.directorServerSide.ip] : [];
  return nsExec(host.ns, process.execPath, [bin('cli/xvs.js'), 'realserver', action, '--vip', lab.vip, '--mode', mode, ...nat,
    '--interface', host.ifname, '--pin-dir', path.join(lab.bpffs, host.name), '--state-dir', path.join(lab.dir, host.name), ...extra]);
}

/** The director's VIP address: an IPv6 one takes no part in duplicate address detection. */
function vipOnInterface(vip: string): string[] {
  return isIPv6(vip) ? [`${vip}/128`, 'nodad'] : [`${vip}/32`];
}

/** http://VIP:PORT/, the IPv6 VIP in brackets (which curl then must not read as a glob: -g). */
export function vipUrl(lab: Lab, port = 80): string {
  return `http://${isIPv6(lab.vip) ? `[${lab.vip}]` : lab.vip}:${port}/`;
}

/** n HTTP requests from the client, one TCP connection each; returns who answered. */
export async function curlMany(lab: Lab, n: number, port = 80): Promise<string[]> {
  const url = vipUrl(lab, port);
  const names: string[] = [];
  for (let done = 0; done < n;) {
    const k = Math.min(50, n - done);
    const out = await nsExec(lab.client.ns, 'curl', ['-s', '-g', '--fail', '--max-time', '3', '-H', 'Connection: close', ...Array<string>(k).fill(url)], { timeoutMs: 60_000 });
    names.push(...out.split('\n').filter(Boolean));
    done += k;
  }
  return names;
}

export interface KeepAliveResult { localPorts: number[]; servers: string[] }

export async function keepAliveRequests(lab: Lab, connections: number, requests: number, opts: { port?: number; intervalMs?: number } = {}): Promise<KeepAliveResult[]> {
  const out = await nsExec(lab.client.ns, process.execPath, [bin('lab/client.js'), '--url', vipUrl(lab, opts.port),
    '--connections', String(connections), '--requests', String(requests), '--interval-ms', String(opts.intervalMs ?? 0)], { timeoutMs: 60_000 });
  return JSON.parse(out) as KeepAliveResult[];
}

/**
 * Waits until no TCP connection of the client to the VIP, nor of a real
 * server on port, is open at either end (TIME-WAIT aside): then the last
 * packet of each, whichever end closed first, has been delivered, and so
 * has everything the director forwarded for it. Bounded: 10 s.
 */
export async function connectionsClosed(lab: Lab, port = 80): Promise<void> {
  const open = async (ns: string, filter: string[]): Promise<number> => (await nsExec(ns, 'ss', ['-Htn', 'state', 'all', ...filter]))
    .split('\n').filter((l) => l.trim() && !/^(TIME-WAIT|LISTEN|UNCONN)\s/.test(l.trim())).length;
  const deadline = Date.now() + 10_000;
  for (;;) {
    // ss takes an IPv6 address in brackets.
    let n = await open(lab.client.ns, ['dst', isIPv6(lab.vip) ? `[${lab.vip}]` : lab.vip]);
    for (const r of lab.reals) n += await open(r.ns, ['sport', `= :${port}`]);
    if (n === 0) return;
    if (Date.now() > deadline) throw new XvsError('SYSTEM', `${n} lab connections still open after 10 s`);
    await sleep(50);
  }
}

/** Source MACs of every packet from the VIP that reached the client while fn ran. */
export async function captureReplySources<T>(lab: Lab, fn: () => Promise<T>): Promise<{ result: T; macs: Map<string, number> }> {
  return captureSources(lab.client.ns, lab.client.ifname, `tcp and src host ${lab.vip}`, fn);
}

/**
 * Source MACs of every frame matching filter (tcpdump's syntax) that
 * interface ifname in namespace ns received or sent while fn ran. On a
 * switch-side veth end that is what the host's interface put on the wire.
 */
export async function captureSources<T>(ns: string, ifname: string, filter: string, fn: () => Promise<T>): Promise<{ result: T; macs: Map<string, number> }> {
  const { result, text } = await capture(ns, ifname, filter, fn);
  return { result, macs: countMacs(text) };
}

/**
 * tcpdump's lines (-e -nn -q) for every frame matching filter that interface
 * ifname in namespace ns received or sent while fn ran, every one of them
 * read (see caughtUp).
 */
export async function capture<T>(ns: string, ifname: string, filter: string, fn: () => Promise<T>): Promise<{ result: T; text: string }> {
  const cap = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-i', ifname, '-e', '-nn', '-l', '-q', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  let stderr = '';
  cap.stdout.setEncoding('utf8').on('data', (d: string) => { text += d; });
  // 'close', not 'exit': the last lines of stdout may arrive after the exit.
  const exited = new Promise<void>((resolve) => cap.once('close', () => resolve()));
  // Without tcpdump's word that it listens, a count of zero would prove nothing.
  let timer: NodeJS.Timeout | undefined;
  const started = new Promise<void>((resolve, reject) => {
    cap.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; if (stderr.includes('listening')) resolve(); });
    cap.once('exit', () => reject(new XvsError('SYSTEM', `tcpdump on ${ns}/${ifname} exited: ${stderr.trim()}`)));
    timer = setTimeout(() => reject(new XvsError('SYSTEM', `tcpdump on ${ns}/${ifname} did not start within 10 s: ${stderr.trim()}`)), 10_000);
  });
  try {
    await started.finally(() => clearTimeout(timer));
    const result = await fn();
    await sleep(300);
    await caughtUp(cap, () => stderr, `${ns}/${ifname}`);
    cap.kill('SIGINT');
    await exited;
    // tcpdump's own count on exit: a frame the kernel dropped before tcpdump read it would be missing from the tally.
    const dropped = /(\d+) packets? dropped by kernel/.exec(stderr);
    if (dropped && Number(dropped[1]) > 0) throw new XvsError('SYSTEM', `tcpdump on ${ns}/${ifname}: ${dropped[1]} packets dropped by the kernel`);
    return { result, text };
  } finally {
    if (cap.exitCode === null && cap.signalCode === null) cap.kill('SIGINT');
    await exited;
  }
}

/**
 * Waits until tcpdump has read every frame its filter took (SIGUSR1 makes it
 * print "N packets captured, M packets received by filter"): a frame still
 * in its buffer when it is stopped would be missing from the tally, however
 * busy the machine. Bounded: 15 s.
 */
async function caughtUp(cap: ChildProcess, stderr: () => string, where: string): Promise<void> {
  const stats = /(\d+) packets? captured, (\d+) packets? received by filter/g;
  const deadline = Date.now() + 15_000;
  let last = '';
  while (Date.now() < deadline) {
    const seen = stderr().match(stats)?.length ?? 0;
    cap.kill('SIGUSR1');
    for (let i = 0; i < 50 && (stderr().match(stats)?.length ?? 0) === seen; i++) await sleep(20);
    const all = [...stderr().matchAll(stats)];
    const m = all[all.length - 1];
    if (m && all.length > seen) {
      last = m[0];
      if (m[1] === m[2]) return;
    }
    await sleep(100);
  }
  throw new XvsError('SYSTEM', `tcpdump on ${where} did not catch up within 15 s (${last || 'no statistics'})`);
}

function countMacs(text: string): Map<string, number> {
  const macs = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^\S+\s+([0-9a-f:]{17}) >/.exec(line);
    if (m?.[1]) macs.set(m[1], (macs.get(m[1]) ?? 0) + 1);
  }
  return macs;
}
