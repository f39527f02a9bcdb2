// The ids of xvs_laddrs that live flows carry: a FULLNAT flow's entry in
// xvs_conns or xvs_syn_conns names its local address by id (laddr_id) with
// a local port; any other flow has port 0. Read only when every id is taken
// and -P needs one back (model.ts, addLaddr): a walk of the flow tables.
import { XvsError } from '../errors.js';
import * as C from '../maps/codecs.js';
import type { Dataplane } from './dataplane.js';

const field = (name: string): number => {
  const f = C.conn.fields.find((x) => x.name === name);
  if (!f) throw new XvsError('LIBBPF', `xvs_conn's codec has no field ${name}`);
  return f.offset;
};

export function laddrIdsCarried(dp: Dataplane): Set<number> {
  const lport = field('lport');
  const laddrId = field('laddr_id');
  const out = new Set<number>();
  for (const m of [dp.conns, dp.synConns]) {
    const stride = m.raw.valueBufSize;
    for (const b of m.raw.batches(4096)) {
      for (let j = 0; j < b.count; j++) {
        const at = j * stride;
        if (b.values.readUInt16BE(at + lport) !== 0) out.add(b.values.readUInt32LE(at + laddrId));
      }
    }
  }
  return out;
}
