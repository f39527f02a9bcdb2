// One registry of error classes: each has a stable code, a one-line message
// and, where it helps, a hint. The CLIs print `xvs: <CODE> <message>` and exit
// non-zero; the daemon sends {code, message, hint} over its socket.

export const ErrorCodes = {
  NOT_ROOT: { exit: 77, hint: 'run as root (CAP_BPF and CAP_NET_ADMIN are needed)' },
  NO_INTERFACE: { exit: 2, hint: 'check the name with `ip link`' },
  OBJECT_MISSING: { exit: 2, hint: 'build the dataplane with `npm run build`' },
  NO_BTF: { exit: 2, hint: 'the kernel needs CONFIG_DEBUG_INFO_BTF (/sys/kernel/btf/vmlinux)' },
  VERIFIER: { exit: 3, hint: 'the verifier log above names the failing instruction' },
  LIBBPF: { exit: 3, hint: undefined },
  ATTACH: { exit: 3, hint: 'try --xdp-mode generic if the driver lacks native XDP' },
  BAD_ARGUMENT: { exit: 2, hint: undefined },
  BAD_ADDRESS: { exit: 2, hint: 'addresses look like 192.0.2.10, 192.0.2.10:80, 2001:db8::10 or [2001:db8::10]:80' },
  UNSUPPORTED: { exit: 2, hint: undefined },
  SERVICE_EXISTS: { exit: 1, hint: 'use -E to edit it' },
  NO_SERVICE: { exit: 1, hint: 'list services with `xvsadm -L -n`' },
  REAL_EXISTS: { exit: 1, hint: 'use -e to edit it' },
  NO_REAL: { exit: 1, hint: 'list real servers with `xvsadm -L -n`' },
  NO_TOA: { exit: 1, hint: 'the connection carried no TOA, has closed, or belongs to another network namespace' },
  NO_TOA_READER: { exit: 3, hint: 'set it up with `xvs realserver setup --vip VIP --mode fullnat`' },
  LADDR_EXISTS: { exit: 1, hint: 'list them with `xvsadm -G`' },
  NO_LADDR: { exit: 1, hint: 'list them with `xvsadm -G`' },
  PORT_MAPPING: { exit: 2, hint: 'DR and TUN forward to the service port; use NAT (-m) to change ports' },
  CAPACITY: { exit: 1, hint: undefined },
  NO_DAEMON: { exit: 3, hint: 'start it with `xvsd --interface IF`' },
  DAEMON: { exit: 3, hint: undefined },
  SYSTEM: { exit: 1, hint: undefined },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

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
