// A shell script written for ipvsadm (add, list with and without names,
// edit, save, delete, restore, zero, rates, connections) runs unchanged in
// the lab's director namespace with the word "ipvsadm" replaced by
// "xvsadm", while a real client sends HTTP requests through the VIP.
// Names come from /etc/netns/NS/{hosts,services}, which `ip netns exec`
// binds over /etc for the script alone: no outside DNS.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { packageRoot } from '../src/paths.js';
import { createLab, type Lab } from '../src/lab/topology.js';
import { startHttpd, type RunningHttpd } from '../src/lab/servers.js';
import { curlMany, realServerSetup, startDirector, type DirectorHandle } from '../src/lab/scenario.js';
import { kernelSkipReason } from './helpers/env.js';
import { etcNetns } from './helpers/xvsd-ns.js';

const skip = kernelSkipReason();

const SCRIPT = `#!/bin/bash
# lvs-web.sh: the web VIP, as cron and keepalived's notify hooks have run it for years.
set -eu
VIP=www
WORK=\${WORK:?}

ipvsadm -C
ipvsadm -A -t $VIP:http -s wrr
ipvsadm -a -t $VIP:http -r rs1 -g -w 3
ipvsadm -a -t $VIP:http -r 192.0.2.12:80 -g -w 1
echo "== list =="
ipvsadm -L -n
ipvsadm -L
echo "== edit =="
ipvsadm -E -t $VIP:http -s rr -p 600
ipvsadm -e -t $VIP:http -r 192.0.2.12 -g -w 2
ipvsadm -l -n -t $VIP:80
echo "== save =="
ipvsadm -S -n > "$WORK/rules.sav"
cat "$WORK/rules.sav"
echo "== delete =="
ipvsadm -d -t $VIP:http -r rs1
ipvsadm -D -t $VIP:http
ipvsadm -L -n
if ipvsadm -D -t $VIP:http 2>/dev/null; then echo "deleted twice?"; exit 1; fi
echo "== restore =="
ipvsadm -R < "$WORK/rules.sav"
ipvsadm -S -n | diff - "$WORK/rules.sav"
echo "== zero =="
ipvsadm -Z
ipvsadm -L -n --stats --exact | grep -c '^  -> [0-9]'
touch "$WORK/ready"
while [ ! -e "$WORK/traffic-done" ]; do sleep 0.2; done
sleep 3
echo "== rates =="
ipvsadm -L -n --rate
echo "== connections =="
ipvsadm -L -n -c
ipvsadm -L -c --persistent-conn
ipvsadm -L -n --stats --exact
ipvsadm -L --timeout
`;

const REQUESTS = 60;

