import { XvsError, ipvsadmWords, isXvsError, type CommandKind } from '../errors.js';
import type { BatchRequest, ChangeResult, ConnView, FwmarkRule, LaddrView, ListResult, Request, Timeouts } from '../control/protocol.js';
import { DEFAULT_SOCKET, request } from '../control/socket.js';
import { PROG, commandToRequest, parseIpvsadm, type Command, type RequestCommand } from './ipvsadm-args.js';
import { formatFwmarkRules } from './fwmark-format.js';
import { formatLaddrs } from './laddr-format.js';
import { formatConnections, formatList, formatTimeouts, listedAddrs } from './list-format.js';
import { recordingNames, resolveNames, systemNameSources, type NameSources, type Names } from './names.js';
import { atLine, formatSave, parseRestore, splitRestore } from './save-format.js';

export interface XvsadmDeps {
  /** Sends one request to xvsd at socketPath (the --socket choice), waiting up to timeoutMs (default: the socket's). */
  request: (req: Request, socketPath: string, timeoutMs?: number) => Promise<unknown>;
  /** -R's input (default: all of stdin). */
  readInput?: () => Promise<string>;
  /** Where host and service names come from (default: the system's). */
  names?: NameSources;
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

/** The host names a command line (or several) would look up, found by parsing once with names that know none. */
function askedHosts(lines: readonly string[][]): Set<string> {
  const asked = new Set<string>();
  for (const argv of lines) {
    try {
      parseIpvsadm(argv, { names: recordingNames(asked), readingStdin: true });
    } catch {
      // The real parse below reports it.
    }
  }
  return asked;
}

/** Which of ipvsadm's error tables a command's refusals come from. */
function kindOf(op: string): CommandKind {
  if (op === 'add-real' || op === 'edit-real' || op === 'del-real') return 'real';
  return op === 'add-laddr' || op === 'del-laddr' || op === 'get-laddrs' ? 'laddr' : 'service';
}

// ipvsadm's list paths (list_all, list_service, list_conn, -S; the forks' list_laddrs) exit 1 on any failure to read the table.
const LIST_OPS = new Set(['list', 'connections', 'save', 'get-timeouts', 'get-laddrs', 'list-fwmark-rules']);

/** What xvsd answered a change with, as stderr lines: ipvsadm's own warnings look the same. */
function warningLines(result: unknown): string[] {
  const w = (result as Partial<ChangeResult> | undefined)?.warnings;
  return Array.isArray(w) ? w.map((line) => `${PROG}: warning: ${String(line)}\n`) : [];
}

/** ipvsadm's words on the first line (with the restore line that met them), xvs's code, message and hint after. */
export function renderError(err: XvsError, op: string | undefined): { text: string; exitCode: number } {
  const line = (err as { line?: number }).line;
  const pre = line === undefined ? '' : `line ${line}: `;
  const exitCode = op !== undefined && LIST_OPS.has(op) && err.exitCode === 255 ? 1 : err.exitCode;
  const words = ipvsadmWords(err.code, kindOf(op ?? ''));
  if (words !== undefined) return { text: `${pre}${words}\n${PROG}: ${err.oneLine()}\n`, exitCode };
  if (err.code === 'BAD_ARGUMENT' || err.code === 'USAGE') {
    return { text: `${err.message}\n${err.hint ? `${PROG}: hint: ${err.hint}\n` : ''}`, exitCode };
  }
  return { text: `${PROG}: ${err.oneLine()}\n`, exitCode };
}

// A restore of thousands of real servers resolves each one's next hop before
// anything is written; it may take a while, and stopping to wait would not
// stop xvsd from finishing it.
const BATCH_TIMEOUT_MS = 10 * 60_000;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

interface Run {
  socketPath: string;
  deps: XvsadmDeps;
  sources: NameSources;
  stderr: string[];
}

async function reverseNames(run: Run, addrs: Iterable<string>): Promise<Names> {
  return resolveNames(run.sources, [], addrs);
}

async function restore(run: Run): Promise<string> {
  const text = await (run.deps.readInput ?? readStdin)();
  const names = await resolveNames(run.sources, askedHosts(splitRestore(text).map((l) => l.argv)), []);
  const parsed = parseRestore(text, names);
  run.stderr.push(...parsed.warnings.map((w) => `${w}\n`));
  try {
    const result = await run.deps.request({ op: 'batch', requests: parsed.requests as BatchRequest[] }, run.socketPath, BATCH_TIMEOUT_MS);
    run.stderr.push(...warningLines(result));
  } catch (e) {
    const m = isXvsError(e) ? /^request (\d+): ([\s\S]*)$/.exec(e.message) : null;
    if (!m || !isXvsError(e)) throw e;
    const i = Number(m[1]) - 1;
    const opts: { hint?: string } = e.hint === undefined ? {} : { hint: e.hint };
    const err = atLine(new XvsError(e.code, m[2]!, opts), parsed.lines[i] ?? 0);
    throw Object.assign(err, { op: parsed.requests[i]?.op });
  }
  return '';
}

async function execute(cmd: Command, run: Run): Promise<string> {
  switch (cmd.op) {
    case 'help':
    case 'version':
      return cmd.text;
    case 'list-daemon':
      return ''; // no sync daemon runs, so ipvsadm would print nothing
    case 'restore':
      return restore(run);
    case 'save': {
      const res = await run.deps.request({ op: 'list' }, run.socketPath) as ListResult;
      return formatSave(res, cmd.numeric ? undefined : await reverseNames(run, listedAddrs(res)));
    }
    case 'connections': {
      const conns = await run.deps.request({ op: 'connections' }, run.socketPath) as ConnView[];
      const names = cmd.numeric ? undefined : await reverseNames(run, conns.flatMap((c) => [c.caddr, c.vaddr, c.daddr]));
      return formatConnections(conns, { persistentConn: cmd.persistentConn, ...(names ? { names } : {}) });
    }
    case 'get-timeouts': {
      const t = await run.deps.request(cmd, run.socketPath) as Partial<Timeouts> | null;
      if (![t?.tcp, t?.tcpfin, t?.udp].every(Number.isInteger)) throw new XvsError('DAEMON', 'xvsd sent no timeouts for get-timeouts');
      return formatTimeouts(t as Timeouts);
    }
    case 'list-fwmark-rules':
      return formatFwmarkRules(await run.deps.request({ op: 'list-fwmark-rules' }, run.socketPath) as FwmarkRule[], cmd.mark);
    case 'get-laddrs':
      return formatLaddrs(await run.deps.request(commandToRequest(cmd), run.socketPath) as LaddrView[]);
    case 'list': {
      const res = await run.deps.request(commandToRequest(cmd), run.socketPath) as ListResult;
      const names = cmd.list.numeric ? undefined : await reverseNames(run, listedAddrs(res));
      return formatList(res, { ...cmd.list, header: cmd.key === undefined, ...(names ? { names } : {}) });
    }
    default: {
      const rc = cmd as RequestCommand;
      if ('warnings' in rc && rc.warnings) run.stderr.push(...rc.warnings.map((w) => `${w}\n`));
      run.stderr.push(...warningLines(await run.deps.request(commandToRequest(rc), run.socketPath)));
      return '';
    }
  }
}

/** xvsadm without the process: argv (no program name) in, output and exit code out. */
export async function runXvsadm(argv: string[], deps: XvsadmDeps): Promise<XvsadmResult> {
  const run: Run = { socketPath: DEFAULT_SOCKET, deps, sources: deps.names ?? systemNameSources, stderr: [] };
  let op: string | undefined;
  try {
    const extracted = extractSocket(argv);
    run.socketPath = extracted.socketPath;
    const hosts = askedHosts([extracted.rest]);
    const names = await resolveNames(run.sources, hosts, []);
    const cmd = parseIpvsadm(extracted.rest, { names });
    op = cmd.op;
    const stdout = await execute(cmd, run);
    return { stdout, stderr: run.stderr.join(''), exitCode: 0, socketPath: run.socketPath };
  } catch (e) {
    const err = isXvsError(e) ? e : new XvsError('SYSTEM', e instanceof Error ? e.message : String(e), { cause: e });
    const { text, exitCode } = renderError(err, (err as { op?: string }).op ?? op);
    return { stdout: '', stderr: run.stderr.join('') + text, exitCode, socketPath: run.socketPath };
  }
}

export async function main(): Promise<void> {
  const res = await runXvsadm(process.argv.slice(2), { request: (req, path, timeoutMs) => request(path, req, timeoutMs) });
  if (res.stdout) process.stdout.write(res.stdout);
  if (res.stderr) process.stderr.write(res.stderr);
  process.exitCode = res.exitCode;
}
