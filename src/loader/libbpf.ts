// Raw koffi declarations for libbpf 1.1 and the few libc calls the loader
// needs. Nothing here throws on a C error: int APIs return -errno (libbpf 1.x
// semantics), pointer APIs return null and leave the cause in koffi.errno().
// The typed wrappers live in object.ts, xdp.ts, testrun.ts and src/maps.
import koffi, { type LibraryHandle } from 'koffi';
import { logger } from '../log.js';

/** An opaque C pointer (koffi 3 passes pointers as BigInt; NULL is null). */
export type Ptr = bigint;

const libbpf = koffi.load('libbpf.so.1');
const libc = koffi.load('libc.so.6');

koffi.opaque('bpf_object');
koffi.opaque('bpf_map');
koffi.opaque('bpf_program');

// Declared as koffi structs so the layout is checked against the C header
// sizes below at load time rather than trusted.
export const TestRunOpts = koffi.struct('bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'void *',
  data_out: 'void *',
  data_size_in: 'uint32_t',
  data_size_out: 'uint32_t',
  ctx_in: 'void *',
  ctx_out: 'void *',
  ctx_size_in: 'uint32_t',
  ctx_size_out: 'uint32_t',
  retval: 'uint32_t',
  repeat: 'int',
  duration: 'uint32_t',
  flags: 'uint32_t',
  cpu: 'uint32_t',
  batch_size: 'uint32_t',
});

export const MapCreateOpts = koffi.struct('bpf_map_create_opts', {
  sz: 'size_t',
  btf_fd: 'uint32_t',
  btf_key_type_id: 'uint32_t',
  btf_value_type_id: 'uint32_t',
  btf_vmlinux_value_type_id: 'uint32_t',
  inner_map_fd: 'uint32_t',
  map_flags: 'uint32_t',
  map_extra: 'uint64_t',
  numa_node: 'uint32_t',
  map_ifindex: 'uint32_t',
});

export const MapBatchOpts = koffi.struct('bpf_map_batch_opts', {
  sz: 'size_t',
  elem_flags: 'uint64_t',
  flags: 'uint64_t',
});

// Only the leading members: the kernel fills min(info_len, its size).
export const MapInfo = koffi.struct('bpf_map_info_head', {
  type: 'uint32_t',
  id: 'uint32_t',
  key_size: 'uint32_t',
  value_size: 'uint32_t',
  max_entries: 'uint32_t',
  map_flags: 'uint32_t',
  name: koffi.array('char', 16, 'String'),
});

if (koffi.sizeof(TestRunOpts) !== 80 || koffi.sizeof(MapCreateOpts) !== 48 || koffi.sizeof(MapBatchOpts) !== 24) {
  throw new Error('libbpf option struct layout does not match libbpf 1.1 headers');
}

export interface TestRunOptsValue {
  sz: number;
  data_in: Buffer | Ptr | null;
  data_out: Buffer | Ptr | null;
  data_size_in: number;
  data_size_out: number;
  ctx_in: Buffer | Ptr | null;
  ctx_out: Buffer | Ptr | null;
  ctx_size_in: number;
  ctx_size_out: number;
  retval: number;
  repeat: number;
  duration: number;
  flags: number;
  cpu: number;
  batch_size: number;
}

export interface MapInfoValue {
  type: number;
  id: number;
  key_size: number;
  value_size: number;
  max_entries: number;
  map_flags: number;
  name: string;
}

function fn<T>(lib: LibraryHandle, proto: string): T {
  return lib.func(proto) as unknown as T;
}

type Buf = Buffer | Ptr | null;

