import { XvsError } from '../errors.js';
import { FWD } from '../maps/abi.js';

// What each LVS forwarding method needs from a real server and what the
// dataplane does with the packet. Codes are XVS_FWD_* of xvs_abi.h.
export const MODES = {
  dr: {
    code: FWD.dr,
    flag: '-g',
    listName: 'Route',
    implemented: true,
    portMapping: false,
    contract: 'destination MAC := next hop of RIP (FIB), source MAC := egress MAC; IP and ports unchanged',
  },
  tun: {
    code: FWD.tun,
    flag: '-i',
    listName: 'Tunnel',
    implemented: true,
    portMapping: false,
    contract: 'IP in IP of the real server\'s family (src director, dst RIP, TOS/TTL of the inner packet, IPv4 in IPv4: ID/DF too), with UDP and GUE or GRE between for --tun-type gue|gre (modes/tunnel.ts); DF packets that no longer fit get ICMP frag-needed or packet-too-big with the MTU less the tunnel',
  },
  nat: {
    code: FWD.nat,
    flag: '-m',
    listName: 'Masq',
    implemented: true,
    portMapping: true,
    contract: 'DNAT to RIP:rport (checksums incremental); the real server routes replies through the director, which rewrites their source back to VIP:vport (TTL - 1) and sends them the way the client\'s packets came',
  },
  fullnat: {
    code: FWD.fullnat,
    flag: '-b',
    listName: 'FullNat',
    implemented: true,
    portMapping: true,
    contract: 'SNAT to a local address and port of the service (-P) and DNAT to RIP:rport; replies come back to the local address and go out as VIP:vport to the client; the client\'s address travels in TCP option 254 (TOA)',
  },
} as const;

export type ModeName = keyof typeof MODES;

export function modeByName(name: string): (typeof MODES)[ModeName] & { name: ModeName } {
  if (!(name in MODES)) throw new XvsError('BAD_ARGUMENT', `unknown forwarding method '${name}'`, { hint: 'one of dr (-g), tun (-i), nat (-m)' });
  const m = MODES[name as ModeName];
  return { ...m, name: name as ModeName };
}

export function modeByCode(code: number): ModeName {
  for (const [name, m] of Object.entries(MODES)) if (m.code === code) return name as ModeName;
  throw new XvsError('BAD_ARGUMENT', `unknown forwarding code ${code}`);
}

/** Checks a real server against its service; returns the port to store. */
export function validateReal(mode: ModeName, servicePort: number, realPort: number, fwmark = false): number {
  const m = MODES[mode];
  if (!m.implemented) {
    throw new XvsError('UNSUPPORTED', `forwarding method ${m.flag} (${mode}) is not implemented yet`, { hint: 'use -g (DR) or -i (TUN)' });
  }
  // A fwmark or port-zero service has no one port: its real servers keep each packet's (port 0),
  // or, translating (NAT, FULLNAT), send every packet to theirs, as IPVS does
  // (ip_vs_schedule: dest->port ? dest->port : vport).
  if (fwmark || servicePort === 0) {
    if (realPort !== 0 && !m.portMapping) {
      throw new XvsError('PORT_MAPPING', `${mode.toUpperCase()} keeps each packet's port in a ${fwmark ? 'fwmark' : 'port-zero'} service, not ${realPort}`, { hint: 'leave the real server\'s port out (or 0)' });
    }
    return realPort;
  }
  const port = realPort === 0 ? servicePort : realPort;
  if (!m.portMapping && port !== servicePort) {
    throw new XvsError('PORT_MAPPING', `${mode.toUpperCase()} cannot map port ${servicePort} to ${port}`);
  }
  return port;
}
