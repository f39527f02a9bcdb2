// ipvsadm -b/--sched-flags: IPVS keeps three scheduler flag bits per service
// (IP_VS_SVC_F_SCHED1..3), and sh and mh give the first two a meaning and a
// name. The one place that knows the bits, their names and what they do.

import { XvsError } from '../errors.js';
import { SVC_F } from '../maps/abi.js';

/** ServiceSpec.schedFlags bits: ipvsadm's flag-1, flag-2, flag-3. */
export const SCHED_FLAG = { 'flag-1': 1, 'flag-2': 2, 'flag-3': 4 } as const;
export const SCHED_FLAGS_MASK = 7;

/**
 * What sh and mh call flag-1 and flag-2 (IP_VS_SVC_F_SCHED_{SH,MH}_*):
 * *-fallback sends a client whose hashed real server is unavailable (weight
 * 0 or overloaded) to another one instead of refusing it; *-port hashes the
 * client's source port with its address.
 */
const NAMED = {
  sh: { 'sh-fallback': SCHED_FLAG['flag-1'], 'sh-port': SCHED_FLAG['flag-2'] },
  mh: { 'mh-fallback': SCHED_FLAG['flag-1'], 'mh-port': SCHED_FLAG['flag-2'] },
} as const;

const FALLBACK = SCHED_FLAG['flag-1'];
const PORT = SCHED_FLAG['flag-2'];
const named = (sched: string): sched is keyof typeof NAMED => sched === 'sh' || sched === 'mh';

/**
 * ipvsadm's parse_sched_flags: a comma list of flag-N and the sh/mh names,
 * each name only with its scheduler (`sched`: the -s given, or the default).
 * Refusals in ipvsadm's words (its fail(2, ...)).
 */
export function parseSchedFlags(sched: string, text: string): number {
  let bits = 0;
  for (const flag of text.split(',').filter((f) => f !== '')) {
    if (Object.hasOwn(SCHED_FLAG, flag)) {
      bits |= SCHED_FLAG[flag as keyof typeof SCHED_FLAG];
      continue;
    }
    const owner = (['sh', 'mh'] as const).find((s) => Object.hasOwn(NAMED[s], flag));
    if (owner === undefined) throw new XvsError('BAD_ARGUMENT', `invalid scheduler flag \`${flag}'`);
    if (sched !== owner) throw new XvsError('BAD_ARGUMENT', `incompatible scheduler flag \`${flag}'`);
    bits |= (NAMED[owner] as Record<string, number>)[flag]!;
  }
  return bits;
}

/**
 * ipvsadm's print_sched_flags: sh and mh name their two bits (and print
 * nothing for flag-3), every other scheduler prints flag-N. '' for none;
 * a caller that prints " (...)" or " -b ..." does so whenever some bit is
 * set, as ipvsadm does, so sh with flag-3 alone lists as "sh ()".
 */
export function formatSchedFlags(sched: string, bits: number): string {
  const names = named(sched)
    ? Object.entries(NAMED[sched]).filter(([, b]) => bits & b).map(([n]) => n)
    : Object.entries(SCHED_FLAG).filter(([, b]) => bits & b).map(([n]) => n);
  return names.join(',');
}

/** sh-fallback / mh-fallback. */
export const fallsBack = (sched: string, bits: number): boolean => named(sched) && (bits & FALLBACK) !== 0;

/** sh-port / mh-port: the dataplane's lookup hashes the source port too. */
export const hashesPort = (sched: string, bits: number): boolean => named(sched) && (bits & PORT) !== 0;

/** xvs_svc.flags bits for these flags, and back. */
export function svcFlagBits(bits: number): number {
  return (bits & 1 ? SVC_F.sched1 : 0) | (bits & 2 ? SVC_F.sched2 : 0) | (bits & 4 ? SVC_F.sched3 : 0);
}

export function schedFlagsOfSvc(flags: number): number {
  return (flags & SVC_F.sched1 ? 1 : 0) | (flags & SVC_F.sched2 ? 2 : 0) | (flags & SVC_F.sched3 ? 4 : 0);
}
