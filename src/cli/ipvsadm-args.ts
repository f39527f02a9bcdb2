import { isIPv4, isIPv6 } from 'node:net';
import { Command as Commander, CommanderError, Option } from 'commander';
import { XvsError } from '../errors.js';
import { DEFAULT_SCHEDULER, checkSchedulerName } from '../schedulers/registry.js';
import {
  DEFAULT_PERSISTENT, MAX_THRESHOLD, MAX_TIMEOUT, netmaskBits, prefixLength,
  type Fwd, type Proto, type RealSpec, type Request, type ServiceKey, type ServiceSpec, type Timeouts,
} from '../control/protocol.js';

// ipvsadm's command line, parsed into what xvsd is asked to do. The grammar
// and defaults follow ipvsadm (one command option, -g and weight 1 for real
// servers, wlc for services); options ipvsadm has and xvs does not yet are
// recognised and refused as UNSUPPORTED rather than "unknown option".

export interface ListOptions {
  numeric: boolean;
  stats: boolean;
  exact: boolean;
  /** --thresholds; present only when given. --stats wins over it, as in ipvsadm. */
  thresholds?: boolean;
}

export type RequestCommand =
  | Exclude<Request, { op: 'list' } | { op: 'status' }>
  | { op: 'list'; key?: ServiceKey; list: ListOptions };

export type Command = RequestCommand | { op: 'help'; text: string };

export function commandToRequest(cmd: RequestCommand): Request {
  if (cmd.op !== 'list') return cmd;
  return cmd.key === undefined ? { op: 'list' } : { op: 'list', key: cmd.key };
}

export const USAGE = `Usage:
  xvsadm -A|E -t|u service-address [-s scheduler] [-p [timeout]] [-M netmask]
  xvsadm -D -t|u service-address
  xvsadm -C
  xvsadm -a|e -t|u service-address -r server-address [-g|i|m] [-w weight] [-x upper] [-y lower]
  xvsadm -d -t|u service-address -r server-address
  xvsadm -L|l [-n] [--stats|--thresholds] [--exact] [-t|u service-address]
  xvsadm -L|l --timeout
  xvsadm -Z [-t|u service-address]
  xvsadm --set tcp tcpfin udp
  xvsadm -h

Commands:
  --add-service     -A   add virtual service
  --edit-service    -E   edit virtual service
  --delete-service  -D   delete virtual service
  --clear           -C   clear the whole table
  --add-server      -a   add real server
  --edit-server     -e   edit real server
  --delete-server   -d   delete real server
  --list            -L|-l  list the table
  --zero            -Z   zero counters of a service or of all services
  --set tcp tcpfin udp   set connection timeouts in seconds (0 keeps one as it is)
  --help            -h   this text

Options:
  --tcp-service   -t service-address   VIP:PORT, or [IPv6]:PORT
  --udp-service   -u service-address   VIP:PORT, or [IPv6]:PORT
  --scheduler     -s scheduler         one of rr wrr lc wlc sed nq dh sh lblc lblcr mh
                                       (default ${DEFAULT_SCHEDULER})
  --persistent    -p [timeout]         persistent service, timeout 1..${MAX_TIMEOUT} s
                                       (default ${DEFAULT_PERSISTENT}); -E without -p makes it non-persistent
  --netmask       -M netmask           persistence granularity, a dotted IPv4 mask
                                       (default 255.255.255.255), or for an IPv6
                                       service a prefix length (default 128); needs -p
  --real-server   -r server-address    RIP[:PORT], [IPv6]:PORT or a bare IPv6 address;
                                       no port means the service port
  --gatewaying    -g                   direct routing (default)
  --ipip          -i                   IPIP tunnelling
  --masquerading  -m                   NAT
  --weight        -w weight            0..65535 (default 1); 0 quiesces the server
  --u-threshold   -x uthreshold        upper connection threshold, 0 (default) = none
  --l-threshold   -y lthreshold        lower connection threshold, 0 (default) = none;
                                       not above the upper one
  --numeric       -n                   accepted; output is always numeric
  --stats                              list packet and byte counters
  --exact                              do not abbreviate large numbers
  --thresholds                         list upper and lower connection thresholds
  --timeout                            list the connection timeouts (tcp tcpfin udp)
  --socket PATH                        xvsd's control socket (default /run/xvs/xvsd.sock)

Not supported yet: -f -6 -o -c --rate --persistent-conn --nosort -R -S and the sync daemon.
`;

