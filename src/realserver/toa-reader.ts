// The TOA reader (bpf/xvs_toa.c) on a FULLNAT real server: loaded with its
// connection map pinned, told which network namespace is its own, attached
// to a cgroup, and detached again, for `xvs realserver setup|teardown --mode
// fullnat` (setup.ts keeps the record). The attachment belongs to the
// cgroup, so the reader outlives the command that attached it; kernel ids,
// not pins, find it again (see setup.ts on pins under `ip netns exec`).
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { XvsError } from '../errors.js';
import { BpfObject } from '../loader/index.js';
import { AttachType, attachCgroup, cgroupProgIds, detachCgroup, progFromId } from '../loader/cgroup.js';
import { progInfo } from '../loader/prog-info.js';
import { toaConfig } from '../maps/codecs.js';
import { mapFromId, mapFromPin, type RawMap } from '../maps/map.js';
import { bpfObject } from '../paths.js';
import { ensurePinDir } from '../sys/bpffs.js';
import { cgroupDir, cgroupId, ensureCgroup2 } from '../sys/cgroupfs.js';
import { netnsCookie } from '../sys/netns.js';

export const TOA_READER = {
  program: 'xvs_toa_reader',
  conns: 'xvs_toa_conns',
  config: 'xvs_toa_config',
  minTableSize: 1024,
  maxTableSize: 1 << 24,
} as const;

export interface ToaReaderState {
  /** As /proc/PID/cgroup names it: "/" is the root of the hierarchy. */
  cgroup: string;
  /** Its directory's inode: a cgroup removed and made again under the name is another one. */
  cgroupId: number;
  progId: number;
  mapId: number;
  /** The namespace's cookie, in decimal: unlike its inode, never given to a later namespace. */
  netnsCookie: string;
  pinDir: string;
  tableSize: number;
}

export interface ReaderCtx {
  lines: string[];
  undo: Array<() => void | Promise<void>>;
}

export function checkTableSize(n: number): number {
  if (!Number.isInteger(n) || n < TOA_READER.minTableSize || n > TOA_READER.maxTableSize) {
    throw new XvsError('BAD_ARGUMENT', `TOA table size ${String(n)}: between ${TOA_READER.minTableSize} and ${TOA_READER.maxTableSize} connections`);
  }
  return n;
}

/** This namespace's cookie as the reader's config holds it. */
export function currentCookie(): string {
  return netnsCookie().toString();
}

/** The cgroup's directory under a cgroup v2 mount, mounting one if this mount namespace has none. */
async function resolveCgroup(cgroup: string, lines: string[]): Promise<string> {
  const { root, mounted } = await ensureCgroup2();
  if (mounted) lines.push(`mounted the cgroup v2 hierarchy on ${root}`);
  return cgroupDir(root, cgroup);
}

function detachById(dir: string, progId: number): boolean {
  const p = progFromId(progId);
  if (!p) return false;
  try {
    return detachCgroup(dir, p.fd, AttachType.CGROUP_SOCK_OPS);
  } finally {
    p.close();
  }
}

function unpin(pinDir: string): boolean {
  const pin = path.join(pinDir, TOA_READER.conns);
  const had = existsSync(pin);
  rmSync(pin, { force: true });
  return had;
}

