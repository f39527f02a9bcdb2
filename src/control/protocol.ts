import { isIP, isIPv6 } from 'node:net';
import { XvsError } from '../errors.js';
import { SCHED_FLAGS_MASK } from '../schedulers/flags.js';
import { checkSchedulerName } from '../schedulers/registry.js';
import { tunnelOf, type Tunnel } from '../modes/tunnel.js';

// The xvsd control protocol: JSON over a unix socket, one request per line,
// one response per line. Every value a client may send is checked here, once:
// shapes, ranges, address syntax, scheduler names. The daemon checks only
// what depends on its state or its dataplane (a service exists, a real server
// is a duplicate, IPv6 or NAT is not implemented yet, a table fits).

export type Proto = 'tcp' | 'udp';
export type Fwd = 'dr' | 'tun' | 'nat' | 'fullnat';

export interface ServiceKey {
  proto: Proto;
  addr: string;
  port: number;
  /**
   * -f: a fwmark service, 1..2^32-1. Its addr is then its family's
   * unspecified address (0.0.0.0, or :: for -6), its port 0 and its proto
   * 'tcp', which ipvsadm sends for -f ("a sane value, even though it is not
   * used"); absent: an address/port service.
   */
  fwmark?: number;
}

/** The highest fwmark (ipvsadm's parse_fwmark takes 1..0xffffffff). */
export const MAX_FWMARK = 0xffffffff;

/**
 * A mark given by matches on the packet (xvsadm --fwmark-rule), in place of
 * the netfilter mark XDP runs too early to see: the destination prefix, and
 * optionally the protocol and a destination port range.
 */
export interface FwmarkRule {
  mark: number;
  /** The prefix: an address of it (the director keeps the network address, host bits cleared, as iptables does) and its length, 0..32 or 0..128. */
  addr: string;
  len: number;
  /** Absent: TCP and UDP. */
  proto?: Proto;
  /** First and last destination port, inclusive; only with proto (as iptables' --dport). Absent: every port. */
  dport?: [number, number];
}

// ipvsadm's limits (ipvsadm.c): persistence and connection timeouts are at
// most MAX_TIMEOUT = 86400*31 s; `-p` without a value sends
// IPVS_SVC_PERSISTENT_TIMEOUT = 6*60 s (libipvs/libipvs.h; the man page's
// "300 seconds" is out of date); -x/-y take 0..INT_MAX (the man page says
// 0..65535, the code does not).
export const MAX_TIMEOUT = 86400 * 31;
export const DEFAULT_PERSISTENT = 6 * 60;
export const MAX_THRESHOLD = 2 ** 31 - 1;
/** Persistence granularity when none is given: per client host. */
export const DEFAULT_NETMASK = '255.255.255.255';
/** The same for an IPv6 service, whose -M is a prefix length (ipvsadm's, and IPVS's netmask field). */
export const DEFAULT_PREFIX6 = '128';

export interface ServiceSpec extends ServiceKey {
  scheduler: string;
  /** Persistence timeout in seconds, 1..MAX_TIMEOUT; absent = not persistent. */
  persistent?: number;
  /**
   * Persistence granularity, only with persistent: for an IPv4 service a
   * dotted contiguous mask (absent = DEFAULT_NETMASK), for an IPv6 service a
   * prefix length 1..128 in decimal (absent = DEFAULT_PREFIX6), as ipvsadm -M.
   */
  netmask?: string;
  /** -o: one-packet scheduling (UDP only). */
  ops?: boolean;
  /** ipvsadm -b: scheduler flag bits flag-1..flag-3 (src/schedulers/flags.ts); absent = none. */
  schedFlags?: number;
}

/** In requests, port 0 means "the service's port". */
export interface RealSpec {
  addr: string;
  port: number;
  fwd: Fwd;
  weight: number;
  /** Connection thresholds, 0..MAX_THRESHOLD; 0 or absent = none. lthreshold <= uthreshold, as the kernel's IPVS insists. */
  uthreshold?: number;
  lthreshold?: number;
  /** TUN only: GUE or GRE (modes/tunnel.ts); absent = IPIP. */
  tunnel?: Tunnel;
}

