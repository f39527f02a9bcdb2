import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandToRequest, parseIpvsadm, type RequestCommand } from '../src/cli/ipvsadm-args.js';
import { formatList, largeNum } from '../src/cli/list-format.js';
import { extractSocket, runXvsadm } from '../src/cli/xvsadm-main.js';
import type { ListResult, Request, StatsView } from '../src/control/protocol.js';
import { DEFAULT_SOCKET, request, serve } from '../src/control/socket.js';
import { XvsError } from '../src/errors.js';

const K = { proto: 'tcp', addr: '192.0.2.80', port: 80 } as const;
const U = { proto: 'udp', addr: '192.0.2.53', port: 53 } as const;
const T = ['-t', '192.0.2.80:80'];

function toRequest(argv: string[]): Request {
  const cmd = parseIpvsadm(argv);
  assert.notEqual(cmd.op, 'help');
  return commandToRequest(cmd as RequestCommand);
}

const accepted: [string[], Request][] = [
  [['-A', ...T, '-s', 'wrr'], { op: 'add-service', svc: { ...K, scheduler: 'wrr' } }],
  [['-A', ...T], { op: 'add-service', svc: { ...K, scheduler: 'wlc' } }],
  [['--add-service', '--tcp-service', '192.0.2.80:80', '--scheduler', 'rr'], { op: 'add-service', svc: { ...K, scheduler: 'rr' } }],
  [['-A', ...T, '-s', 'lc'], { op: 'add-service', svc: { ...K, scheduler: 'lc' } }], // the daemon decides what is implemented
  [['-E', '-u', '192.0.2.53:53', '-s', 'rr'], { op: 'edit-service', svc: { ...U, scheduler: 'rr' } }],
  [['-E', ...T], { op: 'edit-service', svc: { ...K, scheduler: 'wlc' } }],
  [['-D', ...T], { op: 'del-service', key: K }],
  [['-C'], { op: 'clear' }],
  [['--clear'], { op: 'clear' }],
  [['-a', ...T, '-r', '192.0.2.11', '-w', '3'], { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 3 } }],
  [['-a', ...T, '-r', '192.0.2.11:8080', '-m'], { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 8080, fwd: 'nat', weight: 1 } }],
  [['-a', ...T, '-r', '192.0.2.11', '-i', '-w', '0'], { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 0 } }],
  [['-at', '192.0.2.80:80', '-r', '192.0.2.11:80', '-g', '-w5'], { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 80, fwd: 'dr', weight: 5 } }],
  [['--add-server', '--tcp-service=192.0.2.80:80', '--real-server=192.0.2.11', '--masquerading', '--weight=65535'],
    { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'nat', weight: 65535 } }],
  [['-e', ...T, '-r', '192.0.2.11', '-w', '7'], { op: 'edit-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 7 } }],
  [['-d', ...T, '-r', '192.0.2.11'], { op: 'del-real', key: K, real: { addr: '192.0.2.11', port: 0 } }],
  [['-d', ...T, '-r', '192.0.2.11:8080'], { op: 'del-real', key: K, real: { addr: '192.0.2.11', port: 8080 } }],
  [['-L', '-n'], { op: 'list' }],
  [['-l'], { op: 'list' }],
  [['-L', '-l', '-n'], { op: 'list' }],
  [['--list', '--numeric', '--stats', '--exact'], { op: 'list' }],
  [['-Ln', ...T], { op: 'list', key: K }],
  [['-L', '-n', '--sort'], { op: 'list' }],
  [[], { op: 'list' }],
  [['-Z'], { op: 'zero' }],
  [['-Z', '-u', '192.0.2.53:53'], { op: 'zero', key: U }],
  [['-A', '-t', '[2001:DB8:0::1]:443'], { op: 'add-service', svc: { proto: 'tcp', addr: '2001:db8::1', port: 443, scheduler: 'wlc' } }],
  [['-a', '-t', '[2001:db8::1]:443', '-r', '2001:db8::11', '-m'],
    { op: 'add-real', key: { proto: 'tcp', addr: '2001:db8::1', port: 443 }, real: { addr: '2001:db8::11', port: 0, fwd: 'nat', weight: 1 } }],
];

test('ipvsadm argv maps to the expected request', () => {
  for (const [argv, want] of accepted) assert.deepEqual(toRequest(argv), want, argv.join(' '));
});

test('list options travel with the list command', () => {
  assert.deepEqual(parseIpvsadm(['-L', '-n', '--stats', '--exact']), { op: 'list', list: { numeric: true, stats: true, exact: true } });
  assert.deepEqual(parseIpvsadm(['-L']), { op: 'list', list: { numeric: false, stats: false, exact: false } });
  assert.equal(parseIpvsadm(['-h']).op, 'help');
  assert.equal(parseIpvsadm(['--help']).op, 'help');
});

const refused: [string[], string, RegExp?][] = [
  [['-A'], 'BAD_ARGUMENT', /^-A needs -t or -u$/],
  [['-a'], 'BAD_ARGUMENT', /^-a needs -t or -u and -r$/],
  [['-a', ...T], 'BAD_ARGUMENT', /^-a needs -r$/],
  [['-d', '-r', '192.0.2.11'], 'BAD_ARGUMENT', /^-d needs -t or -u$/],
  [['-n'], 'BAD_ARGUMENT', /no command/],
  [['-A', '-a', ...T], 'BAD_ARGUMENT', /one command at a time/],
  [['-A', ...T, '-u', '192.0.2.53:53'], 'BAD_ARGUMENT'],
  [['-A', ...T, ...T], 'BAD_ARGUMENT'],
  [['-A', ...T, '-s', 'rr', '-s', 'wrr'], 'BAD_ARGUMENT'],
  [['-A', ...T, '-s', 'fifo'], 'BAD_ARGUMENT', /unknown scheduler 'fifo'/],
  [['-A', ...T, '-r', '192.0.2.11'], 'BAD_ARGUMENT', /-r cannot be used with -A/],
  [['-d', ...T, '-r', '192.0.2.11', '-w', '3'], 'BAD_ARGUMENT', /-w cannot be used with -d/],
  [['-C', ...T], 'BAD_ARGUMENT'],
  [['-L', '-s', 'rr'], 'BAD_ARGUMENT'],
  [['-a', ...T, '-r', '192.0.2.11', '-g', '-m'], 'BAD_ARGUMENT', /one forwarding method/],
  [['-a', ...T, '-r', '192.0.2.11', '-r', '192.0.2.12'], 'BAD_ARGUMENT'],
  [['-a', ...T, '-r', '192.0.2.11', '-w', '65536'], 'BAD_ARGUMENT', /weight/],
  [['-a', ...T, '-r', '192.0.2.11', '-w', 'x'], 'BAD_ARGUMENT'],
  [['-a', ...T, '-r', '192.0.2.11', '-w', '-1'], 'BAD_ARGUMENT'],
  [['-a', ...T, '-r', '192.0.2.11', '-w'], 'BAD_ARGUMENT'],
  [['-q'], 'BAD_ARGUMENT', /unknown option '-q'/],
  [['-L', 'extra'], 'BAD_ARGUMENT', /unexpected argument 'extra'/],
  [['-A', '-t', '192.0.2.80'], 'BAD_ADDRESS', /needs a port/],
  [['-A', '-t', '192.0.2.80:0'], 'BAD_ADDRESS'],
  [['-A', '-t', '192.0.2.80:65536'], 'BAD_ADDRESS'],
  [['-A', '-t', '192.0.2.80:http'], 'BAD_ADDRESS'],
  [['-A', '-t', '192.0.2.80:'], 'BAD_ADDRESS'],
  [['-A', '-t', 'lb.example.com:80'], 'BAD_ADDRESS'],
  [['-A', '-t', '300.1.1.1:80'], 'BAD_ADDRESS'],
  [['-A', '-t', '[192.0.2.80]:80'], 'BAD_ADDRESS'],
  [['-A', '-t', '[fe80::1%eth0]:80'], 'BAD_ADDRESS'],
  [['-a', ...T, '-r', '192.0.2.11:99999'], 'BAD_ADDRESS'],
  [['-A', ...T, '-p'], 'UNSUPPORTED', /^-p \(--persistent\) is not supported yet$/],
  [['-A', ...T, '-p', '300'], 'UNSUPPORTED'],
  [['-A', ...T, '-M', '255.255.255.0'], 'UNSUPPORTED'],
  [['-A', '-f', '1'], 'UNSUPPORTED', /-f/],
  [['-a', ...T, '-r', '192.0.2.11', '-x', '10'], 'UNSUPPORTED'],
  [['-a', ...T, '-r', '192.0.2.11', '-y', '5'], 'UNSUPPORTED'],
  [['--set', '900', '120', '300'], 'UNSUPPORTED', /--set/],
  [['-R'], 'UNSUPPORTED'],
  [['-S', '-n'], 'UNSUPPORTED'],
  [['-L', '-c'], 'UNSUPPORTED'],
  [['-L', '--rate'], 'UNSUPPORTED'],
  [['--start-daemon', 'master'], 'UNSUPPORTED'],
];

test('bad or unsupported argv is refused with the right code and a one-line message', () => {
  for (const [argv, code, message] of refused) {
    assert.throws(
      () => parseIpvsadm(argv),
      (e: unknown) => {
        assert.ok(e instanceof XvsError, `${argv.join(' ')}: ${String(e)}`);
        assert.equal(e.code, code, `${argv.join(' ')}: ${e.message}`);
        assert.ok(!e.message.includes('\n'));
        if (message) assert.match(e.message, message, argv.join(' '));
        return true;
      },
      argv.join(' '),
    );
  }
});

test('--socket is ours, stripped wherever it appears', () => {
  assert.deepEqual(extractSocket(['-L', '-n']), { socketPath: DEFAULT_SOCKET, rest: ['-L', '-n'] });
  assert.deepEqual(extractSocket(['-L', '--socket', '/tmp/x.sock', '-n']), { socketPath: '/tmp/x.sock', rest: ['-L', '-n'] });
  assert.deepEqual(extractSocket(['--socket=/tmp/y.sock', '-C']), { socketPath: '/tmp/y.sock', rest: ['-C'] });
  assert.throws(() => extractSocket(['-L', '--socket']), (e: unknown) => e instanceof XvsError && e.code === 'BAD_ARGUMENT');
});

const zero: StatsView = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };

