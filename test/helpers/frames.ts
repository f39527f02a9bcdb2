// Frame builders for packet tests, written from the RFCs and independent of
// the dataplane: checksums are computed here, never read back from it.

export function mac(s: string): Buffer {
  return Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
}

export function ip4(s: string): Buffer {
  return Buffer.from(s.split('.').map((d) => Number(d)));
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

function pseudo(src: string, dst: string, proto: number, len: number): Buffer {
  const p = Buffer.alloc(12);
  ip4(src).copy(p, 0);
  ip4(dst).copy(p, 4);
  p[9] = proto;
  p.writeUInt16BE(len, 10);
  return p;
}

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

export interface FlowOpts {
  l2: EthOpts; src: string; dst: string; sport: number; dport: number;
  flags?: number; payload?: Buffer; proto?: 'tcp' | 'udp';
  /** IPv4 header fields (IPv4 addresses). */
  ip?: Partial<Ip4Opts>;
  /** IPv6 header fields (IPv6 addresses). */
  ip6?: Partial<Ip6Opts>;
}

/** A whole Ethernet/IP/TCP-or-UDP frame, a SYN unless told; the addresses' form picks IPv4 or IPv6. */
export function frame(o: FlowOpts): Buffer {
  return packet({ ...o, proto: o.proto ?? 'tcp' });
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
  if (isIp6(o.outerDst)) {
    const outer = ipv6({ src: o.outerSrc, dst: o.outerDst, nextHeader: proto, payloadLen: len, tc: tos, hopLimit: ttl });
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
  const src = addrText(inner.subarray(24, 40));
  const dst = addrText(inner.subarray(8, 24));
  const ic = Buffer.alloc(8);
  ic[0] = type;
  ic[1] = code;
  ic.writeUInt32BE(mtu, 4);
  ic.writeUInt16BE(inetChecksum(pseudoHeader(src, dst, 58, 8 + q.length), ic, q), 2);
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

// ---- IPv6, TCP options, either family (added for the packet-rewrite primitives) ----

/** RFC 4291 text form (with at most one "::") to 16 bytes. */
export function ip6(s: string): Buffer {
  const [head, tail] = s.includes('::') ? s.split('::') as [string, string] : [s, undefined];
  const words = (part: string) => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const hw = words(head);
  const tw = tail === undefined ? [] : words(tail);
  const all = tail === undefined ? hw : [...hw, ...new Array<number>(8 - hw.length - tw.length).fill(0), ...tw];
  if (all.length !== 8 || all.some((w) => !(w >= 0 && w <= 0xffff))) throw new Error(`bad IPv6 address ${s}`);
  const b = Buffer.alloc(16);
  all.forEach((w, i) => b.writeUInt16BE(w, 2 * i));
  return b;
}

export const isIp6 = (s: string): boolean => s.includes(':');

/** 4 or 16 bytes, by the text form. */
export function ipAddr(s: string): Buffer {
  return isIp6(s) ? ip6(s) : ip4(s);
}

/** The text form of 4 or 16 address bytes (IPv6 uncompressed). */
export function addrText(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const w: string[] = [];
  for (let i = 0; i < 16; i += 2) w.push(b.readUInt16BE(i).toString(16));
  return w.join(':');
}

export interface Ip6Opts {
  src: string; dst: string; nextHeader: number; payloadLen: number;
  hopLimit?: number; tc?: number; flowLabel?: number;
  /** Extension headers in order; each body is its bytes after next-header and length (whole 8-byte units with them). */
  ext?: { type: number; body: Buffer }[];
  /** Overrides the payload length field (malformed packets). */
  payloadLenField?: number;
}

/** An IPv6 header (RFC 8200 §3) and its extension headers (§4). */
export function ipv6(o: Ip6Opts): Buffer {
  const exts = o.ext ?? [];
  const h = Buffer.alloc(40);
  h.writeUInt32BE(((6 << 28) | ((o.tc ?? 0) << 20) | (o.flowLabel ?? 0)) >>> 0, 0);
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

/** The TCP/UDP pseudo-header of either family (RFC 793/768; RFC 8200 §8.1). */
export function pseudoHeader(src: string, dst: string, proto: number, len: number): Buffer {
  if (!isIp6(src)) return pseudo(src, dst, proto, len);
  const p = Buffer.alloc(40);
  ip6(src).copy(p, 0);
  ip6(dst).copy(p, 16);
  p.writeUInt32BE(len, 32);
  p[39] = proto;
  return p;
}

/** TCP options (RFC 9293, 7323, 2018) and TOA (kind 254: Linux TOA module, DPVS). */
export const TcpOpt = {
  eol: () => Buffer.from([0]),
  nop: () => Buffer.from([1]),
  mss: (v: number) => Buffer.from([2, 4, v >> 8, v & 0xff]),
  windowScale: (s: number) => Buffer.from([3, 3, s]),
  sackPermitted: () => Buffer.from([4, 2]),
  sack: (blocks: [number, number][]) => {
    const b = Buffer.alloc(2 + 8 * blocks.length);
    b[0] = 5;
    b[1] = b.length;
    blocks.forEach(([l, r], i) => { b.writeUInt32BE(l >>> 0, 2 + 8 * i); b.writeUInt32BE(r >>> 0, 6 + 8 * i); });
    return b;
  },
  timestamps: (val: number, ecr: number) => {
    const b = Buffer.alloc(10);
    b[0] = 8;
    b[1] = 10;
    b.writeUInt32BE(val >>> 0, 2);
    b.writeUInt32BE(ecr >>> 0, 6);
    return b;
  },
  /** kind 254, length 8 (IPv4) or 20 (IPv6): port, then the address. */
  toa: (port: number, addr: string) => {
    const a = ipAddr(addr);
    const b = Buffer.alloc(4 + a.length);
    b[0] = 254;
    b[1] = b.length;
    b.writeUInt16BE(port, 2);
    a.copy(b, 4);
    return b;
  },
} as const;

export interface SegOpts {
  src: string; dst: string; sport: number; dport: number; payload?: Buffer;
}

/** A TCP segment of either family; `options` must fill whole 32-bit words. */
export function tcpSegment(o: SegOpts & { flags: number; options?: Buffer; seq?: number; ack?: number; window?: number; urgent?: number }): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  if (opts.length % 4 !== 0 || opts.length > 40) throw new Error(`TCP options of ${opts.length} bytes`);
  const h = Buffer.alloc(20 + opts.length);
  h.writeUInt16BE(o.sport, 0);
  h.writeUInt16BE(o.dport, 2);
  h.writeUInt32BE((o.seq ?? 1000) >>> 0, 4);
  h.writeUInt32BE((o.ack ?? 0) >>> 0, 8);
  h[12] = (h.length / 4) << 4;
  h[13] = o.flags;
  h.writeUInt16BE(o.window ?? 65535, 14);
  h.writeUInt16BE(o.urgent ?? 0, 18);
  opts.copy(h, 20);
  const seg = Buffer.concat([h, o.payload ?? Buffer.alloc(0)]);
  seg.writeUInt16BE(inetChecksum(pseudoHeader(o.src, o.dst, 6, seg.length), seg), 16);
  return seg;
}

/** A UDP datagram of either family; `zeroChecksum` sends none (IPv4 only, RFC 768). */
export function udpSegment(o: SegOpts & { zeroChecksum?: boolean }): Buffer {
  const seg = Buffer.concat([Buffer.alloc(8), o.payload ?? Buffer.alloc(0)]);
  seg.writeUInt16BE(o.sport, 0);
  seg.writeUInt16BE(o.dport, 2);
  seg.writeUInt16BE(seg.length, 4);
  if (!o.zeroChecksum) seg.writeUInt16BE(inetChecksum(pseudoHeader(o.src, o.dst, 17, seg.length), seg) || 0xffff, 6);
  return seg;
}

export interface PacketOpts extends SegOpts {
  l2: EthOpts;
  proto: 'tcp' | 'udp';
  flags?: number; options?: Buffer; seq?: number; ack?: number;
  zeroChecksum?: boolean;
  /** IPv4 header fields (ignored for IPv6). */
  ip?: Partial<Ip4Opts>;
  /** IPv6 header fields (ignored for IPv4). */
  ip6?: Partial<Ip6Opts>;
}

/** A whole Ethernet/IPv4-or-IPv6/TCP-or-UDP frame, every checksum computed here. */
export function packet(o: PacketOpts): Buffer {
  const seg = o.proto === 'tcp'
    ? tcpSegment({ ...o, flags: o.flags ?? TCP.SYN })
    : udpSegment(o);
  const proto = o.proto === 'tcp' ? 6 : 17;
  const v6 = isIp6(o.src);
  const ip = v6
    ? ipv6({ src: o.src, dst: o.dst, nextHeader: proto, payloadLen: seg.length, ...o.ip6 })
    : ipv4({ src: o.src, dst: o.dst, proto, payloadLen: seg.length, ...o.ip });
  return Buffer.concat([eth({ ...o.l2, type: v6 ? 0x86dd : 0x0800 }), ip, seg]);
}

export interface Dissected {
  l3: number; family: 4 | 6; l4: number; proto: number; l4Len: number; src: Buffer; dst: Buffer;
}

/** Where the headers of an (untruncated) frame built above are. */
export function dissect(f: Buffer): Dissected {
  let off = 12;
  while (f.readUInt16BE(off) === 0x8100 || f.readUInt16BE(off) === 0x88a8) off += 4;
  const type = f.readUInt16BE(off);
  const l3 = off + 2;
  if (type === 0x0800) {
    const hl = (f[l3]! & 0x0f) * 4;
    return { l3, family: 4, l4: l3 + hl, proto: f[l3 + 9]!, l4Len: f.readUInt16BE(l3 + 2) - hl, src: f.subarray(l3 + 12, l3 + 16), dst: f.subarray(l3 + 16, l3 + 20) };
  }
  if (type === 0x86dd) {
    return { l3, family: 6, l4: l3 + 40, proto: f[l3 + 6]!, l4Len: f.readUInt16BE(l3 + 4), src: f.subarray(l3 + 8, l3 + 24), dst: f.subarray(l3 + 24, l3 + 40) };
  }
  throw new Error(`ethertype 0x${type.toString(16)} is not IP`);
}

/**
 * What fails to verify in a frame: the IPv4 header checksum and the TCP/UDP
 * checksum over pseudo-header and segment must each sum to 0 (a UDP/IPv4
 * checksum of 0 means none). Empty when everything verifies.
 */
export function checksumErrors(f: Buffer): string[] {
  const d = dissect(f);
  const errs: string[] = [];
  if (d.family === 4 && inetChecksum(f.subarray(d.l3, d.l4)) !== 0) errs.push('IPv4 header checksum');
  const seg = f.subarray(d.l4, d.l4 + d.l4Len);
  const ck = d.proto === 6 ? seg.readUInt16BE(16) : seg.readUInt16BE(6);
  if (d.proto === 17 && ck === 0 && d.family === 4) return errs;
  const p = d.family === 4
    ? Buffer.concat([d.src, d.dst, Buffer.from([0, d.proto, d.l4Len >> 8, d.l4Len & 0xff])])
    : Buffer.concat([d.src, d.dst, Buffer.from([0, 0, d.l4Len >> 8, d.l4Len & 0xff, 0, 0, 0, d.proto])]);
  if (inetChecksum(p, seg) !== 0) errs.push(`${d.proto === 6 ? 'TCP' : 'UDP'} checksum`);
  if (d.proto === 17 && ck === 0) errs.push('UDP/IPv6 checksum is 0');
  return errs;
}

// ---- ICMP and ICMPv6 errors quoting a packet (RFC 792, RFC 4443) ----

export interface IcmpErrorOpts {
  l2: EthOpts;
  /** The error's own addresses; their form picks ICMP or ICMPv6. */
  src: string; dst: string;
  type: number; code: number;
  /** Bytes 4..7 of the ICMP header: the MTU of a fragmentation-needed (low 16 bits) or packet-too-big message, else 0. */
  rest?: number;
  /** The quoted bytes: the start of the offending IP packet, as long as the sender chose. */
  quote: Buffer;
  ttl?: number;
  /** IPv6's traffic class (IPv4's TOS is 0xc0, as Linux sends its errors). */
  tc?: number;
}

/** An ICMP or ICMPv6 error frame, its checksums (ICMPv6's over the pseudo-header) computed here. */
export function icmpError(o: IcmpErrorOpts): Buffer {
  const v6 = isIp6(o.src);
  const ic = Buffer.alloc(8);
  ic[0] = o.type;
  ic[1] = o.code;
  ic.writeUInt32BE((o.rest ?? 0) >>> 0, 4);
  const len = 8 + o.quote.length;
  const sum = v6 ? inetChecksum(pseudoHeader(o.src, o.dst, 58, len), ic, o.quote) : inetChecksum(ic, o.quote);
  ic.writeUInt16BE(sum, 2);
  const ip = v6
    ? ipv6({ src: o.src, dst: o.dst, nextHeader: 58, payloadLen: len, hopLimit: o.ttl ?? 64, tc: o.tc ?? 0 })
    : ipv4({ src: o.src, dst: o.dst, proto: 1, payloadLen: len, ttl: o.ttl ?? 64, tos: 0xc0, id: 0 });
  return Buffer.concat([eth({ ...o.l2, type: v6 ? 0x86dd : 0x0800 }), ip, ic, o.quote]);
}

/** The first `n` bytes of an untagged frame's IP packet (all of it when n is larger). */
export function quoteOf(f: Buffer, n = Infinity): Buffer {
  const ip = f.subarray(14);
  return Buffer.from(ip.subarray(0, Math.min(n, ip.length)));
}

/**
 * Mutated copies of a frame, reproducible from the seed: one to three bytes
 * past the first `from` changed at random, and one in four also cut short
 * at a random length past `from`.
 */
export function* mutants(base: Buffer, o: { seed: number; count: number; from?: number }): Generator<Buffer> {
  const from = o.from ?? 14;
  let seed = o.seed;
  const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 16; };
  for (let i = 0; i < o.count; i++) {
    const f = Buffer.from(base);
    for (let j = 1 + (rnd() % 3); j > 0; j--) f[from + (rnd() % (f.length - from))] = rnd() & 0xff;
    yield rnd() % 4 === 0 ? Buffer.from(f.subarray(0, from + (rnd() % (f.length - from)))) : f;
  }
}
