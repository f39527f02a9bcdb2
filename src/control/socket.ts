import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { XvsError, isXvsError } from '../errors.js';
import { logger } from '../log.js';
import { peerCred, type PeerCred } from './peercred.js';
import { parseRequest, type Request, type Response } from './protocol.js';

export type Handler = (req: Request, peer: PeerCred | undefined) => Promise<unknown>;

export const DEFAULT_SOCKET = '/run/xvs/xvsd.sock';

// A request line longer than this is not a mistake we want to buffer (a
// restore of 100,000 lines, MAX_BATCH, is about 15 MiB of JSON).
const MAX_LINE = 32 << 20;

const log = logger('control');

function errorResponse(e: unknown): Response {
  if (isXvsError(e)) return { ok: false, error: e.toJSON() };
  log.error({ err: e }, 'control request failed');
  return { ok: false, error: { code: 'DAEMON', message: e instanceof Error ? e.message : String(e) } };
}

async function answer(line: string, handler: Handler, peer: PeerCred | undefined): Promise<Response> {
  try {
    const result = await handler(parseRequest(line), peer);
    return result === undefined ? { ok: true } : { ok: true, result };
  } catch (e) {
    return errorResponse(e);
  }
}

function onConnection(sock: Socket, handler: Handler): void {
  let buf = '';
  const peer = peerCred(sock);
  // Answers go out in request order even when handlers finish out of order.
  let queue = Promise.resolve();
  const enqueue = (line: string): void => {
    if (line.trim() === '') return;
    queue = queue
      .then(() => answer(line, handler, peer))
      .then((resp) => {
        if (!sock.destroyed) sock.write(`${JSON.stringify(resp)}\n`);
      });
  };
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    // Only the new bytes can hold the next newline: a long line (a batch) is not rescanned per chunk.
    let from = buf.length;
    buf += chunk;
    for (let nl = buf.indexOf('\n', from); nl >= 0; nl = buf.indexOf('\n', from)) {
      enqueue(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      from = 0;
    }
    if (buf.length > MAX_LINE) {
      buf = '';
      sock.end(`${JSON.stringify(errorResponse(new XvsError('BAD_ARGUMENT', `request line longer than ${MAX_LINE} bytes`)))}\n`);
    }
  });
  // A client may half-close after its last line without a newline.
  sock.on('end', () => {
    enqueue(buf);
    buf = '';
    void queue.then(() => sock.end());
  });
  sock.on('error', (err) => log.debug({ err }, 'control client went away'));
}

async function probe(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNREFUSED' ? resolve(false) : reject(e)));
  });
}

// Only a socket file nobody answers on is ours to remove: a live daemon keeps
// its socket, and a regular file at that path is someone's mistake, not ours.
async function removeStale(path: string): Promise<void> {
  const st = await lstat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!st) return;
  if (!st.isSocket()) throw new XvsError('SYSTEM', `${path} exists and is not a socket`, { hint: 'remove it or choose another --socket' });
  if (await probe(path)) {
    throw new XvsError('DAEMON', `an xvsd is already listening on ${path}`, { hint: 'stop it first, or choose another --socket' });
  }
  await unlink(path);
}

/**
 * Listens on a unix socket for control requests. The directory is created
 * 0700 and the socket chmod'ed 0600: the socket is the daemon's whole
 * authority over the dataplane, so only its owner (root) may talk to it.
 */
export async function serve(path: string, handler: Handler): Promise<Server> {
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await removeStale(path);
    const server = createServer({ allowHalfOpen: true }, (sock) => onConnection(sock, handler));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(path, 0o600);
    return server;
  } catch (e) {
    if (isXvsError(e)) throw e;
    throw new XvsError('SYSTEM', `cannot listen on ${path}: ${(e as Error).message}`, { cause: e });
  }
}

function connectError(e: NodeJS.ErrnoException, path: string): XvsError {
  switch (e.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return new XvsError('NO_DAEMON', `no xvsd is listening on ${path}`, { cause: e });
    case 'EACCES':
    case 'EPERM':
      return new XvsError('NOT_ROOT', `permission denied on ${path}`, { cause: e });
    default:
      return new XvsError('SYSTEM', `cannot talk to xvsd on ${path}: ${e.message}`, { cause: e });
  }
}

function decode(line: string): unknown {
  let resp: Response;
  try {
    resp = JSON.parse(line) as Response;
  } catch {
    throw new XvsError('DAEMON', 'xvsd sent a response that is not JSON');
  }
  if (resp.ok === true) return resp.result;
  if (resp.ok === false && typeof resp.error === 'object' && resp.error !== null) throw XvsError.fromJSON(resp.error);
  throw new XvsError('DAEMON', 'xvsd sent a malformed response');
}

/** Sends one request and returns its result; an error answer is thrown as the XvsError it names. */
export function request(path: string, req: Request, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    let done = false;
    const finish = (err: unknown, value?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err === undefined) resolve(value);
      else reject(err);
    };
    const timer = setTimeout(
      () => finish(new XvsError('DAEMON', `xvsd on ${path} did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        finish(undefined, decode(buf.slice(0, nl)));
      } catch (e) {
        finish(e);
      }
    });
    sock.once('close', () => finish(new XvsError('DAEMON', `xvsd on ${path} closed the connection without answering`)));
    sock.once('error', (e: NodeJS.ErrnoException) => finish(connectError(e, path)));
  });
}
