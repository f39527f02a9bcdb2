// The loader's public surface: BPF objects, XDP attachment, test runs and
// network namespace switching. libbpf.ts stays internal to loader and maps.
export { BpfObject, type OpenOptions } from './object.js';
export { attachXdp, detachXdp, ifIndex, listInterfaces, xdpProgId, type XdpMode } from './xdp.js';
export { progMapIds } from './prog-info.js';
export { testRun, xdpMd, XdpAction, BPF_F_TEST_XDP_LIVE_FRAMES, type TestRunOptions, type TestRunResult } from './testrun.js';
export { withNetns, withNetnsAsync } from './netns.js';
