import { createServer, type Server } from 'node:http';
import { XvsError } from '../errors.js';
import { logger } from '../log.js';
import { CONTENT_TYPE } from './exposition.js';

const log = logger('metrics');

export interface Endpoint {
  addr: string;
  port: number;
}

/**
 * Serves GET /metrics and nothing else (404 for any other path, 405 for any
 * other method). Until `ready` is given a scrape function, /metrics answers
 * 503: xvsd listens before it loads the dataplane, so an address it cannot
 * listen on stops it before anything changes.
 */
export class MetricsServer {
  #scrape: (() => Promise<string>) | undefined;

  private constructor(readonly server: Server) {}

  static listen(at: Endpoint): Promise<MetricsServer> {
    const s = new MetricsServer(createServer((req, res) => s.#handle(req.method ?? '', req.url ?? '', res)));
    return new Promise((resolve, reject) => {
      s.server.once('error', (e: NodeJS.ErrnoException) => {
        reject(new XvsError('LISTEN', `cannot serve metrics on ${at.addr.includes(':') ? `[${at.addr}]` : at.addr}:${at.port}: ${e.code ?? e.message}`));
      });
      s.server.listen({ host: at.addr, port: at.port, exclusive: true }, () => {
        s.server.removeAllListeners('error');
        s.server.on('error', (e) => log.error({ err: e.message }, 'metrics server error'));
        resolve(s);
      });
    });
  }

  ready(scrape: () => Promise<string>): void {
    this.#scrape = scrape;
  }

  /** The port it listens on (the one asked for, or the kernel's pick for port 0). */
  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  close(): void {
    this.server.close();
    this.server.closeAllConnections();
  }

  #handle(method: string, url: string, res: import('node:http').ServerResponse): void {
    const path = url.split('?')[0];
    if (path !== '/metrics') return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
    if (method !== 'GET') return void res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain' }).end('only GET\n');
    const scrape = this.#scrape;
    if (!scrape) return void res.writeHead(503, { 'content-type': 'text/plain' }).end('xvsd is starting\n');
    scrape().then(
      (text) => res.writeHead(200, { 'content-type': CONTENT_TYPE }).end(text),
      (e: unknown) => {
        log.error({ err: (e as Error).message }, 'scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`scrape failed: ${(e as Error).message}\n`);
      },
    );
  }
}
