#!/usr/bin/env node
import { Command, Option } from 'commander';
import { DEFAULT_PIN_DIR } from '../daemon/dataplane.js';
import { takeDown } from '../daemon/down.js';
import { collectInterfaces } from '../daemon/interfaces.js';
import { REALSERVER_DEFAULTS, setupRealServer, teardownRealServer, type RealServerOptions } from '../realserver/setup.js';
import { request, DEFAULT_SOCKET } from '../control/socket.js';
import { runDemo } from '../lab/demo.js';
import { fail, positiveInt } from './common.js';
import { explainCommand } from './explain.js';
import { toaCommand } from './toa.js';

// `xvs`: everything that is not the director (xvsd) or ipvsadm (xvsadm).
// Handlers return lines; only main() prints.

interface RsFlags {
  vip: string; mode: RealServerOptions['mode']; director?: string; interface?: string; pinDir?: string; stateDir?: string; xdpMode: 'native' | 'generic';
  cgroup?: string; toaTableSize?: number; tunType?: 'ipip' | 'gue' | 'gre'; tunPort?: number;
}

function rsOptions(o: RsFlags): RealServerOptions {
  return {
    vip: o.vip, mode: o.mode, xdpMode: o.xdpMode,
    ...(o.director ? { director: o.director } : {}),
    ...(o.interface ? { interface: o.interface } : {}),
    ...(o.cgroup === undefined ? {} : { cgroup: o.cgroup }),
    ...(o.toaTableSize === undefined ? {} : { toaTableSize: o.toaTableSize }),
    ...(o.tunType === undefined ? {} : { tunType: o.tunType }),
    ...(o.tunPort === undefined ? {} : { tunPort: o.tunPort }),
    ...(o.pinDir === undefined ? {} : { pinDir: o.pinDir }),
    ...(o.stateDir === undefined ? {} : { stateDir: o.stateDir }),
  };
}

const perNetns = (root: string): string => `default: ${root}/netns-INODE, INODE naming this network namespace as in \`readlink /proc/self/ns/net\``;

function realserverCommand(name: 'setup' | 'teardown', out: string[]): Command {
  return new Command(name)
    .description(name === 'setup'
      ? 'configure this host as an LVS real server for a VIP, IPv4 or IPv6 (DR, TUN: VIP on lo; IPv4: ARP sysctls; TUN: the decap helper for IPIP, SIT, IPv6, GUE and GRE tunnels, IPv4: rp_filter; '
        + 'NAT: the default route via --director, ICMP redirects refused, nothing on lo; FULLNAT: the TOA reader on a cgroup)'
      : 'undo `xvs realserver setup` for a VIP, restoring the previous sysctls (and, for NAT, the previous default route)')
    .requiredOption('--vip <ip>', 'virtual IP address, IPv4 or IPv6')
    .addOption(new Option('--mode <mode>', 'forwarding method').choices(['dr', 'tun', 'nat', 'fullnat']).makeOptionMandatory())
    .option('--director <ip>', 'NAT: the director\'s address on the real servers\' side, which becomes the default gateway')
    .option('--interface <if>', 'DR, TUN, NAT: interface facing the director (default: the route to the VIP, or to the director for NAT)')
    .addOption(new Option('--tun-type <type>', 'TUN: the tunnel the director sends, as its xvsadm --tun-type (default ipip; IPIP and GRE need nothing more)').choices(['ipip', 'gue', 'gre']))
    .option('--tun-port <port>', 'TUN, GUE: the UDP port the director sends to, as its xvsadm --tun-port', positiveInt)
    .option('--cgroup <path>', 'FULLNAT: the cgroup whose connections the TOA reader sees, as /proc/PID/cgroup names it (default: /, every process)')
    .option('--toa-table-size <n>', 'FULLNAT: connections the TOA reader holds at once (default 65536)', positiveInt)
    .option('--pin-dir <dir>', `bpffs directory for the decap helper's and the TOA reader's maps (${perNetns(REALSERVER_DEFAULTS.pinRoot)})`)
    .option('--state-dir <dir>', `where what setup changed is recorded for teardown (${perNetns(REALSERVER_DEFAULTS.stateRoot)})`)
    .addOption(new Option('--xdp-mode <mode>', 'XDP attach mode').choices(['native', 'generic']).default('native'))
    .action(async (o: RsFlags) => {
      out.push(...(name === 'setup' ? await setupRealServer(rsOptions(o)) : await teardownRealServer(rsOptions(o))));
    });
}

export function buildProgram(out: string[]): Command {
  const program = new Command('xvs').description('xvs tools: real-server set-up, FULLNAT client addresses, what the director does with a packet, the lab demo, dataplane clean-up').exitOverride();
  const rs = new Command('realserver').description('real-server set-up for DR, TUN, NAT and FULLNAT');
  rs.addCommand(realserverCommand('setup', out).exitOverride());
  rs.addCommand(realserverCommand('teardown', out).exitOverride());
  program.addCommand(rs.exitOverride());
  program.addCommand(toaCommand(out));
  program.addCommand(explainCommand(out));
  program.command('demo')
    .description('bring up the namespace lab, start xvsd, add a DR service with two real servers, send requests, show the listing')
    .option('--requests <n>', 'HTTP requests to send', '200')
    .action(async (o: { requests: string }) => { await runDemo({ requests: Number(o.requests), emit: (l) => process.stdout.write(`${l}\n`) }); });
  program.command('status')
    .description('a running xvsd as JSON: dataplane counters, interfaces, unresolved next hops, FULLNAT pools')
    .option('--socket <path>', 'control socket', DEFAULT_SOCKET)
    .action(async (o: { socket: string }) => { out.push(JSON.stringify(await request(o.socket, { op: 'status' }), null, 2)); });
  program.command('down')
    .description('detach the director from its interfaces and remove its pinned maps (drops all flows)')
    .option('--interface <if[:role],...>', 'interfaces xvsd was attached to, repeatable or a comma list (roles as xvsd takes them); '
      + 'every other interface running the director on the pinned maps is detached too', collectInterfaces)
    .option('--pin-dir <dir>', 'bpffs directory of the pinned maps', DEFAULT_PIN_DIR)
    .action((o: { interface?: string[]; pinDir: string }) => { out.push(takeDown(o)); });
  return program;
}

async function main(): Promise<void> {
  const out: string[] = [];
  await buildProgram(out).parseAsync(process.argv);
  if (out.length) process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((e: unknown) => fail('xvs', e));
