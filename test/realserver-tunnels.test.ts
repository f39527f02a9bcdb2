// `xvs realserver setup --mode tun --tun-type gue|gre [--tun-port P]` in a
// lab real-server namespace: the decap takes GUE on exactly the ports its
// GUE VIPs name (read back with bpftool, not through the code under test),
// GRE and IPIP need nothing more, a VIP keeps the tunnel it was set up with,
// and bad options change nothing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createLab, sweepStaleLabs, type Lab, type LabHost } from '../src/lab/topology.js';
import { setupRealServer, teardownRealServer, type RealServerOptions } from '../src/realserver/setup.js';
import { withNetnsAsync } from '../src/loader/index.js';
import { bpfObject } from '../src/paths.js';
import { isXvsError } from '../src/errors.js';
import { decapGuePorts, decapVips, xdpProg } from './helpers/inspect.js';

const skip = process.geteuid?.() !== 0 ? 'needs root (network namespaces, sysctls, XDP)' : existsSync(bpfObject('xvs_decap')) ? false : 'bpf/.output/xvs_decap.o is not built';

describe('real server setup for GUE and GRE', { skip, timeout: 120_000 }, () => {
  let lab: Lab;
  let rs: LabHost;
  let base: Omit<RealServerOptions, 'vip' | 'mode'>;

  const inRs = <T>(fn: () => Promise<T>): Promise<T> => withNetnsAsync(rs.ns, fn);
  const setup = (vip: string, more: Partial<RealServerOptions> = {}) => inRs(() => setupRealServer({ ...base, vip, mode: 'tun', ...more }));
  const teardown = (vip: string) => inRs(() => teardownRealServer({ ...base, vip, mode: 'tun' }));
  const stateFile = (): string => path.join(base.stateDir!, 'realserver.json');
  const decap = async () => xdpProg(rs.ns, 'eth0');
  const ports = async () => decapGuePorts((await decap())!.id);

  before(async () => {
    await sweepStaleLabs();
    lab = await createLab({ reals: 1 });
    rs = lab.reals[0]!;
    base = { stateDir: path.join(lab.dir, 'rs1-state'), pinDir: path.join(lab.bpffs, 'rs1'), interface: 'eth0' };
  });

  after(async () => {
    await lab?.down();
  });

  it('refuses tunnel options that do not fit, changing nothing', async () => {
    const cases: [Partial<RealServerOptions>, RegExp][] = [
      [{ mode: 'dr', tunType: 'gre' }, /for TUN real servers/],
      [{ mode: 'dr', tunPort: 6080 }, /for TUN real servers/],
      [{ tunType: 'gue' }, /GUE needs --tun-port/],
      [{ tunType: 'gre', tunPort: 6080 }, /--tun-port is for GUE only, not GRE/],
      [{ tunPort: 6080 }, /--tun-port is for GUE only, not IPIP/],
      [{ tunType: 'gue', tunPort: 0 }, /GUE port 0: use 1\.\.65535/],
      [{ tunType: 'gue', tunPort: 65536 }, /GUE port 65536/],
      [{ tunType: 'vxlan' as 'gue', tunPort: 4789 }, /tunnel type "vxlan"/],
    ];
    for (const [o, re] of cases) {
      await assert.rejects(setup('192.0.2.80', o), (e: unknown) => isXvsError(e) && e.code === 'BAD_ARGUMENT' && re.test(e.message) && !e.message.includes('\n'), JSON.stringify(o));
    }
    assert.equal(await decap(), undefined);
    assert.ok(!existsSync(stateFile()));
  });

  it('GUE ports follow the GUE VIPs; GRE and IPIP VIPs share the decap', async () => {
    const lines = await setup('192.0.2.80', { tunType: 'gue', tunPort: 6080 });
    assert.ok(lines.includes('added UDP port 6080 to xvs_decap_ports'), lines.join('\n'));
    assert.equal((await decap())?.name, 'xdp_decap');
    assert.deepEqual(await ports(), [6080]);
    await setup('192.0.2.81', { tunType: 'gre' });
    await setup('192.0.2.82', { tunType: 'gue', tunPort: 6081 });
    await setup('192.0.2.83', { tunType: 'gue', tunPort: 6080 });
    await setup('192.0.2.84');
    assert.deepEqual(await ports(), [6080, 6081]);
    assert.deepEqual(await decapVips((await decap())!.id), ['192.0.2.80', '192.0.2.81', '192.0.2.82', '192.0.2.83', '192.0.2.84']);
    const state = JSON.parse(readFileSync(stateFile(), 'utf8')) as { vips: Record<string, unknown> };
    assert.deepEqual(state.vips['192.0.2.82'], { mode: 'tun', interface: 'eth0', tunnel: { type: 'gue', port: 6081 } });
    assert.deepEqual(state.vips['192.0.2.84'], { mode: 'tun', interface: 'eth0' });

    // Set up again the same way: nothing to do; another way: refused.
    assert.deepEqual(await setup('192.0.2.80', { tunType: 'gue', tunPort: 6080 }), ['192.0.2.80 is already set up (tun (gue port 6080) on eth0)']);
    await assert.rejects(setup('192.0.2.80', { tunType: 'gre' }), /192\.0\.2\.80 is set up as tun \(gue port 6080\) on eth0; tear it down first/);
    await assert.rejects(setup('192.0.2.81'), /set up as tun \(gre\) on eth0/);
    assert.deepEqual(await ports(), [6080, 6081]);

    // A port goes when its last VIP does.
    const down = await teardown('192.0.2.82');
    assert.ok(down.includes('removed UDP port 6081 from xvs_decap_ports'), down.join('\n'));
    assert.deepEqual(await ports(), [6080]);
    await teardown('192.0.2.80');
    assert.deepEqual(await ports(), [6080], '192.0.2.83 still takes GUE on 6080');
    await teardown('192.0.2.83');
    assert.deepEqual(await ports(), []);
    await teardown('192.0.2.81');
    assert.equal((await decap())?.name, 'xdp_decap', 'the IPIP VIP keeps it');
    await teardown('192.0.2.84');
    assert.equal(await decap(), undefined);
    assert.ok(!existsSync(stateFile()));
  });
});
