// Programs on cgroups (v2): attach, detach and list by the cgroup
// directory, and programs opened by kernel id. An attachment belongs to the
// cgroup, not to the process or an fd: it lasts until detached or until the
// cgroup is removed, like an XDP program on an interface.
import { XvsError } from '../errors.js';
import * as lb from './libbpf.js';
import { progInfo } from './prog-info.js';

/** enum bpf_attach_type. */
export const AttachType = { CGROUP_SOCK_OPS: 3 } as const;
export type AttachTypeValue = (typeof AttachType)[keyof typeof AttachType];

// Several programs may share a cgroup hook; each runs. Without it the first
// to attach would hold the hook alone, and a later attach would replace it.
const BPF_F_ALLOW_MULTI = 2;
const O_RDONLY = 0;
const O_DIRECTORY = 0o200000;
const O_CLOEXEC = 0o2000000;

function openCgroup(dir: string): number {
  const fd = lb.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) throw new XvsError('SYSTEM', `cannot open cgroup ${dir}: ${lb.strerror(lb.errno())}`);
  return fd;
}

function withCgroup<T>(dir: string, fn: (fd: number) => T): T {
  const fd = openCgroup(dir);
  try {
    return fn(fd);
  } finally {
    lb.close(fd);
  }
}

export function attachCgroup(dir: string, progFd: number, type: AttachTypeValue): void {
  withCgroup(dir, (cg) => {
    const r = lb.bpf_prog_attach(progFd, cg, type, BPF_F_ALLOW_MULTI);
    if (r < 0) throw new XvsError('ATTACH', `cannot attach a program to cgroup ${dir}: ${lb.strerror(r)}`, { hint: 'the cgroup must be on a cgroup v2 hierarchy' });
  });
}

/** Detaches one program; false when it was not attached there. */
export function detachCgroup(dir: string, progFd: number, type: AttachTypeValue): boolean {
  return withCgroup(dir, (cg) => {
    const r = lb.bpf_prog_detach2(progFd, cg, type);
    if (r === -2 /* ENOENT */) return false;
    if (r < 0) throw new XvsError('ATTACH', `cannot detach a program from cgroup ${dir}: ${lb.strerror(r)}`);
    return true;
  });
}

/** Ids of the programs attached to the cgroup itself for this hook (not inherited ones). */
export function cgroupProgIds(dir: string, type: AttachTypeValue): number[] {
  return withCgroup(dir, (cg) => {
    for (let room = 64; ; room *= 4) {
      const ids = Buffer.alloc(4 * room);
      const cnt: [number] = [room];
      const r = lb.bpf_prog_query(cg, type, 0, [0], ids, cnt);
      if (r === -28 /* ENOSPC */ && room < 1 << 16) continue;
      if (r < 0) throw new XvsError('ATTACH', `cannot list the programs of cgroup ${dir}: ${lb.strerror(r)}`);
      return Array.from({ length: cnt[0] }, (_, i) => ids.readUInt32LE(4 * i));
    }
  });
}

export interface ProgHandle {
  fd: number;
  id: number;
  name: string;
  close(): void;
}

/** Opens a program by kernel id; null when no program has that id (any more). */
export function progFromId(id: number): ProgHandle | null {
  const fd = lb.bpf_prog_get_fd_by_id(id);
  if (fd === -2 /* ENOENT */) return null;
  if (fd < 0) throw new XvsError('LIBBPF', `program id ${id}: open failed: ${lb.strerror(fd)}`);
  try {
    const info = progInfo(fd);
    let open = true;
    return { fd, ...info, close: () => { if (open) { open = false; lb.close(fd); } } };
  } catch (e) {
    lb.close(fd);
    throw e;
  }
}
