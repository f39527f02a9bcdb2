// The comparison: the kernel's own NAT in the director's namespace, as an
// operator would run it on this kernel, which has no IPVS (ipvsAbsence
// says how that was checked): nftables dnat with conntrack for NAT, dnat
// and snat for FULLNAT. The stack does the director's work: conntrack, the
// NAT hooks, the route, forwarding, the neighbour, and veth's transmit
// into xa's queue, where xdp_sink counts. veth takes frames from xa's
// XDP_TX only with NAPI, which it has with GRO on or with an XDP program;
// the kernel gets its cheaper way, xdp_pass (XDP_PASS at once) with GRO
// off, which cost it 2-5% less CPU per frame than GRO on in trials here.
// The flow is opened with the same handshake the xvs cases use
// (nat-frames.ts), since conntrack checks the sequence numbers, and the
// translated frames are counted by nftables in a check table after the NAT
// hooks (before and after the timed calls, never during them, so the timed
// path carries no rule of the bench's).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import os from 'node:os';
import { MODES, rsOf, vipOf } from './frames.js';
import { arriving, type Dir, type Via } from './nat-frames.js';
import { NET, nsSh } from './net.js';

export type KernelMode = 'nat' | 'fnat';

const NAT_TABLE = 'xvs_bench_nat';
const CHECK_TABLE = 'xvs_bench_check';

