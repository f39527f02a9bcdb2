// Packets per core: xvs's NAT and FULLNAT beside the kernel's own NAT,
// by the CPU time the director's core spends per frame. xb's NAPI runs in
// a kernel thread alone on CPU 1, so everything the director does for a
// frame happens there: taking it from the ring, then the XDP program and
// XDP_TX, or the kernel's receive, conntrack, the NAT hooks, the route,
// forwarding and the neighbour; and last the handing into xa's queue. The
// generator and xa's NAPI thread (the sink, at a real-time priority so its
// queue never overflows back onto xb) share CPU 0. The figure is that
// thread's own run time (/proc/TID/schedstat, which counts only while it
// ran: another developer's process on CPU 1 takes time from the wall clock,
// not from this) over the frames it took. The generator offers what CPU 0
// can make: the kernel's NAT cannot keep up with it, xvs may; a thread that
// runs out of frames pays each wake-up over fewer of them, so an idle xvs
// thread counts against xvs (the report says which side bounded a row).
import { CPUS, pinMainThread } from './cpu.js';
import type { LiveCase, LiveResult } from './live.js';
import { runLive } from './live.js';
import type { Links } from './net.js';
import type { Progs } from './progs.js';

/** xvs and the kernel in turns, so a change in the machine's load falls on both of a pair. */
export const PER_CORE_CASES: readonly LiveCase[] = [
  { name: 'xdp_macswap (floor)', b: 'xdp_macswap', mode: null, flows: 'fixed' },
  ...(['nat', 'fnat'] as const).flatMap((mode) => (['in', 'out'] as const).flatMap((dir): LiveCase[] => [
    { name: `xvs_xdp ${mode === 'nat' ? 'NAT' : 'FULLNAT'}`, b: 'xvs_xdp', mode, flows: 'fixed', dir },
    { name: `kernel ${mode === 'nat' ? 'NAT (dnat)' : 'FULLNAT (dnat+snat)'}`, b: 'kernel', mode, flows: 'fixed', dir },
  ])),
];

/** The director's core: xb's NAPI thread; the generator and the sink stay on the other. */
const DIRECTOR_CPU = 1;

export async function runPerCore(p: Progs, links: Links, progress: (s: string) => void): Promise<LiveResult[] | null> {
  if (CPUS < 2) return null;
  const out: LiveResult[] = [];
  // The generator is Node's main thread: on the other core than the director's.
  pinMainThread(0);
  try {
    for (const c of PER_CORE_CASES) {
      const r = await runLive(p, links, c, 'split', DIRECTOR_CPU);
      const ns = r.bThread ? r.bThread.runNs / r.bRx : NaN;
      progress(`per core: ${c.name} ${c.dir ?? ''}: ${ns.toFixed(1)} ns of CPU ${DIRECTOR_CPU} per frame over ${r.bRx} frames`);
      out.push(r);
    }
  } finally {
    pinMainThread('all');
  }
  return out;
}
