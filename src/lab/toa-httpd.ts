// A FULLNAT real server's application for the lab: lab/httpd.ts's answers
// (the server's name; GET /bytes/N for downloads; X-Received-Bytes for
// uploads), each also saying who the client was, as the TOA reader recorded
// it for the connection (clientOf), and who the connection's peer is (a
// local address of the director):
//   X-Client: toa ADDRESS PORT   (or "peer ADDRESS PORT" when no TOA was recorded)
//   X-Peer: ADDRESS PORT
//   node dist/src/lab/toa-httpd.js --name rs1 [--port 80] [--host ::] [--pin-dir DIR] [--state-dir DIR]
// Start it in the cgroup the reader is attached to, before it listens: an
// accepted connection belongs to its listening socket's cgroup.
import http from 'node:http';
import { parseArgs } from 'node:util';
import { clientOf, closeToaTables, type ToaTableOptions } from '../realserver/toa.js';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    port: { type: 'string', default: '80' },
    // '::' takes IPv4 clients too, as ::ffff:a.b.c.d.
    host: { type: 'string', default: '::' },
    'pin-dir': { type: 'string' },
    'state-dir': { type: 'string' },
  },
  strict: true,
});
const name = values.name;
const port = Number(values.port);
if (!name || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: toa-httpd --name NAME [--port 1-65535] [--host ADDR] [--pin-dir DIR] [--state-dir DIR]\n');
  process.exit(2);
}
const toa: ToaTableOptions = {
  ...(values['pin-dir'] === undefined ? {} : { pinDir: values['pin-dir'] }),
  ...(values['state-dir'] === undefined ? {} : { stateDir: values['state-dir'] }),
};

const MAX_BYTES = 16 << 20;
const plain = (a: string | undefined): string => (a ?? '').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');

const server = http.createServer((req, res) => {
  const bytes = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
  const body = bytes && Number(bytes[1]) <= MAX_BYTES ? Buffer.alloc(Number(bytes[1]), 0x78) : Buffer.from(`${name}\n`);
  let received = 0;
  req.on('data', (d: Buffer) => { received += d.length; });
  // Once the request is in: the director may have put the TOA in its first data segment.
  req.on('end', () => {
    let client: string;
    try {
      const c = clientOf(req.socket, toa);
      client = `${c.via} ${c.address} ${c.port}`;
    } catch (e) {
      client = `error ${e instanceof Error ? e.message.replace(/\s+/g, ' ') : String(e)}`;
    }
    res.writeHead(200, {
      'Content-Type': 'text/plain',
      'Content-Length': body.length,
      'X-Real-Server': name,
      'X-Received-Bytes': String(received),
      'X-Client': client,
      'X-Peer': `${plain(req.socket.remoteAddress)} ${req.socket.remotePort ?? 0}`,
    });
    res.end(body);
  });
});
server.keepAliveTimeout = 30_000;

server.listen({ port, host: values.host, ipv6Only: false }, () => process.stdout.write('listening\n'));
server.on('error', (e) => {
  process.stderr.write(`toa-httpd ${name}: ${e.message}\n`);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    closeToaTables();
    process.exit(0);
  });
}
