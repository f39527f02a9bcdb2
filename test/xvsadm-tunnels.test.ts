// The tunnel options as ipvsadm 1.31 takes and shows them (--tun-type,
// --tun-port, --tun-nocsum|--tun-csum|--tun-remcsum): the requests they make,
// ipvsadm's words for every combination it refuses, the protocol's own
// checks, and against a running xvsd: -L --tun-info and -S as ipvsadm prints
// them (written here from its printf formats), -e replacing a tunnel as the
// kernel replaces it, -S | -R | -S byte for byte, the configuration file
// after a restart, and refused lines that change nothing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { commandToRequest, parseIpvsadm, type RequestCommand } from '../src/cli/ipvsadm-args.js';
import { parseRequest, type Request } from '../src/control/protocol.js';
import { XvsError } from '../src/errors.js';
import { kernelSkipReason } from './helpers/env.js';
import { xvsdNs, type XvsdNs } from './helpers/xvsd-ns.js';

const K = { proto: 'tcp', addr: '192.0.2.80', port: 80 } as const;
const T = ['-t', '192.0.2.80:80'];
const R = ['-r', '192.0.2.11'];

const accepted: [string[], Request][] = [
  [['-a', ...T, ...R, '-i', '--tun-type', 'gue', '--tun-port', '6080'],
    { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1, tunnel: { type: 'gue', port: 6080, csum: 'nocsum' } } }],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gue', '--tun-port', '1', '--tun-csum', '-w', '2'],
    { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 2, tunnel: { type: 'gue', port: 1, csum: 'csum' } } }],
  [['-a', ...T, ...R, '-i', '--tun-type=gue', '--tun-port=65535', '--tun-remcsum'],
    { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1, tunnel: { type: 'gue', port: 65535, csum: 'remcsum' } } }],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gue', '--tun-nocsum', '--tun-port', '6080'],
    { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1, tunnel: { type: 'gue', port: 6080, csum: 'nocsum' } } }],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gre'],
    { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1, tunnel: { type: 'gre', csum: 'nocsum' } } }],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gre', '--tun-csum', '-x', '10', '-y', '5'],
    { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1, uthreshold: 10, lthreshold: 5, tunnel: { type: 'gre', csum: 'csum' } } }],
  [['-a', ...T, '-r', '[2001:db8::11]:80', '-i', '--tun-type', 'gre', '--tun-nocsum'],
    { op: 'add-real', key: K, real: { addr: '2001:db8::11', port: 0, fwd: 'tun', weight: 1, tunnel: { type: 'gre', csum: 'nocsum' } } }],
  // -e sends the whole destination, as ipvsadm does: without --tun-type the tunnel is IPIP again.
  [['-e', ...T, ...R, '-i', '--tun-type', 'gre', '--tun-csum'],
    { op: 'edit-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1, tunnel: { type: 'gre', csum: 'csum' } } }],
  [['-e', ...T, ...R, '-i', '-w', '3'], { op: 'edit-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 3 } }],
  [['-e', ...T, ...R, '-i', '--tun-type', 'ipip'], { op: 'edit-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1 } }],
];

/** [argv, ipvsadm's message]: every one fail(2, ...), exit 2. */
const refused: [string[], string][] = [
  [['-a', ...T, ...R, '-i', '--tun-type', 'gue'], "You need to supply the 'tun-port' option for the 'gue' tunnel type"],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gue', '--tun-csum'], "You need to supply the 'tun-port' option for the 'gue' tunnel type"],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gue', '--tun-port', '0'], 'illegal tunnel port specified'],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gue', '--tun-port', '65536'], 'illegal tunnel port specified'],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gue', '--tun-port', 'fou'], 'illegal tunnel port specified'],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gue', '--tun-port', '6080', '--tun-port', '6081'], "multiple 'tun-port' options specified"],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gue', '--tun-port', '6080', '--tun-csum', '--tun-nocsum'],
    "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type"],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gue', '--tun-port', '6080', '--tun-remcsum', '--tun-csum'],
    "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type"],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gre', '--tun-port', '6080'], "Illegal 'tun-port' option with the 'gre' tunnel type"],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gre', '--tun-remcsum'], "Illegal 'tun-remcsum' option with the 'gre' tunnel type"],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gre', '--tun-csum', '--tun-nocsum'], "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type"],
  [['-a', ...T, ...R, '-i', '--tun-type', 'ipip', '--tun-csum'], "Illegal 'tun-csum' option with the 'ipip' tunnel type"],
  [['-a', ...T, ...R, '-i', '--tun-port', '6080'], "Illegal 'tun-port' option with the 'ipip' tunnel type"],
  [['-a', ...T, ...R, '-i', '--tun-nocsum'], "Illegal 'tun-nocsum' option with the 'ipip' tunnel type"],
  [['-a', ...T, ...R, '-i', '--tun-type', 'udp'], 'illegal tunnel type specified'],
  [['-a', ...T, ...R, '-i', '--tun-type', 'GUE', '--tun-port', '6080'], 'illegal tunnel type specified'],
  [['-a', ...T, ...R, '-i', '--tun-type', 'gue', '--tun-type', 'gre'], "multiple 'tun-type' options specified"],
  [['-a', ...T, ...R, '-g', '--tun-type', 'gre'], 'Tunnel options conflict with forward method'],
  [['-a', ...T, ...R, '-m', '--tun-csum'], 'Tunnel options conflict with forward method'],
  [['-e', ...T, ...R, '--tun-type', 'gue', '--tun-port', '6080'], 'Tunnel options conflict with forward method'],
  [['-A', ...T, '--tun-type', 'gre'], "Illegal 'tun-type' option with the 'add-service' command"],
  [['-d', ...T, ...R, '--tun-type', 'gre'], "Illegal 'tun-type' option with the 'delete-server' command"],
  [['-a', ...T, ...R, '-i', '--tun-info'], "Illegal 'tun-info' option with the 'add-server' command"],
  [['-L', '--tun-port', '6080'], "Illegal 'tun-port' option with the 'list' command"],
];

