// xvsadm's IPv6 forms: ipvsadm 1.31's [ADDR]:PORT services and real
// servers, -M as a prefix length, and listings whose expected bytes were
// written from ipvsadm's printf formats (print_title, print_service_entry,
// print_largenum) and libipvs's sort order, not from this formatter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commandToRequest, parseIpvsadm, type RequestCommand } from '../src/cli/ipvsadm-args.js';
import { formatList } from '../src/cli/list-format.js';
import { compareAddr, ipvsSort, ntop } from '../src/cli/list-order.js';
import { runXvsadm } from '../src/cli/xvsadm-main.js';
import { parseRequest, type ListResult, type Request, type StatsView } from '../src/control/protocol.js';
import { XvsError } from '../src/errors.js';

const K6 = { proto: 'tcp', addr: '2001:db8::80', port: 80 } as const;
const U6 = { proto: 'udp', addr: '2001:db8::53', port: 53 } as const;
const T6 = ['-t', '[2001:db8::80]:80'];

function toRequest(argv: string[]): Request {
  const cmd = parseIpvsadm(argv);
  assert.notEqual(cmd.op, 'help');
  return commandToRequest(cmd as RequestCommand);
}

const accepted: [string[], Request][] = [
  [['-A', ...T6, '-s', 'rr'], { op: 'add-service', svc: { ...K6, scheduler: 'rr' } }],
  [['-A', '-u', '[2001:db8::53]:53'], { op: 'add-service', svc: { ...U6, scheduler: 'wlc' } }],
  [['-A', '-t', '[2001:0DB8:0000::0080]:80'], { op: 'add-service', svc: { ...K6, scheduler: 'wlc' } }],
  [['-D', '--tcp-service=[2001:db8::80]:80'], { op: 'del-service', key: K6 }],
  // DR and TUN forward to the service's port: ipvsadm sends that port (port 0 here, "the service's").
  [['-a', ...T6, '-r', '[2001:db8::11]:80', '-g', '-w', '3'], { op: 'add-real', key: K6, real: { addr: '2001:db8::11', port: 0, fwd: 'dr', weight: 3 } }],
  [['-a', ...T6, '-r', '2001:db8::11'], { op: 'add-real', key: K6, real: { addr: '2001:db8::11', port: 0, fwd: 'dr', weight: 1 } }],
  // A bare address is all address, as inet_pton reads it: the last group is no port.
  [['-a', ...T6, '-r', '2001:db8::11:80', '-i'], { op: 'add-real', key: K6, real: { addr: '2001:db8::11:80', port: 0, fwd: 'tun', weight: 1 } }],
  // Either family tunnels to either (the daemon checks DR's family).
  [['-a', '-t', '192.0.2.80:80', '-r', '[2001:db8::11]:80', '-i'],
    { op: 'add-real', key: { proto: 'tcp', addr: '192.0.2.80', port: 80 }, real: { addr: '2001:db8::11', port: 0, fwd: 'tun', weight: 1 } }],
  [['-a', ...T6, '-r', '192.0.2.11', '-i'], { op: 'add-real', key: K6, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1 } }],
  [['-e', '-u', '[2001:db8::53]:53', '-r', '[2001:db8::21]:53', '-w', '0'], { op: 'edit-real', key: U6, real: { addr: '2001:db8::21', port: 0, fwd: 'dr', weight: 0 } }],
  [['-d', ...T6, '-r', '[2001:db8::11]:80'], { op: 'del-real', key: K6, real: { addr: '2001:db8::11', port: 80 } }],
  [['-L', '-n', ...T6], { op: 'list', key: K6 }],
  [['-Z', '-u', '[2001:db8::53]:53'], { op: 'zero', key: U6 }],
  // -M is a prefix length for an IPv6 service, as ipvsadm's (`-p 360 -M 64`).
  [['-A', ...T6, '-p', '360', '-M', '64'], { op: 'add-service', svc: { ...K6, scheduler: 'wlc', persistent: 360, netmask: '64' } }],
  // ipvsadm reads a -M before the service as an IPv4 mask, and an IPv6 service then resets it to 128.
  [['-A', '-M', '48', '-p', ...T6], { op: 'add-service', svc: { ...K6, scheduler: 'wlc', persistent: 360, netmask: '128' } }],
  // atoi: leading digits count.
  [['-A', ...T6, '-p', '-M', '064'], { op: 'add-service', svc: { ...K6, scheduler: 'wlc', persistent: 360, netmask: '64' } }],
  [['-A', ...T6, '-p', '-M', '64x'], { op: 'add-service', svc: { ...K6, scheduler: 'wlc', persistent: 360, netmask: '64' } }],
  // -M without -p: accepted and without effect, as with ipvsadm.
  [['-A', ...T6, '-M', '64'], { op: 'add-service', svc: { ...K6, scheduler: 'wlc' } }],
  // inet_aton reads "24" as 0.0.0.24, a mask like any other.
  [['-A', '-t', '192.0.2.80:80', '-p', '-M', '24'], { op: 'add-service', svc: { proto: 'tcp', addr: '192.0.2.80', port: 80, scheduler: 'wlc', persistent: 360, netmask: '0.0.0.24' } }],
  [['-E', ...T6, '-s', 'sh', '-p', '60', '--netmask', '128'], { op: 'edit-service', svc: { ...K6, scheduler: 'sh', persistent: 60, netmask: '128' } }],
  [['-A', ...T6, '-p', '-M', '1'], { op: 'add-service', svc: { ...K6, scheduler: 'wlc', persistent: 360, netmask: '1' } }],
];

