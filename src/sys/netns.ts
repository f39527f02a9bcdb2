import { statSync } from 'node:fs';

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
