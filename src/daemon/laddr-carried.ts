// The ids of xvs_laddrs that live flows carry: a FULLNAT flow's entry in
// xvs_conns or xvs_new_flows names its local address by id (laddr_id) with
// a local port; any other flow has port 0. Read only when every id is taken
// and -P needs one back (model.ts, addLaddr): a walk of the flow tables.
import { fieldOffset } from '../maps/codec.js';
import * as C from '../maps/codecs.js';
import type { Dataplane } from './dataplane.js';

export function laddrIdsCarried(dp: Dataplane): Set<number> {
  const lport = fieldOffset(C.conn, 'lport');
  const laddrId = fieldOffset(C.conn, 'laddr_id');
  const out = new Set<number>();
  for (const m of [dp.conns.raw, dp.newFlows]) {
    const stride = m.valueBufSize;
    for (const b of m.batches(4096)) {
      for (let j = 0; j < b.count; j++) {
        const at = j * stride;
        // lport is network order (__be16), laddr_id host order (__u32), as the ABI has them.
        if (b.values.readUInt16BE(at + lport) !== 0) out.add(C.u32Codec.decode(b.values, at + laddrId));
      }
    }
  }
  return out;
}