/** Connection timeouts in seconds (ipvsadm --set tcp tcpfin udp). */
export interface Timeouts {
  tcp: number;
  tcpfin: number;
  udp: number;
}

export type Request =
  | { op: 'add-service'; svc: ServiceSpec }
  | { op: 'edit-service'; svc: ServiceSpec }
  | { op: 'del-service'; key: ServiceKey }
  | { op: 'add-real'; key: ServiceKey; real: RealSpec }
  | { op: 'edit-real'; key: ServiceKey; real: RealSpec }
  | { op: 'del-real'; key: ServiceKey; real: { addr: string; port: number } }
  | { op: 'clear' }
  | { op: 'zero'; key?: ServiceKey }
  | { op: 'list'; key?: ServiceKey }
  | { op: 'status' }
  /** Each value 0..MAX_TIMEOUT; 0 leaves that timeout unchanged, as ipvsadm --set. No result. */
  | { op: 'set-timeouts'; timeouts: Timeouts }
  /** Result: Timeouts. */
  | { op: 'get-timeouts' }
  /**
   * Changes applied as one transaction, all or none (xvsadm -R). A refusal
   * names the request: its message starts "request N: " (N from 1).
   */
  | { op: 'batch'; requests: BatchRequest[] }
  /** Result: ConnView[] (xvsadm -L -c). */
  | { op: 'connections' }
  /** A local address for the service's FULLNAT flows (xvsadm -P): of the service's family, or IPv4 in an IPv6 service (NAT64). */
  | { op: 'add-laddr'; key: ServiceKey; laddr: string }
  /** xvsadm -Q: new flows no longer take it; flows that have it keep it. */
  | { op: 'del-laddr'; key: ServiceKey; laddr: string }
  /** Result: LaddrView[], one service or every one (xvsadm -G). */
  | { op: 'get-laddrs'; key?: ServiceKey }
  /** xvsadm --fwmark-rule: a rule for a mark; several may give one mark. */
  | { op: 'add-fwmark-rule'; rule: FwmarkRule }
  /** xvsadm --del-fwmark-rule: the rule with these very matches and mark. */
  | { op: 'del-fwmark-rule'; rule: FwmarkRule }
  /** Result: FwmarkRule[] in the order the dataplane tries them (xvsadm --list-fwmark-rules). */
  | { op: 'list-fwmark-rules' };

export type BatchOp = 'add-service' | 'edit-service' | 'del-service' | 'add-real' | 'edit-real' | 'del-real' | 'clear' | 'zero' | 'set-timeouts' | 'add-laddr' | 'del-laddr' | 'add-fwmark-rule' | 'del-fwmark-rule';
export type BatchRequest = Extract<Request, { op: BatchOp }>;
export const BATCH_OPS = [
  'add-service', 'edit-service', 'del-service', 'add-real', 'edit-real', 'del-real', 'clear', 'zero', 'set-timeouts', 'add-laddr', 'del-laddr',
  'add-fwmark-rule', 'del-fwmark-rule',
] as const satisfies readonly BatchOp[];
/** More requests than this in one batch is not a configuration but a mistake. */
export const MAX_BATCH = 100_000;

export type Op = Request['op'];

export interface StatsView {
  conns: number;
  inpkts: number;
  outpkts: number;
  inbytes: number;
  outbytes: number;
}

/** ipvsadm --rate: the 2-second estimator's rates (per second; bytes for InBPS/OutBPS). */
export interface RateView {
  cps: number;
  inpps: number;
  outpps: number;
  inbps: number;
  outbps: number;
}

