import { isIPv4 } from 'node:net';
import { BATCH_OPS as PROTOCOL_BATCH_OPS, DEFAULT_NETMASK, DEFAULT_PREFIX6, type ListResult, type RealView, type ServiceView, type Timeouts } from '../control/protocol.js';
import { XvsError } from '../errors.js';
import { MODES } from '../modes/index.js';
import { formatSchedFlags } from '../schedulers/flags.js';
import { commandToRequest, parseIpvsadm, type Mutation, type RequestCommand } from './ipvsadm-args.js';
import { fwmarkRuleLine } from './fwmark-format.js';
import { hostPort, sortedReals, sortedServices } from './list-format.js';
import type { Names } from './names.js';
import { tunRule } from './tun-format.js';

// ipvsadm -S (print_service_entry with FMT_RULE) and -R (restore_table with
// config_stream_read): the save format is ipvsadm's rule lines, which -R
// reads back one command line per line. FULLNAT as the forks write it (-b
// on the real server's line); their -S keeps no local addresses, xvs's
// writes each as a -P line right after its service's -A, so that a restore,
// xvs's all at once or any ipvsadm's line by line, never holds a FULLNAT
// real server whose pool is still empty. Fwmark rules (xvs's, in place of
// netfilter's marks) follow the services as the command lines that add them.

function ruleService(svc: ServiceView, names?: Names): string {
  // ipvsadm's "-f %d" and "-f %d -6" (the mark unsigned here: a mark of 2^31 or more reads back).
  if (svc.fwmark) return `-f ${svc.fwmark}${isIPv4(svc.addr) ? '' : ' -6'}`;
  return `-${svc.proto === 'tcp' ? 't' : 'u'} ${hostPort(svc.addr, svc.port, svc.proto, names)}`;
}

/** "-A -t VIP:PORT -s SCHED [-p T [-M MASK]] [-o] [-b FLAGS]" */
function serviceRule(svc: ServiceView, names?: Names): string {
  let line = `-A ${ruleService(svc, names)} -s ${svc.scheduler}`;
  if (svc.persistent !== undefined) {
    line += ` -p ${svc.persistent}`;
    // A dotted mask for IPv4 (" -M %s"), the prefix length for IPv6 (" -M %i"), each only when not the whole address.
    const whole = isIPv4(svc.addr) ? DEFAULT_NETMASK : DEFAULT_PREFIX6;
    if (svc.netmask !== undefined && svc.netmask !== whole) line += ` -M ${svc.netmask}`;
  }
  if (svc.ops) line += ' -o';
  if (svc.schedFlags) line += ` -b ${formatSchedFlags(svc.scheduler, svc.schedFlags)}`;
  return line;
}

/**
 * "-a -t VIP:PORT -r RIP:PORT -g -w W", and the tunnel's options for a
 * tunnel as ipvsadm 1.31 writes them (tun-format.ts). ipvsadm saves no thresholds; xvs appends
 * "-x U -y L" when either is set (both options of ipvsadm's -a), so that a
 * restore loses nothing, and a rule without thresholds stays ipvsadm's line.
 */
function realRule(svc: ServiceView, r: RealView, names?: Names): string {
  let line = `-a ${ruleService(svc, names)} -r ${hostPort(r.addr, r.port || svc.port, svc.proto, names)} ${MODES[r.fwd].flag} -w ${r.weight}`;
  if (r.fwd === 'tun') line += tunRule(r);
  if (r.uthreshold !== 0 || r.lthreshold !== 0) line += ` -x ${r.uthreshold} -y ${r.lthreshold}`;
  return line;
}

/**
 * "-P -t VIP:PORT -z LIP", in the order they were added (a flow's place in
 * the pool depends on it). The address is always numeric: it is one of the
 * director's own, and -z reads no IPv6 host name back.
 */
function laddrRule(svc: ServiceView, laddr: string, names?: Names): string {
  return `-P ${ruleService(svc, names)} -z ${laddr}`;
}

/** `ipvsadm -S [-n]`: sorted as the listing is. */
export function formatSave(res: ListResult, names?: Names): string {
  const lines: string[] = [];
  for (const svc of sortedServices(res)) {
    lines.push(serviceRule(svc, names));
    for (const a of svc.laddrs ?? []) lines.push(laddrRule(svc, a, names));
    for (const r of sortedReals(svc)) lines.push(realRule(svc, r, names));
  }
  // xvs's own lines after ipvsadm's, which stay as ipvsadm writes them.
  for (const r of res.fwmarkRules ?? []) lines.push(fwmarkRuleLine(r));
  return lines.map((l) => `${l}\n`).join('');
}

/** The daemon's configuration file: the -S -n rules and, last, the timeouts as a --set line. */
export function formatConfig(res: ListResult, timeouts: Timeouts): string {
  return `# xvsd configuration (ipvsadm -S -n format; xvsadm -R reads it)\n${formatSave(res)}--set ${timeouts.tcp} ${timeouts.tcpfin} ${timeouts.udp}\n`;
}

/** One command line of -R's input. */
export interface RestoreLine {
  line: number;
  argv: string[];
}

/**
 * config_stream_read: words split on blanks, the word "ipvsadm" dropped
 * wherever it stands, blank lines skipped; and, as ipvsadm-restore users
 * expect, '#' starts a comment to the end of the line.
 */
export function splitRestore(text: string): RestoreLine[] {
  const out: RestoreLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const hash = raw.search(/(^|[ \t\r])#/);
    const body = hash < 0 ? raw : raw.slice(0, hash);
    const argv = body.split(/[ \t\r]+/).filter((w) => w !== '' && w !== 'ipvsadm');
    if (argv.length > 0) out.push({ line: i + 1, argv });
  });
  return out;
}

const BATCH_OPS: ReadonlySet<string> = new Set(PROTOCOL_BATCH_OPS);

export interface ParsedRestore {
  requests: Mutation[];
  /** The input line of each request. */
  lines: number[];
  warnings: string[];
}

/** Every line of -R's input as a request, or the first bad line's error, naming it. */
export function parseRestore(text: string, names?: Names): ParsedRestore {
  const requests: Mutation[] = [];
  const lines: number[] = [];
  const warnings: string[] = [];
  for (const { line, argv } of splitRestore(text)) {
    try {
      const cmd = parseIpvsadm(argv, { readingStdin: true, ...(names ? { names } : {}) });
      if (!BATCH_OPS.has(cmd.op)) {
        throw new XvsError('UNSUPPORTED', `${argv[0]} in a restore is not supported: only commands that change the table are`);
      }
      const rc = cmd as RequestCommand;
      if ('warnings' in rc && rc.warnings) warnings.push(...rc.warnings.map((w) => `line ${line}: ${w}`));
      requests.push(commandToRequest(rc) as Mutation);
      lines.push(line);
    } catch (e) {
      throw atLine(e, line);
    }
  }
  return { requests, lines, warnings };
}

/** The same error, its message naming the input line. */
export function atLine(e: unknown, line: number): XvsError {
  if (!(e instanceof XvsError)) return new XvsError('SYSTEM', `line ${line}: ${e instanceof Error ? e.message : String(e)}`);
  const opts: { hint?: string; detail?: string } = {};
  if (e.hint !== undefined) opts.hint = e.hint;
  if (e.detail !== undefined) opts.detail = e.detail;
  return Object.assign(new XvsError(e.code, `line ${line}: ${e.message}`, opts), { line });
}