// bpf_object / bpf_program / bpf_map (libbpf.h)
export const bpf_object__open_file = fn<(path: string, opts: null) => Ptr | null>(libbpf, 'bpf_object *bpf_object__open_file(const char *path, void *opts)');
export const bpf_object__load = fn<(obj: Ptr) => number>(libbpf, 'int bpf_object__load(bpf_object *obj)');
export const bpf_object__close = fn<(obj: Ptr) => void>(libbpf, 'void bpf_object__close(bpf_object *obj)');
export const bpf_object__find_map_by_name = fn<(obj: Ptr, name: string) => Ptr | null>(libbpf, 'bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)');
export const bpf_object__find_program_by_name = fn<(obj: Ptr, name: string) => Ptr | null>(libbpf, 'bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)');
export const bpf_object__next_map = fn<(obj: Ptr, prev: Ptr | null) => Ptr | null>(libbpf, 'bpf_map *bpf_object__next_map(bpf_object *obj, bpf_map *prev)');
export const bpf_object__next_program = fn<(obj: Ptr, prev: Ptr | null) => Ptr | null>(libbpf, 'bpf_program *bpf_object__next_program(bpf_object *obj, bpf_program *prev)');
export const bpf_map__name = fn<(map: Ptr) => string>(libbpf, 'const char *bpf_map__name(bpf_map *map)');
export const bpf_map__fd = fn<(map: Ptr) => number>(libbpf, 'int bpf_map__fd(bpf_map *map)');
export const bpf_map__set_max_entries = fn<(map: Ptr, n: number) => number>(libbpf, 'int bpf_map__set_max_entries(bpf_map *map, uint32_t max_entries)');
export const bpf_map__max_entries = fn<(map: Ptr) => number>(libbpf, 'uint32_t bpf_map__max_entries(bpf_map *map)');
export const bpf_map__key_size = fn<(map: Ptr) => number>(libbpf, 'uint32_t bpf_map__key_size(bpf_map *map)');
export const bpf_map__value_size = fn<(map: Ptr) => number>(libbpf, 'uint32_t bpf_map__value_size(bpf_map *map)');
export const bpf_map__type = fn<(map: Ptr) => number>(libbpf, 'int bpf_map__type(bpf_map *map)');
export const bpf_map__set_pin_path = fn<(map: Ptr, path: string | null) => number>(libbpf, 'int bpf_map__set_pin_path(bpf_map *map, const char *path)');
export const bpf_map__unpin = fn<(map: Ptr, path: string | null) => number>(libbpf, 'int bpf_map__unpin(bpf_map *map, const char *path)');
export const bpf_program__name = fn<(prog: Ptr) => string>(libbpf, 'const char *bpf_program__name(bpf_program *prog)');
export const bpf_program__fd = fn<(prog: Ptr) => number>(libbpf, 'int bpf_program__fd(bpf_program *prog)');
export const bpf_program__autoload = fn<(prog: Ptr) => boolean>(libbpf, 'bool bpf_program__autoload(bpf_program *prog)');
export const bpf_program__set_autoload = fn<(prog: Ptr, autoload: boolean) => number>(libbpf, 'int bpf_program__set_autoload(bpf_program *prog, bool autoload)');
export const bpf_program__set_log_buf = fn<(prog: Ptr, buf: Ptr | null, size: number) => number>(libbpf, 'int bpf_program__set_log_buf(bpf_program *prog, void *buf, size_t size)');
export const bpf_program__set_log_level = fn<(prog: Ptr, level: number) => number>(libbpf, 'int bpf_program__set_log_level(bpf_program *prog, uint32_t level)');

// XDP attachment (libbpf.h); opts may be NULL.
export const bpf_xdp_attach = fn<(ifindex: number, progFd: number, flags: number, opts: null) => number>(libbpf, 'int bpf_xdp_attach(int ifindex, int prog_fd, uint32_t flags, void *opts)');
export const bpf_xdp_detach = fn<(ifindex: number, flags: number, opts: null) => number>(libbpf, 'int bpf_xdp_detach(int ifindex, uint32_t flags, void *opts)');
export const bpf_xdp_query_id = fn<(ifindex: number, flags: number, progId: [number]) => number>(libbpf, 'int bpf_xdp_query_id(int ifindex, int flags, _Out_ uint32_t *prog_id)');

// Low-level syscall wrappers (bpf.h). Buffers are passed by address.
export const bpf_map_update_elem = fn<(fd: number, key: Buf, value: Buf, flags: bigint | number) => number>(libbpf, 'int bpf_map_update_elem(int fd, void *key, void *value, uint64_t flags)');
export const bpf_map_lookup_elem = fn<(fd: number, key: Buf, value: Buf) => number>(libbpf, 'int bpf_map_lookup_elem(int fd, void *key, void *value)');
export const bpf_map_delete_elem = fn<(fd: number, key: Buf) => number>(libbpf, 'int bpf_map_delete_elem(int fd, void *key)');
export const bpf_map_get_next_key = fn<(fd: number, key: Buf, next: Buf) => number>(libbpf, 'int bpf_map_get_next_key(int fd, void *key, void *next_key)');
export const bpf_map_lookup_batch = fn<(fd: number, inBatch: Buf, outBatch: Buf, keys: Buf, values: Buf, count: [number], opts: Record<string, unknown> | null) => number>(libbpf, 'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, bpf_map_batch_opts *opts)');
export const bpf_map_update_batch = fn<(fd: number, keys: Buf, values: Buf, count: [number], opts: Record<string, unknown> | null) => number>(libbpf, 'int bpf_map_update_batch(int fd, void *keys, void *values, _Inout_ uint32_t *count, bpf_map_batch_opts *opts)');
export const bpf_map_create = fn<(type: number, name: string | null, keySize: number, valueSize: number, maxEntries: number, opts: Record<string, unknown> | null) => number>(libbpf, 'int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, bpf_map_create_opts *opts)');
export const bpf_map_get_fd_by_id = fn<(id: number) => number>(libbpf, 'int bpf_map_get_fd_by_id(uint32_t id)');
export const bpf_obj_get = fn<(path: string) => number>(libbpf, 'int bpf_obj_get(const char *pathname)');
export const bpf_obj_pin = fn<(fd: number, path: string) => number>(libbpf, 'int bpf_obj_pin(int fd, const char *pathname)');
export const bpf_obj_get_info_by_fd = fn<(fd: number, info: Record<string, unknown>, len: [number]) => number>(libbpf, 'int bpf_obj_get_info_by_fd(int fd, _Out_ bpf_map_info_head *info, _Inout_ uint32_t *info_len)');
// The same call for a program's info, as raw bytes (prog-info.ts lays them out).
export const bpf_obj_get_info_by_fd_raw = fn<(fd: number, info: Buffer, len: [number]) => number>(libbpf, 'int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *info_len)');
export const bpf_prog_get_fd_by_id = fn<(id: number) => number>(libbpf, 'int bpf_prog_get_fd_by_id(uint32_t id)');
export const bpf_prog_test_run_opts = fn<(progFd: number, opts: TestRunOptsValue) => number>(libbpf, 'int bpf_prog_test_run_opts(int prog_fd, _Inout_ bpf_test_run_opts *opts)');
export const libbpf_num_possible_cpus_raw = fn<() => number>(libbpf, 'int libbpf_num_possible_cpus(void)');

