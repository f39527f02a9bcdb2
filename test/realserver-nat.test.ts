// `xvs realserver setup|teardown --mode nat` inside a lab real server (the
// two-armed lab, whose real servers start with a default route via its
// router): the default route goes via the director and comes back, ICMP
// redirects are refused and accepted again, nothing goes on lo, and bad
// options change nothing. Checks read the namespace with ip/sysctl.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createLab, nsExec, run, sweepStaleLabs, LAB_NET_TWO_ARMED, type Lab, type LabHost } from '../src/lab/topology.js';
import { setupRealServer, teardownRealServer, type RealServerOptions } from '../src/realserver/setup.js';
import { withNetnsAsync } from '../src/loader/index.js';
import { isXvsError } from '../src/errors.js';

const skip = process.geteuid?.() !== 0 ? 'needs root (network namespaces, routes, sysctls)' : false;
const KEYS = ['all', 'eth0'].map((d) => `net.ipv4.conf.${d}.accept_redirects`);

describe('NAT real server setup and teardown', { skip, timeout: 120_000 }, () => {
  let lab: Lab;
  let rs: LabHost;
  let base: Omit<RealServerOptions, 'vip' | 'mode'>;
  const director = LAB_NET_TWO_ARMED.directorServerSide;

  const inRs = <T>(fn: () => Promise<T>): Promise<T> => withNetnsAsync(rs.ns, fn);
  const defaults = async (): Promise<string> => (await run('ip', ['-n', rs.ns, '-4', 'route', 'show', 'default'])).trim();
  const redirects = async (): Promise<string[]> => (await nsExec(rs.ns, 'sysctl', ['-n', ...KEYS])).trim().split('\n');
  const lo = async (): Promise<string> => run('ip', ['-n', rs.ns, '-4', '-o', 'addr', 'show', 'dev', 'lo']);
  const snapshot = async () => ({ routes: await defaults(), redirects: await redirects(), lo: await lo() });

  before(async () => {
    await sweepStaleLabs();
    lab = await createLab({ reals: 1, arms: 2 });
    rs = lab.reals[0]!;
    base = { stateDir: path.join(lab.dir, 'rs1-state') };
  });

  after(async () => {
    await lab?.down();
  });

  it('rejects bad options without changing anything', async () => {
    const before = await snapshot();
    const cases: Array<[Partial<RealServerOptions>, string]> = [
      [{ vip: lab.vip, mode: 'nat' }, 'BAD_ARGUMENT'], // no --director
      [{ vip: lab.vip, mode: 'dr', director }, 'BAD_ARGUMENT'],
      [{ vip: lab.vip, mode: 'nat', director: '192.0.2.300' }, 'BAD_ADDRESS'],
      [{ vip: lab.vip, mode: 'nat', director: '2001:db8::1' }, 'BAD_ADDRESS'], // another family than the VIP
      [{ vip: lab.vip, mode: 'nat', director: '203.0.113.9' }, 'BAD_ADDRESS'], // reached through the router, not on a link
      [{ vip: lab.vip, mode: 'nat', director: rs.ip }, 'BAD_ADDRESS'], // the real server's own address
    ];
    for (const [o, code] of cases) {
      await assert.rejects(inRs(() => setupRealServer({ ...base, ...o } as RealServerOptions)),
        (e: unknown) => isXvsError(e) && e.code === code && !e.message.includes('\n'), JSON.stringify(o));
    }
    assert.deepEqual(await snapshot(), before);
  });

  it('routes replies via the director, refuses redirects, puts nothing on lo; teardown puts everything back', async () => {
    const before = await snapshot();
    assert.match(before.routes, new RegExp(`default via ${LAB_NET_TWO_ARMED.routerServerSide.replace(/\./g, '\\.')} dev eth0`));
    const lines = await inRs(() => setupRealServer({ ...base, vip: lab.vip, mode: 'nat', director }));
    assert.ok(lines.some((l) => l.includes(`default route via ${director}`)), lines.join('\n'));
    assert.equal(await defaults(), `default via ${director} dev eth0`);
    assert.deepEqual(await redirects(), ['0', '0']);
    assert.equal(await lo(), before.lo, 'nothing on lo');
    // Again: nothing to do.
    const again = await inRs(() => setupRealServer({ ...base, vip: lab.vip, mode: 'nat', director }));
    assert.deepEqual(again, [`${lab.vip} is already set up (nat on eth0 via ${director})`]);
    // A DR setup of the same VIP is refused while NAT holds it.
    await assert.rejects(inRs(() => setupRealServer({ ...base, vip: lab.vip, mode: 'dr' })), /set up as nat/);
    await inRs(() => teardownRealServer({ ...base, vip: lab.vip, mode: 'nat' }));
    assert.deepEqual(await snapshot(), before);
  });
});
