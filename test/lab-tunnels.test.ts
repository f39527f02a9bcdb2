// GUE and GRE end to end in the namespace lab, over IPv4 and over IPv6:
// real curl and Node clients, real HTTP servers behind the decap helper
// (`xvs realserver setup --mode tun --tun-type gue|gre`), xvsd and xvsadm as
// an operator runs them. One real server takes GUE, the other GRE; each
// checksum flag is tried in turn with -e; a large upload finds the MTU each
// tunnel leaves through ICMP (PMTUD).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import path from 'node:path';
import { request } from '../src/control/socket.js';
import type { ListResult } from '../src/control/protocol.js';
import { DECAP_CNT } from '../src/maps/abi.js';
import { createLab, nsExec, overIpv6, type Lab } from '../src/lab/topology.js';
import { startHttpd, type RunningHttpd } from '../src/lab/servers.js';
import { curlMany, keepAliveRequests, realServerSetup, startDirector, vipUrl, type DirectorHandle } from '../src/lab/scenario.js';
import { kernelSkipReason } from './helpers/env.js';
import { decapCounters, xdpProg } from './helpers/inspect.js';

const skip = kernelSkipReason();
const REQUESTS = 100;
const GUE_PORT = 6080;

const ep = (addr: string, port: number): string => (isIPv6(addr) ? `[${addr}]:${port}` : `${addr}:${port}`);

