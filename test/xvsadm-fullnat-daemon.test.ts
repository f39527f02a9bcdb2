// FULLNAT's local addresses through the real xvsadm and a running xvsd, as
// an operator's shell sees them: -P/-Q/-G with the forks' messages and
// exit codes and nothing changed on a refusal (an unknown address, a
// duplicate, a 17th, a family the service cannot use), -b real servers, the
// warning for a FULLNAT real server with no local address of its family,
// -S | -R | -S byte for byte with the -P lines, and the configuration file
// that brings the addresses back after a reboot.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { formatLaddrs } from '../src/cli/laddr-format.js';
import type { LaddrView } from '../src/control/protocol.js';
import type { StatusView } from '../src/daemon/views.js';
import { kernelSkipReason } from './helpers/env.js';
import { xvsdNs, type XvsdNs } from './helpers/xvsd-ns.js';

const skip = kernelSkipReason();

/** 16 local addresses: a service full up. */
const FULL = Array.from({ length: 16 }, (_, i) => `192.0.2.${210 + i}`);

const BASE = `-A -t 192.0.2.80:80 -s wrr
-P -t 192.0.2.80:80 -z 192.0.2.201
-P -t 192.0.2.80:80 -z 192.0.2.202
-a -t 192.0.2.80:80 -r 203.0.113.11:80 -b -w 3
-a -t 192.0.2.80:80 -r 203.0.113.12:8080 -b -w 1
-A -t 192.0.2.80:443 -s rr
${FULL.map((a) => `-P -t 192.0.2.80:443 -z ${a}`).join('\n')}
-A -t [2001:db8::80]:80 -s rr
-P -t [2001:db8::80]:80 -z 2001:db8::201
-P -t [2001:db8::80]:80 -z 192.0.2.201
-a -t [2001:db8::80]:80 -r 203.0.113.11:80 -b -w 1
-a -t [2001:db8::80]:80 -r [2001:db8:2::11]:80 -b -w 1
`;

const V = ['-t', '192.0.2.80:80'];
const NOSVC = ['-t', '192.0.2.81:80'];

/** [argv, stdin for -R, the first line of stderr, exit code] */
const BAD: [string[], string | undefined, string, number][] = [
  [['-P', ...NOSVC, '-z', '192.0.2.203'], undefined, 'Service not defined', 255],
  [['-Q', ...NOSVC, '-z', '192.0.2.201'], undefined, 'Service not defined', 255],
  [['-P', ...V, '-z', '192.0.2.201'], undefined, 'Local address already exists', 255],
  [['-Q', ...V, '-z', '192.0.2.209'], undefined, 'No such Local address', 255],
  // Another service's address is none of this one's.
  [['-Q', ...V, '-z', '192.0.2.210'], undefined, 'No such Local address', 255],
  [['-P', '-t', '192.0.2.80:443', '-z', '192.0.2.226'], undefined,
    'xvsadm: CAPACITY: service tcp 192.0.2.80:443 has 16 local addresses, the most a service can have', 255],
  [['-P', ...V, '-z', '2001:db8::202'], undefined, 'Different address family is allowed for local addresses only in an IPv6 service', 2],
  [['-P', ...V, '-z', '192.0.2.203:80'], undefined, 'illegal local address', 2],
  [['-P', ...V], undefined, "You need to supply the 'local-address' option for the 'add-laddr' command", 2],
  [['-G', ...NOSVC], undefined, 'Service not defined', 1],
  [['-G', '-n'], undefined, "Illegal 'numeric' option with the 'get-laddr' command", 2],
  [['-a', ...V, '-r', '[2001:db8:2::12]:80', '-b'], undefined, 'Different address family is allowed for FULLNAT servers only behind an IPv6 service', 2],
  [['-d', ...V, '-r', '203.0.113.11', '-b'], undefined, "Illegal 'forwarding-method' option with the 'delete-server' command", 2],
  // -R: all or nothing, naming the line
  [['-R'], '-P -t 192.0.2.80:80 -z 192.0.2.203\n-Q -t 192.0.2.80:80 -z 192.0.2.202\n-P -t 192.0.2.80:80 -z 192.0.2.203\n', 'line 3: Local address already exists', 255],
  [['-R'], '-Q -t 192.0.2.80:80 -z 192.0.2.201\n-Q -t 192.0.2.80:80 -z 192.0.2.201\n', 'line 2: No such Local address', 255],
  [['-R'], `-A -t 192.0.2.82:80\n${[...FULL, '192.0.2.226'].map((a) => `-P -t 192.0.2.82:80 -z ${a}`).join('\n')}\n`,
    'xvsadm: CAPACITY: line 18: service tcp 192.0.2.82:80 has 16 local addresses, the most a service can have', 255],
];

