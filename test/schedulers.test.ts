import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRr } from '../src/schedulers/rr.js';
import { buildWrr } from '../src/schedulers/wrr.js';
import {
  DEFAULT_SCHEDULER,
  MAX_SEQ_TABLE,
  SCHEDULERS,
  schedulerByCode,
  schedulerByName,
  type SchedReal,
} from '../src/schedulers/registry.js';
import { XvsError } from '../src/errors.js';

// Reference models written the way the kernel does it (net/netfilter/ipvs/
// ip_vs_rr.c and ip_vs_wrr.c, no overload flags): a cursor over the list and,
// for wrr, the modern mw = max - (di - 1) variant whose last pass is cw = 1.
// They share nothing with the builders on purpose.

function ipvsRr(weights: readonly number[]): () => number | null {
  let cursor = -1;
  return () => {
    for (let k = 1; k <= weights.length; k++) {
      const i = (cursor + k) % weights.length;
      if ((weights[i] ?? 0) > 0) {
        cursor = i;
        return i;
      }
    }
    return null;
  };
}

function ipvsWrr(weights: readonly number[]): () => number | null {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let di = 0;
  for (const w of weights) if (w > 0) di = di > 0 ? gcd(w, di) : w;
  if (di === 0) di = 1;
  const mw = Math.max(0, ...weights) - (di - 1);
  let cw = mw;
  let cursor = -1; // -1 is the list head
  return () => {
    if (mw <= 0) return null;
    for (let guard = 0; guard < 1e7; guard++) {
      for (let i = cursor + 1; i < weights.length; i++) {
        if ((weights[i] ?? 0) >= cw) {
          cursor = i;
          return i;
        }
      }
      cursor = -1;
      cw -= di;
      if (cw <= 0) cw = mw;
    }
    throw new Error('reference wrr did not converge');
  };
}

const reals = (weights: readonly number[]): SchedReal[] => weights.map((weight, i) => ({ id: 100 + i, weight }));

function assertReplays(table: Uint32Array, next: () => number | null, steps: number): void {
  assert.ok(table.length > 0);
  for (let n = 0; n < steps; n++) {
    const pick = next();
    assert.notEqual(pick, null);
    assert.equal(table[n % table.length], 100 + pick!, `pick ${n}`);
  }
}

const cases: number[][] = [
  [1],
  [1, 1, 1],
  [3, 2, 1],
  [1, 2, 3],
  [5, 0, 3, 3, 1],
  [2, 4],
  [4, 2, 6],
  [7, 11, 13],
  [100, 1],
  [0, 9, 0, 6, 3],
  [65535, 1, 2],
];

test('rr replays the IPVS rr state machine', () => {
  for (const w of [...cases, [0, 1, 0, 0, 1]]) {
    const table = buildRr(reals(w));
    assertReplays(table, ipvsRr(w), table.length * 3 + 2);
  }
});

test('rr keeps list order, one slot per real with weight > 0', () => {
  assert.deepEqual([...buildRr(reals([1, 0, 5, 2]))], [100, 102, 103]);
  assert.equal(buildRr([]).length, 0);
  assert.equal(buildRr(reals([0, 0])).length, 0);
});

test('wrr replays the IPVS wrr state machine over several cycles', () => {
  for (const w of cases) {
    const table = buildWrr(reals(w));
    assertReplays(table, ipvsWrr(w), table.length * 3 + 5);
  }
});

test('wrr and rr replay the reference for random weight lists', () => {
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let trial = 0; trial < 500; trial++) {
    const w = Array.from({ length: 1 + rand(9) }, () => (rand(4) === 0 ? 0 : rand(13) * (1 + rand(3))));
    const wrr = buildWrr(reals(w));
    const rr = buildRr(reals(w));
    if (w.every((x) => x === 0)) {
      assert.equal(wrr.length + rr.length, 0);
      continue;
    }
    assertReplays(wrr, ipvsWrr(w), wrr.length * 2 + 3);
    assertReplays(rr, ipvsRr(w), rr.length * 2 + 3);
  }
});

test('wrr gives each real exactly its weight share per cycle', () => {
  const w = [6, 4, 0, 2, 10];
  const table = buildWrr(reals(w));
  assert.equal(table.length, 11); // (6 + 4 + 2 + 10) / gcd 2
  const count = new Map<number, number>();
  for (const id of table) count.set(id, (count.get(id) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries(count), { 100: 3, 101: 2, 103: 1, 104: 5 });
});

test('wrr: weight 0 is quiesced and all-zero is an empty table', () => {
  assert.ok(!buildWrr(reals([3, 0, 1])).includes(101));
  assert.equal(buildWrr(reals([0, 0, 0])).length, 0);
  assert.equal(buildWrr([]).length, 0);
});

test('wrr: ties are picked in list order on every pass', () => {
  assert.deepEqual([...buildWrr(reals([3, 3, 1]))], [100, 101, 100, 101, 100, 101, 102]);
  assert.deepEqual([...buildWrr(reals([1, 3, 3]))], [101, 102, 101, 102, 100, 101, 102]);
});

test('wrr reduces by the gcd: weights 2,4 make a 3-slot cycle', () => {
  assert.deepEqual([...buildWrr(reals([2, 4]))], [101, 100, 101]);
  assert.deepEqual([...buildWrr(reals([300, 200, 100]))], [100, 100, 101, 100, 101, 102]);
});

test('wrr refuses a cycle longer than MAX_SEQ_TABLE', () => {
  const big = Array.from({ length: 20 }, (_, i) => 65535 - i); // gcd 1, ~1.3M slots
  assert.throws(() => buildWrr(reals(big)), (e: unknown) => e instanceof XvsError && e.code === 'CAPACITY');
  const fits = buildWrr(reals([MAX_SEQ_TABLE - 1, 1]));
  assert.equal(fits.length, MAX_SEQ_TABLE);
});

test('registry: names, codes, lookups and errors', () => {
  assert.equal(DEFAULT_SCHEDULER, 'wlc');
  assert.equal(Object.keys(SCHEDULERS).length, 14);
  const codes = Object.values(SCHEDULERS).map((s) => s.code);
  assert.equal(new Set(codes).size, codes.length);
  assert.equal(schedulerByName('wrr').code, 2);
  assert.equal(schedulerByName('rr').lookup, 'seq');
  assert.equal(schedulerByCode(8)?.name, 'sh');
  assert.equal(schedulerByCode(8)?.lookup, 'hash_src');
  assert.deepEqual(['fo', 'ovf', 'twos'].map((n) => schedulerByName(n).code), [12, 13, 14]);
  assert.equal(schedulerByCode(99), undefined);
  assert.throws(
    () => schedulerByName('fifo'),
    (e: unknown) => e instanceof XvsError && e.code === 'BAD_ARGUMENT' && e.message === "unknown scheduler 'fifo'" && !!e.hint?.includes('lblcr'),
  );
  for (const name of Object.keys(SCHEDULERS)) assert.equal(typeof schedulerByName(name).build, 'function');
  assert.throws(() => schedulerByName('toString'), (e: unknown) => e instanceof XvsError && e.code === 'BAD_ARGUMENT');
});
