import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { logger } from '../log.js';

const run = promisify(execFile);
const log = logger('neigh');

// The dataplane takes next-hop MACs from the kernel's neighbour table
// (bpf_fib_lookup), which XDP cannot make the kernel resolve. A "managed"
// neighbour entry (Linux 5.16+) is one the kernel resolves and keeps fresh by
// itself, so the director adds one for each real server's next hop.
export async function ensureNeighbour(addr: string): Promise<void> {
  try {
    const { stdout } = await run('ip', ['-j', 'route', 'get', addr]);
    const route = (JSON.parse(stdout) as { dev?: string; gateway?: string; type?: string }[])[0];
    if (!route?.dev || route.type === 'local') return;
    const nh = route.gateway ?? addr;
    await run('ip', ['neigh', 'replace', nh, 'dev', route.dev, 'managed']);
    log.debug({ addr, nh, dev: route.dev }, 'managed neighbour');
  } catch (e) {
    log.warn({ addr, err: (e as Error).message }, 'cannot set a managed neighbour; the first packets may be dropped as no_neigh');
  }
}