export interface RealView {
  addr: string;
  port: number;
  fwd: Fwd;
  weight: number;
  uthreshold: number;
  lthreshold: number;
  /** TUN through GUE or GRE; absent = IPIP (or not TUN). */
  tunnel?: Tunnel;
  activeConns: number;
  inactConns: number;
  /** Live persistence templates naming this real server (--persistent-conn). */
  persistConns?: number;
  stats: StatsView;
  rates?: RateView;
}

/** One line of ipvsadm -L -c: a connection entry or a persistence template (state NONE, client port 0). */
export interface ConnView {
  proto: Proto;
  /** Seconds left before the entry expires. */
  expires: number;
  /** IPVS's state name: ESTABLISHED, SYN_RECV, FIN_WAIT, CLOSE, UDP, NONE. */
  state: string;
  caddr: string;
  cport: number;
  vaddr: string;
  vport: number;
  daddr: string;
  dport: number;
  /** A fwmark service's persistence template: no protocol of its own (IPVS lists it as IP). */
  fwmark?: true;
}

/** persistent and netmask as in ServiceSpec (inherited). */
export interface ServiceView extends ServiceSpec {
  reals: RealView[];
  stats: StatsView;
  rates?: RateView;
  /** FULLNAT's local addresses in the order they were added; absent when there are none. */
  laddrs?: string[];
}

/** One service's local addresses (xvsadm -G). */
export interface LaddrView extends ServiceKey {
  laddrs: {
    addr: string;
    /** Live FULLNAT flows of the service holding a port of this address (their reply side is in the reply tables). */
    conns: number;
  }[];
}

/**
 * What a committed change may answer: things the operator should know that
 * do not make the change wrong (a FULLNAT real server whose service has no
 * local address of its family yet). No result at all when there are none.
 */
export interface ChangeResult {
  warnings: string[];
}

export interface ListResult {
  connTableSize: number;
  services: ServiceView[];
  counters: Record<string, number>;
  timeouts: Timeouts;
  /** Every fwmark rule, in the order -S writes them; absent when there are none. */
  fwmarkRules?: FwmarkRule[];
}

export interface ErrorBody {
  code: string;
  message: string;
  hint?: string;
  detail?: string;
}

export type Response = { ok: true; result?: unknown } | { ok: false; error: ErrorBody };

export const OPS = [
  'add-service', 'edit-service', 'del-service', 'add-real', 'edit-real', 'del-real',
  'clear', 'zero', 'list', 'status', 'set-timeouts', 'get-timeouts', 'batch', 'connections', 'add-laddr', 'del-laddr', 'get-laddrs',
  'add-fwmark-rule', 'del-fwmark-rule', 'list-fwmark-rules',
] as const satisfies readonly Op[];

export const FWDS = ['dr', 'tun', 'nat', 'fullnat'] as const satisfies readonly Fwd[];

type Obj = Record<string, unknown>;

function bad(message: string): never {
  throw new XvsError('BAD_ARGUMENT', message);
}

function obj(v: unknown, what: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`${what} must be an object`);
  return v as Obj;
}

function str(o: Obj, field: string, what: string): string {
  const v = o[field];
  if (typeof v !== 'string' || v === '') bad(`${what}.${field} must be a non-empty string`);
  return v;
}

function int(o: Obj, field: string, what: string, min: number, max: number): number {
  const v = o[field];
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) bad(`${what}.${field} must be an integer ${min}..${max}`);
  return v as number;
}

function ip(o: Obj, field: string, what: string): string {
  const v = str(o, field, what);
  if (isIP(v) === 0) throw new XvsError('BAD_ADDRESS', `${what}.${field} ${JSON.stringify(v)} is not an IP address`);
  return v;
}

function key(v: unknown, what: string): ServiceKey {
  const o = obj(v, what);
  const proto = o.proto;
  if (proto !== 'tcp' && proto !== 'udp') bad(`${what}.proto must be 'tcp' or 'udp'`);
  const k: ServiceKey = { proto, addr: ip(o, 'addr', what), port: int(o, 'port', what, 0, 65535) };
  if (o.fwmark === undefined) return k;
  const fwmark = int(o, 'fwmark', what, 1, MAX_FWMARK);
  if ((k.addr !== '0.0.0.0' && k.addr !== '::') || k.port !== 0 || k.proto !== 'tcp') {
    bad(`${what} of a fwmark service must have addr 0.0.0.0 or ::, port 0 and proto 'tcp'`);
  }
  return { ...k, fwmark };
}

