import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/** What enableForwarding found on an interface, to put back. */
export interface SavedForwarding {
  ifname: string;
  ipv4: string;
  /** null: the interface has no IPv6. */
  ipv6: { forwarding: string; acceptRa: string } | null;
}

const v4 = (ifname: string): string => `/proc/sys/net/ipv4/conf/${ifname}`;
const v6 = (ifname: string): string => `/proc/sys/net/ipv6/conf/${ifname}`;
const read = (p: string): string => readFileSync(p, 'utf8').trim();

/**
 * bpf_fib_lookup in the ingress direction answers FWD_DISABLED unless the
 * interface forwards, for IPv4 and for IPv6 alike, so the director turns
 * forwarding on for its own interfaces (not globally). An IPv6 interface that
 * forwards ignores router advertisements unless accept_ra is 2, so an
 * accept_ra of 1 (the default: take them when not forwarding) becomes 2 and
 * the director keeps the default route SLAAC gave it.
 */
export function enableForwarding(ifname: string): SavedForwarding {
  const ipv4 = read(`${v4(ifname)}/forwarding`);
  if (ipv4 !== '1') writeFileSync(`${v4(ifname)}/forwarding`, '1');
  let ipv6: SavedForwarding['ipv6'] = null;
  const dir = v6(ifname);
  if (existsSync(dir) && read(`${dir}/disable_ipv6`) !== '1') {
    ipv6 = { forwarding: read(`${dir}/forwarding`), acceptRa: read(`${dir}/accept_ra`) };
    if (ipv6.acceptRa === '1') writeFileSync(`${dir}/accept_ra`, '2');
    if (ipv6.forwarding !== '1') writeFileSync(`${dir}/forwarding`, '1');
  }
  return { ifname, ipv4, ipv6 };
}

/** Puts back what enableForwarding found (a start that failed changes nothing). */
export function restoreForwarding(s: SavedForwarding): void {
  writeFileSync(`${v4(s.ifname)}/forwarding`, s.ipv4);
  if (s.ipv6) {
    writeFileSync(`${v6(s.ifname)}/forwarding`, s.ipv6.forwarding);
    writeFileSync(`${v6(s.ifname)}/accept_ra`, s.ipv6.acceptRa);
  }
}
