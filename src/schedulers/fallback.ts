import { SLOT } from '../maps/abi.js';

/**
 * sh and mh keep an unavailable real server's slots (weight 0 or
 * overloaded), as IPVS keeps it in its table, and settle here what a client
 * hashed to one of them gets, so the dataplane still does one lookup:
 *
 * - without *-fallback, nothing: the slot is SLOT.none and the new flow is
 *   refused (ICMP port unreachable), as IPVS's scheduler finds no
 *   destination (ip_vs_sh_get, ip_vs_mh_get);
 * - with it, the real server of the first available slot from (2 x slot)
 *   mod M onwards. IPVS's fallback probes hash(addr, port, offset) with
 *   offset (k + slot) mod M for k = 0, 1, ...: the hash plus that offset,
 *   mod M, is slot (2 x slot + k) mod M, so for sh this is IPVS's rule on
 *   this table, client for client. mh's probes hash again with each offset,
 *   so its clients of one slot spread over several reals in IPVS; here they
 *   all take the one the same rule gives the slot (a slot is 1/65537 of the
 *   clients by default).
 *
 * Clients of available slots never move. No available slot at all: an
 * empty table (refused alike, as IPVS refuses).
 */
export function settleSlots(table: Uint32Array, available: (id: number) => boolean, fallback: boolean): Uint32Array {
  const m = table.length;
  const ok = Uint8Array.from(table, (id) => (available(id) ? 1 : 0));
  if (!ok.includes(1)) return new Uint32Array(0);
  if (ok.every((x) => x === 1)) return table;
  const out = Uint32Array.from(table);
  if (!fallback) {
    for (let i = 0; i < m; i++) if (!ok[i]) out[i] = SLOT.none;
    return out;
  }
  // nextOk[i]: the first available slot at or after i, going round.
  const nextOk = new Int32Array(m);
  let next = -1;
  for (let k = 2 * m - 1; k >= 0; k--) {
    const i = k % m;
    if (ok[i]) next = i;
    nextOk[i] = next;
  }
  for (let i = 0; i < m; i++) if (!ok[i]) out[i] = table[nextOk[(2 * i) % m]!]!;
  return out;
}
