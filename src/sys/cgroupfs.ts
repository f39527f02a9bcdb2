// The cgroup v2 hierarchy, where cgroup programs attach. Its mount point
// varies: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a
// hybrid one, and none at all under `ip netns exec` (a fresh /sys per run)
// or in many containers. A cgroup is therefore named as /proc/PID/cgroup
// names it ("/" for the root, "/system.slice/nginx.service"), relative to
// the hierarchy, and found under whatever mount this mount namespace has;
// when it has none, one is mounted on /sys/fs/cgroup, as bpffs.ts does for
// pins. Every cgroup v2 mount shows the same hierarchy (within the cgroup
// namespace), so such a mount changes nothing but visibility.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { XvsError } from '../errors.js';
import { logger } from '../log.js';

const CGROUP2_SUPER_MAGIC = 0x63677270;
/** Where a missing cgroup v2 hierarchy is mounted. */
export const CGROUP2_MOUNT_POINT = '/sys/fs/cgroup';

const log = logger('cgroupfs');

// mountinfo escapes space, tab, newline and backslash as \ooo.
const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The mount point of the cgroup v2 hierarchy's root in this mount namespace, or null. */
export function cgroup2Root(): string | null {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post || post.split(' ')[0] !== 'cgroup2') continue;
    const f = pre.split(' ');
    if (f[3] === '/' && f[4]) return unescape(f[4]);
  }
  return null;
}

function mountCgroup2(target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('mount', ['-t', 'cgroup2', 'cgroup2', target], { timeout: 15_000, encoding: 'utf8' }, (err, _out, stderr) => {
      if (err) reject(new Error((stderr || err.message).replace(/\s+/g, ' ').trim()));
      else resolve();
    });
  });
}

/**
 * The mount point of the cgroup v2 hierarchy, mounting it on /sys/fs/cgroup
 * when this mount namespace has none; `mounted` says whether it did.
 */
export async function ensureCgroup2(): Promise<{ root: string; mounted: boolean }> {
  const found = cgroup2Root();
  if (found) return { root: found, mounted: false };
  const target = CGROUP2_MOUNT_POINT;
  const what = 'no cgroup v2 hierarchy is mounted';
  const hint = `run \`mount -t cgroup2 cgroup2 DIR\` on an empty directory (on the host for a container), then try again`;
  if (!existsSync(target) || !statSync(target).isDirectory()) throw new XvsError('SYSTEM', `${what} and ${target} is not a directory`, { hint });
  if (readdirSync(target).length > 0) throw new XvsError('SYSTEM', `${what} and ${target} is not empty; not mounting over it`, { hint });
  try {
    await mountCgroup2(target);
  } catch (e) {
    throw new XvsError('SYSTEM', `${what} and mounting one on ${target} failed: ${(e as Error).message}`, { hint });
  }
  // Under `ip netns exec` or in a container the mount ends with the mount namespace; attachments stay with the cgroup.
  log.warn({ mountPoint: target }, `mounted the cgroup v2 hierarchy on ${target}`);
  return { root: target, mounted: true };
}

/** "/", "/a/b": absolute, no empty, "." or ".." segments, no trailing slash. */
export function checkCgroupPath(p: string): string {
  const segs = p.split('/').slice(1);
  const ok = p.startsWith('/') && (p === '/' || segs.every((s) => s !== '' && s !== '.' && s !== '..'));
  if (!ok) {
    throw new XvsError('BAD_ARGUMENT', `cgroup "${p}" is not a cgroup path`,
      { hint: 'name it as /proc/PID/cgroup does: / for the root, /system.slice/nginx.service' });
  }
  return p;
}

/** The directory of a cgroup under the hierarchy mounted at root; it must exist. */
export function cgroupDir(root: string, cgroup: string): string {
  const dir = path.join(root, checkCgroupPath(cgroup));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new XvsError('BAD_ARGUMENT', `cgroup ${cgroup} does not exist (no directory ${dir})`,
      { hint: 'the cgroup of a service is in /proc/PID/cgroup (the 0:: line)' });
  }
  if (Number(statfsSync(dir).type) !== CGROUP2_SUPER_MAGIC) throw new XvsError('SYSTEM', `${dir} is not on a cgroup v2 hierarchy`);
  return dir;
}

/** The cgroup's id, the inode of its directory: a cgroup removed and made again under the same name has a new one. */
export function cgroupId(dir: string): number {
  return Number(statSync(dir).ino);
}
