// The client behind a FULLNAT connection, for applications on the real
// server: the TOA reader (bpf/xvs_toa.c) records the address and port the
// director carried in the TOA option, keyed by the connection as this host
// sees it; clientOf() looks a socket up there, and falls back to the
// socket's own peer when the connection carried no TOA (a direct client, a
// DR or TUN service).
//
// The option may come with the client's first data rather than with the
// handshake: ask once the first bytes have been read (in an HTTP server,
// in the request handler), not on 'connection'.
import { existsSync } from 'node:fs';
import { isIPv4, isIPv6, type Socket } from 'node:net';
import path from 'node:path';
import { XvsError } from '../errors.js';
import { FAMILY, TOA_SEG } from '../maps/abi.js';
import { toaClient, toaKey } from '../maps/codecs.js';
import { mapFromPin, type RawMap } from '../maps/map.js';
import { defaultPinDir, recordedToaReader } from './setup.js';
import { TOA_READER, openToaConns } from './toa-reader.js';

export interface Endpoint {
  address: string;
  port: number;
}

export type ToaSegment = keyof typeof TOA_SEG;

export interface ToaRecord extends Endpoint {
  family: 'IPv4' | 'IPv6';
  /** Which segment carried it: the one completing the handshake, or a later one (the first data). */
  segment: ToaSegment;
}

export interface ClientAddress extends Endpoint {
  family: 'IPv4' | 'IPv6';
  /** toa: from the TOA option; peer: the socket's own remote end, no TOA was recorded. */
  via: 'toa' | 'peer';
  segment?: ToaSegment;
}

export interface ToaConnection {
  local: Endpoint;
  remote: Endpoint;
  client: ToaRecord;
}

export interface ToaTableOptions {
  /** Where setup pinned the map (its --pin-dir). Default: the state file's record, else this namespace's default. */
  pinDir?: string;
  /** Where setup keeps its state (its --state-dir). */
  stateDir?: string;
}

const familyName = (f: number): 'IPv4' | 'IPv6' => (f === FAMILY.inet ? 'IPv4' : 'IPv6');
const segName = (v: number): ToaSegment => (v === TOA_SEG.handshake ? 'handshake' : 'later');

/** An IPv4 peer of an IPv6 socket (::ffff:a.b.c.d) is the IPv4 address, as the reader keys it. */
function plain(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m?.[1] ?? address;
}

function checkEndpoint(e: Endpoint, what: string): Endpoint {
  const address = plain(e.address);
  if (!isIPv4(address) && !(isIPv6(address) && !address.includes('%'))) throw new XvsError('BAD_ADDRESS', `${what} address "${e.address}" is not an IP address`);
  if (!Number.isInteger(e.port) || e.port < 1 || e.port > 65535) throw new XvsError('BAD_ADDRESS', `${what} port ${String(e.port)} is not 1..65535`);
  return { address, port: e.port };
}

function openMap(o: ToaTableOptions): RawMap {
  const pinned = (dir: string): RawMap | null => {
    const pin = path.join(dir, TOA_READER.conns);
    if (!existsSync(pin)) return null;
    const m = mapFromPin(pin);
    if (m.name !== TOA_READER.conns) {
      m.close();
      throw new XvsError('NO_TOA_READER', `${pin} is map ${m.name}, not the TOA reader's ${TOA_READER.conns}`);
    }
    return m;
  };
  if (o.pinDir !== undefined) {
    const m = pinned(o.pinDir);
    if (!m) throw new XvsError('NO_TOA_READER', `no TOA reader map pinned at ${path.join(o.pinDir, TOA_READER.conns)}`);
    return m;
  }
  const rec = recordedToaReader(o.stateDir === undefined ? {} : { stateDir: o.stateDir });
  if (rec) return openToaConns(rec);
  const m = pinned(defaultPinDir());
  if (!m) throw new XvsError('NO_TOA_READER', 'no TOA reader is set up in this network namespace');
  return m;
}

/** The TOA reader's connection map, opened once and looked up per connection. */
export class ToaTable {
  readonly #map: RawMap;

  private constructor(map: RawMap) {
    this.#map = map;
  }

  static open(o: ToaTableOptions = {}): ToaTable {
    return new ToaTable(openMap(o));
  }

  /** The TOA recorded for a connection, by this host's end and its peer's; null when none was. */
  lookup(local: Endpoint, remote: Endpoint): ToaRecord | null {
    const l = checkEndpoint(local, 'local');
    const r = checkEndpoint(remote, 'remote');
    if (isIPv4(l.address) !== isIPv4(r.address)) {
      throw new XvsError('BAD_ADDRESS', `local ${l.address} and remote ${r.address} are not of one address family`);
    }
    const key = toaKey.encode({
      laddr: l.address, raddr: r.address, lport: l.port, rport: r.port,
      family: isIPv4(l.address) ? FAMILY.inet : FAMILY.inet6,
    });
    const v = this.#map.lookup(key);
    if (!v) return null;
    const c = toaClient.decode(v);
    return { address: c.addr, port: c.port, family: familyName(c.family), segment: segName(c.seg) };
  }

  /** Every connection with a recorded TOA, in no particular order. */
  list(): ToaConnection[] {
    const { keys, values } = this.#map.lookupBatch();
    return keys.map((kb, i) => {
      const k = toaKey.decode(kb);
      const c = toaClient.decode(values[i]!);
      return {
        local: { address: k.laddr, port: k.lport },
        remote: { address: k.raddr, port: k.rport },
        client: { address: c.addr, port: c.port, family: familyName(c.family), segment: segName(c.seg) },
      };
    });
  }

  /** The client of an accepted connection: the TOA's, or the socket's peer when none was recorded. */
  clientOf(socket: Socket): ClientAddress {
    const { localAddress, localPort, remoteAddress, remotePort } = socket;
    if (localAddress === undefined || localPort === undefined || remoteAddress === undefined || remotePort === undefined) {
      throw new XvsError('BAD_ARGUMENT', 'the socket is not connected (closed, or not yet)');
    }
    const remote = { address: plain(remoteAddress), port: remotePort };
    const toa = this.lookup({ address: localAddress, port: localPort }, remote);
    if (toa) return { address: toa.address, port: toa.port, family: toa.family, via: 'toa', segment: toa.segment };
    return { ...remote, family: isIPv4(remote.address) ? 'IPv4' : 'IPv6', via: 'peer' };
  }

  close(): void {
    this.#map.close();
  }
}

const tables = new Map<string, ToaTable>();

/**
 * The client of an accepted connection (see ToaTable.clientOf). The map is
 * opened on first use and kept; a failure to open it (no reader set up)
 * throws NO_TOA_READER rather than pretend every client is the director.
 */
export function clientOf(socket: Socket, o: ToaTableOptions = {}): ClientAddress {
  const id = JSON.stringify([o.pinDir ?? null, o.stateDir ?? null]);
  let t = tables.get(id);
  if (!t) {
    t = ToaTable.open(o);
    tables.set(id, t);
  }
  return t.clientOf(socket);
}

/** Closes the maps clientOf() opened (for a server shutting down, or tests). */
export function closeToaTables(): void {
  for (const t of tables.values()) t.close();
  tables.clear();
}
