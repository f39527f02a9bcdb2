// The director's changes as transactions, driven the way xvsadm drives them:
// JSON requests over a real unix socket, many connections at once, against
// a real (loaded, unattached) dataplane whose maps are read back after
// every storm. Neighbour set-up is a random few milliseconds, as `ip route
// get` is, so requests interleave where the daemon awaits.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:net';
import type { ListResult, Request, Response, ServiceKey } from '../src/control/protocol.js';
import { request, serve } from '../src/control/socket.js';
import { Dataplane, unpinDirectorMaps } from '../src/daemon/dataplane.js';
import { Director } from '../src/daemon/director.js';
import { MapWriter } from '../src/daemon/map-writer.js';
import { readTable } from '../src/daemon/restore.js';
import { withService } from '../src/daemon/model.js';
import * as C from '../src/maps/codecs.js';
import { mapFromId } from '../src/maps/map.js';
import { testRun, xdpMd, XdpAction } from '../src/loader/index.js';
import { MODES } from '../src/modes/index.js';
import { SLOT, SVC_F } from '../src/maps/abi.js';
import { LOOKUP_CODES, lookupOf, SCHEDULERS } from '../src/schedulers/registry.js';
import { XvsError } from '../src/errors.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason, sh } from './helpers/env.js';

const skip = kernelSkipReason();
const VIP = '192.0.2.80';
const tcp = (port: number): ServiceKey => ({ proto: 'tcp', addr: VIP, port });

/** Requests pipelined on one connection; the answers, in order. */
function session(path: string, reqs: readonly (Request | string)[]): Promise<Response[]> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let buf = '';
    const out: Response[] = [];
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`session: ${out.length} of ${reqs.length} answers after 20 s`)); }, 20_000);
    s.setEncoding('utf8');
    s.on('connect', () => s.write(reqs.map((r) => `${typeof r === 'string' ? r : JSON.stringify(r)}\n`).join('')));
    s.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        out.push(JSON.parse(buf.slice(0, nl)) as Response);
        buf = buf.slice(nl + 1);
      }
      if (out.length === reqs.length) {
        clearTimeout(timer);
        s.end();
        resolve(out);
      }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

const codeOf = (r: Response): string => (r.ok ? 'ok' : r.error.code);

/** The outcome of one request: 'ok' or its error code. */
async function outcome(path: string, req: Request): Promise<string> {
  try {
    await request(path, req, 20_000);
    return 'ok';
  } catch (e) {
    if (e instanceof XvsError) return e.code;
    throw e;
  }
}

function prng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
}

/**
 * Every byte the director writes: its maps, and each scheduler table's
 * contents. A table is never written after it is swapped in (a change
 * swaps in a new one), so a large one is known by its id and size.
 */
function dumpMaps(dp: Dataplane): Record<string, string[]> {
  const raw = (m: { lookupBatch(chunk?: number): { keys: Buffer[]; values: Buffer[] } }): string[] => {
    const { keys, values } = m.lookupBatch(4096);
    return keys.map((k, i) => `${k.toString('hex')}=${values[i]!.toString('hex')}`).sort();
  };
  const tables: string[] = [];
  for (let id = 0; id < dp.schedTables.maxEntries; id++) {
    const ref = dp.schedTables.lookup(C.u32Codec.encode(id));
    if (!ref) continue;
    const inner = mapFromId(C.u32Codec.decode(ref));
    try {
      tables.push(`${id}=${ref.toString('hex')}:${inner.maxEntries > 65536 ? inner.maxEntries : raw(inner).join(',')}`);
    } finally {
      inner.close();
    }
  }
  return {
    services: raw(dp.services.raw), reals: raw(dp.reals.raw), tables, pos: raw(dp.schedPos),
    svcStats: raw(dp.svcStats.raw), realStats: raw(dp.realStats.raw), config: raw(dp.config.raw),
  };
}

/**
 * The maps say what the model says, read independently of the writer's
 * encoder: one services key per model service and no other, a table only
 * for a service with reals and naming only its usable reals, each model
 * real's entry, every other used real slot flagged removed.
 */
