// The director's interfaces and what each faces. `--interface NAME[:ROLE]`,
// repeatable and/or a comma list, as xvsd and `xvs down` take it. Every
// check runs before anything is changed.
import { XvsError } from '../errors.js';
import { ifIndex } from '../loader/index.js';

/**
 * What an interface faces, in LVS terms:
 * - client: where clients reach the VIPs (the VIP side; with NAT and
 *   FULLNAT, where replies leave towards clients);
 * - server: where the real servers are (the RIP/DIP side, where frames to
 *   real servers leave; with NAT and FULLNAT, where their replies come in);
 * - both: one segment for both, the one-armed director (the default).
 */
export const INTERFACE_ROLES = {
  client: { facesClients: true, facesServers: false },
  server: { facesClients: false, facesServers: true },
  both: { facesClients: true, facesServers: true },
} as const;

export type InterfaceRole = keyof typeof INTERFACE_ROLES;

export const DEFAULT_ROLE: InterfaceRole = 'both';

export interface InterfaceSpec {
  name: string;
  role: InterfaceRole;
}

export interface DirectorInterface extends InterfaceSpec {
  ifindex: number;
}

const roleNames = Object.keys(INTERFACE_ROLES).join(', ');

function isRole(s: string): s is InterfaceRole {
  return Object.hasOwn(INTERFACE_ROLES, s);
}

/** commander's collector for a repeatable --interface: every value split on commas. */
export function collectInterfaces(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',')];
}

/**
 * NAME[:ROLE] items (interface names cannot hold ':'), each name once.
 * `complete`: the list must face both clients and real servers (xvsd);
 * `xvs down` takes any part of it.
 */
export function parseInterfaces(items: readonly string[], opts: { complete: boolean }): InterfaceSpec[] {
  const specs: InterfaceSpec[] = [];
  for (const raw of items) {
    const item = raw.trim();
    const colon = item.indexOf(':');
    const name = colon === -1 ? item : item.slice(0, colon);
    const role = colon === -1 ? DEFAULT_ROLE : item.slice(colon + 1);
    if (name === '') throw new XvsError('BAD_ARGUMENT', `--interface "${raw}": an interface name is missing`);
    if (!isRole(role)) throw new XvsError('BAD_ARGUMENT', `--interface ${item}: role "${role}" is not one of ${roleNames}`);
    if (specs.some((s) => s.name === name)) throw new XvsError('BAD_ARGUMENT', `--interface ${name} is given twice`);
    specs.push({ name, role });
  }
  if (specs.length === 0) throw new XvsError('BAD_ARGUMENT', 'no --interface given');
  if (opts.complete) {
    if (!specs.some((s) => INTERFACE_ROLES[s.role].facesClients)) {
      throw new XvsError('BAD_ARGUMENT', 'no interface faces the clients', { hint: 'give one the role client or both, e.g. --interface eth0:client' });
    }
    if (!specs.some((s) => INTERFACE_ROLES[s.role].facesServers)) {
      throw new XvsError('BAD_ARGUMENT', 'no interface faces the real servers', { hint: 'give one the role server or both, e.g. --interface eth1:server' });
    }
  }
  return specs;
}

/** Each interface's index in the calling thread's namespace; two names of one interface (an altname) are refused. */
export function resolveInterfaces(specs: readonly InterfaceSpec[]): DirectorInterface[] {
  const out: DirectorInterface[] = [];
  for (const s of specs) {
    const ifindex = ifIndex(s.name);
    const same = out.find((o) => o.ifindex === ifindex);
    if (same) throw new XvsError('BAD_ARGUMENT', `--interface ${s.name} and ${same.name} are the same interface (ifindex ${ifindex})`);
    out.push({ ...s, ifindex });
  }
  return out;
}
