// ipvsadm's listing formats that need data a quiet test daemon has none of
// (connections, rates, names), the rate estimator against a plain model of
// ip_vs_est.c, and the pieces of ipvsadm's parsing that live on their own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatConnections, formatList } from '../src/cli/list-format.js';
import { inetAton, namesFrom } from '../src/cli/names.js';
import { popt, type PoptOption } from '../src/cli/popt.js';
import { formatSave, splitRestore } from '../src/cli/save-format.js';
import { runXvsadm } from '../src/cli/xvsadm-main.js';
import type { ConnView, ListResult, Request, StatsView } from '../src/control/protocol.js';
import { RateEstimator } from '../src/daemon/estimator.js';

const zero: StatsView = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };

test('-L -c lines are print_conn\'s "%-3s %-6s %-11s %-18s %-18s %s", persistence templates included', () => {
  const conns: ConnView[] = [
    { proto: 'tcp', expires: 897, state: 'ESTABLISHED', caddr: '203.0.113.7', cport: 51234, vaddr: '192.0.2.80', vport: 80, daddr: '192.0.2.11', dport: 80 },
    { proto: 'udp', expires: 299, state: 'UDP', caddr: '203.0.113.8', cport: 5353, vaddr: '192.0.2.53', vport: 53, daddr: '192.0.2.21', dport: 53 },
    { proto: 'tcp', expires: 359, state: 'NONE', caddr: '203.0.113.0', cport: 0, vaddr: '192.0.2.80', vport: 80, daddr: '192.0.2.11', dport: 80 },
    { proto: 'tcp', expires: 6000, state: 'FIN_WAIT', caddr: '203.0.113.9', cport: 1, vaddr: '192.0.2.80', vport: 80, daddr: '192.0.2.12', dport: 80 },
    // A fwmark service's template: the mark as its address, no protocol (the kernel's ip_vs_proto_name gives "IP").
    { proto: 'tcp', expires: 61, state: 'NONE', caddr: '203.0.113.0', cport: 0, vaddr: '0.0.0.1', vport: 0, daddr: '192.0.2.11', dport: 0, fwmark: true },
  ];
  assert.equal(formatConnections(conns, {}), [
    'IPVS connection entries',
    'pro expire state       source             virtual            destination',
    'TCP 14:57  ESTABLISHED 203.0.113.7:51234  192.0.2.80:80      192.0.2.11:80',
    'UDP 04:59  UDP         203.0.113.8:5353   192.0.2.53:53      192.0.2.21:53',
    'TCP 05:59  NONE        203.0.113.0:0      192.0.2.80:80      192.0.2.11:80',
    'TCP 100:00 FIN_WAIT    203.0.113.9:1      192.0.2.80:80      192.0.2.12:80',
    'IP  01:01  NONE        203.0.113.0:0      0.0.0.1:0          192.0.2.11:0',
    '',
  ].join('\n'));
  const names = namesFrom(new Map(), new Map([['203.0.113.7', 'client.example.test']]), 'http 80/tcp www\n');
  assert.equal(formatConnections(conns.slice(0, 1), { names }).split('\n')[2],
    'TCP 14:57  ESTABLISHED client.example.test:51234 192.0.2.80:http    192.0.2.11:http');
});

const named: ListResult = {
  connTableSize: 4096,
  counters: {},
  timeouts: { tcp: 900, tcpfin: 120, udp: 300 },
  services: [
    {
      proto: 'tcp', addr: '192.0.2.80', port: 80, scheduler: 'rr', stats: zero,
      rates: { cps: 12, inpps: 345, outpps: 0, inbps: 123456789, outbps: 0 },
      reals: [
        { addr: '192.0.2.11', port: 80, fwd: 'dr', weight: 1, uthreshold: 0, lthreshold: 0, activeConns: 0, inactConns: 0, stats: zero,
          rates: { cps: 7, inpps: 200, outpps: 0, inbps: 100000000, outbps: 0 } },
        { addr: '192.0.2.12', port: 80, fwd: 'dr', weight: 1, uthreshold: 0, lthreshold: 0, activeConns: 0, inactConns: 0, stats: zero },
      ],
    },
    { proto: 'udp', addr: '192.0.2.53', port: 53, scheduler: 'wlc', stats: zero, reals: [] },
  ],
};

test('without -n, names as ipvsadm prints them: the service column cut at 33, destinations at 28', () => {
  const names = namesFrom(new Map(), new Map([
    ['192.0.2.80', 'a-rather-long-virtual-host-name.example.test'],
    ['192.0.2.11', 'backend-number-one.example.test'],
    ['192.0.2.53', 'ns'],
  ]), 'http\t\t80/tcp\t\twww # WorldWideWeb\ndomain 53/tcp\ndomain 53/udp\n');
  assert.equal(formatList(named, { stats: false, exact: false, names }), `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  a-rather-long-virtual-host-n rr
  -> backend-number-one.example.t Route   1      0          0         
  -> 192.0.2.12:http              Route   1      0          0         
UDP  ns:domain wlc
`);
  assert.equal(formatSave(named, names), `-A -t a-rather-long-virtual-host-name.example.test:http -s rr
-a -t a-rather-long-virtual-host-name.example.test:http -r backend-number-one.example.test:http -g -w 1
-a -t a-rather-long-virtual-host-name.example.test:http -r 192.0.2.12:http -g -w 1
-A -u ns:domain -s wlc
`);
});