function assertConsistent(dp: Dataplane, director: Director): void {
  const m = director.model;
  const keyOf = (k: { proto: number | string; addr: string; port: number }) => `${k.proto === 17 || k.proto === 'udp' ? 'udp' : 'tcp'} ${k.addr}:${k.port}`;
  const inMap = new Map([...dp.services.entries()].map(([k, v]) => [keyOf(k), v]));
  assert.deepEqual([...inMap.keys()].sort(), [...m.services.keys()].sort(), 'services map keys = model services');
  const liveReals = new Map<number, { svc: number; r: (typeof m.services extends ReadonlyMap<string, infer S> ? S : never)['reals'][number] }>();
  for (const [name, s] of m.services) {
    const e = inMap.get(name)!;
    assert.equal(e.id, s.id, name);
    assert.equal(e.sched, SCHEDULERS[s.scheduler].code, name);
    assert.equal(e.tbl_size, s.tableSize, name);
    assert.equal(e.lookup, LOOKUP_CODES[lookupOf(s.scheduler, s.schedFlags)], `${name}: lookup`);
    assert.equal((e.flags & (SVC_F.sched1 | SVC_F.sched2 | SVC_F.sched3)) >> 2, s.schedFlags ?? 0, `${name}: -b flags`);
    const addrs = s.reals.map((r) => `${r.addr}:${r.port}`);
    assert.equal(new Set(addrs).size, addrs.length, `no real twice in ${name}: ${addrs.join(' ')}`);
    for (const r of s.reals) liveReals.set(r.id, { svc: s.id, r });
  }
  const byId = new Map([...m.services.values()].map((s) => [s.id, s]));
  for (let id = 0; id < dp.schedTables.maxEntries; id++) {
    const ref = dp.schedTables.lookup(C.u32Codec.encode(id));
    const s = byId.get(id);
    if (!s || s.tableSize === 0) {
      assert.equal(ref, null, `no table for service id ${id} (${s ? 'no reals' : 'not in the model'})`);
      continue;
    }
    assert.ok(ref, `table for service id ${id}`);
    const inner = mapFromId(C.u32Codec.decode(ref));
    try {
      assert.equal(inner.maxEntries, s.tableSize);
      const usable = new Set(s.reals.filter((r) => r.weight > 0 && !r.overloaded).map((r) => r.id));
      // sh/mh keep an unavailable real's slots as refused ones (SLOT.none).
      for (const v of inner.lookupBatch(4096).values) assert.ok(usable.has(C.u32Codec.decode(v)) || C.u32Codec.decode(v) === SLOT.none, `table of ${id} names only its usable reals`);
    } finally {
      inner.close();
    }
  }
  const { keys, values } = dp.reals.raw.lookupBatch(4096);
  values.forEach((vb, i) => {
    if (vb[18] === 0) return; // family: a slot never used
    const id = C.u32Codec.decode(keys[i]!);
    const e = C.real.decode(vb);
    const live = liveReals.get(id);
    if (!live) {
      assert.equal(e.flags & 1, 1, `real slot ${id} (${e.addr}) is in no service: flagged removed`);
      return;
    }
    const { r, svc } = live;
    assert.deepEqual(
      [e.addr, e.port, e.weight, e.svc_id, e.gen, e.fwd, e.flags, e.u_threshold, e.l_threshold, e.last_weight],
      [r.addr, r.port, r.weight, svc, r.gen, MODES[r.fwd].code, r.overloaded ? 2 : 0, r.uthreshold, r.lthreshold, r.lastWeight],
      `real ${id}`,
    );
  });
}

/** A SYN to VIP:port: PASS when no service has that key (the kernel's), not forwarded. */
function synVerdict(dp: Dataplane, port: number): number {
  const data = F.frame({ l2: { dst: '02:00:00:00:01:01', src: '02:00:00:00:00:fe' }, src: '203.0.113.7', dst: VIP, sport: 40000, dport: port, flags: F.TCP.SYN });
  return testRun(dp.progFd, { data, ctxIn: xdpMd({ dataLen: data.length, ingressIfindex: 1 }) }).retval;
}

