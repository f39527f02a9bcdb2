// Control-plane cost of publishing one scheduler table: a fresh inner map,
// one batch update, one swap into xvs_sched_tables, beside the tick length
// the daemon uses (xvsd --tick-ms, default 200).
import { Dataplane } from '../src/daemon/dataplane.js';
import { MapWriter } from '../src/daemon/map-writer.js';
import { EMPTY_MODEL, EMPTY_PLAN, withService, type ServiceModel } from '../src/daemon/model.js';

export interface TablePushResult { slots: number; runs: number; medianMs: number; minMs: number; tickMs: number; shareOfTick: number }

export function runTablePushBench(slots = 65537, runs = 7, tickMs = 200): TablePushResult {
  const dp = Dataplane.load({ connTableSize: 1024 });
  try {
    const writer = new MapWriter(dp);
    const svc: ServiceModel = { id: 0, proto: 'tcp', addr: '192.0.2.80', port: 80, scheduler: 'mh', netmask: 0xffffffff, reals: [], tableSize: 0, plan: EMPTY_PLAN };
    let model = withService(EMPTY_MODEL, svc);
    writer.sync(EMPTY_MODEL, model, new Map());
    const table = Uint32Array.from({ length: slots }, (_, i) => i % 1000);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const next = withService(model, { ...svc, tableSize: table.length });
      const t0 = process.hrtime.bigint();
      writer.sync(model, next, new Map([[svc.id, table]]));
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      model = next;
    }
    times.sort((a, b) => a - b);
    const medianMs = times[Math.floor(runs / 2)]!;
    const r = { slots, runs, medianMs: round(medianMs), minMs: round(times[0]!), tickMs, shareOfTick: round(medianMs / tickMs) };
    process.stdout.write(`\n5. Publishing a ${slots}-slot table (batch update + swap): median ${r.medianMs} ms, min ${r.minMs} ms over ${runs} runs; tick ${tickMs} ms (${(r.shareOfTick * 100).toFixed(1)} % of a tick)\n`);
    return r;
  } finally {
    dp.close();
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;