// Deliberately out of order: the listing sorts as ipvsadm does.
const sample: ListResult = {
  connTableSize: 4096,
  counters: {},
  services: [
    {
      ...U, scheduler: 'rr', stats: { conns: 7, inpkts: 7, outpkts: 0, inbytes: 420, outbytes: 0 },
      reals: [{ addr: '192.0.2.21', port: 53, fwd: 'tun', weight: 0, activeConns: 0, inactConns: 2, stats: zero }],
    },
    {
      ...K, scheduler: 'wrr',
      stats: { conns: 123456789, inpkts: 1234567890, outpkts: 99999999, inbytes: 98765432109876, outbytes: 100000000000000 },
      reals: [
        { addr: '192.0.2.12', port: 8080, fwd: 'nat', weight: 1, activeConns: 5, inactConns: 17,
          stats: { conns: 100000000, inpkts: 999999999, outpkts: 1000000000, inbytes: 99999999999, outbytes: 100000000000 } },
        { addr: '192.0.2.9', port: 80, fwd: 'fullnat', weight: 2, activeConns: 0, inactConns: 0, stats: zero },
        { addr: '192.0.2.11', port: 80, fwd: 'dr', weight: 3, activeConns: 12345, inactConns: 0, stats: zero },
      ],
    },
    { proto: 'tcp', addr: '10.0.0.1', port: 443, scheduler: 'wlc', stats: zero, reals: [] },
  ],
};

