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
