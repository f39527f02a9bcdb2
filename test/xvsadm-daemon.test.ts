// xvsadm against a running xvsd, as an operator's shell runs it: ipvsadm's
// message and exit code for every bad command line with nothing changed,
// -S | -R | -S byte for byte, -R all or nothing, and the configuration file
// that brings the services back after a reboot.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { formatTimeouts } from '../src/cli/list-format.js';
import { formatSave } from '../src/cli/save-format.js';
import type { ListResult } from '../src/control/protocol.js';
import { ipv4SaveFixtures } from './fixtures/ipvsadm-save.js';
import { kernelSkipReason } from './helpers/env.js';
import { xvsdNs, type XvsdNs } from './helpers/xvsd-ns.js';

const skip = kernelSkipReason();

const BASE = `-A -t 192.0.2.80:80 -s wrr -p 300 -M 255.255.255.0
-a -t 192.0.2.80:80 -r 192.0.2.11:80 -g -w 3
-a -t 192.0.2.80:80 -r 192.0.2.12:80 -i -w 1 --tun-type ipip -x 100 -y 10
-A -u 192.0.2.53:53 -s rr
-a -u 192.0.2.53:53 -r 192.0.2.21:53 -g -w 1
`;

const TRY = "Try `xvsadm -h' or 'xvsadm --help' for more information.";
const V = ['-t', '192.0.2.80:80'];
const NOSVC = ['-t', '192.0.2.81:80'];

