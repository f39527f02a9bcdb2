// fo, ovf, twos and the sh/mh scheduler flags against plain models written
// from the IPVS sources (net/netfilter/ipvs/ip_vs_{fo,ovf,twos,sh,mh}.c and
// ip_vs_ctl.c's last_weight). The models step one connection (or one
// client) at a time and share no code with the planners.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SLOT } from '../src/maps/abi.js';
import { formatSchedFlags, parseSchedFlags } from '../src/schedulers/flags.js';
import { hash32, hash32Port, slotOf } from '../src/schedulers/hash.js';
import { buildMh } from '../src/schedulers/mh.js';
import { buildFo, planOvf } from '../src/schedulers/overflow.js';
import { lookupOf, schedulerByName, type RealState } from '../src/schedulers/registry.js';
import { buildSh } from '../src/schedulers/sh-dh.js';
import { planTwos, seededU32, twosPicker } from '../src/schedulers/twos.js';
import type { LoadReal } from '../src/schedulers/types.js';

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % n;
  };
}

const ipNum = (a: string): number => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);

// --- the hash with the source port -----------------------------------------

test('sh-port/mh-port hash: ((ntohl(fold(addr)) + port) mod 2^32) * 2654435761 mod 2^32, as ip_vs_sh_hashkey', () => {
  const model = (fold: number, port: number): number => Number(((BigInt(fold) + BigInt(port)) % 2n ** 32n * 2654435761n) % 2n ** 32n);
  for (const a of ['0.0.0.0', '10.0.0.1', '203.0.113.7', '255.255.255.255']) {
    for (const port of [0, 1, 80, 40000, 65535]) {
      assert.equal(hash32Port(a, port), model(ipNum(a), port), `${a}:${port}`);
      assert.equal(slotOf(a, 4093, port), model(ipNum(a), port) % 4093);
    }
  }
  // 255.255.255.255 + 1 wraps to 0, as the kernel's unsigned int sum.
  assert.equal(hash32Port('255.255.255.255', 1), 0);
  const fold = (0x20010db8 ^ 0x00ff0000 ^ 0 ^ 0x00000007) >>> 0;
  assert.equal(hash32Port('2001:db8:ff::7', 40000), model(fold, 40000));
  // Port 0 is the plain address hash, as IPVS without the flag.
  assert.equal(hash32Port('192.0.2.10', 0), hash32('192.0.2.10'));
});

// --- sh and mh: refusing or falling back -----------------------------------

interface HReal extends RealState {
  overloaded: boolean;
}

function hashReals(weights: readonly number[], overloaded: readonly number[] = [], lastWeights: readonly number[] = []): HReal[] {
  return weights.map((weight, i) => ({
    id: 200 + i, weight, addr: `10.2.${(i * 53) % 256}.${(i * 89) % 256}`, port: 80,
    overloaded: overloaded.includes(i), ...(lastWeights[i] !== undefined ? { lastWeight: lastWeights[i] } : {}),
  }));
}

/**
 * IPVS's sh/mh lookup on a table of reals (the layout, every slot owned):
 * ip_vs_sh_get without the flag, ip_vs_sh_get_fallback with it, where the
 * k-th probe reads bucket (roffset + hash) mod M with roffset = (k + ihash)
 * mod M, the hash being the full 32-bit one.
 */
function ipvsHashLookup(layout: Uint32Array, available: (id: number) => boolean, h: number, fallback: boolean): number {
  const m = layout.length;
  const ihash = h % m;
  if (available(layout[ihash]!)) return layout[ihash]!;
  if (!fallback) return -1;
  for (let k = 0; k < m; k++) {
    const roffset = (k + ihash) % m;
    const id = layout[(roffset + h) % m]!;
    if (available(id)) return id;
  }
  return -1;
}

const clientsOf = (n: number, seed: number): [string, number][] => {
  const r = rng(seed);
  return Array.from({ length: n }, () => [`${1 + r(223)}.${r(256)}.${r(256)}.${r(256)}`, 1024 + r(64512)]);
};

