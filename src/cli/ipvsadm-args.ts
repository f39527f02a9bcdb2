import { isIPv6 } from 'node:net';
import { XvsError } from '../errors.js';
import { parseSchedFlags } from '../schedulers/flags.js';
import { DEFAULT_SCHEDULER, isSchedulerName } from '../schedulers/registry.js';
import {
  DEFAULT_PERSISTENT, MAX_TIMEOUT, type Fwd, type Proto, type Request, type ServiceKey, type ServiceSpec,
} from '../control/protocol.js';
import { TUN_CSUMS, type Tunnel } from '../modes/tunnel.js';
import { isFwmarkCommand, parseFwmarkCommand, type FwmarkCommand } from './fwmark-args.js';
import { inetAton, type NameProto, type Names } from './names.js';
import { popt, type PoptOption } from './popt.js';

// ipvsadm 1.31's command line (ipvsadm.c: parse_options, process_options,
// generic_opt_check), step for step, so that every command line gets the
// message and exit code ipvsadm gives it, in the order ipvsadm finds them:
// the first option must be the command; each option is checked as it comes;
// then the --set values, stray words, scheduler flags, the table of legal
// command/option pairs, the per-command rules. What the kernel would refuse
// without looking at its state (an unknown scheduler, thresholds out of
// order) is refused here with the kernel's words; what ipvsadm accepts and
// xvs cannot do yet is refused last, as UNSUPPORTED.
//
// FULLNAT comes in the grammar of the forks that have it (Alibaba's LVS,
// DPVS): -b/--fullnat as a forwarding method, -P/--add-laddr,
// -Q/--del-laddr with -z/--laddr ADDR, -G/--get-laddr. ipvsadm 1.31 took -b
// for --sched-flags since; the command comes first in ipvsadm's grammar, so
// the command decides: -b is FULLNAT after a real-server or local-address
// command and --sched-flags after any other.

export const PROG = 'xvsadm';
export const IPVSADM_VERSION = 'v1.31 2019/12/24';
/** The IPVS version ipvsadm prints; tools grep for it. */
export const IPVS_VERSION = '1.2.1';

export interface ListOptions {
  numeric: boolean;
  stats: boolean;
  exact: boolean;
  /** --thresholds; present only when given. --stats wins over it, as in ipvsadm. */
  thresholds?: boolean;
  rate?: boolean;
  persistentConn?: boolean;
  nosort?: boolean;
  tunInfo?: boolean;
}

type MutationOp = 'add-service' | 'edit-service' | 'del-service' | 'add-real' | 'edit-real' | 'del-real' | 'clear' | 'zero' | 'set-timeouts' | 'add-laddr' | 'del-laddr'
  | 'add-fwmark-rule' | 'del-fwmark-rule';
export type Mutation = Extract<Request, { op: MutationOp }>;

export type RequestCommand =
  | (Mutation & { warnings?: string[] })
  | { op: 'get-timeouts' }
  | { op: 'list'; key?: ServiceKey; list: ListOptions }
  /** -G */
  | { op: 'get-laddrs'; key?: ServiceKey };

export type Command =
  | RequestCommand
  | { op: 'help'; text: string }
  | { op: 'version'; text: string }
  /** -L -c */
  | { op: 'connections'; numeric: boolean; persistentConn: boolean }
  /** -L --daemon: the sync daemons running, of which xvs has none. */
  | { op: 'list-daemon' }
  | { op: 'save'; numeric: boolean }
  | { op: 'restore' }
  /** --list-fwmark-rules [MARK] (fwmark-args.ts). */
  | Extract<FwmarkCommand, { op: 'list-fwmark-rules' }>;

export function commandToRequest(cmd: RequestCommand): Request {
  if (cmd.op === 'list') return cmd.key === undefined ? { op: 'list' } : { op: 'list', key: cmd.key };
  if ('warnings' in cmd) {
    const { warnings: _w, ...req } = cmd;
    return req as Request;
  }
  return cmd;
}

export interface ParseOptions {
  /** A line of -R's input: -R itself is refused there (ipvsadm's "avoid infinite loop"). */
  readingStdin?: boolean;
  /** Host and service names; without it only numbers are understood. */
  names?: Names;
}

// ---------------------------------------------------------------------------
// ipvsadm's tables

const CMD = {
  add: { index: 0, name: 'add-service' },
  edit: { index: 1, name: 'edit-service' },
  del: { index: 2, name: 'delete-service' },
  flush: { index: 3, name: 'flush' },
  list: { index: 4, name: 'list' },
  addDest: { index: 5, name: 'add-server' },
  delDest: { index: 6, name: 'delete-server' },
  editDest: { index: 7, name: 'edit-server' },
  timeout: { index: 8, name: 'set' },
  startDaemon: { index: 9, name: 'start-daemon' },
  stopDaemon: { index: 10, name: 'stop-daemon' },
  restore: { index: 11, name: 'restore' },
  save: { index: 12, name: 'save' },
  zero: { index: 13, name: 'zero' },
  addLaddr: { index: 14, name: 'add-laddr' },
  delLaddr: { index: 15, name: 'del-laddr' },
  getLaddr: { index: 16, name: 'get-laddr' },
} as const;
type Cmd = keyof typeof CMD;

