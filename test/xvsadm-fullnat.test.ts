// FULLNAT in xvsadm, in the grammar of the ipvsadm forks that have it
// (DPVS, Alibaba's LVS): -b/--fullnat for real servers, -P/-Q with -z for
// local addresses, -G to list them; -b still --sched-flags after -A/-E as
// in ipvsadm 1.31. Expected listings were written from DPVS's printf
// formats (list_laddrs_print_title/_service/_laddr), not from the formatter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commandToRequest, parseIpvsadm, type RequestCommand } from '../src/cli/ipvsadm-args.js';
import { formatLaddrs } from '../src/cli/laddr-format.js';
import { formatConfig, formatSave, parseRestore } from '../src/cli/save-format.js';
import { runXvsadm } from '../src/cli/xvsadm-main.js';
import { parseRequest, type LaddrView, type ListResult, type Request, type StatsView } from '../src/control/protocol.js';
import { XvsError } from '../src/errors.js';

const K = { proto: 'tcp', addr: '192.0.2.80', port: 80 } as const;
const K6 = { proto: 'tcp', addr: '2001:db8::80', port: 80 } as const;
const T = ['-t', '192.0.2.80:80'];
const T6 = ['-t', '[2001:db8::80]:80'];

function toRequest(argv: string[]): Request {
  const cmd = parseIpvsadm(argv);
  assert.notEqual(cmd.op, 'help');
  return commandToRequest(cmd as RequestCommand);
}

const accepted: [string[], Request][] = [
  [['-P', ...T, '-z', '192.0.2.201'], { op: 'add-laddr', key: K, laddr: '192.0.2.201' }],
  [['--add-laddr', '--tcp-service', '192.0.2.80:80', '--laddr', '192.0.2.201'], { op: 'add-laddr', key: K, laddr: '192.0.2.201' }],
  [['-Pz', '192.0.2.201', ...T], { op: 'add-laddr', key: K, laddr: '192.0.2.201' }],
  [['-Q', ...T, '-z', '192.0.2.201'], { op: 'del-laddr', key: K, laddr: '192.0.2.201' }],
  [['--del-laddr', '-u', '192.0.2.53:53', '--laddr=192.0.2.201'], { op: 'del-laddr', key: { proto: 'udp', addr: '192.0.2.53', port: 53 }, laddr: '192.0.2.201' }],
  [['-P', ...T6, '-z', '2001:DB8:0::201'], { op: 'add-laddr', key: K6, laddr: '2001:db8::201' }],
  // An IPv6 service may hold IPv4 local addresses, for its IPv4 real servers (NAT64).
  [['-P', ...T6, '-z', '192.0.2.201'], { op: 'add-laddr', key: K6, laddr: '192.0.2.201' }],
  [['-G'], { op: 'get-laddrs' }],
  // After -A/-E, -b is ipvsadm 1.31's --sched-flags.
  [['-A', ...T, '-s', 'sh', '-b', 'sh-port'], { op: 'add-service', svc: { ...K, scheduler: 'sh', schedFlags: 2 } }],
  [['--get-laddr', ...T], { op: 'get-laddrs', key: K }],
  [['-G', ...T6], { op: 'get-laddrs', key: K6 }],
  // -b after a real-server command is FULLNAT; port mapping as NAT's.
  [['-a', ...T, '-r', '203.0.113.11:8080', '-b', '-w', '3'], { op: 'add-real', key: K, real: { addr: '203.0.113.11', port: 8080, fwd: 'fullnat', weight: 3 } }],
  [['-a', ...T, '-r', '203.0.113.11', '--fullnat'], { op: 'add-real', key: K, real: { addr: '203.0.113.11', port: 0, fwd: 'fullnat', weight: 1 } }],
  [['-ab', ...T, '-r', '203.0.113.11'], { op: 'add-real', key: K, real: { addr: '203.0.113.11', port: 0, fwd: 'fullnat', weight: 1 } }],
  [['-e', ...T, '-r', '203.0.113.11', '-b', '-w', '0'], { op: 'edit-real', key: K, real: { addr: '203.0.113.11', port: 0, fwd: 'fullnat', weight: 0 } }],
  [['-a', ...T6, '-r', '[2001:db8:2::11]:8080', '-b'], { op: 'add-real', key: K6, real: { addr: '2001:db8:2::11', port: 8080, fwd: 'fullnat', weight: 1 } }],
  // NAT64: an IPv6 VIP in front of an IPv4 real server.
  [['-a', ...T6, '-r', '203.0.113.11:80', '-b', '-w', '2'], { op: 'add-real', key: K6, real: { addr: '203.0.113.11', port: 80, fwd: 'fullnat', weight: 2 } }],
  // --fullnat and --sched-flags are long options everywhere; -b after -A is ipvsadm 1.31's --sched-flags.
  [['-A', ...T, '-s', 'wrr'], { op: 'add-service', svc: { ...K, scheduler: 'wrr' } }],
];

