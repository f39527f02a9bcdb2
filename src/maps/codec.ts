// A small struct codec kit for the C structs shared with the dataplane.
// Offsets follow C layout rules (each field aligned to its natural alignment,
// size rounded to the largest alignment), and test/abi.test.ts compares the
// result with the compiled object's BTF, so a layout drift fails loudly.
import { isIPv4, isIPv6 } from 'node:net';
import { endianness } from 'node:os';
import { XvsError } from '../errors.js';
import { FAMILY } from './abi.js';

export interface FieldInfo {
  name: string;
  offset: number;
  size: number;
}

export interface Codec<T> {
  name: string;
  size: number;
  fields: readonly FieldInfo[];
  encode(v: T): Buffer;
  /** Writes v at off, zeroing padding; for arrays of values (per-CPU, batch). */
  encodeInto(v: T, b: Buffer, off?: number): void;
  decode(b: Buffer, off?: number): T;
}

/** A member's offset, for reading one field of many raw entries without decoding them. */
export function fieldOffset(c: Codec<unknown>, name: string): number {
  const f = c.fields.find((x) => x.name === name);
  if (!f) throw new XvsError('BAD_ARGUMENT', `${c.name} has no member ${name}`);
  return f.offset;
}

/**
 * Whether an array map's slot is empty: its family byte is 0 (AF_UNSPEC), as
 * the kernel zeroes unused array entries. Checked before decoding, since an
 * address of family 0 cannot be decoded.
 */
export function emptySlot(c: Codec<unknown>, raw: Buffer): boolean {
  return raw[fieldOffset(c, 'family')] === 0;
}

/** One member: how to read and write it. `ctx` is the struct being encoded or decoded. */
export interface FieldDef<N extends string, V> {
  readonly name: N;
  readonly size: number;
  readonly align: number;
  readonly pad?: true;
  /** Decoded after the other fields, so it may read them from ctx (address families). */
  readonly late?: true;
  write(b: Buffer, off: number, v: V, ctx: Record<string, unknown>): void;
  read(b: Buffer, off: number, ctx: Record<string, unknown>): V;
}

type AnyField = FieldDef<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The TS value of a struct built from these fields (padding omitted). */
export type StructValue<F extends readonly AnyField[]> = {
  [D in F[number] as D extends { pad: true } ? never : D['name']]: D extends FieldDef<string, infer V> ? V : never;
};

export type ValueOf<C> = C extends Codec<infer T> ? T : never;

/** Whether this machine stores words little-endian, as the dataplane reads them. */
export const LE = endianness() === 'LE';

function prim<N extends string>(name: N, size: 1 | 2 | 4, big: boolean): FieldDef<N, number> {
  const le = !big && LE;
  return {
    name,
    size,
    align: size,
    write(b, off, v) {
      if (size === 1) b.writeUInt8(v, off);
      else if (size === 2) le ? b.writeUInt16LE(v, off) : b.writeUInt16BE(v, off);
      else le ? b.writeUInt32LE(v, off) : b.writeUInt32BE(v, off);
    },
    read(b, off) {
      if (size === 1) return b.readUInt8(off);
      if (size === 2) return le ? b.readUInt16LE(off) : b.readUInt16BE(off);
      return le ? b.readUInt32LE(off) : b.readUInt32BE(off);
    },
  };
}

export const u8 = <N extends string>(name: N) => prim(name, 1, false);
/** Host byte order. */
export const u16 = <N extends string>(name: N) => prim(name, 2, false);
/** __be16: a host-order number in TS, big-endian in memory (ports). */
export const be16 = <N extends string>(name: N) => prim(name, 2, true);
export const u32 = <N extends string>(name: N) => prim(name, 4, false);
export const be32 = <N extends string>(name: N) => prim(name, 4, true);

/**
 * __u64 as a JS number. Counters and nanosecond timestamps stay below 2^53
 * for ~104 days of ktime or 9 PB of bytes; past that the low bits round,
 * which is harmless for statistics and idle timeouts.
 */