test('IPv6 ipvsadm argv maps to the expected request, which the daemon accepts unchanged', () => {
  for (const [argv, want] of accepted) {
    const req = toRequest(argv);
    assert.deepEqual(req, want, argv.join(' '));
    assert.deepEqual(parseRequest(JSON.stringify(req)), req, argv.join(' '));
  }
});

// ipvsadm 1.31's words (parse_service, the -M case of parse_options).
const refused: [string[], string, RegExp][] = [
  [['-A', '-t', '[2001:db8::80]'], 'BAD_ARGUMENT', /^illegal virtual server address\[:port\] specified$/],
  [['-a', ...T6, '-r', '[2001:db8::11]'], 'BAD_ARGUMENT', /^illegal real server address\[:port\] specified$/],
  [['-A', '-t', '[2001:db8::80]:'], 'BAD_ARGUMENT', /^illegal virtual server address/],
  [['-A', '-t', '[2001:db8::80]:65536'], 'BAD_ARGUMENT', /^illegal virtual server address/],
  [['-A', '-t', '[2001:db8::80]:http'], 'BAD_ARGUMENT', /^illegal virtual server address/], // no names given to the parser
  [['-A', '-t', '2001:db8::80'], 'BAD_ARGUMENT', /^Zero port specified for non-persistent service$/],
  [['-A', '-t', '[2001:db8::80:80'], 'BAD_ARGUMENT', /^illegal virtual server address/],
  [['-A', '-t', '[2001:db8::g]:80'], 'BAD_ARGUMENT', /^illegal virtual server address/],
  [['-A', ...T6, '-p', '-M', '0'], 'BAD_ARGUMENT', /^illegal ipv6 netmask specified$/],
  [['-A', ...T6, '-p', '-M', '129'], 'BAD_ARGUMENT', /^illegal ipv6 netmask specified$/],
  [['-A', ...T6, '-p', '-M', '/64'], 'BAD_ARGUMENT', /^illegal ipv6 netmask specified$/],
  [['-A', ...T6, '-p', '-M', 'ffff:ffff:ffff:ffff::'], 'BAD_ARGUMENT', /^illegal ipv6 netmask specified$/],
  [['-A', ...T6, '-p', '-M', '255.255.255.0'], 'BAD_ARGUMENT', /^illegal ipv6 netmask specified$/],
];

