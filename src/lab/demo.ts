// `xvs demo`: the namespace lab end to end, as an operator would see it.
import { createLab } from './topology.js';
import { startHttpd, type RunningHttpd } from './servers.js';
import { captureReplySources, curlMany, realServerSetup, startDirector, type DirectorHandle } from './scenario.js';

export interface DemoOptions { requests: number; emit?: (line: string) => void }

export async function runDemo(o: DemoOptions): Promise<string[]> {
  const lines: string[] = [];
  const say = (l: string) => { lines.push(l); o.emit?.(l); };
  const lab = await createLab({ reals: 2 });
  const servers: RunningHttpd[] = [];
  let director: DirectorHandle | undefined;
  try {
    say(`lab ${lab.id}: client ${lab.client.ip}, director ${lab.director.ip}, real servers ${lab.reals.map((r) => r.ip).join(' ')}, VIP ${lab.vip} (namespaces ${lab.id}-*)`);
    for (const [i, host] of lab.reals.entries()) {
      servers.push(await startHttpd(lab, host, `rs${i + 1}`));
      await realServerSetup(lab, host, 'dr');
    }
    say('real servers: VIP on lo, arp_ignore=1, arp_announce=2, HTTP on :80');
    director = await startDirector(lab);
    say(`xvsd attached to ${lab.director.ns}/${lab.director.ifname}, socket ${director.socket}`);
    const cmds = [
      ['-A', '-t', `${lab.vip}:80`, '-s', 'wrr'],
      ['-a', '-t', `${lab.vip}:80`, '-r', `${lab.reals[0]!.ip}:80`, '-g', '-w', '3'],
      ['-a', '-t', `${lab.vip}:80`, '-r', `${lab.reals[1]!.ip}:80`, '-g', '-w', '1'],
    ];
    for (const c of cmds) {
      say(`# xvsadm ${c.join(' ')}`);
      await director.xvsadm(c);
    }
    say(`# ${o.requests} × curl http://${lab.vip}/ from the client`);
    const { result: names, macs } = await captureReplySources(lab, () => curlMany(lab, o.requests));
    const byName = new Map<string, number>();
    for (const n of names) byName.set(n, (byName.get(n) ?? 0) + 1);
    say(`answers: ${[...byName].map(([n, c]) => `${n}=${c}`).join(' ')} (weights 3:1)`);
    say(`reply source MACs seen by the client: ${[...macs].map(([m, c]) => `${m}×${c}`).join(' ')}; director is ${lab.director.mac}`);
    say('# xvsadm -L -n');
    say((await director.xvsadm(['-L', '-n'])).trimEnd());
    say('# xvsadm -L -n --stats');
    say((await director.xvsadm(['-L', '-n', '--stats'])).trimEnd());
  } finally {
    await director?.stop();
    for (const s of servers) await s.stop();
    await lab.down();
    say(`lab ${lab.id} removed`);
  }
  return lines;
}
