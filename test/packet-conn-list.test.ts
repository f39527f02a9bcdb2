// Through BPF_PROG_TEST_RUN: a non-contiguous persistence mask (ipvsadm -M
// takes any mask; the dataplane ANDs the client address with it), and what
// `xvsadm -L -c` and `--persistent-conn` read back from the connection
// tables and the persistence templates the packets left.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatConnections } from '../src/cli/list-format.js';
import type { ConnView } from '../src/control/protocol.js';
import * as F from './helpers/frames.js';
import { kernelSkipReason } from './helpers/env.js';
import { ADDR, HOP, directorNs, type DirectorNs } from './helpers/director-ns.js';

const skip = kernelSkipReason();
const inbound = HOP.fromClient;
const VIP = ADDR.vip;
const MAC_TO_REAL: Record<string, string> = {
  [F.mac(ADDR.rs1Mac).toString('hex')]: ADDR.rs1,
  [F.mac(ADDR.rsFarMac).toString('hex')]: ADDR.rsFar,
};

describe('connections and persistence templates as -L -c shows them', { skip }, () => {
  let t: DirectorNs;

  before(async () => {
    t = directorNs('xvs-lc');
    const key = { proto: 'tcp' as const, addr: VIP, port: 90 };
    await t.director.addService({ ...key, scheduler: 'rr', persistent: 360, netmask: '255.0.255.0' });
    await t.addReal(key, { addr: ADDR.rs1, port: 0, fwd: 'dr', weight: 1 });
    await t.addReal(key, { addr: ADDR.rsFar, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ proto: 'udp', addr: VIP, port: 53, scheduler: 'rr' });
    await t.addReal({ proto: 'udp', addr: VIP, port: 53 }, { addr: ADDR.rs1, port: 0, fwd: 'dr', weight: 1 });
  });
  after(() => t?.close());

  const tcp = (src: string, sport: number, flags: number) => F.frame({ l2: inbound, src, dst: VIP, sport, dport: 90, flags });
  const realOf = (src: string, sport: number, flags: number = F.TCP.SYN): string => {
    const r = t.run(tcp(src, sport, flags));
    return MAC_TO_REAL[r.data.subarray(0, 6).toString('hex')]!;
  };

  test('-M 255.0.255.0: clients equal in the masked bytes share a real server, others do not', () => {
    const a = realOf('203.0.113.7', 41000);
    assert.ok(a);
    // Differs only where the mask is 0 (second and fourth bytes): the same template.
    assert.equal(realOf('203.9.113.200', 41001), a);
    // Differs in the third byte: a template of its own, rr's next pick.
    const c = realOf('203.0.114.7', 41002);
    assert.ok(c);
    assert.notEqual(c, a);
    assert.equal(realOf('203.77.114.1', 41003), c);
  });

  test('-L -c: every flow with IPVS\'s state and time left, and one template per masked client', () => {
    // The first client's handshake completes: its flow is confirmed (ESTABLISHED).
    const a = realOf('203.0.113.7', 41000, F.TCP.ACK);
    t.run(F.frame({ l2: inbound, src: ADDR.client, dst: VIP, sport: 5353, dport: 53, proto: 'udp', payload: Buffer.from('q') }));
    const conns = t.director.connections();
    const key = (c: ConnView) => `${c.proto} ${c.state} ${c.caddr}:${c.cport} ${c.vaddr}:${c.vport} ${c.daddr}:${c.dport}`;
    const seen = conns.map(key).sort();
    const other = a === ADDR.rs1 ? ADDR.rsFar : ADDR.rs1;
    assert.deepEqual(seen, [
      `tcp ESTABLISHED 203.0.113.7:41000 ${VIP}:90 ${a}:90`,
      `tcp NONE 203.0.113.0:0 ${VIP}:90 ${a}:90`,
      `tcp NONE 203.0.114.0:0 ${VIP}:90 ${other}:90`,
      `tcp SYN_RECV 203.0.114.7:41002 ${VIP}:90 ${other}:90`,
      `tcp SYN_RECV 203.77.114.1:41003 ${VIP}:90 ${other}:90`,
      `tcp SYN_RECV 203.9.113.200:41001 ${VIP}:90 ${a}:90`,
      `udp UDP ${ADDR.client}:5353 ${VIP}:53 ${ADDR.rs1}:53`,
    ].sort());
    // Time left: the state's timeout (IPVS's: 900 s established, 60 s SYN_RECV, 300 s UDP) or the persistence timeout, less what has passed.
    const left = { ESTABLISHED: 900, SYN_RECV: 60, NONE: 360, UDP: 300 } as Record<string, number>;
    for (const c of conns) assert.ok(c.expires <= left[c.state]! && c.expires >= left[c.state]! - 5, `${key(c)}: ${c.expires}`);
    const text = formatConnections(conns, {});
    assert.match(text, new RegExp(`^TCP 1[45]:\\d\\d  ESTABLISHED 203\\.0\\.113\\.7:41000  ${VIP.replaceAll('.', '\\.')}:90 +${a.replaceAll('.', '\\.')}:90$`, 'm'));
    assert.match(text, /^TCP 0[56]:\d\d  NONE {8}203\.0\.113\.0:0 {6}/m);
  });

  test('--persistent-conn: live templates per real server', () => {
    const svc = t.director.list({ proto: 'tcp', addr: VIP, port: 90 }).services[0]!;
    assert.deepEqual(svc.reals.map((r) => [r.addr, r.persistConns]).sort(), [[ADDR.rs1, 1], [ADDR.rsFar, 1]].sort());
  });
});
