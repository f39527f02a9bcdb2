import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, serve } from '../src/control/socket.js';
import { parseRequest, type Request } from '../src/control/protocol.js';
import { XvsError } from '../src/errors.js';

async function withServer(
  handler: (req: Request) => Promise<unknown>,
  body: (path: string) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'xvs-sock-'));
  const path = join(dir, 'run', 'xvsd.sock');
  const server = await serve(path, handler);
  try {
    await body(path);
  } finally {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
}

function rawExchange(path: string, payload: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.end(payload));
    s.on('data', (c: string) => (buf += c));
    s.on('end', () => resolve(buf.split('\n').filter((l) => l !== '')));
    s.on('error', reject);
  });
}

test('round trip: the handler sees the request and the client gets its result', async () => {
  const seen: Request[] = [];
  await withServer(
    async (req) => {
      seen.push(req);
      return req.op === 'status' ? { up: true } : undefined;
    },
    async (path) => {
      assert.deepEqual(await request(path, { op: 'status' }), { up: true });
      const add: Request = { op: 'add-real', key: { proto: 'tcp', addr: '192.0.2.80', port: 80 }, real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 3 } };
      assert.equal(await request(path, add), undefined);
      assert.deepEqual(seen, [{ op: 'status' }, add]);
    },
  );
});

test('an XvsError from the handler reaches the client with its code, hint and detail', async () => {
  await withServer(
    async () => {
      throw new XvsError('NO_SERVICE', 'no service tcp 192.0.2.80:80', { detail: 'd' });
    },
    async (path) => {
      await assert.rejects(request(path, { op: 'list', key: { proto: 'tcp', addr: '192.0.2.80', port: 80 } }), (e: unknown) => {
        assert.ok(e instanceof XvsError);
        assert.equal(e.code, 'NO_SERVICE');
        assert.equal(e.message, 'no service tcp 192.0.2.80:80');
        assert.equal(e.hint, 'list services with `xvsadm -L -n`');
        assert.equal(e.detail, 'd');
        return true;
      });
    },
  );
});

test('other handler errors become DAEMON errors', async () => {
  await withServer(
    async () => {
      throw new TypeError('boom');
    },
    async (path) => {
      await assert.rejects(request(path, { op: 'clear' }), (e: unknown) => e instanceof XvsError && e.code === 'DAEMON' && e.message === 'boom');
    },
  );
});

test('malformed lines get BAD_ARGUMENT answers, in order, on one connection', async () => {
  await withServer(
    async () => 'fine',
    async (path) => {
      const lines = await rawExchange(path, 'not json\n{"op":"explode"}\n{"op":"add-service","svc":{"proto":"sctp"}}\n{"op":"status"}');
      const resps = lines.map((l) => JSON.parse(l) as { ok: boolean; error?: { code: string; message: string }; result?: unknown });
      assert.equal(resps.length, 4);
      assert.deepEqual(resps.slice(0, 3).map((r) => r.error?.code), ['BAD_ARGUMENT', 'BAD_ARGUMENT', 'BAD_ARGUMENT']);
      assert.match(resps[1]!.error!.message, /unknown op "explode"/);
      assert.deepEqual(resps[3], { ok: true, result: 'fine' });
    },
  );
});

test('no daemon: NO_DAEMON naming the path', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'xvs-sock-'));
  try {
    const path = join(dir, 'absent.sock');
    await assert.rejects(request(path, { op: 'status' }), (e: unknown) => {
      assert.ok(e instanceof XvsError);
      assert.equal(e.code, 'NO_DAEMON');
      assert.equal(e.message, `no xvsd is listening on ${path}`);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('socket is 0600 in a 0700 directory', async () => {
  await withServer(async () => undefined, async (path) => {
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(path, '..'))).mode & 0o777, 0o700);
  });
});