/** optnames[], in bit order. */
const OPTNAMES = [
  'numeric', 'connection', 'service-address', 'scheduler', 'persistent', 'netmask', 'real-server',
  'forwarding-method', 'weight', 'u-threshold', 'l-threshold', 'mcast-interface', 'timeout', 'daemon',
  'stats', 'rate', 'thresholds', 'persistent-conn', 'nosort', 'syncid', 'exact', 'ops', 'pe',
  'sched-flags', 'mcast-group', 'mcast-port', 'mcast-ttl', 'sync-maxlen', 'tun-info', 'tun-type',
  'tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum',
  // The FULLNAT forks' (their name for -z).
  'local-address',
] as const;
type OptName = (typeof OPTNAMES)[number];

// commands_v_options: '+' compulsory, 'x' illegal, '1' exclusive, ' ' optional;
// one character per option, in OPTNAMES order: ipvsadm 1.31's 34, then
// local-address, illegal with all of ipvsadm's commands.
const X34 = 'x'.repeat(34);
const COMMANDS_V_OPTIONS: readonly string[] = [
  /* ADD */ `xx+   ${'x'.repeat(15)}   ${'x'.repeat(10)}x`,
  /* EDIT */ `xx+   ${'x'.repeat(15)}   ${'x'.repeat(10)}x`,
  /* DEL */ `xx+${'x'.repeat(31)}x`,
  /* FLUSH */ `${X34}x`,
  /* LIST */ ` 11${'x'.repeat(9)}11       ${'x'.repeat(7)} ${'x'.repeat(5)}x`,
  /* ADDDEST */ `xx+xxx+    ${'x'.repeat(18)}     x`,
  /* DELDEST */ `xx+xxx+${'x'.repeat(27)}x`,
  /* EDITDEST */ `xx+xxx+    ${'x'.repeat(18)}     x`,
  /* TIMEOUT */ `${X34}x`,
  /* STARTD */ `${'x'.repeat(11)} ${'x'.repeat(7)} ${'x'.repeat(4)}    ${'x'.repeat(6)}x`,
  /* STOPD */ `${'x'.repeat(19)} ${'x'.repeat(14)}x`,
  /* RESTORE */ `${X34}x`,
  /* SAVE */ ` ${'x'.repeat(33)}x`,
  /* ZERO */ `xx ${'x'.repeat(31)}x`,
  // The forks' rows: a service and a local address for -P/-Q (DPVS also
  // wants its own -F interface, which xvs has no use for), a service or none for -G.
  /* ADDLADDR */ `xx+${'x'.repeat(31)}+`,
  /* DELLADDR */ `xx+${'x'.repeat(31)}+`,
  /* GETLADDR */ `xx ${'x'.repeat(31)}x`,
];

const TUN_NAMES = ['ipip', 'gue', 'gre'] as const;
const TUN_OPTS: readonly OptName[] = ['tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum'];
// tunnel_types_v_options, one row per tunnel type, one column per TUN_OPTS.
const TUNNEL_TYPES_V_OPTIONS = ['xxxx', '+111', 'x11x'] as const;

