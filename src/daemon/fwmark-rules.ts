import type { FwmarkRule } from '../control/protocol.js';
import { XvsError } from '../errors.js';
import { FAMILY } from '../maps/abi.js';
import { addr16ToIp, ipToAddr16 } from '../maps/codec.js';
import * as C from '../maps/codecs.js';
import { checkIp, familyOf } from './addr.js';

// Fwmark rules (xvsadm --fwmark-rule): the model's list, its checks, and
// the dataplane's form of it. The dataplane looks the destination up once
// in an LPM trie (bpf/dataplane/fwmark.h), so each prefix's entry carries
// every rule a destination in it is to be tried against: its own in the
// order they were added, then those of each shorter prefix that covers it,
// longest first. The most specific prefix wins; in one prefix, the first
// rule added.

const PROTO_NUM = { tcp: 6, udp: 17 } as const;
/** xvs_fwmark_key.prefixlen counts the family byte and its padding before the address. */
const KEY_BITS = 32;

const bitsOf = (addr: string): number => (familyOf(addr) === FAMILY.inet6 ? 128 : 32);

/** The rule as the director keeps it: the prefix's network address, host bits cleared (as iptables does). */
export function canonicalRule(r: FwmarkRule): FwmarkRule {
  const addr = checkIp(r.addr, 'fwmark rule destination');
  if (!Number.isInteger(r.len) || r.len < 0 || r.len > bitsOf(addr)) {
    throw new XvsError('BAD_ARGUMENT', `fwmark rule prefix length ${r.len} is not 0..${bitsOf(addr)}`);
  }
  const { family, bytes } = ipToAddr16(addr);
  // 0:65535 is no port match at all: one rule, one form.
  const dport = r.dport && (r.dport[0] !== 0 || r.dport[1] !== 65535) ? r.dport : undefined;
  for (let bit = r.len; bit < 128; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return {
    mark: r.mark, addr: addr16ToIp(bytes, family), len: r.len,
    ...(r.proto ? { proto: r.proto } : {}), ...(dport ? { dport: [dport[0], dport[1]] as [number, number] } : {}),
  };
}

/** "198.51.100.0/24 tcp 80:90" (the matches), for messages and identity. */
export function ruleMatches(r: FwmarkRule): string {
  return `${r.addr}/${r.len}${r.proto ? ` ${r.proto}` : ''}${r.dport ? ` ${r.dport[0]}:${r.dport[1]}` : ''}`;
}

export const ruleName = (r: FwmarkRule): string => `fwmark rule ${r.mark} ${ruleMatches(r)}`;

const prefixOf = (r: FwmarkRule): string => `${r.addr}/${r.len}`;

/** Whether the prefix a/alen covers the prefix b/blen (same family, alen <= blen, b's first alen bits are a's). */
function covers(a: FwmarkRule, b: FwmarkRule): boolean {
  if (familyOf(a.addr) !== familyOf(b.addr) || a.len > b.len) return false;
  const x = ipToAddr16(a.addr).bytes;
  const y = ipToAddr16(b.addr).bytes;
  for (let bit = 0; bit < a.len; bit++) {
    const m = 0x80 >> (bit & 7);
    if ((x[bit >> 3]! & m) !== (y[bit >> 3]! & m)) return false;
  }
  return true;
}

/** One entry of xvs_fwmark_rules, by prefix ("addr/len"). */
export interface FwmarkEntry {
  key: C.FwmarkKey;
  value: C.FwmarkRules;
}

function ruleEntry(r: FwmarkRule): C.FwmarkRule {
  return { mark: r.mark, dport_min: r.dport?.[0] ?? 0, dport_max: r.dport?.[1] ?? 65535, proto: r.proto ? PROTO_NUM[r.proto] : 0 };
}

const EMPTY_RULE: C.FwmarkRule = { mark: 0, dport_min: 0, dport_max: 0, proto: 0 };

/**
 * The trie's entries for these rules: one per prefix, each with its own
 * rules and then the covering prefixes' (longest first). CAPACITY when a
 * prefix would have more than XVS_FWMARK_RULES_MAX to try, or there are
 * more prefixes than the trie holds.
 */
export function compileFwmarkRules(rules: readonly FwmarkRule[], maxPrefixes: number): Map<string, FwmarkEntry> {
  const byPrefix = new Map<string, FwmarkRule[]>();
  for (const r of rules) byPrefix.set(prefixOf(r), [...(byPrefix.get(prefixOf(r)) ?? []), r]);
  if (byPrefix.size > maxPrefixes) throw new XvsError('CAPACITY', `at most ${maxPrefixes} destination prefixes in fwmark rules`);
  const prefixes = [...byPrefix.values()].map((list) => list[0]!);
  const out = new Map<string, FwmarkEntry>();
  for (const [name, own] of byPrefix) {
    const p = own[0]!;
    const shorter = prefixes.filter((q) => q !== p && covers(q, p)).sort((a, b) => b.len - a.len);
    const tried = [...own, ...shorter.flatMap((q) => byPrefix.get(prefixOf(q))!)];
    if (tried.length > C.FWMARK_RULES_MAX) {
      throw new XvsError('CAPACITY', `a destination in ${name} would be tried against ${tried.length} fwmark rules (its prefix's and the shorter ones covering it), at most ${C.FWMARK_RULES_MAX}`);
    }
    out.set(name, {
      key: { prefixlen: KEY_BITS + p.len, family: familyOf(p.addr), addr: p.addr },
      value: {
        count: tried.length, own: own.length,
        rules: [...tried.map(ruleEntry), ...new Array<C.FwmarkRule>(C.FWMARK_RULES_MAX - tried.length).fill(EMPTY_RULE)],
      },
    });
  }
  return out;
}

/** The rules an entry holds as its own (a restart reads them back from the pinned trie). */
export function rulesOfEntry(e: FwmarkEntry): FwmarkRule[] {
  const protoName = (n: number) => (n === PROTO_NUM.udp ? 'udp' : 'tcp');
  return e.value.rules.slice(0, e.value.own).map((x) => ({
    mark: x.mark, addr: e.key.addr, len: e.key.prefixlen - KEY_BITS,
    ...(x.proto ? { proto: protoName(x.proto) } : {}),
    ...(x.dport_min !== 0 || x.dport_max !== 65535 ? { dport: [x.dport_min, x.dport_max] as [number, number] } : {}),
  }));
}

/**
 * The order listings and -S show: by family, prefix address, length, then
 * as added within a prefix (the order they are tried in there). The same
 * for a restarted director, which knows no order across prefixes.
 */
export function sortedRules(rules: readonly FwmarkRule[]): FwmarkRule[] {
  const keyOf = (r: FwmarkRule) => ipToAddr16(r.addr);
  return [...rules].sort((a, b) => {
    const ka = keyOf(a);
    const kb = keyOf(b);
    return ka.family - kb.family || Buffer.compare(ka.bytes, kb.bytes) || a.len - b.len;
  });
}

const sameMatches = (a: FwmarkRule, b: FwmarkRule): boolean => ruleMatches(a) === ruleMatches(b);

/** A new rule; one with the same matches, whatever its mark, would never be reached. */
export function addFwmarkRule(rules: readonly FwmarkRule[], rule: FwmarkRule, maxPrefixes: number): FwmarkRule[] {
  const r = canonicalRule(rule);
  const dup = rules.find((x) => sameMatches(x, r));
  if (dup) {
    throw new XvsError('FWMARK_RULE_EXISTS', dup.mark === r.mark
      ? `${ruleName(r)} already exists`
      : `${ruleName(dup)} already matches ${ruleMatches(r)}: a second rule there would never be reached`);
  }
  const next = [...rules, r];
  compileFwmarkRules(next, maxPrefixes);
  return next;
}

export function delFwmarkRule(rules: readonly FwmarkRule[], rule: FwmarkRule): FwmarkRule[] {
  const r = canonicalRule(rule);
  const i = rules.findIndex((x) => sameMatches(x, r) && x.mark === r.mark);
  if (i < 0) throw new XvsError('NO_FWMARK_RULE', `no ${ruleName(r)}`);
  return rules.filter((_, j) => j !== i);
}