export function u64<N extends string>(name: N): FieldDef<N, number> {
  return {
    name,
    size: 8,
    align: 8,
    write(b, off, v) {
      const x = BigInt(v);
      LE ? b.writeBigUInt64LE(x, off) : b.writeBigUInt64BE(x, off);
    },
    read(b, off) {
      return Number(LE ? b.readBigUInt64LE(off) : b.readBigUInt64BE(off));
    },
  };
}

/** `__u32 NAME[n]` (host order) as an array of n numbers. */
export function u32s<N extends string>(name: N, n: number): FieldDef<N, number[]> {
  return {
    name,
    size: 4 * n,
    align: 4,
    write(b, off, v) {
      if (v.length !== n) throw new XvsError('BAD_ARGUMENT', `${name}: ${v.length} values where ${n} belong`);
      v.forEach((x, i) => (LE ? b.writeUInt32LE(x, off + 4 * i) : b.writeUInt32BE(x, off + 4 * i)));
    },
    read: (b, off) => Array.from({ length: n }, (_, i) => (LE ? b.readUInt32LE(off + 4 * i) : b.readUInt32BE(off + 4 * i))),
  };
}

/** A byte array (`__u8 NAME[n]`, or a mask with no family of its own) as a Buffer of n bytes. */
export function bytes<N extends string>(name: N, n: number, align = 1): FieldDef<N, Buffer> {
  return {
    name,
    size: n,
    align,
    write(b, off, v) {
      if (v.length !== n) throw new XvsError('BAD_ARGUMENT', `${name}: ${v.length} bytes where ${n} belong`);
      v.copy(b, off);
    },
    read: (b, off) => Buffer.from(b.subarray(off, off + n)),
  };
}

/** A MAC address (`__u8 NAME[6]`) as aa:bb:cc:dd:ee:ff. */
export function mac<N extends string>(name: N): FieldDef<N, string> {
  return {
    name,
    size: 6,
    align: 1,
    write(b, off, v) {
      const parts = v.split(':');
      if (parts.length !== 6 || parts.some((x) => !/^[0-9a-fA-F]{1,2}$/.test(x))) throw new XvsError('BAD_ADDRESS', `${name}: not a MAC address: ${v}`);
      parts.forEach((x, i) => { b[off + i] = parseInt(x, 16); });
    },
    read: (b, off) => Array.from(b.subarray(off, off + 6), (x) => x.toString(16).padStart(2, '0')).join(':'),
  };
}

/** Explicit padding (named as in C); always written as zeros. */
export function pad<N extends string>(name: N, n: number): FieldDef<N, undefined> & { pad: true } {
  return { name, size: n, align: 1, pad: true, write() {}, read: () => undefined };
}

export const AF_INET = FAMILY.inet;
export const AF_INET6 = FAMILY.inet6;
export type Family = typeof AF_INET | typeof AF_INET6;

