// Frame builders for packet tests, written from the RFCs and independent of
// the dataplane: checksums are computed here, never read back from it.

export function mac(s: string): Buffer {
  return Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
}

export function ip4(s: string): Buffer {
  return Buffer.from(s.split('.').map((d) => Number(d)));
}

/** The 16 bytes of an IPv6 address (RFC 4291 text form, '::' allowed). */
export function ip6(s: string): Buffer {
  const [head = '', tail] = s.split('::');
  const hs = head ? head.split(':') : [];
  const ts = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? hs : [...hs, ...Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  if (groups.length !== 8) throw new Error(`not an IPv6 address: ${s}`);
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

const isV6 = (a: string): boolean => a.includes(':');

/** An address's bytes, 4 or 16 by its text form. */
export function ipBytes(a: string): Buffer {
  return isV6(a) ? ip6(a) : ip4(a);
}

/** Text form of 4 or 16 address bytes (IPv6 uncompressed, lower case: ip6() reads it back). */
export function ipText(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  return Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16)).join(':');
}

/** RFC 1071 one's-complement checksum. */
export function inetChecksum(...parts: Buffer[]): number {
  const b = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface EthOpts { dst: string; src: string; vlans?: number[]; type?: number }

export function eth(o: EthOpts): Buffer {
  const parts = [mac(o.dst), mac(o.src)];
  for (const vid of o.vlans ?? []) {
    const t = Buffer.alloc(4);
    t.writeUInt16BE(0x8100, 0);
    t.writeUInt16BE(vid, 2);
    parts.push(t);
  }
  const et = Buffer.alloc(2);
  et.writeUInt16BE(o.type ?? 0x0800, 0);
  parts.push(et);
  return Buffer.concat(parts);
}

export interface Ip4Opts {
  src: string; dst: string; proto: number; payloadLen: number;
  ttl?: number; tos?: number; id?: number; df?: boolean; mf?: boolean; fragOffset?: number;
  options?: Buffer; ihl?: number; totLen?: number;
}

export function ipv4(o: Ip4Opts): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  const h = Buffer.alloc(20 + opts.length);
  const ihl = o.ihl ?? (20 + opts.length) / 4;
  h[0] = 0x40 | ihl;
  h[1] = o.tos ?? 0;
  h.writeUInt16BE(o.totLen ?? h.length + o.payloadLen, 2);
  h.writeUInt16BE(o.id ?? 0x1234, 4);
  h.writeUInt16BE((o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | (o.fragOffset ?? 0), 6);
  h[8] = o.ttl ?? 64;
  h[9] = o.proto;
  ip4(o.src).copy(h, 12);
  ip4(o.dst).copy(h, 16);
  opts.copy(h, 20);
  h.writeUInt16BE(inetChecksum(h), 10);
  return h;
}

/** The TCP/UDP/ICMPv6 pseudo-header: RFC 793 for IPv4, RFC 8200 8.1 for IPv6. */
export function pseudo(src: string, dst: string, proto: number, len: number): Buffer {
  if (isV6(src)) {
    const p = Buffer.alloc(40);
    ip6(src).copy(p, 0);
    ip6(dst).copy(p, 16);
    p.writeUInt32BE(len, 32);
    p[39] = proto;
    return p;
  }
  const p = Buffer.alloc(12);
  ip4(src).copy(p, 0);
  ip4(dst).copy(p, 4);
  p[9] = proto;
  p.writeUInt16BE(len, 10);
  return p;
}

export interface Ip6Opts {
  src: string; dst: string; nextHeader: number; payloadLen: number;
  hopLimit?: number; tclass?: number; flowLabel?: number;
  /** Extension headers, each [its own next-header value is filled in here] as whole 8-byte units. */
  ext?: { type: number; body: Buffer }[];
  payloadLenField?: number;
}

/** An IPv6 header followed by its extension headers (RFC 8200). */
export function ipv6(o: Ip6Opts): Buffer {
  const exts = o.ext ?? [];
  const h = Buffer.alloc(40);
  h.writeUInt32BE((6 << 28) | ((o.tclass ?? 0) << 20) | (o.flowLabel ?? 0), 0);
  const extBufs = exts.map((e, i) => {
    const b = Buffer.concat([Buffer.alloc(2), e.body]);
    if (b.length % 8 !== 0) throw new Error('an extension header is whole 8-byte units');
    b[0] = i + 1 < exts.length ? exts[i + 1]!.type : o.nextHeader;
    b[1] = b.length / 8 - 1;
    return b;
  });
  const extLen = extBufs.reduce((n, b) => n + b.length, 0);
  h.writeUInt16BE(o.payloadLenField ?? extLen + o.payloadLen, 4);
  h[6] = exts.length > 0 ? exts[0]!.type : o.nextHeader;
  h[7] = o.hopLimit ?? 64;
  ip6(o.src).copy(h, 8);
  ip6(o.dst).copy(h, 24);
  return Buffer.concat([h, ...extBufs]);
}

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

export function tcp(o: { src: string; dst: string; sport: number; dport: number; flags: number; payload?: Buffer; seq?: number }): Buffer {
  const payload = o.payload ?? Buffer.alloc(0);
  const h = Buffer.alloc(20);
  h.writeUInt16BE(o.sport, 0);
  h.writeUInt16BE(o.dport, 2);
  h.writeUInt32BE(o.seq ?? 1000, 4);
  h[12] = 5 << 4;
  h[13] = o.flags;
  h.writeUInt16BE(65535, 14);
  const seg = Buffer.concat([h, payload]);
  seg.writeUInt16BE(inetChecksum(pseudo(o.src, o.dst, 6, seg.length), seg), 16);
  return seg;
}

export function udp(o: { src: string; dst: string; sport: number; dport: number; payload?: Buffer }): Buffer {
  const payload = o.payload ?? Buffer.alloc(0);
  const h = Buffer.alloc(8);
  h.writeUInt16BE(o.sport, 0);
  h.writeUInt16BE(o.dport, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  const seg = Buffer.concat([h, payload]);
  seg.writeUInt16BE(inetChecksum(pseudo(o.src, o.dst, 17, seg.length), seg) || 0xffff, 6);
  return seg;
}

export interface FlowOpts {
  l2: EthOpts; src: string; dst: string; sport: number; dport: number;
  flags?: number; payload?: Buffer; proto?: 'tcp' | 'udp';
  /** IPv4 header fields (IPv4 addresses). */
  ip?: Partial<Ip4Opts>;
  /** IPv6 header fields (IPv6 addresses). */
  ip6?: Partial<Ip6Opts>;
}

/** A whole Ethernet/IP/TCP-or-UDP frame; the addresses' form picks IPv4 or IPv6. */
export function frame(o: FlowOpts): Buffer {
  const proto = o.proto ?? 'tcp';
  const l4 = proto === 'tcp'
    ? tcp({ src: o.src, dst: o.dst, sport: o.sport, dport: o.dport, flags: o.flags ?? TCP.SYN, ...(o.payload ? { payload: o.payload } : {}) })
    : udp({ src: o.src, dst: o.dst, sport: o.sport, dport: o.dport, ...(o.payload ? { payload: o.payload } : {}) });
  const pn = proto === 'tcp' ? 6 : 17;
  if (isV6(o.src)) {
    const ip = ipv6({ src: o.src, dst: o.dst, nextHeader: pn, payloadLen: l4.length, ...o.ip6 });
    return Buffer.concat([eth({ ...o.l2, type: 0x86dd }), ip, l4]);
  }
  const ip = ipv4({ src: o.src, dst: o.dst, proto: pn, payloadLen: l4.length, ...o.ip });
  return Buffer.concat([eth(o.l2), ip, l4]);
}

/** Frame with new MACs, everything after the Ethernet addresses unchanged. */
export function withMacs(f: Buffer, dst: string, src: string): Buffer {
  const out = Buffer.from(f);
  mac(dst).copy(out, 0);
  mac(src).copy(out, 6);
  return out;
}

/** IPIP-encapsulated copy of an untagged frame, built per RFC 2003. */
export function ipip(f: Buffer, o: { dstMac: string; srcMac: string; outerSrc: string; outerDst: string }): Buffer {
  const inner = f.subarray(14);
  const totLen = inner.readUInt16BE(2);
  const outer = ipv4({
    src: o.outerSrc, dst: o.outerDst, proto: 4, payloadLen: totLen,
    tos: inner[1]!, ttl: inner[8]!, id: inner.readUInt16BE(4), df: (inner.readUInt16BE(6) & 0x4000) !== 0,
  });
  return Buffer.concat([eth({ dst: o.dstMac, src: o.srcMac }), outer, inner]);
}

/**
 * IP-in-IP copy of an untagged frame with an outer header of the real
 * server's family: RFC 2003 (4 in 4), RFC 4213 (6 in 4), RFC 2473 (in IPv6).
 * The outer header copies TOS/traffic class and TTL/hop limit; an IPv4 outer
 * header copies ID and DF from an IPv4 inner one, and sets DF over IPv6.
 */
export function encap(f: Buffer, o: { dstMac: string; srcMac: string; outerSrc: string; outerDst: string }): Buffer {
  const inner = f.subarray(14);
  const v6in = inner[0]! >> 4 === 6;
  const len = v6in ? 40 + inner.readUInt16BE(4) : inner.readUInt16BE(2);
  const tos = v6in ? (inner.readUInt16BE(0) >> 4) & 0xff : inner[1]!;
  const ttl = v6in ? inner[7]! : inner[8]!;
  const proto = v6in ? 41 : 4;
  if (isV6(o.outerDst)) {
    const outer = ipv6({ src: o.outerSrc, dst: o.outerDst, nextHeader: proto, payloadLen: len, tclass: tos, hopLimit: ttl });
    return Buffer.concat([eth({ dst: o.dstMac, src: o.srcMac, type: 0x86dd }), outer, inner]);
  }
  const outer = ipv4({
    src: o.outerSrc, dst: o.outerDst, proto, payloadLen: len, tos, ttl,
    id: v6in ? 0 : inner.readUInt16BE(4), df: v6in || (inner.readUInt16BE(6) & 0x4000) !== 0,
  });
  return Buffer.concat([eth({ dst: o.dstMac, src: o.srcMac }), outer, inner]);
}

/**
 * ICMPv6 error answering an untagged IPv6 frame (RFC 4443): from the address
 * the client sent to, hop limit 255, quoting the first `quote` bytes of the
 * offending packet.
 */
export function icmp6Error(f: Buffer, type: number, code: number, mtu: number, quote: number): Buffer {
  const inner = f.subarray(14);
  const q = inner.subarray(0, Math.min(quote, inner.length));
  const src = ipText(inner.subarray(24, 40));
  const dst = ipText(inner.subarray(8, 24));
  const ic = Buffer.alloc(8);
  ic[0] = type;
  ic[1] = code;
  ic.writeUInt32BE(mtu, 4);
  ic.writeUInt16BE(inetChecksum(pseudo(src, dst, 58, 8 + q.length), ic, q), 2);
  const ip = ipv6({ src, dst, nextHeader: 58, payloadLen: 8 + q.length, hopLimit: 255 });
  const l2 = Buffer.concat([f.subarray(6, 12), f.subarray(0, 6), f.subarray(12, 14)]);
  return Buffer.concat([l2, ip, ic, q]);
}

/** ICMP destination unreachable answering an untagged frame (RFC 792/1191). */
export function icmpUnreach(f: Buffer, code: number, mtu: number): Buffer {
  const inner = f.subarray(14);
  const hl = (inner[0]! & 0x0f) * 4;
  const quote = inner.subarray(0, hl + 8);
  const ic = Buffer.alloc(8);
  ic[0] = 3;
  ic[1] = code;
  ic.writeUInt16BE(mtu, 6);
  ic.writeUInt16BE(inetChecksum(ic, quote), 2);
  const src = `${inner[16]}.${inner[17]}.${inner[18]}.${inner[19]}`;
  const dst = `${inner[12]}.${inner[13]}.${inner[14]}.${inner[15]}`;
  const ip = ipv4({ src, dst, proto: 1, payloadLen: 8 + quote.length, tos: 0xc0, id: 0, ttl: 64 });
  const l2 = Buffer.concat([f.subarray(6, 12), f.subarray(0, 6), f.subarray(12, 14)]);
  return Buffer.concat([l2, ip, ic, quote]);
}
