// Frames of one NAT, FULLNAT or NAT64 connection as the bench plays it, and
// what each must be when it leaves the director. Sequence and
// acknowledgement numbers make a real handshake, since the kernel's
// conntrack (the comparison) checks them where xvs does not; the measured
// segments are one client data segment and one server data segment, each
// repeated as a retransmission would be, both 128 bytes on the wire like
// every other bench frame. Expected frames are built from scratch,
// checksums included, so a comparison is byte for byte.
import * as F from '../test/helpers/frames.js';
import { FRAME_LEN, MODES, rsOf, vipOf, type Mode } from './frames.js';
import { NET } from './net.js';

export type NatMode = 'nat' | 'fnat' | 'nat64';

/** 'in': the client's segment to the real server; 'out': the real server's reply to the client. */
export type Dir = 'in' | 'out';

export type Kind = 'syn' | 'synack' | 'ack' | 'data' | 'reply';

const ISN = { client: 1000, server: 500000 } as const;

/** The real server's side of the flow: the client itself (NAT), or a local address and port (FULLNAT). */
export interface Via { addr: string; port: number }

const TCP_HDR = 20;
const ipHdr = (v6: boolean): number => (v6 ? 40 : 20);
/** Data so that the frame is FRAME_LEN bytes on its way in. */
const payloadFor = (v6: boolean): Buffer => Buffer.alloc(FRAME_LEN - 14 - ipHdr(v6) - TCP_HDR, 0x61);

const clientOf = (mode: Mode): string => (MODES[mode].v6 ? NET.client6 : NET.client);
const isFull = (mode: NatMode): boolean => MODES[mode].fwd === 'fullnat';

interface Seg { flags: number; seq: number; ack: number; payload?: Buffer }

function seg(mode: NatMode, kind: Kind): Seg {
  const c = ISN.client;
  const s = ISN.server;
  const clientData = payloadFor(MODES[mode].v6).length;
  switch (kind) {
    case 'syn': return { flags: F.TCP.SYN, seq: c, ack: 0 };
    case 'synack': return { flags: F.TCP.SYN | F.TCP.ACK, seq: s, ack: c + 1 };
    case 'ack': return { flags: F.TCP.ACK, seq: c + 1, ack: s + 1 };
    case 'data': return { flags: F.TCP.ACK | F.TCP.PSH, seq: c + 1, ack: s + 1, payload: payloadFor(MODES[mode].v6) };
    case 'reply': return { flags: F.TCP.ACK | F.TCP.PSH, seq: s + 1, ack: c + 1 + clientData, payload: payloadFor(MODES[mode].real6) };
  }
}

const fromClient = (k: Kind): boolean => k === 'syn' || k === 'ack' || k === 'data';

/** The real server's address and port for the flow's replies: the client's own (NAT) or `via` (FULLNAT). */
function serverSide(mode: NatMode, sport: number, via: Via | null): Via {
  if (!isFull(mode)) return { addr: clientOf(mode), port: sport };
  if (!via) throw new Error(`${mode}: a FULLNAT reply needs its local address and port`);
  return via;
}

/** A segment of the flow as it reaches the director (client ones from xa's MAC, replies from the real server's). */
export function arriving(mode: NatMode, kind: Kind, sport: number, via: Via | null = null): Buffer {
  const s = seg(mode, kind);
  const m = MODES[mode];
  if (fromClient(kind)) {
    return F.packet({
      l2: { dst: NET.bMac, src: NET.aMac }, proto: 'tcp', src: clientOf(mode), dst: vipOf(mode),
      sport, dport: m.port, ...s,
    });
  }
  const to = serverSide(mode, sport, via);
  return F.packet({
    l2: { dst: NET.bMac, src: NET.rsMac }, proto: 'tcp', src: rsOf(mode), dst: to.addr,
    sport: m.rport, dport: to.port, ...s,
  });
}

/**
 * What the director must send for `arriving(mode, kind, sport, via)`: to the
 * real server with the destination (and for FULLNAT the source) rewritten,
 * IPv6 made IPv4 for NAT64 (RFC 7915: TOS from the traffic class, DF,
 * identification 0), the TOA option when `toa`; or to the client from the
 * VIP, one hop less (the director routes replies).
 */
export function leaving(mode: NatMode, kind: Kind, sport: number, via: Via | null, toa = false): Buffer {
  const s = seg(mode, kind);
  const m = MODES[mode];
  if (fromClient(kind)) {
    const src = isFull(mode) ? serverSide(mode, sport, via) : { addr: clientOf(mode), port: sport };
    return F.packet({
      l2: { dst: NET.rsMac, src: NET.bMac }, proto: 'tcp', src: src.addr, dst: rsOf(mode), sport: src.port, dport: m.rport,
      ...s, ...(toa ? { options: F.TcpOpt.toa(sport, clientOf(mode)) } : {}),
      ...(m.v6 !== m.real6 ? { ip: { tos: 0, ttl: 64, id: 0, df: true } } : {}),
    });
  }
  return F.packet({
    l2: { dst: NET.aMac, src: NET.bMac }, proto: 'tcp', src: vipOf(mode), dst: clientOf(mode), sport: m.port, dport: sport,
    ...s, ...(m.v6 ? { ip6: { hopLimit: 63 } } : { ip: { ttl: 63 } }),
  });
}

/**
 * A handshake segment padded to FRAME_LEN, as xdp_gen must send it: the
 * bytes past the IP packet's length are Ethernet padding, which IP drops.
 */
export function padded(f: Buffer): Buffer {
  if (f.length > FRAME_LEN) throw new Error(`frame of ${f.length} bytes is longer than ${FRAME_LEN}`);
  return Buffer.concat([f, Buffer.alloc(FRAME_LEN - f.length)]);
}

/** Where a FULLNAT flow left from: the source of its first frame to the real server. */
export function viaOf(out: Buffer): Via {
  const d = F.dissect(out);
  return { addr: F.addrText(Buffer.from(d.src)), port: out.readUInt16BE(d.l4) };
}

/** Recomputes a frame's IPv4 header and TCP checksums (a new-flow template whose ports and address were varied). */
export function withChecksums(f: Buffer): Buffer {
  const out = Buffer.from(f);
  const d = F.dissect(out);
  const src = F.addrText(Buffer.from(d.src));
  const dst = F.addrText(Buffer.from(d.dst));
  if (d.family === 4) {
    out.writeUInt16BE(0, d.l3 + 10);
    out.writeUInt16BE(F.inetChecksum(out.subarray(d.l3, d.l4)), d.l3 + 10);
  }
  const segment = out.subarray(d.l4, d.l4 + d.l4Len);
  segment.writeUInt16BE(0, 16);
  segment.writeUInt16BE(F.inetChecksum(F.pseudoHeader(src, dst, 6, segment.length), segment), 16);
  return out;
}
