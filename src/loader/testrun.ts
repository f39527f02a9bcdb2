// BPF_PROG_TEST_RUN for XDP programs: runs a program on a frame without a
// device. bpf_fib_lookup and ingress_ifindex resolve in the caller's network
// namespace, so tests wrap calls in withNetns().
import { XvsError } from '../errors.js';
import * as lb from './libbpf.js';

export const XdpAction = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;

/** Frames really go out (XDP_TX / REDIRECT); no data comes back. */
export const BPF_F_TEST_XDP_LIVE_FRAMES = 2;

export interface TestRunOptions {
  data: Buffer;
  /** struct xdp_md, see xdpMd(). */
  ctxIn?: Buffer;
  repeat?: number;
  flags?: number;
  /** Frames per batch in live-frames mode. */
  batchSize?: number;
  /** Room for the output frame; default leaves 256 bytes of growth. */
  dataOutSize?: number;
}

export interface TestRunResult {
  retval: number;
  /** The frame as the program left it (empty in live-frames mode). */
  data: Buffer;
  /** Average nanoseconds per repetition. */
  duration: number;
}

export function testRun(progFd: number, opts: TestRunOptions): TestRunResult {
  const live = ((opts.flags ?? 0) & BPF_F_TEST_XDP_LIVE_FRAMES) !== 0;
  const out = live ? null : Buffer.alloc(opts.dataOutSize ?? opts.data.length + 256);
  const o: lb.TestRunOptsValue = {
    sz: 80,
    data_in: opts.data,
    data_out: out,
    data_size_in: opts.data.length,
    data_size_out: out?.length ?? 0,
    ctx_in: opts.ctxIn ?? null,
    ctx_out: null,
    ctx_size_in: opts.ctxIn?.length ?? 0,
    ctx_size_out: 0,
    retval: 0,
    repeat: opts.repeat ?? 1,
    duration: 0,
    flags: opts.flags ?? 0,
    cpu: 0,
    batch_size: opts.batchSize ?? 0,
  };
  const r = lb.bpf_prog_test_run_opts(progFd, o);
  if (r < 0) throw new XvsError('LIBBPF', `test run of program fd ${progFd} failed: ${lb.strerror(r)}`);
  return {
    retval: o.retval,
    data: out ? Buffer.from(out.subarray(0, o.data_size_out)) : Buffer.alloc(0),
    duration: o.duration,
  };
}

/**
 * struct xdp_md for ctxIn: data=0, data_end=dataLen, data_meta=0, then
 * ingress_ifindex, rx_queue_index and egress_ifindex=0 (24 bytes).
 */
export function xdpMd(opts: { dataLen: number; ingressIfindex?: number; rxQueue?: number }): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(opts.dataLen, 4);
  b.writeUInt32LE(opts.ingressIfindex ?? 0, 12);
  b.writeUInt32LE(opts.rxQueue ?? 0, 16);
  return b;
}
