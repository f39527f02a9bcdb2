// The real-server application of the TOA tests: an HTTP server answering
// each request with what clientOf() gives for its connection, and the
// socket's own peer, as JSON.
//   node dist/test/helpers/toa-httpd.js --port 80 [--host ::] [--pin-dir DIR] [--state-dir DIR]
import http from 'node:http';
import { parseArgs } from 'node:util';
import { clientOf, closeToaTables, type ToaTableOptions } from '../../src/realserver/toa.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '80' },
    // '::' (default) takes IPv4 clients as ::ffff:a.b.c.d on an IPv6 socket; 0.0.0.0 makes an IPv4 one.
    host: { type: 'string', default: '::' },
    'pin-dir': { type: 'string' },
    'state-dir': { type: 'string' },
  },
  strict: true,
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: toa-httpd --port 1-65535 [--pin-dir DIR] [--state-dir DIR]\n');
  process.exit(2);
}
const opts: ToaTableOptions = {
  ...(values['pin-dir'] === undefined ? {} : { pinDir: values['pin-dir'] }),
  ...(values['state-dir'] === undefined ? {} : { stateDir: values['state-dir'] }),
};

const server = http.createServer((req, res) => {
  // After the request: the TOA may have come with its first bytes.
  req.resume();
  req.on('end', () => {
    let status = 200;
    let body: string;
    try {
      const peer = { address: req.socket.remoteAddress, port: req.socket.remotePort };
      body = JSON.stringify({ client: clientOf(req.socket, opts), peer });
    } catch (e) {
      status = 500;
      body = JSON.stringify({ error: e instanceof Error ? e.message : String(e) });
    }
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = 120_000;

server.listen({ port, host: values.host, ipv6Only: false }, () => process.stdout.write('listening\n'));
server.on('error', (e) => {
  process.stderr.write(`toa-httpd: ${e.message}\n`);
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
