// The director's batch (xvsadm -R): one transaction for many changes. The
// same requests one by one or as a batch end in the same configuration; a
// batch refused at any request leaves the model and every map byte as it was.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSave } from '../src/cli/save-format.js';
import type { BatchRequest, ListResult, ServiceKey } from '../src/control/protocol.js';
import { Dataplane } from '../src/daemon/dataplane.js';
import { Director } from '../src/daemon/director.js';
import * as C from '../src/maps/codecs.js';
import { mapFromId } from '../src/maps/map.js';
import { XvsError } from '../src/errors.js';
import { kernelSkipReason } from './helpers/env.js';

const skip = kernelSkipReason();
const tcp = (port: number): ServiceKey => ({ proto: 'tcp', addr: '192.0.2.80', port });
const real = (addr: string, weight = 1, fwd: 'dr' | 'tun' = 'dr') => ({ addr, port: 0, fwd, weight });

/** Every map a change writes, as bytes (tables by their contents). */
function bytes(dp: Dataplane): string {
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
      tables.push(`${id}:${raw(inner).join(',')}`);
    } finally {
      inner.close();
    }
  }
  return JSON.stringify({
    services: raw(dp.services.raw), reals: raw(dp.reals.raw), nexthops: raw(dp.nexthops.raw), tables,
    svcStats: raw(dp.svcStats.raw), realStats: raw(dp.realStats.raw), config: raw(dp.config.raw),
  });
}

const SCRIPT: BatchRequest[] = [
  { op: 'clear' },
  { op: 'add-service', svc: { ...tcp(80), scheduler: 'wrr', persistent: 300, netmask: '255.255.255.0' } },
  { op: 'add-real', key: tcp(80), real: real('192.0.2.11', 3) },
  { op: 'add-real', key: tcp(80), real: real('192.0.2.12', 1, 'tun') },
  { op: 'add-service', svc: { ...tcp(443), scheduler: 'mh' } },
  { op: 'add-real', key: tcp(443), real: real('192.0.2.13') },
  { op: 'add-real', key: tcp(443), real: real('192.0.2.14') },
  { op: 'del-real', key: tcp(443), real: { addr: '192.0.2.13', port: 0 } },
  { op: 'edit-real', key: tcp(80), real: { ...real('192.0.2.12', 5, 'tun'), uthreshold: 10, lthreshold: 5 } },
  { op: 'edit-service', svc: { ...tcp(443), scheduler: 'sh' } },
  { op: 'add-service', svc: { ...tcp(8080), scheduler: 'rr' } },
  { op: 'del-service', key: tcp(8080) },
  { op: 'zero' },
  { op: 'set-timeouts', timeouts: { tcp: 600, tcpfin: 0, udp: 0 } },
  { op: 'set-timeouts', timeouts: { tcp: 0, tcpfin: 60, udp: 0 } },
];

describe('director: a batch is one transaction', { skip }, () => {
  let dp: Dataplane;
  let director: Director;

  before(() => {
    dp = Dataplane.load({ connTableSize: 4096 });
    director = new Director(dp, { neighbours: false });
  });
  after(() => dp?.close());

  const config = (): string => formatSave(director.list() as ListResult) + JSON.stringify(director.timeouts());

  test('the same requests one by one and as a batch end in the same configuration, tables and all', async () => {
    for (const req of SCRIPT) await director.handle(req);
    const oneByOne = config();
    const tablesOneByOne = bytes(dp);
    await director.clear();
    await director.setTimeouts({ tcp: 900, tcpfin: 120, udp: 300 });
    let saves = 0;
    const counting = new Director(dp, { neighbours: false, onChange: () => { saves++; } });
    await counting.batch(SCRIPT);
    assert.equal(saves, 1, 'one change, one save');
    assert.equal(formatSave(counting.list()) + JSON.stringify(counting.timeouts()), oneByOne);
    assert.equal(oneByOne, `-A -t 192.0.2.80:80 -s wrr -p 300 -M 255.255.255.0
-a -t 192.0.2.80:80 -r 192.0.2.11:80 -g -w 3
-a -t 192.0.2.80:80 -r 192.0.2.12:80 -i -w 5 --tun-type ipip -x 10 -y 5
-A -t 192.0.2.80:443 -s sh
-a -t 192.0.2.80:443 -r 192.0.2.14:443 -g -w 1
{"tcp":600,"tcpfin":60,"udp":300}`);
    // The tables (wrr's cycle, sh's hash table) and every other map match too, real ids aside.
    const strip = (s: string) => s.replace(/"reals":\[[^\]]*\]|"nexthops":\[[^\]]*\]|"realStats":\[[^\]]*\]|"tables":\[[^\]]*\]/g, '');
    assert.equal(strip(bytes(dp)), strip(tablesOneByOne));
    director = counting;
  });

  test('a batch refused at any request changes nothing, and names the request', async () => {
    const was = bytes(dp);
    const before = config();
    const cases: [BatchRequest[], string, RegExp][] = [
      [[{ op: 'add-service', svc: { ...tcp(81), scheduler: 'rr' } }, { op: 'add-service', svc: { ...tcp(80), scheduler: 'rr' } }], 'SERVICE_EXISTS', /^request 2: /],
      [[{ op: 'clear' }, { op: 'add-real', key: tcp(80), real: real('192.0.2.11') }], 'NO_SERVICE', /^request 2: /],
      [[{ op: 'del-real', key: tcp(80), real: { addr: '192.0.2.11', port: 0 } }, { op: 'del-real', key: tcp(80), real: { addr: '192.0.2.11', port: 0 } }], 'NO_REAL', /^request 2: /],
      [[{ op: 'set-timeouts', timeouts: { tcp: 1, tcpfin: 1, udp: 1 } }, { op: 'zero' }, { op: 'add-real', key: tcp(443), real: real('192.0.2.14') }], 'REAL_EXISTS', /^request 3: /],
      [[{ op: 'add-real', key: tcp(80), real: { ...real('2001:db8::15'), fwd: 'nat' } }], 'BAD_ADDRESS', /^request 1: /],
    ];
    for (const [reqs, code, msg] of cases) {
      await assert.rejects(director.batch(reqs), (e: unknown) => e instanceof XvsError && e.code === code && msg.test(e.message), JSON.stringify(reqs));
      assert.equal(bytes(dp), was, `${JSON.stringify(reqs)} wrote nothing`);
      assert.equal(config(), before);
    }
  });
});
