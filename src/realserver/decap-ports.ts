import { XvsError } from '../errors.js';
import { progMapIds } from '../loader/prog-info.js';
import { mapFromId, type RawMap } from '../maps/map.js';

// The decap helper's GUE ports (xvs_decap_ports): a bitmap over the
// 65536 UDP ports, port P being bit P % 32 of the 32-bit word P / 32 (see
// XVS_DECAP_GUE_WORDS in xvs_abi.h). The map is found through the running
// program's map ids, so no state file or pin has to name it.

export const GUE_PORTS_MAP = 'xvs_decap_ports';

/** A real server's tunnel as the decap needs to know it: GUE's port; IPIP and GRE need nothing. */
export type DecapTunnel = { type: 'gue'; port: number } | { type: 'gre' };

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** Sets or clears a port's bit; returns whether it changed. */
export function setGuePort(map: RawMap, port: number, on: boolean): boolean {
  const key = u32le(Math.floor(port / 32));
  const bit = 1 << (port % 32);
  const cur = map.lookup(key)?.readUInt32LE(0) ?? 0;
  const next = on ? cur | bit : cur & ~bit;
  if ((next >>> 0) === (cur >>> 0)) return false;
  map.update(key, u32le(next));
  return true;
}

/** The ports whose bits are set. */
export function guePorts(map: RawMap): number[] {
  const out: number[] = [];
  for (let word = 0; word < 65536 / 32; word++) {
    const w = map.lookup(u32le(word))?.readUInt32LE(0) ?? 0;
    for (let b = 0; w !== 0 && b < 32; b++) if (w & (1 << b)) out.push(word * 32 + b);
  }
  return out;
}

/** The GUE ports map of the decap program progId. */
export function openGuePorts(progId: number): RawMap {
  for (const id of progMapIds(progId)) {
    const map = mapFromId(id);
    if (map.name === GUE_PORTS_MAP) return map;
    map.close();
  }
  throw new XvsError('SYSTEM', `the decap program (id ${progId}) has no ${GUE_PORTS_MAP}: an older xvs attached it`,
    { hint: 'tear down its VIPs and set them up again to attach this one' });
}

/** Makes the bitmap exactly `want`; returns the ports added and removed. */
export function syncGuePorts(map: RawMap, want: ReadonlySet<number>): { added: number[]; removed: number[] } {
  const have = new Set(guePorts(map));
  const added = [...want].filter((p) => !have.has(p)).sort((a, b) => a - b);
  const removed = [...have].filter((p) => !want.has(p)).sort((a, b) => a - b);
  for (const p of added) setGuePort(map, p, true);
  for (const p of removed) setGuePort(map, p, false);
  return { added, removed };
}

/** The tunnel `xvs realserver setup --tun-type T --tun-port P` asks for, checked: undefined for IPIP. */
export function decapTunnelOf(mode: string, tunType: string | undefined, tunPort: number | undefined): DecapTunnel | undefined {
  if (tunType === undefined && tunPort === undefined) return undefined;
  if (mode !== 'tun') throw new XvsError('BAD_ARGUMENT', '--tun-type and --tun-port are for TUN real servers (--mode tun)');
  const type = tunType ?? 'ipip';
  if (type !== 'ipip' && type !== 'gue' && type !== 'gre') throw new XvsError('BAD_ARGUMENT', `tunnel type "${type}": use ipip, gue or gre`);
  if (type !== 'gue') {
    if (tunPort !== undefined) throw new XvsError('BAD_ARGUMENT', `--tun-port is for GUE only, not ${type.toUpperCase()}`);
    return type === 'gre' ? { type } : undefined;
  }
  if (tunPort === undefined) throw new XvsError('BAD_ARGUMENT', 'GUE needs --tun-port: the UDP port the director sends to (its --tun-port)');
  if (!Number.isInteger(tunPort) || tunPort < 1 || tunPort > 65535) throw new XvsError('BAD_ARGUMENT', `GUE port ${tunPort}: use 1..65535`);
  return { type, port: tunPort };
}

/** How setup describes it: "gue port P" or "gre". */
export const decapTunnelText = (t: DecapTunnel): string => (t.type === 'gue' ? `gue port ${t.port}` : 'gre');
