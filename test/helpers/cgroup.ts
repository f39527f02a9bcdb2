// Cgroups for tests: one per test file under the cgroup v2 root, named for
// this process so a later run can remove what a crashed one left.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { cgroup2Root } from '../../src/sys/cgroupfs.js';

const PREFIX = 'xvs-test-';

export interface TestCgroup {
  /** As /proc/PID/cgroup names it. */
  path: string;
  dir: string;
  /** Removes it once empty, killing what still runs in it. */
  remove(): Promise<void>;
}

function root(): string {
  const r = cgroup2Root();
  if (!r) throw new Error('no cgroup v2 hierarchy is mounted');
  return r;
}

function pids(dir: string): number[] {
  try {
    return readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function removeDir(dir: string): Promise<void> {
  for (let i = 0; i < 100 && existsSync(dir); i++) {
    for (const pid of pids(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    try {
      rmdirSync(dir);
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  if (existsSync(dir)) throw new Error(`cgroup ${dir} could not be removed`);
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Removes test cgroups whose process is gone (with them, any program attached there). */
export async function sweepStaleCgroups(): Promise<void> {
  const r = root();
  for (const d of readdirSync(r)) {
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(d);
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) await removeDir(path.join(r, d));
  }
}

export function testCgroup(tag: string): TestCgroup {
  const name = `${PREFIX}${process.pid}-${tag}`;
  const dir = path.join(root(), name);
  mkdirSync(dir, { recursive: true });
  return { path: `/${name}`, dir, remove: () => removeDir(dir) };
}
