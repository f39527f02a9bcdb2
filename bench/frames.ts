// Bench frames: one 128-byte Ethernet/IPv4/TCP frame from a client to the
// VIP, the size xdp_gen writes, so the test-run and live figures see the
// same packet.
import * as F from '../test/helpers/frames.js';
import { NET } from './net.js';

export const FRAME_LEN = 128;
export const SADDR_OFF = 14 + 12;
export const SPORT_OFF = 14 + 20;

export const PORTS = { dr: 80, tun: 81 } as const;
export type Mode = keyof typeof PORTS;

export function flowFrame(mode: Mode, flags: number, sport = 40000): Buffer {
  const payload = Buffer.alloc(FRAME_LEN - 14 - 20 - 20, 0x61);
  const f = F.frame({
    l2: { dst: NET.bMac, src: NET.aMac }, src: NET.client, dst: NET.vip,
    sport, dport: PORTS[mode], flags, payload,
  });
  if (f.length !== FRAME_LEN) throw new Error(`bench frame is ${f.length} bytes, expected ${FRAME_LEN}`);
  return f;
}

// Clients come from two documentation /24s: 508 addresses times the source
// ports give millions of distinct 5-tuples. Checksums go stale; the
// director never verifies them.
const CLIENT_NETS = [[203, 0, 113], [198, 51, 100]] as const;
const HOSTS = 254;
export const CLIENT_COUNT = CLIENT_NETS.length * HOSTS;

export function setClient(f: Buffer, i: number): void {
  const n = CLIENT_NETS[Math.floor(i / HOSTS) % CLIENT_NETS.length]!;
  f[SADDR_OFF] = n[0];
  f[SADDR_OFF + 1] = n[1];
  f[SADDR_OFF + 2] = n[2];
  f[SADDR_OFF + 3] = 1 + (i % HOSTS);
}

const SPORTS = 65536 - 1024;

/** The i-th distinct 5-tuple (i < CLIENT_COUNT * 64512). */
export function setFlow(f: Buffer, i: number): void {
  f.writeUInt16BE(1024 + (i % SPORTS), SPORT_OFF);
  setClient(f, Math.floor(i / SPORTS));
}