test('bad IPv6 forms are refused with one line, the right code and nothing sent', async () => {
  for (const [argv, code, message] of refused) {
    assert.throws(() => parseIpvsadm(argv), (e: unknown) => {
      assert.ok(e instanceof XvsError, `${argv.join(' ')}: ${String(e)}`);
      assert.equal(e.code, code, `${argv.join(' ')}: ${e.message}`);
      assert.match(e.message, message, argv.join(' '));
      return true;
    }, argv.join(' '));
    // No names (as the parse above has none): the system's /etc/services knows "http".
    const names = { lookup: async () => undefined, reverse: async () => undefined, services: () => '' };
    const res = await runXvsadm(argv, { request: async () => assert.fail(`${argv.join(' ')} must not send`), names });
    assert.equal(res.stdout, '');
    assert.equal(res.stderr.split('\n').length, 2, res.stderr);
    assert.equal(res.exitCode, 2);
  }
});

test('the daemon refuses a netmask of the wrong form for the service family', () => {
  const svc = (addr: string, netmask: unknown) => JSON.stringify({ op: 'add-service', svc: { proto: 'tcp', addr, port: 80, scheduler: 'rr', persistent: 60, netmask } });
  for (const [addr, mask] of [['2001:db8::80', '255.255.255.0'], ['2001:db8::80', '0'], ['2001:db8::80', '129'], ['2001:db8::80', 64], ['192.0.2.80', '24']] as const) {
    assert.throws(() => parseRequest(svc(addr, mask)), (e: unknown) => e instanceof XvsError && e.code === 'BAD_ARGUMENT' && /svc\.netmask/.test(e.message), `${addr} ${mask}`);
  }
  assert.equal((parseRequest(svc('2001:db8::80', '128')) as { svc: { netmask?: string } }).svc.netmask, '128');
});

const zero: StatsView = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };
const real = (addr: string, port: number, fwd: 'dr' | 'tun', weight: number, more: Partial<ListResult['services'][number]['reals'][number]> = {}) => ({
  addr, port, fwd, weight, uthreshold: 0, lthreshold: 0, activeConns: 0, inactConns: 0, stats: zero, ...more,
});
const LONG = '2001:db8:1234:5678:9abc:def0:1234:5678';

// Out of order on purpose; IPv6 names longer than ipvsadm's columns.
const sample: ListResult = {
  connTableSize: 4096,
  counters: {},
  timeouts: { tcp: 900, tcpfin: 120, udp: 300 },
  services: [
    { ...U6, scheduler: 'rr', persistent: 300, netmask: '64', stats: { conns: 7, inpkts: 7, outpkts: 0, inbytes: 420, outbytes: 0 },
      reals: [real('2001:db8::21', 53, 'tun', 0, { inactConns: 2 })] },
    { proto: 'tcp', addr: LONG, port: 65535, scheduler: 'rr', stats: zero, reals: [real(LONG, 65535, 'dr', 1, { uthreshold: 2147483647 })] },
    { ...K6, scheduler: 'wrr', stats: { conns: 123456789, inpkts: 1234567890, outpkts: 0, inbytes: 98765432109876, outbytes: 0 },
      reals: [
        real('2001:db8::12', 80, 'dr', 1),
        real('2001:db8::11', 0, 'dr', 3, { activeConns: 12, inactConns: 3, uthreshold: 100, lthreshold: 10,
          stats: { conns: 100000000, inpkts: 999999999, outpkts: 0, inbytes: 99999999999, outbytes: 0 } }),
      ] },
    { proto: 'tcp', addr: '2001:db8:0:1::443', port: 443, scheduler: 'sh', persistent: 360, netmask: '128', stats: zero, reals: [] },
    { proto: 'udp', addr: '192.0.2.53', port: 53, scheduler: 'rr', stats: zero, reals: [] },
    // An IPv4 VIP tunnelled to real servers of both families.
    { proto: 'tcp', addr: '192.0.2.80', port: 80, scheduler: 'wlc', stats: { conns: 5, inpkts: 50, outpkts: 0, inbytes: 3000, outbytes: 0 },
      reals: [
        real('2001:db8::11', 80, 'tun', 2, { stats: { conns: 3, inpkts: 30, outpkts: 0, inbytes: 1800, outbytes: 0 } }),
        real('192.0.2.11', 80, 'tun', 1, { stats: { conns: 2, inpkts: 20, outpkts: 0, inbytes: 1200, outbytes: 0 } }),
      ] },
  ],
};