const COMMANDS = [
  { attr: 'addService', flag: '-A', op: 'add-service' },
  { attr: 'editService', flag: '-E', op: 'edit-service' },
  { attr: 'deleteService', flag: '-D', op: 'del-service' },
  { attr: 'clear', flag: '-C', op: 'clear' },
  { attr: 'addServer', flag: '-a', op: 'add-real' },
  { attr: 'editServer', flag: '-e', op: 'edit-real' },
  { attr: 'deleteServer', flag: '-d', op: 'del-real' },
  { attr: 'list', flag: '-L', op: 'list' },
  { attr: 'l', flag: '-l', op: 'list' },
  { attr: 'zero', flag: '-Z', op: 'zero' },
  { attr: 'restore', flag: '-R', op: undefined },
  { attr: 'save', flag: '-S', op: undefined },
  { attr: 'set', flag: '--set', op: 'set-timeouts' },
  { attr: 'startDaemon', flag: '--start-daemon', op: undefined },
  { attr: 'stopDaemon', flag: '--stop-daemon', op: undefined },
] as const;

type Op = Exclude<(typeof COMMANDS)[number]['op'], undefined>;

// Option groups, by the name a message shows; `unsupported` ones are
// recognised so that an ipvsadm user hears "not yet" instead of "unknown".
const OPTIONS = {
  service: { name: '-t/-u', unsupported: false },
  fwmark: { name: '-f (--fwmark-service)', unsupported: true },
  ipv6: { name: '-6 (--ipv6)', unsupported: true },
  scheduler: { name: '-s', unsupported: false },
  persistent: { name: '-p', unsupported: false },
  netmask: { name: '-M', unsupported: false },
  ops: { name: '-o (--ops)', unsupported: true },
  real: { name: '-r', unsupported: false },
  fwd: { name: '-g/-i/-m', unsupported: false },
  weight: { name: '-w', unsupported: false },
  uThreshold: { name: '-x', unsupported: false },
  lThreshold: { name: '-y', unsupported: false },
  numeric: { name: '-n', unsupported: false },
  connection: { name: '-c (--connection)', unsupported: true },
  stats: { name: '--stats', unsupported: false },
  rate: { name: '--rate', unsupported: true },
  exact: { name: '--exact', unsupported: false },
  timeout: { name: '--timeout', unsupported: false },
  daemon: { name: '--daemon', unsupported: true },
  thresholds: { name: '--thresholds', unsupported: false },
  persistentConn: { name: '--persistent-conn', unsupported: true },
  nosort: { name: '--nosort', unsupported: true },
  mcastInterface: { name: '--mcast-interface', unsupported: true },
  syncid: { name: '--syncid', unsupported: true },
} as const;

type Opt = keyof typeof OPTIONS;

const SVC: readonly Opt[] = ['service', 'fwmark', 'ipv6'];
const ALLOWED: Record<Op, readonly Opt[]> = {
  'add-service': [...SVC, 'scheduler', 'persistent', 'netmask', 'ops'],
  'edit-service': [...SVC, 'scheduler', 'persistent', 'netmask', 'ops'],
  'del-service': SVC,
  clear: [],
  'add-real': [...SVC, 'real', 'fwd', 'weight', 'uThreshold', 'lThreshold'],
  'edit-real': [...SVC, 'real', 'fwd', 'weight', 'uThreshold', 'lThreshold'],
  'del-real': [...SVC, 'real'],
  list: [...SVC, 'numeric', 'connection', 'stats', 'rate', 'exact', 'timeout', 'daemon', 'thresholds', 'persistentConn', 'nosort'],
  zero: SVC,
  'set-timeouts': [],
};

// ipvsadm's list conflicts: at most one of these picks what -L shows...
const LIST_EXCLUSIVE: readonly Opt[] = ['connection', 'service', 'timeout', 'daemon'];
// ...and those that are not a table take no table format.
const LIST_NOT_TABLE: readonly Opt[] = ['connection', 'timeout', 'daemon'];
const LIST_TABLE_FORMAT: readonly Opt[] = ['stats', 'rate', 'thresholds', 'persistentConn'];

// -p's value is optional, so a -p without one must still be told apart from
// none (and from two): a NUL cannot come from argv, so it marks "no value".
const NO_VALUE = '\0';

const collect = (v: string, prev: string[]): string[] => prev.concat(v);

