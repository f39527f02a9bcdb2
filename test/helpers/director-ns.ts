// The namespace the packet tests run the director in: two interfaces with
// IPv4 and IPv6 routes and permanent neighbours, so bpf_fib_lookup and the
// control plane's next-hop resolution both have something to find, and
// BPF_PROG_TEST_RUN resolves inside it.
import assert from 'node:assert/strict';
import { Dataplane } from '../../src/daemon/dataplane.js';
import { Director } from '../../src/daemon/director.js';
import { ifIndex, testRun, XdpAction, withNetns, withNetnsAsync, xdpMd, type TestRunResult } from '../../src/loader/index.js';
import { nsSh, sh } from './env.js';

export const ADDR = {
  dirMac: '02:00:00:00:01:01',
  dir2Mac: '02:00:00:00:01:02',
  rs1Mac: '02:00:00:00:00:0b',
  rsFarMac: '02:00:00:00:00:aa',
  routerMac: '02:00:00:00:00:fe',
  client: '203.0.113.7',
  vip: '192.0.2.80',
  dir: '192.0.2.1',
  rs1: '192.0.2.11',
  rsNoNeigh: '192.0.2.12',
  rsFar: '198.51.100.10',
  dirFar: '198.51.100.1',
  client6: '2001:db8:ff::7',
  vip6: '2001:db8::80',
  dir6: '2001:db8::1',
  rs6: '2001:db8::11',
  rs6Far: '2001:db8:1::10',
  dir6Far: '2001:db8:1::1',
} as const;

/** A frame's MACs on each link of the topology, each way: the client's router and the director on d0, rs1 on d0 too (one-armed), rsFar behind d1. */
export const HOP = {
  fromClient: { dst: ADDR.dirMac, src: ADDR.routerMac },
  toClient: { dst: ADDR.routerMac, src: ADDR.dirMac },
  fromRs1: { dst: ADDR.dirMac, src: ADDR.rs1Mac },
  toRs1: { dst: ADDR.rs1Mac, src: ADDR.dirMac },
  fromFar: { dst: ADDR.dir2Mac, src: ADDR.rsFarMac },
  toFar: { dst: ADDR.rsFarMac, src: ADDR.dir2Mac },
} as const;

export interface DirectorNs {
  ns: string;
  dp: Dataplane;
  director: Director;
  ifindex: number;
  /** BPF_PROG_TEST_RUN of the director on d0's ingress, inside the namespace. */
  run(input: Buffer): TestRunResult;
  /** run(), asserting the verdict and, when given, the exact output bytes (`what` names the case). */
  expect(input: Buffer, verdict: number, want?: Buffer, what?: string): TestRunResult;
  /**
   * run() of a mutated frame (a copy: the program may write it), asserting
   * what holds for any frame: a verdict of `verdicts` (never aborted), and
   * XDP_PASS only with the frame untouched.
   */
  runMutant(input: Buffer, verdicts?: readonly number[]): TestRunResult;
  /** Director calls that resolve next hops run inside the namespace. */
  addReal(...a: Parameters<Director['addReal']>): ReturnType<Director['addReal']>;
  close(): void;
}

function setup(ns: string): void {
  sh('ip', ['netns', 'add', ns]);
  const ip = (...a: string[]) => sh('ip', ['-n', ns, ...a]);
  ip('link', 'add', 'name', 'd0', 'address', ADDR.dirMac, 'type', 'veth', 'peer', 'name', 'p0');
  ip('link', 'add', 'name', 'd1', 'address', ADDR.dir2Mac, 'type', 'veth', 'peer', 'name', 'p1');
  for (const d of ['lo', 'd0', 'p0', 'd1', 'p1']) ip('link', 'set', d, 'up');
  ip('addr', 'add', `${ADDR.dir}/24`, 'dev', 'd0');
  ip('addr', 'add', `${ADDR.dirFar}/24`, 'dev', 'd1');
  ip('-6', 'addr', 'add', `${ADDR.dir6}/64`, 'dev', 'd0', 'nodad');
  ip('-6', 'addr', 'add', `${ADDR.dir6Far}/64`, 'dev', 'd1', 'nodad');
  ip('route', 'add', '203.0.113.0/24', 'via', '192.0.2.254');
  ip('-6', 'route', 'add', '2001:db8:ff::/64', 'via', '2001:db8::fe');
  ip('neigh', 'add', ADDR.rs1, 'lladdr', ADDR.rs1Mac, 'dev', 'd0', 'nud', 'permanent');
  ip('neigh', 'add', '192.0.2.254', 'lladdr', ADDR.routerMac, 'dev', 'd0', 'nud', 'permanent');
  ip('neigh', 'add', ADDR.rsFar, 'lladdr', ADDR.rsFarMac, 'dev', 'd1', 'nud', 'permanent');
  ip('-6', 'neigh', 'add', ADDR.rs6, 'lladdr', ADDR.rs1Mac, 'dev', 'd0', 'nud', 'permanent');
  ip('-6', 'neigh', 'add', '2001:db8::fe', 'lladdr', ADDR.routerMac, 'dev', 'd0', 'nud', 'permanent');
  ip('-6', 'neigh', 'add', ADDR.rs6Far, 'lladdr', ADDR.rsFarMac, 'dev', 'd1', 'nud', 'permanent');
  nsSh(ns, 'sysctl', ['-qw', 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1']);
}

export function directorNs(name: string, opts: { connTableSize?: number; newFlowSets?: number; tunnelSource?: string } = {}): DirectorNs {
  const ns = `${name}${process.pid % 100000}`;
  try { sh('ip', ['netns', 'del', ns]); } catch { /* not there */ }
  setup(ns);
  let dp: Dataplane | undefined;
  try {
    const ifindex = withNetns(ns, () => ifIndex('d0'));
    dp = Dataplane.load({ connTableSize: opts.connTableSize ?? 4096, ...(opts.newFlowSets ? { newFlowSets: opts.newFlowSets } : {}) });
    const director = new Director(dp, { neighbours: false, ...(opts.tunnelSource ? { tunnelSource: opts.tunnelSource } : {}) });
    const loaded = dp;
    const run = (input: Buffer) => withNetns(ns, () => testRun(loaded.progFd, { data: input, ctxIn: xdpMd({ dataLen: input.length, ingressIfindex: ifindex }) }));
    return {
      ns, dp: loaded, director, ifindex,
      run,
      expect: (input, verdict, want, what = '') => {
        const r = run(input);
        assert.equal(r.retval, verdict, `${what}: verdict`);
        if (want) assert.equal(r.data.toString('hex'), want.toString('hex'), `${what}: bytes`);
        return r;
      },
      runMutant: (input, verdicts = [XdpAction.PASS, XdpAction.DROP, XdpAction.TX, XdpAction.REDIRECT]) => {
        const r = run(Buffer.from(input));
        assert.ok(verdicts.includes(r.retval), `verdict ${r.retval}`);
        if (r.retval === XdpAction.PASS) assert.equal(r.data.toString('hex'), input.toString('hex'), 'passed untouched');
        return r;
      },
      addReal: (...a) => withNetnsAsync(ns, () => director.addReal(...a)),
      close: () => {
        loaded.close();
        try { sh('ip', ['netns', 'del', ns]); } catch { /* already gone */ }
      },
    };
  } catch (e) {
    dp?.close();
    try { sh('ip', ['netns', 'del', ns]); } catch { /* already gone */ }
    throw e;
  }
}
