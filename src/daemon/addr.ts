import { isIPv4, isIPv6 } from 'node:net';
import { XvsError } from '../errors.js';
import { FAMILY } from '../maps/abi.js';
import { addr16ToIp, ipToAddr16 } from '../maps/codec.js';

/** An IPv4 or IPv6 address in the one text form the maps give back (IPv6 compressed, RFC 5952). */
export function checkIp(addr: string, what: string): string {
  if (isIPv4(addr)) return addr;
  if (isIPv6(addr) && !addr.includes('%')) return addr16ToIp(ipToAddr16(addr).bytes, FAMILY.inet6);
  throw new XvsError('BAD_ADDRESS', `${what} ${addr} is not an IP address`);
}

export function familyOf(addr: string): (typeof FAMILY)[keyof typeof FAMILY] {
  return isIPv6(addr) ? FAMILY.inet6 : FAMILY.inet;
}
