// A restart with another --conn-table-size: the pinned flow tables are
// replaced by tables of the new size holding the old entries (the newest
// when shrinking, all when growing), and the pins point at the new ones.
// New flows (xvs_new_flows) keep their one table, and every handshake.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dataplane } from '../src/daemon/dataplane.js';
import * as C from '../src/maps/codecs.js';
import * as lb from '../src/loader/libbpf.js';
import { MapType, RawMap, createArrayMap, mapFromPin } from '../src/maps/map.js';
import { setIndex, tupleHash, wayFold } from '../src/maps/set-table.js';
import { kernelSkipReason, sh } from './helpers/env.js';

const skip = kernelSkipReason();

const connKey = (i: number): C.ConnKey => ({
  saddr: `203.0.113.${i & 255}`, daddr: '192.0.2.80', sport: 1024 + (i >> 8), dport: 80, proto: 6, family: 2,
});
const persistKey = (i: number): C.PersistKey => ({ caddr: `198.51.${(i >> 8) & 255}.${i & 255}`, svc_id: 1, family: 2 });
const conn = (i: number): C.Conn => ({ last_seen: 1_000_000 + i, real_id: i % 7, real_gen: 1, svc_id: 1, state: 1, flags: 0, lport: 0, laddr_id: 0 });

describe('flow tables across a change of --conn-table-size', { skip }, () => {
  let dir: string;
  let pinDir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'xvs-resize-'));
    const fs = join(dir, 'bpffs');
    mkdirSync(fs);
    sh('mount', ['-t', 'bpf', 'bpf', fs]);
    pinDir = join(fs, 'xvs');
  });

  after(() => {
    spawnSync('umount', [join(dir, 'bpffs')]);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Fills m, pins it under its name, as an earlier build would have left it, and lets it go. */
  const pinFilled = (m: RawMap, fill: (m: RawMap) => void) => {
    try {
      fill(m);
      m.pin(join(pinDir, m.name));
    } finally {
      m.close();
    }
  };

  const N = { conns: 6000, syn: 1500, persist: 1500 };

  /** last_seen offsets present in each table. */
  function present(dp: Dataplane): { conns: number[]; syn: number[]; persist: number[] } {
    const offs = (m: { lookupBatch(): { values: Buffer[] } }, dec: (b: Buffer) => number) =>
      m.lookupBatch().values.map(dec).sort((a, b) => a - b);
    return {
      conns: offs(dp.conns.raw, (b) => C.conn.decode(b).last_seen - 1_000_000),
      syn: offs(dp.newFlows, (b) => C.conn.decode(b).last_seen - 1_000_000),
      persist: offs(dp.persist.raw, (b) => C.persist.decode(b).last_seen - 1_000_000),
    };
  }

  test('shrinking keeps the most recently used entries; growing keeps every one', () => {
    const first = Dataplane.load({ pinDir, connTableSize: 8192 });
    try {
      for (let i = 0; i < N.conns; i++) first.conns.set(connKey(i), conn(i));
      for (let i = 0; i < N.syn; i++) first.newFlows.set(connKey(i + 100_000), conn(i), conn(i).last_seen);
      for (let i = 0; i < N.persist; i++) first.persist.set(persistKey(i), { last_seen: 1_000_000 + i, real_id: 1, real_gen: 1 });
      const cfg = first.config.get(0)!;
      first.config.set(0, { ...cfg, timeout: cfg.timeout.map((t, s) => (s === 1 ? 123 : t)) });
    } finally {
      first.close();
    }

    // Halved: conns 4096, persist 1024; new flows as they were.
    const small = Dataplane.load({ pinDir, connTableSize: 4096 });
    let kept: ReturnType<typeof present>;
    try {
      assert.equal(small.conns.raw.maxEntries, 4096);
      assert.equal(small.newFlows.maxEntries, 65536);
      assert.equal(small.persist.raw.maxEntries, 1024);
      assert.equal(small.config.get(0)?.timeout[1], 123, 'the other maps are the pinned ones');
      kept = present(small);
      assert.deepEqual(kept.syn, Array.from({ length: N.syn }, (_, i) => i), 'every new flow, in its own table');
      assert.deepEqual(small.newFlows.get(connKey(100_000 + N.syn - 1)), conn(N.syn - 1), 'found by its tuple as the dataplane finds it');
      for (const name of ['conns', 'persist'] as const) {
        const total = N[name];
        const got = kept[name];
        const cap = name === 'conns' ? 4096 : 1024;
        assert.ok(got.length > 0 && got.length <= cap, `${name}: ${got.length} kept of ${total} into ${cap}`);
        // Exactly the newest: the last got.length offsets, none missing in between.
        assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => total - got.length + i), `${name}: the newest entries`);
      }
      assert.equal(kept.conns.length, 4096);
      assert.equal(kept.persist.length, 1024);
    } finally {
      small.close();
    }
    for (const [name, size] of [['xvs_conns', 4096], ['xvs_new_flows', 8192], ['xvs_persist', 1024]] as const) {
      const m = mapFromPin(join(pinDir, name));
      assert.equal(m.maxEntries, size, `${name} pin`);
      m.close();
    }

    // Doubled again: nothing is lost.
    const big = Dataplane.load({ pinDir, connTableSize: 8192 });
    try {
      assert.equal(big.conns.raw.maxEntries, 8192);
      assert.deepEqual(present(big), kept);
      assert.deepEqual(big.conns.get(connKey(N.conns - 1)), conn(N.conns - 1), 'entries copied byte for byte');
    } finally {
      big.close();
    }
  });

  test('the new flows of an earlier build (LRU hashes pinned as xvs_syn_conns and xvs_nat_syn) move into the sets, and those pins go', () => {
    const pinLru = (name: string, valueSize: number, fill: (m: RawMap) => void) => {
      const fd = lb.bpf_map_create(MapType.LRU_HASH, name, C.connKey.size, valueSize, 1024, null);
      assert.ok(fd >= 0, lb.strerror(fd));
      pinFilled(new RawMap({ name, fd, type: MapType.LRU_HASH, keySize: C.connKey.size, valueSize, maxEntries: 1024 }, true), fill);
    };
    const reply = (i: number): C.Nat => ({
      last_seen: 1_000_000 + i, vaddr: '192.0.2.80', caddr: `203.0.113.${i}`, vport: 80, cport: 1024 + i, real_id: 1, svc_id: 1,
      ifindex: 1, cmac: '02:00:00:00:00:01', smac: '02:00:00:00:00:02', family: 2, state: 3, flags: 0,
    });
    const replyKey = (i: number): C.ConnKey => ({ saddr: '192.0.2.11', daddr: `203.0.113.${i}`, sport: 80, dport: 1024 + i, proto: 6, family: 2 });
    pinLru('xvs_syn_conns', C.conn.size, (m) => {
      for (let i = 0; i < 10; i++) m.update(C.connKey.encode(connKey(200_000 + i)), C.conn.encode(conn(i)));
    });
    pinLru('xvs_nat_syn', C.nat.size, (m) => {
      for (let i = 0; i < 10; i++) m.update(C.connKey.encode(replyKey(i)), C.nat.encode(reply(i)));
    });
    const dp = Dataplane.load({ pinDir, connTableSize: 8192 });
    try {
      for (let i = 0; i < 10; i++) assert.deepEqual(dp.newFlows.get(connKey(200_000 + i)), conn(i));
      for (let i = 0; i < 10; i++) assert.deepEqual(dp.newReplies.get(replyKey(i)), reply(i));
      for (const name of ['xvs_syn_conns', 'xvs_nat_syn']) assert.equal(existsSync(join(pinDir, name)), false, name);
    } finally {
      dp.close();
    }
  });

  test('the sets of an earlier build, each set\'s head inside it, move into the sets and their heads\' own maps, which take the pins', () => {
    const SETS = 8192;
    const HEAD = C.setHead.size;
    /** Pins `name` as that build laid it out: per set, the tags and times taken, then the ways (key, value, check). */
    const pinOld = (name: string, value: { size: number }, entries: [Buffer, Buffer][]) => {
      const way = C.connKey.size + value.size + 8;
      const sets = new Map<number, Buffer>();
      for (const [key, v] of entries) {
        const h = tupleHash(key);
        const idx = setIndex(h, SETS - 1);
        const set = sets.get(idx) ?? Buffer.alloc(HEAD + 8 * way);
        sets.set(idx, set);
        let i = 0;
        while (set.readUInt32LE(4 * i) !== 0) i++;
        const at = HEAD + i * way;
        key.copy(set, at);
        v.copy(set, at + C.connKey.size);
        set.writeBigUInt64LE(wayFold(set, at, way - 8), at + way - 8);
        set.writeUInt32LE(1_000_000 + i, 32 + 4 * i);
        set.writeUInt32LE((h | 1) >>> 0, 4 * i);
      }
      // What the tests before pinned, this build's layout.
      for (const n of [name, name === 'xvs_new_flows' ? 'xvs_new_flow_heads' : 'xvs_new_reply_heads']) rmSync(join(pinDir, n), { force: true });
      pinFilled(createArrayMap(name, HEAD + 8 * way, SETS), (m) => {
        for (const [idx, set] of sets) m.update(C.u32Codec.encode(idx), set);
      });
    };
    const reply = (i: number): C.Nat => ({
      last_seen: 1_000_000 + i, vaddr: '192.0.2.80', caddr: `203.0.113.${i}`, vport: 80, cport: 2024 + i, real_id: 1, svc_id: 1,
      ifindex: 1, cmac: '02:00:00:00:00:01', smac: '02:00:00:00:00:02', family: 2, state: 3, flags: 0,
    });
    const replyKey = (i: number): C.ConnKey => ({ saddr: '192.0.2.11', daddr: `203.0.113.${i}`, sport: 80, dport: 2024 + i, proto: 6, family: 2 });
    const n = 12;
    pinOld('xvs_new_flows', C.conn, Array.from({ length: n }, (_, i) => [C.connKey.encode(connKey(300_000 + i)), C.conn.encode(conn(i))]));
    pinOld('xvs_new_replies', C.nat, Array.from({ length: n }, (_, i) => [C.connKey.encode(replyKey(i)), C.nat.encode(reply(i))]));
    for (let round = 0; round < 2; round++) {
      const dp = Dataplane.load({ pinDir, connTableSize: 8192 });
      try {
        for (let i = 0; i < n; i++) assert.deepEqual(dp.newFlows.get(connKey(300_000 + i)), conn(i), `round ${round}: flow ${i}`);
        for (let i = 0; i < n; i++) assert.deepEqual(dp.newReplies.get(replyKey(i)), reply(i), `round ${round}: reply side ${i}`);
        assert.equal([...dp.newFlows.entries()].length, n, 'nothing else');
      } finally {
        dp.close();
      }
      for (const [name, size] of [['xvs_new_flows', C.newFlowSet.size], ['xvs_new_replies', C.newReplySet.size], ['xvs_new_flow_heads', HEAD], ['xvs_new_reply_heads', HEAD]] as const) {
        const m = mapFromPin(join(pinDir, name));
        assert.equal(m.valueSize, size, `${name} pinned as this build lays it out`);
        m.close();
      }
    }
  });
});