for (const family of ['inet', 'inet6'] as const) {
  describe(`lab: GUE and GRE real servers${family === 'inet6' ? ' over IPv6' : ''}`, { skip }, () => {
    let lab: Lab;
    let director: DirectorHandle;
    const servers: RunningHttpd[] = [];
    /** -e rules for rs1 (GUE) and rs2 (GRE) with the given checksum flags. */
    const edit = async (gue: string, gre: string) => {
      await director.xvsadm(['-e', '-t', ep(lab.vip, 80), '-r', ep(lab.reals[0]!.ip, 80), '-i', '-w', '3', '--tun-type', 'gue', '--tun-port', String(GUE_PORT), `--tun-${gue}`]);
      await director.xvsadm(['-e', '-t', ep(lab.vip, 80), '-r', ep(lab.reals[1]!.ip, 80), '-i', '-w', '1', '--tun-type', 'gre', `--tun-${gre}`]);
    };
    const counters = async () => Promise.all(lab.reals.map(async (r) => decapCounters((await xdpProg(r.ns, r.ifname))!.id)));

    before(async () => {
      const whole = await createLab({ id: `xvstt${family === 'inet6' ? '6' : '4'}${process.pid % 10000}`, reals: 2, ipv6: family === 'inet6' });
      lab = family === 'inet6' ? overIpv6(whole) : whole;
      servers.push(await startHttpd(lab, lab.reals[0]!, 'rs1'));
      servers.push(await startHttpd(lab, lab.reals[1]!, 'rs2'));
      await realServerSetup(lab, lab.reals[0]!, 'tun', 'setup', ['--tun-type', 'gue', '--tun-port', String(GUE_PORT)]);
      await realServerSetup(lab, lab.reals[1]!, 'tun', 'setup', ['--tun-type', 'gre']);
      director = await startDirector(lab);
      await director.xvsadm(['-A', '-t', ep(lab.vip, 80), '-s', 'wrr']);
      await director.xvsadm(['-a', '-t', ep(lab.vip, 80), '-r', ep(lab.reals[0]!.ip, 80), '-i', '-w', '3', '--tun-type', 'gue', '--tun-port', String(GUE_PORT), '--tun-csum']);
      await director.xvsadm(['-a', '-t', ep(lab.vip, 80), '-r', ep(lab.reals[1]!.ip, 80), '-i', '-w', '1', '--tun-type', 'gre', '--tun-csum']);
    });

    after(async () => {
      await director?.stop();
      for (const s of servers) await s.stop();
      await lab?.down();
    });

    const list = () => request(director.socket, { op: 'list' }) as Promise<ListResult>;

    for (const [gue, gre] of [['csum', 'csum'], ['nocsum', 'nocsum'], ['remcsum', 'csum']] as const) {
      test(`GUE --tun-${gue} and GRE --tun-${gre}: ${REQUESTS} curl requests answered, split 3:1, every tunnel stripped by the decap`, async () => {
        await edit(gue, gre);
        const was = await counters();
        const before = (await list()).services[0]!.reals.map((r) => r.stats.conns);
        const names = await curlMany(lab, REQUESTS);
        assert.equal(names.length, REQUESTS, 'every request answered');
        const rs1 = names.filter((n) => n === 'rs1').length;
        assert.deepEqual([rs1, REQUESTS - rs1], [REQUESTS * 0.75, REQUESTS * 0.25], `wrr 3:1, got rs1=${rs1}`);
        const l = await list();
        assert.deepEqual(l.services[0]!.reals.map((r, i) => r.stats.conns - before[i]!), [REQUESTS * 0.75, REQUESTS * 0.25]);
        const now = await counters();
        for (const i of [0, 1]) {
          const d = (c: keyof typeof DECAP_CNT) => (now[i]![DECAP_CNT[c]] ?? 0) - (was[i]![DECAP_CNT[c]] ?? 0);
          assert.ok(d('decapped') >= names.filter((n) => n === `rs${i + 1}`).length * 3, `rs${i + 1}: ${d('decapped')} stripped`);
          assert.equal(d('malformed'), 0, `rs${i + 1}: nothing malformed`);
          assert.equal(d('not_vip'), 0, `rs${i + 1}: nothing to another address`);
        }
      });
    }

    test('keep-alive connections each stay on one real server', async () => {
      await edit('csum', 'csum');
      const conns = await keepAliveRequests(lab, 12, 8);
      for (const c of conns) {
        assert.equal(c.servers.length, 8);
        assert.equal(new Set(c.localPorts).size, 1, 'one TCP connection');
        assert.equal(new Set(c.servers).size, 1, `one real server per connection, got ${c.servers.join(',')}`);
      }
      assert.equal(new Set(conns.map((c) => c.servers[0])).size, 2, 'both tunnels carried connections');
    });

    test(`large uploads through each tunnel find its MTU (${family === 'inet6' ? 'ICMPv6 packet-too-big' : 'ICMP fragmentation-needed'})`, async () => {
      const body = path.join(lab.dir, 'upload.bin');
      writeFileSync(body, Buffer.alloc(256 * 1024, 0x78));
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const out = await nsExec(lab.client.ns, 'curl', ['-s', '-g', '--fail', '--max-time', '20', '--data-binary', `@${body}`, vipUrl(lab)], { timeoutMs: 30_000 });
        assert.match(out, /^rs[12]$/m);
        seen.add(out.trim());
      }
      assert.deepEqual([...seen].sort(), ['rs1', 'rs2'], 'an upload went through each tunnel');
      const l = await list();
      assert.ok((l.counters.frag_needed ?? 0) > 0, `frag_needed=${l.counters.frag_needed}`);
      assert.equal(l.counters.error ?? 0, 0);
    });

    test('xvsadm -L -n --tun-info shows the tunnels as ipvsadm does', async () => {
      await edit('remcsum', 'nocsum');
      const out = await director.xvsadm(['-L', '-n', '--tun-info']);
      assert.match(out, new RegExp(`-> ${ep(lab.reals[0]!.ip, 80).replace(/[.[\]]/g, '\\$&')}\\s+Tunnel  gue:${GUE_PORT}:r\\+c\\s+3 `));
      assert.match(out, new RegExp(`-> ${ep(lab.reals[1]!.ip, 80).replace(/[.[\]]/g, '\\$&')}\\s+Tunnel  gre:-c\\s+1 `));
    });
  });
}