test('IPv6 listing matches ipvsadm -L -n byte for byte', () => {
  // IPv4 services before IPv6 (family first, even UDP before TCP), then TCP before UDP; an IPv6
  // name is never cut (the IPv4 one is, at 33 and 28 columns) and pushes the
  // columns after it; a prefix other than 128 shows as "mask N".
  const want = [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port Scheduler Flags',
    '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
    'TCP  192.0.2.80:80 wlc',
    '  -> 192.0.2.11:80                Tunnel  1      0          0         ',
    '  -> [2001:db8::11]:80            Tunnel  2      0          0         ',
    'UDP  192.0.2.53:53 rr',
    'TCP  [2001:db8::80]:80 wrr',
    '  -> [2001:db8::11]:80            Route   3      12         3         ',
    '  -> [2001:db8::12]:80            Route   1      0          0         ',
    'TCP  [2001:db8:0:1::443]:443 sh persistent 360',
    'TCP  [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 rr',
    '  -> [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 Route   1      0          0         ',
    'UDP  [2001:db8::53]:53 rr persistent 300 mask 64',
    '  -> [2001:db8::21]:53            Tunnel  0      0          2         ',
    '',
  ].join('\n');
  assert.equal(formatList(sample, { stats: false, exact: false }), want);
});

test('IPv6 --stats listing matches ipvsadm -L -n --stats', () => {
  const want = [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
    '  -> RemoteAddress:Port',
    'TCP  192.0.2.80:80                       5       50        0     3000        0',
    '  -> 192.0.2.11:80                       2       20        0     1200        0',
    '  -> [2001:db8::11]:80                   3       30        0     1800        0',
    'UDP  192.0.2.53:53                       0        0        0        0        0',
    'TCP  [2001:db8::80]:80             123456K    1234M        0   98765G        0',
    '  -> [2001:db8::11]:80             100000K  999999K        0   99999M        0',
    '  -> [2001:db8::12]:80                   0        0        0        0        0',
    'TCP  [2001:db8:0:1::443]:443             0        0        0        0        0',
    'TCP  [2001:db8:1234:5678:9abc:def0:1234:5678]:65535        0        0        0        0        0',
    '  -> [2001:db8:1234:5678:9abc:def0:1234:5678]:65535        0        0        0        0        0',
    'UDP  [2001:db8::53]:53                   7        7        0      420        0',
    '  -> [2001:db8::21]:53                   0        0        0        0        0',
    '',
  ].join('\n');
  assert.equal(formatList(sample, { stats: true, exact: false }), want);
});

test('IPv6 --thresholds listing matches ipvsadm -L -n --thresholds', () => {
  const want = [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ',
    '  -> RemoteAddress:Port',
    'TCP  192.0.2.80:80 wlc',
    '  -> 192.0.2.11:80                0          0          0          0         ',
    '  -> [2001:db8::11]:80            0          0          0          0         ',
    'UDP  192.0.2.53:53 rr',
    'TCP  [2001:db8::80]:80 wrr',
    '  -> [2001:db8::11]:80            100        10         12         3         ',
    '  -> [2001:db8::12]:80            0          0          0          0         ',
    'TCP  [2001:db8:0:1::443]:443 sh persistent 360',
    'TCP  [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 rr',
    '  -> [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 2147483647 0          0          0         ',
    'UDP  [2001:db8::53]:53 rr persistent 300 mask 64',
    '  -> [2001:db8::21]:53            0          0          0          2         ',
    '',
  ].join('\n');
  assert.equal(formatList(sample, { stats: false, exact: false, thresholds: true }), want);
});