/** [argv, stdin for -R, ipvsadm's first line of stderr, ipvsadm's exit code] */
const BAD: [string[], string | undefined, string | RegExp, number][] = [
  // what the kernel refuses (libipvs ipvs_strerror; main returns -1)
  [['-A', ...V], undefined, 'Service already exists', 255],
  [['-E', ...NOSVC], undefined, 'No such service', 255],
  [['-D', ...NOSVC], undefined, 'No such service', 255],
  [['-Z', ...NOSVC], undefined, 'No such service', 255],
  [['-a', ...NOSVC, '-r', '192.0.2.11'], undefined, 'Service not defined', 255],
  [['-e', ...NOSVC, '-r', '192.0.2.11'], undefined, 'Service not defined', 255],
  [['-d', ...NOSVC, '-r', '192.0.2.11'], undefined, 'Service not defined', 255],
  [['-a', ...V, '-r', '192.0.2.11'], undefined, 'Destination already exists', 255],
  [['-e', ...V, '-r', '192.0.2.13'], undefined, 'No such destination', 255],
  [['-d', ...V, '-r', '192.0.2.13'], undefined, 'No such destination', 255],
  [['-A', '-t', '192.0.2.90:80', '-s', 'nosuch'], undefined, 'Scheduler or persistence engine not found', 255],
  [['-E', ...V, '-s', 'nosuch'], undefined, 'Scheduler or persistence engine not found', 255],
  [['-a', ...V, '-r', '192.0.2.14', '-x', '5', '-y', '10'], undefined, 'Numerical result out of range', 255],
  // list_service's failure exits 1
  [['-L', '-n', ...NOSVC], undefined, 'No such service', 1],
  // popt and tryhelp_exit: 255; the command must come first
  [[...V, '-D'], undefined, TRY, 255],
  [['-n', '-L'], undefined, TRY, 255],
  [['--bogus'], undefined, TRY, 255],
  [['-L', '--bogus'], undefined, '--bogus: unknown option', 255],
  [['-A', '-t'], undefined, '-t: missing argument', 255],
  // fail(2, ...)
  [['-D', ...V, '-C'], undefined, "invalid option `-C'", 2],
  [['-A', '-t', '192.0.2.90'], undefined, 'Zero port specified for non-persistent service', 2],
  [['-A', '-t', '192.0.2.256:80'], undefined, 'illegal virtual server address[:port] specified', 2],
  [['-a', ...V, '-r', '192.0.2.300'], undefined, 'illegal real server address[:port] specified', 2],
  [['-a', ...V, '-r', '192.0.2.14', '-w', '70000'], undefined, 'illegal weight specified', 2],
  [['-a', ...V, '-r', '192.0.2.14', '-x', '-1'], undefined, 'illegal u_threshold specified', 2],
  [['-a', ...V, '-r', '192.0.2.14', '-y', 'x'], undefined, 'illegal l_threshold specified', 2],
  [['-A', '-t', '192.0.2.90:80', '-p', '0'], undefined, "invalid timeout value `0' specified", 2],
  [['-A', '-t', '192.0.2.90:80', '-p', '-M', 'bad'], undefined, 'illegal virtual server persistent mask specified', 2],
  [['-A', '-t', '192.0.2.90:80', '-s', 'rr', '-s', 'wrr'], undefined, "multiple 'scheduler' options specified", 2],
  [['-A', '-t', '192.0.2.90:80', '-r', '192.0.2.11'], undefined, "Illegal 'real-server' option with the 'add-service' command", 2],
  [['-a', ...V], undefined, "You need to supply the 'real-server' option for the 'add-server' command", 2],
  [['-L', '--timeout', '-c'], undefined, "The option 'timeout' conflicts with the 'connection' option in the 'list' command", 2],
  [['-L', '-c', '--rate'], undefined, 'options conflicts in the list command', 2],
  [['--set', '10', '20'], undefined, '--set option requires 3 timeout values', 2],
  [['--set', '10', '20', 'x'], undefined, "invalid timeout value `x' specified", 2],
  [['-L', '-n', 'stray'], undefined, 'unexpected argument stray', 2],
  [['-a', ...V, '-r', '[2001:db8::11]:80', '-g'], undefined, 'Different address family is allowed only for tunneling servers', 2],
  [['-a', ...V, '-r', '192.0.2.14', '-g', '--tun-type', 'ipip'], undefined, 'Tunnel options conflict with forward method', 2],
  [['-a', ...V, '-r', '192.0.2.14', '-i', '--tun-type', 'gre', '--tun-port', '1'], undefined, "Illegal 'tun-port' option with the 'gre' tunnel type", 2],
  [['-A', '-t', '192.0.2.90:80', '-o'], undefined, 'One-Packet Scheduling is only for UDP virtual services', 2],
  [['-A', '-t', '192.0.2.90:80', '-b', 'mh-port'], undefined, "incompatible scheduler flag `mh-port'", 2],
  [['-E', ...V, '-s', 'mh', '-b', 'sh-fallback'], undefined, "incompatible scheduler flag `sh-fallback'", 2],
  [['--start-daemon', 'leader'], undefined, 'illegal start-daemon parameter specified', 2],
  // -R: all or nothing, naming the line (ipvsadm keeps the lines before a bad one)
  [['-R'], '-A -t 192.0.2.91:80\n-a -t 192.0.2.91:80 -r 192.0.2.31\n-A -t 192.0.2.80:80\n', 'line 3: Service already exists', 255],
  [['-R'], '-A -t 192.0.2.92:80\nbogus words\n', `line 2: ${TRY}`, 255],
  [['-R'], '# nested\n-C\n-R\n', `line 3: ${TRY}`, 255],
  [['-R'], '-A -t 192.0.2.93:80 -s rr\n-a -t 192.0.2.93:80 -r 192.0.2.32 -w 99999\n', 'line 2: illegal weight specified', 2],
  [['-R'], '-C\n-a -t 192.0.2.80:80 -r 192.0.2.33\n', 'line 2: Service not defined', 255],
  [['-A', '-6', '-f', '7'], undefined, '-6 used before -f', 2],
  // what ipvsadm accepts and xvs cannot do yet
  [['-a', ...V, '-r', '192.0.2.14', '-i', '--tun-type', 'gre', '--tun-remcsum'], undefined, "Illegal 'tun-remcsum' option with the 'gre' tunnel type", 2],
  [['-A', '--sctp-service', '192.0.2.90:80'], undefined, /^xvsadm: UNSUPPORTED: --sctp-service is not supported yet/, 2],
  [['--start-daemon', 'master'], undefined, /^xvsadm: UNSUPPORTED: .*not supported yet/, 2],
];