test('the forks\' FULLNAT grammar maps to the expected request, which the daemon accepts unchanged', () => {
  for (const [argv, want] of accepted) {
    const req = toRequest(argv);
    assert.deepEqual(req, want, argv.join(' '));
    assert.deepEqual(parseRequest(JSON.stringify(req)), req, `${argv.join(' ')}: through parseRequest`);
  }
});

const refused: [string[], string, RegExp][] = [
  [['-P', ...T], 'BAD_ARGUMENT', /^You need to supply the 'local-address' option for the 'add-laddr' command$/],
  [['-Q', ...T], 'BAD_ARGUMENT', /^You need to supply the 'local-address' option for the 'del-laddr' command$/],
  [['-P', '-z', '192.0.2.201'], 'BAD_ARGUMENT', /^You need to supply the 'service-address' option for the 'add-laddr' command$/],
  [['-P', ...T, '-z', 'nope'], 'BAD_ARGUMENT', /^illegal local address$/],
  [['-P', ...T, '-z', '192.0.2.201:80'], 'BAD_ARGUMENT', /^illegal local address$/],
  [['-P', ...T, '-z', '[2001:db8::201]'], 'BAD_ARGUMENT', /^illegal local address$/],
  [['-P', ...T, '-z', '192.0.2.300'], 'BAD_ARGUMENT', /^illegal local address$/],
  [['-P', ...T, '-z'], 'USAGE', /^-z: missing argument$/],
  [['-P', ...T, '-z', '192.0.2.201', '-z', '192.0.2.202'], 'BAD_ARGUMENT', /^multiple 'local-address' options specified$/],
  [['-P', ...T, '-z', '2001:db8::201'], 'BAD_ARGUMENT', /^Different address family is allowed for local addresses only in an IPv6 service$/],
  [['-Q', ...T, '-z', '2001:db8::201'], 'BAD_ARGUMENT', /^Different address family/],
  [['-P', ...T, '-z', '192.0.2.201', '-w', '3'], 'BAD_ARGUMENT', /^Illegal 'weight' option with the 'add-laddr' command$/],
  [['-P', ...T, '-z', '192.0.2.201', '-b'], 'BAD_ARGUMENT', /^Illegal 'forwarding-method' option with the 'add-laddr' command$/],
  [['-G', '-z', '192.0.2.201'], 'BAD_ARGUMENT', /^Illegal 'local-address' option with the 'get-laddr' command$/],
  [['-G', '-n'], 'BAD_ARGUMENT', /^Illegal 'numeric' option with the 'get-laddr' command$/],
  [['-G', 'extra'], 'BAD_ARGUMENT', /^unexpected argument extra$/],
  [['-P', '-G', ...T], 'BAD_ARGUMENT', /^invalid option `-G'$/],
  [['-A', ...T, '-z', '192.0.2.201'], 'BAD_ARGUMENT', /^Illegal 'local-address' option with the 'add-service' command$/],
  [['-a', ...T, '-r', '192.0.2.11', '-z', '192.0.2.201'], 'BAD_ARGUMENT', /^Illegal 'local-address' option with the 'add-server' command$/],
  [['-L', '-z', '192.0.2.201'], 'BAD_ARGUMENT', /^Illegal 'local-address' option with the 'list' command$/],
  [['-A', ...T, '--fullnat'], 'BAD_ARGUMENT', /^Illegal 'forwarding-method' option with the 'add-service' command$/],
  [['-a', ...T, '-r', '192.0.2.11', '-b', '-m'], 'BAD_ARGUMENT', /^multiple 'forwarding-method' options specified$/],
  [['-a', ...T, '-r', '192.0.2.11', '-b', '-b'], 'BAD_ARGUMENT', /^multiple 'forwarding-method' options specified$/],
  // ipvsadm reads the flags before its table of legal options: a flag of no scheduler first, then the table.
  [['-a', ...T, '-r', '192.0.2.11', '--sched-flags', 'sh-port'], 'BAD_ARGUMENT', /^incompatible scheduler flag `sh-port'$/],
  [['-a', ...T, '-r', '192.0.2.11', '--sched-flags', 'flag-1'], 'BAD_ARGUMENT', /^Illegal 'sched-flags' option with the 'add-server' command$/],
  [['-d', ...T, '-r', '192.0.2.11', '-b'], 'BAD_ARGUMENT', /^Illegal 'forwarding-method' option with the 'delete-server' command$/],
  // After -A, -b takes its flags as ipvsadm 1.31 reads them.
  [['-A', ...T, '-b'], 'USAGE', /^-b: missing argument$/],
  [['-L', '-b', 'flag-1'], 'BAD_ARGUMENT', /^Illegal 'sched-flags' option with the 'list' command$/],
  [['-a', ...T, '-r', '[2001:db8::11]:80', '-b'], 'BAD_ARGUMENT', /^Different address family is allowed for FULLNAT servers only behind an IPv6 service$/],
  [['-a', ...T6, '-r', '203.0.113.11', '-m'], 'BAD_ARGUMENT', /^Different address family is allowed only for tunneling servers$/],
  [['-P', '-f', '1', '-z', '2001:db8::201'], 'BAD_ARGUMENT', /^Different address family is allowed for local addresses only in an IPv6 service$/],
];

test('bad FULLNAT command lines: one line, the code ipvsadm\'s path gives, in the order ipvsadm checks', () => {
  for (const [argv, code, message] of refused) {
    assert.throws(() => parseIpvsadm(argv), (e: unknown) => {
      assert.ok(e instanceof XvsError, `${argv.join(' ')}: ${String(e)}`);
      assert.equal(e.code, code, `${argv.join(' ')}: ${e.message}`);
      assert.match(e.message, message, argv.join(' '));
      assert.ok(!e.message.includes('\n'));
      return true;
    }, argv.join(' '));
  }
});

test('the daemon\'s protocol checks local-address requests itself', () => {
  const bad: [unknown, string][] = [
    [{ op: 'add-laddr', key: K, laddr: 'nope' }, 'BAD_ADDRESS'],
    [{ op: 'add-laddr', key: K }, 'BAD_ARGUMENT'],
    [{ op: 'del-laddr', laddr: '192.0.2.201' }, 'BAD_ARGUMENT'],
    [{ op: 'get-laddrs', key: { ...K, proto: 'sctp' } }, 'BAD_ARGUMENT'],
    [{ op: 'batch', requests: [{ op: 'add-laddr', key: K, laddr: '192.0.2.201' }, { op: 'get-laddrs' }] }, 'BAD_ARGUMENT'],
  ];
  for (const [req, code] of bad) {
    assert.throws(() => parseRequest(JSON.stringify(req)), (e: unknown) => e instanceof XvsError && e.code === code, JSON.stringify(req));
  }
  const batch = { op: 'batch', requests: [{ op: 'add-laddr', key: K, laddr: '192.0.2.201' }, { op: 'del-laddr', key: K, laddr: '192.0.2.201' }] };
  assert.deepEqual(parseRequest(JSON.stringify(batch)), batch);
});

const views: LaddrView[] = [
  { ...K, laddrs: [{ addr: '192.0.2.201', conns: 12 }, { addr: '192.0.2.202', conns: 0 }] },
  { proto: 'udp', addr: '192.0.2.53', port: 53, laddrs: [] },
  { ...K6, laddrs: [{ addr: '2001:db8::201', conns: 1234567 }, { addr: '192.0.2.201', conns: 3 }] },
  // A fwmark service, named as -L names it.
  { proto: 'tcp', addr: '0.0.0.0', port: 0, fwmark: 8, laddrs: [{ addr: '192.0.2.204', conns: 5 }] },
  { proto: 'tcp', addr: '::', port: 0, fwmark: 9, laddrs: [] },
];

test('-G in the forks\' layout: "%-20s %-8s %-20s" and the CONNS column, service lines "%-20s %-8u \\n"', () => {
  const want = [
    'VIP:VPORT            TOTAL    SNAT_IP              CONNS     ',
    '192.0.2.80:80        2        ',
    '                              192.0.2.201          12        ',
    '                              192.0.2.202          0         ',
    '192.0.2.53:53        0        ',
    '[2001:db8::80]:80    2        ',
    '                              2001:db8::201        1234567   ',
    '                              192.0.2.201          3         ',
    'FWM  8               1        ',
    '                              192.0.2.204          5         ',
    'FWM  9 IPv6          0        ',
    '',
  ].join('\n');
  assert.equal(formatLaddrs(views), want);
  assert.equal(formatLaddrs([]), '', 'no service, no title: as theirs');
});

const zero: StatsView = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };
const real = (addr: string, port: number, fwd: 'fullnat' | 'dr', weight: number) =>
  ({ addr, port, fwd, weight, uthreshold: 0, lthreshold: 0, activeConns: 0, inactConns: 0, stats: zero });

