// FULLNAT local addresses are named by id (xvs_laddrs) in every flow that
// leaves from them. Ids are handed out lowest first and, once all are taken,
// taken back from an address no pool holds and no live flow carries: a
// director whose pools change over months (-P/-Q of ever new addresses)
// does not run out after XVS_MAX_LADDRS of them, and a running flow never
// sees its address's id go to another address.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as M from '../src/daemon/model.js';
import { laddrIdsCarried } from '../src/daemon/laddr-carried.js';
import { XdpAction } from '../src/loader/index.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const LIMITS = { services: 8, reals: 64 };
const svc = { proto: 'tcp' as const, addr: '192.0.2.80', port: 80 };
const nothing = () => new Set<number>();

describe('local address ids (model)', () => {
  const base = M.addService(M.EMPTY_MODEL, { ...svc, scheduler: 'rr' }, LIMITS);

  test('all taken: a new address takes the id of one no pool holds and no flow carries', () => {
    let m = M.addLaddr(base, svc, '198.51.100.1', 2, nothing);
    m = M.addLaddr(m, svc, '198.51.100.2', 2, nothing);
    assert.deepEqual([...m.laddrIds!], [['198.51.100.1', 0], ['198.51.100.2', 1]]);
    m = M.delLaddr(m, svc, '198.51.100.1');
    m = M.addLaddr(m, svc, '198.51.100.3', 2, nothing);
    assert.deepEqual(new Map(m.laddrIds), new Map([['198.51.100.2', 1], ['198.51.100.3', 0]]));
    // The same address again, while its id is still its own: no id moves.
    m = M.delLaddr(m, svc, '198.51.100.3');
    m = M.addLaddr(m, svc, '198.51.100.3', 2, nothing);
    assert.deepEqual(new Map(m.laddrIds), new Map([['198.51.100.2', 1], ['198.51.100.3', 0]]));
  });

  test('all taken, each in a pool or carried by a live flow: refused, nothing changed, the flow tables read only then', () => {
    let reads = 0;
    const carried = (ids: number[]) => () => { reads++; return new Set(ids); };
    let m = M.addLaddr(base, svc, '198.51.100.1', 2, carried([]));
    m = M.addLaddr(m, svc, '198.51.100.2', 2, carried([]));
    assert.equal(reads, 0, 'free ids: the flow tables are not read');
    const pooled = m;
    assert.throws(() => M.addLaddr(pooled, svc, '198.51.100.3', 2, carried([])), { code: 'CAPACITY' });
    const out = M.delLaddr(m, svc, '198.51.100.1');
    assert.throws(() => M.addLaddr(out, svc, '198.51.100.3', 2, carried([0])), { code: 'CAPACITY', message: /carried by a live flow/ });
    assert.deepEqual(new Map(out.laddrIds), new Map([['198.51.100.1', 0], ['198.51.100.2', 1]]));
    assert.equal(M.addLaddr(out, svc, '198.51.100.3', 2, carried([1])).laddrIds?.get('198.51.100.3'), 0);
  });
});

describe('local address ids carried by flows (BPF_PROG_TEST_RUN)', { skip: kernelSkipReason() }, () => {
  let t: DirectorNs;
  const key = { proto: 'tcp' as const, addr: ADDR.vip, port: 80 };
  const dr = { proto: 'tcp' as const, addr: ADDR.vip, port: 81 };
  const LIPS = ['198.51.100.1', '198.51.100.2'];
  const { fromClient } = HOP;
  const seg = (dport: number, flags: number) => F.packet({ l2: fromClient, proto: 'tcp', src: ADDR.client, dst: ADDR.vip, sport: 40000, dport, flags });

  before(async () => {
    t = directorNs('xvs-lid', { connTableSize: 65536 });
    await t.director.addService({ ...key, scheduler: 'rr' });
    for (const a of LIPS) await t.director.addLaddr(key, a);
    await t.addReal(key, { addr: ADDR.rsFar, port: 8080, fwd: 'fullnat', weight: 1 });
    await t.director.addService({ ...dr, scheduler: 'rr' });
    await t.addReal(dr, { addr: ADDR.rs1, port: 81, fwd: 'dr', weight: 1 });
  });

  after(() => {
    t?.close();
  });

  test('a FULLNAT flow carries its local address\'s id, new and confirmed; a DR flow carries none', () => {
    assert.deepEqual(laddrIdsCarried(t.dp), new Set());
    assert.equal(t.run(seg(81, F.TCP.SYN)).retval, XdpAction.TX);
    assert.deepEqual(laddrIdsCarried(t.dp), new Set(), 'a DR flow: no local address');
    const syn = t.run(seg(80, F.TCP.SYN));
    assert.equal(syn.retval, XdpAction.REDIRECT);
    const lip = [...syn.data.subarray(14 + 12, 14 + 16)].join('.');
    const id = idOf(lip);
    assert.deepEqual(laddrIdsCarried(t.dp), new Set([id]), 'the new flow (xvs_new_flows)');
    assert.equal(t.run(seg(80, F.TCP.ACK)).retval, XdpAction.REDIRECT);
    assert.deepEqual(laddrIdsCarried(t.dp), new Set([id]), 'confirmed (xvs_conns)');
  });

  /** The id xvs_laddrs holds the address at. */
  function idOf(addr: string): number {
    for (let i = 0; i < 16; i++) {
      const e = t.dp.laddrs.get(i);
      if (e && e.addr === addr) return i;
    }
    throw new Error(`${addr} not in xvs_laddrs`);
  }
});