describe('xvsadm FULLNAT against a running xvsd', { skip }, () => {
  let x: XvsdNs;

  before(async () => {
    x = await xvsdNs('xvsadmfn');
    await x.start();
  });
  after(async () => {
    await x?.close();
  });

  async function state(): Promise<string> {
    return (await x.xvsadm(['-S', '-n'])).stdout + (await x.xvsadm(['-G'])).stdout;
  }

  test('-R of the forks\' lines, then -S | -R | -S byte for byte and -G in their layout', async () => {
    const r = await x.xvsadm(['-R'], `-C\n${BASE}`);
    assert.deepEqual([r.stderr, r.code], ['', 0]);
    const saved = (await x.xvsadm(['-S', '-n'])).stdout;
    assert.equal(saved, `-A -t 192.0.2.80:80 -s wrr
-P -t 192.0.2.80:80 -z 192.0.2.201
-P -t 192.0.2.80:80 -z 192.0.2.202
-a -t 192.0.2.80:80 -r 203.0.113.11:80 -b -w 3
-a -t 192.0.2.80:80 -r 203.0.113.12:8080 -b -w 1
-A -t 192.0.2.80:443 -s rr
${FULL.map((a) => `-P -t 192.0.2.80:443 -z ${a}`).join('\n')}
-A -t [2001:db8::80]:80 -s rr
-P -t [2001:db8::80]:80 -z 2001:db8::201
-P -t [2001:db8::80]:80 -z 192.0.2.201
-a -t [2001:db8::80]:80 -r 203.0.113.11:80 -b -w 1
-a -t [2001:db8::80]:80 -r [2001:db8:2::11]:80 -b -w 1
`);
    assert.equal((await x.xvsadm(['-C'])).code, 0);
    assert.deepEqual(await x.xvsadm(['-G']), { stdout: '', stderr: '', code: 0 });
    const r2 = await x.xvsadm(['-R'], saved);
    assert.deepEqual([r2.stderr, r2.code], ['', 0]);
    assert.equal((await x.xvsadm(['-S', '-n'])).stdout, saved);

    const g = await x.xvsadm(['-G']);
    const views = await x.request({ op: 'get-laddrs' }) as LaddrView[];
    assert.equal(g.stdout, formatLaddrs(views));
    assert.equal(g.stdout.split('\n').slice(0, 4).join('\n'), [
      'VIP:VPORT            TOTAL    SNAT_IP              CONNS     ',
      '192.0.2.80:80        2        ',
      '                              192.0.2.201          0         ',
      '                              192.0.2.202          0         ',
    ].join('\n'));
    assert.match(g.stdout, /\n\[2001:db8::80\]:80    2        \n {30}2001:db8::201 {8}0 {9}\n {30}192\.0\.2\.201 {10}0 {9}\n$/);
    const one = await x.xvsadm(['-G', '-t', '[2001:db8::80]:80']);
    assert.equal(one.stdout, formatLaddrs(views.slice(2)));
    // The listing names the method as the forks do.
    assert.equal((await x.xvsadm(['-L', '-n', ...V])).stdout, `Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.80:80 wrr
  -> 203.0.113.11:80              FullNat 3      0          0         
  -> 203.0.113.12:8080            FullNat 1      0          0         
`);
  });

  test(`${BAD.length} bad FULLNAT command lines: the forks' message and the exit code, and no change`, async () => {
    const before = await state();
    for (const [argv, input, first, code] of BAD) {
      const what = `${argv.join(' ')}${input === undefined ? '' : ` <<< ${JSON.stringify(input)}`}`;
      const r = await x.xvsadm(argv, input);
      assert.equal(r.stderr.split('\n')[0], first, what);
      assert.equal(r.code, code, `${what}: ${r.stderr}`);
      assert.equal(r.stdout, '', what);
      assert.ok(r.stderr.split('\n').length <= 3, `${what}: ${r.stderr}`);
      assert.equal(await state(), before, `${what} changed the configuration`);
    }
  });

  test('a FULLNAT real server with no local address of its family: accepted, with a warning, until one is added', async () => {
    const svc = ['-t', '192.0.2.83:80'];
    const warn4 = 'xvsadm: warning: -t 192.0.2.83:80 has no IPv4 local address: new connections to FULLNAT real server 203.0.113.21:80 are dropped until one is added (-P -t 192.0.2.83:80 -z ADDR)\n';
    assert.equal((await x.xvsadm(['-A', ...svc, '-s', 'rr'])).code, 0);
    assert.deepEqual(await x.xvsadm(['-a', ...svc, '-r', '203.0.113.21', '-b']), { stdout: '', stderr: warn4, code: 0 });
    assert.deepEqual(await x.xvsadm(['-P', ...svc, '-z', '192.0.2.203']), { stdout: '', stderr: '', code: 0 });
    assert.deepEqual(await x.xvsadm(['-a', ...svc, '-r', '203.0.113.22', '-b']), { stdout: '', stderr: '', code: 0 });
    // The last one going warns again, about every real server it leaves without.
    const r = await x.xvsadm(['-Q', ...svc, '-z', '192.0.2.203']);
    assert.deepEqual([r.stdout, r.code], ['', 0]);
    assert.equal(r.stderr, 'xvsadm: warning: -t 192.0.2.83:80 has no IPv4 local address: new connections to FULLNAT real servers 203.0.113.21:80, 203.0.113.22:80 are dropped until one is added (-P -t 192.0.2.83:80 -z ADDR)\n');
    // A DR real server made FULLNAT by -e.
    assert.equal((await x.xvsadm(['-a', '-t', '192.0.2.80:443', '-r', '203.0.113.31', '-g'])).stderr, '');
    const e = await x.xvsadm(['-e', '-t', '192.0.2.80:443', '-r', '203.0.113.31', '-b']);
    assert.equal(e.stderr, '', 'its service has addresses of its family');
    // xvs status says the same, and xvsd's log.
    const status = await x.request({ op: 'status' }) as StatusView;
    const s = status.fullnat.find((f) => f.service === 'tcp 192.0.2.83:80');
    assert.deepEqual(s, { service: 'tcp 192.0.2.83:80', laddrs: [], realsWithoutLaddr: ['203.0.113.21:80', '203.0.113.22:80'] });
    assert.match(x.log(), /has no IPv4 local address/);
    // A restore warns about where it ends, once.
    const rs = await x.xvsadm(['-R'], '-A -t 192.0.2.84:80\n-a -t 192.0.2.84:80 -r 203.0.113.41 -b\n-a -t 192.0.2.84:80 -r 203.0.113.42 -b\n');
    assert.equal(rs.code, 0);
    assert.equal(rs.stderr.split('\n').filter(Boolean).length, 1, rs.stderr);
    assert.match(rs.stderr, /^xvsadm: warning: -t 192\.0\.2\.84:80 has no IPv4 local address: .*203\.0\.113\.41:80, 203\.0\.113\.42:80/);
  });
});

