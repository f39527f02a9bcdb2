import { writeFileSync, readFileSync } from 'node:fs';

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