/** Loads the reader for this namespace and attaches it to the cgroup; every step has its undo in ctx. */
export async function attachToaReader(o: { cgroup: string; pinDir: string; tableSize?: number }, ctx: ReaderCtx): Promise<ToaReaderState> {
  const dir = await resolveCgroup(o.cgroup, ctx.lines);
  const cookie = netnsCookie();
  if (cookie > BigInt(Number.MAX_SAFE_INTEGER)) throw new XvsError('SYSTEM', `network namespace cookie ${cookie} is beyond what the config codec carries`);
  const mounted = await ensurePinDir(o.pinDir);
  if (mounted) ctx.lines.push(`mounted a bpf filesystem on ${mounted}`);
  // libbpf would reuse a pin left by a reader that no longer runs, stale connections and all.
  rmSync(path.join(o.pinDir, TOA_READER.conns), { force: true });
  const objectPath = bpfObject('xvs_toa');
  if (!existsSync(objectPath)) throw new XvsError('OBJECT_MISSING', `${objectPath} not found`);
  const obj = BpfObject.open({
    objectPath, pinDir: o.pinDir, pinMaps: [TOA_READER.conns],
    ...(o.tableSize === undefined ? {} : { mapSizes: { [TOA_READER.conns]: checkTableSize(o.tableSize) } }),
  });
  ctx.undo.push(() => void unpin(o.pinDir));
  try {
    obj.load();
    // Before the attach: a reader without its namespace records nothing.
    obj.map(TOA_READER.config).update(Buffer.alloc(4), toaConfig.encode({ netns_cookie: Number(cookie) }));
    const prog = obj.program(TOA_READER.program);
    const progId = progInfo(prog.fd).id;
    attachCgroup(dir, prog.fd, AttachType.CGROUP_SOCK_OPS);
    ctx.undo.push(() => void detachById(dir, progId));
    ctx.lines.push(`attached ${TOA_READER.program} to cgroup ${o.cgroup}`);
    const conns = obj.map(TOA_READER.conns);
    ctx.lines.push(`pinned ${path.join(o.pinDir, TOA_READER.conns)} (${conns.maxEntries} connections)`);
    return {
      cgroup: o.cgroup, cgroupId: cgroupId(dir), progId, mapId: conns.kernelId(),
      netnsCookie: cookie.toString(), pinDir: o.pinDir, tableSize: conns.maxEntries,
    };
  } finally {
    // The attachment holds the program, and the program its maps.
    obj.close();
  }
}

/** Whether the recorded reader still runs on its cgroup. */
export async function toaReaderAttached(s: ToaReaderState, lines: string[]): Promise<boolean> {
  const p = progFromId(s.progId);
  if (!p) return false;
  try {
    if (p.name !== TOA_READER.program) return false;
  } finally {
    p.close();
  }
  let dir: string;
  try {
    dir = await resolveCgroup(s.cgroup, lines);
  } catch {
    return false; // the cgroup is gone, and the attachment with it
  }
  return cgroupId(dir) === s.cgroupId && cgroupProgIds(dir, AttachType.CGROUP_SOCK_OPS).includes(s.progId);
}

/** Detaches the recorded reader (if it still runs there) and removes its pin (if this run sees it). */
export async function detachToaReader(s: ToaReaderState, lines: string[]): Promise<void> {
  if (await toaReaderAttached(s, lines)) {
    const dir = await resolveCgroup(s.cgroup, lines);
    if (detachById(dir, s.progId)) lines.push(`detached ${TOA_READER.program} from cgroup ${s.cgroup}`);
  } else {
    lines.push(`${TOA_READER.program} (program id ${s.progId}) no longer runs on cgroup ${s.cgroup}; nothing to detach`);
  }
  if (unpin(s.pinDir)) lines.push(`unpinned ${path.join(s.pinDir, TOA_READER.conns)}`);
}

/** The recorded reader's connection map: by its pin when this run sees it, else by kernel id. */
export function openToaConns(s: ToaReaderState): RawMap {
  const pin = path.join(s.pinDir, TOA_READER.conns);
  const map = existsSync(pin) ? mapFromPin(pin) : mapFromId(s.mapId);
  if (map.name !== TOA_READER.conns || map.kernelId() !== s.mapId) {
    map.close();
    throw new XvsError('SYSTEM', `map ${existsSync(pin) ? pin : `id ${s.mapId}`} is not the TOA reader's ${TOA_READER.conns} the state file records`,
      { hint: 'the reader was set up again elsewhere, or the state file is stale: run `xvs realserver setup --mode fullnat` again' });
  }
  return map;
}
