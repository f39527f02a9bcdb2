import { createArrayMap, mapFromId } from '../maps/map.js';
import { u32Codec, type Svc, type SvcKey } from '../maps/codecs.js';
import type { Dataplane } from './dataplane.js';

const BPF_F_INNER_MAP = 1 << 12;

/**
 * Publishes a service's scheduler table. A new inner map is filled first and
 * swapped in with one outer-map write, so the dataplane sees the old table
 * or the new one, never a mix. tbl_size is written before a shrink and after
 * a growth, so a slot index is always inside whichever table is live.
 */
export function installTable(dp: Dataplane, key: SvcKey, entry: Svc, table: Uint32Array): Svc {
  const id = u32Codec.encode(entry.id);
  const next = { ...entry, tbl_size: table.length };
  if (table.length === 0) {
    dp.services.set(key, next);
    dp.schedTables.delete(id);
    return next;
  }
  const inner = createArrayMap(`xvs_t${entry.id}`, 4, table.length, BPF_F_INNER_MAP);
  try {
    // Host-order u32 keys and values, as the kernel copies them.
    const keys = Uint32Array.from({ length: table.length }, (_, i) => i);
    inner.updateBatchFlat(Buffer.from(keys.buffer), Buffer.from(table.buffer, table.byteOffset, table.byteLength), table.length);
    const fd = u32Codec.encode(inner.fd);
    if (table.length < entry.tbl_size) {
      dp.services.set(key, next);
      dp.schedTables.update(id, fd);
    } else {
      dp.schedTables.update(id, fd);
      dp.services.set(key, next);
    }
  } finally {
    inner.close(); // the outer map holds its own reference
  }
  return next;
}

/** The table the dataplane holds for a service (the outer map yields the inner map's id). */
export function readTable(dp: Dataplane, svcId: number): Uint32Array | undefined {
  const idBuf = dp.schedTables.lookup(u32Codec.encode(svcId));
  if (!idBuf) return undefined;
  const inner = mapFromId(u32Codec.decode(idBuf));
  try {
    const { keys, values } = inner.lookupBatch(4096);
    const out = new Uint32Array(inner.maxEntries);
    values.forEach((v, i) => { out[u32Codec.decode(keys[i]!)] = u32Codec.decode(v); });
    return out;
  } finally {
    inner.close();
  }
}
