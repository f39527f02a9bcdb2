import { isIPv4, isIPv6 } from 'node:net';
import { XvsError } from '../errors.js';

/** The IPv4 address a service or real server may use today. */
export function checkIpv4(addr: string, what: string): string {
  if (isIPv4(addr)) return addr;
  if (isIPv6(addr)) throw new XvsError('UNSUPPORTED', `${what} ${addr}: IPv6 services are not supported yet`);
  throw new XvsError('BAD_ADDRESS', `${what} ${addr} is not an IP address`);
}