// The print callback gets a va_list; on x86_64 that is a pointer to one
// __va_list_tag, so it travels through koffi as void *.
const PrintFn = koffi.proto('int libbpf_print_fn_t(int level, void *fmt, void *ap)');
export const libbpf_set_print = fn<(cb: Ptr | null) => Ptr | null>(libbpf, 'libbpf_print_fn_t *libbpf_set_print(libbpf_print_fn_t *fn)');

// libc
export const close = fn<(fd: number) => number>(libc, 'int close(int fd)');
export const if_nametoindex = fn<(name: string) => number>(libc, 'uint32_t if_nametoindex(const char *name)');
export const setns = fn<(fd: number, nstype: number) => number>(libc, 'int setns(int fd, int nstype)');
// open(2) is variadic in C; a fixed mode argument is ABI-compatible on x86_64.
export const open = fn<(path: string, flags: number, mode: number) => number>(libc, 'int open(const char *path, int flags, uint32_t mode)');
export const geteuid = fn<() => number>(libc, 'uint32_t geteuid(void)');
export const vsnprintf = fn<(buf: Buffer, size: number, fmt: Ptr, ap: Ptr | Buffer) => number>(libc, 'int vsnprintf(void *buf, size_t size, void *fmt, void *ap)');
const strerror_raw = fn<(errnum: number) => string>(libc, 'const char *strerror(int errnum)');

/** errno of the last failed pointer-returning call on this thread. */
export function errno(): number {
  return koffi.errno();
}

/** Message for an errno value; accepts libbpf's negative returns as well. */
export function strerror(err: number): string {
  return strerror_raw(Math.abs(err));
}

let cpus = 0;
/** Possible CPUs, the stride count of per-CPU map values (cached). */
export function libbpf_num_possible_cpus(): number {
  if (cpus <= 0) {
    const n = libbpf_num_possible_cpus_raw();
    if (n <= 0) throw new Error(`libbpf_num_possible_cpus: ${strerror(n)}`);
    cpus = n;
  }
  return cpus;
}

// libbpf messages go to pino. Debug output is dropped before formatting (it
// is a line per ELF section and map); warnings are kept in a short ring so a
// failed load can attach them to its error.
const LIBBPF_WARN = 0;
const LIBBPF_INFO = 1;
const VA_LIST_TAG_SIZE = 24;
const libbpfLog = logger('libbpf');
const RING = 32;
const recent: string[] = [];
let warnCount = 0;
const printBuf = Buffer.alloc(1024);

function remember(msg: string): void {
  recent.push(msg);
  if (recent.length > RING) recent.shift();
  warnCount++;
}

function format(fmt: Ptr, ap: Ptr): string {
  // vsnprintf consumes the va_list, so keep a copy of the tag for a second
  // pass with a larger buffer (the x86_64 va_copy is a plain struct copy).
  const saved = Buffer.from(new Uint8Array(koffi.view(ap, VA_LIST_TAG_SIZE)));
  let buf = printBuf;
  let n = vsnprintf(buf, buf.length, fmt, ap);
  if (n >= buf.length) {
    buf = Buffer.alloc(n + 1);
    n = vsnprintf(buf, buf.length, fmt, saved);
  }
  return n > 0 ? buf.toString('utf8', 0, Math.min(n, buf.length - 1)) : '';
}

function onPrint(level: number, fmt: Ptr, ap: Ptr): number {
  if (level !== LIBBPF_WARN && level !== LIBBPF_INFO) return 0;
  try {
    const msg = format(fmt, ap).replace(/^libbpf: /, '').trimEnd();
    if (level === LIBBPF_WARN) {
      remember(msg);
      libbpfLog.warn(msg);
    } else {
      libbpfLog.info(msg);
    }
  } catch {
    // An exception must not unwind through libbpf's C frames.
  }
  return 0;
}

const printCb = koffi.register(onPrint, koffi.pointer(PrintFn));
libbpf_set_print(printCb);

/** A marker for warningsSince(): how many warnings were printed so far. */
export function warningMark(): number {
  return warnCount;
}

/** libbpf warnings printed after `mark` (at most the last RING). */
export function warningsSince(mark: number): string[] {
  const n = Math.min(warnCount - mark, recent.length);
  return n > 0 ? recent.slice(recent.length - n) : [];
}
