// Pins need a bpffs. Hosts usually have one on /sys/fs/bpf, but `ip netns
// exec` mounts a fresh /sys for every run and most containers have none, so
// xvsd and the real-server helper mount one when it is missing, as bpftool
// and Cilium's agent do.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { XvsError } from '../errors.js';
import { logger } from '../log.js';

const BPF_FS_MAGIC = 0xcafe4a11;
/** Where bpftool and every BPF tool look for pins; a pin directory under it gets a bpffs here. */
export const BPFFS_ROOT = '/sys/fs/bpf';

const log = logger('bpffs');

/** Whether dir (or, if it does not exist yet, its nearest existing parent) is on a bpffs. */
export function onBpffs(dir: string): boolean {
  let d = dir;
  while (!existsSync(d) && d !== path.dirname(d)) d = path.dirname(d);
  return Number(statfsSync(d).type) === BPF_FS_MAGIC;
}

/** Where a bpffs for dir goes: /sys/fs/bpf for anything under it, else dir itself. */
function mountPointFor(dir: string): string {
  return dir === BPFFS_ROOT || dir.startsWith(`${BPFFS_ROOT}/`) ? BPFFS_ROOT : dir;
}

function mountBpffs(target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('mount', ['-t', 'bpf', 'bpf', target], { timeout: 15_000, encoding: 'utf8' }, (err, _out, stderr) => {
      if (err) reject(new Error((stderr || err.message).replace(/\s+/g, ' ').trim()));
      else resolve();
    });
  });
}

/**
 * Makes dir a directory on a bpffs, mounting one (on /sys/fs/bpf, or on dir
 * itself outside /sys/fs/bpf) when it is not. Returns the mount point it
 * mounted, or null. Never mounts over a non-empty directory.
 */
export async function ensurePinDir(dir: string): Promise<string | null> {
  const pinDir = path.resolve(dir);
  let mounted: string | null = null;
  if (!onBpffs(pinDir)) {
    const target = mountPointFor(pinDir);
    const what = `pin directory ${pinDir} is not on a bpffs`;
    const hint = `run \`mount -t bpf bpf ${target}\` where mounting is allowed (on the host for a container), or pass --pin-dir on a bpffs`;
    try {
      mkdirSync(target, { recursive: true });
    } catch (e) {
      throw new XvsError('SYSTEM', `${what} and ${target} cannot be created (${(e as Error).message})`, { hint });
    }
    if (readdirSync(target).length > 0) {
      throw new XvsError('SYSTEM', `${what} and ${target} is not empty; not mounting a bpffs over it`, { hint });
    }
    try {
      await mountBpffs(target);
    } catch (e) {
      throw new XvsError('SYSTEM', `${what} and mounting one on ${target} failed: ${(e as Error).message}`, { hint });
    }
    mounted = target;
    // A mount made inside `ip netns exec` or a container ends with its mount namespace, and the pins with it.
    log.warn({ mountPoint: target, pinDir }, `mounted a bpf filesystem on ${target}; pins there last as long as this mount namespace`);
  }
  mkdirSync(pinDir, { recursive: true });
  return mounted;
}
