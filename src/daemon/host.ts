import { writeFileSync, readFileSync } from 'node:fs';

const forwardingPath = (ifname: string): string => `/proc/sys/net/ipv4/conf/${ifname}/forwarding`;

/**
 * bpf_fib_lookup in the ingress direction answers FWD_DISABLED unless the
 * interface forwards, so the director turns IPv4 forwarding on for its own
 * interfaces (not globally). Returns the previous value.
 */
export function enableForwarding(ifname: string): string {
  const prev = readFileSync(forwardingPath(ifname), 'utf8').trim();
  if (prev !== '1') writeFileSync(forwardingPath(ifname), '1');
  return prev;
}

/** Puts back what enableForwarding found (a start that failed changes nothing). */
export function restoreForwarding(ifname: string, prev: string): void {
  writeFileSync(forwardingPath(ifname), prev);
}