describe('lab: an ipvsadm script runs unchanged as an xvsadm script', { skip }, () => {
  let lab: Lab;
  let director: DirectorHandle;
  const servers: RunningHttpd[] = [];
  let work: string;

  before(async () => {
    lab = await createLab({ id: `xvsadm${process.pid % 10000}`, reals: 2 });
    for (const [i, host] of lab.reals.entries()) {
      servers.push(await startHttpd(lab, host, `rs${i + 1}`));
      await realServerSetup(lab, host, 'dr');
    }
    director = await startDirector(lab);
    work = path.join(lab.dir, 'script');
    mkdirSync(work, { recursive: true });
    etcNetns(lab.director.ns, {
      hosts: `127.0.0.1 localhost\n${lab.vip} www\n${lab.reals[0]!.ip} rs1\n${lab.reals[1]!.ip} rs2\n${lab.client.ip} client\n${lab.director.ip} director\n`,
      services: 'http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP\nhttps\t\t443/tcp\n',
      // Nothing listens there: a name missing from hosts fails at once instead of asking the world.
      'resolv.conf': 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n',
    });
  });

  after(async () => {
    await director?.stop();
    for (const s of servers) await s.stop();
    if (lab) rmSync(`/etc/netns/${lab.director.ns}`, { recursive: true, force: true });
    await lab?.down();
  });

  test('add, list, edit, save, delete, restore, zero, rates and connections', async () => {
    assert.equal(lab.reals[0]!.ip, '192.0.2.11');
    assert.equal(lab.reals[1]!.ip, '192.0.2.12');
    // The one-word change, and an xvsadm on PATH that talks to the lab's xvsd.
    const binDir = path.join(work, 'bin');
    mkdirSync(binDir, { recursive: true });
    writeFileSync(path.join(binDir, 'xvsadm'),
      `#!/bin/sh\nexec ${process.execPath} ${path.join(packageRoot, 'dist', 'src', 'cli', 'xvsadm.js')} --socket ${director.socket} "$@"\n`);
    chmodSync(path.join(binDir, 'xvsadm'), 0o755);
    const script = path.join(work, 'lvs-web.sh');
    writeFileSync(script, SCRIPT.replaceAll('ipvsadm', 'xvsadm'));

    const child = spawn('ip', ['netns', 'exec', lab.director.ns, 'bash', script], {
      env: { ...process.env, WORK: work, PATH: `${binDir}:${process.env.PATH ?? '/usr/bin:/bin'}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    try {
      // The script waits for traffic after it has zeroed the counters.
      const deadline = Date.now() + 60_000;
      while (!existsSync(path.join(work, 'ready'))) {
        if (child.exitCode !== null || Date.now() > deadline) assert.fail(`the script stopped early: ${out}\n${err}`);
        await sleep(100);
      }
      const answered = await curlMany(lab, REQUESTS);
      writeFileSync(path.join(work, 'traffic-done'), '');
      assert.equal(answered.length, REQUESTS);
      assert.equal(await exited, 0, `${out}\n${err}`);
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
    }
    assert.equal(err, '');
    const section = (name: string) => out.split(`== ${name} ==\n`)[1]!.split(/^== /m)[0]!;

    assert.equal(section('list'), `IP Virtual Server version 1.2.1 (size=65536)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.80:80 wrr
  -> 192.0.2.11:80                Route   3      0          0         
  -> 192.0.2.12:80                Route   1      0          0         
IP Virtual Server version 1.2.1 (size=65536)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  www:http wrr
  -> rs1:http                     Route   3      0          0         
  -> rs2:http                     Route   1      0          0         
`);
    assert.equal(section('edit'), `Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.80:80 rr persistent 600
  -> 192.0.2.11:80                Route   3      0          0         
  -> 192.0.2.12:80                Route   2      0          0         
`);
    assert.equal(section('save'), `-A -t 192.0.2.80:80 -s rr -p 600
-a -t 192.0.2.80:80 -r 192.0.2.11:80 -g -w 3
-a -t 192.0.2.80:80 -r 192.0.2.12:80 -g -w 2
`);
    assert.equal(section('delete'), `IP Virtual Server version 1.2.1 (size=65536)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
`);
    assert.equal(section('restore'), '');
    assert.equal(section('zero'), '2\n');

    // Rates: the 2-second estimator has seen the requests; the destinations' columns are ipvsadm's.
    const rates = section('rates').split('\n');
    assert.equal(rates[1], 'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS');
    const svc = /^TCP {2}192\.0\.2\.80:80 {16}( {0,8}\d+)( {0,8}\d+)( {0,8}\d+)( {0,8}\d+K?)( {0,8}\d+)$/.exec(rates[3]!);
    assert.ok(svc, rates[3]);
    assert.ok(Number(svc[1]) > 0 && Number(svc[2]) > 0, `CPS and InPPS after ${REQUESTS} requests: ${rates[3]}`);
    assert.equal(Number(svc[3]), 0, 'DR: no packet comes back through the director');

    // Connections: the client's, to the VIP, on one of the two real servers (persistence: the same one),
    // and the persistence template (state NONE, client port 0).
    const conns = section('connections').split('\n');
    assert.deepEqual(conns.slice(0, 2), ['IPVS connection entries', 'pro expire state       source             virtual            destination']);
    const entries = conns.slice(2).filter((l) => l.startsWith('TCP ') && l.includes(':80'));
    const flows = entries.filter((l) => /^TCP \d\d:\d\d  (ESTABLISHED|FIN_WAIT|CLOSE|SYN_RECV) +192\.0\.2\.100:\d+ +192\.0\.2\.80:80 +192\.0\.2\.1[12]:80$/.test(l));
    assert.ok(flows.length > 0 && flows.length <= REQUESTS, entries.join('\n'));
    assert.ok(entries.some((l) => /^TCP (0[0-9]|10):\d\d  NONE +192\.0\.2\.100:0 +192\.0\.2\.80:80 +192\.0\.2\.1[12]:80$/.test(l)), entries.join('\n'));
    // Without -n: names from the namespace's hosts and services files.
    const named = conns.find((l) => l.startsWith('pro expire state       source             virtual            destination        pe name'));
    assert.ok(named, 'the --persistent-conn header');
    assert.ok(conns.some((l) => / client:\d+ +www:http +rs[12]:http$/.test(l)), conns.join('\n'));
    // The statistics count every request, after -Z.
    const stats = conns.find((l) => l.startsWith('TCP  192.0.2.80:80 ') && !l.includes('rr'));
    assert.ok(stats, conns.join('\n'));
    assert.equal(Number(stats.slice(33, 42)), REQUESTS, stats);
    assert.equal(conns.at(-2), 'Timeout (tcp tcpfin udp): 900 120 300');
  });
});