function fwmarkRule(v: unknown): FwmarkRule {
  const o = obj(v, 'rule');
  const addr = ip(o, 'addr', 'rule');
  const bits = isIPv6(addr) ? 128 : 32;
  const out: FwmarkRule = { mark: int(o, 'mark', 'rule', 1, MAX_FWMARK), addr, len: int(o, 'len', 'rule', 0, bits) };
  if (o.proto !== undefined) {
    if (o.proto !== 'tcp' && o.proto !== 'udp') bad("rule.proto must be 'tcp' or 'udp'");
    out.proto = o.proto;
  }
  if (o.dport !== undefined) {
    const d = o.dport;
    if (!Array.isArray(d) || d.length !== 2 || !d.every((x) => Number.isInteger(x) && x >= 0 && x <= 65535) || d[0] > d[1]) {
      bad('rule.dport must be [first, last], ports 0..65535 with first <= last');
    }
    if (out.proto === undefined) bad('rule.dport needs rule.proto, as iptables\' --dport needs -p');
    out.dport = [d[0] as number, d[1] as number];
  }
  return out;
}

/**
 * The mask as a number if `mask` is a dotted IPv4 netmask. Any bits, as
 * ipvsadm and IPVS take them: the dataplane ANDs the client address with
 * the mask, so a non-contiguous one (255.0.255.0) groups clients too.
 */
export function netmaskBits(mask: string): number | undefined {
  const parts = mask.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255)) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

/** An IPv6 persistence prefix length, 1..128 in plain decimal (IPVS refuses 0), as a number. */
export function prefixLength(text: string): number | undefined {
  return /^[1-9]\d{0,2}$/.test(text) && Number(text) <= 128 ? Number(text) : undefined;
}

function spec(v: unknown): ServiceSpec {
  const o = obj(v, 'svc');
  const out: ServiceSpec = { ...key(v, 'svc'), scheduler: checkSchedulerName(str(o, 'scheduler', 'svc')) };
  if (o.persistent !== undefined) out.persistent = int(o, 'persistent', 'svc', 1, MAX_TIMEOUT);
  if (o.netmask !== undefined) {
    const mask = o.netmask;
    if (isIPv6(out.addr)) {
      if (typeof mask !== 'string' || prefixLength(mask) === undefined) bad('svc.netmask of an IPv6 service must be a prefix length 1..128 such as "64"');
    } else if (typeof mask !== 'string' || netmaskBits(mask) === undefined) {
      bad('svc.netmask of an IPv4 service must be a dotted netmask such as 255.255.255.0');
    }
    if (out.persistent === undefined) bad('svc.netmask is only meaningful with svc.persistent');
    out.netmask = mask;
  }
  if (o.ops !== undefined) {
    if (typeof o.ops !== 'boolean') bad('svc.ops must be true or false');
    if (o.ops) out.ops = true;
  }
  if (o.schedFlags !== undefined) {
    const bits = int(o, 'schedFlags', 'svc', 0, SCHED_FLAGS_MASK);
    if (bits !== 0) out.schedFlags = bits;
  }
  return out;
}

