// Attaching XDP programs to interfaces by netlink (through libbpf). Names and
// indexes resolve in the calling thread's network namespace (see netns.ts).
import { readFileSync } from 'node:fs';
import { XvsError } from '../errors.js';
import { logger } from '../log.js';
import * as lb from './libbpf.js';

export type XdpMode = 'native' | 'generic';

export const XDP_FLAGS_SKB_MODE = 1 << 1;
export const XDP_FLAGS_DRV_MODE = 1 << 2;

const EINVAL = 22;
const EOPNOTSUPP = 95;
const log = logger('xdp');

const modeFlag = (m: XdpMode): number => (m === 'native' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);
const otherMode = (m: XdpMode): XdpMode => (m === 'native' ? 'generic' : 'native');

export function ifIndex(name: string): number {
  const i = name === '' || name.length >= 16 ? 0 : lb.if_nametoindex(name);
  if (i === 0) throw new XvsError('NO_INTERFACE', `interface ${name} does not exist`);
  return i;
}

/**
 * Every interface of the calling thread's network namespace. thread-self:
 * the namespace withNetns entered is this thread's, not the process's.
 */
export function listInterfaces(): { name: string; ifindex: number }[] {
  const lines = readFileSync('/proc/thread-self/net/dev', 'utf8').split('\n').slice(2);
  const out: { name: string; ifindex: number }[] = [];
  for (const l of lines) {
    // Interface names cannot contain ':' (dev_valid_name), so the first one ends it.
    const name = l.slice(0, Math.max(0, l.indexOf(':'))).trim();
    if (!name) continue;
    const ifindex = lb.if_nametoindex(name);
    if (ifindex !== 0) out.push({ name, ifindex }); // gone since the read
  }
  return out;
}

/**
 * Attaches progFd, replacing whatever program the interface runs. Native
 * mode falls back to generic when the driver lacks XDP (EOPNOTSUPP) or
 * refuses this setup (EINVAL, e.g. an MTU too large); the mode actually
 * used is returned.
 */
export function attachXdp(ifindex: number, progFd: number, mode: XdpMode): XdpMode {
  // The kernel refuses a program in one mode while the other mode has one.
  if (modeProgId(ifindex, otherMode(mode)) !== 0) detachXdp(ifindex, otherMode(mode));
  const r = lb.bpf_xdp_attach(ifindex, progFd, modeFlag(mode), null);
  if (r >= 0) return mode;
  if (mode === 'native' && (r === -EOPNOTSUPP || r === -EINVAL)) {
    log.warn({ ifindex, reason: lb.strerror(r) }, 'native XDP refused, falling back to generic mode');
    return attachXdp(ifindex, progFd, 'generic');
  }
  throw new XvsError('ATTACH', `cannot attach XDP program to ifindex ${ifindex} in ${mode} mode: ${lb.strerror(r)}`);
}

/** Detaches the program of one mode, or of both; absent programs are fine. */
export function detachXdp(ifindex: number, mode?: XdpMode): void {
  for (const m of mode ? [mode] : (['native', 'generic'] as const)) {
    if (mode === undefined && modeProgId(ifindex, m) === 0) continue;
    const r = lb.bpf_xdp_detach(ifindex, modeFlag(m), null);
    if (r < 0) throw new XvsError('ATTACH', `cannot detach XDP program from ifindex ${ifindex} (${m} mode): ${lb.strerror(r)}`);
  }
}

/** The id of the XDP program on the interface, in either mode; 0 if none. */
export function xdpProgId(ifindex: number): number {
  return modeProgId(ifindex, 'native') || modeProgId(ifindex, 'generic');
}

function modeProgId(ifindex: number, mode: XdpMode): number {
  const id: [number] = [0];
  const r = lb.bpf_xdp_query_id(ifindex, modeFlag(mode), id);
  if (r < 0) throw new XvsError('ATTACH', `cannot query XDP on ifindex ${ifindex}: ${lb.strerror(r)}`);
  return id[0];
}
