// Packet tests of the real server's TOA search (bpf/realserver/toa.h), the
// code the sock_ops reader (bpf/xvs_toa.c) runs on the segments it reads.
// sock_ops programs have no BPF_PROG_TEST_RUN, so the test-only XDP program
// test/fixtures/toa_parse_test.c runs the same function on the TCP header of
// each frame. Expectations come from the TOA module's rules as written
// here, never from the code under test; malformed options must give no
// client at all, and random option bytes must give what the model gives.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BpfObject, testRun, XdpAction } from '../src/loader/index.js';
import { FAMILY, TOA_SEG } from '../src/maps/abi.js';
import { toaClient } from '../src/maps/codecs.js';
import type { RawMap } from '../src/maps/map.js';
import { packageRoot } from '../src/paths.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';

const skip = kernelSkipReason();

/** enum xvs_toa_status in bpf/realserver/toa.h, and the fixture's "not TCP". */
const St = { NONE: 0, FOUND: 1, MALFORMED: -1, TRUNCATED: -2, NOT_TCP: 7 } as const;

const l2 = { dst: '02:00:00:00:00:0b', src: '02:00:00:00:00:01' };
const RS4 = '192.0.2.11';
const LADDR4 = '192.0.2.200';
const RS6 = '2001:db8::11';
const LADDR6 = '2001:db8::200';
const CLIENT4 = '198.51.100.7';
const CLIENT6 = '2001:db8:c::7';

const nops = (n: number): Buffer => Buffer.alloc(n, 1);
const cat = (...b: Buffer[]): Buffer => Buffer.concat(b);
const raw = (...bytes: number[]): Buffer => Buffer.from(bytes);

/** A segment from the director's local address to the real server, as FULLNAT sends it. */
function seg(options: Buffer, o: { v6?: boolean; payload?: Buffer; flags?: number } = {}): Buffer {
  return F.packet({
    l2, proto: 'tcp', src: o.v6 ? LADDR6 : LADDR4, dst: o.v6 ? RS6 : RS4, sport: 40000, dport: 80,
    flags: o.flags ?? F.TCP.ACK, seq: 1001, ack: 2001, options, payload: o.payload ?? Buffer.alloc(0),
  });
}

/** Where the TCP header of an untagged frame built by seg() starts. */
const tcpOff = (f: Buffer): number => F.dissect(f).l4;

interface Client { addr: string; port: number; family: number }

/**
 * The Linux TOA module's walk (toa.c get_toa_data), written from its rules:
 * options in order, EOL ends, NOP skipped, a length below 2 or past the
 * header ends the walk with nothing, the first kind 254 of length 8 or 20
 * is the TOA. Returns the status the reader should give.
 */
function model(opts: Buffer): { status: number; client?: Client } {
  for (let i = 0; i < opts.length;) {
    const kind = opts[i]!;
    if (kind === 0) return { status: St.NONE };
    if (kind === 1) { i += 1; continue; }
    if (i + 2 > opts.length) return { status: St.MALFORMED };
    const len = opts[i + 1]!;
    if (len < 2 || i + len > opts.length) return { status: St.MALFORMED };
    if (kind === 254 && (len === 8 || len === 20)) {
      const a = opts.subarray(i + 4, i + len);
      return { status: St.FOUND, client: { addr: F.addrText(a), port: opts.readUInt16BE(i + 2), family: len === 8 ? FAMILY.inet : FAMILY.inet6 } };
    }
    i += len;
  }
  return { status: St.NONE };
}

