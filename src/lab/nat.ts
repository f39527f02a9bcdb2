// The one-armed lab made an LVS-NAT site on one segment ("LVS-NAT on one
// network" in the LVS documents): the client moves to a subnet of its own,
// the client subnet of the two-armed lab, on the same bridge, and the
// director gets an address there and the VIP:
//
//   client 198.51.100.100/24 ─┐
//   director 192.0.2.1/24, 198.51.100.1/24, VIP 198.51.100.80/32 ─┤ br0, one segment
//   rs1 192.0.2.11/24, rs2 .12 ... (default route via 192.0.2.1) ─┘
//
// What sends the real servers' replies through the director is that the
// client is not on a link of theirs: their default route (via the
// director, `xvs realserver setup --mode nat`) carries them. A client in
// the real servers' own subnet would be answered directly, from RIP.
// ICMP redirects: the director's kernel forwards what XDP leaves to it (a
// reply of no flow) back out of the interface it came in on, to a client on
// that link, and would tell the real server to go to the client directly;
// the director sends none (send_redirects 0, as the LVS documents advise for
// one network) and the real servers take none (accept_redirects 0, set by
// `xvs realserver setup --mode nat`).
import { LAB_NET_TWO_ARMED, nsExec, run, type Lab } from './topology.js';

/** The one-armed lab with its client in a subnet of its own: the returned lab's `vip` and `client.ip` are the new ones. */
export async function natOneArmed(lab: Lab): Promise<Lab> {
  if (lab.arms !== 1) throw new Error('natOneArmed: the lab is already two-armed');
  const N = LAB_NET_TWO_ARMED;
  const c = lab.client;
  await run('ip', ['-n', c.ns, 'addr', 'flush', 'dev', c.ifname, 'scope', 'global']);
  await run('ip', ['-n', c.ns, 'addr', 'add', `${N.client}/${N.prefixLen}`, 'dev', c.ifname]);
  const d = lab.director;
  await run('ip', ['-n', d.ns, 'addr', 'add', `${N.directorClientSide}/${N.prefixLen}`, 'dev', d.ifname]);
  await nsExec(d.ns, 'sysctl', ['-qw', 'net.ipv4.conf.all.send_redirects=0', `net.ipv4.conf.${d.ifname}.send_redirects=0`]);
  return { ...lab, vip: N.vip, client: { ...c, ip: N.client } };
}