function program(): Commander {
  const p = new Commander('xvsadm')
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} })
    .helpOption(false)
    .allowExcessArguments(true) // checked in commanderOpts, to name the stray argument
    .option('-h, --help');
  for (const c of ['-A, --add-service', '-E, --edit-service', '-D, --delete-service', '-C, --clear', '-a, --add-server',
    '-e, --edit-server', '-d, --delete-server', '-L, --list', '-l', '-Z, --zero', '-R, --restore', '-S, --save']) {
    p.option(c);
  }
  return p
    .option('--set <tcp-tcpfin-udp...>')
    .option('--start-daemon <state>')
    .option('--stop-daemon <state>')
    .option('-t, --tcp-service <address>', '', collect, [])
    .option('-u, --udp-service <address>', '', collect, [])
    .option('-f, --fwmark-service <mark>', '', collect, [])
    .option('-6, --ipv6')
    .option('-s, --scheduler <name>', '', collect, [])
    .addOption(new Option('-p, --persistent [timeout]').preset(NO_VALUE).argParser(collect).default([]))
    .option('-M, --netmask <mask>', '', collect, [])
    .option('-o, --ops')
    .option('-r, --real-server <address>', '', collect, [])
    .option('-g, --gatewaying')
    .option('-i, --ipip')
    .option('-m, --masquerading')
    .option('-w, --weight <weight>', '', collect, [])
    .option('-x, --u-threshold <n>', '', collect, [])
    .option('-y, --l-threshold <n>', '', collect, [])
    .option('-n, --numeric')
    .option('-c, --connection')
    .option('--stats')
    .option('--rate')
    .option('-X, --exact')
    .option('--timeout')
    .option('--daemon')
    .option('--thresholds')
    .option('--persistent-conn')
    .option('--nosort')
    .option('--sort') // ipvsadm's no-op, kept for scripts
    .option('--mcast-interface <interface>')
    .option('--syncid <id>');
}

interface Parsed {
  [attr: string]: unknown;
  tcpService: string[];
  udpService: string[];
  fwmarkService: string[];
  scheduler: string[];
  realServer: string[];
  weight: string[];
  persistent: string[];
  netmask: string[];
  uThreshold: string[];
  lThreshold: string[];
}

function present(o: Parsed): Opt[] {
  const has: Record<Opt, boolean> = {
    service: o.tcpService.length + o.udpService.length > 0,
    fwmark: o.fwmarkService.length > 0,
    ipv6: !!o.ipv6,
    scheduler: o.scheduler.length > 0,
    persistent: o.persistent.length > 0,
    netmask: o.netmask.length > 0,
    ops: !!o.ops,
    real: o.realServer.length > 0,
    fwd: !!(o.gatewaying || o.ipip || o.masquerading),
    weight: o.weight.length > 0,
    uThreshold: o.uThreshold.length > 0,
    lThreshold: o.lThreshold.length > 0,
    numeric: !!o.numeric,
    connection: !!o.connection,
    stats: !!o.stats,
    rate: !!o.rate,
    exact: !!o.exact,
    timeout: !!o.timeout,
    daemon: !!o.daemon,
    thresholds: !!o.thresholds,
    persistentConn: !!o.persistentConn,
    nosort: !!o.nosort,
    mcastInterface: o.mcastInterface !== undefined,
    syncid: o.syncid !== undefined,
  };
  return (Object.keys(has) as Opt[]).filter((k) => has[k]);
}

function badArg(message: string): never {
  throw new XvsError('BAD_ARGUMENT', message, { hint: 'see `xvsadm -h`' });
}

function badAddress(message: string, hint?: string): never {
  throw new XvsError('BAD_ADDRESS', message, hint === undefined ? {} : { hint });
}

export interface Endpoint {
  addr: string;
  port: number | undefined;
}

/**
 * `A.B.C.D[:PORT]`, `[IPv6]:PORT` or a bare IPv6 address. Names are not
 * resolved: a load balancer's table should not depend on DNS at edit time.
 */
export function parseEndpoint(text: string): Endpoint {
  let host = text;
  let port: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    port = bracketed[2];
    if (!isIPv6(host)) badAddress(`'${text}' is not a valid [IPv6]:port address`);
    // ipvsadm's parse_service takes brackets only before a port.
    if (port === undefined) badAddress(`'${text}': brackets go with a port ([IPv6]:PORT); a bare IPv6 address has none`);
  } else if (!isIPv6(text)) {
    const colon = text.lastIndexOf(':');
    if (colon >= 0) {
      host = text.slice(0, colon);
      port = text.slice(colon + 1);
    }
    if (!isIPv4(host)) badAddress(`'${text}' is not an IPv4 address (A.B.C.D:PORT) or [IPv6]:PORT; names are not resolved`);
  }
  if (host.includes('%')) badAddress(`'${text}': scoped IPv6 addresses are not supported`);
  if (port !== undefined && (!/^\d{1,5}$/.test(port) || Number(port) > 65535)) {
    badAddress(`'${text}' has a bad port '${port}' (0..65535)`);
  }
  // The canonical IPv6 spelling, so that one address is one service.
  const addr = isIPv6(host) ? new URL(`http://[${host}]/`).hostname.slice(1, -1) : host;
  return { addr, port: port === undefined ? undefined : Number(port) };
}

