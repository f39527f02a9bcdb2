// The bench's own network namespace: one veth pair, A (generator and sink
// side) and B (the director's interface). Only documentation-range
// addresses, and the namespace goes away however the process ends.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { LADDRS_PER_SERVICE } from '../src/daemon/model.js';
import { ifIndex, withNetns } from '../src/loader/index.js';

export const NET = {
  ns: `xvs-bench${process.pid}`,
  a: 'xa',
  b: 'xb',
  aMac: '02:00:00:00:01:fe',
  bMac: '02:00:00:00:01:01',
  dirAddr: '192.0.2.1',
  vip: '192.0.2.80',
  rs: '192.0.2.11',
  rsMac: '02:00:00:00:00:0b',
  client: '203.0.113.7',
  dirAddr6: '2001:db8::1',
  vip6: '2001:db8::80',
  rs6: '2001:db8::11',
  client6: '2001:db8:ff::7',
  /** New-flow cases vary the last byte(s) of these: a subnet no fixed flow comes from. */
  newClients: '198.51.100.0',
  newClients6: '2001:db8:fe::',
  /**
   * FULLNAT's local addresses, as many as a service may have: 16 x 64512
   * ports to the one real server, so that the at most 65536 flows the
   * new-flow reply table holds at once use no more than 6.4% of them.
   */
  laddrs: Array.from({ length: LADDRS_PER_SERVICE }, (_, i) => `192.0.2.${100 + i}`),
  /** Local ports a FULLNAT flow may get (XVS_LPORT_MIN..65535, xvs_abi.h). */
  lports: 65536 - 1024,
  /** The kernel's route to the clients (its NAT replies are routed): a neighbour with xa's MAC. */
  clientGw: '192.0.2.254',
} as const;

export interface Links { a: number; b: number }

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function nsSh(cmd: string, args: string[]): string {
  return sh('ip', ['netns', 'exec', NET.ns, cmd, ...args]);
}

let created = false;

/** Idempotent and synchronous, so it is safe from 'exit' and signal handlers. */
export function destroyNet(): void {
  if (!created) return;
  created = false;
  // Deleting the namespace deletes the veths, which detaches their programs.
  try { sh('ip', ['netns', 'del', NET.ns]); } catch { /* already gone */ }
}

let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', destroyNet);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      destroyNet();
      process.stderr.write(`bench: interrupted by ${sig}, namespace ${NET.ns} removed\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

export function createNet(): Links {
  hookExit();
  if (existsSync(`/run/netns/${NET.ns}`)) sh('ip', ['netns', 'del', NET.ns]);
  sh('ip', ['netns', 'add', NET.ns]);
  created = true;
  const ip = (...a: string[]) => sh('ip', ['-n', NET.ns, ...a]);
  // IPv6 only where the director needs it, and quiet: no link-local address,
  // no DAD, no router solicitation, so nothing but the bench's frames reaches
  // the sink and the director (exact counts). xa has none at all.
  nsSh('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1', 'net.ipv6.conf.default.addr_gen_mode=1',
    'net.ipv6.conf.default.accept_ra=0', 'net.ipv6.conf.default.router_solicitations=0', 'net.ipv6.conf.default.accept_dad=0']);
  ip('link', 'add', 'name', NET.b, 'address', NET.bMac, 'type', 'veth', 'peer', 'name', NET.a, 'address', NET.aMac);
  nsSh('sysctl', ['-qw', `net.ipv6.conf.${NET.b}.disable_ipv6=0`]);
  for (const d of ['lo', NET.a, NET.b]) ip('link', 'set', d, 'up');
  ip('addr', 'add', `${NET.dirAddr}/24`, 'dev', NET.b);
  // The director's IPv6 address lives on lo: an address on xb would join a
  // multicast group and xb would send an MLD report into the chain.
  ip('-6', 'addr', 'add', `${NET.dirAddr6}/128`, 'dev', 'lo');
  ip('-6', 'route', 'add', '2001:db8::/64', 'dev', NET.b);
  ip('neigh', 'add', NET.rs, 'lladdr', NET.rsMac, 'dev', NET.b, 'nud', 'permanent');
  ip('-6', 'neigh', 'add', NET.rs6, 'lladdr', NET.rsMac, 'dev', NET.b, 'nud', 'permanent');
  // bpf_fib_lookup answers FWD_DISABLED on an interface that does not forward.
  nsSh('sysctl', ['-qw', 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1']);
  return withNetns(NET.ns, () => ({ a: ifIndex(NET.a), b: ifIndex(NET.b) }));
}

/**
 * B's NAPI in a kernel thread, so the program under test can run on another
 * core than the generator (in softirq it runs on the generator's core, inside
 * the generator's test run).
 */
export function setThreadedNapi(dev: string, on: boolean): void {
  nsSh('sh', ['-c', `echo ${on ? 1 : 0} > /sys/class/net/${dev}/threaded`]);
}

export interface XdpStats { packets: number; tx: number; drops: number }

const STAT_NAMES = { xdp_packets: 'packets', xdp_tx: 'tx', xdp_drops: 'drops' } as const satisfies Record<string, keyof XdpStats>;

/** veth's own receive-side XDP counters (ethtool -S), summed over queues. */
export function xdpStats(dev: string): XdpStats {
  const s: XdpStats = { packets: 0, tx: 0, drops: 0 };
  for (const m of nsSh('ethtool', ['-S', dev]).matchAll(/^\s*rx_queue_\d+_(\w+): (\d+)$/gm)) {
    const k = STAT_NAMES[m[1] as keyof typeof STAT_NAMES];
    if (k) s[k] += Number(m[2]);
  }
  return s;
}

export function statsDelta(a: XdpStats, b: XdpStats): XdpStats {
  const out = { ...b };
  for (const k of Object.keys(b) as (keyof XdpStats)[]) out[k] = b[k] - a[k];
  return out;
}