const OPTIONS: readonly PoptOption[] = [
  { long: 'add-service', short: 'A', arg: 'none', tag: 'A' },
  { long: 'edit-service', short: 'E', arg: 'none', tag: 'E' },
  { long: 'delete-service', short: 'D', arg: 'none', tag: 'D' },
  { long: 'clear', short: 'C', arg: 'none', tag: 'C' },
  { long: 'list', short: 'L', arg: 'none', tag: 'L' },
  { long: 'list', short: 'l', arg: 'none', tag: 'l' },
  { long: 'zero', short: 'Z', arg: 'none', tag: 'Z' },
  { long: 'add-server', short: 'a', arg: 'none', tag: 'a' },
  { long: 'edit-server', short: 'e', arg: 'none', tag: 'e' },
  { long: 'delete-server', short: 'd', arg: 'none', tag: 'd' },
  { long: 'set', arg: 'none', tag: 'set' },
  { long: 'help', short: 'h', arg: 'none', tag: 'h' },
  { long: 'version', short: 'v', arg: 'none', tag: 'v' },
  { long: 'restore', short: 'R', arg: 'none', tag: 'R' },
  { long: 'save', short: 'S', arg: 'none', tag: 'S' },
  { long: 'start-daemon', arg: 'required', tag: 'start-daemon' },
  { long: 'stop-daemon', arg: 'required', tag: 'stop-daemon' },
  { long: 'add-laddr', short: 'P', arg: 'none', tag: 'P' },
  { long: 'del-laddr', short: 'Q', arg: 'none', tag: 'Q' },
  { long: 'get-laddr', short: 'G', arg: 'none', tag: 'G' },
  { long: 'tcp-service', short: 't', arg: 'required', tag: 't' },
  { long: 'udp-service', short: 'u', arg: 'required', tag: 'u' },
  { long: 'sctp-service', arg: 'required', tag: 'sctp' },
  { long: 'fwmark-service', short: 'f', arg: 'required', tag: 'f' },
  { long: 'scheduler', short: 's', arg: 'required', tag: 's' },
  { long: 'persistent', short: 'p', arg: 'optional', tag: 'p' },
  { long: 'netmask', short: 'M', arg: 'required', tag: 'M' },
  { long: 'real-server', short: 'r', arg: 'required', tag: 'r' },
  { long: 'masquerading', short: 'm', arg: 'none', tag: 'm' },
  { long: 'ipip', short: 'i', arg: 'none', tag: 'i' },
  { long: 'gatewaying', short: 'g', arg: 'none', tag: 'g' },
  { long: 'fullnat', arg: 'none', tag: 'fullnat' },
  { long: 'weight', short: 'w', arg: 'required', tag: 'w' },
  { long: 'u-threshold', short: 'x', arg: 'required', tag: 'x' },
  { long: 'l-threshold', short: 'y', arg: 'required', tag: 'y' },
  { long: 'numeric', short: 'n', arg: 'none', tag: 'n' },
  { long: 'connection', short: 'c', arg: 'none', tag: 'c' },
  { long: 'mcast-interface', arg: 'required', tag: 'mcast-interface' },
  { long: 'syncid', arg: 'required', tag: 'syncid' },
  { long: 'timeout', arg: 'none', tag: 'timeout' },
  { long: 'daemon', arg: 'none', tag: 'daemon' },
  { long: 'stats', arg: 'none', tag: 'stats' },
  { long: 'rate', arg: 'none', tag: 'rate' },
  { long: 'thresholds', arg: 'none', tag: 'thresholds' },
  { long: 'persistent-conn', arg: 'none', tag: 'persistent-conn' },
  { long: 'nosort', arg: 'none', tag: 'nosort' },
  { long: 'sort', arg: 'none', tag: 'sort' },
  { long: 'exact', short: 'X', arg: 'none', tag: 'X' },
  { long: 'ipv6', short: '6', arg: 'none', tag: '6' },
  { long: 'ops', short: 'o', arg: 'none', tag: 'o' },
  { long: 'pe', arg: 'required', tag: 'pe' },
  { long: 'sched-flags', short: 'b', arg: 'required', tag: 'b' },
  { long: 'mcast-group', arg: 'required', tag: 'mcast-group' },
  { long: 'mcast-port', arg: 'required', tag: 'mcast-port' },
  { long: 'mcast-ttl', arg: 'required', tag: 'mcast-ttl' },
  { long: 'sync-maxlen', arg: 'required', tag: 'sync-maxlen' },
  { long: 'tun-info', arg: 'none', tag: 'tun-info' },
  { long: 'tun-type', arg: 'required', tag: 'tun-type' },
  { long: 'tun-port', arg: 'required', tag: 'tun-port' },
  { long: 'tun-nocsum', arg: 'none', tag: 'tun-nocsum' },
  { long: 'tun-csum', arg: 'none', tag: 'tun-csum' },
  { long: 'tun-remcsum', arg: 'none', tag: 'tun-remcsum' },
  { long: 'laddr', short: 'z', arg: 'required', tag: 'z' },
];

/** After these commands -b is --fullnat, as in the FULLNAT forks; after the others, ipvsadm 1.31's --sched-flags. */
const FULLNAT_B_COMMANDS: ReadonlySet<string> = new Set(['a', 'e', 'd', 'P', 'Q', 'G']);
const OPTIONS_FULLNAT_B: readonly PoptOption[] = OPTIONS.map((o) => {
  if (o.long === 'sched-flags') return { long: o.long, arg: o.arg, tag: o.tag };
  if (o.long === 'fullnat') return { ...o, short: 'b' };
  return o;
});

const COMMAND_TAGS: Record<string, Cmd> = {
  A: 'add', E: 'edit', D: 'del', a: 'addDest', e: 'editDest', d: 'delDest', C: 'flush',
  L: 'list', l: 'list', Z: 'zero', set: 'timeout', R: 'restore', S: 'save',
  'start-daemon': 'startDaemon', 'stop-daemon': 'stopDaemon',
  P: 'addLaddr', Q: 'delLaddr', G: 'getLaddr',
};

// ---------------------------------------------------------------------------
// Errors, in ipvsadm's words

/** fail(2, ...): exit 2. */
function fail(message: string, hint?: string): never {
  throw new XvsError('BAD_ARGUMENT', message, hint === undefined ? {} : { hint });
}

/** tryhelp_exit(argv[0], -1). */
function tryhelp(): never {
  throw new XvsError('USAGE', `Try \`${PROG} -h' or '${PROG} --help' for more information.`);
}

function unsupported(message: string, hint?: string): never {
  throw new XvsError('UNSUPPORTED', message, hint === undefined ? {} : { hint });
}

// ---------------------------------------------------------------------------
// Number and address parsing as ipvsadm's helpers do it

/** string_to_number: strtol in base 10 over the whole string, then the range; undefined where ipvsadm gets -1. */
export function stringToNumber(s: string, min: number, max: number): number | undefined {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)$/.exec(s);
  if (!m) return undefined;
  const n = Number(m[1]);
  return n >= min && n <= max ? n : undefined;
}

