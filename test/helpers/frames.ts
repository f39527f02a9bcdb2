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
  flags?: number; payload?: Buffer; proto?: 'tcp' | 'udp'; ip?: Partial<Ip4Opts>;
}

/** A whole Ethernet/IPv4/TCP-or-UDP frame. */
export function frame(o: FlowOpts): Buffer {
  const proto = o.proto ?? 'tcp';
  const l4 = proto === 'tcp'
    ? tcp({ src: o.src, dst: o.dst, sport: o.sport, dport: o.dport, flags: o.flags ?? TCP.SYN, ...(o.payload ? { payload: o.payload } : {}) })
    : udp({ src: o.src, dst: o.dst, sport: o.sport, dport: o.dport, ...(o.payload ? { payload: o.payload } : {}) });
  const ip = ipv4({ src: o.src, dst: o.dst, proto: proto === 'tcp' ? 6 : 17, payloadLen: l4.length, ...o.ip });
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
