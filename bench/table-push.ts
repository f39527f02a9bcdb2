// Control-plane cost of publishing one scheduler table: a fresh inner map,
// one batch update, one swap into xvs_sched_tables, beside the tick length
// the daemon uses (xvsd --tick-ms, default 200).
import { Dataplane } from '../src/daemon/dataplane.js';
import { installTable } from '../src/daemon/tables.js';
import type { Svc, SvcKey } from '../src/maps/codecs.js';

export interface TablePushResult { slots: number; runs: number; medianMs: number; minMs: number; tickMs: number; shareOfTick: number }

export function runTablePushBench(slots = 65537, runs = 7, tickMs = 200): TablePushResult {
  const dp = Dataplane.load({ connTableSize: 1024 });
  try {
    const key: SvcKey = { addr: '192.0.2.80', port: 80, proto: 6, family: 2 };
    let entry: Svc = { id: 0, flags: 0, sched: 11, lookup: 1, tbl_size: 0, persist_timeout: 0, persist_mask: Buffer.alloc(16) };
    dp.services.set(key, entry);
    const table = Uint32Array.from({ length: slots }, (_, i) => i % 1000);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      entry = installTable(dp, key, entry, table);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    const medianMs = times[Math.floor(runs / 2)]!;
    const r = { slots, runs, medianMs: round(medianMs), minMs: round(times[0]!), tickMs, shareOfTick: round(medianMs / tickMs) };
    process.stdout.write(`\n3. Publishing a ${slots}-slot table (batch update + swap): median ${r.medianMs} ms, min ${r.minMs} ms over ${runs} runs; tick ${tickMs} ms (${(r.shareOfTick * 100).toFixed(1)} % of a tick)\n`);
    return r;
  } finally {
    dp.close();
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;