test('a live daemon\'s socket is left alone', async () => {
  await withServer(async () => 'first', async (path) => {
    await assert.rejects(serve(path, async () => 'second'), (e: unknown) => e instanceof XvsError && e.code === 'DAEMON');
    assert.equal(await request(path, { op: 'status' }), 'first');
  });
});

test('a regular file at the socket path is refused, not removed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'xvs-sock-'));
  try {
    const path = join(dir, 'xvsd.sock');
    await writeFile(path, 'keep me');
    await assert.rejects(serve(path, async () => undefined), (e: unknown) => e instanceof XvsError && e.code === 'SYSTEM');
    assert.equal(await readFile(path, 'utf8'), 'keep me');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a stale socket left by a killed daemon is replaced', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'xvs-sock-'));
  const path = join(dir, 'xvsd.sock');
  // Node unlinks its socket on a clean close, so only a SIGKILLed process leaves one behind.
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', () => reject(new Error('listener child exited early')));
    });
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    assert.ok((await stat(path)).isSocket());
    const server = await serve(path, async () => 'new');
    try {
      assert.equal(await request(path, { op: 'status' }), 'new');
    } finally {
      await new Promise((r) => server.close(r));
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

test('a daemon that never answers is a DAEMON timeout, not a hang', async () => {
  await withServer(
    () => new Promise((resolve) => setTimeout(() => resolve('late'), 300)),
    async (path) => {
      await assert.rejects(request(path, { op: 'status' }, 100), (e: unknown) => e instanceof XvsError && e.code === 'DAEMON' && /within 100 ms/.test(e.message));
    },
  );
});

const KEY = { proto: 'tcp', addr: '192.0.2.80', port: 80 } as const;
const REAL = { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 1 } as const;

test('parseRequest: persistence, thresholds and timeouts are accepted in range', () => {
  const ok: Request[] = [
    { op: 'add-service', svc: { ...KEY, scheduler: 'wlc', persistent: 360 } },
    { op: 'add-service', svc: { ...KEY, scheduler: 'wlc', persistent: 1, netmask: '255.255.255.0' } },
    { op: 'edit-service', svc: { ...KEY, scheduler: 'rr', persistent: 2678400, netmask: '0.0.0.0' } },
    { op: 'edit-service', svc: { ...KEY, scheduler: 'rr', persistent: 60, netmask: '255.255.255.255' } },
    // IPVS masks the client address with any mask, contiguous or not.
    { op: 'add-service', svc: { ...KEY, scheduler: 'wlc', persistent: 300, netmask: '255.0.255.0' } },
    { op: 'add-service', svc: { proto: 'udp', addr: '2001:db8::1', port: 53, scheduler: 'wlc', persistent: 300 } },
    { op: 'edit-service', svc: { proto: 'udp', addr: '2001:db8::1', port: 53, scheduler: 'wlc', persistent: 300, netmask: '64' } },
    { op: 'add-real', key: KEY, real: { ...REAL, uthreshold: 2147483647, lthreshold: 0 } },
    { op: 'edit-real', key: KEY, real: { ...REAL, uthreshold: 10, lthreshold: 10 } },
    { op: 'add-real', key: KEY, real: { ...REAL, uthreshold: 10 } },
    { op: 'set-timeouts', timeouts: { tcp: 0, tcpfin: 120, udp: 2678400 } },
    { op: 'get-timeouts' },
  ];
  for (const req of ok) assert.deepEqual(parseRequest(JSON.stringify(req)), req, JSON.stringify(req));
  // Unknown fields are dropped, absent optional ones stay absent.
  assert.deepEqual(parseRequest(JSON.stringify({ op: 'get-timeouts', extra: 1 })), { op: 'get-timeouts' });
  assert.deepEqual(parseRequest(JSON.stringify({ op: 'add-service', svc: { ...KEY, scheduler: 'wlc' } })), { op: 'add-service', svc: { ...KEY, scheduler: 'wlc' } });
});

test('parseRequest: bad persistence, thresholds and timeouts are BAD_ARGUMENT', () => {
  const svc = (extra: object) => ({ op: 'add-service', svc: { ...KEY, scheduler: 'wlc', ...extra } });
  const real = (extra: object) => ({ op: 'add-real', key: KEY, real: { ...REAL, ...extra } });
  const bad: [unknown, RegExp][] = [
    [svc({ persistent: 0 }), /svc\.persistent must be an integer 1\.\.2678400/],
    [svc({ persistent: 2678401 }), /svc\.persistent/],
    [svc({ persistent: '300' }), /svc\.persistent/],
    [svc({ persistent: 1.5 }), /svc\.persistent/],
    [svc({ persistent: null }), /svc\.persistent/],
    [svc({ netmask: '255.255.255.0' }), /only meaningful with svc\.persistent/],
    [svc({ persistent: 300, netmask: '24' }), /netmask/],
    [svc({ persistent: 300, netmask: '255.255.255.00' }), /netmask/],
    [svc({ persistent: 300, netmask: 0xffffff00 }), /netmask/],
    [{ op: 'add-service', svc: { proto: 'tcp', addr: '2001:db8::1', port: 80, scheduler: 'wlc', persistent: 300, netmask: '255.255.255.0' } }, /prefix length 1\.\.128/],
    [real({ uthreshold: -1 }), /real\.uthreshold must be an integer 0\.\.2147483647/],
    [real({ uthreshold: 2147483648 }), /real\.uthreshold/],
    [real({ lthreshold: '5' }), /real\.lthreshold/],
    [real({ lthreshold: 5 }), /must not exceed/],
    [real({ uthreshold: 5, lthreshold: 6 }), /must not exceed/],
    [{ op: 'set-timeouts' }, /timeouts must be an object/],
    [{ op: 'set-timeouts', timeouts: { tcp: 900, tcpfin: 120 } }, /timeouts\.udp/],
    [{ op: 'set-timeouts', timeouts: { tcp: -1, tcpfin: 120, udp: 300 } }, /timeouts\.tcp must be an integer 0\.\.2678400/],
    [{ op: 'set-timeouts', timeouts: { tcp: 900, tcpfin: 2678401, udp: 300 } }, /timeouts\.tcpfin/],
    [{ op: 'set-timeouts', timeouts: [900, 120, 300] }, /timeouts must be an object/],
  ];
  for (const [req, message] of bad) {
    assert.throws(() => parseRequest(JSON.stringify(req)), (e: unknown) => {
      assert.ok(e instanceof XvsError, String(e));
      assert.equal(e.code, 'BAD_ARGUMENT');
      assert.match(e.message, message, JSON.stringify(req));
      return true;
    }, JSON.stringify(req));
  }
});

test('set-timeouts and get-timeouts round-trip over the socket', async () => {
  let timeouts = { tcp: 900, tcpfin: 120, udp: 300 };
  await withServer(
    async (req) => {
      if (req.op === 'set-timeouts') {
        timeouts = { tcp: req.timeouts.tcp || timeouts.tcp, tcpfin: req.timeouts.tcpfin || timeouts.tcpfin, udp: req.timeouts.udp || timeouts.udp };
        return undefined;
      }
      return req.op === 'get-timeouts' ? timeouts : undefined;
    },
    async (path) => {
      assert.equal(await request(path, { op: 'set-timeouts', timeouts: { tcp: 0, tcpfin: 60, udp: 0 } }), undefined);
      assert.deepEqual(await request(path, { op: 'get-timeouts' }), { tcp: 900, tcpfin: 60, udp: 300 });
      const lines = await rawExchange(path, '{"op":"set-timeouts","timeouts":{"tcp":1,"tcpfin":1}}\n');
      assert.equal((JSON.parse(lines[0]!) as { error: { code: string } }).error.code, 'BAD_ARGUMENT');
    },
  );
});
