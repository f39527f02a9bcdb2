// One registry of error classes: each has a stable code, a one-line message
// and, where it helps, a hint. The CLIs print `xvs: <CODE> <message>` and exit
// non-zero; the daemon sends {code, message, hint} over its socket.
//
// xvsadm speaks ipvsadm's words: `exit` is ipvsadm 1.31's exit code on the
// path that meets the error (fail() exits 2; popt errors and refusals from
// the kernel make main return -1, i.e. 255; -L's failures exit 1, which
// xvsadm applies to every list command), and `ipvsadm` is libipvs's
// ipvs_strerror() for the refusal, by the kind of command that met it:
// "service" for -A/-E/-D/-Z/-L, "real" for -a/-e/-d, "laddr" for the
// FULLNAT forks' -P/-Q/-G (their libipvs's words: DPVS, Alibaba's LVS).

export const ErrorCodes = {
  NOT_ROOT: { exit: 77, hint: 'run as root (CAP_BPF and CAP_NET_ADMIN are needed)' },
  NO_INTERFACE: { exit: 2, hint: 'check the name with `ip link`' },
  OBJECT_MISSING: { exit: 2, hint: 'build the dataplane with `npm run build`' },
  NO_BTF: { exit: 2, hint: 'the kernel needs CONFIG_DEBUG_INFO_BTF (/sys/kernel/btf/vmlinux)' },
  VERIFIER: { exit: 3, hint: 'the verifier log above names the failing instruction' },
  LIBBPF: { exit: 3, hint: undefined },
  ATTACH: { exit: 3, hint: 'try --xdp-mode generic if the driver lacks native XDP' },
  BAD_ARGUMENT: { exit: 2, hint: undefined },
  /** popt's errors and ipvsadm's tryhelp_exit: the command line could not be read. */
  USAGE: { exit: 255, hint: undefined },
  BAD_ADDRESS: { exit: 2, hint: 'addresses look like 192.0.2.10, 192.0.2.10:80, 2001:db8::10 or [2001:db8::10]:80' },
  UNSUPPORTED: { exit: 2, hint: undefined },
  SERVICE_EXISTS: { exit: 255, hint: 'use -E to edit it', ipvsadm: 'Service already exists' },
  NO_SERVICE: { exit: 255, hint: 'list services with `xvsadm -L -n`', ipvsadm: { service: 'No such service', real: 'Service not defined', laddr: 'Service not defined' } },
  REAL_EXISTS: { exit: 255, hint: 'use -e to edit it', ipvsadm: 'Destination already exists' },
  NO_REAL: { exit: 255, hint: 'list real servers with `xvsadm -L -n`', ipvsadm: 'No such destination' },
  /** The kernel's ENOENT for a scheduler it has no module for. */
  NO_SCHEDULER: { exit: 255, hint: 'schedulers: rr wrr lc wlc sed nq dh sh lblc lblcr mh', ipvsadm: 'Scheduler or persistence engine not found' },
  /** The kernel's ERANGE (a lower threshold above the upper one). */
  OUT_OF_RANGE: { exit: 255, hint: undefined, ipvsadm: 'Numerical result out of range' },
  NO_TOA: { exit: 1, hint: 'the connection carried no TOA, has closed, or belongs to another network namespace' },
  NO_TOA_READER: { exit: 3, hint: 'set it up with `xvs realserver setup --vip VIP --mode fullnat`' },
  LADDR_EXISTS: { exit: 255, hint: 'list them with `xvsadm -G`', ipvsadm: 'Local address already exists' },
  NO_LADDR: { exit: 255, hint: 'list them with `xvsadm -G`', ipvsadm: 'No such Local address' },
  /** xvsadm --fwmark-rule: ipvsadm has no such rules, nor words for them. */
  FWMARK_RULE_EXISTS: { exit: 255, hint: 'list them with `xvsadm --list-fwmark-rules`' },
  NO_FWMARK_RULE: { exit: 255, hint: 'list them with `xvsadm --list-fwmark-rules`' },
  PORT_MAPPING: { exit: 2, hint: 'DR and TUN forward to the service port; use NAT (-m) to change ports' },
  CAPACITY: { exit: 255, hint: undefined },
  /** ipvsadm's fail(2) when it cannot reach IPVS at all (no module): scripts see the same words and exit. */
  NO_DAEMON: { exit: 2, hint: 'start it with `xvsd --interface IF`', ipvsadm: "Can't initialize ipvs: Protocol not available" },
  /** xvsd --metrics: the address cannot be listened on (in use, not an address of this host). */
  LISTEN: { exit: 3, hint: 'give --metrics an address of this host and a free port' },
  /** xvs explain: no director's maps where it looked. */
  NO_PINS: { exit: 3, hint: 'is xvsd running? give its --pin-dir' },
  DAEMON: { exit: 3, hint: undefined },
  SYSTEM: { exit: 1, hint: undefined },
} as const satisfies Record<string, { exit: number; hint: string | undefined; ipvsadm?: string | Record<CommandKind, string> }>;

export type ErrorCode = keyof typeof ErrorCodes;

/** Which of ipvsadm's error tables a command's refusals come from. */
export type CommandKind = 'service' | 'real' | 'laddr';

/** ipvsadm's words for a refusal with this code, met by a command of this kind; undefined where ipvsadm has none. */
export function ipvsadmWords(code: ErrorCode, kind: CommandKind): string | undefined {
  const entry = ErrorCodes[code];
  const w = 'ipvsadm' in entry ? entry.ipvsadm : undefined;
  return typeof w === 'object' ? w[kind] : w;
}

export class XvsError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly detail: string | undefined;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; detail?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'XvsError';
    this.code = code;
    this.hint = opts.hint ?? ErrorCodes[code].hint;
    this.detail = opts.detail;
  }

  get exitCode(): number {
    return ErrorCodes[this.code].exit;
  }

  /** The one line a CLI prints. */
  oneLine(): string {
    return `${this.code}: ${this.message}${this.hint ? ` (hint: ${this.hint})` : ''}`;
  }

  toJSON(): { code: ErrorCode; message: string; hint?: string; detail?: string } {
    return { code: this.code, message: this.message, hint: this.hint, detail: this.detail };
  }

  static fromJSON(o: { code?: string; message?: string; hint?: string; detail?: string }): XvsError {
    const code = (o.code && o.code in ErrorCodes ? o.code : 'DAEMON') as ErrorCode;
    const opts: { hint?: string; detail?: string } = {};
    if (o.hint !== undefined) opts.hint = o.hint;
    if (o.detail !== undefined) opts.detail = o.detail;
    return new XvsError(code, o.message ?? 'unknown error', opts);
  }
}

export function isXvsError(e: unknown): e is XvsError {
  return e instanceof XvsError;
}
