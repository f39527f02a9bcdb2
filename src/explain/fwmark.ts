import type * as C from '../maps/codecs.js';
import type { TypedMap } from '../maps/map.js';

// The mark fwmark.h's xvs_fwmark_of gives a packet, read the same way: the
// trie's own longest-prefix lookup, then the first rule of that prefix's
// list the packet matches.

const PROTO_NAME: Record<number, string> = { 6: 'tcp', 17: 'udp' };

export interface FwmarkMatch {
  mark: number;
  /** The rule that gave it, in xvsadm's words: "tcp 80:90", "any protocol, any port". */
  rule: string;
}

export function fwmarkOf(rules: TypedMap<C.FwmarkKey, C.FwmarkRules>, family: number, daddr: string, proto: number, dport: number): FwmarkMatch | undefined {
  const v = rules.get({ prefixlen: 32 + 128, family, addr: daddr });
  if (!v) return undefined;
  const r = v.rules.slice(0, v.count).find((x) => (x.proto === 0 || x.proto === proto) && dport >= x.dport_min && dport <= x.dport_max);
  if (!r) return undefined;
  const ports = r.dport_min === 0 && r.dport_max === 65535 ? 'any port' : `port ${r.dport_min}${r.dport_max !== r.dport_min ? `:${r.dport_max}` : ''}`;
  return { mark: r.mark, rule: `${r.proto ? PROTO_NAME[r.proto] ?? `protocol ${r.proto}` : 'any protocol'}, ${ports}` };
}