describe('xvsd keeps FULLNAT\'s local addresses in its configuration file', { skip }, () => {
  let x: XvsdNs;

  before(async () => {
    x = await xvsdNs('xvsdfnconf');
  });
  after(async () => {
    await x?.close();
  });

  test('-P lines written on every change, restored at start with the -b real servers', async () => {
    const conf = path.join(x.dir, 'xvsd.conf');
    await x.start(['--config', conf]);
    assert.equal((await x.xvsadm(['-R'], BASE)).code, 0);
    assert.equal((await x.xvsadm(['-Q', ...V, '-z', '192.0.2.201'])).code, 0);
    const saved = (await x.xvsadm(['-S', '-n'])).stdout;
    const listed = (await x.xvsadm(['-G'])).stdout;
    assert.match(saved, /^-P -t 192\.0\.2\.80:80 -z 192\.0\.2\.202$/m);
    assert.doesNotMatch(saved, /-P -t 192\.0\.2\.80:80 -z 192\.0\.2\.201/);
    // A "reboot": kill -9; the pins go with the namespace's /sys, the file brings everything back.
    await x.stop('SIGKILL');
    await x.start(['--config', conf]);
    assert.equal((await x.xvsadm(['-S', '-n'])).stdout, saved);
    assert.equal((await x.xvsadm(['-G'])).stdout, listed);
  });
});
