// A keep-alive HTTP client for the lab: opens C connections, sends R
// requests on each, and reports which real server answered each request of
// each connection, as JSON on stdout.
//   node dist/src/lab/client.js --url http://192.0.2.80/ --connections 20 --requests 10
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    connections: { type: 'string', default: '10' },
    requests: { type: 'string', default: '10' },
    'timeout-ms': { type: 'string', default: '3000' },
    'interval-ms': { type: 'string', default: '0' },
  },
});
const url = values.url;
const conns = Number(values.connections);
const perConn = Number(values.requests);
const timeout = Number(values['timeout-ms']);
const interval = Math.min(Number(values['interval-ms']), 10_000);
if (!url || !(conns > 0 && conns <= 1000) || !(perConn > 0 && perConn <= 1000)) {
  process.stderr.write('usage: client --url URL [--connections 1-1000] [--requests 1-1000]\n');
  process.exit(2);
}

function get(agent: http.Agent): Promise<{ server: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url!, { agent, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ server: body.trim(), localPort: req.socket?.localPort ?? 0 }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeout} ms`)));
    req.on('error', reject);
  });
}

async function connection(): Promise<{ localPorts: number[]; servers: string[] }> {
  // One socket per agent: every request of this "connection" shares it.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const servers: string[] = [];
  const localPorts: number[] = [];
  try {
    for (let i = 0; i < perConn; i++) {
      const r = await get(agent);
      servers.push(r.server);
      localPorts.push(r.localPort);
      if (interval > 0 && i + 1 < perConn) await new Promise((res) => setTimeout(res, interval));
    }
  } finally {
    agent.destroy();
  }
  return { localPorts, servers };
}

const results = await Promise.all(Array.from({ length: conns }, () => connection()));
process.stdout.write(`${JSON.stringify(results)}\n`);
