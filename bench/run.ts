// npm run bench: refuses early with one line when the machine cannot run it,
// and quiets the library's info logs before anything imports the logger.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { bpfObject } from '../src/paths.js';

function unusable(): string | null {
  if (process.getuid?.() !== 0) return 'must run as root (BPF programs, XDP attach, network namespaces)';
  for (const o of ['xvs', 'xvs_aux'] as const) {
    if (!existsSync(bpfObject(o))) return `BPF object ${bpfObject(o)} is missing; run npm run build`;
  }
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'the kernel exposes no BTF (/sys/kernel/btf/vmlinux)';
  for (const tool of ['ip', 'ethtool', 'taskset', 'chrt', 'nft']) {
    try { execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }); } catch { return `${tool} is not installed`; }
  }
  return null;
}

const reason = unusable();
if (reason) {
  process.stderr.write(`bench: ${reason}\n`);
  process.exit(1);
}
process.env.XVS_LOG_LEVEL ??= 'warn';
try {
  const { main } = await import('./main.js');
  await main();
} catch (e) {
  const err = e as Error & { oneLine?: () => string; detail?: string };
  // A signal during a test run ends it with EINTR before any handler runs; cleanup already happened.
  if (/Interrupted system call/.test(err.message)) {
    process.stderr.write('bench: interrupted\n');
    process.exit(130);
  }
  process.stderr.write(`bench: failed: ${err.oneLine ? err.oneLine() : err.message}\n`);
  if (err.detail) process.stderr.write(`${err.detail}\n`);
  process.exit(1);
}