function real(v: unknown): RealSpec {
  const o = obj(v, 'real');
  const fwd = o.fwd;
  if (!FWDS.includes(fwd as Fwd)) bad(`real.fwd must be one of ${FWDS.join(' ')}`);
  const out: RealSpec = {
    addr: ip(o, 'addr', 'real'),
    port: int(o, 'port', 'real', 0, 65535),
    fwd: fwd as Fwd,
    weight: int(o, 'weight', 'real', 0, 65535),
  };
  if (o.uthreshold !== undefined) out.uthreshold = int(o, 'uthreshold', 'real', 0, MAX_THRESHOLD);
  if (o.lthreshold !== undefined) out.lthreshold = int(o, 'lthreshold', 'real', 0, MAX_THRESHOLD);
  // ip_vs_add_dest/ip_vs_edit_dest refuse l_threshold > u_threshold outright (a
  // missing upper threshold is 0 there too).
  if ((out.lthreshold ?? 0) > (out.uthreshold ?? 0)) bad('real.lthreshold must not exceed real.uthreshold');
  const tunnel = tunnelOf(o.tunnel, out.fwd);
  if (tunnel) out.tunnel = tunnel;
  return out;
}

function timeouts(v: unknown): Timeouts {
  const o = obj(v, 'timeouts');
  return {
    tcp: int(o, 'tcp', 'timeouts', 0, MAX_TIMEOUT),
    tcpfin: int(o, 'tcpfin', 'timeouts', 0, MAX_TIMEOUT),
    udp: int(o, 'udp', 'timeouts', 0, MAX_TIMEOUT),
  };
}

/** Parses one request line; anything malformed is a BAD_ARGUMENT. */
export function parseRequest(line: string): Request {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    bad('request is not valid JSON');
  }
  return requestOf(raw);
}

function batch(v: unknown): BatchRequest[] {
  if (!Array.isArray(v)) bad('requests must be an array');
  if (v.length > MAX_BATCH) bad(`at most ${MAX_BATCH} requests in a batch`);
  return v.map((r, i) => {
    const op = obj(r, `requests[${i}]`).op;
    if (!BATCH_OPS.includes(op as BatchOp)) bad(`requests[${i}].op ${JSON.stringify(op)} cannot be batched`);
    try {
      return requestOf(r) as BatchRequest;
    } catch (e) {
      if (e instanceof XvsError) throw new XvsError(e.code, `request ${i + 1}: ${e.message}`);
      throw e;
    }
  });
}

function requestOf(raw: unknown): Request {
  const o = obj(raw, 'request');
  const op = o.op;
  if (!OPS.includes(op as Op)) bad(`unknown op ${JSON.stringify(op)}`);
  switch (op as Op) {
    case 'add-service':
    case 'edit-service':
      return { op: op as 'add-service' | 'edit-service', svc: spec(o.svc) };
    case 'del-service':
      return { op: 'del-service', key: key(o.key, 'key') };
    case 'add-real':
    case 'edit-real':
      return { op: op as 'add-real' | 'edit-real', key: key(o.key, 'key'), real: real(o.real) };
    case 'del-real': {
      const r = obj(o.real, 'real');
      return { op: 'del-real', key: key(o.key, 'key'), real: { addr: ip(r, 'addr', 'real'), port: int(r, 'port', 'real', 0, 65535) } };
    }
    case 'zero':
    case 'list':
    case 'get-laddrs':
      return o.key === undefined ? { op: op as 'zero' | 'list' | 'get-laddrs' } : { op: op as 'zero' | 'list' | 'get-laddrs', key: key(o.key, 'key') };
    case 'add-laddr':
    case 'del-laddr':
      return { op: op as 'add-laddr' | 'del-laddr', key: key(o.key, 'key'), laddr: ip(o, 'laddr', 'request') };
    case 'set-timeouts':
      return { op: 'set-timeouts', timeouts: timeouts(o.timeouts) };
    case 'add-fwmark-rule':
    case 'del-fwmark-rule':
      return { op: op as 'add-fwmark-rule' | 'del-fwmark-rule', rule: fwmarkRule(o.rule) };
    case 'list-fwmark-rules':
      return { op: 'list-fwmark-rules' };
    case 'batch':
      return { op: 'batch', requests: batch(o.requests) };
    case 'clear':
    case 'status':
    case 'get-timeouts':
    case 'connections':
      return { op: op as 'clear' | 'status' | 'get-timeouts' | 'connections' };
  }
}