test('--rate: rates per second, the destination\'s CPS/PPS columns unabbreviated as ipvsadm prints them', () => {
  assert.equal(formatList(named, { stats: false, exact: false, rate: true }), `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  192.0.2.80:80                      12      345        0  123456K        0
  -> 192.0.2.11:80                       7      200        0  100000K        0
  -> 192.0.2.12:80                       0        0        0        0        0
UDP  192.0.2.53:53                       0        0        0        0        0
`);
});

test('--nosort keeps the daemon\'s order; sorting is by family, protocol, address, port', () => {
  const res: ListResult = {
    ...named,
    services: [
      { proto: 'tcp', addr: '2001:db8::1', port: 80, scheduler: 'rr', stats: zero, reals: [] },
      { proto: 'udp', addr: '192.0.2.9', port: 53, scheduler: 'rr', stats: zero, reals: [] },
      { proto: 'tcp', addr: '192.0.2.10', port: 443, scheduler: 'rr', stats: zero, reals: [] },
    ],
  };
  const heads = (o: { nosort?: boolean }) => formatList(res, { stats: false, exact: false, header: false, ...o }).split('\n').slice(2, 5);
  assert.deepEqual(heads({}), ['TCP  192.0.2.10:443 rr', 'UDP  192.0.2.9:53 rr', 'TCP  [2001:db8::1]:80 rr']);
  assert.deepEqual(heads({ nosort: true }), ['TCP  [2001:db8::1]:80 rr', 'UDP  192.0.2.9:53 rr', 'TCP  192.0.2.10:443 rr']);
});

/** ip_vs_est.c transcribed with 64-bit integers: estimation_timer and ip_vs_read_estimator. */
class PlainEst {
  last = [0n, 0n, 0n, 0n, 0n];
  rate = [0n, 0n, 0n, 0n, 0n];
  constructor(s: bigint[]) { this.last = [...s]; }
  step(s: bigint[]): void {
    for (let i = 0; i < 5; i++) {
      const r = (s[i]! - this.last[i]!) << (i < 3 ? 9n : 4n);
      this.last[i] = s[i]!;
      this.rate[i] = this.rate[i]! + ((r - this.rate[i]!) >> 2n);
    }
  }
  read(): number[] {
    return this.rate.map((r, i) => Number(i < 3 ? (r + 0x1ffn) >> 10n : (r + 0xfn) >> 5n));
  }
}

test('the rate estimator is IPVS\'s ip_vs_est step for step, bursts, lulls and zeroing included', () => {
  let seed = 12345;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
  const est = new RateEstimator();
  const totals = [0, 0, 0, 0, 0];
  const asStats = (): StatsView => ({ conns: totals[0]!, inpkts: totals[1]!, outpkts: totals[2]!, inbytes: totals[3]!, outbytes: totals[4]! });
  est.sample([['k', asStats()]]);
  let plain = new PlainEst(totals.map(BigInt));
  for (let step = 0; step < 400; step++) {
    // Bursts, silences and steady stretches.
    const burst = step % 50 < 5 ? 1000 : step % 50 < 25 ? 0 : 10;
    const conns = rnd(burst + 1);
    const pkts = conns * (1 + rnd(20));
    totals[0]! += conns;
    totals[1]! += pkts;
    totals[2]! += rnd(3);
    totals[3]! += pkts * (40 + rnd(1460));
    totals[4]! += rnd(100);
    est.sample([['k', asStats()]]);
    plain.step(totals.map(BigInt));
    const r = est.rates('k');
    assert.deepEqual([r.cps, r.inpps, r.outpps, r.inbps, r.outbps], plain.read(), `step ${step}`);
    if (step === 200) {
      // -Z: counters from 0, rates 0 (ip_vs_zero_estimator), counting again at the next step.
      totals.fill(0);
      est.zero(['k']);
      plain = new PlainEst(totals.map(BigInt));
      assert.deepEqual(est.rates('k'), { cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });
      // What arrives before the next step counts in it.
      totals[0] = 50;
      totals[1] = 500;
    }
  }
  // A steady 100 connections a second settles at 100.
  const steady = new RateEstimator();
  for (let i = 0; i <= 60; i++) steady.sample([['s', { ...zero, conns: i * 200 }]]);
  assert.equal(steady.rates('s').cps, 100);
  // Keys not sampled any more are forgotten: a reused id starts from scratch.
  steady.sample([]);
  assert.equal(steady.rates('s').cps, 0);
});

