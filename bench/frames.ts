// Bench frames: one 128-byte Ethernet/IP/TCP frame from a client to a VIP,
// the size xdp_gen writes, so the test-run and live figures see the same
// packet. A mode names the forwarding method and the family: DR and TUN
// over IPv4 (VIP 192.0.2.80) and over IPv6 (VIP 2001:db8::80, TUN as IPv6 in
// IPv6), NAT and FULLNAT over IPv4 and NAT64 (FULLNAT from the IPv6 VIP to
// the IPv4 real server), one real server each; the two-way modes' frames
// are in nat-frames.ts.
import * as F from '../test/helpers/frames.js';
import { NET } from './net.js';

export const FRAME_LEN = 128;

/** v6: the VIP's family; real6: the real server's; rport: the real server's port (0: the service's). */
export const MODES = {
  dr: { fwd: 'dr', v6: false, real6: false, port: 80, rport: 0 },
  tun: { fwd: 'tun', v6: false, real6: false, port: 81, rport: 0 },
  dr6: { fwd: 'dr', v6: true, real6: true, port: 80, rport: 0 },
  tun6: { fwd: 'tun', v6: true, real6: true, port: 81, rport: 0 },
  nat: { fwd: 'nat', v6: false, real6: false, port: 82, rport: 8080 },
  fnat: { fwd: 'fullnat', v6: false, real6: false, port: 83, rport: 8080 },
  nat64: { fwd: 'fullnat', v6: true, real6: false, port: 83, rport: 8080 },
} as const;
export type Mode = keyof typeof MODES;

/**
 * The modes one director holds. A director with a NAT or FULLNAT real server
 * runs the reply stage on every packet, which a DR/TUN-only director never
 * pays, so the two kinds are measured on directors of their own.
 */
export const ONE_WAY: readonly Mode[] = ['dr', 'tun', 'dr6', 'tun6'];
export const TWO_WAY: readonly Mode[] = ['nat', 'fnat', 'nat64'];

/** Where a mode's frames keep the source address and port. */
export function offsets(mode: Mode): { saddr: number; sport: number } {
  return MODES[mode].v6 ? { saddr: 14 + 8, sport: 14 + 40 } : { saddr: 14 + 12, sport: 14 + 20 };
}

export const vipOf = (mode: Mode): string => (MODES[mode].v6 ? NET.vip6 : NET.vip);
export const rsOf = (mode: Mode): string => (MODES[mode].real6 ? NET.rs6 : NET.rs);

/** A frame of the one client of fixed flows, or (newFlows) the template setFlow varies. */
export function flowFrame(mode: Mode, flags: number, sport = 40000, newFlows = false): Buffer {
  const m = MODES[mode];
  const payload = Buffer.alloc(FRAME_LEN - 14 - (m.v6 ? 40 : 20) - 20, 0x61);
  const src = newFlows ? (m.v6 ? NET.newClients6 : NET.newClients) : (m.v6 ? NET.client6 : NET.client);
  const f = F.frame({
    l2: { dst: NET.bMac, src: NET.aMac }, src, dst: vipOf(mode),
    sport, dport: m.port, flags, payload,
  });
  if (f.length !== FRAME_LEN) throw new Error(`bench frame is ${f.length} bytes, expected ${FRAME_LEN}`);
  return f;
}

// A new-flow case gives frame n the n-th 5-tuple: source port 1024 + n % 64512
// and n / 64512 in the last byte (IPv4, within 198.51.100.0/24) or the last two
// bytes (IPv6, within 2001:db8:fe::/112) of the client address, subnets no
// fixed flow comes from. xdp_gen (bpf/xvs_aux.c) does the same for live
// frames. Checksums go stale; the director never verifies them.
export const SPORTS = 65536 - 1024;

/** How many distinct 5-tuples setFlow (and xdp_gen) can give in this mode: n must stay below it. */
export function flowSpace(mode: Mode): number {
  return SPORTS * (MODES[mode].v6 ? 65536 : 256);
}

export function setFlow(f: Buffer, mode: Mode, n: number): void {
  if (n >= flowSpace(mode)) throw new Error(`flow ${n} would repeat an earlier one in ${mode}`);
  const o = offsets(mode);
  const hi = Math.floor(n / SPORTS);
  f.writeUInt16BE(1024 + (n % SPORTS), o.sport);
  if (MODES[mode].v6) f.writeUInt16BE(hi, o.saddr + 14);
  else f[o.saddr + 3] = hi;
}
