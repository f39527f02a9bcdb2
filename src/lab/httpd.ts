// A real server for the lab and the VMs: every answer names the server, so a
// client can tell where the director sent it.
//   node dist/src/lab/httpd.js --name rs1 [--port 80] [--host 0.0.0.0] [--hold-ms N]
// --hold-ms delays each answer, to keep connections open while a test looks
// at the director's flow table. GET /bytes/N answers N bytes (at most
// 16 MiB) for downloads; every answer says how many request-body bytes
// arrived (X-Received-Bytes), for uploads.
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    port: { type: 'string', default: '80' },
    host: { type: 'string', default: '0.0.0.0' },
    'hold-ms': { type: 'string', default: '0' },
  },
  strict: true,
});

const name = values.name;
const port = Number(values.port);
const holdMs = Number(values['hold-ms']);
if (!name || !Number.isInteger(port) || port < 1 || port > 65535 || !Number.isFinite(holdMs) || holdMs < 0) {
  process.stderr.write('usage: httpd --name NAME [--port 1-65535] [--host ADDR] [--hold-ms N]\n');
  process.exit(2);
}

const MAX_BYTES = 16 << 20;
const server = http.createServer((req, res) => {
  const bytes = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
  const body = bytes && Number(bytes[1]) <= MAX_BYTES ? Buffer.alloc(Number(bytes[1]), 0x78) : Buffer.from(`${name}\n`);
  let received = 0;
  const answer = (): void => {
    res.writeHead(200, {
      'Content-Type': 'text/plain',
      'Content-Length': body.length,
      'X-Real-Server': name,
      'X-Received-Bytes': String(received),
    });
    res.end(body);
  };
  // Drain the request first so keep-alive works for requests with a body.
  req.on('data', (d: Buffer) => { received += d.length; });
  req.on('end', () => (holdMs > 0 ? setTimeout(answer, holdMs) : answer()));
});
// Long enough for a test to send several requests over one connection.
server.keepAliveTimeout = 30_000;

server.listen(port, values.host, () => {
  process.stdout.write('listening\n');
});
server.on('error', (e) => {
  process.stderr.write(`httpd ${name}: ${e.message}\n`);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
