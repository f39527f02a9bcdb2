// `xvs explain tcp|udp CLIENT:PORT VIP:PORT`: what the running director
// would do with that packet now, and why (src/explain/). It reads the
// pinned maps, so it works while xvsd is down too; xvsd's socket, when it
// answers, adds why a next hop is unresolved.
import { Command } from 'commander';
import { request, DEFAULT_SOCKET } from '../control/socket.js';
import { DEFAULT_PIN_DIR } from '../daemon/dataplane.js';
import { attachmentsUsingMap } from '../daemon/ports.js';
import type { StatusView } from '../daemon/views.js';
import { XvsError } from '../errors.js';
import { explain, type Endpoint, type Explanation } from '../explain/explain.js';
import { PinnedDirector } from '../explain/pinned.js';
import { renderExplanation } from '../explain/render.js';
import { TCP_FLAG } from '../explain/rules.js';
import { ifIndex, listInterfaces } from '../loader/index.js';
import { parseEndpoint } from './ipvsadm-args.js';

interface Flags { flags?: string; interface?: string; pinDir: string; socket: string; json?: boolean }

function endpoint(text: string, what: string): Endpoint {
  const e = parseEndpoint(text);
  if (e.port === undefined || e.port === 0) throw new XvsError('BAD_ADDRESS', `${what} '${text}' needs a port 1..65535`, { hint: 'write IP:PORT, or [IPv6]:PORT' });
  return { addr: e.addr, port: e.port };
}

function tcpFlags(text: string): number {
  let bits = 0;
  for (const word of text.split(',').map((w) => w.trim().toLowerCase())) {
    const bit = (TCP_FLAG as Record<string, number>)[word];
    if (bit === undefined) throw new XvsError('BAD_ARGUMENT', `unknown TCP flag '${word}'`, { hint: `flags: ${Object.keys(TCP_FLAG).join(',').toUpperCase()}` });
    bits |= bit;
  }
  return bits;
}

async function daemonStatus(socket: string): Promise<StatusView | undefined> {
  try {
    return await request(socket, { op: 'status' }, 1000) as StatusView;
  } catch {
    return undefined;
  }
}

/** The explanation with what only the running system knows: where the director runs, what xvsd says. */
export async function explainPacket(proto: string, client: string, vip: string, o: Flags): Promise<Explanation & { daemon: { socket: string; answering: boolean } }> {
  if (proto !== 'tcp' && proto !== 'udp') throw new XvsError('BAD_ARGUMENT', `protocol '${proto}' is neither tcp nor udp`);
  const q = { proto, client: endpoint(client, 'client'), vip: endpoint(vip, 'destination') } as const;
  const flags = o.flags === undefined ? undefined : tcpFlags(o.flags);
  if (flags !== undefined && proto !== 'tcp') throw new XvsError('BAD_ARGUMENT', '--flags is for tcp packets');
  const names = new Map(listInterfaces().map((i) => [i.ifindex, i.name]));
  const explicit = o.interface === undefined ? undefined : { ifindex: ifIndex(o.interface), name: o.interface };
  const dp = PinnedDirector.open(o.pinDir);
  try {
    const attached = attachmentsUsingMap(dp.configId());
    const ingress = explicit ?? (attached.length === 1 ? { ifindex: attached[0]!.ifindex, name: attached[0]!.name } : undefined);
    const e = explain(dp, { ...q, ...(flags === undefined ? {} : { flags }), ...(ingress ? { ingress } : {}), ifname: (i) => names.get(i) });
    if (attached.length === 0) e.steps.splice(1, 0, { stage: 'director', says: 'its program is attached to no interface of this network namespace: no packet reaches it here' });
    else if (!explicit && attached.length > 1) e.steps.splice(1, 0, { stage: 'director', says: `runs on ${attached.map((a) => a.name).join(', ')}; give --interface for the one the packet arrives on` });
    const status = await daemonStatus(o.socket);
    if (!status) e.steps.push({ stage: 'xvsd', says: `no answer on ${o.socket}: the dataplane runs on as its maps stand (dynamic schedulers are not re-planned, next hops not refreshed)` });
    else if (e.nexthop && !e.nexthop.cached && e.real) {
      const why = status.unresolvedNexthops.find((u) => u.addr === e.real!.addr)?.why;
      if (why) e.steps.push({ stage: 'xvsd', says: `${e.real.addr}'s next hop is unresolved: ${why}` });
    }
    return { ...e, daemon: { socket: o.socket, answering: status !== undefined } };
  } finally {
    dp.close();
  }
}

export function explainCommand(out: string[]): Command {
  return new Command('explain')
    .description('what the director would do with one packet now, and why: the flow entry, or the service, persistence template and scheduler slot; the real server, next hop, rewrite, verdict and counters. Read from the running director\'s pinned maps')
    .argument('<proto>', 'tcp or udp')
    .argument('<client>', 'the packet\'s source, IP:PORT or [IPv6]:PORT')
    .argument('<vip>', 'its destination, VIP:PORT or [IPv6]:PORT')
    .option('--flags <list>', 'TCP flags, comma separated (SYN,ACK,FIN,RST,PSH); default: ACK when a live flow holds the tuple, SYN otherwise')
    .option('--interface <name>', 'where the packet arrives (default: the director\'s interface, when it runs on one)')
    .option('--pin-dir <dir>', 'bpffs directory of the director\'s pinned maps', DEFAULT_PIN_DIR)
    .option('--socket <path>', 'xvsd\'s control socket (asked why a next hop is unresolved; explain works without it)', DEFAULT_SOCKET)
    .option('--json', 'JSON instead of text')
    .exitOverride()
    .action(async (proto: string, client: string, vip: string, o: Flags) => {
      const e = await explainPacket(proto, client, vip, o);
      out.push(...(o.json ? [JSON.stringify(e, null, 2)] : renderExplanation(e)));
    });
}
