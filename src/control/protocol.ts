import { XvsError } from '../errors.js';

// The xvsd control protocol: JSON over a unix socket, one request per line,
// one response per line. Everything a client may send is checked here, so
// the daemon's handlers can trust the shapes (not yet the values: whether an
// address is usable is the daemon's call).

export type Proto = 'tcp' | 'udp';
export type Fwd = 'dr' | 'tun' | 'nat' | 'fullnat';

export interface ServiceKey {
  proto: Proto;
  addr: string;
  port: number;
}

export interface ServiceSpec extends ServiceKey {
  scheduler: string;
}

/** In requests, port 0 means "the service's port". */
export interface RealSpec {
  addr: string;
  port: number;
  fwd: Fwd;
  weight: number;
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
  | { op: 'status' };

export type Op = Request['op'];

export interface StatsView {
  conns: number;
  inpkts: number;
  outpkts: number;
  inbytes: number;
  outbytes: number;
}

export interface RealView {
  addr: string;
  port: number;
  fwd: Fwd;
  weight: number;
  activeConns: number;
  inactConns: number;
  stats: StatsView;
}

export interface ServiceView extends ServiceSpec {
  reals: RealView[];
  stats: StatsView;
}

export interface ListResult {
  connTableSize: number;
  services: ServiceView[];
  counters: Record<string, number>;
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
  'clear', 'zero', 'list', 'status',
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

function key(v: unknown, what: string): ServiceKey {
  const o = obj(v, what);
  const proto = o.proto;
  if (proto !== 'tcp' && proto !== 'udp') bad(`${what}.proto must be 'tcp' or 'udp'`);
  return { proto, addr: str(o, 'addr', what), port: int(o, 'port', what, 0, 65535) };
}

function spec(v: unknown): ServiceSpec {
  return { ...key(v, 'svc'), scheduler: str(obj(v, 'svc'), 'scheduler', 'svc') };
}

function real(v: unknown): RealSpec {
  const o = obj(v, 'real');
  const fwd = o.fwd;
  if (!FWDS.includes(fwd as Fwd)) bad(`real.fwd must be one of ${FWDS.join(' ')}`);
  return {
    addr: str(o, 'addr', 'real'),
    port: int(o, 'port', 'real', 0, 65535),
    fwd: fwd as Fwd,
    weight: int(o, 'weight', 'real', 0, 65535),
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
      return { op: 'del-real', key: key(o.key, 'key'), real: { addr: str(r, 'addr', 'real'), port: int(r, 'port', 'real', 0, 65535) } };
    }
    case 'zero':
    case 'list':
      return o.key === undefined ? { op: op as 'zero' | 'list' } : { op: op as 'zero' | 'list', key: key(o.key, 'key') };
    case 'clear':
    case 'status':
      return { op: op as 'clear' | 'status' };
  }
}
