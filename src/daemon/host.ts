import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { XvsError } from '../errors.js';
import { onBpffs } from '../sys/bpffs.js';

/** The pin directory must sit on a bpffs, or pins vanish or fail. */
export function checkPinDir(dir: string): void {
  if (!onBpffs(dir)) {
    throw new XvsError('SYSTEM', `pin directory ${dir} is not on a bpffs`, {
      hint: `mount one (mount -t bpf bpf ${path.dirname(dir)}) or pass --pin-dir on a bpffs; inside 'ip netns exec' /sys/fs/bpf is not mounted`,
    });
  }
}

/**
 * bpf_fib_lookup in the ingress direction answers FWD_DISABLED unless the
 * interface forwards, so the director turns IPv4 forwarding on for its own
 * interface (not globally). Returns the previous value.
 */
export function enableForwarding(ifname: string): string {
  const p = `/proc/sys/net/ipv4/conf/${ifname}/forwarding`;
  const prev = readFileSync(p, 'utf8').trim();
  if (prev !== '1') writeFileSync(p, '1');
  return prev;
}
