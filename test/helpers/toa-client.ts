// The client of the TOA tests: opens N connections at once, one request on
// each, and prints what each connection's own end was and what the server
// answered, as one JSON line. With --hold it keeps the connections open
// until its standard input closes, then closes them and exits.
//   node dist/test/helpers/toa-client.js --url http://192.0.2.11/ --connections 40 [--hold]
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    connections: { type: 'string', default: '10' },
    hold: { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: '20000' },
  },
  strict: true,
});
const url = values.url;
const n = Number(values.connections);
const timeout = Number(values['timeout-ms']);
if (!url || !(Number.isInteger(n) && n > 0 && n <= 1000) || !(timeout > 0)) {
  process.stderr.write('usage: toa-client --url URL [--connections 1-1000] [--hold]\n');
  process.exit(2);
}

interface Result { local: { address: string; port: number }; status: number; answer: unknown }

const agents: http.Agent[] = [];

function one(): Promise<Result> {
  // An agent per connection: each request gets a socket of its own, kept while holding.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  agents.push(agent);
  return new Promise((resolve, reject) => {
    const req = http.get(url!, { agent, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; });
      res.on('end', () => {
        const s = req.socket;
        if (!s?.localAddress || !s.localPort) return reject(new Error('no local end on the socket'));
        resolve({ local: { address: s.localAddress, port: s.localPort }, status: res.statusCode ?? 0, answer: JSON.parse(body) as unknown });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeout} ms`)));
    req.on('error', reject);
  });
}

const closeAll = (): void => { for (const a of agents) a.destroy(); };

try {
  const results = await Promise.all(Array.from({ length: n }, () => one()));
  process.stdout.write(`${JSON.stringify(results)}\n`);
} catch (e) {
  process.stderr.write(`toa-client: ${e instanceof Error ? e.message : String(e)}\n`);
  closeAll();
  process.exit(1);
}
if (values.hold) {
  process.stdin.resume();
  process.stdin.on('end', closeAll);
} else {
  closeAll();
}