function serviceKey(o: Parsed): ServiceKey {
  const [proto, text] = (o.tcpService.length > 0 ? ['tcp', o.tcpService[0]!] : ['udp', o.udpService[0]!]) as [Proto, string];
  const { addr, port } = parseEndpoint(text);
  if (port === undefined || port === 0) {
    badAddress(`service '${text}' needs a port 1..65535`, 'a service is VIP:PORT, e.g. 192.0.2.80:80; port-less (all-port) persistent services are not supported');
  }
  return { proto, addr, port };
}

function weightOf(o: Parsed): number {
  const text = o.weight[0];
  if (text === undefined) return 1;
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) badArg(`weight must be an integer 0..65535, not '${text}'`);
  return Number(text);
}

/** ipvsadm's string_to_number: a plain decimal integer in min..max. */
function intArg(text: string, min: number, max: number, what: string): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) badArg(`${what} must be an integer ${min}..${max}, not '${text}'`);
  return Number(text);
}

function persistenceOf(o: Parsed, key: ServiceKey): Pick<ServiceSpec, 'persistent' | 'netmask'> {
  const [timeout] = o.persistent;
  const [mask] = o.netmask;
  if (timeout === undefined) {
    // ipvsadm would send the mask and the kernel ignore it; say so instead.
    if (mask !== undefined) badArg('-M (persistence granularity) needs -p');
    return {};
  }
  const persistent = timeout === NO_VALUE ? DEFAULT_PERSISTENT : intArg(timeout, 1, MAX_TIMEOUT, 'the -p timeout (seconds)');
  if (mask === undefined) return { persistent };
  if (isIPv6(key.addr)) return { persistent, netmask: prefixOf(mask) };
  if (netmaskBits(mask) === undefined) badArg(`-M needs a contiguous dotted IPv4 netmask such as 255.255.255.0, not '${mask}'`);
  return { persistent, netmask: mask };
}

/** -M of an IPv6 service: a prefix length, as ipvsadm reads it for one ("illegal ipv6 netmask" otherwise). */
function prefixOf(mask: string): string {
  if (prefixLength(mask) === undefined) badArg(`-M of an IPv6 service is a prefix length 1..128, not '${mask}'`);
  return mask;
}

function thresholdsOf(o: Parsed): Pick<RealSpec, 'uthreshold' | 'lthreshold'> {
  const [u, l] = [o.uThreshold[0], o.lThreshold[0]];
  const uthreshold = u === undefined ? undefined : intArg(u, 0, MAX_THRESHOLD, '-x (upper threshold)');
  const lthreshold = l === undefined ? undefined : intArg(l, 0, MAX_THRESHOLD, '-y (lower threshold)');
  // The kernel refuses l_threshold > u_threshold, counting a missing one as 0.
  if ((lthreshold ?? 0) > (uthreshold ?? 0)) {
    badArg(`-y (lower threshold) ${lthreshold} is above -x (upper threshold) ${uthreshold ?? 0}`);
  }
  return { ...(uthreshold !== undefined && { uthreshold }), ...(lthreshold !== undefined && { lthreshold }) };
}

function timeoutsOf(o: Parsed): Timeouts {
  const values = o.set as string[];
  if (values.length !== 3) badArg(`--set takes 3 timeout values (tcp tcpfin udp), not ${values.length}`);
  const [tcp, tcpfin, udp] = values.map((v) => intArg(v, 0, MAX_TIMEOUT, '--set timeout (seconds)')) as [number, number, number];
  return { tcp, tcpfin, udp };
}

function fwdOf(o: Parsed): Fwd {
  if (o.ipip) return 'tun';
  if (o.masquerading) return 'nat';
  return 'dr';
}

function commanderOpts(argv: string[]): Parsed {
  const p = program();
  try {
    p.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) badArg(e.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' '));
    throw e;
  }
  if (p.args.length > 0) badArg(`unexpected argument '${p.args[0]}'`);
  return p.opts<Parsed>();
}

