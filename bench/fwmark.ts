// What fwmark rules cost per packet, through BPF_PROG_TEST_RUN (repeat=N,
// the kernel's own ns per run): a packet of no service with no rule, with a
// prefix whose 16 rules it all fails (the longest list the dataplane
// walks), a stray segment classified to a fwmark service against the same
// segment to an address/port service (both forwarded by sh's hash, so no
// state is written and every run is alike), and an established packet of
// each kind, which looks at no rule. `node dist/bench/fwmark.js`.
import { testRun, withNetns, xdpMd, XdpAction, type TestRunResult } from '../src/loader/index.js';
import type { ServiceKey } from '../src/control/protocol.js';
import * as F from '../test/helpers/frames.js';
import { ADDR, directorNs, type DirectorNs } from '../test/helpers/director-ns.js';
import { actionName, median } from './run-util.js';

const REPEAT = 200_000;
const ROUNDS = 5;
const inbound = { dst: ADDR.dirMac, src: ADDR.routerMac };
const FWM: ServiceKey = { proto: 'tcp', addr: '0.0.0.0', port: 0, fwmark: 7 };

function runs(t: DirectorNs, frame: Buffer, repeat: number): TestRunResult {
  const ctxIn = xdpMd({ dataLen: frame.length, ingressIfindex: t.ifindex });
  return withNetns(t.ns, () => testRun(t.dp.progFd, { data: frame, ctxIn, repeat }));
}

/** One run, which must end in `verdict`. */
function once(t: DirectorNs, what: string, frame: Buffer, verdict: number): void {
  const r = runs(t, frame, 1);
  if (r.retval !== verdict) throw new Error(`${what}: ${actionName(r.retval)}, expected ${actionName(verdict)}`);
}

function measure(t: DirectorNs, what: string, frame: Buffer, verdict: number): number {
  const run = (repeat: number): TestRunResult => runs(t, frame, repeat);
  once(t, what, frame, verdict);
  const ns: number[] = [];
  for (let i = 0; i < ROUNDS; i++) ns.push(run(REPEAT).duration);
  return median(ns);
}

const seg = (dst: string, dport: number, flags: number, sport = 40000) =>
  F.frame({ l2: inbound, src: ADDR.client, dst, sport, dport, flags });

async function main(): Promise<void> {
  const t = directorNs('xvs-bfw');
  try {
    const rows: [string, number][] = [];
    const miss = seg('192.0.2.70', 80, F.TCP.SYN);
    rows.push(['no service, no rule (PASS)', measure(t, 'miss', miss, XdpAction.PASS)]);
    for (let i = 0; i < 16; i++) await t.director.addFwmarkRule({ mark: 9, addr: '192.0.2.64', len: 26, proto: 'udp', dport: [1000 + i, 1000 + i] });
    rows.push(['no service, 16 rules tried, none matches (PASS)', measure(t, 'miss16', miss, XdpAction.PASS)]);
    await t.director.addFwmarkRule({ mark: 7, addr: '192.0.2.140', len: 32, proto: 'tcp' });
    await t.director.addService({ ...FWM, scheduler: 'sh' });
    await t.addReal(FWM, { addr: ADDR.rs1, port: 0, fwd: 'dr', weight: 1 });
    await t.director.addService({ proto: 'tcp', addr: '192.0.2.141', port: 80, scheduler: 'sh' });
    await t.addReal({ proto: 'tcp', addr: '192.0.2.141', port: 80 }, { addr: ADDR.rs1, port: 0, fwd: 'dr', weight: 1 });
    rows.push(['stray ACK, address/port service (sh, TX)', measure(t, 'stray-svc', seg('192.0.2.141', 80, F.TCP.ACK), XdpAction.TX)]);
    rows.push(['stray ACK, fwmark service by one rule (sh, TX)', measure(t, 'stray-fwm', seg('192.0.2.140', 80, F.TCP.ACK), XdpAction.TX)]);
    for (const [name, dst] of [['address/port service', '192.0.2.141'], ['fwmark service', '192.0.2.140']] as const) {
      const sport = 41000;
      once(t, `${name} SYN`, seg(dst, 80, F.TCP.SYN, sport), XdpAction.TX);
      once(t, `${name} confirm`, seg(dst, 80, F.TCP.ACK, sport), XdpAction.TX);
      rows.push([`established ACK, ${name} (TX)`, measure(t, `${name} established`, seg(dst, 80, F.TCP.ACK, sport), XdpAction.TX)]);
    }
    const w = Math.max(...rows.map(([n]) => n.length));
    process.stdout.write(`ns per packet, median of ${ROUNDS} x ${REPEAT} runs (BPF_PROG_TEST_RUN)\n`);
    for (const [n, v] of rows) process.stdout.write(`${n.padEnd(w)}  ${v.toFixed(1).padStart(7)}\n`);
  } finally {
    t.close();
  }
}

await main();