test('sh without sh-fallback: a client of a weight-0 or overloaded real is refused, every other one stays', () => {
  const reals = hashReals([3, 0, 2, 5, 1], [3]);
  const layout = buildSh(reals.map((r) => ({ ...r, weight: Math.max(r.weight, 1), overloaded: false })), 1021);
  const ok = (id: number): boolean => id === 200 || id === 202 || id === 204;
  for (const fallback of [false, true]) {
    const t = buildSh(reals, 1021, fallback);
    for (const [addr, port] of clientsOf(3000, fallback ? 2 : 1)) {
      for (const h of [hash32(addr), hash32Port(addr, port)]) {
        const want = ipvsHashLookup(layout, ok, h, fallback);
        assert.equal(t[h % t.length], want < 0 ? SLOT.none : want, `${addr} fallback=${fallback}`);
      }
    }
  }
  // The refused share is the unavailable reals' buckets: weight 0 holds max(0, 1) of 12.
  const refused = buildSh(reals, 1021).filter((id) => id === SLOT.none).length;
  assert.equal(refused, Math.round((1021 * (1 + 5)) / 12));
});

test('sh-fallback: no available real is an empty table; all available is the plain layout', () => {
  assert.equal(buildSh(hashReals([0, 4], [1]), 251, true).length, 0);
  assert.equal(buildSh(hashReals([0, 4], [1]), 251, false).length, 0);
  const reals = hashReals([1, 2, 3]);
  assert.deepEqual(buildSh(reals, 251, true), buildSh(reals, 251, false));
  assert.ok(!buildSh(reals, 251).includes(SLOT.none));
});

test('mh: quiescing (weight 0, last weight kept) or overloading a real moves no other client', () => {
  const before = buildMh(hashReals([4, 2, 3, 1]), 4093);
  const quiesced = hashReals([4, 0, 3, 1], [3], [4, 2, 3, 1]);
  const ok = (id: number): boolean => id === 200 || id === 202;
  for (const fallback of [false, true]) {
    const t = buildMh(quiesced, 4093, fallback);
    for (let s = 0; s < t.length; s++) {
      if (ok(before[s]!)) assert.equal(t[s], before[s], `slot ${s} keeps its real`);
      else if (!fallback) assert.equal(t[s], SLOT.none, `slot ${s} refused`);
      // mh-fallback: the slot's clients go where the first available slot from 2*s on points.
      else {
        let k = 0;
        while (!ok(before[(2 * s + k) % t.length]!)) k++;
        assert.equal(t[s], before[(2 * s + k) % t.length], `slot ${s} falls back`);
      }
    }
  }
  // A real added with weight 0 never had a weight: it holds no slot (IPVS: last_weight 0, no turns).
  assert.deepEqual(buildMh(hashReals([4, 2, 3, 1, 0]), 4093), before);
});

test('mh-fallback spreads a quiesced real\'s clients over the others by their shares', () => {
  const t = buildMh(hashReals([1, 1, 1, 1, 1], [], [1, 1, 1, 1, 1]).map((r, i) => (i === 0 ? { ...r, weight: 0 } : r)), 65537, true);
  const counts = new Map<number, number>();
  for (const id of t) counts.set(id, (counts.get(id) ?? 0) + 1);
  assert.equal(counts.get(200), undefined);
  for (const id of [201, 202, 203, 204]) assert.ok(Math.abs(counts.get(id)! / t.length - 0.25) < 0.01, `${id}: ${counts.get(id)}`);
});

// --- fo ---------------------------------------------------------------------

interface Dest {
  id: number;
  weight: number;
  active: number;
  inactive: number;
  overloaded: boolean;
}

/** ip_vs_fo_schedule: the first dest of a weight strictly above every earlier one, overloaded skipped. */
function ipvsFo(ds: readonly Dest[]): Dest | null {
  let h: Dest | null = null;
  let hw = 0;
  for (const d of ds) {
    if (!d.overloaded && d.weight > hw) {
      h = d;
      hw = d.weight;
    }
  }
  return h;
}

function randomDests(r: (n: number) => number, n: number): Dest[] {
  return Array.from({ length: n }, (_, i) => ({ id: i + 1, weight: r(4) === 0 ? 0 : r(6), active: r(8), inactive: r(8), overloaded: r(5) === 0 }));
}

test('fo: the one slot is IPVS fo\'s pick (highest weight, first among equals, overloaded skipped)', () => {
  const r = rng(7);
  for (let k = 0; k < 500; k++) {
    const ds = randomDests(r, 1 + r(6));
    const want = ipvsFo(ds);
    assert.deepEqual([...buildFo(ds)], want ? [want.id] : [], JSON.stringify(ds));
  }
  assert.deepEqual([...schedulerByName('fo').build({ reals: [{ id: 9, weight: 2, addr: '192.0.2.9', port: 80 }, { id: 8, weight: 2, addr: '192.0.2.8', port: 80 }] })], [9]);
});

// --- ovf --------------------------------------------------------------------

