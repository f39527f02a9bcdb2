// xvsadm's fwmark services and rules against a running xvsd: -f/-6 in
// ipvsadm's grammar, "FWM  1 rr" listings and "-A -f 1" save lines as
// ipvsadm 1.31 prints them, the rule commands with their refusals (iptables'
// or ipvsadm's words, exit codes, nothing changed), -S | -R | -S byte for
// byte, and the configuration file bringing the rules back after a reboot.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { kernelSkipReason } from './helpers/env.js';
import { xvsdNs, type XvsdNs } from './helpers/xvsd-ns.js';

const skip = kernelSkipReason();

/** As an operator writes it: defaults left out, any order, -6 after -f. */
const INPUT = `-A -t 192.0.2.80:80 -s wrr
-a -t 192.0.2.80:80 -r 192.0.2.11:80 -g -w 1
--fwmark-rule 2 -d 198.51.100.9
-A -f 2 -s sh -p 600 -M 255.255.255.0
-a -f 2 -r 192.0.2.12 -m
-a -f 2 -r 192.0.2.14:8080 -m
-a -f 2 -r 192.0.2.11 -g -w 2
--fwmark-rule 1 -d 198.51.100.0/24 -p tcp --dport 80:90
-A -f 1 -s rr
-a -f 1 -r 192.0.2.13:0 -g
-A -f 3 -6 -s wrr -p 300 -M 64
-a -f 3 -6 -r 2001:db8::11 -g
--fwmark-rule 3 -d 2001:db8:80::1/48 -p TCP --dport 21
--fwmark-rule 1 -d 198.51.100.0/24 -p tcp --dport 443
--fwmark-rule 2 -d 198.51.100.7/32 -p udp
--add-fwmark-rule 3 --dest 2001:db8:80::/48 --protocol tcp --dport 1024:
--fwmark-rule 7 -d 203.0.113.0/24
`;

/** ipvsadm's lines as ipvsadm 1.31 writes them (fwmark services after address ones, by mark), then the rules by prefix. */
const SAVED = `-A -t 192.0.2.80:80 -s wrr
-a -t 192.0.2.80:80 -r 192.0.2.11:80 -g -w 1
-A -f 1 -s rr
-a -f 1 -r 192.0.2.13:0 -g -w 1
-A -f 2 -s sh -p 600 -M 255.255.255.0
-a -f 2 -r 192.0.2.11:0 -g -w 2
-a -f 2 -r 192.0.2.12:0 -m -w 1
-a -f 2 -r 192.0.2.14:8080 -m -w 1
-A -f 3 -6 -s wrr -p 300 -M 64
-a -f 3 -6 -r [2001:db8::11]:0 -g -w 1
--fwmark-rule 1 -d 198.51.100.0/24 -p tcp --dport 80:90
--fwmark-rule 1 -d 198.51.100.0/24 -p tcp --dport 443
--fwmark-rule 2 -d 198.51.100.7/32 -p udp
--fwmark-rule 2 -d 198.51.100.9/32
--fwmark-rule 7 -d 203.0.113.0/24
--fwmark-rule 3 -d 2001:db8:80::/48 -p tcp --dport 21
--fwmark-rule 3 -d 2001:db8:80::/48 -p tcp --dport 1024:65535
`;

const LISTED = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.80:80 wrr
  -> 192.0.2.11:80                Route   1      0          0         
FWM  1 rr
  -> 192.0.2.13:0                 Route   1      0          0         
FWM  2 sh persistent 600 mask 255.255.255.0
  -> 192.0.2.11:0                 Route   2      0          0         
  -> 192.0.2.12:0                 Masq    1      0          0         
  -> 192.0.2.14:8080              Masq    1      0          0         
FWM  3 IPv6 wrr persistent 300 mask 64
  -> [2001:db8::11]:0             Route   1      0          0         
`;

const TRY = "Try `xvsadm -h' or 'xvsadm --help' for more information.";
const NET = ['-d', '198.51.100.0/24'];
const SEVENTEEN = Array.from({ length: 17 }, (_, i) => `--fwmark-rule 9 -d 192.0.2.0/24 -p udp --dport ${1000 + i}`).join('\n');

