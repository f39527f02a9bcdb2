import { statSync } from 'node:fs';
import { XvsError } from '../errors.js';
import * as lb from '../loader/libbpf.js';

/**
 * The network namespace of the calling thread, as the inode of its nsfs file:
 * the number `readlink /proc/self/ns/net`, `lsns -t net` and
 * `stat -L -c %i /run/netns/NAME` show. It names the namespace for as long as
 * the namespace lives, however it is entered (`ip netns exec`, nsenter, a
 * container); the kernel may give it to a new namespace once this one is gone.
 * thread-self, because setns moves one thread (see loader/netns.ts).
 */
export function netnsInode(): number {
  return Number(statSync('/proc/thread-self/ns/net').ino);
}

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_NETNS_COOKIE = 71;

/**
 * The calling thread's network namespace as the kernel's cookie: what
 * bpf_get_netns_cookie() returns in a program for a socket of this
 * namespace. Unlike the inode, a cookie is never given to another
 * namespace. Read from a socket made for the purpose (SO_NETNS_COOKIE,
 * Linux 5.14); made on this thread, so it follows setns (loader/netns.ts).
 */
export function netnsCookie(): bigint {
  const fd = lb.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new XvsError('SYSTEM', `socket(AF_UNIX): ${lb.strerror(lb.errno())}`);
  try {
    const v = Buffer.alloc(8);
    const len: [number] = [8];
    if (lb.getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, v, len) < 0) {
      throw new XvsError('SYSTEM', `getsockopt(SO_NETNS_COOKIE): ${lb.strerror(lb.errno())}`, { hint: 'the kernel needs Linux 5.14 or later' });
    }
    return v.readBigUInt64LE(0);
  } finally {
    lb.close(fd);
  }
}