/** ip_vs_ovf_schedule: the highest weight among dests whose active count does not exceed it. */
function ipvsOvf(ds: readonly Dest[]): Dest | null {
  let h: Dest | null = null;
  for (const d of ds) {
    if (d.overloaded || d.active > d.weight || d.weight === 0) continue;
    if (!h || d.weight > h.weight) h = d;
  }
  return h;
}

test('ovf: the plan is IPVS ovf one connection at a time, refused slots where every real is full', () => {
  const r = rng(11);
  for (let k = 0; k < 300; k++) {
    const ds = randomDests(r, 1 + r(5));
    const picks = 1 + r(40);
    const model = ds.map((d) => ({ ...d }));
    const want: number[] = [];
    for (let p = 0; p < picks; p++) {
      const d = ipvsOvf(model);
      want.push(d ? d.id : SLOT.none);
      if (d) d.active++;
    }
    const got = planOvf(ds, picks, { newConnAs: 'active' });
    if (!ds.some((d) => d.weight > 0 && !d.overloaded)) assert.equal(got.length, 0);
    else assert.deepEqual([...got], want, JSON.stringify(ds));
  }
});

test('ovf: connections that turn inactive along the plan free their real again, as IPVS sees them close', () => {
  const r = rng(17);
  for (let k = 0; k < 300; k++) {
    const ds = randomDests(r, 1 + r(5));
    const picks = 1 + r(60);
    const activeFor = ds.map(() => r(6));
    const closing = ds.map((d) => Array.from({ length: d.active }, () => r(picks + 5)).sort((x, y) => x - y));
    // The model: before pick p, every connection due then turns inactive; a pick is active for activeFor later picks.
    const model = ds.map((d) => ({ ...d }));
    const due = new Map<number, number[]>();
    const at = (p: number, i: number): void => { if (p < picks) due.set(p, [...(due.get(p) ?? []), i]); };
    closing.forEach((ps, i) => ps.forEach((p) => at(p, i)));
    const want: number[] = [];
    for (let p = 0; p < picks; p++) {
      for (const i of due.get(p) ?? []) {
        model[i]!.active--;
        model[i]!.inactive++;
      }
      const d = ipvsOvf(model);
      want.push(d ? d.id : SLOT.none);
      if (!d) continue;
      const i = model.indexOf(d);
      if (activeFor[i]! > 0) {
        d.active++;
        at(p + activeFor[i]! + 1, i);
      } else d.inactive++;
    }
    const got = planOvf(ds, picks, { activeFor, closing });
    if (!ds.some((d) => d.weight > 0 && !d.overloaded)) assert.equal(got.length, 0);
    else assert.deepEqual([...got], want, JSON.stringify({ ds, activeFor, closing }));
  }
});

test('ovf: fills the heaviest real to weight + 1 active, then overflows to the next; new connections counted inactive do not fill', () => {
  const ds: LoadReal[] = [{ id: 1, weight: 2, active: 0, inactive: 0 }, { id: 2, weight: 5, active: 0, inactive: 0 }, { id: 3, weight: 1, active: 0, inactive: 0 }];
  assert.deepEqual([...planOvf(ds, 12, { newConnAs: 'active' })], [2, 2, 2, 2, 2, 2, 1, 1, 1, 3, 3, SLOT.none]);
  assert.deepEqual([...planOvf(ds, 5, { newConnAs: 'inactive' })], [2, 2, 2, 2, 2]);
  // A pick active for two later picks only: real 2 (weight 5) never fills.
  assert.deepEqual([...planOvf(ds, 8, { activeFor: [2, 2, 2] })], [2, 2, 2, 2, 2, 2, 2, 2]);
});

// --- twos -------------------------------------------------------------------

/** ip_vs_twos_schedule with a given prandom_u32. */
function ipvsTwos(ds: readonly Dest[], prandom: () => number): Dest | null {
  let total = 0;
  for (const d of ds) if (!d.overloaded && d.weight > 0) total += d.weight;
  if (total === 0) return null;
  total += 1;
  let rw1 = prandom() % total;
  let rw2 = prandom() % total;
  let c1: Dest | null = null;
  let c2: Dest | null = null;
  for (const d of ds) {
    if (d.overloaded || d.weight <= 0) continue;
    rw1 -= d.weight;
    rw2 -= d.weight;
    if (rw1 <= 0 && !c1) c1 = d;
    if (rw2 <= 0 && !c2) c2 = d;
    if (c1 && c2) break;
  }
  const oh = (d: Dest): number => d.active * 256 + d.inactive;
  return c2!.weight * oh(c1!) > c1!.weight * oh(c2!) ? c2 : c1;
}