test('tunnel options: the requests they make', () => {
  for (const [argv, want] of accepted) {
    const cmd = parseIpvsadm(argv);
    assert.notEqual(cmd.op, 'help');
    assert.deepEqual(commandToRequest(cmd as RequestCommand), want, argv.join(' '));
    // The protocol takes what xvsadm sends as it is.
    assert.deepEqual(parseRequest(JSON.stringify(want)), want, `${argv.join(' ')}: through the protocol`);
  }
});

test(`tunnel options: ${refused.length} combinations refused in ipvsadm's words`, () => {
  for (const [argv, message] of refused) {
    assert.throws(() => parseIpvsadm(argv), (e: unknown) => e instanceof XvsError && e.code === 'BAD_ARGUMENT' && e.message === message, argv.join(' '));
  }
});

test('the protocol checks a tunnel as ipvsadm would, whoever sends it', () => {
  const req = (real: Record<string, unknown>) => JSON.stringify({ op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1, ...real } });
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ fwd: 'dr', tunnel: { type: 'gre' } }, /only for TUN/],
    [{ tunnel: { type: 'gue' } }, /port of GUE must be an integer 1\.\.65535/],
    [{ tunnel: { type: 'gue', port: 0 } }, /port of GUE/],
    [{ tunnel: { type: 'gue', port: 70000 } }, /port of GUE/],
    [{ tunnel: { type: 'gre', port: 6080 } }, /port is for GUE only/],
    [{ tunnel: { type: 'gre', csum: 'remcsum' } }, /remcsum is for GUE only/],
    [{ tunnel: { type: 'ipip', csum: 'csum' } }, /csum is for GUE and GRE only/],
    [{ tunnel: { type: 'vxlan' } }, /type must be one of ipip gue gre/],
    [{ tunnel: { type: 'gue', port: 6080, csum: 'yes' } }, /csum must be one of nocsum csum remcsum/],
    [{ tunnel: 'gue' }, /must be an object/],
  ];
  for (const [real, re] of bad) assert.throws(() => parseRequest(req(real)), (e: unknown) => e instanceof XvsError && e.code === 'BAD_ARGUMENT' && re.test(e.message), JSON.stringify(real));
  // IPIP spelled out is no tunnel; a missing csum is none.
  assert.deepEqual(parseRequest(req({ tunnel: { type: 'ipip' } })), JSON.parse(req({})));
  assert.deepEqual((parseRequest(req({ tunnel: { type: 'gre' } })) as { real: unknown }).real, { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1, tunnel: { type: 'gre', csum: 'nocsum' } });
});

const RULES = `-A -t 192.0.2.80:80 -s wrr
-a -t 192.0.2.80:80 -r 192.0.2.11:80 -g -w 1
-a -t 192.0.2.80:80 -r 192.0.2.12:80 -i -w 2 --tun-type ipip
-a -t 192.0.2.80:80 -r 192.0.2.13:80 -i -w 3 --tun-type gue --tun-port 6080 --tun-nocsum
-a -t 192.0.2.80:80 -r 192.0.2.14:80 -i -w 4 --tun-type gue --tun-port 65535 --tun-remcsum
-a -t 192.0.2.80:80 -r 192.0.2.15:80 -i -w 5 --tun-type gre --tun-csum
-a -t 192.0.2.80:80 -r [2001:db8::16]:80 -i -w 6 --tun-type gue --tun-port 6081 --tun-csum -x 10 -y 5
-A -u 192.0.2.53:53 -s rr
-a -u 192.0.2.53:53 -r 192.0.2.21:53 -i -w 1 --tun-type gre --tun-nocsum
`;

