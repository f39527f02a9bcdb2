// Shared by the test-run and live-frame measurements.
import { testRun, withNetns, xdpMd, XdpAction, type TestRunOptions, type TestRunResult } from '../src/loader/index.js';
import { NET } from './net.js';

const ACTION_NAMES = Object.fromEntries(Object.entries(XdpAction).map(([k, v]) => [v, k])) as Record<number, string>;

export const actionName = (v: number): string => ACTION_NAMES[v] ?? `verdict ${v}`;

export const nowNs = (): bigint => process.hrtime.bigint();
export const msSince = (t0: bigint): number => Number(nowNs() - t0) / 1e6;

/** Lets signal handlers run between synchronous stretches of test runs. */
export const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function ctxFor(ifindex: number, len: number): Buffer {
  return xdpMd({ dataLen: len, ingressIfindex: ifindex });
}

export class VerdictError extends Error {}

/** A test run that must end in XDP_TX; anything else stops the bench. */
export function runTx(what: string, progFd: number, opts: TestRunOptions, detail?: () => unknown): TestRunResult {
  const r = testRun(progFd, opts);
  if (r.retval !== XdpAction.TX) {
    const extra = detail ? ` (${JSON.stringify(detail())})` : '';
    throw new VerdictError(`${what}: verdict ${actionName(r.retval)}, expected TX${extra}`);
  }
  return r;
}

export function inNs<T>(fn: () => T): T {
  return withNetns(NET.ns, fn);
}

export function median(xs: ArrayLike<number>): number {
  const s = Array.from(xs).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