function parseTimeout(buf: string | undefined, min: number, max: number): number {
  if (buf === undefined) return DEFAULT_PERSISTENT;
  const n = stringToNumber(buf, min, max);
  if (n === undefined) fail(`invalid timeout value \`${buf}' specified`);
  return n;
}

interface Addr {
  af: 'inet' | 'inet6';
  addr: string;
}

/** ipvsadm's parse_service: the address (and port) or undefined (SERVICE_NONE). */
function parseService(text: string, proto: NameProto | undefined, names: Names | undefined): (Addr & { port: number | undefined }) | undefined {
  if (/^\d*$/.test(text)) return undefined; // str_is_digit, true for "" too
  let buf = text;
  let portText: string | undefined;
  let bracketed = false;
  if (buf.startsWith('[')) {
    const close = buf.indexOf(']');
    if (close < 0 || buf[close + 1] !== ':') return undefined;
    portText = buf.slice(close + 2);
    buf = buf.slice(1, close);
    bracketed = true;
  }
  let a: Addr;
  // inet_pton takes no zone index ("%eth0"); Node's isIPv6 does.
  if (isIPv6(buf) && !buf.includes('%')) {
    a = { af: 'inet6', addr: new URL(`http://[${buf}]/`).hostname.slice(1, -1) };
  } else {
    // Not IPv6: the port follows the last ':' (inside brackets there is none left).
    if (bracketed) portText = undefined;
    else {
      const colon = buf.lastIndexOf(':');
      if (colon >= 0) {
        portText = buf.slice(colon + 1);
        buf = buf.slice(0, colon);
      }
    }
    const v4 = inetAton(buf) ?? names?.host(buf);
    if (v4 === undefined) return undefined;
    a = { af: 'inet', addr: v4 };
  }
  if (portText === undefined) return { ...a, port: undefined };
  const port = stringToNumber(portText, 0, 65535) ?? (proto === undefined ? undefined : names?.port(portText, proto));
  if (port === undefined) return undefined;
  return { ...a, port };
}

/** An address with an optional port, numeric only, read as ipvsadm reads -t (for other commands' arguments). */
export function parseEndpoint(text: string): { addr: string; port: number | undefined } {
  const s = parseService(text, undefined, undefined);
  if (s === undefined) throw new XvsError('BAD_ADDRESS', `'${text}' is not an address (A.B.C.D:PORT or [IPv6]:PORT)`);
  return { addr: s.addr, port: s.port };
}

// ---------------------------------------------------------------------------
// What one command line says (struct ipvs_command_entry)

interface Entry {
  cmd?: Cmd;
  options: Set<OptName>;
  svc: {
    proto?: NameProto;
    af: 'inet' | 'inet6';
    addr?: string;
    port: number;
    fwmark: number;
    sched: string;
    persistent?: number;
    /** IPv4: a 32-bit mask; IPv6: a prefix length. */
    netmask: number;
    ops: boolean;
    pe?: string;
    /** -b: flag bits (src/schedulers/flags.ts). */
    schedFlags: number;
  };
  dest: {
    af?: 'inet' | 'inet6';
    addr?: string;
    port: number;
    /** The port written after -r, if any (before ipvsadm replaces it for DR/TUN). */
    givenPort?: number;
    fwd: Fwd;
    weight: number;
    uthreshold: number;
    lthreshold: number;
    tunType: number;
    tunPort: number;
    /** ipvsadm's tun_flags, an index of TUN_CSUMS. */
    tunFlags: number;
  };
  timeouts?: { tcp: number; tcpfin: number; udp: number };
  list: ListOptions;
  daemonState?: 'master' | 'backup';
  /** -z */
  laddr?: Addr;
}

function setOption(e: Entry, name: OptName): void {
  if (e.options.has(name)) fail(`multiple '${name}' options specified`);
  e.options.add(name);
}

function genericOptCheck(e: Entry): void {
  const cmd = CMD[e.cmd!];
  const row = COMMANDS_V_OPTIONS[cmd.index]!;
  let last: OptName | undefined;
  OPTNAMES.forEach((name, j) => {
    const rule = row[j];
    if (!e.options.has(name)) {
      if (rule === '+') fail(`You need to supply the '${name}' option for the '${cmd.name}' command`);
      return;
    }
    if (rule === 'x') fail(`Illegal '${name}' option with the '${cmd.name}' command`);
    if (rule === '1') {
      if (last === undefined) last = name;
      else fail(`The option '${name}' conflicts with the '${last}' option in the '${cmd.name}' command`);
    }
  });
}

function tunnelOptCheck(e: Entry): void {
  const type = e.dest.tunType;
  const row = TUNNEL_TYPES_V_OPTIONS[type]!;
  let last: OptName | undefined;
  TUN_OPTS.forEach((name, j) => {
    const rule = row[j];
    if (!e.options.has(name)) {
      if (rule === '+') fail(`You need to supply the '${name}' option for the '${TUN_NAMES[type]}' tunnel type`);
      return;
    }
    if (rule === 'x') fail(`Illegal '${name}' option with the '${TUN_NAMES[type]}' tunnel type`);
    if (rule === '1') {
      if (last === undefined) last = name;
      else fail(`The option '${name}' conflicts with the '${last}' option in the '${TUN_NAMES[type]}' tunnel type`);
    }
  });
}