const config: ListResult = {
  connTableSize: 4096,
  counters: {},
  timeouts: { tcp: 900, tcpfin: 120, udp: 300 },
  services: [
    { ...K6, scheduler: 'wrr', stats: zero, laddrs: ['192.0.2.202', '2001:db8::201'], reals: [real('203.0.113.12', 80, 'fullnat', 1), real('2001:db8:2::11', 8080, 'fullnat', 3)] },
    // Added in this order: the save keeps it (a flow's place in the pool depends on it).
    { ...K, scheduler: 'rr', stats: zero, laddrs: ['192.0.2.203', '192.0.2.201'], reals: [real('203.0.113.12', 8080, 'fullnat', 1), real('203.0.113.11', 80, 'fullnat', 3)] },
    { ...K, port: 443, scheduler: 'wlc', stats: zero, reals: [real('192.0.2.11', 443, 'dr', 1)] },
  ],
};

test('-S: -b on FULLNAT real servers, each local address a -P line right after its service, in the order added', () => {
  const want = `-A -t 192.0.2.80:80 -s rr
-P -t 192.0.2.80:80 -z 192.0.2.203
-P -t 192.0.2.80:80 -z 192.0.2.201
-a -t 192.0.2.80:80 -r 203.0.113.11:80 -b -w 3
-a -t 192.0.2.80:80 -r 203.0.113.12:8080 -b -w 1
-A -t 192.0.2.80:443 -s wlc
-a -t 192.0.2.80:443 -r 192.0.2.11:443 -g -w 1
-A -t [2001:db8::80]:80 -s wrr
-P -t [2001:db8::80]:80 -z 192.0.2.202
-P -t [2001:db8::80]:80 -z 2001:db8::201
-a -t [2001:db8::80]:80 -r 203.0.113.12:80 -b -w 1
-a -t [2001:db8::80]:80 -r [2001:db8:2::11]:8080 -b -w 3
`;
  assert.equal(formatSave(config), want);
  // -R reads it back: the same requests a hand-typed script would send.
  const { requests } = parseRestore(formatConfig(config, config.timeouts));
  assert.deepEqual(requests.slice(0, 5), [
    { op: 'add-service', svc: { ...K, scheduler: 'rr' } },
    { op: 'add-laddr', key: K, laddr: '192.0.2.203' },
    { op: 'add-laddr', key: K, laddr: '192.0.2.201' },
    { op: 'add-real', key: K, real: { addr: '203.0.113.11', port: 80, fwd: 'fullnat', weight: 3 } },
    { op: 'add-real', key: K, real: { addr: '203.0.113.12', port: 8080, fwd: 'fullnat', weight: 1 } },
  ]);
  assert.equal(requests.length, 13);
  assert.deepEqual(requests[12], { op: 'set-timeouts', timeouts: { tcp: 900, tcpfin: 120, udp: 300 } });
});

