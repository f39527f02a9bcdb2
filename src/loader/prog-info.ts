// The maps a loaded program uses, by kernel id. Every program loaded on the
// director's pinned maps names them, so a program found on an interface
// can be told to be this director's (xvsd's stale attachments, `xvs down`)
// without a state file.
import koffi from 'koffi';
import { XvsError } from '../errors.js';
import * as lb from './libbpf.js';

// struct bpf_prog_info (linux/bpf.h) up to and including name[16]; the
// kernel fills min(info_len, its size) and writes nr_map_ids ids to map_ids.
const INFO_LEN = 80;
const OFF_NR_MAP_IDS = 52;
const OFF_MAP_IDS = 56;
/** More than any program of ours declares (the kernel caps a program at 64 maps). */
const MAX_MAP_IDS = 64;
const ENOENT = 2;

/** Kernel ids of the maps program progId uses; [] when the program is gone. */
export function progMapIds(progId: number): number[] {
  const fd = lb.bpf_prog_get_fd_by_id(progId);
  if (fd === -ENOENT) return [];
  if (fd < 0) throw new XvsError('LIBBPF', `program id ${progId}: open failed: ${lb.strerror(fd)}`);
  try {
    const ids = Buffer.alloc(4 * MAX_MAP_IDS);
    const info = Buffer.alloc(INFO_LEN);
    info.writeUInt32LE(MAX_MAP_IDS, OFF_NR_MAP_IDS);
    info.writeBigUInt64LE(BigInt(koffi.address(ids)), OFF_MAP_IDS);
    const len: [number] = [INFO_LEN];
    const r = lb.bpf_obj_get_info_by_fd_raw(fd, info, len);
    if (r < 0) throw new XvsError('LIBBPF', `program id ${progId}: get info failed: ${lb.strerror(r)}`);
    const n = Math.min(info.readUInt32LE(OFF_NR_MAP_IDS), MAX_MAP_IDS);
    return Array.from({ length: n }, (_, i) => ids.readUInt32LE(4 * i));
  } finally {
    lb.close(fd);
  }
}