test('listing matches ipvsadm -L -n byte for byte', () => {
  const want = [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port Scheduler Flags',
    '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
    'TCP  10.0.0.1:443 wlc',
    'TCP  192.0.2.80:80 wrr',
    '  -> 192.0.2.9:80                 FullNat 2      0          0         ',
    '  -> 192.0.2.11:80                Route   3      12345      0         ',
    '  -> 192.0.2.12:8080              Masq    1      5          17        ',
    'UDP  192.0.2.53:53 rr',
    '  -> 192.0.2.21:53                Tunnel  0      0          2         ',
    '',
  ].join('\n');
  assert.equal(formatList(sample, { stats: false, exact: false }), want);
});

test('--stats listing abbreviates as ipvsadm does, --exact does not', () => {
  const head = [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
    '  -> RemoteAddress:Port',
  ];
  const want = [
    ...head,
    'TCP  10.0.0.1:443                        0        0        0        0        0',
    'TCP  192.0.2.80:80                 123456K    1234M 99999999   98765G     100T',
    '  -> 192.0.2.9:80                        0        0        0        0        0',
    '  -> 192.0.2.11:80                       0        0        0        0        0',
    '  -> 192.0.2.12:8080               100000K  999999K    1000M   99999M     100G',
    'UDP  192.0.2.53:53                       7        7        0      420        0',
    '  -> 192.0.2.21:53                       0        0        0        0        0',
    '',
  ].join('\n');
  assert.equal(formatList(sample, { stats: true, exact: false }), want);
  const ends = (l: string): number[] => [...l.matchAll(/\S+/g)].slice(-5).map((m) => m.index + m[0].length);
  const rows = want.split('\n').slice(3, -1);
  for (const row of rows) assert.deepEqual(ends(row), ends(head[1]!), row);
  const exact = formatList(sample, { stats: true, exact: true }).split('\n');
  assert.equal(exact[4], 'TCP  192.0.2.80:80                123456789 1234567890 99999999 98765432109876 100000000000000');
  assert.equal(exact[7], '  -> 192.0.2.12:8080              100000000 999999999 1000000000 99999999999 100000000000');
});

