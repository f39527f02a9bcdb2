// CPU placement for the live chains. Test runs execute on the calling
// thread, so pinning Node's main thread pins the generator; a threaded NAPI
// instance is a kernel thread named napi/<dev>-<id>.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export const CPUS = availableParallelism();

function taskset(list: string, tid: number): void {
  execFileSync('taskset', ['-p', '-c', list, String(tid)], { stdio: 'ignore' });
}

/** Only the main thread (its tid is the pid): libuv's pool keeps every CPU. */
export function pinMainThread(cpu: number | 'all'): void {
  taskset(cpu === 'all' ? `0-${CPUS - 1}` : String(cpu), process.pid);
}

export function napiThreads(dev: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').startsWith(`napi/${dev}-`)) out.push(Number(d));
    } catch { /* exited meanwhile */ }
  }
  return out;
}

/** Pins dev's NAPI threads; false when there are none (NAPI not threaded). */
export function pinNapi(dev: string, cpu: number): boolean {
  const tids = napiThreads(dev);
  for (const t of tids) taskset(String(cpu), t);
  return tids.length > 0;
}

/**
 * dev's NAPI threads at a real-time priority: they run as soon as they have
 * frames, ahead of the generator on the same core, so their queue does not
 * overflow back onto the sender.
 */
export function realtimeNapi(dev: string): void {
  for (const t of napiThreads(dev)) execFileSync('chrt', ['-f', '-p', '1', String(t)], { stdio: 'ignore' });
}

/** Share of per-CPU counts by CPU, e.g. {0: 1} when everything ran on CPU 0. */
export function cpuShares(perCpu: readonly number[]): Record<number, number> {
  const total = perCpu.reduce((a, x) => a + x, 0);
  const out: Record<number, number> = {};
  perCpu.forEach((x, i) => { if (x > 0) out[i] = Math.round((x / total) * 1000) / 1000; });
  return out;
}

/** /proc/TID/schedstat: time on a CPU, time waiting for one, and how often it ran (ns, ns, count). */
export interface ThreadTime { runNs: number; waitNs: number; runs: number }

export function threadTime(tid: number): ThreadTime {
  const [run, wait, runs] = readFileSync(`/proc/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
  return { runNs: run ?? NaN, waitNs: wait ?? NaN, runs: runs ?? NaN };
}