/** Deterministic PRNG (mulberry32), so a failure names a reproducible seed. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  return { int, pick, bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => int(0, 255))) };
}

describe('TOA reader: the option search (BPF_PROG_TEST_RUN)', { skip }, () => {
  let obj: BpfObject;
  let out: RawMap;
  let progFd = 0;
  const key0 = Buffer.alloc(4);

  before(() => {
    obj = BpfObject.open({ objectPath: join(packageRoot, 'bpf/.output/fixtures/toa_parse_test.o') });
    obj.load();
    out = obj.map('toa_parse_out');
    progFd = obj.program('xdp_toa_parse').fd;
  });

  after(() => obj?.close());

  /** Runs the search on a frame; the output is cleared first, so a stale result cannot pass. */
  function search(frame: Buffer): { status: number; client: Buffer; decoded: Client | null } {
    out.update(key0, Buffer.alloc(out.valueSize, 0xee));
    const r = testRun(progFd, { data: frame });
    assert.equal(r.retval, XdpAction.PASS);
    assert.deepEqual(r.data, frame, 'the frame is only read');
    const v = out.lookup(key0);
    assert.ok(v);
    assert.equal(v.readUInt32LE(4), 0xeeeeeeef, 'the program ran once');
    const client = Buffer.from(v.subarray(8, 8 + toaClient.size));
    const status = v.readInt32LE(0);
    if (status !== St.FOUND) return { status, client, decoded: null };
    const c = toaClient.decode(client);
    return { status, client, decoded: { addr: c.addr, port: c.port, family: c.family } };
  }

  function expectFound(frame: Buffer, want: Client, what: string): void {
    const r = search(frame);
    assert.equal(r.status, St.FOUND, `${what}: status`);
    assert.deepEqual(r.decoded, want, `${what}: client`);
    const c = r.client;
    assert.equal(c[toaClient.fields.find((f) => f.name === 'seg')!.offset], 0, `${what}: the search leaves seg to its caller`);
    // Nothing past the address: an IPv4 TOA leaves addr[1..3] zero.
    if (want.family === FAMILY.inet) assert.ok(c.subarray(4, 16).every((x) => x === 0), `${what}: addr[1..3]`);
  }

  /** A refusal or an absence writes no client at all. */
  function expectNone(frame: Buffer, status: number, what: string): void {
    const r = search(frame);
    assert.equal(r.status, status, `${what}: status`);
    assert.ok(r.client.every((x) => x === 0), `${what}: no client written (${r.client.toString('hex')})`);
  }

  const T4 = F.TcpOpt.toa(40000, CLIENT4);
  const T6 = F.TcpOpt.toa(40001, CLIENT6);
  const c4: Client = { addr: CLIENT4, port: 40000, family: FAMILY.inet };
  const c6: Client = { addr: CLIENT6, port: 40001, family: FAMILY.inet6 };
  const ts = cat(nops(2), F.TcpOpt.timestamps(0x01020304, 0x05060708));

  test('the option bytes are the module\'s layout', () => {
    assert.equal(T4.toString('hex'), 'fe089c40c6336407');
    assert.equal(T6.toString('hex'), 'fe149c4120010db8000c00000000000000000007');
    assert.deepEqual(TOA_SEG, { handshake: 1, later: 2 });
  });

  test('a TOA is found wherever valid options put it', () => {
    const cases: Array<[string, Buffer, Client]> = [
      ['IPv4 TOA alone, IPv4 connection', seg(T4), c4],
      ['IPv6 TOA alone, IPv6 connection', seg(T6, { v6: true }), c6],
      ['IPv6 TOA on an IPv4 connection (a director translating families)', seg(T6), c6],
      ['IPv4 TOA on an IPv6 connection', seg(T4, { v6: true }), c4],
      ['after Linux ACK options (NOP NOP timestamps)', seg(cat(ts, T4)), c4],
      ['after SACK blocks', seg(cat(nops(2), F.TcpOpt.sack([[1, 2], [3, 4]]), T4)), c4],
      ['before other options', seg(cat(T4, ts)), c4],
      ['32 bytes of options and the TOA fill the 40', seg(cat(ts, ts, nops(8), T4)), c4],
      ['20 bytes of options and the IPv6 TOA fill the 40', seg(cat(ts, nops(8), T6)), c6],
      ['zeros inside the timestamps are data, not EOL', seg(cat(nops(2), F.TcpOpt.timestamps(0, 0), T4)), c4],
      ['a kind 254 of another length (Fast Open, 4 and 12) is passed over', seg(cat(raw(254, 4, 0xf9, 0x89), raw(254, 12, 0xf9, 0x89, 1, 2, 3, 4, 5, 6, 7, 8), T4)), c4],
      ['a port of 0xf989 (Fast Open\'s magic) is still a TOA here', seg(F.TcpOpt.toa(0xf989, CLIENT4)), { ...c4, port: 0xf989 }],
      ['the first of two TOAs is taken, as the module does', seg(cat(T4, F.TcpOpt.toa(1, '203.0.113.1'))), c4],
      ['a TOA before a malformed option is taken, as the module does', seg(cat(T4, raw(3, 0, 1, 1))), c4],
      ['with payload after the header', seg(T4, { payload: Buffer.from('GET / HTTP/1.1\r\n\r\n') }), c4],
      ['on a FIN', seg(T4, { flags: F.TCP.FIN | F.TCP.ACK }), c4],
      ['port 0 and address 0.0.0.0 are what the option says', seg(F.TcpOpt.toa(0, '0.0.0.0')), { addr: '0.0.0.0', port: 0, family: FAMILY.inet }],
    ];
    for (const [what, frame, want] of cases) expectFound(frame, want, what);
  });

  test('no TOA: nothing is read from elsewhere', () => {
    const cases: Array<[string, Buffer]> = [
      ['no options', seg(Buffer.alloc(0))],
      ['options without a TOA', seg(cat(ts, nops(4)))],
      ['a TOA after an EOL is not in the list', seg(cat(raw(0, 0, 0, 0), T4))],
      ['a TOA after EOL and padding of non-zero bytes', seg(cat(nops(1), raw(0, 9, 9), T4))],
      ['TOA bytes in the payload are payload', seg(Buffer.alloc(0), { payload: cat(T4, T6) })],
      ['TOA bytes inside another option\'s data', seg(cat(raw(30, 12), T4.subarray(0, 8), raw(1, 1)))],
      ['kind 254 of length 6 and 10 only', seg(cat(raw(254, 6, 1, 2, 3, 4), nops(2), raw(254, 10, 1, 2, 3, 4, 5, 6, 7, 8), nops(2)))],
    ];
    for (const [what, frame] of cases) expectNone(frame, St.NONE, what);
  });

  test('malformed options give no client and never crash', () => {
    const cases: Array<[string, Buffer]> = [
      ['an option of length 0 first', seg(cat(raw(2, 0, 5, 0xb4), T4))],
      ['an option of length 1 first', seg(cat(raw(3, 1, 1, 1), T4))],
      ['a TOA of length 0', seg(cat(raw(254, 0, 0x9c, 0x40, 198, 51, 100, 7)))],
      ['a TOA of length 1', seg(cat(raw(254, 1, 0x9c, 0x40, 198, 51, 100, 7)))],
      ['a kind byte with no room for its length', seg(cat(nops(3), raw(254)))],
      ['an IPv4 TOA cut by the end of the header', seg(cat(nops(4), T4.subarray(0, 4)))],
      ['an IPv6 TOA cut by the end of the header, the rest in the payload', seg(cat(nops(4), T6.subarray(0, 8)), { payload: T6.subarray(8) })],
      ['a TOA claiming 255 bytes', seg(cat(raw(254, 255), T4.subarray(2)))],
      ['an option running one byte past 40', seg(cat(nops(32), raw(8, 9, 1, 2, 3, 4, 5, 6)))],
      ['an option of length 41 at the start of 40', seg(cat(raw(30, 41), nops(38)))],
      ['a valid TOA after a malformed option is not taken', seg(cat(raw(8, 20, 1, 1), T4))],
    ];
    for (const [what, frame] of cases) expectNone(frame, St.MALFORMED, what);
  });

  test('a header the data offset does not describe', () => {
    const bad = (f: Buffer, doff: number): Buffer => {
      const b = Buffer.from(f);
      const t = tcpOff(b);
      b[t + 12] = (doff << 4) | (b[t + 12]! & 0x0f);
      return b;
    };
    expectNone(bad(seg(T4), 4), St.MALFORMED, 'data offset 4 (16 bytes)');
    expectNone(bad(seg(T4), 0), St.MALFORMED, 'data offset 0');
    // Data offset 15 declares 40 bytes of options; the frame holds 8, then ends.
    expectNone(bad(seg(T4), 15), St.TRUNCATED, 'data offset past the frame');
    const short = seg(T4);
    expectNone(short.subarray(0, tcpOff(short) + 10), St.TRUNCATED, 'a frame cut inside the fixed header');
    expectNone(short.subarray(0, tcpOff(short) + 24), St.TRUNCATED, 'a frame cut inside the TOA');
    // Data offset 15 over a payload of TOA bytes: those 40 bytes are the header now, and hold a TOA.
    expectFound(bad(seg(Buffer.alloc(0), { payload: cat(T4, nops(32)) }), 15), c4, 'data offset 15 over TOA bytes');
  });

  test('random option bytes: what the TOA module would read, or nothing', () => {
    const seed = 0x70a;
    const r = rng(seed);
    const seen = { found: 0, none: 0, malformed: 0 };
    // Option lists made of pieces, valid and not, so that every outcome gets its share.
    const piece = (): Buffer => {
      switch (r.int(0, 9)) {
        case 0: return raw(1);
        case 1: return raw(0);
        case 2: return F.TcpOpt.toa(r.int(0, 65535), F.addrText(r.bytes(4)));
        case 3: return F.TcpOpt.toa(r.int(0, 65535), F.addrText(r.bytes(16)));
        case 4: return F.TcpOpt.timestamps(r.int(0, 2 ** 32 - 1), r.int(0, 2 ** 32 - 1));
        case 5: { const n = r.pick([4, 6, 10, 12, 18]); return cat(raw(254, n), r.bytes(n - 2)); }
        case 6: return r.bytes(r.int(1, 6));
        case 7: { const n = r.int(0, 24); return cat(raw(r.int(2, 255), n), r.bytes(Math.max(0, n - 2))); }
        case 8: return F.TcpOpt.mss(r.int(0, 65535));
        default: return raw(r.pick([254, 8, 2]), r.pick([0, 1, 8, 20, 40, 41, 255]));
      }
    };
    // Bounded: 3,000 frames, a few microseconds each.
    for (let n = 0; n < 3000; n++) {
      const parts: Buffer[] = [];
      for (let k = r.int(0, 6); k > 0; k--) parts.push(piece());
      const joined = cat(...parts);
      // Whole words, at most 40 bytes: cut, or fill with random bytes.
      const words = Math.min(10, Math.ceil(joined.length / 4));
      const opts = cat(joined, r.bytes(4)).subarray(0, 4 * words);
      const v6 = r.int(0, 1) === 1;
      const frame = seg(opts, { v6, payload: r.bytes(r.int(0, 24)) });
      const want = model(opts);
      const got = search(frame);
      const what = `seed ${seed} frame ${n}: options ${opts.toString('hex')}`;
      assert.equal(got.status, want.status, what);
      if (want.client) {
        seen.found++;
        assert.deepEqual(got.decoded, want.client, what);
      } else {
        assert.ok(got.client.every((x) => x === 0), `${what}: no client written`);
        if (want.status === St.MALFORMED) seen.malformed++;
        else seen.none++;
      }
    }
    // The draw reaches every outcome, or the comparison proves little.
    assert.ok(Object.values(seen).every((n) => n > 300), JSON.stringify(seen));
  });
});