function isMulticast4(a: string): boolean {
  const first = Number(a.split('.')[0]);
  return first >= 224 && first <= 239;
}

function dotted(mask: number): string {
  return [24, 16, 8, 0].map((s) => (mask >>> s) & 0xff).join('.');
}

/**
 * Parses ipvsadm arguments (without the program name). No arguments lists
 * the table, as ipvsadm does.
 */
export function parseIpvsadm(argv: string[], opts: ParseOptions = {}): Command {
  const names = opts.names;
  if (argv.length === 0) return { op: 'list', list: { numeric: false, stats: false, exact: false } };
  if (isFwmarkCommand(argv)) return parseFwmarkCommand(argv);
  const e: Entry = {
    options: new Set(),
    svc: { af: 'inet', port: 0, fwmark: 0, sched: '', netmask: 0xffffffff, ops: false, schedFlags: 0 },
    dest: { port: 0, fwd: 'dr', weight: 1, uthreshold: 0, lthreshold: 0, tunType: 0, tunPort: 0, tunFlags: 0 },
    list: { numeric: false, stats: false, exact: false },
  };
  // The first option is the command whatever the table, as -b is never one.
  const firstTag = popt(argv, OPTIONS).events[0];
  const table = firstTag?.kind === 'option' && FULLNAT_B_COMMANDS.has(firstTag.tag) ? OPTIONS_FULLNAT_B : OPTIONS;
  const { events, leftovers } = popt(argv, table);
  const [first, ...rest] = events;
  if (!first || first.kind === 'error') tryhelp();
  if (first.tag === 'h') return { op: 'help', text: usage() };
  if (first.tag === 'v') return { op: 'version', text: versionLine() };
  const cmd = COMMAND_TAGS[first.tag];
  if (cmd === undefined) tryhelp();
  e.cmd = cmd;
  if (cmd === 'startDaemon' || cmd === 'stopDaemon') {
    if (first.arg === 'master' || first.arg === 'backup') e.daemonState = first.arg;
    else fail(cmd === 'startDaemon' ? 'illegal start-daemon parameter specified' : 'illegal start_daemon specified');
  }
  let schedFlags: string | undefined;
  let sawSctp = false;

  for (const ev of rest) {
    if (ev.kind === 'error') throw new XvsError('USAGE', `${ev.word}: ${ev.message}`);
    const arg = ev.arg ?? '';
    switch (ev.tag) {
      case 't':
      case 'u':
      case 'sctp': {
        setOption(e, 'service-address');
        e.svc.proto = ev.tag === 't' ? 'tcp' : ev.tag === 'u' ? 'udp' : 'sctp';
        sawSctp = ev.tag === 'sctp';
        const p = parseService(arg, e.svc.proto, names);
        if (!p) fail('illegal virtual server address[:port] specified');
        e.svc.af = p.af;
        e.svc.addr = p.addr;
        if (p.af === 'inet6') e.svc.netmask = 128;
        if (p.port !== undefined) e.svc.port = p.port;
        break;
      }
      case 'f': {
        setOption(e, 'service-address');
        const m = /^[+-]?\d+$/.exec(arg) ? Number(arg) : NaN;
        if (!(m > 0 && m <= 0xffffffff)) fail(`invalid fwmark value \`${arg}' specified`);
        e.svc.af = 'inet';
        e.svc.proto = 'tcp';
        e.svc.fwmark = m;
        break;
      }
      case 's':
        setOption(e, 'scheduler');
        e.svc.sched = arg.slice(0, 15);
        break;
      case 'p':
        setOption(e, 'persistent');
        e.svc.persistent = parseTimeout(ev.arg, 1, MAX_TIMEOUT);
        break;
      case 'M':
        setOption(e, 'netmask');
        if (e.svc.af !== 'inet6') {
          const m = inetAton(arg) ?? names?.host(arg);
          if (m === undefined) fail('illegal virtual server persistent mask specified');
          e.svc.netmask = m.split('.').reduce((n, o) => n * 256 + Number(o), 0);
        } else {
          const bits = Number.parseInt(arg, 10) || 0; // atoi
          if (bits < 1 || bits > 128) fail('illegal ipv6 netmask specified');
          e.svc.netmask = bits;
        }
        break;
      case 'r': {
        setOption(e, 'real-server');
        const p = parseService(arg, e.svc.proto, names);
        if (!p) fail('illegal real server address[:port] specified');
        e.dest.af = p.af;
        e.dest.addr = p.addr;
        e.dest.givenPort = p.port;
        // ipvsadm copies the service port when -r has none (0 here: "the service's port").
        e.dest.port = p.port ?? 0;
        break;
      }
      case 'i':
      case 'g':
      case 'm':
      case 'fullnat':
        setOption(e, 'forwarding-method');
        e.dest.fwd = ev.tag === 'i' ? 'tun' : ev.tag === 'g' ? 'dr' : ev.tag === 'm' ? 'nat' : 'fullnat';
        break;
      case 'z': {
        setOption(e, 'local-address');
        // The forks read it as a service address; a port makes no local address.
        const p = parseService(arg, e.svc.proto, names);
        if (!p || p.port !== undefined) fail('illegal local address');
        e.laddr = { af: p.af, addr: p.addr };
        break;
      }
      case 'w': {
        setOption(e, 'weight');
        const n = stringToNumber(arg, 0, 65535);
        if (n === undefined) fail('illegal weight specified');
        e.dest.weight = n;
        break;
      }
      case 'x': {
        setOption(e, 'u-threshold');
        const n = stringToNumber(arg, 0, 2 ** 31 - 1);
        if (n === undefined) fail('illegal u_threshold specified');
        e.dest.uthreshold = n;
        break;
      }
      case 'y': {
        setOption(e, 'l-threshold');
        const n = stringToNumber(arg, 0, 2 ** 31 - 1);
        if (n === undefined) fail('illegal l_threshold specified');
        e.dest.lthreshold = n;
        break;
      }
      case 'c': setOption(e, 'connection'); break;
      case 'n': setOption(e, 'numeric'); e.list.numeric = true; break;
      case 'mcast-interface': setOption(e, 'mcast-interface'); break;
      case 'syncid':
        setOption(e, 'syncid');
        if (stringToNumber(arg, 0, 255) === undefined) fail('illegal syncid specified');
        break;
      case 'timeout': setOption(e, 'timeout'); break;
      case 'daemon': setOption(e, 'daemon'); break;
      case 'stats': setOption(e, 'stats'); e.list.stats = true; break;
      case 'rate': setOption(e, 'rate'); e.list.rate = true; break;
      case 'thresholds': setOption(e, 'thresholds'); e.list.thresholds = true; break;
      case 'persistent-conn': setOption(e, 'persistent-conn'); e.list.persistentConn = true; break;
      case 'nosort': setOption(e, 'nosort'); e.list.nosort = true; break;
      case 'sort': break; // ipvsadm's no-op, kept for scripts
      case 'X': setOption(e, 'exact'); e.list.exact = true; break;
      case '6':
        if (e.svc.fwmark) {
          e.svc.af = 'inet6';
          e.svc.netmask = 128;
        } else fail('-6 used before -f');
        break;
      case 'o': setOption(e, 'ops'); e.svc.ops = true; break;
      case 'pe': setOption(e, 'pe'); e.svc.pe = arg; break;
      case 'b': setOption(e, 'sched-flags'); schedFlags = arg; break;
      case 'mcast-group': {
        setOption(e, 'mcast-group');
        if (arg.includes(':')) {
          if (!isIPv6(arg) || !/^ff/i.test(arg)) fail(`invalid IPv6 mcast-group \`${arg}'`);
        } else {
          const a = inetAton(arg);
          if (a === undefined || arg !== a || !isMulticast4(a)) fail(`invalid IPv4 mcast-group \`${arg}'`);
        }
        break;
      }
      case 'mcast-port':
        setOption(e, 'mcast-port');
        if (stringToNumber(arg, 1, 65535) === undefined) fail('illegal mcast-port specified');
        break;
      case 'mcast-ttl':
        setOption(e, 'mcast-ttl');
        if (stringToNumber(arg, 1, 255) === undefined) fail('illegal mcast-ttl specified');
        break;
      case 'sync-maxlen':
        setOption(e, 'sync-maxlen');
        if (stringToNumber(arg, 1, 65535 - 20 - 8) === undefined) fail('illegal sync-maxlen specified');
        break;
      case 'tun-info': setOption(e, 'tun-info'); e.list.tunInfo = true; break;
      case 'tun-type': {
        setOption(e, 'tun-type');
        const t = (TUN_NAMES as readonly string[]).indexOf(arg);
        if (t < 0) fail('illegal tunnel type specified');
        e.dest.tunType = t;
        break;
      }
      case 'tun-port': {
        setOption(e, 'tun-port');
        const n = stringToNumber(arg, 1, 65535);
        if (n === undefined) fail('illegal tunnel port specified');
        e.dest.tunPort = n;
        break;
      }
      case 'tun-nocsum': setOption(e, 'tun-nocsum'); break;
      case 'tun-csum': setOption(e, 'tun-csum'); e.dest.tunFlags |= 1; break;
      case 'tun-remcsum': setOption(e, 'tun-remcsum'); e.dest.tunFlags |= 2; break;
      default:
        // A second command, -h or -v after the command.
        fail(`invalid option \`${ev.word}'`);
    }
  }

  const words = [...leftovers];
  if (cmd === 'timeout') {
    if (words.length < 3) fail('--set option requires 3 timeout values');
    const [tcp, tcpfin, udp] = words.splice(0, 3).map((w) => parseTimeout(w, 0, MAX_TIMEOUT)) as [number, number, number];
    e.timeouts = { tcp, tcpfin, udp };
  }
  if (words.length > 0) fail(`unexpected argument ${words[0]}`);
  // ipvsadm: only a non-empty -b argument, read against -s or the default scheduler.
  if (schedFlags) e.svc.schedFlags = parseSchedFlags(e.svc.sched || DEFAULT_SCHEDULER, schedFlags);

  genericOptCheck(e);

  if (cmd === 'add' || cmd === 'edit') {
    if (!e.svc.fwmark && !e.svc.port && e.svc.persistent === undefined) fail('Zero port specified for non-persistent service');
    if (e.svc.ops && !e.svc.fwmark && e.svc.proto !== 'udp') fail('One-Packet Scheduling is only for UDP virtual services');
    if (e.svc.sched === '') e.svc.sched = DEFAULT_SCHEDULER;
  }
  const warnings: string[] = [];
  if (cmd === 'addDest' || cmd === 'editDest') {
    if (e.dest.fwd === 'tun' || e.dest.fwd === 'dr') {
      // The kernel forwards DR/TUN to the service's port; ipvsadm sends that port whatever was written.
      // A fwmark service has none: each packet keeps its own (ipvsadm sends the port written, IPVS ignores it).
      const method = e.dest.fwd === 'dr' ? 'direct routing' : 'tunnelling';
      if (e.dest.givenPort !== undefined && e.dest.givenPort !== e.svc.port) {
        warnings.push(e.svc.fwmark
          ? `${PROG}: warning: real server port ${e.dest.givenPort} ignored: ${method} keeps each packet's port in a fwmark service`
          : `${PROG}: warning: real server port ${e.dest.givenPort} ignored: ${method} forwards to the service port ${e.svc.port}`);
      }
      e.dest.port = 0;
    }
    if (e.dest.af !== e.svc.af && e.dest.fwd !== 'tun') {
      // FULLNAT translates an IPv6 VIP's flows to IPv4 real servers (NAT64), not the other way.
      if (e.dest.fwd !== 'fullnat') fail('Different address family is allowed only for tunneling servers');
      if (e.svc.af !== 'inet6') fail('Different address family is allowed for FULLNAT servers only behind an IPv6 service');
    }
    const tunOpts: OptName[] = ['tun-type', 'tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum'];
    if (tunOpts.some((o) => e.options.has(o)) && e.dest.fwd !== 'tun') fail('Tunnel options conflict with forward method');
    tunnelOptCheck(e);
  }
  if (cmd === 'list') {
    const o = e.options;
    if (((o.has('connection') || o.has('timeout') || o.has('daemon')) && (o.has('stats') || o.has('rate') || o.has('thresholds')))
      || ((o.has('timeout') || o.has('daemon')) && o.has('persistent-conn'))) {
      fail('options conflicts in the list command');
    }
  }
  if ((cmd === 'addLaddr' || cmd === 'delLaddr') && e.laddr!.af !== e.svc.af && e.svc.af !== 'inet6') {
    fail('Different address family is allowed for local addresses only in an IPv6 service');
  }
  if (cmd === 'restore' && opts.readingStdin) tryhelp();
  return toCommand(e, warnings);
}

