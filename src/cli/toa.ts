// `xvs toa lookup|list`: the clients the TOA reader recorded on this FULLNAT
// real server (src/realserver/toa.ts), for shells and scripts.
import { Command } from 'commander';
import { XvsError } from '../errors.js';
import { ToaTable, type Endpoint, type ToaConnection, type ToaTableOptions } from '../realserver/toa.js';
import { REALSERVER_DEFAULTS } from '../realserver/setup.js';
import { parseEndpoint } from './ipvsadm-args.js';

interface Flags { pinDir?: string; stateDir?: string; json?: boolean }

const tableOptions = (o: Flags): ToaTableOptions => ({
  ...(o.pinDir === undefined ? {} : { pinDir: o.pinDir }),
  ...(o.stateDir === undefined ? {} : { stateDir: o.stateDir }),
});

/** IP:PORT with a port, as the connection's ends are written. */
function endpoint(text: string, what: string): Endpoint {
  const e = parseEndpoint(text);
  if (e.port === undefined || e.port === 0) throw new XvsError('BAD_ADDRESS', `${what} '${text}' needs a port 1..65535`, { hint: 'write IP:PORT, or [IPv6]:PORT' });
  return { address: e.addr, port: e.port };
}

export const showEndpoint = (e: Endpoint): string => (e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`);

function withTable<T>(o: Flags, fn: (t: ToaTable) => T): T {
  const t = ToaTable.open(tableOptions(o));
  try {
    return fn(t);
  } finally {
    t.close();
  }
}

function listing(conns: ToaConnection[]): string[] {
  const rows = conns
    .map((c) => [showEndpoint(c.local), showEndpoint(c.remote), showEndpoint(c.client), c.client.segment])
    .sort((a, b) => a.join(' ').localeCompare(b.join(' ')));
  const head = ['Local', 'Remote', 'Client', 'TOA in'];
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((x, i) => (i === r.length - 1 ? x : x.padEnd(width[i]!))).join('  '));
}

const where = `default: the reader setup recorded in this network namespace (${REALSERVER_DEFAULTS.stateRoot}/netns-INODE)`;

export function toaCommand(out: string[]): Command {
  const toa = new Command('toa').description('clients a FULLNAT director named in TOA options, as the TOA reader recorded them').exitOverride();
  const common = (c: Command): Command => c
    .option('--pin-dir <dir>', `bpffs directory setup pinned the reader's map in (${where})`)
    .option('--state-dir <dir>', 'state directory setup used (its --state-dir)')
    .option('--json', 'JSON instead of text')
    .exitOverride();

  toa.addCommand(common(new Command('lookup'))
    .description('the client of one connection, by this host\'s end and the peer\'s (under FULLNAT, the director\'s)')
    .requiredOption('--local <ip:port>', 'this host\'s address and port (the service)')
    .requiredOption('--remote <ip:port>', 'the peer\'s address and port, as `ss -tn` shows it')
    .action((o: Flags & { local: string; remote: string }) => {
      const local = endpoint(o.local, '--local');
      const remote = endpoint(o.remote, '--remote');
      const c = withTable(o, (t) => t.lookup(local, remote));
      if (!c) throw new XvsError('NO_TOA', `no TOA recorded for ${showEndpoint(local)} <- ${showEndpoint(remote)}`);
      out.push(o.json ? JSON.stringify(c) : showEndpoint(c));
    }));

  toa.addCommand(common(new Command('list'))
    .description('every connection with a recorded TOA')
    .action((o: Flags) => {
      const conns = withTable(o, (t) => t.list());
      out.push(...(o.json ? [JSON.stringify(conns)] : listing(conns)));
    }));
  return toa;
}
