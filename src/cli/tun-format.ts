import type { RealView } from '../control/protocol.js';
import { TUN_CSUMS } from '../modes/tunnel.js';

// A TUN real server's tunnel as ipvsadm 1.31 prints it: the TunnelInfo
// column of -L --tun-info (fwd_tun_info) and the options of its -S rule
// (print_tunnel_rule). Both index ipvsadm's tables by the tun_flags value,
// which TUN_CSUMS follows.

/** tunflags[]: without, with, with remote checksum. */
const FLAG_MARKS = ['-c', '+c', 'r+c'] as const;

/** "ipip", "gue:PORT:FLAG", "gre:FLAG", or n/a for a method that is not TUN. */
export function tunInfo(r: Pick<RealView, 'fwd' | 'tunnel'>): string {
  if (r.fwd !== 'tun') return 'n/a';
  const t = r.tunnel;
  if (!t) return 'ipip';
  const mark = FLAG_MARKS[TUN_CSUMS.indexOf(t.csum)];
  return t.type === 'gue' ? `gue:${t.port}:${mark}` : `gre:${mark}`;
}

/** What follows "-w W" in a TUN real server's -S rule. */
export function tunRule(r: Pick<RealView, 'tunnel'>): string {
  const t = r.tunnel;
  if (!t) return ' --tun-type ipip';
  return t.type === 'gue' ? ` --tun-type gue --tun-port ${t.port} --tun-${t.csum}` : ` --tun-type gre --tun-${t.csum}`;
}
