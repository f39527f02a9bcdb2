// An HTTP upload whose first data segment is a full one: the request line,
// headers and body go to the kernel in one write right after the connection
// is up, so the segment that carries FULLNAT's TOA (the first with data) is
// as large as the MSS allows. curl writes the headers of a large POST on
// their own, and its first data segment would be small.
//   node dist/src/lab/upload.js --host VIP --port 80 --bytes N [--timeout-ms 30000]
// Prints {"local":{"address","port"},"status","headers"} as JSON.
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string' },
    port: { type: 'string', default: '80' },
    bytes: { type: 'string' },
    'timeout-ms': { type: 'string', default: '30000' },
  },
  strict: true,
});
const host = values.host;
const port = Number(values.port);
const bytes = Number(values.bytes);
const timeoutMs = Number(values['timeout-ms']);
if (!host || !Number.isInteger(port) || !Number.isInteger(bytes) || bytes < 1 || bytes > 64 << 20 || !(timeoutMs > 0)) {
  process.stderr.write('usage: upload --host ADDR [--port N] --bytes N [--timeout-ms N]\n');
  process.exit(2);
}

const hostHeader = net.isIPv6(host) ? `[${host}]` : host;
const head = Buffer.from(`POST /upload HTTP/1.1\r\nHost: ${hostHeader}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${bytes}\r\nConnection: close\r\n\r\n`);
const request = Buffer.concat([head, Buffer.alloc(bytes, 0x55)]);

const socket = net.connect({ host, port });
const chunks: Buffer[] = [];
let local = { address: '', port: 0 };
const timer = setTimeout(() => {
  process.stderr.write(`upload: no complete answer within ${timeoutMs} ms\n`);
  process.exit(1);
}, timeoutMs);
socket.on('connect', () => {
  local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
  socket.write(request);
});
socket.on('data', (d: Buffer) => chunks.push(d));
socket.on('error', (e) => {
  process.stderr.write(`upload: ${e.message}\n`);
  process.exit(1);
});
socket.on('end', () => {
  clearTimeout(timer);
  const text = Buffer.concat(chunks).toString('latin1');
  const [status = '', ...lines] = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  process.stdout.write(`${JSON.stringify({ local, status: Number(status.split(' ')[1]), headers })}\n`);
});