test('twos: each slot is IPVS twos\'s pick with the same draws, counted as it is handed out', () => {
  const r = rng(13);
  for (let k = 0; k < 300; k++) {
    const ds = randomDests(r, 1 + r(6));
    const picks = 1 + r(50);
    const seed = r(1 << 30);
    const model = ds.map((d) => ({ ...d }));
    const draws = seededU32(seed);
    const want: number[] = [];
    for (let p = 0; p < picks; p++) {
      const d = ipvsTwos(model, draws);
      if (!d) break;
      want.push(d.id);
      d.active++;
    }
    assert.deepEqual([...planTwos(ds, picks, { newConnAs: 'active' }, seed)], want, JSON.stringify(ds));
  }
});

test('twos: the draw is over [0, total], so with equal loads the first real has odds (w + 1) / (total + 1)', () => {
  const ds: LoadReal[] = [{ id: 1, weight: 1, active: 0, inactive: 0 }, { id: 2, weight: 2, active: 0, inactive: 0 }, { id: 3, weight: 1, active: 0, inactive: 0 }];
  const c = { active: new Float64Array(3), inactive: new Float64Array(3) };
  const rand = seededU32(5);
  const n = 200000;
  const got = [0, 0, 0];
  const pick = twosPicker(ds);
  for (let k = 0; k < n; k++) got[pick(c, rand)]!++;
  [2 / 5, 2 / 5, 1 / 5].forEach((p, i) => assert.ok(Math.abs(got[i]! / n - p) < 0.005, `real ${i + 1}: ${got[i]! / n} vs ${p}`));
  // The less loaded of the two draws wins: real 3 loaded, its draws go to the other one drawn.
  c.active[2] = 10;
  const loaded = [0, 0, 0];
  for (let k = 0; k < n; k++) loaded[pick(c, rand)]!++;
  // Real 3 is taken only when both draws land on it: (1/5)^2.
  assert.ok(Math.abs(loaded[2]! / n - 1 / 25) < 0.003, `loaded real: ${loaded[2]! / n}`);
});

test('twos: the registry plans from the cursor\'s seed, so successive ticks draw afresh and a plan is reproducible', () => {
  const reals: RealState[] = [1, 2, 3].map((id) => ({ id, weight: id, addr: `192.0.2.${id}`, port: 80, active: 0, inactive: 0 }));
  const twos = schedulerByName('twos');
  const a = twos.plan({ reals, picks: 64, cursor: 1000n, newConnAs: 'inactive' }, undefined).table;
  assert.deepEqual(twos.plan({ reals, picks: 64, cursor: 1000n, newConnAs: 'inactive' }, undefined).table, a);
  assert.notDeepEqual(twos.plan({ reals, picks: 64, cursor: 1064n, newConnAs: 'inactive' }, undefined).table, a);
  assert.equal(twos.plan({ reals: reals.map((r) => ({ ...r, weight: 0 })), picks: 64 }, undefined).table.length, 0);
});

// --- flags: names, lookups ---------------------------------------------------

test('-b flags: ipvsadm\'s names and bits, its listing text, and the lookup they give', () => {
  assert.equal(parseSchedFlags('sh', 'sh-fallback,sh-port'), 3);
  assert.equal(parseSchedFlags('mh', 'flag-2'), 2);
  assert.equal(parseSchedFlags('wlc', 'flag-1,flag-3'), 5);
  assert.throws(() => parseSchedFlags('sh', 'mh-port'), { code: 'BAD_ARGUMENT', message: "incompatible scheduler flag `mh-port'" });
  assert.throws(() => parseSchedFlags('rr', 'sh-port'), { code: 'BAD_ARGUMENT', message: "incompatible scheduler flag `sh-port'" });
  assert.throws(() => parseSchedFlags('sh', 'port'), { code: 'BAD_ARGUMENT', message: "invalid scheduler flag `port'" });
  // print_sched_flags: sh/mh name bits 1 and 2 only; the others print flag-N.
  assert.equal(formatSchedFlags('sh', 3), 'sh-fallback,sh-port');
  assert.equal(formatSchedFlags('mh', 2), 'mh-port');
  assert.equal(formatSchedFlags('sh', 4), '');
  assert.equal(formatSchedFlags('wlc', 7), 'flag-1,flag-2,flag-3');
  assert.equal(lookupOf('sh', 2), 'hash_src_port');
  assert.equal(lookupOf('mh', 3), 'hash_src_port');
  assert.equal(lookupOf('sh', 1), 'hash_src');
  assert.equal(lookupOf('wlc', 2), 'seq');
  assert.equal(lookupOf('dh', 2), 'hash_dst');
});
