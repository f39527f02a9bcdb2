import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandToRequest, parseIpvsadm, type RequestCommand } from '../src/cli/ipvsadm-args.js';
import { formatList, formatTimeouts, largeNum } from '../src/cli/list-format.js';
import { extractSocket, runXvsadm } from '../src/cli/xvsadm-main.js';
import { parseRequest, type ListResult, type Request, type StatsView } from '../src/control/protocol.js';
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
  [['-A', ...T, '-s', 'fo'], { op: 'add-service', svc: { ...K, scheduler: 'fo' } }],
  [['-A', ...T, '-s', 'ovf'], { op: 'add-service', svc: { ...K, scheduler: 'ovf' } }],
  [['-A', ...T, '-s', 'twos'], { op: 'add-service', svc: { ...K, scheduler: 'twos' } }],
  // -b: ipvsadm's flag bits; sh and mh name flag-1 (*-fallback) and flag-2 (*-port).
  [['-A', ...T, '-s', 'sh', '-b', 'sh-port'], { op: 'add-service', svc: { ...K, scheduler: 'sh', schedFlags: 2 } }],
  [['-A', ...T, '-s', 'sh', '-b', 'sh-fallback,sh-port'], { op: 'add-service', svc: { ...K, scheduler: 'sh', schedFlags: 3 } }],
  [['-E', ...T, '-s', 'mh', '--sched-flags', 'mh-fallback'], { op: 'edit-service', svc: { ...K, scheduler: 'mh', schedFlags: 1 } }],
  [['-A', ...T, '-b', 'flag-3,flag-1'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', schedFlags: 5 } }],
  [['-A', ...T, '-s', 'mh', '-b', ''], { op: 'add-service', svc: { ...K, scheduler: 'mh' } }],
  [['-D', ...T], { op: 'del-service', key: K }],
  [['-C'], { op: 'clear' }],
  [['--clear'], { op: 'clear' }],
  [['-a', ...T, '-r', '192.0.2.11', '-w', '3'], { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 3 } }],
  [['-a', ...T, '-r', '192.0.2.11:8080', '-m'], { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 8080, fwd: 'nat', weight: 1 } }],
  [['-a', ...T, '-r', '192.0.2.11', '-i', '-w', '0'], { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 0 } }],
  [['-at', '192.0.2.80:80', '-r', '192.0.2.11:80', '-g', '-w5'], { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 5 } }],
  // DR/TUN forward to the service port: ipvsadm sends that whatever -r says (xvsadm warns).
  [['-a', ...T, '-r', '192.0.2.11:8080', '-i'], { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1 } }],
  [['-a', ...T, '-r', '192.0.2.11', '-i', '--tun-type', 'ipip'], { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'tun', weight: 1 } }],
  // Port zero with persistence: every port of the VIP; -o for UDP.
  [['-A', '-t', '192.0.2.80', '-p'], { op: 'add-service', svc: { ...K, port: 0, scheduler: 'wlc', persistent: 360 } }],
  [['-A', '-t', '192.0.2.80:0', '-p', '60', '-s', 'rr'], { op: 'add-service', svc: { ...K, port: 0, scheduler: 'rr', persistent: 60 } }],
  [['-A', '-u', '192.0.2.53:53', '-o', '-s', 'rr'], { op: 'add-service', svc: { ...U, scheduler: 'rr', ops: true } }],
  [['-E', '-u', '192.0.2.53:53', '-o'], { op: 'edit-service', svc: { ...U, scheduler: 'wlc', ops: true } }],
  // -M without -p: accepted and without effect, as with ipvsadm.
  [['-A', ...T, '-M', '255.255.255.0'], { op: 'add-service', svc: { ...K, scheduler: 'wlc' } }],
  [['-E', ...T, '-s', 'rr', '-M', '255.255.0.0'], { op: 'edit-service', svc: { ...K, scheduler: 'rr' } }],
  // Any mask ipvsadm reads with inet_aton, contiguous or not.
  [['-A', ...T, '-p', '-M', '255.0.255.0'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', persistent: 360, netmask: '255.0.255.0' } }],
  [['-A', ...T, '-p', '-M', '255.255.255.00'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', persistent: 360, netmask: '255.255.255.0' } }],
  [['-L', '-n', '--persistent-conn'], { op: 'list' }],
  [['-L', '-n', '--rate', '--nosort'], { op: 'list' }],
  [['-A', '--tcp-service=192.0.2.80:80', '--sort'], { op: 'add-service', svc: { ...K, scheduler: 'wlc' } }],
  [['--add-server', '--tcp-service=192.0.2.80:80', '--real-server=192.0.2.11', '--masquerading', '--weight=65535'],
    { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'nat', weight: 65535 } }],
  [['-e', ...T, '-r', '192.0.2.11', '-w', '7'], { op: 'edit-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 7 } }],
  [['-d', ...T, '-r', '192.0.2.11'], { op: 'del-real', key: K, real: { addr: '192.0.2.11', port: 0 } }],
  [['-d', ...T, '-r', '192.0.2.11:8080'], { op: 'del-real', key: K, real: { addr: '192.0.2.11', port: 8080 } }],
  [['-L', '-n'], { op: 'list' }],
  [['-l'], { op: 'list' }],
  [['--list', '--numeric', '--stats', '--exact'], { op: 'list' }],
  [['-Ln', ...T], { op: 'list', key: K }],
  [['-L', '-n', '--sort'], { op: 'list' }],
  [[], { op: 'list' }],
  [['-Z'], { op: 'zero' }],
  [['-Z', '-u', '192.0.2.53:53'], { op: 'zero', key: U }],
  [['-A', '-t', '[2001:DB8:0::1]:443'], { op: 'add-service', svc: { proto: 'tcp', addr: '2001:db8::1', port: 443, scheduler: 'wlc' } }],
  [['-a', '-t', '[2001:db8::1]:443', '-r', '2001:db8::11', '-m'],
    { op: 'add-real', key: { proto: 'tcp', addr: '2001:db8::1', port: 443 }, real: { addr: '2001:db8::11', port: 0, fwd: 'nat', weight: 1 } }],
  // -p's value is optional: alone it is ipvsadm's IPVS_SVC_PERSISTENT_TIMEOUT, 360 s,
  // and an option after it is not its value.
  [['-A', ...T, '-p'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', persistent: 360 } }],
  [['-A', ...T, '-p', '-s', 'rr'], { op: 'add-service', svc: { ...K, scheduler: 'rr', persistent: 360 } }],
  [['-A', '-p', '-t', '192.0.2.80:80'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', persistent: 360 } }],
  [['-Ap', '-t', '192.0.2.80:80'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', persistent: 360 } }],
  [['-A', ...T, '-p', '600'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', persistent: 600 } }],
  [['-A', ...T, '-p600'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', persistent: 600 } }],
  [['-A', ...T, '--persistent', '1'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', persistent: 1 } }],
  [['-A', ...T, '--persistent=2678400'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', persistent: 2678400 } }],
  [['-A', ...T, '-p', '-M', '255.255.255.0'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', persistent: 360, netmask: '255.255.255.0' } }],
  [['-A', ...T, '-M', '255.255.0.0', '-p', '900', '-s', 'sh'],
    { op: 'add-service', svc: { ...K, scheduler: 'sh', persistent: 900, netmask: '255.255.0.0' } }],
  [['-A', ...T, '-p', '--netmask', '0.0.0.0'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', persistent: 360, netmask: '0.0.0.0' } }],
  [['-A', ...T, '-p', '-M', '255.255.255.255'], { op: 'add-service', svc: { ...K, scheduler: 'wlc', persistent: 360, netmask: '255.255.255.255' } }],
  [['-A', '-t', '[2001:db8::1]:443', '-p', '60'], { op: 'add-service', svc: { proto: 'tcp', addr: '2001:db8::1', port: 443, scheduler: 'wlc', persistent: 60 } }],
  [['-E', ...T, '-s', 'rr', '-p', '120'], { op: 'edit-service', svc: { ...K, scheduler: 'rr', persistent: 120 } }],
  // -E replaces the service: without -p it is no longer persistent.
  [['-E', ...T, '-s', 'rr'], { op: 'edit-service', svc: { ...K, scheduler: 'rr' } }],
  [['-a', ...T, '-r', '192.0.2.11', '-x', '100', '-y', '50'],
    { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 1, uthreshold: 100, lthreshold: 50 } }],
  [['-a', ...T, '-r', '192.0.2.11', '-x', '2147483647'],
    { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 1, uthreshold: 2147483647 } }],
  [['-a', ...T, '-r', '192.0.2.11', '-x', '0', '-y', '0'],
    { op: 'add-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 1, uthreshold: 0, lthreshold: 0 } }],
  [['-e', ...T, '-r', '192.0.2.11', '--u-threshold', '10', '--l-threshold=10', '-w', '2'],
    { op: 'edit-real', key: K, real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 2, uthreshold: 10, lthreshold: 10 } }],
  [['--set', '900', '120', '300'], { op: 'set-timeouts', timeouts: { tcp: 900, tcpfin: 120, udp: 300 } }],
  [['--set', '0', '0', '2678400'], { op: 'set-timeouts', timeouts: { tcp: 0, tcpfin: 0, udp: 2678400 } }],
  [['-L', '--timeout'], { op: 'get-timeouts' }],
  [['-l', '-n', '--timeout'], { op: 'get-timeouts' }],
  [['-L', '-n', '--thresholds'], { op: 'list' }],
  [['-L', '-n', '--thresholds', ...T], { op: 'list', key: K }],
];

test('ipvsadm argv maps to the expected request', () => {
  for (const [argv, want] of accepted) assert.deepEqual(toRequest(argv), want, argv.join(' '));
});

test('every request xvsadm builds passes the daemon\'s parseRequest unchanged', () => {
  for (const [argv] of accepted) {
    const req = toRequest(argv);
    assert.deepEqual(parseRequest(JSON.stringify(req)), req, argv.join(' '));
  }
});

test('list options travel with the list command', () => {
  assert.deepEqual(parseIpvsadm(['-L', '-n', '--stats', '--exact']), { op: 'list', list: { numeric: true, stats: true, exact: true } });
  assert.deepEqual(parseIpvsadm(['-L']), { op: 'list', list: { numeric: false, stats: false, exact: false } });
  assert.deepEqual(parseIpvsadm(['-L', '-n', '--thresholds']), { op: 'list', list: { numeric: true, stats: false, exact: false, thresholds: true } });
  assert.equal(parseIpvsadm(['-h']).op, 'help');
  assert.equal(parseIpvsadm(['--help']).op, 'help');
});

// ipvsadm 1.31's words (ipvsadm.c, libipvs) for each, and xvs's "not yet".
const refused: [string[], string, RegExp?][] = [
  [['-A'], 'BAD_ARGUMENT', /^You need to supply the 'service-address' option for the 'add-service' command$/],
  [['-a'], 'BAD_ARGUMENT', /^You need to supply the 'service-address' option for the 'add-server' command$/],
  [['-a', ...T], 'BAD_ARGUMENT', /^You need to supply the 'real-server' option for the 'add-server' command$/],
  [['-d', '-r', '192.0.2.11'], 'BAD_ARGUMENT', /'service-address' option for the 'delete-server' command/],
  [['-n'], 'USAGE', /^Try `xvsadm -h' or 'xvsadm --help' for more information\.$/],
  [['-A', '-a', ...T], 'BAD_ARGUMENT', /^invalid option `-a'$/],
  [['-L', '-l', '-n'], 'BAD_ARGUMENT', /^invalid option `-l'$/],
  [['-A', ...T, '-u', '192.0.2.53:53'], 'BAD_ARGUMENT', /^multiple 'service-address' options specified$/],
  [['-A', ...T, ...T], 'BAD_ARGUMENT', /multiple 'service-address'/],
  [['-A', ...T, '-s', 'rr', '-s', 'wrr'], 'BAD_ARGUMENT', /^multiple 'scheduler' options specified$/],
  [['-A', ...T, '-s', 'fifo'], 'NO_SCHEDULER', /no scheduler 'fifo'/],
  [['-A', ...T, '-r', '192.0.2.11'], 'BAD_ARGUMENT', /^Illegal 'real-server' option with the 'add-service' command$/],
  [['-d', ...T, '-r', '192.0.2.11', '-w', '3'], 'BAD_ARGUMENT', /^Illegal 'weight' option with the 'delete-server' command$/],
  [['-C', ...T], 'BAD_ARGUMENT', /^Illegal 'service-address' option with the 'flush' command$/],
  [['-L', '-s', 'rr'], 'BAD_ARGUMENT', /^Illegal 'scheduler' option with the 'list' command$/],
  [['-a', ...T, '-r', '192.0.2.11', '-g', '-m'], 'BAD_ARGUMENT', /^multiple 'forwarding-method' options specified$/],
  [['-a', ...T, '-r', '192.0.2.11', '-r', '192.0.2.12'], 'BAD_ARGUMENT', /multiple 'real-server'/],
  [['-a', ...T, '-r', '192.0.2.11', '-w', '65536'], 'BAD_ARGUMENT', /^illegal weight specified$/],
  [['-a', ...T, '-r', '192.0.2.11', '-w', 'x'], 'BAD_ARGUMENT', /^illegal weight specified$/],
  [['-a', ...T, '-r', '192.0.2.11', '-w', '-1'], 'BAD_ARGUMENT', /^illegal weight specified$/],
  [['-a', ...T, '-r', '192.0.2.11', '-w'], 'USAGE', /^-w: missing argument$/],
  [['-q'], 'USAGE', /^Try `xvsadm -h'/],
  [['-L', '--bogus'], 'USAGE', /^--bogus: unknown option$/],
  [['-L', 'extra'], 'BAD_ARGUMENT', /^unexpected argument extra$/],
  [['-A', '-t', '192.0.2.80'], 'BAD_ARGUMENT', /^Zero port specified for non-persistent service$/],
  [['-A', '-t', '192.0.2.80:0'], 'BAD_ARGUMENT', /^Zero port specified/],
  [['-A', '-t', '192.0.2.80:65536'], 'BAD_ARGUMENT', /^illegal virtual server address\[:port\] specified$/],
  [['-A', '-t', '192.0.2.80:http'], 'BAD_ARGUMENT', /^illegal virtual server address/], // no names given to the parser
  [['-A', '-t', '192.0.2.80:'], 'BAD_ARGUMENT', /^illegal virtual server address/],
  [['-A', '-t', 'lb.example.com:80'], 'BAD_ARGUMENT', /^illegal virtual server address/],
  [['-A', '-t', '300.1.1.1:80'], 'BAD_ARGUMENT', /^illegal virtual server address/],
  [['-A', '-t', '[fe80::1%eth0]:80'], 'BAD_ARGUMENT', /^illegal virtual server address/],
  // ipvsadm loses the port of a bracketed IPv4 address.
  [['-A', '-t', '[192.0.2.80]:80'], 'BAD_ARGUMENT', /^Zero port specified/],
  [['-a', ...T, '-r', '192.0.2.11:99999'], 'BAD_ARGUMENT', /^illegal real server address\[:port\] specified$/],
  [['-A', '-f', '1x'], 'BAD_ARGUMENT', /^invalid fwmark value `1x' specified$/],
  [['-A', '-f', '0'], 'BAD_ARGUMENT', /^invalid fwmark value `0' specified$/],
  [['-A', ...T, '-6'], 'BAD_ARGUMENT', /^-6 used before -f$/],
  [['-A', ...T, '-o'], 'BAD_ARGUMENT', /^One-Packet Scheduling is only for UDP virtual services$/],
  [['-A', ...T, '-s', 'sh', '-b', 'sh-port,mh-port'], 'BAD_ARGUMENT', /^incompatible scheduler flag `mh-port'$/],
  [['-A', ...T, '-s', 'mh', '-b', 'mh-port,flag-4'], 'BAD_ARGUMENT', /^invalid scheduler flag `flag-4'$/],
  [['-A', ...T, '-b', 'sh-port'], 'BAD_ARGUMENT', /^incompatible scheduler flag `sh-port'$/],
  [['-A', ...T, '-b', 'nope'], 'BAD_ARGUMENT', /^invalid scheduler flag `nope'$/],
  [['-a', ...T, '-r', '192.0.2.11', '-i', '--tun-type', 'gue', '--tun-port', '0'], 'BAD_ARGUMENT', /^illegal tunnel port specified$/],
  [['-a', ...T, '-r', '192.0.2.11', '-i', '--tun-type', 'gue'], 'BAD_ARGUMENT', /^You need to supply the 'tun-port' option for the 'gue' tunnel type$/],
  [['-a', ...T, '-r', '192.0.2.11', '--tun-type', 'ipip'], 'BAD_ARGUMENT', /^Tunnel options conflict with forward method$/],
  [['-a', ...T, '-r', '192.0.2.11', '-i', '--tun-type', 'vxlan'], 'BAD_ARGUMENT', /^illegal tunnel type specified$/],
  [['-a', ...T, '-r', '2001:db8::11', '-g'], 'BAD_ARGUMENT', /^Different address family is allowed only for tunneling servers$/],
  // persistence
  [['-A', ...T, '-p', '0'], 'BAD_ARGUMENT', /^invalid timeout value `0' specified$/],
  [['-A', ...T, '-p', '2678401'], 'BAD_ARGUMENT', /^invalid timeout value `2678401' specified$/],
  [['-A', ...T, '-p', '5m'], 'BAD_ARGUMENT', /invalid timeout value `5m'/],
  [['-A', ...T, '--persistent='], 'BAD_ARGUMENT', /invalid timeout value `'/],
  [['-A', ...T, '-p', '300', '-p', '600'], 'BAD_ARGUMENT', /^multiple 'persistent' options specified$/],
  [['-A', ...T, '-p', '-p'], 'BAD_ARGUMENT', /multiple 'persistent'/],
  [['-A', ...T, '-p', '-1'], 'USAGE', /^-1: unknown option$/],
  [['-A', ...T, '-p', '-M', 'not-a-mask'], 'BAD_ARGUMENT', /^illegal virtual server persistent mask specified$/],
  [['-A', ...T, '-p', '-M', '255.255.255.0', '-M', '255.255.0.0'], 'BAD_ARGUMENT', /^multiple 'netmask' options specified$/],
  [['-A', ...T, '-p', '-M'], 'USAGE', /^-M: missing argument$/],
  [['-A', '-t', '[2001:db8::1]:443', '-p', '-M', '129'], 'BAD_ARGUMENT', /^illegal ipv6 netmask specified$/],
  [['-D', ...T, '-p'], 'BAD_ARGUMENT', /^Illegal 'persistent' option with the 'delete-service' command$/],
  [['-a', ...T, '-r', '192.0.2.11', '-p'], 'BAD_ARGUMENT', /^Illegal 'persistent' option with the 'add-server' command$/],
  [['-L', '-M', '255.255.255.0'], 'BAD_ARGUMENT', /^Illegal 'netmask' option with the 'list' command$/],
  // thresholds
  [['-a', ...T, '-r', '192.0.2.11', '-y', '5'], 'OUT_OF_RANGE', /-y 5.*-x 0/],
  [['-a', ...T, '-r', '192.0.2.11', '-x', '5', '-y', '6'], 'OUT_OF_RANGE'],
  [['-a', ...T, '-r', '192.0.2.11', '-x', '2147483648'], 'BAD_ARGUMENT', /^illegal u_threshold specified$/],
  [['-a', ...T, '-r', '192.0.2.11', '-x', 'many'], 'BAD_ARGUMENT', /^illegal u_threshold specified$/],
  [['-e', ...T, '-r', '192.0.2.11', '-y', '1.5'], 'BAD_ARGUMENT', /^illegal l_threshold specified$/],
  [['-a', ...T, '-r', '192.0.2.11', '-x', '1', '-x', '2'], 'BAD_ARGUMENT', /^multiple 'u-threshold' options specified$/],
  [['-a', ...T, '-r', '192.0.2.11', '-x'], 'USAGE', /^-x: missing argument$/],
  [['-d', ...T, '-r', '192.0.2.11', '-x', '3'], 'BAD_ARGUMENT', /^Illegal 'u-threshold' option with the 'delete-server' command$/],
  [['-A', ...T, '-y', '3'], 'BAD_ARGUMENT', /^Illegal 'l-threshold' option with the 'add-service' command$/],
  // timeouts
  [['--set', '900', '120'], 'BAD_ARGUMENT', /^--set option requires 3 timeout values$/],
  [['--set', '900', '120', '300', '60'], 'BAD_ARGUMENT', /^unexpected argument 60$/],
  [['--set'], 'BAD_ARGUMENT', /requires 3 timeout values/],
  [['--set', '900', '120', 'x'], 'BAD_ARGUMENT', /^invalid timeout value `x' specified$/],
  [['--set', '900', '120', '2678401'], 'BAD_ARGUMENT', /invalid timeout value `2678401'/],
  [['--set', '900', '120', '300', '-n'], 'BAD_ARGUMENT', /^Illegal 'numeric' option with the 'set' command$/],
  [['--set', '900', '120', '300', '-L'], 'BAD_ARGUMENT', /^invalid option `-L'$/],
  [['-L', '--timeout', ...T], 'BAD_ARGUMENT', /^The option 'timeout' conflicts with the 'service-address' option in the 'list' command$/],
  [['-L', '--timeout', '--stats'], 'BAD_ARGUMENT', /^options conflicts in the list command$/],
  [['-L', '--timeout', '--thresholds'], 'BAD_ARGUMENT', /^options conflicts in the list command$/],
  [['-L', '-c', '--thresholds'], 'BAD_ARGUMENT', /^options conflicts in the list command$/],
  [['-L', '--daemon', '--persistent-conn'], 'BAD_ARGUMENT', /^options conflicts in the list command$/],
  [['-A', ...T, '--timeout'], 'BAD_ARGUMENT', /^Illegal 'timeout' option with the 'add-service' command$/],
  [['-Z', '--thresholds'], 'BAD_ARGUMENT', /^Illegal 'thresholds' option with the 'zero' command$/],
  [['-S', '-c'], 'BAD_ARGUMENT', /^Illegal 'connection' option with the 'save' command$/],
  [['-R', '-n'], 'BAD_ARGUMENT', /^Illegal 'numeric' option with the 'restore' command$/],
  [['--start-daemon', 'master'], 'UNSUPPORTED'],
  [['--start-daemon', 'primary'], 'BAD_ARGUMENT', /^illegal start-daemon parameter specified$/],
  [['--stop-daemon', 'x'], 'BAD_ARGUMENT', /^illegal start_daemon specified$/],
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
  timeouts: { tcp: 900, tcpfin: 120, udp: 300 },
  services: [
    {
      ...U, scheduler: 'rr', stats: { conns: 7, inpkts: 7, outpkts: 0, inbytes: 420, outbytes: 0 },
      reals: [{ addr: '192.0.2.21', port: 53, fwd: 'tun', weight: 0, uthreshold: 0, lthreshold: 0, activeConns: 0, inactConns: 2, stats: zero }],
    },
    {
      ...K, scheduler: 'wrr',
      stats: { conns: 123456789, inpkts: 1234567890, outpkts: 99999999, inbytes: 98765432109876, outbytes: 100000000000000 },
      reals: [
        { addr: '192.0.2.12', port: 8080, fwd: 'nat', weight: 1, uthreshold: 2147483647, lthreshold: 1000, activeConns: 5, inactConns: 17,
          stats: { conns: 100000000, inpkts: 999999999, outpkts: 1000000000, inbytes: 99999999999, outbytes: 100000000000 } },
        { addr: '192.0.2.9', port: 80, fwd: 'fullnat', weight: 2, uthreshold: 0, lthreshold: 0, activeConns: 0, inactConns: 0, stats: zero },
        { addr: '192.0.2.11', port: 80, fwd: 'dr', weight: 3, uthreshold: 100, lthreshold: 0, activeConns: 12345, inactConns: 0, stats: zero },
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
    // libipvs compares addresses as ntohl(a) - ntohl(b) read as an int:
    // 192.0.2.80 - 10.0.0.1 overflows, so ipvsadm lists 192.0.2.80 first.
    'TCP  192.0.2.80:80 wrr',
    '  -> 192.0.2.9:80                 FullNat 2      0          0         ',
    '  -> 192.0.2.11:80                Route   3      12345      0         ',
    '  -> 192.0.2.12:8080              Masq    1      5          17        ',
    'TCP  10.0.0.1:443 wlc',
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
    'TCP  192.0.2.80:80                 123456K    1234M 99999999   98765G     100T',
    '  -> 192.0.2.9:80                        0        0        0        0        0',
    '  -> 192.0.2.11:80                       0        0        0        0        0',
    '  -> 192.0.2.12:8080               100000K  999999K    1000M   99999M     100G',
    'TCP  10.0.0.1:443                        0        0        0        0        0',
    'UDP  192.0.2.53:53                       7        7        0      420        0',
    '  -> 192.0.2.21:53                       0        0        0        0        0',
    '',
  ].join('\n');
  assert.equal(formatList(sample, { stats: true, exact: false }), want);
  const ends = (l: string): number[] => [...l.matchAll(/\S+/g)].slice(-5).map((m) => m.index + m[0].length);
  const rows = want.split('\n').slice(3, -1);
  for (const row of rows) assert.deepEqual(ends(row), ends(head[1]!), row);
  const exact = formatList(sample, { stats: true, exact: true }).split('\n');
  assert.equal(exact[3], 'TCP  192.0.2.80:80                123456789 1234567890 99999999 98765432109876 100000000000000');
  assert.equal(exact[6], '  -> 192.0.2.12:8080              100000000 999999999 1000000000 99999999999 100000000000');
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

const persistentSample: ListResult = {
  connTableSize: 4096,
  counters: {},
  timeouts: { tcp: 900, tcpfin: 120, udp: 300 },
  services: [
    { proto: 'udp', addr: '2001:db8::1', port: 53, scheduler: 'wlc', persistent: 300, stats: zero, reals: [] },
    { proto: 'tcp', addr: '192.0.2.81', port: 80, scheduler: 'sh', persistent: 60, netmask: '255.255.255.255', stats: zero, reals: [] },
    { proto: 'tcp', addr: '192.0.2.80', port: 443, scheduler: 'rr', persistent: 600, netmask: '255.255.255.0', stats: zero, reals: [] },
    {
      ...K, scheduler: 'wlc', persistent: 360, stats: zero,
      reals: [{ addr: '192.0.2.11', port: 80, fwd: 'dr', weight: 1, uthreshold: 0, lthreshold: 0, activeConns: 0, inactConns: 0, stats: zero }],
    },
  ],
};

test('persistent services show ipvsadm\'s flags: persistent T, and mask M unless it is /32', () => {
  const want = [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port Scheduler Flags',
    '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
    'TCP  192.0.2.80:80 wlc persistent 360',
    '  -> 192.0.2.11:80                Route   1      0          0         ',
    'TCP  192.0.2.80:443 rr persistent 600 mask 255.255.255.0',
    'TCP  192.0.2.81:80 sh persistent 60',
    'UDP  [2001:db8::1]:53 wlc persistent 300',
    '',
  ].join('\n');
  assert.equal(formatList(persistentSample, { stats: false, exact: false }), want);
  // The --thresholds layout keeps the flags; --stats has no room for them.
  assert.ok(formatList(persistentSample, { stats: false, exact: false, thresholds: true }).includes('\nTCP  192.0.2.80:443 rr persistent 600 mask 255.255.255.0\n'));
  assert.ok(formatList(persistentSample, { stats: true, exact: false }).includes(
    '\nTCP  192.0.2.80:443                      0        0        0        0        0\n'));
});

test('--thresholds listing matches ipvsadm -L -n --thresholds', () => {
  const want = [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ',
    '  -> RemoteAddress:Port',
    'TCP  192.0.2.80:80 wrr',
    '  -> 192.0.2.9:80                 0          0          0          0         ',
    '  -> 192.0.2.11:80                100        0          12345      0         ',
    '  -> 192.0.2.12:8080              2147483647 1000       5          17        ',
    'TCP  10.0.0.1:443 wlc',
    'UDP  192.0.2.53:53 rr',
    '  -> 192.0.2.21:53                0          0          0          2         ',
    '',
  ].join('\n');
  assert.equal(formatList(sample, { stats: false, exact: false, thresholds: true }), want);
  // ipvsadm's print_title tests FMT_STATS first: --stats --thresholds is the stats layout.
  assert.equal(formatList(sample, { stats: true, exact: false, thresholds: true }), formatList(sample, { stats: true, exact: false }));
});

test('the timeout line is ipvsadm -L --timeout', () => {
  assert.equal(formatTimeouts({ tcp: 900, tcpfin: 120, udp: 300 }), 'Timeout (tcp tcpfin udp): 900 120 300\n');
});

test('xvsadm: --timeout, --set and --thresholds go through request', async () => {
  const sent: Request[] = [];
  const deps = {
    request: async (req: Request) => {
      sent.push(req);
      return req.op === 'get-timeouts' ? { tcp: 900, tcpfin: 120, udp: 300 } : req.op === 'list' ? sample : undefined;
    },
  };
  const timeout = await runXvsadm(['-L', '--timeout'], deps);
  assert.deepEqual([timeout.stdout, timeout.stderr, timeout.exitCode], ['Timeout (tcp tcpfin udp): 900 120 300\n', '', 0]);
  const set = await runXvsadm(['--set', '0', '60', '0'], deps);
  assert.deepEqual([set.stdout, set.stderr, set.exitCode], ['', '', 0]);
  const thr = await runXvsadm(['-L', '-n', '--thresholds'], deps);
  assert.equal(thr.stdout, formatList(sample, { stats: false, exact: false, thresholds: true }));
  const one = await runXvsadm(['-L', '-n', '--thresholds', ...T], deps);
  assert.ok(one.stdout.startsWith('Prot LocalAddress:Port            Uthreshold'));
  assert.deepEqual(sent, [
    { op: 'get-timeouts' },
    { op: 'set-timeouts', timeouts: { tcp: 0, tcpfin: 60, udp: 0 } },
    { op: 'list' },
    { op: 'list', key: K },
  ]);
  const bad = await runXvsadm(['-L', '--timeout'], { request: async () => undefined });
  assert.deepEqual([bad.stdout, bad.exitCode], ['', 3]);
  assert.match(bad.stderr, /^xvsadm: DAEMON: xvsd sent no timeouts/);
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
  // ipvsadm's layout: the version line, then the usage.
  assert.match(help.stdout, /^xvsadm v1\.31 2019\/12\/24 \(compiled with xvs and IPVS v1\.2\.1\)\nUsage:\n {2}xvsadm -A\|E virtual-service/);
  const version = await runXvsadm(['--version'], { request: async () => assert.fail('version must not send') });
  assert.deepEqual([version.stdout, version.exitCode], ['xvsadm v1.31 2019/12/24 (compiled with xvs and IPVS v1.2.1)\n', 0]);
});

test('xvsadm: a bad argument is ipvsadm\'s one stderr line with its exit code and nothing sent', async () => {
  const never = { request: async () => assert.fail('must not send') };
  const res = await runXvsadm(['-a', ...T], never);
  assert.equal(res.stderr, 'You need to supply the \'real-server\' option for the \'add-server\' command\n');
  assert.equal(res.exitCode, 2);
  // The command must come first, as with ipvsadm (tryhelp_exit: 255).
  const late = await runXvsadm([...T, '-A'], never);
  assert.deepEqual([late.stderr, late.exitCode], ['Try `xvsadm -h\' or \'xvsadm --help\' for more information.\n', 255]);
});

test('xvsadm: no daemon is ipvsadm\'s words without IPVS, then ours, and ipvsadm\'s exit 2', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'xvsadm-'));
  try {
    const path = join(dir, 'xvsd.sock');
    const res = await runXvsadm(['--socket', path, '-L', '-n'], { request: (req, p) => request(p, req) });
    assert.equal(res.stdout, '');
    assert.equal(res.stderr, `Can't initialize ipvs: Protocol not available\nxvsadm: NO_DAEMON: no xvsd is listening on ${path} (hint: start it with \`xvsd --interface IF\`)\n`);
    assert.equal(res.exitCode, 2);
    const add = await runXvsadm(['--socket', path, '-A', '-t', '192.0.2.1:80'], { request: (req, p) => request(p, req) });
    assert.deepEqual([add.stderr.split('\n')[0], add.exitCode], ["Can't initialize ipvs: Protocol not available", 2]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('xvsadm: a daemon error over a real socket keeps its code and exit status', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'xvsadm-'));
  const path = join(dir, 'xvsd.sock');
  const seen: Request[] = [];
  const server = await serve(path, async (req) => {
    seen.push(req);
    if (req.op === 'del-service') throw new XvsError('NO_SERVICE', `no service tcp ${req.key.addr}:${req.key.port}`);
    return sample;
  });
  try {
    const deps = { request: (req: Request, p: string) => request(p, req) };
    const del = await runXvsadm(['--socket', path, '-D', ...T], deps);
    // ipvsadm's words first (libipvs: ipvs_del_service, ESRCH), then xvs's code and hint; the kernel's refusal exits 255.
    assert.equal(del.stderr, 'No such service\nxvsadm: NO_SERVICE: no service tcp 192.0.2.80:80 (hint: list services with `xvsadm -L -n`)\n');
    assert.equal(del.exitCode, 255);
    const list = await runXvsadm(['--socket', path, '-L', '-n', '--stats'], deps);
    assert.equal(list.exitCode, 0);
    assert.equal(list.stdout, formatList(sample, { stats: true, exact: false }));
    // The new requests pass the daemon's validation on the way in.
    for (const argv of [['--set', '900', '120', '300'], ['-A', ...T, '-p', '-M', '255.255.255.0'], ['-a', ...T, '-r', '192.0.2.11', '-x', '9', '-y', '3']]) {
      const res = await runXvsadm(['--socket', path, ...argv], deps);
      assert.deepEqual([res.stderr, res.exitCode], ['', 0], argv.join(' '));
    }
    assert.deepEqual(seen.slice(-3).map((r) => r.op), ['set-timeouts', 'add-service', 'add-real']);
  } finally {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
});
