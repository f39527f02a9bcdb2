import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { formatConfig, parseRestore } from '../cli/save-format.js';
import { XvsError } from '../errors.js';
import { logger } from '../log.js';
import type { Director } from './director.js';

// xvsd's configuration file: `xvsadm -S -n` rules and a `--set` line, the
// format operators already read and `xvsadm -R` takes. Written after every
// committed change, atomically (a temporary file, fsync, rename, fsync of
// the directory), so a crash leaves the old file or the new one, never half
// of one. Read at start only when the pinned maps hold no service (after a
// reboot, or `xvs down`): the maps are the truth while they exist.

const log = logger('config');

export const SYSTEM_CONFIG = '/var/lib/xvs/xvsd.conf';

function fsyncPath(path: string, flags: string): void {
  const fd = openSync(path, flags);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function saveConfig(path: string, director: Director): void {
  const text = formatConfig(director.config(), director.timeouts());
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncPath(dirname(path), 'r');
}

/** Applies the file as one batch when the director has no service and no fwmark rule; returns how many requests it applied. */
export async function restoreConfig(path: string, director: Director): Promise<number> {
  if (director.model.services.size > 0 || (director.model.fwmarkRules?.length ?? 0) > 0 || !existsSync(path)) return 0;
  const text = readFileSync(path, 'utf8');
  let requests;
  try {
    requests = parseRestore(text).requests;
  } catch (e) {
    const err = e as XvsError;
    throw new XvsError('BAD_ARGUMENT', `${path}: ${err.message}`, { hint: 'fix or remove the configuration file' });
  }
  if (requests.length === 0) return 0;
  await director.batch(requests);
  log.info({ path, requests: requests.length, services: director.model.services.size }, 'configuration restored from file');
  return requests.length;
}