/** nft in the bench's namespace, the script on stdin. */
function nft(script: string): void {
  execFileSync('ip', ['netns', 'exec', NET.ns, 'nft', '-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
}

/** FULLNAT's kernel stand-in leaves from the director's own address; conntrack keeps the client's port while it is free. */
export const kernelVia = (mode: KernelMode, sport: number): Via | null => (mode === 'fnat' ? { addr: NET.dirAddr, port: sport } : null);

/**
 * Readies the namespace's stack for forwarding as a one-armed NAT director
 * (README, "Real servers": no ICMP redirects, or the kernel would tell the
 * real server to go to the client directly): a route to the clients, no
 * TSO on xb (veth hands a TSO-capable sender's frames to the peer's
 * backlog instead of its NAPI, where xdp_sink would never see them), and
 * the NAT rules of `mode`. xb's xdp_pass is the caller's to attach.
 */
export function kernelNatUp(mode: KernelMode): void {
  const ip = (...a: string[]) => nsSh('ip', a);
  ip('neigh', 'replace', NET.clientGw, 'lladdr', NET.aMac, 'dev', NET.b, 'nud', 'permanent');
  ip('route', 'replace', `${NET.client}/32`, 'via', NET.clientGw, 'dev', NET.b);
  nsSh('sysctl', ['-qw', 'net.ipv4.conf.all.send_redirects=0', `net.ipv4.conf.${NET.b}.send_redirects=0`]);
  nsSh('ethtool', ['-K', NET.b, 'tso', 'off']);
  const m = MODES[mode];
  const snat = mode === 'fnat'
    ? `chain post { type nat hook postrouting priority srcnat; policy accept; ip daddr ${rsOf(mode)} tcp dport ${m.rport} ct status dnat snat to ${NET.dirAddr}; }`
    : '';
  nft(`add table ip ${NAT_TABLE}
table ip ${NAT_TABLE} {
  chain pre { type nat hook prerouting priority dstnat; policy accept; ip daddr ${vipOf(mode)} tcp dport ${m.port} dnat to ${rsOf(mode)}:${m.rport}; }
  ${snat}
}`);
}

/** Puts the rig back as the XDP cases expect it (veth's default TSO); conntrack's entries stay, their ports never reused. */
export function kernelNatDown(): void {
  try { nft(`delete table ip ${NAT_TABLE}`); } catch { /* not there */ }
  try { nft(`delete table ip ${CHECK_TABLE}`); } catch { /* not there */ }
  nsSh('ethtool', ['-K', NET.b, 'tso', 'on']);
}

/**
 * The frame as it must leave the kernel, as an nftables match after
 * source NAT (postrouting, priority 200): the same translation xvs makes,
 * source port aside for FULLNAT (the kernel's own choice, kernelVia).
 */
function leavingMatch(mode: KernelMode, dir: Dir, sport: number): string {
  const m = MODES[mode];
  if (dir === 'out') return `ip saddr ${vipOf(mode)} ip daddr ${NET.client} tcp sport ${m.port} tcp dport ${sport}`;
  const via = kernelVia(mode, sport) ?? { addr: NET.client, port: sport };
  return `ip saddr ${via.addr} ip daddr ${rsOf(mode)} tcp sport ${via.port} tcp dport ${m.rport}`;
}

/** Starts counting the case's translated frames (and every frame that leaves, to compare). */
export function checkUp(mode: KernelMode, dir: Dir, sport: number): void {
  try { nft(`delete table ip ${CHECK_TABLE}`); } catch { /* not there */ }
  nft(`add table ip ${CHECK_TABLE}
table ip ${CHECK_TABLE} {
  counter translated { }
  counter forwarded { }
  chain post { type filter hook postrouting priority 200; policy accept; counter name forwarded; ${leavingMatch(mode, dir, sport)} counter name translated; }
}`);
}

/** The check table's counts, and the table gone. */
export function checkDown(): { translated: number; forwarded: number } {
  const j = JSON.parse(nsSh('nft', ['-j', 'list', 'counters', 'table', 'ip', CHECK_TABLE])) as { nftables: { counter?: { name: string; packets: number } }[] };
  const get = (n: string) => j.nftables.find((x) => x.counter?.name === n)?.counter?.packets ?? NaN;
  const r = { translated: get('translated'), forwarded: get('forwarded') };
  nft(`delete table ip ${CHECK_TABLE}`);
  return r;
}

/** The frames that open a flow in the kernel, in order, padded to the generator's size. */
export function kernelOpening(mode: KernelMode, sport: number): Buffer[] {
  const via = kernelVia(mode, sport);
  return (['syn', 'synack', 'ack', 'data'] as const).map((k) => arriving(mode, k, sport, via));
}

/** The case's measured segment: a retransmission of the client's data, or of the server's reply. */
export const kernelSegment = (mode: KernelMode, dir: Dir, sport: number): Buffer =>
  arriving(mode, dir === 'in' ? 'data' : 'reply', sport, kernelVia(mode, sport));

/** How the bench knows this kernel has no IPVS to compare with. */
export interface IpvsAbsence { procNetIpVs: boolean; kernelConfig: string; modules: boolean; modprobe: string }

export function ipvsAbsence(): IpvsAbsence {
  let kernelConfig = 'no /proc/config.gz';
  try {
    const line = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8').split('\n').find((l) => /^(# )?CONFIG_IP_VS[ =]/.test(l));
    kernelConfig = line ?? 'CONFIG_IP_VS absent';
  } catch { /* no config exposed */ }
  let modprobe: string;
  try {
    // A dry run (-n): the shared kernel is never changed by the bench.
    modprobe = `modprobe -n ip_vs: ${execFileSync('modprobe', ['-n', '-v', 'ip_vs'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() || 'ok'}`;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    modprobe = err.code === 'ENOENT' ? 'no modprobe (kmod not installed)' : `modprobe -n ip_vs failed: ${String(err.stderr ?? err.message).trim()}`;
  }
  return { procNetIpVs: existsSync('/proc/net/ip_vs'), kernelConfig, modules: existsSync(`/lib/modules/${os.release()}`), modprobe };
}

export function ipvsLine(a: IpvsAbsence): string {
  return `   IPVS on this kernel: /proc/net/ip_vs ${a.procNetIpVs ? 'exists' : 'absent'}; ${a.kernelConfig} (/proc/config.gz); ` +
    `/lib/modules/${os.release()} ${a.modules ? 'exists' : 'absent'}; ${a.modprobe}.`;
}