/** [argv, stdin for -R, the first line of stderr, the exit code] */
const BAD: [string[], string | undefined, string | RegExp, number][] = [
  // ipvsadm's own words for -f and -6
  [['-A', '-f', '0'], undefined, "invalid fwmark value `0' specified", 2],
  [['-A', '-f', '4294967296'], undefined, "invalid fwmark value `4294967296' specified", 2],
  [['-A', '-6', '-f', '1'], undefined, '-6 used before -f', 2],
  [['-A', '-f', '1'], undefined, 'Service already exists', 255],
  [['-a', '-f', '9', '-r', '192.0.2.14'], undefined, 'Service not defined', 255],
  [['-e', '-f', '4', '-6', '-r', '2001:db8::11'], undefined, 'Service not defined', 255],
  [['-e', '-f', '3', '-r', '2001:db8::11'], undefined, 'Different address family is allowed only for tunneling servers', 2],
  [['-D', '-f', '9'], undefined, 'No such service', 255],
  [['-L', '-n', '-f', '9'], undefined, 'No such service', 1],
  [['-a', '-f', '1', '-r', '192.0.2.13'], undefined, 'Destination already exists', 255],
  [['-a', '-f', '2', '-r', '192.0.2.14:8080', '-m'], undefined, 'Destination already exists', 255],
  [['-a', '-f', '1', '-r', '[2001:db8::14]:0', '-g'], undefined, 'Different address family is allowed only for tunneling servers', 2],
  // the rule commands: iptables' words where it has them, ipvsadm's for the rest
  [['--fwmark-rule', '0', ...NET], undefined, "invalid fwmark value `0' specified", 2],
  [['--fwmark-rule', '1'], undefined, "You need to supply the 'dest' option for the 'fwmark-rule' command", 2],
  [['--fwmark-rule'], undefined, '--fwmark-rule: missing argument', 255],
  [['--fwmark-rule', '1', '-d', '198.51.100.300/24'], undefined, "host/network `198.51.100.300' not found", 2],
  [['--fwmark-rule', '1', '-d', '198.51.100.0/33'], undefined, "invalid mask `33' specified", 2],
  [['--fwmark-rule', '1', '-d', '2001:db8::/129'], undefined, "invalid mask `129' specified", 2],
  [['--fwmark-rule', '1', ...NET, '-p', 'icmp'], undefined, "unknown protocol `icmp' specified", 2],
  [['--fwmark-rule', '1', ...NET, '--dport', '80'], undefined, '--dport needs -p tcp or -p udp', 2],
  [['--fwmark-rule', '1', ...NET, '-p', 'tcp', '--dport', '90:80'], undefined, 'invalid portrange (min > max)', 2],
  [['--fwmark-rule', '1', ...NET, '-p', 'tcp', '--dport', '70000'], undefined, "invalid port/service `70000' specified", 2],
  [['--fwmark-rule', '1', ...NET, '-d', '198.51.100.0/25'], undefined, "multiple 'dest' options specified", 2],
  [['--fwmark-rule', '1', ...NET, 'stray'], undefined, 'unexpected argument stray', 2],
  [['--fwmark-rule', '1', ...NET, '-s', 'rr'], undefined, '-s: unknown option', 255],
  [['--list-fwmark-rules', ...NET], undefined, "Illegal 'dest' option with the 'list-fwmark-rules' command", 2],
  [['-L', '--fwmark-rule', '1'], undefined, '--fwmark-rule: unknown option', 255],
  [['-n', '--fwmark-rule', '1', ...NET], undefined, TRY, 255],
  // what the daemon refuses, with nothing changed
  [['--fwmark-rule', '1', ...NET, '-p', 'tcp', '--dport', '80:90'], undefined, /^xvsadm: FWMARK_RULE_EXISTS: fwmark rule 1 198\.51\.100\.0\/24 tcp 80:90 already exists/, 255],
  [['--fwmark-rule', '5', '-d', '198.51.100.1/24', '-p', 'tcp', '--dport', '443'], undefined, /^xvsadm: FWMARK_RULE_EXISTS: fwmark rule 1 198\.51\.100\.0\/24 tcp 443:443 already matches/, 255],
  [['--del-fwmark-rule', '1', ...NET], undefined, /^xvsadm: NO_FWMARK_RULE: no fwmark rule 1 198\.51\.100\.0\/24 \(hint/, 255],
  [['--del-fwmark-rule', '2', '-d', '198.51.100.7', '-p', 'tcp'], undefined, /^xvsadm: NO_FWMARK_RULE: /, 255],
  // -R all or nothing: a prefix whose destinations would have 17 rules to try
  [['-R'], `--fwmark-rule 9 -d 192.0.2.0/25\n${SEVENTEEN}\n`, /^xvsadm: CAPACITY: line 17: a destination in 192\.0\.2\.0\/25 would be tried against 17 fwmark rules/, 255],
  [['-R'], '--fwmark-rule 9 -d 192.0.2.0/25\n--fwmark-rule 9 -d 192.0.2.0/25\n', /^xvsadm: FWMARK_RULE_EXISTS: line 2: fwmark rule 9 192\.0\.2\.0\/25 already exists/, 255],
];

describe('xvsadm: fwmark services and rules against a running xvsd', { skip }, () => {
  let x: XvsdNs;
  const save = async (): Promise<string> => (await x.xvsadm(['-S', '-n'])).stdout;

  before(async () => {
    x = await xvsdNs('xvsadm-fw');
    await x.start();
  });
  after(async () => {
    await x?.close();
  });

  test('-R of services and rules, then -S -n in ipvsadm\'s form, -S | -R | -S byte for byte', async () => {
    const r = await x.xvsadm(['-R'], `-C\n${INPUT}`);
    assert.deepEqual([r.stderr, r.code], ['', 0]);
    const s1 = await save();
    assert.equal(s1, SAVED);
    assert.equal((await x.xvsadm(['-C'])).code, 0);
    assert.equal(await save(), '', '-C clears the rules with the services');
    const r2 = await x.xvsadm(['-R'], s1);
    assert.deepEqual([r2.stderr, r2.code], ['', 0]);
    assert.equal(await save(), s1);
  });

  test('-L shows "FWM  N" (" IPv6") services as ipvsadm 1.31 prints them, after the address services', async () => {
    assert.equal((await x.xvsadm(['-L', '-n'])).stdout, LISTED);
    assert.equal((await x.xvsadm(['-L', '-n', '-f', '3', '-6'])).stdout, LISTED.split('\n').slice(1, 3).join('\n') + '\nFWM  3 IPv6 wrr persistent 300 mask 64\n  -> [2001:db8::11]:0             Route   1      0          0         \n');
    // -f 3 without -6 is another service, the IPv4 one, which does not exist.
    assert.equal((await x.xvsadm(['-L', '-n', '-f', '3'])).code, 1);
  });

  test('--list-fwmark-rules: all of them, or one mark\'s, as the command lines that add them', async () => {
    assert.equal((await x.xvsadm(['--list-fwmark-rules'])).stdout, SAVED.split('\n').filter((l) => l.startsWith('--')).map((l) => `${l}\n`).join(''));
    assert.equal((await x.xvsadm(['--list-fwmark-rules', '2'])).stdout, '--fwmark-rule 2 -d 198.51.100.7/32 -p udp\n--fwmark-rule 2 -d 198.51.100.9/32\n');
  });

  test('-E, -e, -d, -Z and -D take -f services; --del-fwmark-rule deletes one rule', async () => {
    for (const argv of [
      ['-E', '-f', '1', '-s', 'wlc'], ['-e', '-f', '1', '-r', '192.0.2.13', '-w', '5'], ['-a', '-f', '1', '-r', '192.0.2.14'],
      ['-d', '-f', '1', '-r', '192.0.2.14'], ['-Z', '-f', '1'], ['-D', '-f', '3', '-6'],
      ['--del-fwmark-rule', '1', ...NET, '-p', 'tcp', '--dport', '443'], ['--del-fwmark-rule', '7', '-d', '203.0.113.9/24'],
    ]) {
      const r = await x.xvsadm(argv);
      assert.deepEqual([r.stderr, r.code], ['', 0], argv.join(' '));
    }
    const s = await save();
    assert.match(s, /^-A -f 1 -s wlc\n-a -f 1 -r 192\.0\.2\.13:0 -g -w 5\n/m);
    assert.doesNotMatch(s, /-f 3|--dport 443|fwmark-rule 7/);
  });

  test('a DR real-server port in a fwmark service is ignored with a warning: each packet keeps its own', async () => {
    const r = await x.xvsadm(['-a', '-f', '1', '-r', '192.0.2.15:80', '-g']);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, "xvsadm: warning: real server port 80 ignored: direct routing keeps each packet's port in a fwmark service\n");
    assert.match(await save(), /^-a -f 1 -r 192\.0\.2\.15:0 -g -w 1$/m);
  });

  test(`${BAD.length} bad command lines: the message, the exit code, and no change`, async () => {
    const load = await x.xvsadm(['-R'], `-C\n${INPUT}`);
    assert.deepEqual([load.stderr, load.code], ['', 0]);
    const state = await save();
    for (const [argv, input, first, code] of BAD) {
      const what = `${argv.join(' ')}${input === undefined ? '' : ` <<< ${JSON.stringify(input.slice(0, 60))}`}`;
      const r = await x.xvsadm(argv, input);
      const line1 = r.stderr.split('\n')[0]!;
      if (typeof first === 'string') assert.equal(line1, first, what);
      else assert.match(line1, first, what);
      assert.equal(r.code, code, `${what}: ${r.stderr}`);
      assert.equal(r.stdout, '', what);
      assert.ok(r.stderr.split('\n').length <= 3, `${what}: ${r.stderr}`);
      assert.equal(await save(), state, `${what} changed the configuration`);
    }
  });
});

describe('xvsd keeps fwmark services and rules in its configuration file', { skip }, () => {
  let x: XvsdNs;

  before(async () => {
    x = await xvsdNs('xvsdconf-fw');
  });
  after(async () => {
    await x?.close();
  });

  test('a "reboot" (kill -9, the pins gone) brings the rules back from the file', async () => {
    const conf = path.join(x.dir, 'xvsd.conf');
    await x.start(['--config', conf]);
    const load = await x.xvsadm(['-R'], INPUT);
    assert.deepEqual([load.stderr, load.code], ['', 0]);
    await x.stop('SIGKILL');
    await x.start(['--config', conf]);
    assert.equal((await x.xvsadm(['-S', '-n'])).stdout, SAVED);
  });
});