/** An IP string as the 16 bytes of `__be32 addr[4]`: IPv4 in addr[0], the rest zero. */
export function ipToAddr16(ip: string): { family: Family; bytes: Buffer } {
  const bytes = Buffer.alloc(16);
  if (isIPv4(ip)) {
    ip.split('.').forEach((p, i) => { bytes[i] = Number(p); });
    return { family: AF_INET, bytes };
  }
  // A zone (fe80::1%eth0) has no place in a 16-byte address.
  if (!isIPv6(ip) || ip.includes('%')) throw new XvsError('BAD_ADDRESS', `not an IP address: ${ip}`);
  let s = ip;
  const v4tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4tail?.[1]) {
    const t = v4tail[1].split('.').map(Number);
    s = s.slice(0, -v4tail[1].length) + `${(((t[0] ?? 0) << 8) | (t[1] ?? 0)).toString(16)}:${(((t[2] ?? 0) << 8) | (t[3] ?? 0)).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const hs = head ? head.split(':') : [];
  const ts = tail ? tail.split(':') : [];
  const groups = [...hs, ...Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  groups.forEach((g, i) => bytes.writeUInt16BE(parseInt(g, 16), i * 2));
  return { family: AF_INET6, bytes };
}

/** The inverse of ipToAddr16; IPv6 comes out in RFC 5952 short form. */
export function addr16ToIp(bytes: Buffer, family: number): string {
  if (family === AF_INET) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (family !== AF_INET6) throw new XvsError('BAD_ADDRESS', `unknown address family ${family}`);
  const g = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  // The longest run of two or more zero groups becomes '::' (leftmost on ties).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j > i ? j : i + 1;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/**
 * `__be32 NAME[4]` holding an address, as a string in TS. The family comes
 * from the struct member named `familyField` when there is one; otherwise an
 * address with only addr[0] set is IPv4. Encoding checks the string against
 * that family so a v6 address never lands in a v4 slot unnoticed.
 */
export function addr16<N extends string>(name: N, familyField?: string): FieldDef<N, string> {
  return {
    name,
    size: 16,
    align: 4,
    late: true,
    write(b, off, v, ctx) {
      const { family, bytes } = ipToAddr16(v);
      const want = familyField === undefined ? undefined : ctx[familyField];
      if (want !== undefined && want !== family) {
        throw new XvsError('BAD_ADDRESS', `${name}: ${v} is not of address family ${String(want)}`);
      }
      bytes.copy(b, off);
    },
    read(b, off, ctx) {
      const bytes = b.subarray(off, off + 16);
      let family = familyField === undefined ? undefined : ctx[familyField];
      if (typeof family !== 'number') family = bytes.subarray(4).every((x) => x === 0) ? AF_INET : AF_INET6;
      return addr16ToIp(bytes, family as number);
    },
  };
}

/** A codec for a C struct given its members in declaration order. */
export function struct<const F extends readonly AnyField[]>(name: string, defs: F): Codec<StructValue<F>> {
  let off = 0;
  let maxAlign = 1;
  const placed = defs.map((d) => {
    off = Math.ceil(off / d.align) * d.align;
    maxAlign = Math.max(maxAlign, d.align);
    const p = { def: d, offset: off };
    off += d.size;
    return p;
  });
  const size = Math.ceil(off / maxAlign) * maxAlign;
  const data = placed.filter((p) => !p.def.pad);
  const early = data.filter((p) => !p.def.late);
  const late = data.filter((p) => p.def.late);

  const encodeInto = (v: StructValue<F>, b: Buffer, base = 0): void => {
    const ctx = v as Record<string, unknown>;
    b.fill(0, base, base + size);
    for (const { def, offset } of data) {
      const x = ctx[def.name];
      if (x === undefined) throw new XvsError('BAD_ARGUMENT', `${name}: missing field ${def.name}`);
      def.write(b, base + offset, x, ctx);
    }
  };
  return {
    name,
    size,
    fields: placed.map(({ def, offset }) => ({ name: def.name, offset, size: def.size })),
    encodeInto,
    encode(v) {
      const b = Buffer.alloc(size);
      encodeInto(v, b, 0);
      return b;
    },
    decode(b, base = 0) {
      const out: Record<string, unknown> = {};
      for (const { def, offset } of early) out[def.name] = def.read(b, base + offset, out);
      for (const { def, offset } of late) out[def.name] = def.read(b, base + offset, out);
      return out as StructValue<F>;
    },
  };
}

/** A codec for a bare scalar key or value (`__u32` and friends). */
export function scalar<V>(def: FieldDef<string, V>): Codec<V> {
  const encodeInto = (v: V, b: Buffer, off = 0): void => def.write(b, off, v, {});
  return {
    name: def.name,
    size: def.size,
    fields: [{ name: def.name, offset: 0, size: def.size }],
    encodeInto,
    encode(v) {
      const b = Buffer.alloc(def.size);
      encodeInto(v, b, 0);
      return b;
    },
    decode: (b, off = 0) => def.read(b, off, {}),
  };
}

/** Adds number fields (or numbers) across values; the first value gives the rest. */
export function sumValues<V>(vs: readonly V[]): V {
  const [first, ...rest] = vs;
  if (first === undefined) throw new XvsError('BAD_ARGUMENT', 'nothing to sum');
  if (typeof first === 'number') return rest.reduce<number>((a, x) => a + (x as number), first) as V;
  const out = { ...first } as Record<string, unknown>;
  for (const v of rest) {
    for (const [name, x] of Object.entries(v as Record<string, unknown>)) {
      if (typeof x === 'number' && typeof out[name] === 'number') out[name] = (out[name] as number) + x;
    }
  }
  return out as V;
}
