import { existsSync, statfsSync } from 'node:fs';
import path from 'node:path';

const BPF_FS_MAGIC = 0xcafe4a11;

/** Whether dir (or, if it does not exist yet, its nearest existing parent) is on a bpffs. */
export function onBpffs(dir: string): boolean {
  let d = dir;
  while (!existsSync(d) && d !== path.dirname(d)) d = path.dirname(d);
  return Number(statfsSync(d).type) === BPF_FS_MAGIC;
}