/** Parses ipvsadm arguments (without the program name). No arguments lists the table, as ipvsadm does. */
export function parseIpvsadm(argv: string[]): Command {
  const o = commanderOpts(argv);
  if (o.help) return { op: 'help', text: USAGE };
  if (argv.length === 0) return { op: 'list', list: { numeric: true, stats: false, exact: false } };

  const given = COMMANDS.filter((c) => o[c.attr] !== undefined);
  const ops = new Set(given.map((c) => c.op ?? c.flag));
  if (ops.size === 0) badArg('no command given: one of -A -E -D -C -a -e -d -L -Z is needed');
  if (ops.size > 1) badArg(`one command at a time, not ${given.map((c) => c.flag).join(' and ')}`);
  const cmd = given[0]!;
  if (cmd.op === undefined) throw new XvsError('UNSUPPORTED', `${cmd.flag} is not supported yet`);
  const op: Op = cmd.op;

  const opts = present(o);
  for (const opt of opts) {
    if (!ALLOWED[op].includes(opt)) badArg(`${OPTIONS[opt].name} cannot be used with ${cmd.flag}`);
  }
  if (op === 'list') {
    const shown = LIST_EXCLUSIVE.filter((opt) => opts.includes(opt));
    if (shown.length > 1) badArg(`${OPTIONS[shown[0]!].name} and ${OPTIONS[shown[1]!].name} cannot be used together with ${cmd.flag}`);
    const notTable = LIST_NOT_TABLE.find((opt) => opts.includes(opt));
    const format = LIST_TABLE_FORMAT.find((opt) => opts.includes(opt));
    if (notTable && format) badArg(`${OPTIONS[notTable].name} and ${OPTIONS[format].name} cannot be used together with ${cmd.flag}`);
  }
  for (const opt of opts) {
    if (OPTIONS[opt].unsupported) throw new XvsError('UNSUPPORTED', `${OPTIONS[opt].name} is not supported yet`);
  }

  if (o.tcpService.length + o.udpService.length > 1) badArg('give one service address (-t or -u)');
  if (o.realServer.length > 1) badArg('give one real server (-r)');
  if (o.scheduler.length > 1) badArg('give one scheduler (-s)');
  if (o.weight.length > 1) badArg('give one weight (-w)');
  if (o.persistent.length > 1) badArg('give one -p');
  if (o.netmask.length > 1) badArg('give one netmask (-M)');
  if (o.uThreshold.length > 1) badArg('give one upper threshold (-x)');
  if (o.lThreshold.length > 1) badArg('give one lower threshold (-y)');
  if ([o.gatewaying, o.ipip, o.masquerading].filter(Boolean).length > 1) badArg('give one forwarding method: -g, -i or -m');

  const needsService = op !== 'clear' && op !== 'list' && op !== 'zero' && op !== 'set-timeouts';
  const needsReal = op === 'add-real' || op === 'edit-real' || op === 'del-real';
  const hasService = opts.includes('service');
  const hasReal = opts.includes('real');
  if (needsService && !hasService && needsReal && !hasReal) badArg(`${cmd.flag} needs -t or -u and -r`);
  if (needsService && !hasService) badArg(`${cmd.flag} needs -t or -u`);
  if (needsReal && !hasReal) badArg(`${cmd.flag} needs -r`);

  const key = hasService ? serviceKey(o) : undefined;
  switch (op) {
    case 'clear':
      return { op };
    case 'set-timeouts':
      return { op, timeouts: timeoutsOf(o) };
    case 'list':
      if (o.timeout) return { op: 'get-timeouts' };
      return {
        op,
        ...(key && { key }),
        list: { numeric: !!o.numeric, stats: !!o.stats, exact: !!o.exact, ...(o.thresholds ? { thresholds: true } : {}) },
      };
    case 'zero':
      return key ? { op, key } : { op };
    case 'add-service':
    case 'edit-service':
      // -E replaces the whole service, as ipvsadm's: no -p makes it non-persistent.
      return { op, svc: { ...key!, scheduler: checkSchedulerName(o.scheduler[0] ?? DEFAULT_SCHEDULER), ...persistenceOf(o, key!) } };
    case 'del-service':
      return { op, key: key! };
  }
  const real = parseEndpoint(o.realServer[0]!);
  const port = real.port ?? 0;
  if (op === 'del-real') return { op, key: key!, real: { addr: real.addr, port } };
  // -e replaces the whole real server, as ipvsadm's: no -x/-y means none.
  return { op, key: key!, real: { addr: real.addr, port, fwd: fwdOf(o), weight: weightOf(o), ...thresholdsOf(o) } };
}
