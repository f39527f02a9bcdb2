import { FAMILY } from '../maps/abi.js';
import { familyOf } from './addr.js';
import type { Model, RealModel, ServiceModel } from './model.js';

// A FULLNAT real server takes a local address of its own family from its
// service's pool. One whose service has none yet is accepted (a restore adds
// the real servers and the addresses in one change, an operator may add the
// address next), but until one comes the dataplane drops its new flows
// (fnat_no_laddr): the operator hears of it when the change is committed.

const FAMILY_NAME = { [FAMILY.inet]: 'IPv4', [FAMILY.inet6]: 'IPv6' } as const;

/** The service's FULLNAT real servers that no local address of the service can serve, by family. */
export function realsWithoutLaddr(s: ServiceModel): Map<'IPv4' | 'IPv6', RealModel[]> {
  const have = new Set((s.laddrs ?? []).map(familyOf));
  const out = new Map<'IPv4' | 'IPv6', RealModel[]>();
  for (const r of s.reals) {
    const f = familyOf(r.addr);
    if (r.fwd !== 'fullnat' || have.has(f)) continue;
    const name = FAMILY_NAME[f];
    out.set(name, [...(out.get(name) ?? []), r]);
  }
  return out;
}

/** ADDR:PORT, an IPv6 address in brackets, as ipvsadm writes them. */
export const endpoint = (addr: string, port: number): string => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

/** One line per service and family lacking a local address, for the services named (serviceName()). */
export function laddrWarnings(m: Model, names: Iterable<string>): string[] {
  const out: string[] = [];
  for (const name of new Set(names)) {
    const s = m.services.get(name);
    if (!s) continue;
    for (const [family, reals] of realsWithoutLaddr(s)) {
      const svc = `-${s.proto === 'tcp' ? 't' : 'u'} ${endpoint(s.addr, s.port)}`;
      const which = reals.map((r) => endpoint(r.addr, r.port)).join(', ');
      out.push(`${svc} has no ${family} local address: new connections to FULLNAT real server${reals.length > 1 ? 's' : ''} ${which} are dropped until one is added (-P ${svc} -z ADDR)`);
    }
  }
  return out;
}