describe('xvsadm against a running xvsd', { skip }, () => {
  let x: XvsdNs;

  before(async () => {
    x = await xvsdNs('xvsadm');
    await x.start();
  });
  after(async () => {
    await x?.close();
  });

  /** Everything a bad command could have changed: the rules (thresholds included, as -S writes them) and the timeouts. */
  async function state(): Promise<string> {
    const list = await x.request({ op: 'list' }) as ListResult;
    return formatSave(list) + formatTimeouts(list.timeouts);
  }

  test(`${BAD.length} bad command lines: ipvsadm's message and exit code, and no change`, async () => {
    const load = await x.xvsadm(['-R'], `-C\n${BASE}`);
    assert.deepEqual([load.stderr, load.code], ['', 0]);
    const before = await state();
    assert.equal(before, `${BASE}Timeout (tcp tcpfin udp): 900 120 300\n`);
    assert.ok(BAD.length >= 30);
    for (const [argv, input, first, code] of BAD) {
      const what = `${argv.join(' ')}${input === undefined ? '' : ` <<< ${JSON.stringify(input)}`}`;
      const r = await x.xvsadm(argv, input);
      const line1 = r.stderr.split('\n')[0]!;
      if (typeof first === 'string') assert.equal(line1, first, what);
      else assert.match(line1, first, what);
      assert.equal(r.code, code, `${what}: ${r.stderr}`);
      assert.equal(r.stdout, '', what);
      // At most our code and hint after ipvsadm's line.
      assert.ok(r.stderr.split('\n').length <= 3, `${what}: ${r.stderr}`);
      assert.equal(await state(), before, `${what} changed the configuration`);
    }
  });

  for (const f of ipv4SaveFixtures()) {
    test(`-R then -S -n: ${f.name}, and -S | -R | -S byte for byte`, async () => {
      const r = await x.xvsadm(['-R'], `-C\n${f.input}`);
      assert.deepEqual([r.stderr, r.code], ['', 0]);
      const s1 = await x.xvsadm(['-S', '-n']);
      assert.equal(s1.stdout, f.saved);
      // Round trip through the daemon: clear, restore the save, save again.
      assert.equal((await x.xvsadm(['-C'])).code, 0);
      assert.equal((await x.xvsadm(['-S', '-n'])).stdout, '');
      const r2 = await x.xvsadm(['-R'], s1.stdout);
      assert.deepEqual([r2.stderr, r2.code], ['', 0]);
      assert.equal((await x.xvsadm(['-S', '-n'])).stdout, s1.stdout);
      // --save is -S.
      assert.equal((await x.xvsadm(['--save', '--numeric'])).stdout, s1.stdout);
    });
  }

  test('-b: -L shows the flags as ipvsadm 1.31 does, -E changes or clears them, -S saves them', async () => {
    const load = await x.xvsadm(['-R'], `-C\n${ipv4SaveFixtures()[4]!.input}`);
    assert.deepEqual([load.stderr, load.code], ['', 0]);
    const svcLines = async (): Promise<string[]> => (await x.xvsadm(['-L', '-n'])).stdout.split('\n').filter((l) => /^(TCP|UDP) /.test(l));
    assert.deepEqual(await svcLines(), [
      'TCP  192.0.2.70:80 fo',
      'TCP  192.0.2.70:443 sh (sh-fallback,sh-port) persistent 300',
      'TCP  192.0.2.70:8080 mh (mh-port)',
      'TCP  192.0.2.70:9000 wlc (flag-1,flag-3)',
      'UDP  192.0.2.70:53 twos',
      'UDP  192.0.2.70:123 ovf (flag-2) ops',
    ]);
    // ipvsadm sends the flags with every -E: given ones replace them, none clears them (and -p, as always).
    assert.equal((await x.xvsadm(['-E', '-t', '192.0.2.70:443', '-s', 'sh', '-b', 'sh-port', '-p', '300'])).code, 0);
    assert.equal((await x.xvsadm(['-E', '-t', '192.0.2.70:8080', '-s', 'mh'])).code, 0);
    assert.equal((await x.xvsadm(['-E', '-t', '192.0.2.70:80', '-s', 'mh', '-b', 'mh-fallback,mh-port'])).code, 0);
    assert.deepEqual((await svcLines()).slice(0, 3), [
      'TCP  192.0.2.70:80 mh (mh-fallback,mh-port)',
      'TCP  192.0.2.70:443 sh (sh-port) persistent 300',
      'TCP  192.0.2.70:8080 mh',
    ]);
    assert.equal((await x.xvsadm(['-S', '-n'])).stdout.split('\n').filter((l) => l.startsWith('-A -t 192.0.2.70:80 ')).join(), '-A -t 192.0.2.70:80 -s mh -b mh-fallback,mh-port');
    await x.xvsadm(['-R'], `-C\n${BASE}`);
  });

  test('-R applies -Z and --set too, in order, as one change', async () => {
    const r = await x.xvsadm(['-R'], `-C\n${BASE}--set 1000 0 30\n-Z\n--set 0 60 0\n`);
    assert.deepEqual([r.stderr, r.code], ['', 0]);
    assert.equal((await x.xvsadm(['-L', '--timeout'])).stdout, 'Timeout (tcp tcpfin udp): 1000 60 30\n');
    assert.equal((await x.xvsadm(['--set', '900', '120', '300'])).code, 0);
  });

  test('-L, --persistent-conn, --tun-info, --rate, --nosort and -c in ipvsadm\'s layout', async () => {
    await x.xvsadm(['-R'], `-C\n${BASE}`);
    const l = await x.xvsadm(['-L', '-n']);
    assert.equal(l.stdout, `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.80:80 wrr persistent 300 mask 255.255.255.0
  -> 192.0.2.11:80                Route   3      0          0         
  -> 192.0.2.12:80                Tunnel  1      0          0         
UDP  192.0.2.53:53 rr
  -> 192.0.2.21:53                Route   1      0          0         
`);
    const pc = await x.xvsadm(['-L', '-n', '--persistent-conn', ...V]);
    assert.equal(pc.stdout, `Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  192.0.2.80:80 wrr persistent 300 mask 255.255.255.0
  -> 192.0.2.11:80                3         0           0          0         
  -> 192.0.2.12:80                1         0           0          0         
`);
    const ti = await x.xvsadm(['-L', '-n', '--tun-info', ...V]);
    assert.equal(ti.stdout, `Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
TCP  192.0.2.80:80 wrr persistent 300 mask 255.255.255.0
  -> 192.0.2.11:80                Route   n/a           3      0          0         
  -> 192.0.2.12:80                Tunnel  ipip          1      0          0         
`);
    const rate = await x.xvsadm(['-L', '-n', '--rate']);
    assert.equal(rate.stdout, `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  192.0.2.80:80                       0        0        0        0        0
  -> 192.0.2.11:80                       0        0        0        0        0
  -> 192.0.2.12:80                       0        0        0        0        0
UDP  192.0.2.53:53                       0        0        0        0        0
  -> 192.0.2.21:53                       0        0        0        0        0
`);
    // --nosort: the daemon's order (services as created, real servers as added).
    const ns = await x.xvsadm(['-L', '-n', '--nosort']);
    assert.equal(ns.code, 0);
    const c = await x.xvsadm(['-L', '-n', '-c']);
    assert.deepEqual([c.stdout, c.code], ['IPVS connection entries\npro expire state       source             virtual            destination\n', 0]);
    const cp = await x.xvsadm(['-L', '-n', '-c', '--persistent-conn']);
    assert.equal(cp.stdout, 'IPVS connection entries\npro expire state       source             virtual            destination        pe name          pe_data\n');
    assert.deepEqual(await x.xvsadm(['-L', '--daemon']), { stdout: '', stderr: '', code: 0 });
  });

  test('-L of a port-zero service and a one-packet one, in ipvsadm\'s layout (" ops" last)', async () => {
    const r = await x.xvsadm(['-R'], '-C\n-A -t 192.0.2.70:0 -s rr -p 600\n-a -t 192.0.2.70 -r 192.0.2.41 -g\n-A -u 192.0.2.70:53 -s rr -p 60 -o\n-a -u 192.0.2.70:53 -r 192.0.2.41 -g\n');
    assert.deepEqual([r.stderr, r.code], ['', 0]);
    assert.equal((await x.xvsadm(['-L', '-n'])).stdout, `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.70:0 rr persistent 600
  -> 192.0.2.41:0                 Route   1      0          0         
UDP  192.0.2.70:53 rr persistent 60 ops
  -> 192.0.2.41:53                Route   1      0          0         
`);
  });

  test('a DR/TUN real-server port other than the service\'s is accepted with a warning, as the kernel uses the service\'s', async () => {
    await x.xvsadm(['-R'], `-C\n${BASE}`);
    const r = await x.xvsadm(['-a', ...V, '-r', '192.0.2.15:8080', '-g', '-w', '2']);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, 'xvsadm: warning: real server port 8080 ignored: direct routing forwards to the service port 80\n');
    assert.match((await x.xvsadm(['-S', '-n'])).stdout, /^-a -t 192\.0\.2\.80:80 -r 192\.0\.2\.15:80 -g -w 2$/m);
    // -d with the port the script used for -a finds nothing, as in IPVS; with the service's it goes.
    assert.equal((await x.xvsadm(['-d', ...V, '-r', '192.0.2.15:80'])).code, 0);
  });
});

