import { fileURLToPath } from 'node:url';
import path from 'node:path';

// Compiled files live in dist/src/…; the BPF objects in bpf/.output at the
// package root. Both layouts resolve from here.
const here = path.dirname(fileURLToPath(import.meta.url));
export const packageRoot = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

export function bpfObject(name: 'xvs' | 'xvs_decap' | 'xvs_aux' | 'xvs_toa'): string {
  return path.join(packageRoot, 'bpf', '.output', `${name}.o`);
}
