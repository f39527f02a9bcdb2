import { isIPv6 } from 'node:net';
import { MAX_FWMARK, type FwmarkRule, type Proto } from '../control/protocol.js';
import { XvsError } from '../errors.js';
import { inetAton } from './names.js';
import { popt, type PoptOption } from './popt.js';

// xvsadm's fwmark rules, which ipvsadm has no grammar for: the mark a packet
// gets from its destination prefix, protocol and destination port, in
// place of an iptables `-t mangle ... -j MARK --set-mark N` rule (XDP runs
// before netfilter). The command comes first, as in ipvsadm; its options
// read as iptables' do (-d, -p, --dport), and their refusals use
// iptables' words where it has some, ipvsadm's otherwise (exit 2, or 255
// for what popt cannot read):
//
//   xvsadm --fwmark-rule MARK -d PREFIX [-p tcp|udp [--dport PORT[:PORT]]]
//   xvsadm --del-fwmark-rule MARK -d PREFIX [-p tcp|udp [--dport PORT[:PORT]]]
//   xvsadm --list-fwmark-rules [MARK]
//
// After these commands -d is the destination (not --delete-server) and -p
// the protocol (not --persistent), as the command decides -b's meaning.

export type FwmarkCommand =
  | { op: 'add-fwmark-rule' | 'del-fwmark-rule'; rule: FwmarkRule }
  | { op: 'list-fwmark-rules'; mark?: number };

const OPTIONS: readonly PoptOption[] = [
  { long: 'fwmark-rule', arg: 'required', tag: 'add' },
  { long: 'add-fwmark-rule', arg: 'required', tag: 'add' },
  { long: 'del-fwmark-rule', arg: 'required', tag: 'del' },
  { long: 'list-fwmark-rules', arg: 'none', tag: 'list' },
  { long: 'dest', short: 'd', arg: 'required', tag: 'd' },
  { long: 'protocol', short: 'p', arg: 'required', tag: 'p' },
  { long: 'dport', arg: 'required', tag: 'dport' },
];

const COMMAND_NAMES: Record<string, string> = { add: 'fwmark-rule', del: 'del-fwmark-rule', list: 'list-fwmark-rules' };
const OPTION_NAMES: Record<string, string> = { d: 'dest', p: 'protocol', dport: 'dport' };

/** Whether argv's command is a fwmark-rule command (ipvsadm's rule: the command comes first). */
export function isFwmarkCommand(argv: readonly string[]): boolean {
  const name = /^--([a-z-]+)/.exec(argv[0] ?? '')?.[1];
  return name !== undefined && Object.values(COMMAND_NAMES).concat('add-fwmark-rule').includes(name);
}

function fail(message: string, hint?: string): never {
  throw new XvsError('BAD_ARGUMENT', message, hint === undefined ? {} : { hint });
}

/** ipvsadm's parse_fwmark: 1..0xffffffff in decimal. */
function parseMark(text: string): number {
  const m = /^[+]?\d+$/.test(text) ? Number(text) : NaN;
  if (!(m >= 1 && m <= MAX_FWMARK)) fail(`invalid fwmark value \`${text}' specified`);
  return m;
}

/** ADDR or ADDR/LEN, IPv4 (as inet_aton reads it) or IPv6; iptables' words for what is wrong. */
function parsePrefix(text: string): { addr: string; len: number } {
  const slash = text.indexOf('/');
  const host = slash < 0 ? text : text.slice(0, slash);
  const v6 = isIPv6(host) && !host.includes('%');
  const addr = v6 ? host : inetAton(host);
  if (addr === undefined || host === '') fail(`host/network \`${host}' not found`);
  const bits = v6 ? 128 : 32;
  if (slash < 0) return { addr, len: bits };
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > bits) fail(`invalid mask \`${lenText}' specified`);
  return { addr, len: Number(lenText) };
}

/** iptables' --dport: PORT, PORT:PORT, :PORT (from 0) or PORT: (to 65535), numbers only. */
function parsePorts(text: string): [number, number] {
  const port = (p: string, dflt: number): number => {
    if (p === '') return dflt;
    if (!/^\d{1,5}$/.test(p) || Number(p) > 65535) fail(`invalid port/service \`${p}' specified`);
    return Number(p);
  };
  const colon = text.indexOf(':');
  if (colon < 0) {
    const p = port(text, -1);
    if (p < 0) fail(`invalid port/service \`${text}' specified`);
    return [p, p];
  }
  const lo = port(text.slice(0, colon), 0);
  const hi = port(text.slice(colon + 1), 65535);
  if (lo > hi) fail('invalid portrange (min > max)');
  return [lo, hi];
}

export function parseFwmarkCommand(argv: readonly string[]): FwmarkCommand {
  const { events, leftovers } = popt(argv, OPTIONS);
  const [first, ...rest] = events;
  if (!first || first.kind === 'error') throw new XvsError('USAGE', first ? `${first.word}: ${first.message}` : 'no command');
  const cmd = first.tag;
  const seen = new Map<string, string>();
  for (const ev of rest) {
    if (ev.kind === 'error') throw new XvsError('USAGE', `${ev.word}: ${ev.message}`);
    const name = OPTION_NAMES[ev.tag];
    if (name === undefined) fail(`invalid option \`${ev.word}'`);
    if (seen.has(name)) fail(`multiple '${name}' options specified`);
    if (cmd === 'list') fail(`Illegal '${name}' option with the '${COMMAND_NAMES[cmd]}' command`);
    seen.set(name, ev.arg ?? '');
  }
  if (cmd === 'list') {
    if (leftovers.length > 1) fail(`unexpected argument ${leftovers[1]}`);
    return leftovers[0] === undefined ? { op: 'list-fwmark-rules' } : { op: 'list-fwmark-rules', mark: parseMark(leftovers[0]) };
  }
  if (leftovers.length > 0) fail(`unexpected argument ${leftovers[0]}`);
  const mark = parseMark(first.arg ?? '');
  const dest = seen.get('dest');
  if (dest === undefined) fail(`You need to supply the 'dest' option for the '${COMMAND_NAMES[cmd]}' command`);
  const rule: FwmarkRule = { mark, ...parsePrefix(dest) };
  const proto = seen.get('protocol');
  if (proto !== undefined) {
    const p = proto.toLowerCase();
    if (p !== 'tcp' && p !== 'udp') fail(`unknown protocol \`${proto}' specified`, 'fwmark rules match tcp or udp; leave -p out for both');
    rule.proto = p as Proto;
  }
  const dport = seen.get('dport');
  if (dport !== undefined) {
    if (rule.proto === undefined) fail('--dport needs -p tcp or -p udp', 'as iptables\' --dport needs -p');
    rule.dport = parsePorts(dport);
  }
  return { op: cmd === 'add' ? 'add-fwmark-rule' : 'del-fwmark-rule', rule };
}