test('xvsadm: -G, -P/-Q through request; xvsd\'s warnings on stderr; the forks\' words for refusals', async () => {
  const sent: Request[] = [];
  const warning = 'a warning from xvsd';
  const deps = {
    request: async (req: Request) => {
      sent.push(req);
      if (req.op === 'get-laddrs') return req.key ? [views[0]] : views;
      if (req.op === 'add-real' || req.op === 'batch') return { warnings: [warning] };
      return undefined;
    },
    readInput: async () => '-A -t 192.0.2.80:80\n-a -t 192.0.2.80:80 -r 203.0.113.11 -b\n',
  };
  const all = await runXvsadm(['-G'], deps);
  assert.deepEqual([all.stdout, all.stderr, all.exitCode], [formatLaddrs(views), '', 0]);
  const one = await runXvsadm(['-G', ...T], deps);
  assert.equal(one.stdout, formatLaddrs([views[0]!]));
  const add = await runXvsadm(['-P', ...T, '-z', '192.0.2.201'], deps);
  assert.deepEqual([add.stdout, add.stderr, add.exitCode], ['', '', 0]);
  const real = await runXvsadm(['-a', ...T, '-r', '203.0.113.11', '-b'], deps);
  assert.deepEqual([real.stdout, real.stderr, real.exitCode], ['', `xvsadm: warning: ${warning}\n`, 0]);
  const restore = await runXvsadm(['-R'], deps);
  assert.deepEqual([restore.stderr, restore.exitCode], [`xvsadm: warning: ${warning}\n`, 0]);
  assert.deepEqual(sent.map((r) => r.op), ['get-laddrs', 'get-laddrs', 'add-laddr', 'add-real', 'batch']);

  const refusing = (e: XvsError) => ({ request: async () => { throw e; } });
  const cases: [string[], XvsError, string, number][] = [
    [['-P', ...T, '-z', '192.0.2.201'], new XvsError('NO_SERVICE', 'no service tcp 192.0.2.80:80'), 'Service not defined', 255],
    [['-P', ...T, '-z', '192.0.2.201'], new XvsError('LADDR_EXISTS', 'local address 192.0.2.201 already in service tcp 192.0.2.80:80'), 'Local address already exists', 255],
    [['-Q', ...T, '-z', '192.0.2.209'], new XvsError('NO_LADDR', 'no local address 192.0.2.209 in service tcp 192.0.2.80:80'), 'No such Local address', 255],
    // -G is a listing: exit 1 as ipvsadm's list paths.
    [['-G', ...T], new XvsError('NO_SERVICE', 'no service tcp 192.0.2.80:80'), 'Service not defined', 1],
    [['-P', ...T, '-z', '192.0.2.217'], new XvsError('CAPACITY', 'at most 16 local addresses per service'), 'xvsadm: CAPACITY: at most 16 local addresses per service', 255],
  ];
  for (const [argv, err, first, code] of cases) {
    const r = await runXvsadm(argv, refusing(err));
    assert.equal(r.stderr.split('\n')[0], first, argv.join(' '));
    assert.equal(r.exitCode, code, argv.join(' '));
    assert.equal(r.stdout, '');
  }
});
