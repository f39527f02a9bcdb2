// IPVS's connection thresholds (ipvsadm -x/-y), decided from the total of
// active and inactive connections, as ip_vs_bind_dest/ip_vs_unbind_dest do:
// a real server over its upper threshold takes no new connections until it
// falls to its lower threshold, or, with no lower threshold, below 3/4 of
// the upper one.
export function nextOverload(overloaded: boolean, total: number, upper: number, lower: number): boolean {
  if (upper === 0) return false;
  if (total >= upper) return true;
  if (!overloaded) return false;
  if (lower > 0) return total >= lower;
  return total * 4 >= upper * 3;
}

/** A dotted IPv4 netmask as a number; contiguous masks only. */
export function parseNetmask(mask: string): number | undefined {
  const parts = mask.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return undefined;
  const n = parts.reduce((a, p) => ((a << 8) | Number(p)) >>> 0, 0);
  const inv = ~n >>> 0;
  return (inv & (inv + 1)) === 0 ? n : undefined;
}

export function netmaskString(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
}
