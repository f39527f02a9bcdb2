// The client of the TOA tests: opens N connections at once, R requests one
// after the other on each, and prints what each connection's own end was
// and what the server answered, as one JSON line. With --hold it keeps the
// connections open until its standard input closes, then closes them.
//   node dist/test/helpers/toa-client.js --url http://192.0.2.11/ --connections 40 [--requests 1] [--hold]
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    connections: { type: 'string', default: '10' },
    requests: { type: 'string', default: '1' },
    hold: { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: '20000' },
  },
  strict: true,
});
const url = values.url;
const n = Number(values.connections);
const perConn = Number(values.requests);
const timeout = Number(values['timeout-ms']);
if (!url || !(Number.isInteger(n) && n > 0 && n <= 1000) || !(Number.isInteger(perConn) && perConn > 0 && perConn <= 100) || !(timeout > 0)) {
  process.stderr.write('usage: toa-client --url URL [--connections 1-1000] [--requests 1-100] [--hold]\n');
  process.exit(2);
}

interface Answer { local: { address: string; port: number }; status: number; answer: unknown }
interface Result extends Answer { answers: Answer[] }

const agents: http.Agent[] = [];

async function one(): Promise<Result> {
  // An agent per connection: its requests share one socket, kept while holding.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  agents.push(agent);
  const answers: Answer[] = [];
  for (let i = 0; i < perConn; i++) answers.push(await request(agent));
  if (answers.some((a) => a.local.port !== answers[0]!.local.port)) throw new Error('the requests of a connection went over different sockets');
  return { ...answers[0]!, answers };
}

function request(agent: http.Agent): Promise<Answer> {
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
