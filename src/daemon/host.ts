import { existsSync, readFileSync, writeFileSync } from 'node:fs';

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

/**
 * The same for IPv6, whose FIB lookup from XDP asks the interface's own
 * forwarding flag: on for the director's interface when it has IPv6. An
 * interface that forwards ignores router advertisements unless accept_ra is
 * 2, so an accept_ra of 1 (the default: take them when not forwarding)
 * becomes 2 and the director keeps the default route SLAAC gave it.
 * Returns the previous values, or null when the interface has no IPv6.
 */
export function enableForwarding6(ifname: string): { forwarding: string; acceptRa: string } | null {
  const dir = `/proc/sys/net/ipv6/conf/${ifname}`;
  if (!existsSync(dir) || readFileSync(`${dir}/disable_ipv6`, 'utf8').trim() === '1') return null;
  const forwarding = readFileSync(`${dir}/forwarding`, 'utf8').trim();
  const acceptRa = readFileSync(`${dir}/accept_ra`, 'utf8').trim();
  if (acceptRa === '1') writeFileSync(`${dir}/accept_ra`, '2');
  if (forwarding !== '1') writeFileSync(`${dir}/forwarding`, '1');
  return { forwarding, acceptRa };
}
