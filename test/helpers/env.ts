import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { bpfObject } from '../../src/paths.js';

/** Why a kernel-level test cannot run here, or undefined when it can. CI runs as root. */
export function kernelSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for BPF and network namespaces';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'kernel has no BTF';
  if (!existsSync(bpfObject('xvs'))) return 'bpf/.output/xvs.o is not built (npm run build)';
  return undefined;
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function nsSh(ns: string, cmd: string, args: string[]): string {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
}
