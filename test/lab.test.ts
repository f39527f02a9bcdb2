// The namespace lab itself: wiring, reachability, the httpd, and a clean down().
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createLab, nsExec, run, sweepStaleLabs, type Lab } from '../src/lab/topology.js';
import { startHttpd } from '../src/lab/servers.js';

const skip = process.geteuid?.() !== 0 ? 'needs root (network namespaces, bpffs, XDP)' : false;

describe('namespace lab', { skip, timeout: 120_000 }, () => {
  let lab: Lab;

  before(async () => {
    await sweepStaleLabs();
    lab = await createLab({ reals: 2 });
  });

  after(async () => {
    await lab?.down();
  });

  it('addresses and MACs follow the plan', async () => {
    assert.equal(lab.director.ip, '192.0.2.1');
    assert.deepEqual(lab.reals.map((r) => r.ip), ['192.0.2.11', '192.0.2.12']);
    assert.equal(lab.client.ip, '192.0.2.100');
    assert.equal(lab.vip, '192.0.2.80');
    const link = JSON.parse(await run('ip', ['-n', lab.reals[0]!.ns, '-j', 'link', 'show', 'eth0'])) as Array<{ address: string }>;
    assert.equal(link[0]?.address, '02:00:00:00:00:0b');
    // The VIP is the director's and real servers' business, not the lab's.
    const addrs = await run('ip', ['-n', lab.director.ns, '-4', 'addr']);
    assert.ok(!addrs.includes(lab.vip));
  });

  it('tx checksum offload is off on both ends of each veth', async () => {
    for (const h of [lab.client, lab.director, ...lab.reals]) {
      assert.match(await nsExec(h.ns, 'ethtool', ['-k', h.ifname]), /^tx-checksumming: off/m, h.name);
      assert.match(await nsExec(lab.switchNs, 'ethtool', ['-k', h.peer]), /^tx-checksumming: off/m, h.peer);
    }
  });

  it('the director peer runs xdp_pass', async () => {
    const out = await run('ip', ['-n', lab.switchNs, '-j', '-d', 'link', 'show', lab.director.peer]);
    const xdp = (JSON.parse(out) as Array<{ xdp?: { mode: number; prog?: { name: string } } }>)[0]?.xdp;
    assert.equal(xdp?.prog?.name, 'xdp_pass');
  });

  it('client reaches rs1 by ping', async () => {
    await nsExec(lab.client.ns, 'ping', ['-c', '3', '-W', '1', '-i', '0.2', lab.reals[0]!.ip], { timeoutMs: 10_000 });
  });

  it('client gets an answer from the httpd on rs1', async () => {
    const srv = await startHttpd(lab, lab.reals[0]!, 'rs1');
    try {
      const out = await nsExec(lab.client.ns, 'curl', ['-sS', '-i', '--max-time', '5', `http://${lab.reals[0]!.ip}/`]);
      assert.match(out, /^X-Real-Server: rs1\r?$/im);
      assert.ok(out.endsWith('\r\n\r\nrs1\n'), out);
    } finally {
      await srv.stop();
    }
  });

  it('down() leaves no namespace and no mount behind', async () => {
    const { id, bpffs } = lab;
    // A server still running must not keep a namespace alive.
    await startHttpd(lab, lab.reals[1]!, 'rs2');
    await lab.down();
    await lab.down(); // idempotent
    const names = (await run('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0]);
    assert.deepEqual(names.filter((n) => n?.startsWith(`${id}-`)), []);
    assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(bpffs));
  });
});