describe('xvsadm and xvsd: tunnels listed, saved, edited and restored as ipvsadm does', { skip: kernelSkipReason() }, () => {
  let x: XvsdNs;
  let conf = '';

  before(async () => {
    x = await xvsdNs('xvstun');
    conf = path.join(x.dir, 'xvsd.conf');
    await x.start(['--config', conf]);
  });
  after(async () => {
    await x?.close();
  });

  const load = async (rules: string) => {
    const r = await x.xvsadm(['-R'], `-C\n${rules}`);
    assert.deepEqual([r.stderr, r.code], ['', 0]);
  };

  test('-S writes each tunnel as ipvsadm does, and -S | -R | -S is byte for byte', async () => {
    await load(RULES);
    const s1 = await x.xvsadm(['-S', '-n']);
    assert.equal(s1.stdout, RULES);
    await load(s1.stdout);
    assert.equal((await x.xvsadm(['-S', '-n'])).stdout, RULES);
  });

  test('-L --tun-info shows each tunnel as ipvsadm does; -L shows them all as Tunnel', async () => {
    await load(RULES);
    const ti = await x.xvsadm(['-L', '-n', '--tun-info']);
    assert.equal(ti.stdout, `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
TCP  192.0.2.80:80 wrr
  -> 192.0.2.11:80                Route   n/a           1      0          0         
  -> 192.0.2.12:80                Tunnel  ipip          2      0          0         
  -> 192.0.2.13:80                Tunnel  gue:6080:-c   3      0          0         
  -> 192.0.2.14:80                Tunnel  gue:65535:r+c 4      0          0         
  -> 192.0.2.15:80                Tunnel  gre:+c        5      0          0         
  -> [2001:db8::16]:80            Tunnel  gue:6081:+c   6      0          0         
UDP  192.0.2.53:53 rr
  -> 192.0.2.21:53                Tunnel  gre:-c        1      0          0         
`);
    const l = await x.xvsadm(['-L', '-n', '-u', '192.0.2.53:53']);
    assert.equal(l.stdout, `Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
UDP  192.0.2.53:53 rr
  -> 192.0.2.21:53                Tunnel  1      0          0         
`);
  });

  test('-e replaces the tunnel as a whole: another type, other flags, or IPIP when none is given', async () => {
    await load(RULES);
    const rule = async () => (await x.xvsadm(['-S', '-n'])).stdout.split('\n').find((l) => l.includes('-r 192.0.2.13:80'));
    const steps: [string[], string][] = [
      [['-i', '-w', '3', '--tun-type', 'gue', '--tun-port', '7000', '--tun-csum'], '-i -w 3 --tun-type gue --tun-port 7000 --tun-csum'],
      [['-i', '-w', '3', '--tun-type', 'gre', '--tun-csum'], '-i -w 3 --tun-type gre --tun-csum'],
      [['-i', '-w', '7'], '-i -w 7 --tun-type ipip'],
      [['-i', '--tun-type', 'gue', '--tun-port', '6080', '--tun-remcsum'], '-i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum'],
      [['-g', '-w', '2'], '-g -w 2'],
    ];
    for (const [opts, want] of steps) {
      const r = await x.xvsadm(['-e', '-t', '192.0.2.80:80', '-r', '192.0.2.13:80', ...opts]);
      assert.deepEqual([r.stderr, r.code], ['', 0], opts.join(' '));
      assert.equal(await rule(), `-a -t 192.0.2.80:80 -r 192.0.2.13:80 ${want}`, opts.join(' '));
    }
  });

  test('refused tunnel options: ipvsadm\'s message, exit 2, nothing changed', async () => {
    await load(RULES);
    const before = (await x.xvsadm(['-S', '-n'])).stdout;
    const lines: [string[], string][] = [
      [['-a', '-t', '192.0.2.80:80', '-r', '192.0.2.30', '-i', '--tun-type', 'gue'], "You need to supply the 'tun-port' option for the 'gue' tunnel type"],
      [['-e', '-t', '192.0.2.80:80', '-r', '192.0.2.15', '-i', '--tun-type', 'gre', '--tun-remcsum'], "Illegal 'tun-remcsum' option with the 'gre' tunnel type"],
      [['-e', '-t', '192.0.2.80:80', '-r', '192.0.2.13', '-g', '--tun-type', 'gue', '--tun-port', '6080'], 'Tunnel options conflict with forward method'],
      [['-e', '-t', '192.0.2.80:80', '-r', '192.0.2.13', '-i', '--tun-type', 'gue', '--tun-port', '0'], 'illegal tunnel port specified'],
    ];
    for (const [argv, message] of lines) {
      const r = await x.xvsadm(argv);
      assert.equal(r.stderr.split('\n')[0], message, argv.join(' '));
      assert.equal(r.code, 2, argv.join(' '));
    }
    // A bad line in -R: none of the lines before it is applied either.
    const r = await x.xvsadm(['-R'], '-a -t 192.0.2.80:80 -r 192.0.2.31 -i --tun-type gre\n-a -t 192.0.2.80:80 -r 192.0.2.32 -i --tun-type gre --tun-port 1\n');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /line 2: Illegal 'tun-port' option with the 'gre' tunnel type/);
    assert.equal((await x.xvsadm(['-S', '-n'])).stdout, before);
  });

  test('a restarted xvsd brings the tunnels back from its configuration file', async () => {
    await load(RULES);
    assert.match(readFileSync(conf, 'utf8'), /--tun-type gue --tun-port 65535 --tun-remcsum\n/);
    await x.stop();
    await x.start(['--config', conf]);
    assert.equal((await x.xvsadm(['-S', '-n'])).stdout, RULES);
  });
});