/** The service of the command line as xvs keys it (a fwmark service as ServiceKey says), or UNSUPPORTED for what xvs cannot key yet. */
function serviceKey(e: Entry): ServiceKey {
  if (e.svc.fwmark) return { proto: 'tcp', addr: e.svc.af === 'inet6' ? '::' : '0.0.0.0', port: 0, fwmark: e.svc.fwmark };
  if (e.svc.proto === 'sctp') unsupported('--sctp-service is not supported yet');
  return { proto: e.svc.proto as Proto, addr: e.svc.addr!, port: e.svc.port };
}

// The kernel's own checks that depend on nothing but the request, and xvs's "not yet".
function toCommand(e: Entry, warnings: string[]): Command {
  const has = (o: OptName) => e.options.has(o);
  switch (e.cmd!) {
    case 'list': {
      if (has('connection')) return { op: 'connections', numeric: e.list.numeric, persistentConn: !!e.list.persistentConn };
      if (has('timeout')) return { op: 'get-timeouts' };
      if (has('daemon')) return { op: 'list-daemon' };
      const list: ListOptions = { numeric: e.list.numeric, stats: e.list.stats, exact: e.list.exact };
      for (const k of ['thresholds', 'rate', 'persistentConn', 'nosort', 'tunInfo'] as const) if (e.list[k]) list[k] = true;
      if (has('service-address')) return { op: 'list', key: serviceKey(e), list };
      return { op: 'list', list };
    }
    case 'save': return { op: 'save', numeric: e.list.numeric };
    case 'restore': return { op: 'restore' };
    case 'flush': return { op: 'clear' };
    case 'timeout': return { op: 'set-timeouts', timeouts: e.timeouts! };
    case 'zero': return has('service-address') ? { op: 'zero', key: serviceKey(e) } : { op: 'zero' };
    case 'startDaemon':
    case 'stopDaemon':
      return unsupported('the connection sync daemon (--start-daemon/--stop-daemon) is not supported yet');
    case 'del': return { op: 'del-service', key: serviceKey(e) };
    case 'add':
    case 'edit': {
      const key = serviceKey(e);
      if (e.svc.pe !== undefined) unsupported('--pe (persistence engines) is not supported yet');
      const sched = e.svc.sched;
      if (!isSchedulerName(sched)) throw new XvsError('NO_SCHEDULER', `no scheduler '${sched}'`);
      const svc: ServiceSpec = {
        ...key, scheduler: sched, ...(e.svc.ops ? { ops: true } : {}), ...(e.svc.schedFlags ? { schedFlags: e.svc.schedFlags } : {}),
      };
      if (e.svc.persistent !== undefined) {
        svc.persistent = e.svc.persistent;
        // ipvsadm sends the mask it read: dotted for IPv4, a prefix length for IPv6.
        if (has('netmask')) svc.netmask = e.svc.af === 'inet6' ? String(e.svc.netmask) : dotted(e.svc.netmask);
      }
      // -M without -p: ipvsadm sends it and the kernel keeps no persistence to apply it to.
      return { op: e.cmd === 'add' ? 'add-service' : 'edit-service', svc };
    }
    case 'delDest': {
      const key = serviceKey(e);
      return { op: 'del-real', key, real: { addr: e.dest.addr!, port: e.dest.port } };
    }
    case 'addLaddr':
    case 'delLaddr':
      return { op: e.cmd === 'addLaddr' ? 'add-laddr' : 'del-laddr', key: serviceKey(e), laddr: e.laddr!.addr };
    case 'getLaddr':
      return has('service-address') ? { op: 'get-laddrs', key: serviceKey(e) } : { op: 'get-laddrs' };
    case 'addDest':
    case 'editDest': {
      const key = serviceKey(e);
      if (e.dest.lthreshold > e.dest.uthreshold) {
        throw new XvsError('OUT_OF_RANGE', `the lower threshold (-y ${e.dest.lthreshold}) is above the upper one (-x ${e.dest.uthreshold})`);
      }
      const real = {
        addr: e.dest.addr!, port: e.dest.port, fwd: e.dest.fwd, weight: e.dest.weight,
        ...(has('u-threshold') && { uthreshold: e.dest.uthreshold }),
        ...(has('l-threshold') && { lthreshold: e.dest.lthreshold }),
        ...(e.dest.tunType !== 0 && { tunnel: tunnelOf(e) }),
      };
      const op = e.cmd === 'addDest' ? 'add-real' : 'edit-real';
      return warnings.length > 0 ? { op, key, real, warnings } : { op, key, real };
    }
  }
}

