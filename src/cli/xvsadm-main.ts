import { XvsError, isXvsError } from '../errors.js';
import type { ListResult, Request, Timeouts } from '../control/protocol.js';
import { DEFAULT_SOCKET, request } from '../control/socket.js';
import { commandToRequest, parseIpvsadm } from './ipvsadm-args.js';
import { formatList, formatTimeouts } from './list-format.js';

export interface XvsadmDeps {
  /** Sends one request to xvsd at socketPath (the --socket choice). */
  request: (req: Request, socketPath: string) => Promise<unknown>;
}

export interface XvsadmResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  socketPath: string;
}

/**
 * Takes `--socket PATH` / `--socket=PATH` out of argv: it is ours, not
 * ipvsadm's, and may sit anywhere among ipvsadm's options.
 */
export function extractSocket(argv: readonly string[]): { socketPath: string; rest: string[] } {
  let socketPath = DEFAULT_SOCKET;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--socket') {
      const path = argv[++i];
      if (path === undefined || path === '') throw new XvsError('BAD_ARGUMENT', '--socket needs a path');
      socketPath = path;
    } else if (arg.startsWith('--socket=')) {
      socketPath = arg.slice('--socket='.length);
      if (socketPath === '') throw new XvsError('BAD_ARGUMENT', '--socket needs a path');
    } else {
      rest.push(arg);
    }
  }
  return { socketPath, rest };
}

/** xvsadm without the process: argv (no program name) in, output and exit code out. */
export async function runXvsadm(argv: string[], deps: XvsadmDeps): Promise<XvsadmResult> {
  let socketPath = DEFAULT_SOCKET;
  try {
    const extracted = extractSocket(argv);
    socketPath = extracted.socketPath;
    const cmd = parseIpvsadm(extracted.rest);
    if (cmd.op === 'help') return { stdout: cmd.text, stderr: '', exitCode: 0, socketPath };
    const result = await deps.request(commandToRequest(cmd), socketPath);
    let stdout = '';
    if (cmd.op === 'list') {
      stdout = formatList(result as ListResult, {
        stats: cmd.list.stats, exact: cmd.list.exact, thresholds: !!cmd.list.thresholds, header: cmd.key === undefined,
      });
    } else if (cmd.op === 'get-timeouts') {
      const t = result as Partial<Timeouts> | null;
      if (![t?.tcp, t?.tcpfin, t?.udp].every(Number.isInteger)) throw new XvsError('DAEMON', 'xvsd sent no timeouts for get-timeouts');
      stdout = formatTimeouts(result as Timeouts);
    }
    return { stdout, stderr: '', exitCode: 0, socketPath };
  } catch (e) {
    const err = isXvsError(e) ? e : new XvsError('SYSTEM', e instanceof Error ? e.message : String(e), { cause: e });
    // One line whatever the message holds: scripts read stderr line by line.
    return { stdout: '', stderr: `xvsadm: ${err.oneLine().replace(/\s*\n\s*/g, ' ')}\n`, exitCode: err.exitCode, socketPath };
  }
}

export async function main(): Promise<void> {
  const res = await runXvsadm(process.argv.slice(2), { request: (req, path) => request(path, req) });
  if (res.stdout) process.stdout.write(res.stdout);
  if (res.stderr) process.stderr.write(res.stderr);
  process.exitCode = res.exitCode;
}
