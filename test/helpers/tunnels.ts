// GUE and GRE frames as Linux IPVS sends them (ip_vs_xmit.c: ipvs_gue_encap,
// ipvs_gre_encap; RFC 768, RFC 2784, draft-ietf-intarea-gue), built here
// from those definitions and independent of the dataplane: every checksum is
// computed over the bytes as they are, never read back from the director.
import { TUN_SPORT } from '../../src/maps/abi.js';
import * as F from './frames.js';

export interface OuterOpts { dstMac: string; srcMac: string; outerSrc: string; outerDst: string }

export type TunnelSpec =
  | { type: 'gue'; port: number; csum: boolean; sport?: number }
  | { type: 'gre'; csum: boolean };

const fmix32 = (x: number): number => {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
};

/** The IP packet of an untagged frame, without any Ethernet padding after it. */
export function ipPacket(f: Buffer): Buffer {
  const ip = f.subarray(14);
  const len = ip[0]! >> 4 === 6 ? 40 + ip.readUInt16BE(4) : ip.readUInt16BE(2);
  return ip.subarray(0, len);
}

/**
 * GUE's UDP source port for the packet `ip` carries, as tun.h defines it:
 * the folded addresses, the ports and the protocol through murmur3's
 * finaliser, then scaled into [TUN_SPORT.min, TUN_SPORT.max) as Linux's
 * udp_flow_src_port scales a flow hash.
 */
export function gueSourcePort(ip: Buffer): number {
  const v6 = ip[0]! >> 4 === 6;
  const [src, dst, l4, proto] = v6
    ? [ip.subarray(8, 24), ip.subarray(24, 40), 40, ip[6]!]
    : [ip.subarray(12, 16), ip.subarray(16, 20), (ip[0]! & 0x0f) * 4, ip[9]!];
  const fold = (a: Buffer) => {
    let w = 0;
    for (let i = 0; i < a.length; i += 4) w ^= a.readUInt32BE(i);
    return w >>> 0;
  };
  const ports = ((ip.readUInt16BE(l4) << 16) | ip.readUInt16BE(l4 + 2)) >>> 0;
  let h = fmix32(fold(src) ^ fmix32(fold(dst) ^ fmix32((ports ^ proto) >>> 0)));
  h = (h ^ (h << 16)) >>> 0;
  return TUN_SPORT.min + Number((BigInt(h) * BigInt(TUN_SPORT.max - TUN_SPORT.min)) >> 32n);
}

/** The header a tunnel type puts between the outer IP header and `ip`, checksums computed. */
function encapHeader(ip: Buffer, t: TunnelSpec, o: OuterOpts): { proto: number; hdr: Buffer } {
  const v6in = ip[0]! >> 4 === 6;
  if (t.type === 'gre') {
    const h = Buffer.alloc(t.csum ? 8 : 4);
    h.writeUInt16BE(t.csum ? 0x8000 : 0, 0);
    h.writeUInt16BE(v6in ? 0x86dd : 0x0800, 2);
    if (t.csum) h.writeUInt16BE(F.inetChecksum(h, ip), 4);
    return { proto: 47, hdr: h };
  }
  const h = Buffer.alloc(12);
  const len = h.length + ip.length;
  h.writeUInt16BE(t.sport ?? gueSourcePort(ip), 0);
  h.writeUInt16BE(t.port, 2);
  h.writeUInt16BE(len, 4);
  h[8] = 0; // version 0, control 0, no optional fields
  h[9] = v6in ? 41 : 4;
  if (t.csum) h.writeUInt16BE(F.inetChecksum(F.pseudoHeader(o.outerSrc, o.outerDst, 17, len), h, ip) || 0xffff, 6);
  return { proto: 17, hdr: h };
}

/**
 * An untagged frame as the director sends it through a GUE or GRE tunnel:
 * the outer header as for IPIP (TOS/traffic class and TTL/hop limit of the
 * inner packet; over IPv4, ID and DF of an IPv4 inner packet, DF for an IPv6
 * one), then the tunnel's header, then the packet and whatever followed it
 * in the frame.
 */
export function tunnelled(f: Buffer, t: TunnelSpec, o: OuterOpts): Buffer {
  const ip = ipPacket(f);
  const rest = f.subarray(14 + ip.length);
  const v6in = ip[0]! >> 4 === 6;
  const tos = v6in ? (ip.readUInt16BE(0) >> 4) & 0xff : ip[1]!;
  const ttl = v6in ? ip[7]! : ip[8]!;
  const { proto, hdr } = encapHeader(ip, t, o);
  const len = hdr.length + ip.length;
  if (F.isIp6(o.outerDst)) {
    const outer = F.ipv6({ src: o.outerSrc, dst: o.outerDst, nextHeader: proto, payloadLen: len, tc: tos, hopLimit: ttl });
    return Buffer.concat([F.eth({ dst: o.dstMac, src: o.srcMac, type: 0x86dd }), outer, hdr, ip, rest]);
  }
  const outer = F.ipv4({
    src: o.outerSrc, dst: o.outerDst, proto, payloadLen: len, tos, ttl,
    id: v6in ? 0 : ip.readUInt16BE(4), df: v6in || (ip.readUInt16BE(6) & 0x4000) !== 0,
  });
  return Buffer.concat([F.eth({ dst: o.dstMac, src: o.srcMac }), outer, hdr, ip, rest]);
}

/**
 * What fails to verify in a GUE or GRE frame built above (or sent by the
 * director): the outer IPv4 header checksum, and the checksum the tunnel
 * carries when it carries one. Empty when everything verifies.
 */
export function tunnelChecksumErrors(f: Buffer): string[] {
  const d = F.dissect(f);
  const errs: string[] = [];
  if (d.family === 4 && F.inetChecksum(f.subarray(d.l3, d.l4)) !== 0) errs.push('outer IPv4 header checksum');
  const seg = f.subarray(d.l4, d.l4 + d.l4Len);
  if (d.proto === 17) {
    const ck = seg.readUInt16BE(6);
    const len = seg.readUInt16BE(4);
    if (len !== seg.length) errs.push(`UDP length ${len} of ${seg.length}`);
    const p = F.pseudoHeader(F.addrText(d.src), F.addrText(d.dst), 17, seg.length);
    if (ck !== 0 && F.inetChecksum(p, seg) !== 0) errs.push('UDP checksum');
  } else if (d.proto === 47) {
    if (seg.readUInt16BE(0) & 0x8000 && F.inetChecksum(seg) !== 0) errs.push('GRE checksum');
  } else {
    errs.push(`outer protocol ${d.proto}`);
  }
  return errs;
}
