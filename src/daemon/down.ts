// `xvs down`: the director's program off every interface it runs on, and
// its pins removed. The interfaces are the ones given and every other one
// whose program uses the pinned maps, so a list that changed between
// restarts leaves nothing behind.
import { existsSync } from 'node:fs';
import { XvsError } from '../errors.js';
import { detachXdp } from '../loader/index.js';
import { mapFromPin } from '../maps/map.js';
import { unpinDirectorMaps } from './dataplane.js';
import { parseInterfaces, resolveInterfaces } from './interfaces.js';
import { attachmentsUsingMap } from './ports.js';

/** A pinned map every program of the director uses and a restart never replaces (flow tables are resized). */
const MARKER_MAP = 'xvs_config';

function pinnedMarkerId(pinDir: string): number | null {
  const p = `${pinDir}/${MARKER_MAP}`;
  if (!existsSync(p)) return null;
  const m = mapFromPin(p);
  try {
    return m.kernelId();
  } finally {
    m.close();
  }
}

export function takeDown(o: { interface?: string[]; pinDir: string }): string {
  const listed = o.interface ? resolveInterfaces(parseInterfaces(o.interface, { complete: false })) : [];
  const markerId = pinnedMarkerId(o.pinDir);
  if (listed.length === 0 && markerId === null) {
    throw new XvsError('BAD_ARGUMENT', `no --interface given and no pinned maps under ${o.pinDir} to find the director by`);
  }
  const found = markerId === null ? [] : attachmentsUsingMap(markerId);
  const targets = [...listed, ...found.filter((f) => !listed.some((l) => l.ifindex === f.ifindex))];
  for (const t of targets) detachXdp(t.ifindex);
  const n = unpinDirectorMaps(o.pinDir);
  const names = targets.map((t) => t.name).join(', ') || 'no interface';
  return `detached from ${names}; unpinned ${n} maps under ${o.pinDir}`;
}
