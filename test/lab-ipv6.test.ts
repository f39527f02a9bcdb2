// The lab's IPv6 side: the address plan, every address usable the moment
// the lab is up (no duplicate address detection to wait for, which would
// delay the first neighbour solicitation of a test by a second or more), and
// no router or switch chatter of its own.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, nsExec, overIpv6, run, type Lab } from '../src/lab/topology.js';

const skip = process.geteuid?.() !== 0 ? 'needs root (network namespaces, bpffs, XDP)' : false;

interface AddrInfo { family: string; local: string; prefixlen: number; scope: string; tentative?: boolean; nodad?: boolean }

describe('namespace lab with IPv6', { skip, timeout: 60_000 }, () => {
  let lab: Lab;
  const addrs = async (ns: string, dev: string): Promise<AddrInfo[]> =>
    (JSON.parse(await run('ip', ['-n', ns, '-j', '-6', 'addr', 'show', 'dev', dev])) as { addr_info?: AddrInfo[] }[])[0]?.addr_info ?? [];

  before(async () => {
    lab = await createLab({ id: `xvslab6${process.pid % 10000}`, reals: 2, ipv6: true });
  });

  after(async () => {
    await lab?.down();
  });

  it('reaches every host over IPv6 at once: nothing tentative, no waiting', async () => {
    // First, before anything settles: a tentative address would fail these.
    for (const h of [lab.director, ...lab.reals]) {
      await nsExec(lab.client.ns, 'ping', ['-6', '-n', '-q', '-c', '1', '-W', '2', h.ip6!], { timeoutMs: 5000 });
    }
    for (const h of [lab.client, lab.director, ...lab.reals]) {
      const a = await addrs(h.ns, h.ifname);
      assert.deepEqual(a.filter((x) => x.scope === 'global').map((x) => [x.local, x.prefixlen, !!x.nodad]), [[h.ip6, 64, true]], h.name);
      assert.ok(a.some((x) => x.scope === 'link'), `${h.name} has a link-local address to solicit neighbours from`);
      assert.deepEqual(a.filter((x) => x.tentative).map((x) => x.local), [], `${h.name}: nothing waits for DAD`);
    }
  });

  it('follows the plan, and overIpv6 shows it', () => {
    assert.deepEqual([lab.client.ip6, lab.director.ip6, lab.vip6], ['2001:db8::100', '2001:db8::1', '2001:db8::80']);
    assert.deepEqual(lab.reals.map((r) => r.ip6), ['2001:db8::11', '2001:db8::12']);
    const six = overIpv6(lab);
    assert.deepEqual([six.vip, six.client.ip, six.director.ip, ...six.reals.map((r) => r.ip)], ['2001:db8::80', '2001:db8::100', '2001:db8::1', '2001:db8::11', '2001:db8::12']);
    assert.deepEqual([six.reals[0]!.ns, six.reals[0]!.mac], [lab.reals[0]!.ns, lab.reals[0]!.mac]);
  });

  it('the switch has no IPv6 and floods multicast; hosts solicit no routers', async () => {
    assert.equal((await nsExec(lab.switchNs, 'sysctl', ['-n', 'net.ipv6.conf.all.disable_ipv6'])).trim(), '1');
    const br = JSON.parse(await run('ip', ['-n', lab.switchNs, '-j', '-d', 'link', 'show', 'br0'])) as { linkinfo: { info_data: { mcast_snooping: number } } }[];
    assert.equal(br[0]?.linkinfo.info_data.mcast_snooping, 0);
    for (const h of [lab.client, ...lab.reals]) {
      assert.equal((await nsExec(h.ns, 'sysctl', ['-n', `net.ipv6.conf.${h.ifname}.router_solicitations`])).trim(), '0', h.name);
    }
  });

  it('overIpv6 refuses a lab made without IPv6', async () => {
    assert.throws(() => overIpv6({ ...lab, vip6: undefined } as unknown as Lab), /without ipv6/);
  });
});
