// Running code inside a named network namespace (/run/netns/NAME, as `ip
// netns add` makes them) by moving the main JS thread there with setns(2).
// setns changes only the calling thread: synchronous syscalls made from the
// main thread (koffi calls such as BPF_PROG_TEST_RUN, if_nametoindex, netlink
// through libbpf, sockets created meanwhile, child processes spawned
// meanwhile) see the namespace; libuv's thread pool (async fs, dns) and
// worker threads do not.
import { XvsError } from '../errors.js';
import * as lb from './libbpf.js';

const CLONE_NEWNET = 0x40000000;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;

function openNs(path: string): number {
  const fd = lb.open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) throw new XvsError('SYSTEM', `cannot open network namespace ${path}: ${lb.strerror(lb.errno())}`);
  return fd;
}

function enter(fd: number, what: string): void {
  if (lb.setns(fd, CLONE_NEWNET) < 0) throw new XvsError('SYSTEM', `setns into ${what} failed: ${lb.strerror(lb.errno())}`);
}

/** Enters the namespace; the returned function goes back (and must be called once). */
function switchTo(name: string): () => void {
  // thread-self, not self: the namespace of this thread is the one to restore.
  const orig = openNs('/proc/thread-self/ns/net');
  let target = -1;
  try {
    target = openNs(`/run/netns/${name}`);
    enter(target, `network namespace ${name}`);
  } catch (e) {
    lb.close(orig);
    throw e;
  } finally {
    if (target >= 0) lb.close(target);
  }
  return () => {
    try {
      enter(orig, 'the original network namespace');
    } finally {
      lb.close(orig);
    }
  };
}

export function withNetns<T>(name: string, fn: () => T): T {
  const back = switchTo(name);
  try {
    return fn();
  } finally {
    back();
  }
}

let asyncActive: string | null = null;

/**
 * Holds the switch across an awaited fn. Everything the main thread runs
 * until fn settles is inside the namespace, including unrelated callbacks the
 * event loop interleaves; only synchronous main-thread syscalls see it (see
 * the top of this file). Two of these cannot overlap, since each would
 * restore the other's namespace.
 */
export async function withNetnsAsync<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (asyncActive !== null) {
    throw new XvsError('SYSTEM', `withNetnsAsync(${name}) while already inside ${asyncActive}`);
  }
  const back = switchTo(name);
  asyncActive = name;
  try {
    return await fn();
  } finally {
    asyncActive = null;
    back();
  }
}
