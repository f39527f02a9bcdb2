import { isIPv4 } from 'node:net';
import { ipToAddr16 } from '../maps/codec.js';

// The order and the address text of ipvsadm 1.31's listing, as its C code
// produces them, quirks included, so that a listing of both families is
// byte for byte what ipvsadm prints:
// - libipvs's ipvs_cmp_services orders by family (AF_INET 2 before AF_INET6
//   10), then protocol, then address, then port; ipvs_cmp_dests by address
//   and port only, reading as many words as the first entry's family has.
// - Addresses compare word by word as `int r = ntohl(a) - ntohl(b)`: an
//   unsigned difference read as a signed int, so two words 2^31 or more
//   apart compare the wrong way round (ipvsadm lists 192.0.2.80 before
//   10.0.0.1), and the order is not transitive.
// - Because it is not, the order of a listing depends on the sorting
//   algorithm too: glibc's qsort, a top-down merge sort (msort.c).
// - Addresses print as glibc's inet_ntop writes them: IPv6 with the longest
//   run of two or more zero words as "::" (the first on a tie), and an
//   IPv4-compatible or -mapped address with a dotted tail.

/** An address as libipvs sees it: four host-order words, IPv4 in the first. */
function words(addr: string): number[] {
  const b = ipToAddr16(addr).bytes;
  return [0, 4, 8, 12].map((o) => b.readUInt32BE(o));
}

const AF_INET = 2;
const AF_INET6 = 10;

export const afOf = (addr: string): number => (isIPv4(addr) ? AF_INET : AF_INET6);

/** `r = ntohl(a[i]) - ntohl(b[i])` over the words of a's family, as libipvs. */
export function compareAddr(a: string, b: string): number {
  const wa = words(a);
  const wb = words(b);
  const n = afOf(a) === AF_INET6 ? 4 : 1;
  for (let i = 0; i < n; i++) {
    const r = (wa[i]! - wb[i]!) | 0;
    if (r !== 0) return r;
  }
  return 0;
}

/** glibc's qsort (msort_with_tmp): halves sorted in turn, merged taking the left one while cmp <= 0. */
export function ipvsSort<T>(items: readonly T[], cmp: (a: T, b: T) => number): T[] {
  if (items.length <= 1) return [...items];
  const n1 = items.length >> 1;
  const left = ipvsSort(items.slice(0, n1), cmp);
  const right = ipvsSort(items.slice(n1), cmp);
  const out: T[] = [];
  let i = 0;
  let j = 0;
  while (i < left.length && j < right.length) out.push(cmp(left[i]!, right[j]!) <= 0 ? left[i++]! : right[j++]!);
  return out.concat(left.slice(i), right.slice(j));
}

/** glibc's inet_ntop. */
export function ntop(addr: string): string {
  if (isIPv4(addr)) return addr;
  const b = ipToAddr16(addr).bytes;
  const w = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let base = -1;
  let len = 0;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > len) { base = i; len = j - i; }
    i = j > i ? j : i + 1;
  }
  if (len < 2) base = -1;
  const dotted = `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  if (base === 0 && (len === 6 || (len === 5 && w[5] === 0xffff))) return `::${len === 5 ? 'ffff:' : ''}${dotted}`;
  const hex = (from: number, to: number): string => w.slice(from, to).map((x) => x.toString(16)).join(':');
  return base < 0 ? hex(0, 8) : `${hex(0, base)}::${hex(base + len, 8)}`;
}

/** addrport_to_anyname with -n: IPv6 in brackets. */
export function addrPort(addr: string, port: number): string {
  return isIPv4(addr) ? `${addr}:${port}` : `[${ntop(addr)}]:${port}`;
}
