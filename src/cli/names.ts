import { promises as dns } from 'node:dns';
import { readFileSync } from 'node:fs';

// Host and service names as ipvsadm uses them: gethostbyname for a host
// given as a name (IPv4 only), getservbyname/getservbyport for ports, and
// gethostbyaddr for listings without -n. The parser is synchronous, as
// ipvsadm's is, so it reads names from a table filled beforehand; the
// table's sources are injectable so tests never depend on outside DNS.

export type NameProto = 'tcp' | 'udp' | 'sctp';

export interface Names {
  /** gethostbyname: the first IPv4 address of a host name. */
  host(name: string): string | undefined;
  /** getservbyname. */
  port(name: string, proto: NameProto): number | undefined;
  /** gethostbyaddr. */
  hostOf(addr: string): string | undefined;
  /** getservbyport. */
  serviceOf(port: number, proto: NameProto): string | undefined;
}

/** Where names come from; the defaults are the system's (NSS: /etc/hosts, then DNS). */
export interface NameSources {
  lookup(name: string): Promise<string | undefined>;
  reverse(addr: string): Promise<string | undefined>;
  /** The text of a services(5) file. */
  services(): string;
}

export const systemNameSources: NameSources = {
  lookup: async (name) => {
    try {
      return (await dns.lookup(name, { family: 4 })).address;
    } catch {
      return undefined;
    }
  },
  // getnameinfo goes through NSS as gethostbyaddr does (dns.reverse would ask DNS only).
  reverse: async (addr) => {
    try {
      const { hostname } = await dns.lookupService(addr, 0);
      return hostname === addr ? undefined : hostname;
    } catch {
      return undefined;
    }
  },
  services: () => {
    try {
      return readFileSync('/etc/services', 'utf8');
    } catch {
      return '';
    }
  },
};

interface ServiceTable {
  byName: Map<string, number>;
  byPort: Map<string, string>;
}

/** services(5): "name port/proto [aliases...] [# comment]"; the first entry of a port names it. */
export function parseServices(text: string): ServiceTable {
  const byName = new Map<string, number>();
  const byPort = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const [name, portProto, ...aliases] = raw.replace(/#.*/, '').trim().split(/\s+/);
    const m = /^(\d+)\/(\w+)$/.exec(portProto ?? '');
    if (!name || !m) continue;
    const port = Number(m[1]);
    const proto = m[2]!;
    for (const n of [name, ...aliases]) if (!byName.has(`${n}/${proto}`)) byName.set(`${n}/${proto}`, port);
    if (!byPort.has(`${port}/${proto}`)) byPort.set(`${port}/${proto}`, name);
  }
  return { byName, byPort };
}

/** A Names over fixed tables (and the services text). */
export function namesFrom(hosts: ReadonlyMap<string, string | undefined>, addrs: ReadonlyMap<string, string | undefined>, servicesText: string): Names {
  const s = parseServices(servicesText);
  return {
    host: (name) => hosts.get(name),
    port: (name, proto) => s.byName.get(`${name}/${proto}`),
    hostOf: (addr) => addrs.get(addr),
    serviceOf: (port, proto) => s.byPort.get(`${port}/${proto}`),
  };
}

/** Looks up every host name and address asked for, at once, into a Names. */
export async function resolveNames(sources: NameSources, hostNames: Iterable<string>, addrs: Iterable<string>): Promise<Names> {
  const hosts = new Map<string, string | undefined>();
  const rev = new Map<string, string | undefined>();
  await Promise.all([
    ...[...new Set(hostNames)].map(async (n) => { hosts.set(n, await sources.lookup(n)); }),
    ...[...new Set(addrs)].map(async (a) => { rev.set(a, await sources.reverse(a)); }),
  ]);
  return namesFrom(hosts, rev, sources.services());
}

/** Names that know none: what the parser's first pass uses to learn which names it needs. */
export function recordingNames(asked: Set<string>): Names {
  return {
    host: (name) => { asked.add(name); return '0.0.0.1'; },
    port: () => 1,
    hostOf: () => undefined,
    serviceOf: () => undefined,
  };
}

/**
 * inet_aton(3): one to four parts, each decimal, octal (leading 0) or hex
 * (0x); the last part fills the remaining bytes. "10.1" is 10.0.0.1.
 */
export function inetAton(text: string): string | undefined {
  const parts = text.split('.');
  if (parts.length > 4 || parts.some((p) => p === '')) return undefined;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0[xX][0-9a-fA-F]*$/.test(p)) n = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) n = parseInt(p, 8);
    else if (/^[1-9]\d*$/.test(p)) n = Number(p);
    else return undefined;
    nums.push(n);
  }
  const last = nums.pop()!;
  if (nums.some((n) => n > 255) || last >= 2 ** (8 * (4 - nums.length))) return undefined;
  let value = last;
  nums.forEach((n, i) => { value += n * 2 ** (8 * (3 - i)); });
  return [24, 16, 8, 0].map((s) => Math.floor(value / 2 ** s) % 256).join('.');
}
