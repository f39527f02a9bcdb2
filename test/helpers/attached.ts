// The program a running xvsd attached to an interface of a test's namespace,
// opened by its kernel id: BPF_PROG_TEST_RUN of it goes through the very
// maps that xvsd, its metrics and `xvs explain` read.
import { progFromId, type ProgHandle } from '../../src/loader/cgroup.js';
import { ifIndex, testRun, withNetns, xdpMd, xdpProgId, type TestRunResult } from '../../src/loader/index.js';

export interface Attached {
  ifindex: number;
  /** One frame in on the interface, inside the namespace (so the FIB fallback resolves there). */
  run(input: Buffer): TestRunResult;
  close(): void;
}

export function attachedProgram(ns: string, ifname: string): Attached {
  const { ifindex, prog } = withNetns(ns, () => {
    const i = ifIndex(ifname);
    const id = xdpProgId(i);
    if (id === 0) throw new Error(`no XDP program on ${ifname} in ${ns}`);
    const p: ProgHandle | null = progFromId(id);
    if (!p) throw new Error(`XDP program ${id} on ${ifname} is gone`);
    return { ifindex: i, prog: p };
  });
  return {
    ifindex,
    run: (input) => withNetns(ns, () => testRun(prog.fd, { data: input, ctxIn: xdpMd({ dataLen: input.length, ingressIfindex: ifindex }) })),
    close: () => prog.close(),
  };
}