test('addresses print as glibc inet_ntop writes them', () => {
  const cases: [string, string][] = [
    ['2001:db8::80', '2001:db8::80'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of two equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero word is not a run
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['::ffff:c000:250', '::ffff:192.0.2.80'], // IPv4-mapped
    ['::c000:250', '::192.0.2.80'], // IPv4-compatible
    ['::1:c000:250', '::1:c000:250'],
    ['fe80::1', 'fe80::1'],
  ];
  for (const [addr, want] of cases) assert.equal(ntop(addr), want, addr);
  const one = (addr: string): ListResult => ({ ...sample, services: [{ proto: 'tcp', addr, port: 80, scheduler: 'rr', stats: zero, reals: [] }] });
  assert.match(formatList(one('::ffff:c000:250'), { stats: false, exact: false }), /\nTCP {2}\[::ffff:192\.0\.2\.80\]:80 rr\n/);
});

test('order: libipvs\'s int subtraction and glibc\'s merge sort', () => {
  // 0xc0000250 - 0x0a000001 overflows an int: 192.0.2.80 sorts before 10.0.0.1...
  assert.ok(compareAddr('192.0.2.80', '10.0.0.1') < 0);
  assert.ok(compareAddr('10.0.0.1', '192.0.2.80') > 0);
  // ...but not before 100.0.0.1, which sorts after 10.0.0.1: no total order,
  // so the result follows the merge sort and its input order.
  assert.ok(compareAddr('100.0.0.1', '192.0.2.80') < 0 && compareAddr('10.0.0.1', '100.0.0.1') < 0);
  const cmp = compareAddr;
  assert.deepEqual(ipvsSort(['10.0.0.1', '100.0.0.1', '192.0.2.80'], cmp), ['10.0.0.1', '100.0.0.1', '192.0.2.80']);
  assert.deepEqual(ipvsSort(['192.0.2.80', '10.0.0.1', '100.0.0.1'], cmp), ['192.0.2.80', '10.0.0.1', '100.0.0.1']);
  // IPv6 word by word, with the same overflow in each word.
  assert.ok(compareAddr('2001:db8::11', '2001:db8::12') < 0);
  assert.ok(compareAddr('2001:db8:ffff::', '2001:db8:1::') < 0, 'words 0xffff0000 and 0x00010000 are 2^31 or more apart');
  assert.ok(compareAddr('2001:db8::ffff:0', '2001:db8::1:0') < 0);
  assert.ok(compareAddr('fe80::1', '2001:db8::1') < 0, '0xfe800000 - 0x20010db8 overflows');
  // An IPv6 first entry reads four words, an IPv4 one only the first.
  assert.ok(compareAddr('2001:db8::11', '192.0.2.11') > 0 && compareAddr('192.0.2.11', '2001:db8::11') < 0);
  assert.equal(compareAddr('32.1.13.184', '2001:db8::'), 0);
  // Stable on ties, as the merge takes the left element first.
  const byFirst = (a: [number, string], b: [number, string]) => a[0] - b[0];
  assert.deepEqual(ipvsSort([[1, 'a'], [0, 'b'], [1, 'c'], [0, 'd'], [1, 'e']] as [number, string][], byFirst).map((x) => x[1]), ['b', 'd', 'a', 'c', 'e']);
});

test('xvsadm: IPv6 services through request, listed in ipvsadm layout', async () => {
  const sent: Request[] = [];
  const deps = {
    request: async (req: Request) => {
      sent.push(req);
      return req.op === 'list' ? { ...sample, services: sample.services.filter((s) => s.addr === K6.addr) } : undefined;
    },
  };
  const add = await runXvsadm(['-A', ...T6, '-s', 'rr', '-p', '360', '-M', '64'], deps);
  assert.deepEqual([add.stdout, add.stderr, add.exitCode], ['', '', 0]);
  const one = await runXvsadm(['-L', '-n', ...T6], deps);
  assert.equal(one.stdout, [
    'Prot LocalAddress:Port Scheduler Flags',
    '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
    'TCP  [2001:db8::80]:80 wrr',
    '  -> [2001:db8::11]:80            Route   3      12         3         ',
    '  -> [2001:db8::12]:80            Route   1      0          0         ',
    '',
  ].join('\n'));
  assert.deepEqual(sent, [
    { op: 'add-service', svc: { ...K6, scheduler: 'rr', persistent: 360, netmask: '64' } },
    { op: 'list', key: K6 },
  ]);
});