describe('xvsd keeps its configuration', { skip }, () => {
  let x: XvsdNs;

  before(async () => {
    x = await xvsdNs('xvsdconf');
  });
  after(async () => {
    await x?.close();
  });

  test('written on every change, restored at start when the pins are gone, every change logged with its peer', async () => {
    const conf = path.join(x.dir, 'xvsd.conf');
    await x.start(['--config', conf]);
    const load = await x.xvsadm(['-R'], ipv4SaveFixtures()[1]!.input);
    assert.equal(load.code, 0, load.stderr);
    assert.equal((await x.xvsadm(['--set', '1200', '0', '0'])).code, 0);
    const saved = (await x.xvsadm(['-S', '-n'])).stdout;
    const text = readFileSync(conf, 'utf8');
    assert.equal(text, `# xvsd configuration (ipvsadm -S -n format; xvsadm -R reads it)\n${saved}--set 1200 120 300\n`);
    assert.deepEqual(readdirSync(x.dir).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left');
    // Each change is logged with the uid and pid of the process that sent it (SO_PEERCRED).
    const changes = x.log().split('\n').filter((l) => l.includes('"change committed"')).map((l) => JSON.parse(l) as { peer: { uid: number; pid: number }; op: string });
    assert.deepEqual(changes.map((c) => c.op), ['batch', 'set-timeouts']);
    for (const c of changes) {
      assert.equal(c.peer.uid, 0);
      assert.ok(c.peer.pid > 0 && c.peer.pid !== process.pid);
    }
    // A "reboot": kill -9, the pins go with the namespace's /sys; the file brings everything back.
    await x.stop('SIGKILL');
    await x.start(['--config', conf]);
    assert.equal((await x.xvsadm(['-S', '-n'])).stdout, saved);
    assert.equal((await x.xvsadm(['-L', '--timeout'])).stdout, 'Timeout (tcp tcpfin udp): 1200 120 300\n');
    // A refused change writes nothing.
    const before = readFileSync(conf, 'utf8');
    assert.equal((await x.xvsadm(['-A', '-t', '198.51.100.10:25'])).code, 255);
    assert.equal(readFileSync(conf, 'utf8'), before);
    // -C is a change like any other: the file says so, and a restart keeps it empty.
    assert.equal((await x.xvsadm(['-C'])).code, 0);
    assert.equal(readFileSync(conf, 'utf8'), '# xvsd configuration (ipvsadm -S -n format; xvsadm -R reads it)\n--set 1200 120 300\n');
    await x.stop();
    await x.start(['--config', conf]);
    assert.equal((await x.xvsadm(['-S', '-n'])).stdout, '');
  });

  test('a broken configuration file stops xvsd with the line that is wrong', async () => {
    await x.stop();
    const conf = path.join(x.dir, 'broken.conf');
    writeFileSync(conf, '-A -t 192.0.2.80:80 -s rr\n-a -t 192.0.2.80:80 -r 192.0.2.11 -w lots\n');
    await assert.rejects(x.start(['--config', conf]), /line 2: illegal weight specified/);
  });
});