test('popt as ipvsadm uses it: clusters, attached and optional arguments, leftovers, "--"', () => {
  const table: PoptOption[] = [
    { long: 'list', short: 'L', arg: 'none', tag: 'L' },
    { long: 'numeric', short: 'n', arg: 'none', tag: 'n' },
    { long: 'weight', short: 'w', arg: 'required', tag: 'w' },
    { long: 'persistent', short: 'p', arg: 'optional', tag: 'p' },
  ];
  const tags = (argv: string[]) => {
    const r = popt(argv, table);
    return [r.events.map((e) => (e.kind === 'option' ? `${e.tag}=${e.arg ?? ''}` : `!${e.word}:${e.message}`)), r.leftovers];
  };
  assert.deepEqual(tags(['-Lnw5', 'x']), [['L=', 'n=', 'w=5'], ['x']]);
  assert.deepEqual(tags(['-w', '-3']), [['w=-3'], []]);
  assert.deepEqual(tags(['-p', '-n', '-p', '9', '--persistent=7', '--persistent', '8']), [['p=', 'n=', 'p=9', 'p=7', 'p=8'], []]);
  assert.deepEqual(tags(['-w']), [['!-w:missing argument'], []]);
  assert.deepEqual(tags(['--list=1']), [['!--list=1:option does not take an argument'], []]);
  assert.deepEqual(tags(['--lis']), [['!--lis:unknown option'], []]);
  assert.deepEqual(tags(['-Lq', '-n']), [['L=', '!-Lq:unknown option'], []]);
  assert.deepEqual(tags(['-L', '--', '-n', 'x']), [['L='], ['-n', 'x']]);
});

test('inet_aton\'s forms, as ipvsadm reads addresses and masks', () => {
  assert.equal(inetAton('192.0.2.1'), '192.0.2.1');
  assert.equal(inetAton('255.255.255.00'), '255.255.255.0');
  assert.equal(inetAton('10.1'), '10.0.0.1');
  assert.equal(inetAton('0x7f.1'), '127.0.0.1');
  assert.equal(inetAton('24'), '0.0.0.24');
  assert.equal(inetAton('010.0.0.1'), '8.0.0.1');
  for (const bad of ['256.0.0.1', '1.2.3.4.5', '1..2', '', 'x', '08.1.1.1', '1.2.3.256']) assert.equal(inetAton(bad), undefined, bad);
});

test('-R input: "ipvsadm" words dropped, comments and blank lines skipped, lines numbered as written', () => {
  assert.deepEqual(splitRestore('# top\n\nipvsadm -A -t 192.0.2.80:80   # web\n\t \n-a\t-t 192.0.2.80:80 -r 192.0.2.11 ipvsadm\r\n'), [
    { line: 3, argv: ['-A', '-t', '192.0.2.80:80'] },
    { line: 5, argv: ['-a', '-t', '192.0.2.80:80', '-r', '192.0.2.11'] },
  ]);
});

test('host and service names on input, from the resolver xvsadm is given (no outside DNS)', async () => {
  const sent: Request[] = [];
  const deps = {
    request: async (req: Request) => { sent.push(req); return undefined; },
    names: {
      lookup: async (n: string) => ({ web1: '192.0.2.80', rs1: '192.0.2.11', mask24: '255.255.255.0' } as Record<string, string>)[n],
      reverse: async () => undefined,
      services: () => 'http 80/tcp www\nhttps 443/tcp\ndomain 53/udp\n',
    },
  };
  for (const argv of [
    ['-A', '-t', 'web1:http', '-s', 'rr', '-p', '-M', 'mask24'],
    ['-a', '-t', 'web1:www', '-r', 'rs1', '-w', '2'],
    ['-a', '-u', 'web1:domain', '-r', 'rs1:domain', '-i'],
  ]) {
    const r = await runXvsadm(argv, deps);
    assert.deepEqual([r.stderr, r.exitCode], ['', 0], argv.join(' '));
  }
  assert.deepEqual(sent, [
    { op: 'add-service', svc: { proto: 'tcp', addr: '192.0.2.80', port: 80, scheduler: 'rr', persistent: 360, netmask: '255.255.255.0' } },
    { op: 'add-real', key: { proto: 'tcp', addr: '192.0.2.80', port: 80 }, real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 2 } },
    { op: 'add-real', key: { proto: 'udp', addr: '192.0.2.80', port: 53 }, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1 } },
  ]);
  // A name nobody knows is ipvsadm's "illegal ... address[:port]"; a port name of the other protocol too.
  for (const argv of [['-A', '-t', 'nosuch:80'], ['-A', '-t', 'web1:domain'], ['-A', '-u', 'web1:https']]) {
    const r = await runXvsadm(argv, deps);
    assert.deepEqual([r.stderr, r.exitCode], ['illegal virtual server address[:port] specified\n', 2], argv.join(' '));
  }
});