/** GUE or GRE as the request carries it; tunnelOptCheck has passed, so the combination is one ipvsadm takes. */
function tunnelOf(e: Entry): Tunnel {
  const csum = TUN_CSUMS[e.dest.tunFlags]!;
  return TUN_NAMES[e.dest.tunType] === 'gue' ? { type: 'gue', port: e.dest.tunPort, csum } : { type: 'gre', csum: csum === 'csum' ? 'csum' : 'nocsum' };
}

export function versionLine(): string {
  return `${PROG} ${IPVSADM_VERSION} (compiled with xvs and IPVS v${IPVS_VERSION})\n`;
}

/** ipvsadm's usage_exit text, for what xvsadm offers. */
export function usage(): string {
  const p = PROG;
  return `${versionLine()}Usage:
  ${p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
  ${p} -D virtual-service
  ${p} -C
  ${p} -R
  ${p} -S [-n]
  ${p} -a|e virtual-service -r server-address [options]
  ${p} -d virtual-service -r server-address
  ${p} -P|Q virtual-service -z local-address
  ${p} -G [virtual-service]
  ${p} -L|l [virtual-service] [options]
  ${p} -Z [virtual-service]
  ${p} --set tcp tcpfin udp
  ${p} --fwmark-rule|--del-fwmark-rule fwmark -d prefix [-p tcp|udp [--dport port[:port]]]
  ${p} --list-fwmark-rules [fwmark]
  ${p} --start-daemon {master|backup} [daemon-options]
  ${p} --stop-daemon {master|backup}
  ${p} -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --add-laddr       -P        add a FULLNAT local address to a service
  --del-laddr       -Q        delete a FULLNAT local address from a service
  --get-laddr       -G        list the FULLNAT local addresses
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --fwmark-rule fwmark        mark packets of no address/port service by their
                              destination, in place of netfilter's marks
                              (-d prefix, -p tcp|udp, --dport port[:port])
  --del-fwmark-rule fwmark    delete a fwmark rule (the same options)
  --list-fwmark-rules         list the fwmark rules, of one fwmark or all
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --sctp-service    service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --ipv6         -6                   fwmark entry uses IPv6
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,
                                      the default scheduler is ${DEFAULT_SCHEDULER}.
  --pe            engine              alternate persistence engine may be sip,
                                      not set by default.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --fullnat      -b                   FULLNAT: source and destination translated,
                                      the client's address in TCP option 254 (TOA);
                                      -b is --fullnat after -a, -e and -d
  --laddr        -z local-address     a local address of the director for FULLNAT
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated);
                                      -b is --sched-flags after -A and -E
Daemon Options:
  --syncid sid                        syncid for connection sync (default=255)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)
xvs:
  --socket PATH                       xvsd's control socket (default /run/xvs/xvsd.sock)
  Not supported yet (refused with "not supported yet" and exit 2): --sctp-service,
  --pe, the sync daemon.
`;
}