describe('director: every change a transaction', { skip }, () => {
  let tmp = '';
  let bpffs = '';
  let pinDir = '';
  let sock = '';
  let dp: Dataplane;
  let director: Director;
  let server: Server;
  const rand = prng(4242);
  const neighbours = (): Promise<void> => new Promise((r) => setTimeout(r, rand(4)));

  const start = async (): Promise<void> => {
    dp = Dataplane.load({ connTableSize: 4096, pinDir });
    director = new Director(dp, { neighbours });
    server = await serve(sock, (req) => director.handle(req));
  };
  const stop = async (): Promise<void> => {
    await new Promise((r) => server.close(r));
    dp.close();
  };
  const list = async (): Promise<ListResult> => (await request(sock, { op: 'list' })) as ListResult;
  const snapshot = async (): Promise<{ list: string; maps: Record<string, string[]> }> => ({ list: JSON.stringify(await list()), maps: dumpMaps(dp) });

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'xvs-director-'));
    bpffs = join(tmp, 'bpffs');
    mkdirSync(bpffs);
    sh('mount', ['-t', 'bpf', 'bpf', bpffs]);
    pinDir = join(bpffs, 'xvs');
    sock = join(tmp, 'xvsd.sock');
    await start();
  });

  after(async () => {
    if (server) await stop().catch(() => undefined);
    if (pinDir) unpinDirectorMaps(pinDir);
    if (bpffs) spawnSync('umount', [bpffs]);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('one real added over eight connections at once is added once', async () => {
    await request(sock, { op: 'clear' });
    await request(sock, { op: 'add-service', svc: { ...tcp(80), scheduler: 'wlc' } });
    const add: Request = { op: 'add-real', key: tcp(80), real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 1 } };
    for (let round = 0; round < 5; round++) {
      const got: string[] = await Promise.all(Array.from({ length: 8 }, (): Promise<string> => outcome(sock, add)));
      assert.deepEqual(got.sort(), ['REAL_EXISTS', 'REAL_EXISTS', 'REAL_EXISTS', 'REAL_EXISTS', 'REAL_EXISTS', 'REAL_EXISTS', 'REAL_EXISTS', 'ok'], `round ${round}`);
      const l = await list();
      assert.deepEqual(l.services[0]!.reals.map((r) => r.addr), ['192.0.2.11'], `round ${round}`);
      assertConsistent(dp, director);
      await request(sock, { op: 'del-real', key: tcp(80), real: { addr: '192.0.2.11', port: 0 } });
    }
  });

  test('adds racing the delete of their service leave no ghost, before or after a restart', async () => {
    await request(sock, { op: 'clear' });
    for (let round = 0; round < 5; round++) {
      const port = 90 + round;
      await request(sock, { op: 'add-service', svc: { ...tcp(port), scheduler: round % 2 ? 'wrr' : 'wlc' } });
      const adds: Request[] = Array.from({ length: 12 }, (_, i) => ({ op: 'add-real', key: tcp(port), real: { addr: `10.1.${round}.${i + 1}`, port: 0, fwd: 'dr', weight: 1 + i } }));
      const [answers, del] = await Promise.all([
        session(sock, adds),
        new Promise<string>((r) => setTimeout(() => r(outcome(sock, { op: 'del-service', key: tcp(port) })), 2 + round * 3)),
      ]);
      assert.equal(del, 'ok');
      const codes = answers.map(codeOf);
      // A serial order: every add that succeeded came before the delete, every other one after it.
      const firstRefused = codes.indexOf('NO_SERVICE');
      assert.ok(codes.every((c, i) => c === (firstRefused < 0 || i < firstRefused ? 'ok' : 'NO_SERVICE')), codes.join(' '));
      assert.equal((await list()).services.length, 0, `round ${round}: the service is gone`);
      assert.equal(synVerdict(dp, port), XdpAction.PASS, `round ${round}: a SYN to the deleted service is not forwarded`);
      assertConsistent(dp, director);
    }
    await stop();
    await start();
    assert.equal((await list()).services.length, 0, 'nothing comes back after a restart');
    assert.equal(synVerdict(dp, 90), XdpAction.PASS);
    assertConsistent(dp, director);
  });

  test('add/edit/delete storms over several connections end as their serial order, tick included', async () => {
    await request(sock, { op: 'clear' });
    const services = [tcp(81), tcp(82), tcp(83)];
    const scheds = ['wlc', 'wrr', 'rr'];
    for (const [i, k] of services.entries()) await request(sock, { op: 'add-service', svc: { ...k, scheduler: scheds[i]! } });
    // Each session owns its real addresses, so its own bookkeeping predicts
    // every answer and the end state, whatever the interleaving.
    const want = new Map<string, number>(); // "svc addr" -> weight
    const sessions: { reqs: Request[]; expect: string[] }[] = [];
    for (let c = 0; c < 6; c++) {
      const mine = new Map<string, number>();
      const reqs: Request[] = [];
      const expect: string[] = [];
      for (let k = 0; k < 80; k++) {
        const svc = rand(3);
        const addr = `10.2.${c}.${1 + rand(4)}`;
        const id = `${svc} ${addr}`;
        const has = mine.has(id);
        const weight = 1 + rand(9);
        const op = rand(3);
        const key = services[svc]!;
        if (op === 0) {
          reqs.push({ op: 'add-real', key, real: { addr, port: 0, fwd: 'dr', weight } });
          expect.push(has ? 'REAL_EXISTS' : 'ok');
          if (!has) mine.set(id, weight);
        } else if (op === 1) {
          reqs.push({ op: 'edit-real', key, real: { addr, port: 0, fwd: 'dr', weight } });
          expect.push(has ? 'ok' : 'NO_REAL');
          if (has) mine.set(id, weight);
        } else {
          reqs.push({ op: 'del-real', key, real: { addr, port: 0 } });
          expect.push(has ? 'ok' : 'NO_REAL');
          mine.delete(id);
        }
      }
      for (const [id, w] of mine) want.set(id, w);
      sessions.push({ reqs, expect });
    }
    // And one more connection changing schedulers, and the tick, and readers.
    const edits: Request[] = Array.from({ length: 30 }, (_, k) => ({ op: 'edit-service', svc: { ...services[k % 3]!, scheduler: ['lc', 'wlc', 'sed', 'rr', 'wrr', 'nq'][k % 6]! } }));
    let running = true;
    const ticker = (async () => {
      for (let n = 0; running && n < 5000; n++) {
        await director.tick();
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const readers = (async () => {
      for (let n = 0; running && n < 2000; n++) {
        const l = await list();
        for (const s of l.services) assert.equal(new Set(s.reals.map((r) => r.addr)).size, s.reals.length, 'no listing shows a real twice');
      }
    })();
    const answers = await Promise.all([...sessions.map((s) => session(sock, s.reqs)), session(sock, edits)]);
    running = false;
    await Promise.all([ticker, readers]);
    sessions.forEach((s, c) => assert.deepEqual(answers[c]!.map(codeOf), s.expect, `session ${c}`));
    assert.ok(answers[sessions.length]!.every((r) => r.ok), 'scheduler edits');
    const l = await list();
    const got = new Map<string, number>();
    for (const [i, k] of services.entries()) {
      const s = l.services.find((x) => x.port === k.port)!;
      assert.equal(s.scheduler, ['lc', 'wlc', 'sed', 'rr', 'wrr', 'nq'][[27, 28, 29][i]! % 6], 'the last scheduler edit holds');
      for (const r of s.reals) got.set(`${i} ${r.addr}`, r.weight);
    }
    assert.deepEqual([...got].sort(), [...want].sort(), 'every add, edit and delete holds, none lost');
    assertConsistent(dp, director);
    await director.tick();
    assertConsistent(dp, director);
  });

  test('two connections editing one real: one of them is the last, whole', async () => {
    await request(sock, { op: 'clear' });
    await request(sock, { op: 'add-service', svc: { ...tcp(84), scheduler: 'wrr' } });
    await request(sock, { op: 'add-real', key: tcp(84), real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 1 } });
    await request(sock, { op: 'add-real', key: tcp(84), real: { addr: '192.0.2.12', port: 0, fwd: 'dr', weight: 1 } });
    const edit = (weight: number, u: number): Request => ({ op: 'edit-real', key: tcp(84), real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight, uthreshold: u, lthreshold: u } });
    const a = Array.from({ length: 40 }, (_, i) => edit(2 + (i % 5), 100));
    const b = Array.from({ length: 40 }, (_, i) => edit(20 + (i % 7), 200));
    await Promise.all([session(sock, a), session(sock, b)]);
    const r = (await list()).services[0]!.reals[0]!;
    assert.ok((r.weight === 2 + (39 % 5) && r.uthreshold === 100) || (r.weight === 20 + (39 % 7) && r.uthreshold === 200), JSON.stringify(r));
    assertConsistent(dp, director);
  });

  test('every refusal leaves the listing and every map byte for byte as they were', async () => {
    await request(sock, { op: 'clear' });
    await request(sock, { op: 'add-service', svc: { ...tcp(85), scheduler: 'rr' } });
    await request(sock, { op: 'add-service', svc: { ...tcp(86), scheduler: 'rr' } });
    await request(sock, { op: 'add-service', svc: { ...tcp(87), scheduler: 'wlc', persistent: 60 } });
    // wrr's cycle is sum(weight)/gcd slots, at most 2^20 = 1048576: these
    // 17 weights make 1048561 (gcd 1), and 18 reals of them do not fit.
    for (const [k, n] of [[tcp(85), 17], [tcp(86), 18]] as const) {
      for (let i = 0; i < n; i++) await request(sock, { op: 'add-real', key: k, real: { addr: `10.3.0.${i + 1}`, port: 0, fwd: 'dr', weight: i === 0 ? 61681 : 61680 } });
    }
    await request(sock, { op: 'edit-service', svc: { ...tcp(85), scheduler: 'wrr' } }); // one table of 1048561 slots
    await request(sock, { op: 'add-real', key: tcp(87), real: { addr: '10.3.1.1', port: 0, fwd: 'tun', weight: 1 } });
    await director.tick();
    const real = (addr: string, extra: object = {}) => ({ addr, port: 0, fwd: 'dr' as const, weight: 1, ...extra });
    const refusals: [Request | string, string][] = [
      [{ op: 'add-real', key: tcp(85), real: real('10.3.0.99', { weight: 61680 }) }, 'CAPACITY'],
      [{ op: 'edit-real', key: tcp(85), real: real('10.3.0.2', { weight: 61700 }) }, 'CAPACITY'],
      [{ op: 'edit-service', svc: { ...tcp(86), scheduler: 'wrr' } }, 'CAPACITY'],
      [{ op: 'add-service', svc: { ...tcp(85), scheduler: 'rr' } }, 'SERVICE_EXISTS'],
      [{ op: 'add-real', key: tcp(85), real: real('10.3.0.1') }, 'REAL_EXISTS'],
      [{ op: 'add-real', key: tcp(85), real: { ...real('10.3.0.98'), port: 8080 } }, 'PORT_MAPPING'],
      // FULLNAT rewrites both addresses within one family (no NAT64).
      [{ op: 'add-real', key: tcp(85), real: { ...real('2001:db8::98'), fwd: 'fullnat' } }, 'BAD_ADDRESS'],
      // DR cannot carry an IPv4 VIP's packets to an IPv6 real server.
      [{ op: 'add-real', key: tcp(85), real: real('2001:db8::11') }, 'BAD_ADDRESS'],
      [{ op: 'add-real', key: tcp(99), real: real('10.3.0.98') }, 'NO_SERVICE'],
      [{ op: 'edit-real', key: tcp(87), real: { ...real('10.3.1.1'), fwd: 'nat', port: 8087 } }, 'NO_REAL'],
      [{ op: 'edit-real', key: tcp(85), real: real('10.3.9.9') }, 'NO_REAL'],
      [{ op: 'edit-real', key: tcp(99), real: real('10.3.0.1') }, 'NO_SERVICE'],
      [{ op: 'del-real', key: tcp(85), real: { addr: '10.3.9.9', port: 0 } }, 'NO_REAL'],
      [{ op: 'del-real', key: tcp(99), real: { addr: '10.3.0.1', port: 0 } }, 'NO_SERVICE'],
      [{ op: 'edit-service', svc: { ...tcp(99), scheduler: 'rr' } }, 'NO_SERVICE'],
      [{ op: 'del-service', key: tcp(99) }, 'NO_SERVICE'],
      [{ op: 'zero', key: tcp(99) }, 'NO_SERVICE'],
      [{ op: 'list', key: tcp(99) }, 'NO_SERVICE'],
      // Refused by the protocol before the director sees them.
      [{ op: 'add-real', key: tcp(85), real: real('10.3.0.300') } as Request, 'BAD_ADDRESS'],
      [{ op: 'add-service', svc: { ...tcp(88), scheduler: 'fastest' } }, 'BAD_ARGUMENT'],
      [{ op: 'set-timeouts', timeouts: { tcp: 2678401, tcpfin: 0, udp: 0 } }, 'BAD_ARGUMENT'],
      ['{"op":"add-real","key":{"proto":"tcp","addr":"192.0.2.80","port":85},"real":{"addr":"10.3.0.97","port":0,"fwd":"dr","weight":70000}}', 'BAD_ARGUMENT'],
    ];
    for (const [req, code] of refusals) {
      const was = await snapshot();
      const got = typeof req === 'string' ? codeOf((await rawLine(sock, req))) : await outcome(sock, req);
      assert.equal(got, code, JSON.stringify(req));
      assert.deepEqual(await snapshot(), was, `${JSON.stringify(req)} changed nothing`);
    }
    // The refused real never turns up later, e.g. with the next unrelated edit.
    await request(sock, { op: 'edit-real', key: tcp(85), real: real('10.3.0.2', { weight: 61685 }) });
    await director.tick();
    assert.ok(!(await list()).services.some((s) => s.reals.some((r) => r.addr === '10.3.0.99')));
    assertConsistent(dp, director);
  });

  test('a failed write is undone: the maps are as before, byte for byte', async () => {
    await request(sock, { op: 'clear' });
    await request(sock, { op: 'add-service', svc: { ...tcp(89), scheduler: 'wrr' } });
    await request(sock, { op: 'add-real', key: tcp(89), real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 3 } });
    const was = dumpMaps(dp);
    const m = director.model;
    const s = [...m.services.values()][0]!;
    const next = withService(m, { ...s, scheduler: 'rr', reals: [], tableSize: 0 });
    const writer = new MapWriter(dp);
    assert.throws(() => writer.atomically(() => {
      writer.sync(m, next, new Map([[s.id, new Uint32Array(0)]]));
      writer.zeroStats([s.id], [s.reals[0]!.id]);
      writer.writeConfig({ timeout: new Array<number>(16).fill(5) });
      throw new Error('injected');
    }), /injected/);
    assert.deepEqual(dumpMaps(dp), was);
    assertConsistent(dp, director);
  });

  test('a new plan starts where the sequence counter is: the tick never resets it', async () => {
    await request(sock, { op: 'clear' });
    await request(sock, { op: 'add-service', svc: { ...tcp(80), scheduler: 'wlc' } });
    for (const a of ['192.0.2.11', '192.0.2.12']) await request(sock, { op: 'add-real', key: tcp(80), real: { addr: a, port: 0, fwd: 'dr', weight: 1 } });
    const s = director.model.services.get('tcp 192.0.2.80:80')!;
    const key = C.u32Codec.encode(s.id);
    // As if 1001 new flows had read the table.
    dp.schedPos.update(key, C.u64Codec.encode(1001));
    await director.tick();
    assert.equal(C.u64Codec.decode(dp.schedPos.lookup(key)!), 1001, 'the counter runs on');
    const t = director.model.services.get('tcp 192.0.2.80:80')!;
    const inner = mapFromId(C.u32Codec.decode(dp.schedTables.lookup(key)!));
    try {
      // No counts: IPVS's first pick is the first real in list order, and flow 1001 reads it.
      assert.equal(C.u32Codec.decode(inner.lookup(C.u32Codec.encode(1001 % t.tableSize))!), t.reals[0]!.id);
    } finally {
      inner.close();
    }
  });

  test('--set takes ipvsadm\'s 31-day maximum', async () => {
    await request(sock, { op: 'set-timeouts', timeouts: { tcp: 2678400, tcpfin: 0, udp: 2678400 } });
    assert.deepEqual(await request(sock, { op: 'get-timeouts' }), { tcp: 2678400, tcpfin: 120, udp: 2678400 });
    assert.equal(dp.config.get(0)?.timeout[1], 2678400, 'ESTABLISHED');
    assert.equal(dp.config.get(0)?.timeout[11], 2678400, 'UDP');
    await request(sock, { op: 'set-timeouts', timeouts: { tcp: 900, tcpfin: 0, udp: 300 } });
  });

  test('a restarted director reads back the same model from the pinned maps', async () => {
    await request(sock, { op: 'clear' });
    await request(sock, { op: 'add-service', svc: { ...tcp(80), scheduler: 'wlc' } });
    await request(sock, { op: 'add-service', svc: { proto: 'udp', addr: VIP, port: 53, scheduler: 'sh', persistent: 300, netmask: '255.255.255.0' } });
    for (let i = 1; i <= 3; i++) await request(sock, { op: 'add-real', key: tcp(80), real: { addr: `192.0.2.${10 + i}`, port: 0, fwd: i === 2 ? 'tun' : 'dr', weight: i, uthreshold: 10 * i } });
    await request(sock, { op: 'add-real', key: { proto: 'udp', addr: VIP, port: 53 }, real: { addr: '192.0.2.11', port: 0, fwd: 'dr', weight: 2 } });
    await request(sock, { op: 'del-real', key: tcp(80), real: { addr: '192.0.2.12', port: 0 } });
    // mh with its flags, one real quiesced: the flags, the lookup and the last weight that keeps its slots survive.
    await request(sock, { op: 'add-service', svc: { ...tcp(81), scheduler: 'mh', schedFlags: 3 } });
    for (let i = 1; i <= 3; i++) await request(sock, { op: 'add-real', key: tcp(81), real: { addr: `192.0.2.${20 + i}`, port: 0, fwd: 'dr', weight: 2 * i } });
    await request(sock, { op: 'edit-real', key: tcp(81), real: { addr: '192.0.2.22', port: 0, fwd: 'dr', weight: 0 } });
    const was = await list();
    const mhWas = director.model.services.get('tcp 192.0.2.80:81')!;
    assert.deepEqual(mhWas.reals.map((r) => [r.weight, r.lastWeight]), [[2, 2], [0, 4], [6, 6]]);
    const tableWas = readTable(dp, mhWas.id);
    await stop();
    await start();
    assert.deepEqual(await list(), was);
    assertConsistent(dp, director);
    const mh = director.model.services.get('tcp 192.0.2.80:81')!;
    assert.equal(mh.schedFlags, 3);
    assert.deepEqual(mh.reals.map((r) => [r.weight, r.lastWeight]), [[2, 2], [0, 4], [6, 6]]);
    // A configuration change after the restart plans the same table: the quiesced real's slots stayed put.
    await request(sock, { op: 'edit-real', key: tcp(81), real: { addr: '192.0.2.21', port: 0, fwd: 'dr', weight: 2 } });
    assert.deepEqual(readTable(dp, mh.id), tableWas);
  });
});

/** One raw line over a fresh connection, for requests the typed client cannot build. */
async function rawLine(path: string, line: string): Promise<Response> {
  return (await session(path, [line]))[0]!;
}
