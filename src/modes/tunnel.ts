import { XvsError } from '../errors.js';
import { TUN, TUN_F } from '../maps/abi.js';

// A TUN real server's tunnel, as ipvsadm 1.31 and IPVS define it
// (--tun-type ipip|gue|gre, --tun-port, --tun-nocsum|--tun-csum|--tun-remcsum):
// which combinations exist and the dataplane's encoding of each (xvs_real's
// tun_type, tun_port, tun_flags).
// IPIP, the default, carries nothing: a real server without a `tunnel`.

export const TUN_TYPES = ['ipip', 'gue', 'gre'] as const;
export type TunType = (typeof TUN_TYPES)[number];
/** In IPVS's tun_flags order: ipvsadm prints and saves them by that value. */
export const TUN_CSUMS = ['nocsum', 'csum', 'remcsum'] as const;
export type TunCsum = (typeof TUN_CSUMS)[number];

export type Tunnel =
  | { type: 'gue'; port: number; csum: TunCsum }
  | { type: 'gre'; csum: Exclude<TunCsum, 'remcsum'> };

const CSUM_FLAGS: Record<TunCsum, number> = { nocsum: 0, csum: TUN_F.csum, remcsum: TUN_F.remcsum };

function bad(message: string): never {
  throw new XvsError('BAD_ARGUMENT', message);
}

/**
 * A request's `real.tunnel` (absent, or { type, port?, csum? }) checked for
 * a real server of method `fwd`, in the model's form: IPIP is no tunnel, a
 * missing csum is nocsum. The rules are ipvsadm's (tunnel_types_v_options)
 * and the kernel's (a GUE port is not 0), so a client other than xvsadm
 * cannot store what ipvsadm would refuse.
 */
export function tunnelOf(v: unknown, fwd: string): Tunnel | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('real.tunnel must be an object');
  const o = v as Record<string, unknown>;
  if (fwd !== 'tun') bad('real.tunnel is only for TUN (-i) real servers');
  const type = o.type;
  if (!(TUN_TYPES as readonly unknown[]).includes(type)) bad(`real.tunnel.type must be one of ${TUN_TYPES.join(' ')}`);
  const csum = o.csum ?? 'nocsum';
  if (!(TUN_CSUMS as readonly unknown[]).includes(csum)) bad(`real.tunnel.csum must be one of ${TUN_CSUMS.join(' ')}`);
  if (type !== 'gue' && o.port !== undefined) bad(`real.tunnel.port is for GUE only, not ${String(type).toUpperCase()}`);
  if (type === 'ipip') {
    if (o.csum !== undefined) bad('real.tunnel.csum is for GUE and GRE only, not IPIP');
    return undefined;
  }
  if (type === 'gre') {
    if (csum === 'remcsum') bad('real.tunnel.csum remcsum is for GUE only (GRE has no remote checksum offload)');
    return { type, csum: csum as 'nocsum' | 'csum' };
  }
  const port = o.port;
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) bad('real.tunnel.port of GUE must be an integer 1..65535');
  return { type: 'gue', port: port as number, csum: csum as TunCsum };
}

/** xvs_real's tunnel fields. */
export function tunnelEntry(t: Tunnel | undefined): { tun_port: number; tun_type: number; tun_flags: number } {
  if (!t) return { tun_port: 0, tun_type: TUN.ipip, tun_flags: 0 };
  return { tun_port: t.type === 'gue' ? t.port : 0, tun_type: TUN[t.type], tun_flags: CSUM_FLAGS[t.csum] };
}

/** The tunnel of a pinned entry; undefined for IPIP (and for any other method). */
export function tunnelFromEntry(e: { tun_port: number; tun_type: number; tun_flags: number }): Tunnel | undefined {
  const csum = e.tun_flags & TUN_F.remcsum ? 'remcsum' : e.tun_flags & TUN_F.csum ? 'csum' : 'nocsum';
  if (e.tun_type === TUN.gue) return { type: 'gue', port: e.tun_port, csum };
  if (e.tun_type === TUN.gre) return { type: 'gre', csum: csum === 'remcsum' ? 'nocsum' : csum };
  return undefined;
}