test('largeNum follows print_largenum at every boundary', () => {
  const cases: [number, boolean, string][] = [
    [0, false, '        0'],
    [99999999, false, ' 99999999'],
    [100000000, false, '  100000K'],
    [999999999, false, '  999999K'],
    [1000000000, false, '    1000M'],
    [99999999999, false, '   99999M'],
    [100000000000, false, '     100G'],
    [99999999999999, false, '   99999G'],
    [100000000000000, false, '     100T'],
    [5, true, '        5'],
    [12345678, true, ' 12345678'],
    [123456789, true, ' 123456789'],
  ];
  for (const [n, exact, want] of cases) assert.equal(largeNum(n, exact), want, `${n} exact=${exact}`);
});

test('listing one service leaves out the version line', () => {
  const one: ListResult = { ...sample, services: [sample.services[0]!] };
  const out = formatList(one, { stats: false, exact: false, header: false });
  assert.ok(out.startsWith('Prot LocalAddress:Port Scheduler Flags\n'));
  assert.ok(out.includes('UDP  192.0.2.53:53 rr\n'));
});

test('xvsadm: list goes through request and comes back formatted', async () => {
  const sent: [Request, string][] = [];
  const res = await runXvsadm(['-L', '-n', '--socket', '/tmp/xvs-test.sock'], {
    request: async (req, path) => {
      sent.push([req, path]);
      return sample;
    },
  });
  assert.deepEqual(sent, [[{ op: 'list' }, '/tmp/xvs-test.sock']]);
  assert.equal(res.exitCode, 0);
  assert.equal(res.stderr, '');
  assert.equal(res.socketPath, '/tmp/xvs-test.sock');
  assert.equal(res.stdout, formatList(sample, { stats: false, exact: false }));
});

test('xvsadm: commands print nothing on success, help goes to stdout with exit 0', async () => {
  const ok = await runXvsadm(['-A', ...T, '-s', 'rr'], { request: async () => undefined });
  assert.deepEqual([ok.stdout, ok.stderr, ok.exitCode], ['', '', 0]);
  const help = await runXvsadm(['-h'], { request: async () => assert.fail('help must not send') });
  assert.equal(help.exitCode, 0);
  assert.match(help.stdout, /^Usage:/);
});

test('xvsadm: a bad argument is one stderr line with exit 2 and nothing sent', async () => {
  const res = await runXvsadm(['-a', ...T], { request: async () => assert.fail('must not send') });
  assert.equal(res.stderr, 'xvsadm: BAD_ARGUMENT: -a needs -r (hint: see `xvsadm -h`)\n');
  assert.equal(res.exitCode, 2);
});

test('xvsadm: no daemon is one line and a non-zero exit', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'xvsadm-'));
  try {
    const path = join(dir, 'xvsd.sock');
    const res = await runXvsadm(['--socket', path, '-L', '-n'], { request: (req, p) => request(p, req) });
    assert.equal(res.stdout, '');
    assert.equal(res.stderr, `xvsadm: NO_DAEMON: no xvsd is listening on ${path} (hint: start it with \`xvsd --interface IF\`)\n`);
    assert.equal(res.stderr.split('\n').length, 2);
    assert.equal(res.exitCode, 3);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('xvsadm: a daemon error over a real socket keeps its code and exit status', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'xvsadm-'));
  const path = join(dir, 'xvsd.sock');
  const server = await serve(path, async (req) => {
    if (req.op === 'del-service') throw new XvsError('NO_SERVICE', `no service tcp ${req.key.addr}:${req.key.port}`);
    return sample;
  });
  try {
    const deps = { request: (req: Request, p: string) => request(p, req) };
    const del = await runXvsadm(['--socket', path, '-D', ...T], deps);
    assert.equal(del.stderr, 'xvsadm: NO_SERVICE: no service tcp 192.0.2.80:80 (hint: list services with `xvsadm -L -n`)\n');
    assert.equal(del.exitCode, 1);
    const list = await runXvsadm(['--socket', path, '-L', '-n', '--stats'], deps);
    assert.equal(list.exitCode, 0);
    assert.equal(list.stdout, formatList(sample, { stats: true, exact: false }));
  } finally {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
});
